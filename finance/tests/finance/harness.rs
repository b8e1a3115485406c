//! A fresh database per test (a SQLite file, or a PostgreSQL database with
//! `CLOVERLEAF_TEST_BACKEND=postgres`), with an engine on a virtual clock, the reference processes
//! and the seeded demo company in it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use cloverleaf_engine::runtime::Engine;
use cloverleaf_engine::store::{AnyStore, TaskInfo};
use cloverleaf_engine::{Clock, InstanceId, JobId, Status, VirtualClock};
use cloverleaf_finance::{self as finance, Ledger};
use cloverleaf_testkit::testdb::ScratchDb;
use cloverleaf_worker::{HandlerResult, Handlers, Job, JobContext, Worker, WorkerHandle, WorkerOptions, WorkerStats};
use rust_decimal::Decimal;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Monday 2026-01-05 09:00 UTC.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()
}

pub fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

pub fn dec(s: &str) -> Decimal {
    Decimal::from_str_exact(s).unwrap()
}

/// Every `.flow` file of `processes/`.
pub fn reference_files() -> Vec<(String, String)> {
    let dir = format!("{}/../processes", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".flow"))
        .collect();
    names.sort();
    names.into_iter().map(|n| (n.clone(), std::fs::read_to_string(format!("{dir}/{n}")).unwrap())).collect()
}

/// An engine and a seeded ledger on one database of their own, with the clock tests move.
pub struct Env {
    pub engine: Engine<AnyStore>,
    pub ledger: Ledger,
    pub clock: VirtualClock,
    /// Dropped last: a PostgreSQL database is dropped with it.
    pub db: ScratchDb,
}

impl Env {
    /// A fresh environment; `None` (after a `SKIPPED` notice) when the test backend is
    /// PostgreSQL and no server is reachable outside CI.
    pub async fn new() -> Option<Env> {
        let db = ScratchDb::new().await?;
        let clock = VirtualClock::new(t0());
        let engine = Engine::connect(&db.url(), Arc::new(clock.clone())).await.unwrap();
        let files = reference_files();
        let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
        engine.deploy(&refs).await.unwrap();
        let ledger = Ledger::connect(&db.url()).await.unwrap();
        ledger.seed_demo_company(t0().date_naive()).await.unwrap();
        Some(Env { engine, ledger, clock, db })
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn today(&self) -> NaiveDate {
        self.now().date_naive()
    }

    pub fn advance(&self, by: TimeDelta) {
        self.clock.advance(by);
    }

    /// Runs the finance handlers (plus `extra`) in a worker until the returned guard stops it.
    pub fn worker(&self, extra: Handlers, options: WorkerOptions) -> Running {
        let mut handlers = finance::handlers(&self.ledger);
        handlers.merge(extra);
        spawn_worker(self.engine.clone(), handlers, options)
    }

    pub async fn status(&self, id: &InstanceId) -> Status {
        self.engine.instance(id).await.unwrap().status().clone()
    }

    /// An instance's variables as JSON.
    pub async fn variables(&self, id: &InstanceId) -> Value {
        let instance = self.engine.instance(id).await.unwrap();
        Value::Object(instance.variables().iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
    }

    /// Calls a built-in handler directly with a job context.
    pub async fn call(&self, job_type: &str, key: &str, input: Value) -> HandlerResult {
        let handlers = finance::handlers(&self.ledger);
        let handler = handlers.get(job_type).unwrap_or_else(|| panic!("no handler for {job_type}"));
        handler.call(context(job_type, key, input, self.now())).await
    }

    /// Number of journal entries of `kind`.
    pub async fn entries(&self, kind: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM journal_entries WHERE kind = $1")
            .bind(kind)
            .fetch_one(self.ledger.pool())
            .await
            .unwrap()
    }

    /// The trial balance must be balanced after anything a test did.
    pub async fn assert_balanced(&self) {
        let tb = self.ledger.trial_balance().await.unwrap();
        assert!(tb.is_balanced(), "{tb:#?}");
    }
}

/// A job context for calling a handler directly.
pub fn context(job_type: &str, key: &str, input: Value, now: DateTime<Utc>) -> JobContext {
    JobContext {
        job: Job {
            id: JobId::from(format!("test/{key}")),
            instance_id: InstanceId::from("test"),
            node: "node".into(),
            job_type: job_type.into(),
            input,
            idempotency_key: key.into(),
            attempt: 1,
            epoch: 1,
            lock_expires_at: now + TimeDelta::seconds(60),
        },
        now,
    }
}

/// A worker running in the background.
pub struct Running {
    pub handle: WorkerHandle,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<WorkerStats, cloverleaf_worker::runtime::Error>>>,
}

pub fn spawn_worker<S: cloverleaf_worker::JobSource>(source: S, handlers: Handlers, options: WorkerOptions) -> Running {
    let worker = Worker::new(source, handlers, options);
    let handle = worker.handle();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    Running { handle, stop: Some(stop), task: Some(task) }
}

impl Running {
    /// Waits (at most the test deadline of real time, so a broken test fails instead of hanging) until the
    /// worker's counters satisfy `done`.
    pub async fn until(&self, done: impl Fn(&WorkerStats) -> bool) -> WorkerStats {
        match tokio::time::timeout(cloverleaf_testkit::deadline(), self.handle.wait_until(done)).await {
            Ok(stats) => stats,
            Err(_) => panic!("the worker did not get there: {:?}", self.handle.stats()),
        }
    }

    /// Waits until the instance has `expected` status, checking after each thing the worker does.
    pub async fn until_status(&self, env: &Env, id: &InstanceId, expected: &Status) {
        let wait = async {
            loop {
                let before = self.handle.stats();
                if &env.status(id).await == expected {
                    return;
                }
                self.handle.wait_until(|s| s != &before).await;
            }
        };
        if tokio::time::timeout(cloverleaf_testkit::deadline(), wait).await.is_err() {
            panic!("{id} is {:?}, not {expected:?}; worker: {:?}", env.status(id).await, self.handle.stats());
        }
    }

    /// Waits until an open task of node `node` exists, checking after each thing the worker does.
    pub async fn until_task(&self, env: &Env, node: &str) -> TaskInfo {
        let wait = async {
            loop {
                let before = self.handle.stats();
                let tasks = env.engine.tasks(None).await.unwrap();
                if let Some(task) = tasks.into_iter().find(|t| t.node == node) {
                    return task;
                }
                self.handle.wait_until(|s| s != &before).await;
            }
        };
        match tokio::time::timeout(cloverleaf_testkit::deadline(), wait).await {
            Ok(task) => task,
            Err(_) => panic!("no open task {node}; worker: {:?}", self.handle.stats()),
        }
    }

    /// Asks the worker to stop without waiting for it.
    pub fn request_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Stops the worker and waits until it has.
    pub async fn stop(mut self) -> WorkerStats {
        self.request_stop();
        let task = self.task.take().unwrap();
        tokio::time::timeout(cloverleaf_testkit::deadline(), task).await.expect("the worker stops").unwrap().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Options for tests: short waits so a job made due by the clock alone is seen soon.
pub fn options() -> WorkerOptions {
    let mut options = WorkerOptions::new("test-worker");
    options.poll_wait = Duration::from_millis(200);
    options.shutdown_grace = Duration::from_secs(5);
    options
}

pub fn completed(outcome: &str) -> Status {
    Status::Completed { outcome: Some(outcome.into()) }
}

/// Two nodes' handles on one seeded database: two `Ledger`s, each with its own pools (and its
/// own queue of invoices).
pub async fn two_nodes() -> Option<(ScratchDb, Ledger, Ledger)> {
    let db = ScratchDb::new().await?;
    let url = db.url();
    let (a, b) = tokio::join!(Ledger::connect(&url), Ledger::connect(&url));
    let (a, b) = (a.unwrap(), b.unwrap());
    a.seed_demo_company(t0().date_naive()).await.unwrap();
    Some((db, a, b))
}

/// `f` must finish within the test deadline (a loaded machine is slow, not broken).
pub async fn within_deadline<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(cloverleaf_testkit::deadline(), f).await.unwrap_or_else(|_| panic!("{what} never finished"))
}

/// Issues an order's invoice on `ledger` in a task of its own: its number.
pub fn issue(ledger: &Ledger, key: &str, order: &str, customer: &str, amount: &str) -> tokio::task::JoinHandle<String> {
    let (ledger, key, order, customer, amount) =
        (ledger.clone(), key.to_string(), order.to_string(), customer.to_string(), dec(amount));
    tokio::spawn(
        async move { ledger.issue_invoice(&key, t0(), &order, &customer, amount).await.unwrap().invoice_number },
    )
}

/// The numbers of the invoices of orders (of `customer`, or everyone's), in order.
pub async fn invoice_numbers(ledger: &Ledger, customer: Option<&str>) -> Vec<String> {
    sqlx::query(
        "SELECT number FROM invoices WHERE order_id IS NOT NULL AND ($1 IS NULL OR customer_id = $1) ORDER BY number",
    )
    .bind(customer)
    .fetch_all(ledger.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| sqlx::Row::get(r, 0))
    .collect()
}
