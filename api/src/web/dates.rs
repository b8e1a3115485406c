//! Days as the pages ask for them and read them back. A browser's own date field shows its day
//! in the browser's locale (12/06/2026 on an English browser, whatever language the page is in),
//! so the pages ask for a day in one written form, 2026-12-06, as they show days everywhere, and
//! read back the forms people type: 2026/12/6, 2026.12.06, 2026年12月6日, with full-width digits.

use chrono::NaiveDate;

use super::{Viewer, esc};

/// A day field: a text input that shows `value` and hints at the form a day is written in. `id`
/// and `name` are written as given: the page's own names, already HTML-safe.
pub(crate) fn day_input(viewer: &Viewer, id: &str, name: &str, value: &str, required: bool) -> String {
    format!(
        "<input id=\"{id}\" name=\"{name}\" value=\"{}\" placeholder=\"{}\" size=\"12\" maxlength=\"20\" \
         autocomplete=\"off\" spellcheck=\"false\"{}>",
        esc(value),
        esc(viewer.t("day_placeholder")),
        if required { " required" } else { "" },
    )
}

/// The day `text` names: year, month and day in that order, separated by `-`, `/` or `.` (or
/// written 年, 月, 日), in ASCII or full-width digits; `None` for anything else, or a day that
/// does not exist.
pub(crate) fn read_day(text: &str) -> Option<NaiveDate> {
    // 日 (or 号) may close a day written in Chinese.
    let text = text.trim();
    let text = text.strip_suffix('日').or_else(|| text.strip_suffix('号')).unwrap_or(text);
    let mut normal = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '0'..='9' => normal.push(c),
            '０'..='９' => normal.push(char::from_digit(u32::from(c) - u32::from('０'), 10)?),
            '-' | '/' | '.' | '－' | '／' | '．' | '年' | '月' => normal.push('-'),
            ' ' | '\u{3000}' => {}
            _ => return None,
        }
    }
    let mut parts = normal.split('-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || year.len() != 4 || !(1..=2).contains(&month.len()) || !(1..=2).contains(&day.len()) {
        return None;
    }
    NaiveDate::from_ymd_opt(year.parse().ok()?, month.parse().ok()?, day.parse().ok()?)
}

#[cfg(test)]
mod tests {
    use super::read_day;

    #[test]
    fn the_forms_people_type_are_read_as_the_same_day() {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 6).unwrap();
        for text in [
            "2026-12-06",
            " 2026-12-6 ",
            "2026/12/06",
            "2026/12/6",
            "2026.12.06",
            "2026年12月6日",
            "2026年12月06日",
            "2026 年 12 月 6 日",
            "２０２６－１２－０６",
            "２０２６年１２月６日",
            "2026/12/6号",
        ] {
            assert_eq!(read_day(text), Some(day), "{text}");
        }
    }

    #[test]
    fn anything_else_is_not_a_day() {
        for text in [
            "",
            "friday",
            "12/06/2026",
            "06.12.2026",
            "26-12-06",
            "2026-13-01",
            "2026-02-30",
            "2026-12-06-01",
            "2026-12",
            "2026--06",
            "2026-012-06",
            "2026-12-06T10:00",
            "2026年12月6日日",
        ] {
            assert_eq!(read_day(text), None, "{text}");
        }
    }
}
