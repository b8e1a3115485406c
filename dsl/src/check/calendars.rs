//! `calendar` blocks: each clause checked where it is written, and the block built into the
//! [`Calendar`] that the processes naming it carry in their compiled form.

use std::collections::BTreeMap;

use chrono::{NaiveDate, TimeDelta};

use super::twice;
use crate::ast;
use crate::calendar::{Calendar, WEEKDAYS, clock_text, parse_clock};
use crate::codes;
use crate::diag::{Diagnostic, FileId, Span};
use crate::schedule::{ScheduleError, parse_zone};
use crate::suggest::did_you_mean;

/// Most days one `holiday` or `workday` line may span: a year, so a typo in a year cannot
/// expand into millions of dates.
const MAX_RANGE_DAYS: i64 = 366;

/// Checks a calendar block; the calendar when it has no errors, and every diagnostic found.
pub(super) fn compile(decl: &ast::CalendarDecl) -> (Option<Calendar>, Vec<Diagnostic>) {
    let mut cx = Cx { file: decl.file, diags: Vec::new() };
    let zone = cx.zone(decl);
    let week = cx.week(decl);
    let hours = cx.hours(decl);
    let (holidays, workdays) = cx.days(decl);
    if cx.diags.iter().any(Diagnostic::is_error) {
        return (None, cx.diags);
    }
    let built = Calendar::new(decl.name.name.clone(), zone)
        .with_week(week)
        .and_then(|c| c.with_hours(&hours))
        .and_then(|c| c.with_days(holidays, workdays));
    match built {
        Ok(calendar) => (Some(calendar), cx.diags),
        // Every rule `Calendar` enforces was checked above with its span; this is a safety net.
        Err(e) => {
            cx.err(decl.name.span, e.to_string(), "in this calendar", "see the calendar reference in README.md");
            (None, cx.diags)
        }
    }
}

struct Cx {
    file: FileId,
    diags: Vec<Diagnostic>,
}

impl Cx {
    fn err(&mut self, span: Span, message: impl Into<String>, label: impl Into<String>, help: impl Into<String>) {
        let d = Diagnostic::error(codes::INVALID_CALENDAR, self.file, span, message).with_label(label).with_help(help);
        self.diags.push(d);
    }

    /// A clause written twice: the first one counts.
    fn once<T>(&mut self, clauses: &[T], span: impl Fn(&T) -> Span, what: &str) {
        if let [first, again, ..] = clauses {
            let message = format!("a second `{what}` clause in one calendar");
            let help = format!("write one `{what}` clause per calendar");
            self.diags.push(twice(self.file, span(again), span(first), message, "written", &help));
        }
    }

    fn zone(&mut self, decl: &ast::CalendarDecl) -> chrono_tz::Tz {
        self.once(&decl.zones, |(_, s)| *s, "zone");
        let Some((zone, span)) = decl.zones.first() else {
            return chrono_tz::Tz::UTC;
        };
        match parse_zone(Some(zone)) {
            Ok(tz) => tz,
            Err(e @ ScheduleError::UnknownZone { .. }) => {
                let d = Diagnostic::error(codes::UNKNOWN_ZONE, self.file, *span, e.to_string())
                    .with_label("not an IANA time zone")
                    .with_help(e.help());
                self.diags.push(d);
                chrono_tz::Tz::UTC
            }
            Err(e) => {
                self.err(*span, e.to_string(), "not a time zone", e.help());
                chrono_tz::Tz::UTC
            }
        }
    }

    fn week(&mut self, decl: &ast::CalendarDecl) -> [bool; 7] {
        self.once(&decl.weeks, |w| w.span, "week");
        let Some(ast::WeekClause { days: spans, .. }) = decl.weeks.first() else {
            return [true, true, true, true, true, false, false];
        };
        let mut week = [false; 7];
        for (first, last) in spans {
            let (Some(from), to) = (self.weekday(first), last.as_ref().map(|l| self.weekday(l))) else {
                continue;
            };
            match to {
                None => week[from] = true,
                Some(None) => {}
                // `sun-thu` wraps around the end of the week.
                Some(Some(to)) => {
                    let len = (to + 7 - from) % 7;
                    for i in 0..=len {
                        week[(from + i) % 7] = true;
                    }
                }
            }
        }
        week
    }

    /// The index of a weekday name (Monday 0); `mon` or `monday`, in any case.
    fn weekday(&mut self, name: &ast::Ident) -> Option<usize> {
        let lower = name.name.to_lowercase();
        let found = WEEKDAYS.iter().position(|d| {
            *d == lower || (lower.len() > 3 && lower.starts_with(d) && FULL_DAYS.contains(&lower.as_str()))
        });
        if found.is_none() {
            let help = match did_you_mean(&lower, WEEKDAYS.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "the weekdays are mon, tue, wed, thu, fri, sat and sun; a range is written `mon-fri`".into(),
            };
            self.err(name.span, format!("unknown weekday `{}`", name.name), "not a weekday", help);
        }
        found
    }

    fn hours(&mut self, decl: &ast::CalendarDecl) -> Vec<(u32, u32)> {
        self.once(&decl.hours, |h| h.span, "hours");
        let Some(ast::HoursClause { periods, .. }) = decl.hours.first() else {
            return Vec::new();
        };
        let mut out: Vec<(u32, u32, Span)> = Vec::new();
        for ast::ClockPeriod { start, end, span } in periods {
            let clock = |cx: &mut Cx, text: &str| {
                let parsed = parse_clock(text);
                if parsed.is_none() {
                    cx.err(
                        *span,
                        format!("`{text}` is not a time of day"),
                        "in these hours",
                        "write times as `HH:MM` from `00:00` to `24:00`, such as `09:00-17:30`",
                    );
                }
                parsed
            };
            let (Some(s), Some(e)) = (clock(self, start), clock(self, end)) else { continue };
            if s >= e {
                self.err(
                    *span,
                    format!("working hours `{start}-{end}` end before they start"),
                    "an empty or reversed period",
                    "write the start first, such as `09:00-17:00`; a period ends on its own day (at most `24:00`)",
                );
                continue;
            }
            out.push((s, e, *span));
        }
        out.sort_by_key(|&(s, e, _)| (s, e));
        for pair in out.windows(2) {
            let ((s1, e1, _), (s2, e2, span)) = (pair[0], pair[1]);
            if s2 < e1 {
                self.err(
                    span,
                    format!(
                        "working hours {}-{} overlap {}-{}",
                        clock_text(s2),
                        clock_text(e2),
                        clock_text(s1),
                        clock_text(e1)
                    ),
                    "overlaps another period",
                    "write periods that do not overlap, such as `09:00-12:00, 13:00-18:00`",
                );
            }
        }
        out.into_iter().map(|(s, e, _)| (s, e)).collect()
    }

    fn days(&mut self, decl: &ast::CalendarDecl) -> (Vec<NaiveDate>, Vec<NaiveDate>) {
        // Each date with the line that declared it, to point at both lines of a conflict.
        let mut holidays: BTreeMap<NaiveDate, Span> = BTreeMap::new();
        let mut workdays: BTreeMap<NaiveDate, Span> = BTreeMap::new();
        for line in &decl.days {
            let Some(from) = self.date(&line.from) else { continue };
            let to = match &line.to {
                Some(to) => match self.date(to) {
                    Some(to) => to,
                    None => continue,
                },
                None => from,
            };
            let days = (to - from).num_days();
            if days < 0 {
                self.err(
                    line.span,
                    format!(
                        "the range {}..{} ends before it starts",
                        line.from.0,
                        line.to.as_ref().map_or("", |t| &t.0)
                    ),
                    "a reversed range",
                    "write the first day first, such as `2026-10-01..2026-10-07`",
                );
                continue;
            }
            if days >= MAX_RANGE_DAYS {
                self.err(
                    line.span,
                    format!("a range of {} days is longer than a year", days + 1),
                    "too long",
                    "list each year's days on lines of their own",
                );
                continue;
            }
            let (mine, other, kind, other_kind) = if line.working {
                (&mut workdays, &holidays, "a working day", "a holiday")
            } else {
                (&mut holidays, &workdays, "a holiday", "a working day")
            };
            let mut conflict = None;
            for i in 0..=days {
                let day = from + TimeDelta::days(i);
                if let Some(first) = other.get(&day) {
                    conflict.get_or_insert((day, *first));
                }
                mine.entry(day).or_insert(line.span);
            }
            if let Some((day, first)) = conflict {
                let d = Diagnostic::error(
                    codes::INVALID_CALENDAR,
                    self.file,
                    line.span,
                    format!("{day} is declared {kind} and {other_kind}"),
                )
                .with_label(format!("{kind} here"))
                .with_note(first, format!("{other_kind} here"))
                .with_help("a day is either a holiday or a make-up working day: remove it from one of the lines");
                self.diags.push(d);
            }
        }
        (holidays.into_keys().collect(), workdays.into_keys().collect())
    }

    fn date(&mut self, (text, span): &(String, Span)) -> Option<NaiveDate> {
        let parsed = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok();
        if parsed.is_none() {
            self.err(*span, format!("`{text}` is not a calendar date"), "no such date", "write a date as `2026-10-01`");
        }
        parsed
    }
}

/// Full weekday names, accepted beside the three-letter ones.
const FULL_DAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
