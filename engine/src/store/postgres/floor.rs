//! Where a read of due jobs may start in the `jobs_due` indexes.
//!
//! Claiming and finishing a job leave dead entries behind in `jobs_due` and `jobs_due_at` (the
//! updates cannot be heap-only), all of them at claim times already past, until a vacuum removes
//! them. A fetch reads its index from the oldest due time up to now, so it stepped over every
//! job claimed since the last vacuum: late in the order-to-cash run 433 index pages (6.4 ms) for
//! a read that found nothing due among about 100 live jobs, where the same read of the last three
//! seconds took 24 pages (0.2 ms).
//!
//! So each node keeps, per set of job types, a floor below which its fetches do not read. When a
//! fetch found fewer due jobs than it wanted, every job due at its `now` was claimed (by it, or
//! by another node it skipped past). A job can become claimable later only at a claim time near
//! the clock of the moment it is written: a new job is due at its step's time, a retry later, a
//! lease ends in the future when it is taken. So the next fetch reads from that `now` less
//! [`MARGIN`], which covers a step's writes that commit a little after the step stamped its
//! job's due time, and clocks that differ a little between nodes. A job the floor misses (one
//! committed later than the margin; one this fetch skipped because another transaction held it
//! locked, a claim that rolled back or a step's guard that left it as it was) waits for the
//! node's next read from the start of the index, made at least every [`FULL_READ_EVERY`] of its
//! clock: it may be taken late, never lost. A read that found nothing due (the check before a
//! long poll) teaches the same as a fetch that found every due job.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};

/// How far below the time of a fetch that found every due job the next fetch still reads.
pub(super) const MARGIN: TimeDelta = TimeDelta::seconds(3);
/// How often a node reads a set of job types from the start of the index regardless.
pub(super) const FULL_READ_EVERY: TimeDelta = TimeDelta::seconds(5);
/// Sets of job types a node keeps floors for at most. Its workers name a handful; past this many
/// (workers naming ever new sets) all are dropped, which costs only reads from the start.
const MOST_SETS: usize = 256;

/// The floor of one set of job types.
#[derive(Debug, Clone, Copy)]
struct Floor {
    /// No job of the set due below this time is left unclaimed (but see the module's note).
    since: DateTime<Utc>,
    /// When a fetch last read the set from the start of the index.
    full_read_at: DateTime<Utc>,
}

/// The floors of one node's fetches, by set of job types (sorted, without repeats: the key the
/// fetches of a batch are grouped by).
#[derive(Debug, Default)]
pub(super) struct DueFloors(Mutex<HashMap<Vec<String>, Floor>>);

/// What a fetch learnt, applied once its transaction committed (a fetch rolled back claimed
/// nothing).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Learnt {
    pub(super) types: Vec<String>,
    pub(super) now: DateTime<Utc>,
    /// Whether the fetch read from the start of the index.
    pub(super) full: bool,
    /// Whether it found fewer due jobs than it wanted.
    pub(super) exhausted: bool,
}

impl DueFloors {
    /// Where a read at `now` of the jobs of `types` (sorted, without repeats) may start; `None`
    /// reads from the start of the index: no floor yet, a full read is due, or the clock went
    /// back.
    pub(super) fn since(&self, types: &[String], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let floors = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let floor = floors.get(types)?;
        let fresh = floor.since <= now && now >= floor.full_read_at && now - floor.full_read_at < FULL_READ_EVERY;
        fresh.then_some(floor.since)
    }

    /// Records what a committed fetch, or a read that found nothing due, learnt.
    pub(super) fn learn(&self, learnt: Learnt) {
        let mut floors = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let floor = floors.get_mut(&learnt.types);
        match (learnt.full, learnt.exhausted, floor) {
            // A full read that found every due job starts over: what was known before it (from
            // a clock since gone back, say) does not count.
            (true, true, _) => {
                if floors.len() >= MOST_SETS && !floors.contains_key(&learnt.types) {
                    floors.clear();
                }
                let floor = Floor { since: learnt.now - MARGIN, full_read_at: learnt.now };
                floors.insert(learnt.types, floor);
            }
            (true, false, Some(floor)) => floor.full_read_at = learnt.now,
            // A read from the floor moves it only up.
            (false, true, Some(floor)) => floor.since = floor.since.max(learnt.now - MARGIN),
            // Jobs left due teach nothing; nor does a read whose floor was dropped meanwhile.
            (_, false, _) | (false, true, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_603_600 + seconds, 0).unwrap()
    }

    fn types() -> Vec<String> {
        vec!["credit.check".to_string(), "invoice.issue".to_string()]
    }

    fn learnt(now: i64, full: bool, exhausted: bool) -> Learnt {
        Learnt { types: types(), now: at(now), full, exhausted }
    }

    #[test]
    fn a_set_of_types_is_read_whole_until_a_fetch_found_every_due_job() {
        let floors = DueFloors::default();
        assert_eq!(floors.since(&types(), at(0)), None);
        // Jobs were left due: nothing is known below which none are.
        floors.learn(learnt(0, true, false));
        assert_eq!(floors.since(&types(), at(1)), None);
        floors.learn(learnt(1, true, true));
        assert_eq!(floors.since(&types(), at(2)), Some(at(1) - MARGIN));
        // Another set of types has a floor of its own.
        assert_eq!(floors.since(&["credit.check".to_string()], at(2)), None);
    }

    #[test]
    fn the_floor_rises_only_with_fetches_that_found_every_due_job() {
        let floors = DueFloors::default();
        floors.learn(learnt(10, true, true));
        floors.learn(learnt(12, false, false));
        assert_eq!(floors.since(&types(), at(13)), Some(at(10) - MARGIN));
        floors.learn(learnt(13, false, true));
        assert_eq!(floors.since(&types(), at(14)), Some(at(13) - MARGIN));
        // A fetch of an earlier instant (another request's clock) does not lower it.
        floors.learn(learnt(11, false, true));
        assert_eq!(floors.since(&types(), at(14)), Some(at(13) - MARGIN));
    }

    #[test]
    fn a_clock_gone_back_takes_the_floor_back_with_its_next_full_read() {
        let floors = DueFloors::default();
        floors.learn(learnt(3_600, true, true));
        // An hour back: the floor is above now, so the reads are full ones...
        assert_eq!(floors.since(&types(), at(1)), None);
        floors.learn(learnt(1, true, false));
        assert_eq!(floors.since(&types(), at(2)), None);
        // ... until one finds every due job, which replaces the floor.
        floors.learn(learnt(2, true, true));
        assert_eq!(floors.since(&types(), at(3)), Some(at(2) - MARGIN));
    }

    #[test]
    fn floors_are_dropped_rather_than_kept_for_ever_more_sets_of_types() {
        let floors = DueFloors::default();
        for n in 0..MOST_SETS {
            floors.learn(Learnt { types: vec![format!("t{n}")], now: at(0), full: true, exhausted: true });
        }
        assert_eq!(floors.since(&["t0".to_string()], at(1)), Some(at(0) - MARGIN));
        floors.learn(learnt(0, true, true));
        assert_eq!(floors.since(&["t0".to_string()], at(1)), None, "dropped");
        assert_eq!(floors.since(&types(), at(1)), Some(at(0) - MARGIN));
        // A floor read of a dropped set learns nothing.
        floors.learn(Learnt { types: vec!["t1".to_string()], now: at(1), full: false, exhausted: true });
        assert_eq!(floors.since(&["t1".to_string()], at(2)), None);
    }

    #[test]
    fn the_whole_index_is_read_again_every_few_seconds_and_when_the_clock_goes_back() {
        let floors = DueFloors::default();
        floors.learn(learnt(100, true, true));
        floors.learn(learnt(103, false, true));
        let every = FULL_READ_EVERY.num_seconds();
        assert_eq!(floors.since(&types(), at(100 + every - 1)), Some(at(103) - MARGIN));
        assert_eq!(floors.since(&types(), at(100 + every)), None, "a full read is due");
        assert_eq!(floors.since(&types(), at(99)), None, "the clock went back");
        // The full read resets the count.
        floors.learn(learnt(100 + every, true, true));
        assert_eq!(floors.since(&types(), at(100 + every + 1)), Some(at(100 + every) - MARGIN));
    }
}
