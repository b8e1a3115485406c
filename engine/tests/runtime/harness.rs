//! A fresh database per test (a SQLite file, or a uniquely named PostgreSQL database), an engine
//! on a virtual clock, the reference processes.
//!
//! `CLOVERLEAF_TEST_BACKEND` picks the store: `sqlite` (the default) or `postgres`; the
//! database is a [`ScratchDb`], dropped when the test ends. When PostgreSQL cannot be reached a
//! test is skipped with a notice, unless `CI` is set: then it fails.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use cloverleaf_engine::runtime::Engine;
use cloverleaf_engine::store::{AnyStore, LockedJob};
use cloverleaf_engine::{Instance, InstanceId, Status, VirtualClock};
use cloverleaf_testkit::testdb::{Backend, ScratchDb};
use serde_json::json;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

/// Monday 2026-01-05 09:00 UTC.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()
}

/// The database of one test, on the backend `CLOVERLEAF_TEST_BACKEND` names.
pub struct TestDb(ScratchDb);

impl TestDb {
    /// A fresh database; `None` when the test is skipped (see the module docs).
    pub async fn new() -> Option<TestDb> {
        ScratchDb::new().await.map(TestDb)
    }

    pub fn url(&self) -> String {
        self.0.url()
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

    /// Changes who acted in the history entry `seq` of `instance`, as someone with write
    /// access to the database could.
    pub async fn tamper_who(&self, instance: &InstanceId, seq: i64, who: &str) {
        let store = self.engine.store();
        if let Some(sqlite) = store.as_sqlite() {
            let sql = "UPDATE events SET entries = json_set(entries, '$[' || (?2 - history_seq) || '][2]', ?3) \
                       WHERE instance_id = ?1 AND history_seq <= ?2 AND history_seq + json_array_length(entries) > ?2";
            let done =
                sqlx::query(sql).bind(instance.as_str()).bind(seq).bind(who).execute(sqlite.pool()).await.unwrap();
            assert_eq!(done.rows_affected(), 1);
        } else if let Some(pg) = store.as_postgres() {
            let sql = "UPDATE events \
                       SET entries = jsonb_set(entries::jsonb, ARRAY[($2 - history_seq)::text, '2'], to_jsonb($3::text))::text \
                       WHERE instance_id = $1 AND history_seq <= $2 AND history_seq + jsonb_array_length(entries::jsonb) > $2";
            let done = sqlx::query(sql).bind(instance.as_str()).bind(seq).bind(who).execute(pg.pool()).await.unwrap();
            assert_eq!(done.rows_affected(), 1);
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

/// A database as a build before migration `version` left it: its pool, for writing rows the way
/// that build did.
pub enum OldDb {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Applies to `db` the engine's migrations before `version` only.
pub async fn migrated_before(db: &ScratchDb, version: i64) -> OldDb {
    fn before(mut migrator: Migrator, version: i64) -> Migrator {
        let older: Vec<_> = migrator.migrations.iter().filter(|m| m.version < version).cloned().collect();
        assert!(older.len() < migrator.migrations.len(), "migration {version} is in the folder");
        migrator.migrations = older.into();
        migrator.set_ignore_missing(true);
        migrator
    }
    match db.backend() {
        Backend::Sqlite => {
            let options = SqliteConnectOptions::from_str(&db.url()).unwrap().create_if_missing(true);
            let pool = SqlitePool::connect_with(options).await.unwrap();
            before(sqlx::migrate!("./migrations"), version).run(&pool).await.unwrap();
            OldDb::Sqlite(pool)
        }
        Backend::Postgres => {
            let pool = PgPool::connect(&db.url()).await.unwrap();
            before(sqlx::migrate!("./migrations_pg"), version).run(&pool).await.unwrap();
            OldDb::Postgres(pool)
        }
    }
}
