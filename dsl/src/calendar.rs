//! Business calendars: working days, working hours and holidays in a time zone, and the
//! arithmetic of business days and business hours on them.
//!
//! A [`Calendar`] is declared in a `.flow` file (`calendar cn "China (mainland)" { ... }`),
//! named by a process (`calendar cn`) and compiled into that process, so that the engine's pure
//! core computes due times from the definition alone: no file, clock or network at run time.
//!
//! ```
//! # use cloverleaf_dsl::calendar::Calendar;
//! # use chrono::{NaiveDate, TimeZone, Utc};
//! let cal = Calendar::new("berlin", chrono_tz::Europe::Berlin)
//!     .with_hours(&[(9 * 60, 17 * 60)])
//!     .unwrap();
//! // Friday 16:00 in Berlin (15:00 UTC) + 1 business day = Monday 16:00.
//! let friday = Utc.with_ymd_and_hms(2026, 1, 9, 15, 0, 0).unwrap();
//! assert_eq!(cal.add_days(friday, 1).unwrap().to_rfc3339(), "2026-01-12T15:00:00+00:00");
//! ```
//!
//! # Meaning
//!
//! A day is a *working day* when it is listed as a `workday` (a make-up working day, such as a
//! Saturday worked before a Chinese holiday week), or when its weekday is in the `week` and it
//! is not a `holiday`. Every working day has the calendar's working `hours` (the whole day when
//! none are given), as wall-clock times in its zone.
//!
//! - *date ± N business days* is the N-th working day after (before) the date; the date itself
//!   need not be a working day. N = 0 leaves the date as it is.
//! - *instant + N business days*: the instant is first moved to the next working instant (kept
//!   when it is inside working hours, else the start of the next working period), then to the
//!   same wall-clock time N working days later. So Friday 16:00 + 3 business days is 16:00 on the
//!   third working day after that Friday, and a task that opens on a Sunday counts from Monday's
//!   first hour. *instant − N business days* mirrors it (an instant outside working hours moves
//!   back to the end of the previous working period).
//! - *instant ± N business hours* counts N hours of working time forward (backward) from the
//!   instant; a count that ends exactly at the end of a period ends there, not at the next start.
//! - A date used with business hours stands for its midnight in the calendar's zone.
//!
//! Daylight saving: wall-clock times are mapped to instants in the calendar's zone. A time that
//! a spring-forward gap skips becomes the first instant after the gap; a time that a fall-back
//! repeats is taken the first time. Business hours are real elapsed working time, so a working
//! period that contains a transition is an hour shorter or longer that day.
//!
//! Holidays are data: a calendar knows the years its file lists. Beyond them every week is a
//! plain week of its `week` days.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// The weekday names a `week` clause takes, Monday first (the order of chrono's weekdays).
pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Minutes in a day: the end of a working period that runs to midnight (`24:00`).
pub const DAY_MINUTES: u32 = 24 * 60;

/// How long before a new year a calendar that lists holidays should list that year's: a count
/// started in the last quarter (an escalation after 30 business days, say) reaches into it.
pub const LISTED_AHEAD_DAYS: i64 = 92;

/// Most business days or hours one literal may count (`10000 business days` is about 40 years).
pub const MAX_COUNT: u32 = 10_000;

/// The most days one computation walks: two centuries, enough for [`MAX_COUNT`] business days
/// on a calendar that works one day a week.
pub const MAX_WALK_DAYS: u64 = 366 * 200;

/// A business calendar: see the module documentation for what it means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Repr", into = "Repr")]
pub struct Calendar {
    name: String,
    zone: Tz,
    /// Working weekdays, Monday first.
    week: [bool; 7],
    /// Working periods of a working day, in minutes from midnight: sorted, disjoint, non-empty.
    hours: Vec<(u32, u32)>,
    holidays: BTreeSet<NaiveDate>,
    workdays: BTreeSet<NaiveDate>,
}

/// Why a calendar is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No weekday is a working day: business time would never pass.
    #[error("calendar `{0}` has no working weekday")]
    NoWorkingDays(String),
    /// A working period that is empty, reversed or past midnight.
    #[error("working hours {0} are not a period within one day")]
    BadPeriod(String),
    /// Two working periods overlap.
    #[error("working hours {0} and {1} overlap")]
    Overlap(String, String),
    /// A date that is both a holiday and a working day.
    #[error("{0} is both a holiday and a working day")]
    Conflict(NaiveDate),
    /// A malformed part of the serialised form.
    #[error("{0}")]
    Invalid(String),
}

impl Calendar {
    /// A calendar of Monday to Friday, working the whole day, with no holidays.
    pub fn new(name: impl Into<String>, zone: Tz) -> Calendar {
        Calendar {
            name: name.into(),
            zone,
            week: [true, true, true, true, true, false, false],
            hours: vec![(0, DAY_MINUTES)],
            holidays: BTreeSet::new(),
            workdays: BTreeSet::new(),
        }
    }

    /// With these working weekdays (Monday first).
    pub fn with_week(mut self, week: [bool; 7]) -> Result<Calendar, Error> {
        if !week.contains(&true) {
            return Err(Error::NoWorkingDays(self.name));
        }
        self.week = week;
        Ok(self)
    }

    /// With these working periods, in minutes from midnight (`(540, 720)` is 09:00-12:00).
    pub fn with_hours(mut self, periods: &[(u32, u32)]) -> Result<Calendar, Error> {
        let mut sorted = periods.to_vec();
        sorted.sort_unstable();
        if let Some(&(start, end)) = sorted.iter().find(|(start, end)| start >= end || *end > DAY_MINUTES) {
            return Err(Error::BadPeriod(period_text(start, end)));
        }
        if let Some(pair) = sorted.windows(2).find(|pair| pair[1].0 < pair[0].1) {
            return Err(Error::Overlap(period_text(pair[0].0, pair[0].1), period_text(pair[1].0, pair[1].1)));
        }
        self.hours = if sorted.is_empty() { vec![(0, DAY_MINUTES)] } else { sorted };
        Ok(self)
    }

    /// With these holidays and make-up working days.
    pub fn with_days(
        mut self,
        holidays: impl IntoIterator<Item = NaiveDate>,
        workdays: impl IntoIterator<Item = NaiveDate>,
    ) -> Result<Calendar, Error> {
        let holidays: BTreeSet<NaiveDate> = holidays.into_iter().collect();
        let workdays: BTreeSet<NaiveDate> = workdays.into_iter().collect();
        if let Some(day) = holidays.intersection(&workdays).next() {
            return Err(Error::Conflict(*day));
        }
        self.holidays = holidays;
        self.workdays = workdays;
        Ok(self)
    }

    /// The calendar's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The zone its wall-clock times are in.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The years it lists a holiday or a make-up working day in.
    pub fn listed_years(&self) -> BTreeSet<i32> {
        self.holidays.iter().chain(&self.workdays).map(Datelike::year).collect()
    }

    /// The years a count from `today` (a day on its clock) may soon reach that it lists no holiday
    /// or make-up working day in, when it lists some: the current year, and the next one from
    /// [`LISTED_AHEAD_DAYS`] before it begins. Such a year counts as plain weeks, so a Spring
    /// Festival it does not list is worked through. A calendar that lists no year at all (plain
    /// weeks by design) misses none.
    pub fn unlisted_years(&self, today: NaiveDate) -> Vec<i32> {
        let listed = self.listed_years();
        if listed.is_empty() {
            return Vec::new();
        }
        let year = today.year();
        let next_begins = NaiveDate::from_ymd_opt(year + 1, 1, 1);
        let soon = next_begins.is_some_and(|next| (next - today).num_days() <= LISTED_AHEAD_DAYS);
        let wanted = if soon { vec![year, year + 1] } else { vec![year] };
        wanted.into_iter().filter(|y| !listed.contains(y)).collect()
    }

    /// [`Calendar::unlisted_years`] at the instant `now`, taken as a day on the calendar's clock.
    pub fn unlisted_years_at(&self, now: DateTime<Utc>) -> Vec<i32> {
        self.unlisted_years(now.with_timezone(&self.zone).date_naive())
    }

    /// True when `day` is a working day.
    pub fn is_working_day(&self, day: NaiveDate) -> bool {
        self.workdays.contains(&day)
            || (self.week[day.weekday().num_days_from_monday() as usize] && !self.holidays.contains(&day))
    }

    /// The `n`-th working day after `day` (before it when `n` is negative); `day` for 0.
    pub fn add_days_to_date(&self, day: NaiveDate, n: i64) -> Option<NaiveDate> {
        let step = if n < 0 { -1 } else { 1 };
        let mut left = n.unsigned_abs();
        let mut budget = self.day_budget(left);
        let mut day = day;
        while left > 0 {
            day = day.checked_add_signed(TimeDelta::days(step))?;
            if self.is_working_day(day) {
                left -= 1;
            }
            budget = budget.checked_sub(1)?;
        }
        Some(day)
    }

    /// `at` moved by `n` business days (see the module documentation).
    pub fn add_days(&self, at: DateTime<Utc>, n: i64) -> Option<DateTime<Utc>> {
        let from = if n < 0 { self.previous_working_instant(at)? } else { self.next_working_instant(at)? };
        let wall = from.with_timezone(&self.zone).naive_local();
        let day = self.add_days_to_date(wall.date(), n)?;
        self.instant(day.and_time(wall.time()))
    }

    /// `at` moved by `seconds` of working time (backward when negative).
    pub fn add_working_time(&self, at: DateTime<Utc>, seconds: i64) -> Option<DateTime<Utc>> {
        let mut left = TimeDelta::try_seconds(seconds.checked_abs()?)?;
        let forward = seconds >= 0;
        let mut day = at.with_timezone(&self.zone).date_naive();
        // Enough days for the time asked for at one minute of work a week, plus every holiday.
        let mut budget = self.day_budget(seconds.unsigned_abs() / 60 + 1);
        loop {
            if self.is_working_day(day) {
                let mut periods = self.periods(day);
                if !forward {
                    periods.reverse();
                }
                for (start, end) in periods {
                    let (from, available) = if forward {
                        if end <= at {
                            continue;
                        }
                        let from = start.max(at);
                        (from, end - from)
                    } else {
                        if start >= at {
                            continue;
                        }
                        let to = end.min(at);
                        (to, to - start)
                    };
                    if left <= available {
                        return if forward { from.checked_add_signed(left) } else { from.checked_sub_signed(left) };
                    }
                    left -= available;
                }
            }
            day = day.checked_add_signed(TimeDelta::days(if forward { 1 } else { -1 }))?;
            budget = budget.checked_sub(1)?;
        }
    }

    /// The first working instant at or after `at`.
    pub fn next_working_instant(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut day = at.with_timezone(&self.zone).date_naive();
        let mut budget = self.day_budget(1);
        loop {
            if self.is_working_day(day)
                && let Some((start, _)) = self.periods(day).into_iter().find(|(_, end)| at < *end)
            {
                return Some(start.max(at));
            }
            day = day.succ_opt()?;
            budget = budget.checked_sub(1)?;
        }
    }

    /// The last working instant at or before `at` (the end of a period counts as working).
    pub fn previous_working_instant(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut day = at.with_timezone(&self.zone).date_naive();
        let mut budget = self.day_budget(1);
        loop {
            if self.is_working_day(day)
                && let Some((_, end)) = self.periods(day).into_iter().rev().find(|(start, _)| *start < at)
            {
                return Some(end.min(at));
            }
            day = day.pred_opt()?;
            budget = budget.checked_sub(1)?;
        }
    }

    /// Midnight of `day` in the calendar's zone (or the first instant of the day after a gap).
    pub fn start_of(&self, day: NaiveDate) -> Option<DateTime<Utc>> {
        self.instant(day.and_time(NaiveTime::MIN))
    }

    /// The working periods of `day` as instants, in order; periods a gap swallows are left out.
    fn periods(&self, day: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        self.hours
            .iter()
            .filter_map(|&(start, end)| {
                let start = self.instant(wall(day, start)?)?;
                let end = self.instant(wall(day, end)?)?;
                (start < end).then_some((start, end))
            })
            .collect()
    }

    /// The instant of a wall-clock time: the first of two in a fall-back, the end of a gap.
    fn instant(&self, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.zone.from_local_datetime(&wall) {
            LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => Some(at.to_utc()),
            LocalResult::None => {
                // Gaps are whole minutes and last at most a day: the first wall-clock minute
                // that exists again is where the gap ends.
                (1..=DAY_MINUTES).find_map(|m| {
                    let later = wall.checked_add_signed(TimeDelta::minutes(i64::from(m)))?;
                    let later = later.with_second(0)?;
                    match self.zone.from_local_datetime(&later) {
                        LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => Some(at.to_utc()),
                        LocalResult::None => None,
                    }
                })
            }
        }
    }

    /// How many days a walk over the calendar may take to count `n` working days (or minutes of
    /// work): a week per unit, and a week per holiday, which bounds every walk since at least one
    /// weekday works.
    /// Capped at [`MAX_WALK_DAYS`], so that an absurd calendar (one minute of work a week)
    /// gives up with an error instead of walking for millennia.
    fn day_budget(&self, n: u64) -> u64 {
        let holidays = u64::try_from(self.holidays.len()).unwrap_or(u64::MAX);
        n.saturating_add(holidays).saturating_add(2).saturating_mul(7).min(MAX_WALK_DAYS)
    }
}

/// The wall-clock time `minutes` after the midnight that starts `day` (`24:00` is the next midnight).
fn wall(day: NaiveDate, minutes: u32) -> Option<NaiveDateTime> {
    day.and_time(NaiveTime::MIN).checked_add_signed(TimeDelta::minutes(i64::from(minutes)))
}

/// `09:00-12:00`
fn period_text(start: u32, end: u32) -> String {
    format!("{}-{}", clock_text(start), clock_text(end))
}

/// `09:00`
pub fn clock_text(minutes: u32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// `09:00` (or `24:00`) as minutes from midnight.
pub fn parse_clock(text: &str) -> Option<u32> {
    let (h, m) = text.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    let minutes = h * 60 + m;
    (m < 60 && minutes <= DAY_MINUTES).then_some(minutes)
}

impl fmt::Display for Calendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.zone.name())
    }
}

/// The serialised form: every holiday and make-up day listed, so the JSON reads as the file does.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Repr {
    name: String,
    zone: String,
    week: Vec<String>,
    hours: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    holidays: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    workdays: Vec<String>,
}

impl TryFrom<Repr> for Calendar {
    type Error = Error;

    fn try_from(repr: Repr) -> Result<Calendar, Error> {
        let zone: Tz = repr.zone.parse().map_err(|_| Error::Invalid(format!("unknown time zone `{}`", repr.zone)))?;
        let mut week = [false; 7];
        for day in &repr.week {
            let i = WEEKDAYS
                .iter()
                .position(|d| d == day)
                .ok_or_else(|| Error::Invalid(format!("unknown weekday `{day}`")))?;
            week[i] = true;
        }
        let mut hours = Vec::new();
        for period in &repr.hours {
            let bad = || Error::Invalid(format!("working hours `{period}` are not `HH:MM-HH:MM`"));
            let (start, end) = period.split_once('-').ok_or_else(bad)?;
            hours.push((parse_clock(start).ok_or_else(bad)?, parse_clock(end).ok_or_else(bad)?));
        }
        let dates = |list: &[String]| -> Result<Vec<NaiveDate>, Error> {
            list.iter()
                .map(|d| {
                    NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| Error::Invalid(format!("invalid date `{d}`")))
                })
                .collect()
        };
        Calendar::new(repr.name, zone)
            .with_week(week)?
            .with_hours(&hours)?
            .with_days(dates(&repr.holidays)?, dates(&repr.workdays)?)
    }
}

impl From<Calendar> for Repr {
    fn from(cal: Calendar) -> Repr {
        let day = |d: &NaiveDate| d.format("%Y-%m-%d").to_string();
        Repr {
            name: cal.name,
            zone: cal.zone.name().to_string(),
            week: WEEKDAYS.iter().zip(cal.week).filter(|(_, on)| *on).map(|(d, _)| d.to_string()).collect(),
            hours: cal.hours.iter().map(|&(s, e)| period_text(s, e)).collect(),
            holidays: cal.holidays.iter().map(day).collect(),
            workdays: cal.workdays.iter().map(day).collect(),
        }
    }
}

#[cfg(test)]
mod tests;
