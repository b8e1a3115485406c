//! A `Worker<RemoteSource>` with the built-in finance handlers drives order to cash from outside
//! the server, up to the wait for the customer's payment.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use cloverleaf_engine::store::AnyStore;
use cloverleaf_finance::{self as finance, Ledger};
use cloverleaf_worker::{Handlers, JobContext, Worker, WorkerOptions, WorkerStats};
use rust_decimal::Decimal;
use serde_json::json;

use crate::harness::t0;
use crate::server::Server;

/// What a handler saw: the job type, the lock owner the server recorded, and "now".
type Seen = Arc<Mutex<Vec<(String, Option<String>, DateTime<Utc>)>>>;

/// The finance handlers, each first noting the job's lock owner as the server's database has it.
fn observed(ledger: &Ledger, server: &Server, seen: &Seen) -> Handlers {
    let finance = finance::handlers(ledger);
    let mut handlers = Handlers::new();
    for job_type in finance.topics() {
        let inner = Arc::clone(finance.get(&job_type).unwrap());
        let (store, seen) = (server.engine.store().clone(), Arc::clone(seen));
        handlers.register(job_type, move |cx: JobContext| {
            let (inner, store, seen) = (Arc::clone(&inner), store.clone(), Arc::clone(&seen));
            async move {
                let owner = lock_owner(&store, cx.job.id.as_str()).await;
                seen.lock().unwrap().push((cx.job.job_type.clone(), owner, cx.now));
                inner.call(cx).await
            }
        });
    }
    handlers
}

/// The lock owner of `job` as the server's database has it.
async fn lock_owner(store: &AnyStore, job: &str) -> Option<String> {
    const SQL: &str = "SELECT lock_owner FROM jobs WHERE id = $1";
    match store {
        AnyStore::Sqlite(s) => sqlx::query_scalar(SQL).bind(job).fetch_one(s.reader()).await.unwrap(),
        AnyStore::Postgres(s) => sqlx::query_scalar(SQL).bind(job).fetch_one(s.pool()).await.unwrap(),
    }
}

async fn until(worker: &cloverleaf_worker::WorkerHandle, done: impl Fn(&WorkerStats) -> bool) -> WorkerStats {
    tokio::time::timeout(cloverleaf_testkit::deadline(), worker.wait_until(done))
        .await
        .unwrap_or_else(|_| panic!("the remote worker stalled: {:?}", worker.stats()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_worker_drives_order_to_cash_to_the_wait_for_payment() {
    let Some(server) = Server::start().await else { return };
    // The worker's own connection to the sub-ledger in the server's file, as on the same machine.
    let ledger = Ledger::connect(&server.db.url()).await.unwrap();
    ledger.seed_demo_company(t0().date_naive()).await.unwrap();
    let amount =
        ledger.record_order("SO-9", "C-001", t0().date_naive(), &[("PUMP-100", Decimal::from(2))]).await.unwrap();
    assert_eq!(amount.to_string(), "2500.00");

    let seen: Seen = Arc::default();
    let mut options = WorkerOptions::new("remote-7");
    options.poll_wait = Duration::from_secs(2);
    let worker = Worker::new(server.source("robot"), observed(&ledger, &server, &seen), options);
    let handle = worker.handle();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));

    let id = server.start_order("order_to_cash", "SO-9", "C-001", "2500.00").await;
    // The credit check approves a small order of an A customer: the order waits for dispatch.
    until(&handle, |s| s.completed >= 1).await;
    let (status, body) = server
        .post(
            "/v1/messages",
            "robot",
            json!({"name": "shipment.dispatched", "correlation_key": "SO-9",
                   "variables": {"shipment_id": "SH-1", "carrier": "DHL"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Invoice and cost of goods in parallel, then the customer's notification.
    let stats = until(&handle, |s| s.completed >= 4).await;
    assert_eq!((stats.failed, stats.business_errors, stats.lost_locks), (0, 0, 0), "{stats:?}");

    let instance = server.get(&format!("/v1/instances/{id}"), "ada").await;
    assert_eq!(instance["status"], "running");
    assert_eq!(instance["waiting"]["calls"][0]["node"], "collect", "{instance}");
    assert_eq!(instance["variables"]["approval_outcome"], "approved");
    let invoice = ledger.invoice_of_order("SO-9").await.unwrap().expect("invoiced");
    // Dated on the server's clock, not this machine's.
    assert_eq!(invoice.issue_date, t0().date_naive());
    assert_eq!(instance["variables"]["invoice_id"], invoice.invoice_id);

    let seen = seen.lock().unwrap().clone();
    let mut types: Vec<&str> = seen.iter().map(|(t, _, _)| t.as_str()).collect();
    types.sort_unstable();
    assert_eq!(types, ["credit.check", "invoice.issue", "ledger.post_cost", "outbox.notify"]);
    for (job_type, owner, now) in &seen {
        assert_eq!(owner.as_deref(), Some("remote-7"), "{job_type}");
        assert_eq!(now.date_naive(), t0().date_naive(), "{job_type}");
    }

    let _ = stop.send(());
    let stats = running.await.unwrap().unwrap();
    assert_eq!(stats.completed, 4);
    ledger.close().await;
    server.stop().await;
}
