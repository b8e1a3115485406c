//! A fresh SQLite file per test, an engine on a virtual clock, the reference processes.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use cloverleaf_engine::runtime::{Engine, EngineOptions};
use cloverleaf_engine::store::LockedJob;
use cloverleaf_engine::{Instance, InstanceId, Status, VirtualClock};
use serde_json::json;

/// Monday 2026-01-05 09:00 UTC.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()
}

/// A database file removed when dropped.
pub struct TempDb {
    pub path: PathBuf,
}

impl TempDb {
    pub fn new() -> TempDb {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let path = std::env::temp_dir().join(format!("cloverleaf-rt-{}-{n}-{nanos}.db", std::process::id()));
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

/// An engine on its own file, with the clock tests move.
pub struct Env {
    pub engine: Engine,
    pub clock: VirtualClock,
    pub db: TempDb,
}

impl Env {
    pub async fn new() -> Env {
        let db = TempDb::new();
        let clock = VirtualClock::new(t0());
        let engine = Engine::open(EngineOptions::new(&db.path, Arc::new(clock.clone()))).await.unwrap();
        Env { engine, clock, db }
    }

    /// With every reference process deployed.
    pub async fn reference() -> Env {
        let env = Env::new().await;
        let files = reference_files();
        let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
        env.engine.deploy(&refs).await.unwrap();
        env
    }

    /// Drops the engine and opens the same file again (recovery runs).
    pub async fn restart(self) -> Env {
        let Env { engine, clock, db } = self;
        drop(engine);
        let engine = Engine::open(EngineOptions::new(&db.path, Arc::new(clock.clone()))).await.unwrap();
        Env { engine, clock, db }
    }

    /// Drops the engine, lets `by` pass while it is down, and opens the file again.
    pub async fn restart_after(self, by: TimeDelta) -> Env {
        let Env { engine, clock, db } = self;
        drop(engine);
        clock.advance(by);
        let engine = Engine::open(EngineOptions::new(&db.path, Arc::new(clock.clone()))).await.unwrap();
        Env { engine, clock, db }
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
