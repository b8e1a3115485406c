//! The scheduler's handle: what it counts, and the wake-up that ends its sleep.

use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};
use cloverleaf_engine::InstanceId;
use cloverleaf_engine::runtime::{Scheduler, SchedulerHandle, SchedulerOptions, SchedulerStats};
use cloverleaf_testkit::{deadline, eventually};
use serde_json::json;

use crate::harness::{Env, completed};

/// A two-hour pause, and a start every night at 02:00 UTC.
const FLOWS: [(&str, &str); 2] = [
    (
        "nap.flow",
        r#"process nap "Nap" {
  start -> pause
  wait pause { for 2h } -> done
  end done "Done"
}"#,
    ),
    (
        "nightly.flow",
        r#"process nightly "Nightly" {
  start every "0 2 * * *" in "UTC" -> done
  end done "Done"
}"#,
    ),
];

/// Waits, at most the test deadline, until the scheduler's counters satisfy `done`.
async fn until(handle: &SchedulerHandle, done: impl Fn(&SchedulerStats) -> bool) -> SchedulerStats {
    match tokio::time::timeout(deadline(), handle.wait_until(done)).await {
        Ok(stats) => stats,
        Err(_) => panic!("the scheduler did not get there: {:?}", handle.stats()),
    }
}

#[tokio::test]
async fn the_handle_counts_the_timers_and_cron_starts_the_scheduler_fired() {
    let Some(env) = Env::new().await else { return };
    env.engine.deploy(&FLOWS).await.unwrap();
    let naps = [
        env.engine.start("nap", None, json!({})).await.unwrap(),
        env.engine.start("nap", None, json!({})).await.unwrap(),
    ];
    let scheduler = Scheduler::new(env.engine.clone(), SchedulerOptions::default());
    let handle = scheduler.handle();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(scheduler.run(async {
        let _ = stopped.await;
    }));
    let first = until(&handle, |s| s.passes >= 1).await;
    assert_eq!((first.timers_fired, first.cron_starts), (0, 0), "nothing is due at the start");

    env.advance(TimeDelta::hours(3));
    let stats = eventually("both naps' timers to be counted", || async {
        let stats = handle.stats();
        (stats.timers_fired >= 2).then_some(stats)
    })
    .await;
    assert_eq!((stats.timers_fired, stats.cron_starts), (2, 0), "{stats:?}");
    for nap in &naps {
        assert_eq!(env.status(nap).await, completed("done"), "a counted timer has fired");
    }

    // Monday 12:00 UTC to Tuesday 02:00: the nightly start's first fire.
    env.clock.advance_to(Utc.with_ymd_and_hms(2026, 1, 6, 2, 0, 0).unwrap());
    let stats = eventually("the nightly start to be counted", || async {
        let stats = handle.stats();
        (stats.cron_starts >= 1).then_some(stats)
    })
    .await;
    assert_eq!((stats.timers_fired, stats.cron_starts), (2, 1), "{stats:?}");
    let nightly = InstanceId("nightly@20260106T020000Z".into());
    assert_eq!(env.status(&nightly).await, completed("done"), "a counted start has started");

    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    assert_eq!(handle.stats().timers_fired, 2, "the handle outlives the run");
}

#[tokio::test]
async fn a_wake_up_ends_the_schedulers_sleep_at_once() {
    let Some(env) = Env::new().await else { return };
    // With nothing due it would sleep far longer than the test deadline.
    let options = SchedulerOptions { max_wait: Duration::from_secs(24 * 3600), ..SchedulerOptions::default() };
    let scheduler = Scheduler::new(env.engine.clone(), options);
    let handle = scheduler.handle();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(scheduler.run(async {
        let _ = stopped.await;
    }));
    until(&handle, |s| s.passes >= 1).await;
    handle.wake();
    let stats = until(&handle, |s| s.passes >= 2).await;
    assert_eq!((stats.timers_fired, stats.cron_starts), (0, 0), "{stats:?}");
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}
