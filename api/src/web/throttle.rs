//! The brake on guessing passwords: per user name, a few attempts in a window, then a pause in
//! which attempts are refused without the password being checked.
//!
//! Every name is counted, whether a user of that name exists or not, so that the brake itself
//! does not tell which names exist. An attempt counts when it begins (before the slow check), so
//! that attempts sent all at once cannot slip past the limit; a success forgets the name's count.
//! Time comes in with each call (the engine's clock), never from a clock in here.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};

/// The limits: `attempts` within `window` of the first, then refused for `pause`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Attempts without a success allowed in one window.
    pub attempts: u32,
    /// How long a window lasts, from its first attempt.
    pub window: TimeDelta,
    /// How long a name is refused once it used up its attempts.
    pub pause: TimeDelta,
}

impl Default for Limits {
    /// Five attempts in 15 minutes, then 15 minutes refused (the pages' `too_many_attempts` says so).
    fn default() -> Limits {
        Limits { attempts: 5, window: TimeDelta::minutes(15), pause: TimeDelta::minutes(15) }
    }
}

/// How many names are remembered at most; past it, finished entries go first, then the oldest.
const MAX_NAMES: usize = 10_000;

/// Attempts per user name.
#[derive(Debug, Default)]
pub struct Throttle {
    limits: Limits,
    names: Mutex<HashMap<String, Attempts>>,
}

/// One name's attempts in its current window.
#[derive(Debug, Clone, Copy)]
struct Attempts {
    since: DateTime<Utc>,
    count: u32,
    /// Set when the last allowed attempt began: refused until then.
    refused_until: Option<DateTime<Utc>>,
}

impl Attempts {
    /// True when this entry no longer holds anything back at `now`.
    fn finished(&self, limits: &Limits, now: DateTime<Utc>) -> bool {
        match self.refused_until {
            Some(until) => until <= now,
            None => self.since + limits.window <= now,
        }
    }
}

/// An attempt refused: the name used up its attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// When the name may try again.
    pub until: DateTime<Utc>,
}

impl Throttle {
    /// A throttle with these limits.
    pub fn new(limits: Limits) -> Throttle {
        Throttle { limits, names: Mutex::default() }
    }

    /// Counts an attempt for `name` beginning at `now`, or refuses it (the password is then not
    /// to be checked).
    pub fn attempt(&self, name: &str, now: DateTime<Utc>) -> Result<(), Refused> {
        let limits = self.limits;
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        if !names.contains_key(name) && names.len() >= MAX_NAMES {
            make_room(&mut names, &limits, now);
        }
        let entry = names.entry(name.to_string()).or_insert(Attempts { since: now, count: 0, refused_until: None });
        if entry.finished(&limits, now) {
            *entry = Attempts { since: now, count: 0, refused_until: None };
        }
        if let Some(until) = entry.refused_until {
            return Err(Refused { until });
        }
        entry.count += 1;
        if entry.count >= limits.attempts {
            entry.refused_until = Some(now + limits.pause);
        }
        Ok(())
    }

    /// Forgets `name`'s attempts: it signed in.
    pub fn succeeded(&self, name: &str) {
        self.names.lock().unwrap_or_else(PoisonError::into_inner).remove(name);
    }
}

/// Drops the entries that hold nothing back any more and, when that is not enough, the oldest
/// one still counting (a refused name goes last: to free it, a flood would have to use up the
/// attempts of every name it remembers).
fn make_room(names: &mut HashMap<String, Attempts>, limits: &Limits, now: DateTime<Utc>) {
    names.retain(|_, attempts| !attempts.finished(limits, now));
    if names.len() >= MAX_NAMES
        && let Some(oldest) =
            names.iter().min_by_key(|(_, a)| (a.refused_until.is_some(), a.since)).map(|(name, _)| name.clone())
    {
        names.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()
    }

    fn minutes(n: i64) -> TimeDelta {
        TimeDelta::minutes(n)
    }

    #[test]
    fn five_attempts_then_refused_for_the_pause_then_free_again() {
        let throttle = Throttle::default();
        for i in 0..5 {
            assert_eq!(throttle.attempt("mia", t0() + minutes(i)), Ok(()), "attempt {}", i + 1);
        }
        let until = t0() + minutes(4) + minutes(15);
        assert_eq!(throttle.attempt("mia", t0() + minutes(5)), Err(Refused { until }));
        assert_eq!(throttle.attempt("mia", until - TimeDelta::seconds(1)), Err(Refused { until }));
        assert_eq!(throttle.attempt("mia", until), Ok(()), "the pause is over");
        for _ in 0..3 {
            assert_eq!(throttle.attempt("mia", until), Ok(()), "a fresh window");
        }
    }

    #[test]
    fn attempts_spread_wider_than_the_window_are_never_refused() {
        let throttle = Throttle::default();
        for i in 0..20 {
            assert_eq!(throttle.attempt("mia", t0() + minutes(4 * i)), Ok(()), "attempt {}", i + 1);
        }
    }

    #[test]
    fn a_success_forgets_the_count() {
        let throttle = Throttle::default();
        for _ in 0..4 {
            throttle.attempt("mia", t0()).unwrap();
        }
        throttle.succeeded("mia");
        for _ in 0..4 {
            assert_eq!(throttle.attempt("mia", t0()), Ok(()));
        }
    }

    #[test]
    fn names_are_counted_apart_whether_they_exist_or_not() {
        let throttle = Throttle::default();
        for _ in 0..5 {
            throttle.attempt("nobody", t0()).unwrap();
        }
        assert!(throttle.attempt("nobody", t0()).is_err());
        assert_eq!(throttle.attempt("mia", t0()), Ok(()));
    }

    #[test]
    fn the_memory_of_names_is_bounded() {
        let throttle = Throttle::new(Limits { attempts: 2, ..Limits::default() });
        throttle.attempt("mia", t0()).unwrap();
        throttle.attempt("mia", t0()).unwrap();
        for i in 0..MAX_NAMES + 10 {
            throttle.attempt(&format!("user{i}"), t0() + TimeDelta::seconds(1)).unwrap();
        }
        assert_eq!(throttle.names.lock().unwrap().len(), MAX_NAMES);
        assert!(throttle.attempt("mia", t0() + minutes(1)).is_err(), "a flood of names does not free a refused one");
        // Once their windows are over, old names make room at once.
        throttle.attempt("late", t0() + minutes(16)).unwrap();
        assert_eq!(throttle.names.lock().unwrap().len(), 1);
    }
}
