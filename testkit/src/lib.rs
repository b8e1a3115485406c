//! Test helpers shared by Cloverleaf's crates; a dev-dependency only, never part of a release:
//! waiting for a condition ([`eventually`]), scratch databases ([`testdb::ScratchDb`]) and, for the
//! benches, readings of the machine ([`machine`]).
//!
//! Tests never sleep for a fixed time and hope: they wait for something they can observe, with a
//! deadline that is generous (a loaded CI machine is slow, not broken) and a failure message that
//! says what never happened.
//!
//! ```no_run
//! # async fn example(read_status: impl Fn() -> std::future::Ready<&'static str>) {
//! let status = cloverleaf_testkit::eventually("the order to be approved", || async {
//!     let status = read_status().await;
//!     (status == "approved").then_some(status)
//! })
//! .await;
//! # }
//! ```

pub mod machine;
pub mod testdb;

use std::future::Future;
use std::time::{Duration, Instant};

/// How long a test waits for a condition before it fails; `CLOVERLEAF_TEST_DEADLINE_SECS`
/// overrides the default of 120 seconds.
pub fn deadline() -> Duration {
    std::env::var("CLOVERLEAF_TEST_DEADLINE_SECS")
        .ok()
        .and_then(|secs| secs.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(120))
}

/// The pause between two probes: short at first, so a quick condition costs little, then longer,
/// so a slow one does not flood the system it is waiting on.
fn pause(attempt: u32) -> Duration {
    Duration::from_millis(match attempt {
        0..=9 => 5,
        10..=29 => 20,
        _ => 100,
    })
}

/// Probes until `probe` returns `Some`, and returns its value; panics naming `what` when the
/// [`deadline`] passes first.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let limit = deadline();
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if started.elapsed() >= limit {
            panic!("gave up after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(pause(attempt)).await;
        attempt += 1;
    }
}

/// [`eventually`] for code outside an async runtime (a thread that watches a child process).
pub fn eventually_blocking<T>(what: &str, probe: impl FnMut() -> Option<T>) -> T {
    eventually_blocking_within(deadline(), what, probe)
}

fn eventually_blocking_within<T>(limit: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if started.elapsed() >= limit {
            panic!("gave up after {limit:?} waiting for {what}");
        }
        std::thread::sleep(pause(attempt));
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_first_value_the_probe_gives() {
        let mut calls = 0;
        let value = eventually("the third call", || {
            calls += 1;
            let seen = calls;
            async move { (seen == 3).then_some(seen) }
        })
        .await;
        assert_eq!(value, 3);
    }

    #[test]
    #[should_panic(expected = "waiting for a thing that never happens")]
    fn names_what_never_happened() {
        eventually_blocking_within(Duration::ZERO, "a thing that never happens", || None::<()>);
    }
}
