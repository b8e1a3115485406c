//! The worker runtime on the in-process engine: wake-ups, leases, epochs, retries, shutdown.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use cloverleaf_engine::runtime::Message;
use cloverleaf_engine::{InstanceId, JobId};
use cloverleaf_finance as finance;
use cloverleaf_worker::{FetchRequest, HandlerError, Handlers, JobContext, JobSource, SourceError};
use serde_json::json;
use tokio::sync::Notify;

use crate::harness::{Env, completed, context, dec, options, spawn_worker};

async fn order(env: &Env, customer: &str, amount: &str) -> InstanceId {
    env.engine
        .start(
            "order_approval",
            None,
            json!({"order_id": "SO-1", "customer_id": customer, "amount": amount, "requested_by": "rita"}),
        )
        .await
        .unwrap()
}

fn request(topic: &str, lease: TimeDelta) -> FetchRequest {
    FetchRequest { worker_id: "w".into(), topics: vec![topic.into()], max_jobs: 10, lease, wait: Duration::ZERO }
}

fn credit_output() -> serde_json::Value {
    json!({"credit_limit": "50000.00", "open_ar": "0.00", "risk": "A"})
}

#[tokio::test]
async fn new_jobs_wake_the_worker_at_once() {
    let Some(env) = Env::new().await else { return };
    let mut options = options();
    // Only the engine's job signal can make it fetch within the test's patience.
    options.poll_wait = Duration::from_secs(600);
    let worker = env.worker(Handlers::new(), options);
    let id = order(&env, "C-001", "1000.00").await;
    worker.until(|s| s.completed >= 1).await;
    assert_eq!(env.status(&id).await, completed("approved"));
    let stats = worker.stop().await;
    assert_eq!((stats.fetched, stats.completed, stats.released), (1, 1, 0));
}

#[tokio::test]
async fn a_blocked_customer_takes_the_on_error_path() {
    let Some(env) = Env::new().await else { return };
    let worker = env.worker(Handlers::new(), options());
    let id = order(&env, "C-013", "1000.00").await;
    worker.until(|s| s.business_errors >= 1).await;
    assert_eq!(env.status(&id).await, completed("rejected"));
}

#[tokio::test]
async fn a_worker_that_dies_mid_run_is_replaced_after_its_lease_and_the_ledger_posts_once() {
    let Some(env) = Env::new().await else { return };
    let amount =
        env.ledger.record_order("SO-7", "C-001", env.today(), &[("PUMP-250", dec("3"))]).await.unwrap().to_string();
    let id = env
        .engine
        .start("ship_then_invoice", None, json!({"order_id": "SO-7", "customer_id": "C-001", "amount": amount}))
        .await
        .unwrap();
    env.engine
        .correlate(Message {
            name: "shipment.dispatched".into(),
            correlation_key: "SO-7".into(),
            payload: json!({"shipment_id": "SH-7", "carrier": "DHL"}),
            message_id: None,
            ttl: TimeDelta::hours(1),
        })
        .await
        .unwrap();
    // The first worker locks the invoice job, posts the invoice, and dies before completing it.
    let lease = TimeDelta::seconds(60);
    let dead = JobSource::fetch_and_lock(&env.engine, &request("invoice.issue", lease)).await.unwrap();
    assert_eq!(dead.len(), 1);
    let handlers = finance::handlers(&env.ledger);
    let first =
        handlers.get("invoice.issue").unwrap().call(JobContext { job: dead[0].clone(), now: env.now() }).await.unwrap();
    assert_eq!(env.entries("invoice").await, 1);
    drop(dead);
    // Nobody gets it while the lease runs.
    let worker = env.worker(Handlers::new(), options());
    worker.until(|s| s.completed >= 1).await;
    assert!(env.ledger.invoice_of_order("SO-7").await.unwrap().is_some());
    assert_eq!(worker.handle.stats().completed, 1, "only post_cost ran");
    env.advance(TimeDelta::seconds(61));
    worker.handle.wake();
    worker.until(|s| s.completed >= 3).await;
    assert_eq!(env.status(&id).await, completed("invoiced"));
    assert_eq!(env.entries("invoice").await, 1, "one posting, not two");
    let invoice = env.ledger.invoice_of_order("SO-7").await.unwrap().unwrap();
    assert_eq!(invoice.invoice_id, first["invoice_id"].as_str().unwrap());
    let vars = env.variables(&id).await;
    assert_eq!(vars["invoice_id"], first["invoice_id"]);
    env.assert_balanced().await;
}

#[tokio::test]
async fn a_completion_with_a_stale_lock_epoch_is_refused() {
    let Some(env) = Env::new().await else { return };
    let id = order(&env, "C-001", "1000.00").await;
    let source = env.engine.clone();
    let lease = TimeDelta::seconds(30);
    let first = JobSource::fetch_and_lock(&source, &request("credit.*", lease)).await.unwrap().remove(0);
    env.advance(TimeDelta::seconds(31));
    let late = source.complete(&first.id, first.epoch, credit_output()).await;
    assert!(matches!(late, Err(SourceError::LeaseExpired { .. })), "{late:?}");
    let second = JobSource::fetch_and_lock(&source, &request("credit.check", lease)).await.unwrap().remove(0);
    assert_eq!((second.id.clone(), second.epoch), (first.id.clone(), first.epoch + 1));
    assert_eq!(second.idempotency_key, first.idempotency_key);
    let stale = source.complete(&first.id, first.epoch, credit_output()).await;
    assert!(matches!(stale, Err(SourceError::StaleLock { .. })), "{stale:?}");
    assert!(stale.unwrap_err().lock_lost());
    source.complete(&second.id, second.epoch, credit_output()).await.unwrap();
    assert_eq!(env.status(&id).await, completed("approved"));
    let unknown = source.complete(&JobId::from("nope"), 1, json!({})).await;
    assert!(matches!(unknown, Err(SourceError::UnknownJob(_)) | Err(SourceError::StaleLock { .. })), "{unknown:?}");
}

#[tokio::test]
async fn failures_and_panics_are_retried_by_the_engine_after_the_backoff() {
    let Some(env) = Env::new().await else { return };
    let mut handlers = Handlers::new();
    handlers.register("credit.check", |cx: JobContext| async move {
        match cx.job.attempt {
            1 => Err(HandlerError::failure("erp down")),
            2 => panic!("handler bug on attempt 2"),
            _ => Ok(credit_output()),
        }
    });
    let worker = env.worker(handlers, options());
    let id = order(&env, "C-001", "1000.00").await;
    worker.until(|s| s.failed >= 1).await;
    // `retry 3 backoff 30s`: 30 s, then 60 s.
    env.advance(TimeDelta::seconds(31));
    worker.handle.wake();
    worker.until(|s| s.failed >= 2).await;
    env.advance(TimeDelta::seconds(61));
    worker.handle.wake();
    worker.until(|s| s.completed >= 1).await;
    assert_eq!(env.status(&id).await, completed("approved"));
    assert!(env.engine.instance(&id).await.unwrap().incidents().is_empty());
}

#[tokio::test]
async fn patterns_fetch_and_handle_every_matching_job_type() {
    let Some(env) = Env::new().await else { return };
    let mut handlers = Handlers::new();
    handlers.register("credit.*", |cx: JobContext| async move {
        assert_eq!(cx.job.job_type, "credit.check");
        Ok(credit_output())
    });
    let worker = spawn_worker(env.engine.clone(), handlers, options());
    let id = order(&env, "C-001", "1000.00").await;
    worker.until(|s| s.completed >= 1).await;
    assert_eq!(env.status(&id).await, completed("approved"));
}

#[tokio::test]
async fn shutdown_releases_the_jobs_that_did_not_finish_in_time() {
    let Some(env) = Env::new().await else { return };
    let mut handlers = Handlers::new();
    handlers.register("credit.check", |_: JobContext| std::future::pending());
    let mut opts = options();
    opts.shutdown_grace = Duration::from_millis(50);
    let worker = env.worker(handlers, opts);
    order(&env, "C-001", "1000.00").await;
    worker.until(|s| s.fetched >= 1).await;
    assert_eq!(worker.handle.in_flight(), 1);
    let stats = worker.stop().await;
    assert_eq!((stats.released, stats.completed), (1, 0));
    // Free at once, without waiting for the lease to run out.
    let again = env.engine.fetch_and_lock("w2", &["credit.check"], 10, TimeDelta::seconds(60)).await.unwrap();
    assert_eq!(again.len(), 1);
}

#[tokio::test]
async fn shutdown_lets_running_jobs_finish_and_report() {
    let Some(env) = Env::new().await else { return };
    let go = Arc::new(Notify::new());
    let mut handlers = Handlers::new();
    let gate = Arc::clone(&go);
    handlers.register("credit.check", move |_: JobContext| {
        let gate = Arc::clone(&gate);
        async move {
            gate.notified().await;
            Ok(credit_output())
        }
    });
    let mut worker = env.worker(handlers, options());
    let id = order(&env, "C-001", "1000.00").await;
    worker.until(|s| s.fetched >= 1).await;
    worker.request_stop();
    go.notify_one();
    let stats = worker.stop().await;
    assert_eq!((stats.completed, stats.released), (1, 0));
    assert_eq!(env.status(&id).await, completed("approved"));
}

#[tokio::test]
async fn long_jobs_have_their_lease_extended() {
    let Some(env) = Env::new().await else { return };
    let go = Arc::new(Notify::new());
    let mut handlers = Handlers::new();
    let gate = Arc::clone(&go);
    handlers.register("credit.check", move |_: JobContext| {
        let gate = Arc::clone(&gate);
        async move {
            gate.notified().await;
            Ok(credit_output())
        }
    });
    let mut opts = options();
    opts.lease = TimeDelta::milliseconds(100);
    let worker = env.worker(handlers, opts);
    let id = order(&env, "C-001", "1000.00").await;
    worker.until(|s| s.extended >= 2).await;
    // The lease outlives the virtual time that passed since the fetch because it was extended.
    env.advance(TimeDelta::milliseconds(90));
    worker.until(|s| s.extended >= 3).await;
    env.advance(TimeDelta::milliseconds(90));
    go.notify_one();
    worker.until(|s| s.completed >= 1).await;
    assert_eq!(env.status(&id).await, completed("approved"));
    assert_eq!(worker.handle.stats().lost_locks, 0);
}

#[tokio::test]
async fn handlers_take_today_from_the_job_source() {
    let Some(env) = Env::new().await else { return };
    env.advance(TimeDelta::days(400));
    let out = env
        .call("invoice.issue", "k1", json!({"order_id": "SO-1", "customer_id": "C-001", "amount": "10.00"}))
        .await
        .unwrap();
    assert_eq!(out["issue_date"], "2027-02-09");
    assert_eq!(out["invoice_number"], "2027-000001", "a new year starts a new series");
    let cx = context("credit.check", "k", json!({}), env.now());
    assert_eq!(cx.today(), env.today());
    assert_eq!(JobSource::now(&env.engine), env.now());
}

#[tokio::test]
async fn a_worker_without_handlers_or_capacity_refuses_to_run() {
    let Some(env) = Env::new().await else { return };
    let worker = cloverleaf_worker::Worker::new(env.engine.clone(), Handlers::new(), options());
    let refused = worker.run(std::future::pending()).await;
    assert!(matches!(refused, Err(cloverleaf_worker::runtime::Error::NoHandlers)), "{refused:?}");
    let mut opts = options();
    opts.max_concurrency = 0;
    let worker = cloverleaf_worker::Worker::new(env.engine.clone(), finance::handlers(&env.ledger), opts);
    let refused = worker.run(std::future::pending()).await;
    assert!(matches!(refused, Err(cloverleaf_worker::runtime::Error::NoConcurrency)), "{refused:?}");
}
