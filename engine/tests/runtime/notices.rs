//! Notifications for people: raised in the step's transaction, taken for delivery under a lease,
//! settled (delivered, retried later, dead-lettered), and taken again under the same id when a
//! taker vanished before it said what became of them.

use chrono::TimeDelta;
use cloverleaf_engine::store::{DeliveryOutcome, Queries};
use serde_json::Value;

use crate::harness::{Env, t0};

fn payload(notice: &cloverleaf_engine::store::Notification) -> Value {
    serde_json::from_str(&notice.row.payload).unwrap()
}

#[tokio::test]
async fn a_task_offered_and_reminded_of_raises_notifications_that_are_delivered_once_settled() {
    let Some(env) = Env::reference().await else { return };
    // 25,000.00 with rating B: the sales manager approves, reminded after 8 h.
    let id = env.order("25000.00", "100000.00", "B").await;

    let taken = env.engine.take_notifications(10, TimeDelta::minutes(5)).await.unwrap();
    assert_eq!(taken.len(), 1, "{taken:?}");
    let offered = &taken[0];
    assert_eq!((offered.row.kind.as_str(), offered.row.instance_id.as_deref()), ("task_created", Some(id.as_str())));
    let body = payload(offered);
    assert_eq!(body["id"], offered.row.id.as_str());
    assert_eq!(body["title"], "Approve order SO-1");
    assert_eq!(body["roles"], serde_json::json!(["sales.manager"]));
    assert_eq!(body["business_key"], "SO-1");
    assert_eq!(body["task"], offered.row.subject.as_str());
    // Taken: nobody else gets it while the lease runs.
    assert!(env.engine.take_notifications(10, TimeDelta::minutes(5)).await.unwrap().is_empty());
    env.engine.record_delivery(&offered.row.id, DeliveryOutcome::Delivered).await.unwrap();

    // The reminder 8 h later is a notification of its own, naming the same task.
    env.advance(TimeDelta::hours(8));
    env.engine.fire_due_timers().await.unwrap();
    let taken = env.engine.take_notifications(10, TimeDelta::minutes(5)).await.unwrap();
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(taken[0].row.kind, "task_reminder");
    assert_eq!(taken[0].row.subject, offered.row.subject);
    assert_eq!(payload(&taken[0])["node"], "manager_approval");

    // A failed attempt waits for its retry time, then comes back under the same id.
    let retry_at = env.engine.now() + TimeDelta::minutes(1);
    let error = "receiver answered 503".to_string();
    env.engine.record_delivery(&taken[0].row.id, DeliveryOutcome::Retry { error, at: retry_at }).await.unwrap();
    env.advance(TimeDelta::seconds(59));
    assert!(env.engine.take_notifications(10, TimeDelta::minutes(5)).await.unwrap().is_empty());
    env.advance(TimeDelta::seconds(1));
    let again = env.engine.take_notifications(10, TimeDelta::minutes(5)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].row.id.as_str(), again[0].attempts), (taken[0].row.id.as_str(), 1));
    assert_eq!(again[0].last_error.as_deref(), Some("receiver answered 503"));

    // Out of attempts: dead until an operator retries it.
    let dead = DeliveryOutcome::Dead { error: "receiver answered 410".into() };
    env.engine.record_delivery(&again[0].row.id, dead).await.unwrap();
    let listed = env.engine.store().notifications(Some("dead"), 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].attempts, listed[0].last_error.as_deref()), (2, Some("receiver answered 410")));
    env.advance(TimeDelta::hours(1));
    assert!(env.engine.take_notifications(10, TimeDelta::minutes(5)).await.unwrap().is_empty());
    assert!(env.engine.retry_notification(&again[0].row.id).await.unwrap());
    assert!(!env.engine.retry_notification(&again[0].row.id).await.unwrap(), "not dead any more");
    assert!(!env.engine.retry_notification("no-such-notification").await.unwrap());
    let revived = env.engine.take_notifications(10, TimeDelta::minutes(5)).await.unwrap();
    assert_eq!((revived.len(), revived[0].attempts), (1, 0));

    let delivered = env.engine.store().notifications(Some("delivered"), 10).await.unwrap();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].row.id, offered.row.id);
    assert_eq!(env.engine.store().notifications(None, 10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_taker_that_vanishes_before_settling_leaves_its_notifications_to_the_next_under_the_same_ids() {
    let Some(env) = Env::reference().await else { return };
    env.order("25000.00", "100000.00", "B").await;
    let first = env.engine.take_notifications(10, TimeDelta::minutes(5)).await.unwrap();
    assert_eq!(first.len(), 1);
    // The taker sent it, then died: nothing was recorded. A restarted engine (recovery runs)
    // takes it again once the lease ran out, under the same id, so a receiver can tell.
    let env = env.restart_after(TimeDelta::minutes(5)).await;
    let second = env.engine.take_notifications(10, TimeDelta::minutes(5)).await.unwrap();
    assert_eq!(second.iter().map(|n| n.row.id.clone()).collect::<Vec<_>>(), vec![first[0].row.id.clone()]);
    assert_eq!(second[0].row.created_at, t0());
}

#[tokio::test]
async fn a_task_decided_in_the_step_that_offered_it_raises_no_notification() {
    let Some(env) = Env::reference().await else { return };
    // 8,000.00, rating A, within the limit: approved automatically, no task for anyone.
    env.order("8000.00", "50000.00", "A").await;
    assert!(env.engine.store().notifications(None, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_notification_raised_twice_under_one_id_is_kept_once() {
    let Some(env) = Env::reference().await else { return };
    let row = |payload: &str| cloverleaf_engine::store::NotificationRow {
        id: "alert.7.opened".into(),
        instance_id: None,
        kind: "alert_opened".into(),
        subject: "7".into(),
        payload: payload.into(),
        created_at: t0(),
    };
    env.engine.notify(vec![row(r#"{"first":true}"#)]).await.unwrap();
    env.engine.notify(vec![row(r#"{"first":false}"#)]).await.unwrap();
    let all = env.engine.store().notifications(None, 10).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].row.payload.as_str(), all[0].row.instance_id.as_deref()), (r#"{"first":true}"#, None));
}
