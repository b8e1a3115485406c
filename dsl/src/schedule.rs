//! Cron schedules in a time zone: parsing, the next fires, and catch-up after downtime.
//!
//! A [`Schedule`] is a cron pattern plus an IANA time zone (UTC when none is given). It is pure:
//! every method takes the time it works from as an argument and never reads a clock.
//!
//! ```
//! # use cloverleaf_dsl::schedule::Schedule;
//! # use chrono::{TimeZone, Utc};
//! let close = Schedule::parse("0 18 L * *", Some("Asia/Shanghai")).unwrap();
//! let next = close.next_after(Utc.with_ymd_and_hms(2026, 1, 15, 0, 0, 0).unwrap()).unwrap();
//! assert_eq!(next.to_rfc3339(), "2026-01-31T18:00:00+08:00");
//! ```
//!
//! # Patterns
//!
//! Standard Vixie-cron meaning, parsed by `croner`:
//! - five fields `minute hour day-of-month month day-of-week`, or six with a seconds field first;
//! - `*`, lists `1,15`, ranges `9-17`, steps `*/15` and `9-17/2`; names `JAN`-`DEC`, `SUN`-`SAT`;
//! - day of week 0-7, where 0 and 7 are both Sunday;
//! - when day of month and day of week are both restricted, a day matches if *either* does
//!   (`0 9 1 * MON` fires on the 1st and on every Monday); croner's `+` prefix on the day of
//!   week asks for both instead (`0 9 1 * +MON`: the 1st, when it is a Monday). We allow it;
//! - `L` in day of month is the last day (`LW` the last weekday), `15W` the weekday nearest the
//!   15th within the same month; `5#2` is the second Friday, `5#L` or `5L` the last Friday;
//! - nicknames `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`.
//!
//! A pattern that can never fire (`0 0 30 2 *`) is refused when parsed: no date from 2000 to
//! 2099 matches it, and those years hold every combination of month, day, weekday and leap year.
//!
//! # Daylight saving
//!
//! Cron fields name wall-clock times in the schedule's zone. When the clock jumps, we follow
//! Vixie cron's rule, which depends on the kind of schedule:
//! - A *fixed-time* schedule (no `*` at the start of its second, minute or hour field, e.g.
//!   `30 2 * * *`, `0 9-17 * * *`, `30 2,14 * * *`) fires exactly once for every wall-clock time
//!   it names. A time skipped by a spring-forward gap fires once, at the first instant after the
//!   gap (02:30 in Berlin on 29 March 2026 fires at 03:00 CEST); several skipped times coalesce
//!   into that one fire. A time repeated by a fall-back overlap fires once, at its first
//!   occurrence (02:30 on 25 October 2026 fires at 02:30 CEST, not again at 02:30 CET).
//! - An *interval* schedule (`*/30 * * * *`, `0 * * * *`, `@hourly`) keeps to the wall clock:
//!   times inside a gap do not exist and are skipped, and times inside an overlap happen twice
//!   and fire both times. In Berlin `0 * * * *` fires at 01:00 CET then 03:00 CEST on 29 March
//!   2026, and at 02:00 CEST, 02:00 CET, 03:00 CET on 25 October; `*/30` keeps firing every 30
//!   real minutes through the overlap.
//!
//! So a fixed-time daily job never fires zero or two times on a transition day. croner alone
//! treats lists and ranges (`30 2,14 * * *`) as interval jobs and would skip or repeat them,
//! so this module maps wall-clock matches to instants itself. It assumes a zone changes its
//! offset at most once a day; half-hour shifts (Lord Howe) and whole skipped days (Samoa on
//! 30 December 2011, where a noon job fires once as the day resumes) follow the same rules.
//!
//! # Catch-up after downtime
//!
//! Policy "coalesce": when the engine was down across one or more fires, the schedule fires
//! once, for the most recent missed occurrence, and reports how many it missed so the engine
//! can record that in history. A month-end close missed for a quarter runs once, not three
//! times. See [`Schedule::missed`].

mod fires;
mod parse;
#[cfg(test)]
mod tests;

use std::fmt;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Deserialize, Serialize};

pub(crate) use parse::parse_zone;
use parse::{CronPattern, field_help, parse_pattern};

/// The most missed fires [`Schedule::missed`] counts one by one before it reports a capped count.
pub const MISSED_COUNT_LIMIT: u64 = 10_000;

/// A parsed cron schedule in a time zone.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "Repr", into = "Repr")]
pub struct Schedule {
    /// The pattern as written (trimmed).
    pattern: String,
    zone: Tz,
    /// The pattern with nicknames expanded and a seconds field, matched against wall-clock times.
    /// Boxed: a parsed pattern is large, and schedules sit inside process graphs.
    cron: Box<Cron>,
    /// Whether the second, minute or hour field starts with `*` (see the module doc).
    interval: bool,
}

/// What to do about fires missed while the engine was down (policy "coalesce").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missed {
    /// How many fires were missed; at most [`MISSED_COUNT_LIMIT`], see `capped`.
    pub count: u64,
    /// True when more than [`MISSED_COUNT_LIMIT`] fires were missed and `count` stopped there.
    pub capped: bool,
    /// The most recent missed fire: the one to run now, once. `None` when nothing was missed.
    pub latest: Option<DateTime<Utc>>,
}

/// Why a schedule could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The pattern does not have 5 or 6 fields.
    #[error("expected 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first; found {found}")]
    FieldCount {
        /// How many whitespace-separated fields the pattern has.
        found: usize,
    },
    /// A field (or the whole pattern, when `field` is `None`) is malformed.
    #[error("{}", pattern_message(.message, *.field))]
    Pattern {
        /// What is wrong.
        message: String,
        /// The field at fault: second, minute, hour, day of month, month or day of week.
        field: Option<&'static str>,
    },
    /// The pattern is well formed but no date can ever match it.
    #[error("`{pattern}` never fires: no date matches its day-of-month, month and day-of-week fields")]
    NeverFires {
        /// The pattern as written.
        pattern: String,
    },
    /// The time zone is not an IANA name known to chrono-tz.
    #[error("unknown time zone `{zone}`")]
    UnknownZone {
        /// The zone as written.
        zone: String,
        /// The closest known zone name, if one is close.
        suggestion: Option<String>,
    },
}

fn pattern_message(message: &str, field: Option<&'static str>) -> String {
    match field {
        Some(field) => format!("invalid {field} field: {message}"),
        None => format!("invalid cron pattern: {message}"),
    }
}

impl ScheduleError {
    /// A fix-it hint to show under the error.
    pub fn help(&self) -> String {
        match self {
            ScheduleError::FieldCount { .. } => "write five fields, e.g. `0 18 L * *` for 18:00 on \
                the last day of every month, or six with seconds first, e.g. `0 0 18 L * *`"
                .to_string(),
            ScheduleError::Pattern { field, .. } => match field.map(field_help) {
                Some(help) => help.to_string(),
                None => "write five fields, e.g. `0 18 L * *`, or a nickname such as `@daily`".to_string(),
            },
            ScheduleError::NeverFires { .. } => "check that the day exists in the chosen months \
                (February has 28 or 29 days; April, June, September and November have 30)"
                .to_string(),
            ScheduleError::UnknownZone { suggestion: Some(suggestion), .. } => format!("did you mean `{suggestion}`?"),
            ScheduleError::UnknownZone { suggestion: None, .. } => {
                "use an IANA time zone name such as `Europe/Berlin`, `Asia/Shanghai` or `UTC`".to_string()
            }
        }
    }
}

impl Schedule {
    /// Parses a cron pattern in an IANA time zone (UTC when `zone` is `None`).
    pub fn parse(pattern: &str, zone: Option<&str>) -> Result<Schedule, ScheduleError> {
        let pattern = pattern.trim();
        let CronPattern { cron, interval } = parse_pattern(pattern)?;
        Ok(Schedule { pattern: pattern.to_string(), zone: parse_zone(zone)?, cron: Box::new(cron), interval })
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The time zone the pattern's wall-clock times are in.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// A short human description, e.g. "At 18:00, on the last day of the month (Asia/Shanghai)".
    pub fn describe(&self) -> String {
        let description = self.cron.describe();
        format!("{} ({})", description.trim_end_matches('.'), self.zone.name())
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Schedule) -> bool {
        self.pattern == other.pattern && self.zone == other.zone
    }
}

impl Eq for Schedule {}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\" in {}", self.pattern, self.zone.name())
    }
}

/// The serialised form: `{"cron": "<pattern>", "tz": "<zone>"}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Repr {
    cron: String,
    #[serde(default)]
    tz: Option<String>,
}

impl TryFrom<Repr> for Schedule {
    type Error = ScheduleError;

    fn try_from(repr: Repr) -> Result<Schedule, ScheduleError> {
        Schedule::parse(&repr.cron, repr.tz.as_deref())
    }
}

impl From<Schedule> for Repr {
    fn from(schedule: Schedule) -> Repr {
        Repr { tz: Some(schedule.zone.name().to_string()), cron: schedule.pattern }
    }
}
