//! A fresh database per test (a SQLite file, or a uniquely named PostgreSQL database), an engine
//! on a virtual clock, the reference processes.
//!
//! `CLOVERLEAF_TEST_BACKEND` picks the store: `sqlite` (the default) or `postgres`. PostgreSQL is
//! reached at `CLOVERLEAF_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432`, the server
//! without a database name); each test creates its own database there and drops it when done.
//! When the server cannot be reached a test is skipped with a notice, unless `CI` is set: then it
//! fails.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use cloverleaf_engine::runtime::Engine;
use cloverleaf_engine::store::{AnyStore, LockedJob};
use cloverleaf_engine::{Instance, InstanceId, Status, VirtualClock};
use serde_json::json;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// Monday 2026-01-05 09:00 UTC.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()
}

/// A name no other test (or test run) uses.
fn unique(prefix: &str, separator: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    [prefix, &std::process::id().to_string(), &n.to_string(), &nanos.to_string()].join(separator)
}

/// A database file removed when dropped.
pub struct TempDb {
    pub path: PathBuf,
}

impl TempDb {
    pub fn new() -> TempDb {
        let path = std::env::temp_dir().join(format!("{}.db", unique("cloverleaf-rt", "-")));
        TempDb { path }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

/// A PostgreSQL database of its own, dropped (with whatever connections remain) when dropped.
pub struct PgDb {
    server: String,
    pub name: String,
}

impl PgDb {
    /// Creates a uniquely named database; `None` (after a notice) when the server cannot be
    /// reached outside CI.
    async fn create() -> Option<PgDb> {
        let server = std::env::var("CLOVERLEAF_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
            .trim_end_matches('/')
            .to_string();
        let admin = format!("{server}/postgres");
        let connected = tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(&admin)).await;
        let mut conn = match connected {
            Ok(Ok(conn)) => conn,
            failed => {
                let reason = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_string(),
                };
                if std::env::var_os("CI").is_some() {
                    panic!("PostgreSQL not reachable at {server} ({reason}); CI is set, so this fails");
                }
                // Straight to stderr: libtest captures `eprintln!` of passing tests.
                let test = std::thread::current().name().unwrap_or("a test").to_string();
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: {test}: PostgreSQL not reachable at {server} ({reason}); \
                     set CLOVERLEAF_TEST_PG_URL, or run with CLOVERLEAF_TEST_BACKEND=sqlite"
                );
                return None;
            }
        };
        let name = unique("cloverleaf_rt", "_");
        sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await.unwrap();
        let _ = conn.close().await;
        Some(PgDb { server, name })
    }

    pub fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime: drop the database from a thread with its own.
        let admin = format!("{}/postgres", self.server);
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(&admin).await?;
                sqlx::query(&sql).execute(&mut conn).await?;
                conn.close().await
            })
            .map_err(std::io::Error::other)
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

/// The database of one test, on the backend `CLOVERLEAF_TEST_BACKEND` names.
pub enum TestDb {
    Sqlite(TempDb),
    Postgres(PgDb),
}

impl TestDb {
    /// A fresh database; `None` when the test is skipped (see the module docs).
    pub async fn new() -> Option<TestDb> {
        match std::env::var("CLOVERLEAF_TEST_BACKEND").as_deref() {
            Err(_) | Ok("" | "sqlite") => Some(TestDb::Sqlite(TempDb::new())),
            Ok("postgres" | "postgresql") => PgDb::create().await.map(TestDb::Postgres),
            Ok(other) => panic!("CLOVERLEAF_TEST_BACKEND={other}: expected `sqlite` or `postgres`"),
        }
    }

    pub fn url(&self) -> String {
        match self {
            TestDb::Sqlite(db) => db.path.display().to_string(),
            TestDb::Postgres(db) => db.url(),
        }
    }

    async fn open(&self, clock: &VirtualClock) -> Engine<AnyStore> {
        Engine::connect(&self.url(), Arc::new(clock.clone())).await.unwrap()
    }
}

/// An engine on its own database, with the clock tests move.
pub struct Env {
    pub engine: Engine<AnyStore>,
    pub clock: VirtualClock,
    pub db: TestDb,
}

impl Env {
    /// An engine on a fresh database; `None` when the test is skipped (see the module docs).
    pub async fn new() -> Option<Env> {
        let db = TestDb::new().await?;
        let clock = VirtualClock::new(t0());
        let engine = db.open(&clock).await;
        Some(Env { engine, clock, db })
    }

    /// With every reference process deployed.
    pub async fn reference() -> Option<Env> {
        let env = Env::new().await?;
        let files = reference_files();
        let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
        env.engine.deploy(&refs).await.unwrap();
        Some(env)
    }

    /// Drops the engine and opens the same database again (recovery runs).
    pub async fn restart(self) -> Env {
        let Env { engine, clock, db } = self;
        drop(engine);
        let engine = db.open(&clock).await;
        Env { engine, clock, db }
    }

    /// Drops the engine, lets `by` pass while it is down, and opens the database again.
    pub async fn restart_after(self, by: TimeDelta) -> Env {
        let Env { engine, clock, db } = self;
        drop(engine);
        clock.advance(by);
        let engine = db.open(&clock).await;
        Env { engine, clock, db }
    }

    /// Runs raw SQL with one text argument, written with SQLite's `?1` (rewritten for PostgreSQL).
    pub async fn execute(&self, sql: &str, arg: &str) {
        let store = self.engine.store();
        if let Some(sqlite) = store.as_sqlite() {
            sqlx::query(sql).bind(arg).execute(sqlite.pool()).await.unwrap();
        } else if let Some(pg) = store.as_postgres() {
            sqlx::query(&sql.replace("?1", "$1")).bind(arg).execute(pg.pool()).await.unwrap();
        }
    }

    pub async fn instance(&self, id: &InstanceId) -> Instance {
        self.engine.instance(id).await.unwrap()
    }

    pub async fn status(&self, id: &InstanceId) -> Status {
        self.instance(id).await.status().clone()
    }

    pub fn advance(&self, by: TimeDelta) {
        self.clock.advance(by);
    }

    /// Locks the one due job of `job_type`.
    pub async fn one_job(&self, job_type: &str) -> LockedJob {
        let mut jobs = self.engine.fetch_and_lock("w1", &[job_type], 10, TimeDelta::seconds(60)).await.unwrap();
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        jobs.remove(0)
    }

    /// Starts an order and answers its credit check.
    pub async fn order(&self, amount: &str, credit_limit: &str, risk: &str) -> InstanceId {
        let id = self
            .engine
            .start(
                "order_approval",
                Some("SO-1"),
                json!({"order_id": "SO-1", "customer_id": "C-7", "amount": amount, "requested_by": "rita"}),
            )
            .await
            .unwrap();
        let job = self.one_job("credit.check").await;
        assert_eq!(job.instance_id, id);
        self.engine
            .complete_job(&job.id, job.epoch, json!({"credit_limit": credit_limit, "open_ar": "0", "risk": risk}))
            .await
            .unwrap();
        id
    }
}

pub fn completed(outcome: &str) -> Status {
    Status::Completed { outcome: Some(outcome.into()) }
}

pub use crate::common::reference_files;

/// The roles file, for snippets that use roles.
pub fn roles() -> String {
    std::fs::read_to_string(format!("{}/../processes/roles.flow", env!("CARGO_MANIFEST_DIR"))).unwrap()
}
