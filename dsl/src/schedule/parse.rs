//! Parsing a schedule: its cron pattern, checked field by field so errors name the field at
//! fault, and its time zone, with a suggestion for a misspelt one.

use chrono::NaiveDate;
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use super::ScheduleError;

/// A pattern ready to match wall-clock times.
pub(super) struct CronPattern {
    /// The pattern with nicknames expanded and a seconds field.
    pub(super) cron: Cron,
    /// Whether the second, minute or hour field starts with `*` (see the parent module's doc).
    pub(super) interval: bool,
}

/// Parses a trimmed pattern: five fields, six with seconds first, or a nickname.
pub(super) fn parse_pattern(pattern: &str) -> Result<CronPattern, ScheduleError> {
    let expanded = if pattern.starts_with('@') { expand_nickname(pattern)? } else { pattern };
    let mut fields: Vec<&str> = expanded.split_whitespace().collect();
    match fields.len() {
        5 => fields.insert(0, "0"),
        6 => {}
        found => return Err(ScheduleError::FieldCount { found }),
    }
    for (spec, text) in FIELDS.iter().zip(&fields) {
        check_field(spec, text).map_err(|message| ScheduleError::Pattern { message, field: Some(spec.name) })?;
    }
    let normalised = fields.join(" ");
    let cron = wall_clock_parser().parse(&normalised).map_err(|error| attribute(&fields, &error))?;
    if !fires_this_century(&normalised) {
        return Err(ScheduleError::NeverFires { pattern: pattern.to_string() });
    }
    Ok(CronPattern { cron, interval: fields[..3].iter().any(|field| field.starts_with('*')) })
}

/// The fix-it hint for a malformed field, by the field's name.
pub(super) fn field_help(name: &'static str) -> &'static str {
    field_spec(name).help
}

/// What a field accepts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    DayOfMonth,
    Month,
    DayOfWeek,
}

/// One field of the six (seconds first).
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    kind: Kind,
    help: &'static str,
}

const FIELDS: [FieldSpec; 6] = [
    FieldSpec {
        name: "second",
        min: 0,
        max: 59,
        kind: Kind::Plain,
        help: "seconds are 0-59, e.g. `0` or `*/10`; a seconds field comes first of six",
    },
    FieldSpec {
        name: "minute",
        min: 0,
        max: 59,
        kind: Kind::Plain,
        help: "minutes are 0-59, e.g. `0`, `0,30` or `*/15`",
    },
    FieldSpec { name: "hour", min: 0, max: 23, kind: Kind::Plain, help: "hours are 0-23, e.g. `18`, `9-17` or `*/2`" },
    FieldSpec {
        name: "day of month",
        min: 1,
        max: 31,
        kind: Kind::DayOfMonth,
        help: "days of month are 1-31, e.g. `1`, `L` (last day), `LW` (last weekday) \
            or `15W` (weekday nearest the 15th)",
    },
    FieldSpec {
        name: "month",
        min: 1,
        max: 12,
        kind: Kind::Month,
        help: "months are 1-12 or JAN-DEC, e.g. `3,6,9,12` or `JAN-JUN`",
    },
    FieldSpec {
        name: "day of week",
        min: 0,
        max: 7,
        kind: Kind::DayOfWeek,
        help: "days of week are 0-7 or SUN-SAT (0 and 7 are Sunday), e.g. `MON-FRI`, \
            `5#2` (second Friday) or `5#L` (last Friday)",
    },
];

fn field_spec(name: &'static str) -> &'static FieldSpec {
    FIELDS.iter().find(|spec| spec.name == name).unwrap_or(&FIELDS[1])
}

const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const NICKNAMES: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

fn expand_nickname(pattern: &str) -> Result<&'static str, ScheduleError> {
    NICKNAMES.iter().find(|(name, _)| name.eq_ignore_ascii_case(pattern)).map(|(_, expansion)| *expansion).ok_or_else(
        || ScheduleError::Pattern {
            message: format!(
                "unknown nickname `{pattern}`; known nicknames are @yearly, @annually, \
                 @monthly, @weekly, @daily, @midnight and @hourly"
            ),
            field: None,
        },
    )
}

/// Checks one field's words, characters and numbers, so errors can name the field and value.
/// Anything subtler is left to croner, whose errors [`attribute`] assigns to a field.
fn check_field(spec: &FieldSpec, text: &str) -> Result<(), String> {
    let upper = text.to_ascii_uppercase();
    // Words: names, and the letters L and W where they mean something.
    let mut rest = upper.char_indices().peekable();
    while let Some((start, c)) = rest.next() {
        if !c.is_alphabetic() {
            continue;
        }
        let mut end = start + c.len_utf8();
        while let Some(&(at, c)) = rest.peek().filter(|(_, c)| c.is_alphabetic()) {
            end = at + c.len_utf8();
            rest.next();
        }
        let word = &upper[start..end];
        let allowed = match spec.kind {
            Kind::Plain => false,
            Kind::DayOfMonth => matches!(word, "L" | "W" | "LW"),
            Kind::Month => MONTHS.contains(&word),
            Kind::DayOfWeek => word == "L" || DAYS.contains(&word),
        };
        if !allowed {
            let word = &text[start..end];
            return Err(match spec.kind {
                Kind::Plain => format!("`{word}` is not a number"),
                Kind::DayOfMonth => {
                    format!("`{word}` is not allowed; use numbers, `L` (last day) or `W` (as in `15W`)")
                }
                Kind::Month => format!("`{word}` is not a month; use 1-12 or JAN-DEC"),
                Kind::DayOfWeek => format!("`{word}` is not a day of the week; use 0-7 or SUN-SAT"),
            });
        }
    }
    // Other characters.
    for (at, c) in upper.char_indices() {
        let allowed = c.is_alphabetic()
            || c.is_ascii_digit()
            || matches!(c, '*' | ',' | '-' | '/')
            || (c == '?' && matches!(spec.kind, Kind::DayOfMonth | Kind::DayOfWeek))
            || (c == '#' && spec.kind == Kind::DayOfWeek);
        if c == '+' && spec.kind == Kind::DayOfWeek {
            if at != 0 {
                return Err(format!(
                    "`+` must start the field, as in `+MON`, and applies to all of it; found `{text}`"
                ));
            }
        } else if !allowed {
            return Err(format!("unexpected `{c}` in `{text}`"));
        }
    }
    // Numbers, with names replaced by theirs.
    let mut numeric = upper.trim_start_matches('+').to_string();
    match spec.kind {
        Kind::Month => {
            for (index, name) in MONTHS.iter().enumerate() {
                numeric = numeric.replace(name, &(index + 1).to_string());
            }
        }
        Kind::DayOfWeek => {
            numeric = numeric.replace("-SUN", "-7");
            for (index, name) in DAYS.iter().enumerate() {
                numeric = numeric.replace(name, &index.to_string());
            }
        }
        Kind::Plain | Kind::DayOfMonth => {}
    }
    for item in numeric.split(',') {
        check_item(spec, item, text)?;
    }
    Ok(())
}

/// Checks one comma-separated item of a field, with names already replaced by numbers.
fn check_item(spec: &FieldSpec, item: &str, text: &str) -> Result<(), String> {
    if item.is_empty() {
        return Err(format!("empty list item in `{text}`"));
    }
    let (mut base, step) = match item.split_once('/') {
        Some((base, step)) => (base, Some(step)),
        None => (item, None),
    };
    if let Some(step) = step {
        match step.parse::<u32>() {
            Ok(0) => return Err(format!("step 0 in `{text}` never advances; use 1 or more")),
            Ok(_) => {}
            Err(_) => return Err(format!("step `{step}` in `{text}` is not a whole number")),
        }
    }
    match spec.kind {
        Kind::DayOfWeek => {
            if base == "L" {
                return Err("`L` alone is not a day of the week; write `5L` or `5#L` for the last Friday".to_string());
            }
            if let Some((day, nth)) = base.split_once('#') {
                if !(nth == "L" || matches!(nth.parse::<u32>(), Ok(1..=5))) {
                    return Err(format!("`#{nth}` must be #1 to #5 or #L, as in `5#2` (second Friday) or `5#L`"));
                }
                base = day;
            } else if let Some(day) = base.strip_suffix('L') {
                base = day;
            }
        }
        Kind::DayOfMonth => {
            if matches!(base, "L" | "LW") {
                return Ok(());
            }
            base = base.strip_suffix('W').unwrap_or(base);
        }
        Kind::Plain | Kind::Month => {}
    }
    if matches!(base, "*" | "?") {
        return Ok(());
    }
    let bounds: Vec<Option<u32>> = base.split('-').map(|value| value.parse().ok()).collect();
    for value in bounds.iter().flatten() {
        if !(spec.min..=spec.max).contains(value) {
            return Err(format!("{value} is out of range {}-{}", spec.min, spec.max));
        }
    }
    match bounds[..] {
        [Some(start), Some(end)] if start > end => Err(format!(
            "range {start}-{end} runs backwards; ranges do not wrap around, so write `{start}-{},{}-{end}`",
            spec.max, spec.min
        )),
        _ => Ok(()),
    }
}

/// The parser for normalised six-field patterns, matched against wall-clock times.
fn wall_clock_parser() -> CronParser {
    CronParser::builder().seconds(Seconds::Required).year(Year::Disallowed).build()
}

/// Turns a croner error into ours, naming the field that fails when parsed on its own.
fn attribute(fields: &[&str], error: &croner::errors::CronError) -> ScheduleError {
    let parser = wall_clock_parser();
    for (index, spec) in FIELDS.iter().enumerate() {
        let mut alone = ["0", "*", "*", "*", "*", "*"];
        alone[index] = fields[index];
        if let Err(error) = parser.parse(&alone.join(" ")) {
            return ScheduleError::Pattern { message: croner_message(&error), field: Some(spec.name) };
        }
    }
    ScheduleError::Pattern { message: croner_message(error), field: None }
}

/// croner's message for `error`, lowercased and without its prefix and trailing period.
fn croner_message(error: &croner::errors::CronError) -> String {
    let text = error.to_string();
    let text = ["Component error: ", "Invalid pattern: ", "Pattern contains illegal characters: "]
        .iter()
        .find_map(|prefix| text.strip_prefix(prefix))
        .unwrap_or(&text)
        .trim_end_matches('.');
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Whether any wall-clock time from 2000 to 2099 matches: those years hold every combination
/// of month, day, weekday and leap year, so a pattern that misses them never fires.
fn fires_this_century(normalised: &str) -> bool {
    let bounded = CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Required)
        .build()
        .parse(&format!("{normalised} 2000-2099"));
    let Some(start) = NaiveDate::from_ymd_opt(2000, 1, 1).and_then(|day| day.and_hms_opt(0, 0, 0)) else {
        return false;
    };
    bounded.is_ok_and(|cron| cron.find_next_occurrence(&start, true).is_ok())
}

pub(crate) fn parse_zone(zone: Option<&str>) -> Result<Tz, ScheduleError> {
    let Some(zone) = zone else {
        return Ok(Tz::UTC);
    };
    zone.trim()
        .parse::<Tz>()
        .map_err(|_| ScheduleError::UnknownZone { zone: zone.to_string(), suggestion: suggest_zone(zone.trim()) })
}

/// The known zone closest to `zone` by edit distance (ignoring case), or by its last segment.
fn suggest_zone(zone: &str) -> Option<String> {
    let wanted = zone.to_lowercase();
    if wanted.is_empty() {
        return None;
    }
    let threshold = (wanted.chars().count() / 4).max(2);
    chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| tz.name())
        .filter_map(|name| {
            let lower = name.to_lowercase();
            let city = lower.rsplit('/').next().unwrap_or(&lower);
            let distance = if city == wanted { 0 } else { edit_distance(&wanted, &lower) };
            (distance <= threshold).then_some((distance, name))
        })
        .min()
        .map(|(_, name)| name.to_string())
}

/// Levenshtein distance between two strings, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}
