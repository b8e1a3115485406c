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

use std::fmt;

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Serialize};

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
            ScheduleError::Pattern { field, .. } => match field.map(field_spec) {
                Some(spec) => spec.help.to_string(),
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
        Ok(Schedule {
            pattern: pattern.to_string(),
            zone: parse_zone(zone)?,
            cron: Box::new(cron),
            interval: fields[..3].iter().any(|field| field.starts_with('*')),
        })
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The time zone the pattern's wall-clock times are in.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The first fire strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Tz>> {
        self.next_instant(after).map(|instant| instant.with_timezone(&self.zone))
    }

    /// The next `n` fires strictly after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Tz>> {
        let mut fires = Vec::with_capacity(n.min(1024));
        let mut cursor = after;
        while fires.len() < n {
            let Some(next) = self.next_instant(cursor) else {
                break;
            };
            fires.push(next.with_timezone(&self.zone));
            cursor = next;
        }
        fires
    }

    /// Catch-up: the fires missed between `last_fire` (exclusive) and `now` (inclusive).
    ///
    /// Policy "coalesce": run once for `latest` and record `count`. Counts one by one up to
    /// [`MISSED_COUNT_LIMIT`], then stops and sets `capped`; `latest` is exact either way.
    pub fn missed(&self, last_fire: DateTime<Utc>, now: DateTime<Utc>) -> Missed {
        let mut missed = Missed { count: 0, capped: false, latest: None };
        let mut cursor = last_fire;
        while let Some(next) = self.next_instant(cursor).filter(|next| *next <= now) {
            if missed.count == MISSED_COUNT_LIMIT {
                missed.capped = true;
                missed.latest = self.last_at_or_before(now);
                break;
            }
            missed.count += 1;
            missed.latest = Some(next);
            cursor = next;
        }
        missed
    }

    /// A short human description, e.g. "At 18:00, on the last day of the month (Asia/Shanghai)".
    pub fn describe(&self) -> String {
        let description = self.cron.describe();
        format!("{} ({})", description.trim_end_matches('.'), self.zone.name())
    }

    /// The instants at which the wall-clock time `wall` fires, earliest first (see the module doc).
    fn instants(&self, wall: NaiveDateTime) -> [Option<DateTime<Utc>>; 2] {
        match self.zone.from_local_datetime(&wall) {
            LocalResult::Single(at) => [Some(at.to_utc()), None],
            LocalResult::Ambiguous(first, second) if self.interval => [Some(first.to_utc()), Some(second.to_utc())],
            LocalResult::Ambiguous(first, _) => [Some(first.to_utc()), None],
            LocalResult::None if self.interval => [None, None],
            LocalResult::None => [self.gap_end(wall), None],
        }
    }

    /// The first fire strictly after `after`.
    fn next_instant(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Walk the matching wall-clock times forward; the first one with an instant past `after`
        // holds the answer, unless a fall-back just ahead repeats wall-clock times already passed.
        let mut wall = self.wall(after);
        let mut next = None;
        while let Ok(found) = self.cron.find_next_occurrence(&wall, false) {
            wall = found;
            let fires = self.instants(wall);
            if let Some(fire) = fires.into_iter().flatten().find(|fire| *fire > after) {
                next = Some(fire);
                break;
            }
            if fires == [None, None] {
                // An interval schedule in a gap: skip to its end rather than second by second.
                if let Some(end) = self.gap_end(wall) {
                    wall = wall.max(self.wall(end) - TimeDelta::seconds(1));
                }
            }
        }
        match (next, self.repeated_ahead(after)) {
            (Some(next), Some(repeated)) => Some(next.min(repeated)),
            (next, repeated) => next.or(repeated),
        }
    }

    /// For an interval schedule, its first fire in the second pass of a fall-back that starts
    /// after `after`, within the repeated span: wall-clock times before `after`'s fire again.
    fn repeated_ahead(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let here = self.offset(after);
        let repeated = TimeDelta::seconds(here - self.offset(after + WINDOW));
        if !self.interval || repeated <= TimeDelta::zero() || self.offset(after + repeated) == here {
            return None;
        }
        let fall_back = self.first_instant(after, after + repeated, |at| self.offset(at) != here)?;
        let wall = self.cron.find_next_occurrence(&self.wall(fall_back), true).ok()?;
        match self.zone.from_local_datetime(&wall) {
            LocalResult::Ambiguous(_, second) => Some(second.to_utc()).filter(|fire| *fire > after),
            _ => None,
        }
    }

    /// The last fire at or before `at`.
    fn last_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut wall = self.wall(at);
        let mut inclusive = true;
        let mut last = None;
        while let Ok(found) = self.cron.find_previous_occurrence(&wall, inclusive) {
            wall = found;
            inclusive = false;
            let fires = self.instants(wall);
            if let Some(fire) = fires.into_iter().flatten().rev().find(|fire| *fire <= at) {
                last = Some(fire);
                break;
            }
            if fires == [None, None]
                && let Some(end) = self.gap_end(wall)
            {
                wall = wall.min(self.wall(end - TimeDelta::seconds(1)) + TimeDelta::seconds(1));
            }
        }
        match (last, self.passed_behind(at)) {
            (Some(last), Some(passed)) => Some(last.max(passed)),
            (last, passed) => last.or(passed),
        }
    }

    /// The last fire in the first pass of a fall-back that ended at or before `at`, within the
    /// repeated span: wall-clock times after `at`'s that already fired before the clock went back.
    fn passed_behind(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let here = self.offset(at);
        let repeated = TimeDelta::seconds(self.offset(at - WINDOW) - here);
        if repeated <= TimeDelta::zero() || self.offset(at - repeated) == here {
            return None;
        }
        let fall_back = self.first_instant(at - repeated, at, |instant| self.offset(instant) == here)?;
        let wall = self.cron.find_previous_occurrence(&(self.wall(fall_back) + repeated), false).ok()?;
        match self.zone.from_local_datetime(&wall) {
            LocalResult::Ambiguous(first, _) => Some(first.to_utc()).filter(|fire| *fire <= at),
            _ => None,
        }
    }

    /// The instant the clock jumps over `wall`, which lies in a spring-forward gap.
    fn gap_end(&self, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
        let around = wall.and_utc();
        self.first_instant(around - WINDOW, around + WINDOW, |at| self.wall(at) > wall)
    }

    /// The first whole second in `(low, high]` where `past` holds, by bisection: `past` must be
    /// false at `low`, true at `high` and switch once between them.
    fn first_instant(
        &self,
        low: DateTime<Utc>,
        high: DateTime<Utc>,
        past: impl Fn(DateTime<Utc>) -> bool,
    ) -> Option<DateTime<Utc>> {
        let instant = |seconds| DateTime::<Utc>::from_timestamp(seconds, 0);
        let past = |seconds| instant(seconds).is_some_and(&past);
        let (mut low, mut high) = (low.timestamp(), high.timestamp());
        if past(low) || !past(high) {
            return None;
        }
        while high - low > 1 {
            let middle = low + (high - low) / 2;
            if past(middle) {
                high = middle;
            } else {
                low = middle;
            }
        }
        instant(high)
    }

    /// The wall-clock time at `at` in the schedule's zone.
    fn wall(&self, at: DateTime<Utc>) -> NaiveDateTime {
        at.with_timezone(&self.zone).naive_local()
    }

    /// The zone's offset from UTC at `at`, in seconds.
    fn offset(&self, at: DateTime<Utc>) -> i64 {
        i64::from(self.zone.offset_from_utc_datetime(&at.naive_utc()).fix().local_minus_utc())
    }
}

/// How far either side of an instant we look for an offset change; we assume one a day at most.
const WINDOW: TimeDelta = TimeDelta::hours(26);

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

fn parse_zone(zone: Option<&str>) -> Result<Tz, ScheduleError> {
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

#[cfg(test)]
mod tests {
    use chrono::Datelike as _;

    use super::*;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339).expect("test time is valid RFC 3339").to_utc()
    }

    /// The next `n` fires of `pattern` in `zone` strictly after `from`, as RFC 3339 with offset.
    fn fires(pattern: &str, zone: &str, from: &str, n: usize) -> Vec<String> {
        Schedule::parse(pattern, Some(zone))
            .expect("test pattern parses")
            .upcoming(at(from), n)
            .iter()
            .map(DateTime::to_rfc3339)
            .collect()
    }

    fn error(pattern: &str, zone: Option<&str>) -> ScheduleError {
        Schedule::parse(pattern, zone).expect_err("test pattern is invalid")
    }

    #[test]
    fn month_end_close_fires_on_the_last_day_at_18_in_shanghai() {
        assert_eq!(
            fires("0 18 L * *", "Asia/Shanghai", "2026-01-15T00:00:00Z", 4),
            [
                "2026-01-31T18:00:00+08:00",
                "2026-02-28T18:00:00+08:00",
                "2026-03-31T18:00:00+08:00",
                "2026-04-30T18:00:00+08:00",
            ]
        );
    }

    #[test]
    fn month_end_close_finds_leap_february() {
        assert_eq!(
            fires("0 18 L * *", "Asia/Shanghai", "2028-01-31T10:00:00Z", 2),
            ["2028-02-29T18:00:00+08:00", "2028-03-31T18:00:00+08:00"]
        );
    }

    #[test]
    fn restricted_day_of_month_and_day_of_week_match_either() {
        // 1 January 2026 is a Thursday.
        assert_eq!(
            fires("0 9 1 * MON", "UTC", "2026-01-01T00:00:00Z", 4),
            [
                "2026-01-01T09:00:00+00:00",
                "2026-01-05T09:00:00+00:00",
                "2026-01-12T09:00:00+00:00",
                "2026-01-19T09:00:00+00:00",
            ]
        );
    }

    #[test]
    fn plus_prefix_requires_both_day_of_month_and_day_of_week() {
        assert_eq!(
            fires("0 9 1 * +MON", "UTC", "2026-01-01T00:00:00Z", 3),
            ["2026-06-01T09:00:00+00:00", "2027-02-01T09:00:00+00:00", "2027-03-01T09:00:00+00:00",]
        );
        // The 28-year weekday cycle: a leap day on a Monday is valid, though rare.
        assert_eq!(fires("0 0 29 2 +MON", "UTC", "2026-01-01T00:00:00Z", 1), ["2044-02-29T00:00:00+00:00"]);
    }

    #[test]
    fn zero_seven_and_sun_are_all_sunday() {
        let sundays = ["2026-01-04T00:00:00+00:00", "2026-01-11T00:00:00+00:00"];
        for pattern in ["0 0 * * 0", "0 0 * * 7", "0 0 * * SUN", "0 0 * * sun"] {
            assert_eq!(fires(pattern, "UTC", "2026-01-01T00:00:00Z", 2), sundays, "{pattern}");
        }
        // A range ending in SUN (7) reaches the end of the week.
        assert_eq!(
            fires("0 0 * * FRI-SUN", "UTC", "2026-01-01T00:00:00Z", 3),
            ["2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00", "2026-01-04T00:00:00+00:00",]
        );
    }

    #[test]
    fn w_picks_the_nearest_weekday_within_the_month() {
        // 15 Feb and 15 Mar 2026 are Sundays, 15 Aug a Saturday, 1 Aug a Saturday.
        assert_eq!(
            fires("0 0 15W * *", "UTC", "2026-01-01T00:00:00Z", 4),
            [
                "2026-01-15T00:00:00+00:00",
                "2026-02-16T00:00:00+00:00",
                "2026-03-16T00:00:00+00:00",
                "2026-04-15T00:00:00+00:00",
            ]
        );
        assert_eq!(
            fires("0 0 15W,1W 8 *", "UTC", "2026-01-01T00:00:00Z", 2),
            ["2026-08-03T00:00:00+00:00", "2026-08-14T00:00:00+00:00"]
        );
        assert_eq!(
            fires("0 0 LW * *", "UTC", "2026-01-01T00:00:00Z", 2),
            ["2026-01-30T00:00:00+00:00", "2026-02-27T00:00:00+00:00"]
        );
    }

    #[test]
    fn hash_picks_the_nth_weekday_and_l_the_last() {
        assert_eq!(
            fires("0 0 * * 5#2", "UTC", "2026-01-01T00:00:00Z", 3),
            ["2026-01-09T00:00:00+00:00", "2026-02-13T00:00:00+00:00", "2026-03-13T00:00:00+00:00",]
        );
        let last_fridays = ["2026-01-30T00:00:00+00:00", "2026-02-27T00:00:00+00:00", "2026-03-27T00:00:00+00:00"];
        for pattern in ["0 0 * * 5#L", "0 0 * * FRI#L", "0 0 * * 5L"] {
            assert_eq!(fires(pattern, "UTC", "2026-01-01T00:00:00Z", 3), last_fridays, "{pattern}");
        }
    }

    #[test]
    fn six_fields_put_seconds_first() {
        assert_eq!(
            fires("30 0 18 L * *", "Asia/Shanghai", "2026-01-15T00:00:00Z", 2),
            ["2026-01-31T18:00:30+08:00", "2026-02-28T18:00:30+08:00"]
        );
        assert_eq!(
            fires("*/20 * * * * *", "UTC", "2026-01-01T00:00:00Z", 3),
            ["2026-01-01T00:00:20+00:00", "2026-01-01T00:00:40+00:00", "2026-01-01T00:01:00+00:00",]
        );
    }

    #[test]
    fn zone_defaults_to_utc() {
        let schedule = Schedule::parse("0 18 L * *", None).expect("parses");
        assert_eq!(schedule.zone(), Tz::UTC);
        assert_eq!(
            schedule.next_after(at("2026-01-15T00:00:00Z")).map(|fire| fire.to_rfc3339()),
            Some("2026-01-31T18:00:00+00:00".to_string())
        );
    }

    #[test]
    fn nicknames_expand_and_keep_their_text() {
        assert_eq!(
            fires("@daily", "Europe/Berlin", "2026-01-01T00:00:00Z", 2),
            ["2026-01-02T00:00:00+01:00", "2026-01-03T00:00:00+01:00"]
        );
        assert_eq!(fires("@Monthly", "UTC", "2026-01-15T00:00:00Z", 1), ["2026-02-01T00:00:00+00:00"]);
        let schedule = Schedule::parse("@weekly", None).expect("parses");
        assert_eq!(schedule.pattern(), "@weekly");
    }

    #[test]
    fn next_after_is_strictly_after() {
        let schedule = Schedule::parse("0 18 L * *", Some("Asia/Shanghai")).expect("parses");
        let fire = at("2026-01-31T10:00:00Z");
        assert_eq!(
            schedule.next_after(fire).map(|next| next.to_rfc3339()),
            Some("2026-02-28T18:00:00+08:00".to_string())
        );
        assert_eq!(
            schedule.next_after(fire - TimeDelta::nanoseconds(1)).map(|next| next.to_rfc3339()),
            Some("2026-01-31T18:00:00+08:00".to_string())
        );
    }

    #[test]
    fn invalid_patterns_say_what_and_where() {
        let cases: [(&str, Option<&str>, &str); 17] = [
            ("61 * * * *", Some("minute"), "invalid minute field: 61 is out of range 0-59"),
            ("0 24 * * *", Some("hour"), "invalid hour field: 24 is out of range 0-23"),
            ("0 0 32 * *", Some("day of month"), "invalid day of month field: 32 is out of range 1-31"),
            ("0 0 0 * *", Some("day of month"), "invalid day of month field: 0 is out of range 1-31"),
            ("0 0 1 13 *", Some("month"), "invalid month field: 13 is out of range 1-12"),
            ("0 0 * * 8", Some("day of week"), "invalid day of week field: 8 is out of range 0-7"),
            ("60 0 0 * * *", Some("second"), "invalid second field: 60 is out of range 0-59"),
            ("hello world foo bar baz", Some("minute"), "invalid minute field: `hello` is not a number"),
            ("0 0 * FOO *", Some("month"), "invalid month field: `FOO` is not a month; use 1-12 or JAN-DEC"),
            (
                "0 0 * * monday",
                Some("day of week"),
                "invalid day of week field: `monday` is not a day of the week; use 0-7 or SUN-SAT",
            ),
            ("0 0 * MON *", Some("month"), "invalid month field: `MON` is not a month; use 1-12 or JAN-DEC"),
            ("*/0 * * * *", Some("minute"), "invalid minute field: step 0 in `*/0` never advances; use 1 or more"),
            (
                "0 22-2 * * *",
                Some("hour"),
                "invalid hour field: range 22-2 runs backwards; ranges do not wrap around, so write `22-23,0-2`",
            ),
            (
                "0 0 * * 5#6",
                Some("day of week"),
                "invalid day of week field: `#6` must be #1 to #5 or #L, as in `5#2` (second Friday) or `5#L`",
            ),
            (
                "0 0 * * L",
                Some("day of week"),
                "invalid day of week field: `L` alone is not a day of the week; write `5L` or `5#L` for the last Friday",
            ),
            (
                "5/10 * * * *",
                Some("minute"),
                "invalid minute field: invalid step syntax: single number steps like \"5/10\" are not allowed. Use \"*/10\" for wildcard steps or \"X-Y/10\" for range steps",
            ),
            (
                "@fortnightly",
                None,
                "invalid cron pattern: unknown nickname `@fortnightly`; known nicknames are @yearly, @annually, @monthly, @weekly, @daily, @midnight and @hourly",
            ),
        ];
        for (pattern, field, message) in cases {
            let error = error(pattern, None);
            assert_eq!(error.to_string(), message, "{pattern}");
            match &error {
                ScheduleError::Pattern { field: found, .. } => assert_eq!(*found, field, "{pattern}"),
                other => panic!("{pattern}: expected a pattern error, got {other:?}"),
            }
        }
    }

    #[test]
    fn wrong_field_counts_are_refused() {
        for (pattern, found) in [("0 0 * *", 4), ("", 0), ("0 0 0 1 1 * 2026", 7), ("1 2 3", 3)] {
            let error = error(pattern, None);
            assert_eq!(error, ScheduleError::FieldCount { found });
            assert_eq!(
                error.to_string(),
                format!(
                    "expected 5 fields (minute hour day-of-month month day-of-week), \
                     or 6 with seconds first; found {found}"
                )
            );
        }
        assert!(error("0 0 * *", None).help().contains("`0 18 L * *`"));
    }

    #[test]
    fn unknown_zones_suggest_the_closest_name() {
        let cases = [
            ("Asia/Shangai", Some("Asia/Shanghai")),
            ("europe/berlin", Some("Europe/Berlin")),
            ("Shanghai", Some("Asia/Shanghai")),
            ("Mars/Olympus_Mons", None),
        ];
        for (zone, suggestion) in cases {
            let error = error("0 18 L * *", Some(zone));
            assert_eq!(error.to_string(), format!("unknown time zone `{zone}`"));
            assert_eq!(
                error,
                ScheduleError::UnknownZone { zone: zone.to_string(), suggestion: suggestion.map(str::to_string) }
            );
        }
        assert_eq!(error("0 18 L * *", Some("Asia/Shangai")).help(), "did you mean `Asia/Shanghai`?");
    }

    #[test]
    fn patterns_that_never_fire_are_refused() {
        for pattern in ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6,9,11 *", "0 0 30 2 +MON"] {
            let error = error(pattern, None);
            assert_eq!(
                error.to_string(),
                format!(
                    "`{pattern}` never fires: no date matches its day-of-month, month and \
                     day-of-week fields"
                )
            );
            assert!(error.help().contains("February"));
        }
        // OR-ed with a day of week, Feb 30 still fires on Mondays in February.
        assert!(Schedule::parse("0 0 30 2 MON", None).is_ok());
    }

    #[test]
    fn fixed_time_in_spring_gap_fires_once_after_the_gap() {
        // Berlin springs from 02:00 CET to 03:00 CEST on 29 March 2026.
        assert_eq!(
            fires("30 2 * * *", "Europe/Berlin", "2026-03-27T12:00:00Z", 3),
            ["2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00",]
        );
        // Several skipped times coalesce into the one fire at 03:00; 03:00 itself too.
        assert_eq!(
            fires("0,30 2,3 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 3),
            ["2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00", "2026-03-30T02:00:00+02:00",]
        );
    }

    #[test]
    fn fixed_time_in_fall_overlap_fires_once_at_the_first() {
        // Berlin falls back from 03:00 CEST to 02:00 CET on 25 October 2026.
        assert_eq!(
            fires("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
        );
        // Asking from inside the overlap's second half does not fire 02:30 again.
        assert_eq!(fires("30 2 * * *", "Europe/Berlin", "2026-10-25T01:10:00Z", 1), ["2026-10-26T02:30:00+01:00"]);
        // New York's repeated hour is 01:00-02:00 on 1 November 2026.
        assert_eq!(
            fires("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", 2),
            ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]
        );
    }

    #[test]
    fn lists_of_fixed_times_fire_once_on_transition_days() {
        // croner alone treats `2,14` as an interval job: it skips 02:30 on 29 March and fires
        // it twice on 25 October. We fire it once on both days.
        assert_eq!(
            fires("30 2,14 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 3),
            ["2026-03-28T14:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T14:30:00+02:00",]
        );
        assert_eq!(
            fires("30 2,14 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 3),
            ["2026-10-24T14:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-25T14:30:00+01:00",]
        );
    }

    #[test]
    fn interval_skips_the_gap_and_repeats_the_overlap() {
        assert_eq!(
            fires("*/30 * * * *", "Europe/Berlin", "2026-03-29T00:00:00Z", 3),
            ["2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00",]
        );
        assert_eq!(
            fires("*/30 * * * *", "Europe/Berlin", "2026-10-24T23:50:00Z", 5),
            [
                "2026-10-25T02:00:00+02:00",
                "2026-10-25T02:30:00+02:00",
                "2026-10-25T02:00:00+01:00",
                "2026-10-25T02:30:00+01:00",
                "2026-10-25T03:00:00+01:00",
            ]
        );
        // Starting inside the overlap's first half still sees its second half.
        assert_eq!(
            fires("0 * * * *", "Europe/Berlin", "2026-10-25T00:40:00Z", 2),
            ["2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"]
        );
    }

    #[test]
    fn half_hour_and_whole_day_shifts_follow_the_same_policy() {
        // Lord Howe springs from 02:00 to 02:30 on 4 October 2026.
        assert_eq!(
            fires("15 2 * * *", "Australia/Lord_Howe", "2026-10-02T12:00:00Z", 3),
            ["2026-10-03T02:15:00+10:30", "2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00",]
        );
        // Samoa skipped 30 December 2011: a daily noon job fires once, as the day resumes.
        assert_eq!(
            fires("0 12 * * *", "Pacific/Apia", "2011-12-29T00:00:00Z", 3),
            ["2011-12-29T12:00:00-10:00", "2011-12-31T00:00:00+14:00", "2011-12-31T12:00:00+14:00",]
        );
    }

    #[test]
    fn upcoming_is_strictly_increasing_and_fixed_times_fire_once_a_day() {
        let zones = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago"];
        let patterns =
            ["30 2 * * *", "0 1 * * *", "0,30 2,3 * * *", "*/30 * * * *", "0 18 L * *", "0 9 1 * MON", "15 */2 * * *"];
        let start = at("2026-01-01T00:00:00Z");
        let end = at("2027-01-01T00:00:00Z");
        for zone in zones {
            for pattern in patterns {
                let schedule = Schedule::parse(pattern, Some(zone)).expect("parses");
                let year: Vec<DateTime<Tz>> =
                    std::iter::successors(schedule.next_after(start), |fire| schedule.next_after(fire.to_utc()))
                        .take_while(|fire| fire.to_utc() < end)
                        .collect();
                assert!(!year.is_empty(), "{pattern} in {zone}");
                for pair in year.windows(2) {
                    assert!(pair[0] < pair[1], "{pattern} in {zone}: {pair:?}");
                }
                // Cross-check `missed` against `upcoming` over the same year.
                let missed = schedule.missed(start, end - TimeDelta::seconds(1));
                let count = year.len() as u64;
                assert_eq!(missed.count, count.min(MISSED_COUNT_LIMIT), "{pattern} in {zone}");
                assert_eq!(missed.capped, count > MISSED_COUNT_LIMIT, "{pattern} in {zone}");
                assert_eq!(missed.latest, year.last().map(DateTime::to_utc));
            }
            // Every local day of the year has exactly one fire of a daily fixed-time job.
            for pattern in ["30 2 * * *", "0 1 * * *", "0 0 * * *"] {
                let schedule = Schedule::parse(pattern, Some(zone)).expect("parses");
                let from = at("2026-01-01T00:00:00Z").with_timezone(&schedule.zone());
                let days: Vec<NaiveDate> = schedule
                    .upcoming(from.to_utc() - TimeDelta::days(1), 400)
                    .iter()
                    .map(|fire| fire.date_naive())
                    .skip_while(|day| day.year() < 2026)
                    .take_while(|day| day.year() < 2027)
                    .collect();
                assert_eq!(days.len(), 365, "{pattern} in {zone}");
                for pair in days.windows(2) {
                    assert_eq!(pair[1] - pair[0], TimeDelta::days(1), "{pattern} in {zone}");
                }
            }
        }
    }

    #[test]
    fn walks_agree_with_brute_force_around_every_transition() {
        // The oracle maps every matching wall-clock minute of four days around a transition to
        // its instants; `next_instant` and `last_at_or_before` must find the same neighbours.
        let zones = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago"];
        let patterns = ["*/30 * * * *", "30 2 * * *", "0,30 0-3 * * *", "15 */2 * * *", "0 0 * * *"];
        for zone in zones {
            let tz: Tz = zone.parse().expect("known zone");
            let offset = |at: DateTime<Utc>| tz.offset_from_utc_datetime(&at.naive_utc()).fix();
            let transitions: Vec<DateTime<Utc>> = (0..365 * 24)
                .map(|hour| at("2026-01-01T00:00:00Z") + TimeDelta::hours(hour))
                .filter(|hour| offset(*hour) != offset(*hour + TimeDelta::hours(1)))
                .collect();
            assert_eq!(transitions.len(), 2, "{zone}");
            for pattern in patterns {
                let schedule = Schedule::parse(pattern, Some(zone)).expect("parses");
                for transition in &transitions {
                    let start = schedule.wall(*transition - TimeDelta::days(2));
                    let oracle: std::collections::BTreeSet<DateTime<Utc>> = (0..4 * 24 * 60)
                        .map(|minute| start + TimeDelta::minutes(minute))
                        .filter(|wall| schedule.cron.is_time_matching(wall).expect("matches"))
                        .flat_map(|wall| schedule.instants(wall).into_iter().flatten())
                        .collect();
                    for step in 0..2 * 24 * 6 {
                        let probe = *transition - TimeDelta::days(1) + TimeDelta::minutes(10 * step);
                        assert_eq!(
                            schedule.next_instant(probe),
                            oracle.range(probe + TimeDelta::seconds(1)..).next().copied(),
                            "next after {probe}: {pattern} in {zone}"
                        );
                        assert_eq!(
                            schedule.last_at_or_before(probe),
                            oracle.range(..=probe).next_back().copied(),
                            "last at {probe}: {pattern} in {zone}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn missed_coalesces_a_quarter_of_month_end_closes() {
        let schedule = Schedule::parse("0 18 L * *", Some("Asia/Shanghai")).expect("parses");
        let missed = schedule.missed(at("2026-01-31T10:00:00Z"), at("2026-05-15T00:00:00Z"));
        assert_eq!(missed, Missed { count: 3, capped: false, latest: Some(at("2026-04-30T10:00:00Z")) });
        // `now` is inclusive, `last_fire` exclusive.
        let on_time = schedule.missed(at("2026-01-31T10:00:00Z"), at("2026-02-28T10:00:00Z"));
        assert_eq!((on_time.count, on_time.latest), (1, Some(at("2026-02-28T10:00:00Z"))));
        let nothing = schedule.missed(at("2026-01-31T10:00:00Z"), at("2026-02-28T09:59:59Z"));
        assert_eq!(nothing, Missed { count: 0, capped: false, latest: None });
    }

    #[test]
    fn missed_is_bounded_after_years_of_downtime() {
        let schedule = Schedule::parse("* * * * * *", Some("Europe/Berlin")).expect("parses");
        let missed = schedule.missed(at("2020-01-01T00:00:00Z"), at("2026-10-25T01:30:00.5Z"));
        assert_eq!(
            missed,
            Missed { count: MISSED_COUNT_LIMIT, capped: true, latest: Some(at("2026-10-25T01:30:00Z")) }
        );
        // An every-second schedule fires every real second through both transitions.
        for (from, to) in
            [("2026-03-29T00:30:00Z", "2026-03-29T01:30:00Z"), ("2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z")]
        {
            let missed = schedule.missed(at(from), at(to));
            assert_eq!((missed.count, missed.latest), (3600, Some(at(to))), "{from}");
        }
        let monthly = Schedule::parse("0 18 L * *", Some("Asia/Shanghai")).expect("parses");
        let missed = monthly.missed(at("2000-01-31T10:00:00Z"), at("2026-05-15T00:00:00Z"));
        assert_eq!((missed.count, missed.capped), (315, false));
        assert_eq!(missed.latest, Some(at("2026-04-30T10:00:00Z")));
    }

    #[test]
    fn serde_round_trips_as_cron_and_tz() {
        let schedule = Schedule::parse("0 18 L * *", Some("Asia/Shanghai")).expect("parses");
        let json = serde_json::to_string(&schedule).expect("serialises");
        assert_eq!(json, r#"{"cron":"0 18 L * *","tz":"Asia/Shanghai"}"#);
        let back: Schedule = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(back, schedule);

        let utc: Schedule = serde_json::from_str(r#"{"cron":"@daily"}"#).expect("deserialises");
        assert_eq!(utc, Schedule::parse("@daily", Some("UTC")).expect("parses"));

        let bad =
            serde_json::from_str::<Schedule>(r#"{"cron":"0 18 L * *","tz":"Asia/Shangai"}"#).expect_err("unknown zone");
        assert!(bad.to_string().starts_with("unknown time zone `Asia/Shangai`"), "{bad}");
        let bad = serde_json::from_str::<Schedule>(r#"{"cron":"61 * * * *"}"#).expect_err("bad");
        assert!(bad.to_string().starts_with("invalid minute field: 61"), "{bad}");
    }

    #[test]
    fn display_equality_and_description() {
        let schedule = Schedule::parse(" 0 18 L * * ", Some("Asia/Shanghai")).expect("parses");
        assert_eq!(schedule.to_string(), r#""0 18 L * *" in Asia/Shanghai"#);
        assert_eq!(schedule.pattern(), "0 18 L * *");
        assert_eq!(schedule.describe(), "At 18:00, on the last day of the month (Asia/Shanghai)");
        assert_ne!(schedule, Schedule::parse("0 18 L * *", None).expect("parses"));
        assert_ne!(schedule, Schedule::parse("0 0 18 L * *", Some("Asia/Shanghai")).expect("parses"));
    }
}
