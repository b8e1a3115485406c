//! When a schedule fires: wall-clock matches mapped to instants across daylight-saving gaps
//! and overlaps (see the parent module for the rules), and catch-up after downtime.

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use super::{MISSED_COUNT_LIMIT, Missed, Schedule};

impl Schedule {
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
    /// The instants at which the wall-clock time `wall` fires, earliest first (see the module doc).
    pub(super) fn instants(&self, wall: NaiveDateTime) -> [Option<DateTime<Utc>>; 2] {
        match self.zone.from_local_datetime(&wall) {
            LocalResult::Single(at) => [Some(at.to_utc()), None],
            LocalResult::Ambiguous(first, second) if self.interval => [Some(first.to_utc()), Some(second.to_utc())],
            LocalResult::Ambiguous(first, _) => [Some(first.to_utc()), None],
            LocalResult::None if self.interval => [None, None],
            LocalResult::None => [self.gap_end(wall), None],
        }
    }

    /// The first fire strictly after `after`.
    pub(super) fn next_instant(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
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
    pub(super) fn last_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
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
    pub(super) fn wall(&self, at: DateTime<Utc>) -> NaiveDateTime {
        at.with_timezone(&self.zone).naive_local()
    }

    /// The zone's offset from UTC at `at`, in seconds.
    fn offset(&self, at: DateTime<Utc>) -> i64 {
        i64::from(self.zone.offset_from_utc_datetime(&at.naive_utc()).fix().local_minus_utc())
    }
}

/// How far either side of an instant we look for an offset change; we assume one a day at most.
const WINDOW: TimeDelta = TimeDelta::hours(26);
