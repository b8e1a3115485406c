//! Instances started by a cron schedule or by a message, durably and once per fire or message.

use chrono::{TimeDelta, TimeZone, Utc};
use cloverleaf_engine::InstanceId;
use cloverleaf_engine::runtime::{Correlation, Message, Scheduler, SchedulerOptions};
use cloverleaf_testkit::eventually;
use serde_json::json;

use crate::harness::{Env, roles};

#[tokio::test]
async fn month_end_close_starts_at_18_00_shanghai_on_the_last_day_once_per_fire() {
    let Some(env) = Env::reference().await else { return };
    assert_eq!(env.engine.fire_due_schedules().await.unwrap(), 0);
    // 2026-01-31 18:00 in Shanghai is 10:00 UTC.
    let fire = Utc.with_ymd_and_hms(2026, 1, 31, 10, 0, 0).unwrap();
    env.advance(fire - env.engine.now() - TimeDelta::seconds(1));
    assert_eq!(env.engine.fire_due_schedules().await.unwrap(), 0, "one second early");
    env.advance(TimeDelta::seconds(1));
    assert_eq!(env.engine.fire_due_schedules().await.unwrap(), 1);
    assert_eq!(env.engine.fire_due_schedules().await.unwrap(), 0, "a fire starts one instance");
    let id = InstanceId("month_end_close@20260131T100000Z".into());
    let instance = env.instance(&id).await;
    assert_eq!(instance.process(), "month_end_close");
    let jobs = env.engine.fetch_and_lock("w", &["report.*"], 10, TimeDelta::minutes(1)).await.unwrap();
    assert_eq!(jobs.len(), 2, "both reports were asked for: {jobs:?}");
    // Redeploying the same source keeps the cursor: no second start for the same fire.
    let env = env.restart().await;
    let files = crate::harness::reference_files();
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    env.engine.deploy(&refs).await.unwrap();
    assert_eq!(env.engine.fire_due_schedules().await.unwrap(), 0);
}

#[tokio::test]
async fn fires_missed_while_down_coalesce_into_one_start_on_restart() {
    let Some(env) = Env::reference().await else { return };
    // Down from early January until mid-April: the January, February and March fires are missed.
    let env = env.restart_after(TimeDelta::days(100)).await; // open() recovers and fires
    let all = env.engine.fire_due_schedules().await.unwrap();
    assert_eq!(all, 0, "the restart already handled the missed fires");
    let march = InstanceId("month_end_close@20260331T100000Z".into());
    assert_eq!(env.instance(&march).await.process(), "month_end_close");
    let january = env.engine.instance(&InstanceId("month_end_close@20260131T100000Z".into())).await;
    assert!(january.is_err(), "only the latest missed fire starts an instance");
    // The schedule goes on: April's fire starts the next one.
    let april = Utc.with_ymd_and_hms(2026, 4, 30, 10, 0, 0).unwrap();
    env.advance(april - env.engine.now());
    assert_eq!(env.engine.fire_due_schedules().await.unwrap(), 1);
}

const SIGNED: &str = r#"
process signed_order "Signed order" {
  input { order_id: text  amount: money }
  start on message "order.signed" -> review
  approval review "Review order {order_id}" {
    role sales.manager
    form { ok: bool }
    due 1d
  } -> done
  end done "Done"
}
"#;

/// `order.signed` for `order` (1,200.00), sent with the sender's `message_id`.
fn signed(order: &str, message_id: &str) -> Message {
    Message {
        name: "order.signed".into(),
        correlation_key: order.into(),
        payload: json!({"order_id": order, "amount": "1200.00"}),
        message_id: Some(message_id.into()),
        ttl: TimeDelta::hours(1),
    }
}

#[tokio::test]
async fn a_message_start_starts_an_instance_once_per_message_id() {
    let Some(env) = Env::new().await else { return };
    let roles = roles();
    env.engine.deploy(&[("roles.flow", roles.as_str()), ("signed.flow", SIGNED)]).await.unwrap();
    let message = signed("SO-42", "crm-7781");
    let delivered = env.engine.correlate(message.clone()).await.unwrap();
    let Correlation::Delivered { instance } = delivered else { panic!("expected a start, got {delivered:?}") };
    let state = env.instance(&instance).await;
    assert_eq!(state.business_key(), Some("SO-42"));
    let tasks = env.engine.tasks(Some(&instance)).await.unwrap();
    assert_eq!(tasks[0].title, "Review order SO-42");
    assert_eq!(env.engine.correlate(message.clone()).await.unwrap(), Correlation::Duplicate);
    let other = Message { name: "order.cancelled".into(), message_id: Some("crm-7782".into()), ..message };
    assert_eq!(env.engine.correlate(other).await.unwrap(), Correlation::Buffered, "no process starts on it");
    assert_eq!(env.engine.tasks(None).await.unwrap().len(), 1);
}

/// A message delivered once is a duplicate ever after, even when the definition it would start
/// now refuses it before anything is written (a newer version that needs an input it lacks).
#[tokio::test]
async fn a_redelivered_message_a_newer_version_refuses_is_still_a_duplicate() {
    let Some(env) = Env::new().await else { return };
    let roles = roles();
    env.engine.deploy(&[("roles.flow", roles.as_str()), ("signed.flow", SIGNED)]).await.unwrap();
    let message = signed("SO-43", "crm-7790");
    assert!(matches!(env.engine.correlate(message.clone()).await.unwrap(), Correlation::Delivered { .. }));
    let stricter = SIGNED.replace("amount: money }", "amount: money  region: text }");
    let deployed = env.engine.deploy(&[("roles.flow", roles.as_str()), ("signed.flow", &stricter)]).await.unwrap();
    assert!(deployed.iter().any(|d| d.key == "signed_order" && d.version == 2), "{deployed:?}");
    let fresh = Message { message_id: Some("crm-7791".into()), correlation_key: "SO-44".into(), ..message.clone() };
    assert!(env.engine.correlate(fresh).await.is_err(), "a new message without the region is refused");
    assert_eq!(env.engine.correlate(message).await.unwrap(), Correlation::Duplicate);
    assert_eq!(env.engine.tasks(None).await.unwrap().len(), 1, "nothing started twice");
}

#[tokio::test]
async fn the_scheduler_fires_timers_and_cron_starts_when_the_virtual_clock_jumps() {
    let Some(env) = Env::reference().await else { return };
    let id = env
        .engine
        .start("ship_then_invoice", Some("SO-7"), json!({"order_id": "SO-7", "customer_id": "C-1", "amount": "5.00"}))
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let scheduler = Scheduler::new(env.engine.clone(), SchedulerOptions::default());
    let scheduler = tokio::spawn(scheduler.run(async {
        let _ = stopped.await;
    }));
    env.advance(TimeDelta::days(5));
    eventually("the escalation timer to fire", || async {
        let tasks = env.engine.tasks(Some(&id)).await.unwrap();
        tasks.iter().any(|t| t.node == "chase_shipment").then_some(())
    })
    .await;
    env.clock.advance_to(Utc.with_ymd_and_hms(2026, 1, 31, 10, 0, 0).unwrap());
    let closing = InstanceId("month_end_close@20260131T100000Z".into());
    eventually("the cron start to fire", || async { env.engine.instance(&closing).await.ok() }).await;
    stop.send(()).unwrap();
    scheduler.await.unwrap().unwrap();
}
