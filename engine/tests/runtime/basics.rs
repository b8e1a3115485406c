//! Deployments, a straight-through order, restarts, history and call activities.

use std::time::Duration;

use chrono::TimeDelta;
use cloverleaf_engine::runtime::POSTGRES_WRITE_LINGER;
use cloverleaf_engine::{Event, Instance, Status, replay};
use cloverleaf_testkit::testdb::Backend;
use serde_json::json;

use crate::harness::{Env, completed, roles};

const LEAVE_V1: &str = r#"process leave "Leave" {
  input { who: user }
  var ok: bool = false
  start -> approve
  approval approve "Approve leave" { role sales.manager  form { ok: bool }  due 24h } -> done
  end done "Done"
}"#;

#[tokio::test]
async fn the_same_source_deploys_idempotently_and_running_instances_keep_their_version() {
    let Some(env) = Env::new().await else { return };
    let roles = roles();
    let first = env.engine.deploy(&[("roles.flow", &roles), ("leave.flow", LEAVE_V1)]).await.unwrap();
    assert_eq!((first[0].key.as_str(), first[0].version, first[0].created), ("leave", 1, true));
    let again = env.engine.deploy(&[("roles.flow", &roles), ("leave.flow", LEAVE_V1)]).await.unwrap();
    assert_eq!((again[0].version, again[0].created, &again[0].hash), (1, false, &first[0].hash));

    let old = env.engine.start("leave", None, json!({"who": "ann"})).await.unwrap();
    let v2 = LEAVE_V1.replace("Approve leave", "Approve the leave");
    let second = env.engine.deploy(&[("roles.flow", &roles), ("leave.flow", &v2)]).await.unwrap();
    assert_eq!((second[0].version, second[0].created), (2, true));
    let new = env.engine.start("leave", None, json!({"who": "ann"})).await.unwrap();

    assert_eq!(env.instance(&old).await.process_version(), 1);
    assert_eq!(env.instance(&new).await.process_version(), 2);
    let old_task = env.engine.tasks(Some(&old)).await.unwrap().remove(0);
    let new_task = env.engine.tasks(Some(&new)).await.unwrap().remove(0);
    assert_eq!(old_task.title, "Approve leave");
    assert_eq!(new_task.title, "Approve the leave");
    env.engine.complete_task(&old_task.id, "max", &["sales.manager"], json!({"ok": true})).await.unwrap();
    assert_eq!(env.status(&old).await, completed("done"));
    assert!(matches!(
        env.engine.deploy(&[("bad.flow", "process broken {")]).await,
        Err(cloverleaf_engine::runtime::Error::Compile(_))
    ));
}

#[tokio::test]
async fn a_small_order_runs_straight_through_once_its_credit_check_completes() {
    let Some(env) = Env::reference().await else { return };
    let id = env.order("5000.00", "50000", "A").await;
    assert_eq!(env.status(&id).await, completed("approved"));
    assert!(env.engine.tasks(Some(&id)).await.unwrap().is_empty());
    // Nothing is left for workers.
    let left = env.engine.fetch_and_lock("w1", &["credit.check"], 10, TimeDelta::seconds(60)).await.unwrap();
    assert!(left.is_empty());
    let check = env.engine.verify_history(&id).await.unwrap();
    assert!(check.is_intact() && check.rows > 3, "{check:?}");
}

#[tokio::test]
async fn a_lone_caller_never_waits_for_the_writers_linger() {
    let Some(env) = Env::reference().await else { return };
    let default = match Backend::from_env() {
        Backend::Postgres => POSTGRES_WRITE_LINGER,
        Backend::Sqlite => Duration::ZERO,
    };
    assert_eq!(env.engine.write_linger(), default);
    // An hour: were a write with no other beside it or before it held for company, the order
    // below would not finish.
    env.engine.set_write_linger(Duration::from_secs(3600));
    assert_eq!(env.engine.write_linger(), Duration::from_secs(3600));
    let order = env.order("5000.00", "50000", "A");
    let id = tokio::time::timeout(Duration::from_secs(60), order).await.expect("a lone write waited for the linger");
    assert_eq!(env.status(&id).await, completed("approved"));
}

#[tokio::test]
async fn the_stored_event_log_replays_to_the_stored_state() {
    let Some(env) = Env::reference().await else { return };
    let id = env.order("20000.00", "50000", "A").await;
    let task = env.engine.tasks(Some(&id)).await.unwrap().remove(0);
    env.engine.complete_task(&task.id, "max", &["sales.manager"], json!({"approve": true})).await.unwrap();
    let stored = env.instance(&id).await;
    let events = env.engine.events(&id).await.unwrap();
    let definition = env.engine.definition("order_approval", 1).await.unwrap();
    let fresh = Instance::new(id.as_str(), "order_approval", 1);
    let replayed = replay(&definition, fresh, events.iter().map(|(e, at)| (e, *at))).unwrap();
    assert_eq!(replayed, stored);
    assert!(matches!(events[0].0, Event::Start { .. }));
}

#[tokio::test]
async fn tampering_with_a_history_row_is_found_by_verify() {
    let Some(env) = Env::reference().await else { return };
    let id = env.order("5000.00", "50000", "A").await;
    assert!(env.engine.verify_history(&id).await.unwrap().is_intact());
    env.tamper_who(&id, 3, "mallory").await;
    let check = env.engine.verify_history(&id).await.unwrap();
    assert_eq!(check.first_altered, Some(3));
    assert!(!check.is_intact());
}

#[tokio::test]
async fn deleting_the_last_history_rows_is_found_by_verify() {
    let Some(env) = Env::reference().await else { return };
    let id = env.order("5000.00", "50000", "A").await;
    env.execute(
        "UPDATE events SET history_seq = NULL, prev_hash = NULL, entries = NULL WHERE instance_id = ?1 \
         AND seq = (SELECT MAX(seq) FROM events WHERE instance_id = ?1 AND entries IS NOT NULL)",
        id.as_str(),
    )
    .await;
    let check = env.engine.verify_history(&id).await.unwrap();
    assert!(check.head_mismatch && !check.is_intact(), "{check:?}");
}

#[tokio::test]
async fn an_engine_dropped_mid_flight_continues_on_the_same_file() {
    let Some(env) = Env::reference().await else { return };
    let id = env.order("20000.00", "50000", "A").await;
    let env = env.restart().await;
    let task = env.engine.tasks(Some(&id)).await.unwrap().remove(0);
    assert_eq!(task.node, "manager_approval");
    env.engine.complete_task(&task.id, "max", &["sales.manager"], json!({"approve": true})).await.unwrap();
    assert_eq!(env.status(&id).await, completed("approved"));
    assert!(env.engine.verify_history(&id).await.unwrap().is_intact());
}

#[tokio::test]
async fn overdue_timers_fire_when_the_engine_starts_again() {
    let Some(env) = Env::reference().await else { return };
    let id = env.order("20000.00", "50000", "A").await;
    // The engine is down while the 24 h escalation falls due.
    let env = env.restart_after(TimeDelta::hours(25)).await;
    let tasks = env.engine.tasks(Some(&id)).await.unwrap();
    assert_eq!(tasks.iter().map(|t| t.node.as_str()).collect::<Vec<_>>(), ["director_approval"]);
}

const PARENT_CHILD: &str = r#"
process parent "Parent" {
  input { order_id: text }
  var reply: text?
  start -> sub
  call sub "Sub" { process child  in { order_id }  out { reply: outcome } } -> done
  end done "Done"
}
process child "Child" {
  input { order_id: text }
  start -> work
  task work "Work" { job "child.work" } -> ok
  end ok "Ok"
}
"#;

#[tokio::test]
async fn a_call_starts_a_child_whose_end_moves_the_parent() {
    let Some(env) = Env::new().await else { return };
    env.engine.deploy(&[("calls.flow", PARENT_CHILD)]).await.unwrap();
    let parent = env.engine.start("parent", None, json!({"order_id": "SO-9"})).await.unwrap();
    let job = env.one_job("child.work").await;
    assert_ne!(job.instance_id, parent);
    assert_eq!(env.status(&job.instance_id).await, Status::Running);
    env.engine.complete_job(&job.id, job.epoch, json!({})).await.unwrap();
    assert_eq!(env.status(&job.instance_id).await, completed("ok"));
    assert_eq!(env.status(&parent).await, completed("done"));
    assert_eq!(env.instance(&parent).await.variable("reply").map(|v| v.to_string()), Some("\"ok\"".into()));
}

#[tokio::test]
async fn cancelling_a_parent_cancels_its_child() {
    let Some(env) = Env::new().await else { return };
    env.engine.deploy(&[("calls.flow", PARENT_CHILD)]).await.unwrap();
    let parent = env.engine.start("parent", None, json!({"order_id": "SO-9"})).await.unwrap();
    let job = env.one_job("child.work").await;
    env.engine.cancel(&parent, "ops").await.unwrap();
    assert!(matches!(env.status(&parent).await, Status::Cancelled { .. }));
    assert!(matches!(env.status(&job.instance_id).await, Status::Cancelled { .. }));
    assert!(env.engine.complete_job(&job.id, job.epoch, json!({})).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_starters_share_transactions_and_all_finish() {
    let Some(env) = Env::reference().await else { return };
    let mut set = tokio::task::JoinSet::new();
    for i in 0..64 {
        let engine = env.engine.clone();
        set.spawn(async move {
            let order = json!({"order_id": format!("SO-{i}"), "customer_id": "C-7", "amount": "5000.00", "requested_by": "rita"});
            engine.start("order_approval", None, order).await
        });
    }
    let mut ids = Vec::new();
    while let Some(joined) = set.join_next().await {
        ids.push(joined.unwrap().unwrap());
    }
    let jobs = env.engine.fetch_and_lock("w1", &["credit.check"], 100, TimeDelta::seconds(60)).await.unwrap();
    assert_eq!(jobs.len(), 64);
    let mut set = tokio::task::JoinSet::new();
    for job in jobs {
        let engine = env.engine.clone();
        set.spawn(async move {
            let output = json!({"credit_limit": "50000", "open_ar": "0", "risk": "B"});
            engine.complete_job(&job.id, job.epoch, output).await
        });
    }
    while let Some(joined) = set.join_next().await {
        joined.unwrap().unwrap();
    }
    for id in &ids {
        assert_eq!(env.status(id).await, completed("approved"));
        assert!(env.engine.verify_history(id).await.unwrap().is_intact());
    }
    let stats = env.engine.writer_stats();
    assert!(stats.batches <= stats.writes, "{stats:?}");
}
