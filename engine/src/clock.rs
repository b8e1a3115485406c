//! Where the engine's "now" comes from. The pure core never reads a clock; everything around it
//! (runtime, scheduler, in-memory engine) asks a [`Clock`], so tests run weeks of dunning timers
//! in milliseconds on a [`VirtualClock`].

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;

    /// For a clock that jumps (a virtual one): a receiver that changes at every jump, so that
    /// whoever sleeps until a due time (the scheduler, a worker) wakes when time is moved past it.
    /// `None` for a clock that simply runs.
    fn jumps(&self) -> Option<watch::Receiver<DateTime<Utc>>> {
        None
    }
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to. Clones share one time.
#[derive(Debug, Clone)]
pub struct VirtualClock {
    now: Arc<watch::Sender<DateTime<Utc>>>,
}

impl VirtualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        VirtualClock { now: Arc::new(watch::Sender::new(start)) }
    }

    /// Moves the clock forward by `by` (a negative delta is ignored: time never runs back).
    pub fn advance(&self, by: TimeDelta) {
        if by > TimeDelta::zero() {
            self.now.send_modify(|now| *now += by);
        }
    }

    /// Moves the clock forward to `at`, if `at` is later than now.
    pub fn advance_to(&self, at: DateTime<Utc>) {
        self.now.send_if_modified(|now| {
            let later = at > *now;
            if later {
                *now = at;
            }
            later
        });
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    fn jumps(&self) -> Option<watch::Receiver<DateTime<Utc>>> {
        Some(self.now.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn virtual_clock_moves_only_forward_and_clones_share_it() {
        let start = Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 0).unwrap();
        let clock = VirtualClock::new(start);
        let shared = clock.clone();
        clock.advance(TimeDelta::days(7));
        assert_eq!(shared.now(), start + TimeDelta::days(7));
        clock.advance(TimeDelta::hours(-1));
        clock.advance_to(start);
        assert_eq!(shared.now(), start + TimeDelta::days(7));
    }
}
