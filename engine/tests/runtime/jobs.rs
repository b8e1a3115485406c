//! Fetch-and-lock: leases, epochs, retries and incidents.

use std::collections::BTreeSet;

use chrono::TimeDelta;
use cloverleaf_engine::InstanceId;
use cloverleaf_engine::runtime::Error;
use cloverleaf_engine::store::{LockedJob, Store, Write, WriteOutcome};
use serde_json::json;

use crate::harness::{Env, completed};

async fn started(env: &Env) -> cloverleaf_engine::InstanceId {
    env.engine
        .start(
            "order_approval",
            None,
            json!({"order_id": "SO-1", "customer_id": "C-7", "amount": "5000.00", "requested_by": "rita"}),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn an_expired_lease_returns_the_job_and_the_stale_epoch_is_refused() {
    let Some(env) = Env::reference().await else { return };
    let id = started(&env).await;
    let first = env.one_job("credit.check").await;
    assert_eq!(first.idempotency_key, format!("{id}:check_credit:1"));
    // Locked: nobody else gets it.
    let none = env.engine.fetch_and_lock("w2", &["credit.check"], 10, TimeDelta::seconds(60)).await.unwrap();
    assert!(none.is_empty());
    env.advance(TimeDelta::seconds(61));
    let again = env.engine.fetch_and_lock("w2", &["credit.check"], 10, TimeDelta::seconds(60)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, first.id);
    assert_eq!(again[0].epoch, first.epoch + 1);
    assert_eq!(again[0].idempotency_key, first.idempotency_key);
    let output = json!({"credit_limit": "50000", "open_ar": "0", "risk": "A"});
    assert!(matches!(
        env.engine.complete_job(&first.id, first.epoch, output.clone()).await,
        Err(Error::StaleLock { .. })
    ));
    env.engine.complete_job(&again[0].id, again[0].epoch, output.clone()).await.unwrap();
    assert_eq!(env.status(&id).await, completed("approved"));
    // A finished job cannot be completed twice.
    assert!(matches!(
        env.engine.complete_job(&again[0].id, again[0].epoch, output).await,
        Err(Error::StaleLock { .. })
    ));
}

#[tokio::test]
async fn a_completion_after_the_lease_ran_out_is_refused() {
    let Some(env) = Env::reference().await else { return };
    started(&env).await;
    let job = env.one_job("credit.check").await;
    env.advance(TimeDelta::seconds(90));
    let result = env.engine.complete_job(&job.id, job.epoch, json!({})).await;
    assert!(matches!(result, Err(Error::LeaseExpired { .. })), "{result:?}");
}

#[tokio::test]
async fn failures_are_retried_with_backoff_then_raise_an_incident_an_operator_retries() {
    let Some(env) = Env::reference().await else { return };
    let id = started(&env).await;
    // `retry 3`: the first try and three retries, each after its backoff.
    for attempt in 1..=4 {
        let job = env.one_job("credit.check").await;
        assert_eq!(job.attempt, attempt);
        env.engine.fail_job(&job.id, job.epoch, "erp down").await.unwrap();
        if attempt < 4 {
            assert!(env.instance(&id).await.incidents().is_empty());
            // Not before the backoff.
            let early = env.engine.fetch_and_lock("w1", &["credit.check"], 10, TimeDelta::seconds(60)).await.unwrap();
            assert!(early.is_empty());
            env.advance(TimeDelta::hours(1));
        }
    }
    let incidents = env.instance(&id).await.incidents().clone();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    let none = env.engine.fetch_and_lock("w1", &["credit.check"], 10, TimeDelta::seconds(60)).await.unwrap();
    assert!(none.is_empty());
    let incident = incidents.keys().next().unwrap().clone();
    env.engine.retry_incident(&incident).await.unwrap();
    let job = env.one_job("credit.check").await;
    env.engine
        .complete_job(&job.id, job.epoch, json!({"credit_limit": "50000", "open_ar": "0", "risk": "A"}))
        .await
        .unwrap();
    assert_eq!(env.status(&id).await, completed("approved"));
}

#[tokio::test]
async fn a_business_error_takes_the_matching_path() {
    let Some(env) = Env::reference().await else { return };
    let id = started(&env).await;
    let job = env.one_job("credit.check").await;
    env.engine.business_error(&job.id, job.epoch, "customer_blocked").await.unwrap();
    assert_eq!(env.status(&id).await, completed("rejected"));
}

#[tokio::test]
async fn leases_extend_only_under_the_current_epoch_and_before_they_run_out() {
    let Some(env) = Env::reference().await else { return };
    env.engine
        .start(
            "order_approval",
            None,
            json!({"order_id": "SO-9", "customer_id": "C-7", "amount": "10.00", "requested_by": "rita"}),
        )
        .await
        .unwrap();
    let job = env.one_job("credit.check").await;
    env.advance(TimeDelta::seconds(50));
    let until = env.engine.extend_lock(&job.id, job.epoch, TimeDelta::seconds(60)).await.unwrap();
    assert_eq!(until, env.engine.now() + TimeDelta::seconds(60));
    env.advance(TimeDelta::seconds(50)); // past the first lease, within the extended one
    assert!(env.engine.fetch_and_lock("w2", &["credit.check"], 10, TimeDelta::seconds(60)).await.unwrap().is_empty());
    let stale = env.engine.extend_lock(&job.id, job.epoch + 1, TimeDelta::seconds(60)).await;
    assert!(matches!(stale, Err(Error::StaleLock { .. })), "{stale:?}");
    env.advance(TimeDelta::seconds(11));
    let late = env.engine.extend_lock(&job.id, job.epoch, TimeDelta::seconds(60)).await;
    assert!(matches!(late, Err(Error::LeaseExpired { .. })), "{late:?}");
    let again = env.engine.fetch_and_lock("w2", &["credit.*"], 10, TimeDelta::seconds(60)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].epoch, job.epoch + 1);
    let stale = env.engine.complete_job(&job.id, job.epoch, json!({})).await;
    assert!(matches!(stale, Err(Error::StaleLock { .. })), "{stale:?}");
}

#[tokio::test]
async fn wildcard_job_types_match_by_prefix_and_new_jobs_signal_workers() {
    let Some(env) = Env::reference().await else { return };
    let mut signal = env.engine.job_signal();
    let before = *signal.borrow_and_update();
    env.engine
        .start(
            "order_approval",
            None,
            json!({"order_id": "SO-8", "customer_id": "C-7", "amount": "10.00", "requested_by": "rita"}),
        )
        .await
        .unwrap();
    assert!(signal.has_changed().unwrap(), "a new job signals");
    assert_ne!(*signal.borrow_and_update(), before);
    let lease = TimeDelta::seconds(60);
    assert!(env.engine.fetch_and_lock("w", &["finance.*", "credit"], 10, lease).await.unwrap().is_empty());
    assert!(
        env.engine.fetch_and_lock("w", &["credit.?heck"], 10, lease).await.unwrap().is_empty(),
        "only * is a wildcard"
    );
    let all = env.engine.fetch_and_lock("w", &["*"], 10, lease).await.unwrap();
    assert_eq!(all.iter().map(|j| j.job_type.as_str()).collect::<Vec<_>>(), ["credit.check"]);
}

#[tokio::test]
async fn a_released_job_is_due_again_at_once_and_wakes_workers() {
    let Some(env) = Env::reference().await else { return };
    env.engine
        .start(
            "order_approval",
            None,
            json!({"order_id": "SO-6", "customer_id": "C-7", "amount": "10.00", "requested_by": "rita"}),
        )
        .await
        .unwrap();
    let job = env.one_job("credit.check").await;
    let mut signal = env.engine.job_signal();
    signal.borrow_and_update();
    env.engine.release_job(&job.id, job.epoch).await.unwrap();
    assert!(signal.has_changed().unwrap(), "waiting workers are woken");
    let again = env.engine.fetch_and_lock("w2", &["credit.check"], 10, TimeDelta::seconds(60)).await.unwrap();
    assert_eq!((again.len(), again[0].epoch), (1, job.epoch + 1));
    let stale = env.engine.release_job(&job.id, job.epoch).await;
    assert!(matches!(stale, Err(Error::StaleLock { .. })), "{stale:?}");
}

const FAN: &str = r#"process fan "Fan" {
  start -> split
  parallel split {
    -> a
    -> b
    -> c
  }
  task a { job "pay.a" } -> joined
  task b { job "pay.b" } -> joined
  task c { job "ship.c" } -> joined
  join joined -> done
  end done "Done"
}"#;

/// One batch of fetches, as the group-commit writer hands concurrent fetches to the store.
async fn fetch_batch(env: &Env, fetches: &[(&str, &[&str], i64)]) -> Vec<Vec<LockedJob>> {
    let now = env.engine.now();
    let batch = fetches
        .iter()
        .map(|(worker, types, max)| Write::FetchJobs {
            worker: worker.to_string(),
            job_types: types.iter().map(|t| t.to_string()).collect(),
            max: *max,
            now,
            lease_until: now + TimeDelta::seconds(60),
        })
        .collect();
    let mut out = Vec::new();
    for result in env.engine.store().write(batch).await {
        match result {
            Ok(WriteOutcome::Jobs(jobs)) => out.push(jobs),
            other => panic!("a fetch answered {other:?}"),
        }
    }
    out
}

/// (instance, job type) of each job, in the order given.
fn owners(jobs: &[LockedJob]) -> Vec<(InstanceId, &str)> {
    jobs.iter().map(|j| (j.instance_id.clone(), j.job_type.as_str())).collect()
}

#[tokio::test]
async fn the_fetches_of_one_batch_share_the_due_jobs_in_due_order_and_in_turn() {
    let Some(env) = Env::new().await else { return };
    env.engine.deploy(&[("fan.flow", FAN)]).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(env.engine.start("fan", None, json!({})).await.unwrap());
        env.advance(TimeDelta::seconds(1));
    }

    // Fetches of the same job types take the earliest due jobs in turn; a fetch for no job gets
    // none; every result is in id order.
    let got = fetch_batch(
        &env,
        &[("w1", &["pay.a"], 2), ("w2", &["ship.c"], 1), ("w3", &["pay.a"], 3), ("w4", &["ship.c"], 0)],
    )
    .await;
    let mut w1 = vec![(ids[0].clone(), "pay.a"), (ids[1].clone(), "pay.a")];
    let mut w3 = vec![(ids[2].clone(), "pay.a"), (ids[3].clone(), "pay.a")];
    w1.sort();
    w3.sort();
    assert_eq!(owners(&got[0]), w1);
    assert_eq!(owners(&got[1]), [(ids[0].clone(), "ship.c")]);
    assert_eq!(owners(&got[2]), w3);
    assert!(got[3].is_empty());
    for jobs in &got {
        assert!(jobs.windows(2).all(|w| w[0].id < w[1].id));
        assert!(jobs.iter().all(|j| j.epoch == 1 && j.lock_expires_at == env.engine.now() + TimeDelta::seconds(60)));
    }

    // Overlapping types (a pattern and a list): every due job goes to one fetch only.
    let got = fetch_batch(&env, &[("w5", &["pay.*"], 10), ("w6", &["ship.c", "pay.b"], 10)]).await;
    let pay_b: Vec<_> = ids.iter().map(|id| (id.clone(), "pay.b")).collect();
    assert_eq!(owners(&got[0]).into_iter().collect::<BTreeSet<_>>(), pay_b.into_iter().collect());
    let ship_c: BTreeSet<_> = ids[1..].iter().map(|id| (id.clone(), "ship.c")).collect();
    assert_eq!(owners(&got[1]).into_iter().collect::<BTreeSet<_>>(), ship_c);
    assert!(fetch_batch(&env, &[("w7", &["*"], 10)]).await[0].is_empty());

    // Leases run out: the jobs are handed out again under a new epoch, in one batch.
    env.advance(TimeDelta::seconds(61));
    let got = fetch_batch(&env, &[("w8", &["pay.a"], 10), ("w9", &["pay.b", "ship.c"], 10)]).await;
    assert_eq!((got[0].len(), got[1].len()), (4, 8));
    assert!(got.iter().flatten().all(|j| j.epoch == 2));
    for job in got.iter().flatten() {
        env.engine.complete_job(&job.id, job.epoch, json!({})).await.unwrap();
    }
    for id in &ids {
        assert_eq!(env.status(id).await, completed("done"));
    }
}

#[tokio::test]
async fn a_job_fetched_on_one_node_completes_there_after_another_node_stepped_its_instance() {
    let Some(env) = Env::reference().await else { return };
    // Node a starts the order; node b fetches its job, and reads its instance ahead with it.
    let id = started(&env).await;
    let b = cloverleaf_engine::runtime::Engine::connect(&env.db.url(), std::sync::Arc::new(env.clock.clone()))
        .await
        .unwrap();
    let mut jobs = b.fetch_and_lock("w1", &["credit.check"], 10, TimeDelta::seconds(60)).await.unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job = jobs.remove(0);
    // Meanwhile an operator on node a sets a variable: the instance b read is one step behind.
    let set = cloverleaf_engine::Modification::SetVariable { name: "comment".into(), value: json!("urgent") };
    env.engine.modify(&id, set, "ops", "the customer called").await.unwrap();
    // b's completion is stepped on the instance as it now stands: the operator's step is kept.
    let output = json!({"credit_limit": "50000", "open_ar": "0", "risk": "A"});
    b.complete_job(&job.id, job.epoch, output).await.unwrap();
    let instance = env.instance(&id).await;
    assert_eq!(instance.status(), &completed("approved"));
    // The read ahead: the instances of a list there are, in one read.
    let rows = b.store().load_instances(&[id.clone(), InstanceId::from("no-such-instance")]).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), [id.as_str()]);
    assert_eq!(instance.variable("comment").map(|v| v.to_string()), Some("\"urgent\"".into()));
    assert_eq!(instance.variable("risk").map(|v| v.to_string()), Some("\"A\"".into()));
}
