//! The durable runtime: loads an instance, applies the pure core, and persists the new state and
//! every effect in one transaction, dispatching only after the commit.
//!
//! [`Engine`] is a cheap-to-clone handle. Every write goes to one writer task that applies
//! whatever has queued up as ONE transaction (group commit) and answers each caller only after
//! that transaction committed, so many concurrent callers share one `fsync`.
//!
//! A step: load the instance row → [`crate::step`](fn@crate::step) → (deliver buffered messages to
//! subscriptions the step opened, as further core steps) → one [`StepWrite`](crate::store::StepWrite) guarded by the
//! instance's version. A conflict (someone else stepped the instance first) loads and steps
//! again. Events owed to other instances (a child's start, its end reported to the parent, a
//! parent's cancel) are written as `pending_events` rows in the same transaction and applied
//! right after the commit, each in its own step that deletes the row: a crash in between leaves
//! the row, and [`Engine::recover`] (run by [`Engine::open`]) applies it on start-up.
//!
//! Catch-up policy: on start-up ([`Engine::open`] runs [`Engine::recover`]) every timer already
//! due fires once, each instance's timers in due order, stepped at the current time (not at the
//! missed due time); a repeating timer the core reschedules to a time still in the past fires
//! again in the same pass, until nothing is due.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cloverleaf_engine::runtime::Error> {
//! use std::sync::Arc;
//! use cloverleaf_engine::SystemClock;
//! use cloverleaf_engine::runtime::{Engine, EngineOptions};
//!
//! let engine = Engine::open(EngineOptions::new("cloverleaf.db", Arc::new(SystemClock))).await?;
//! engine.deploy(&[("p.flow", "process p \"P\" { start -> done  end done \"Done\" }")]).await?;
//! let id = engine.start("p", None, serde_json::json!({})).await?;
//! # let _ = id; Ok(()) }
//! ```

mod archive;
mod connect;
mod deploy;
mod gather;
mod jobs;
mod messages;
mod migrate;
mod notices;
mod plan;
pub mod query;
mod scheduler;
mod sessions;
mod start;
mod tasks;
mod timers;
mod writer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, TimeDelta, Utc};
use cloverleaf_dsl::CompiledProcess;
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::clock::Clock;
use crate::event::Event;
use crate::ids::{IncidentId, InstanceId};
use crate::instance::Instance;
use crate::rejection::Rejection;
use crate::store::{
    self, Guard, HistoryCheck, HistoryRow, InstanceRow, MessageRow, PendingRow, SqliteStore, Store, Write, WriteError,
    WriteOutcome,
};
pub use archive::{ARCHIVE_BATCH, ArchiveOptions, ArchiveReport, Refusal, Refused};
pub use gather::POSTGRES_WRITE_LINGER;
pub use migrate::{InstanceMigration, MIGRATION_BATCH, MigrationOutcome, MigrationReport, MigrationRequest};
pub use scheduler::{Scheduler, SchedulerHandle, SchedulerOptions, SchedulerStats};
use writer::write_loop;

/// The "next fire" of a schedule that never fires again: far beyond any real fire.
fn never() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(253_402_214_400, 0).unwrap_or(DateTime::<Utc>::MAX_UTC) // 9999-12-31
}

/// How often a step is tried again after optimistic-concurrency conflicts before giving up.
const MAX_ATTEMPTS: usize = 64;

/// A runtime failure or refusal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// A batch write failed in the database.
    #[error("write failed: {0}")]
    Write(String),
    /// The sources do not compile.
    #[error("the processes do not compile:\n{0}")]
    Compile(String),
    /// No deployment of this process (and version).
    #[error("process `{0}` is not deployed")]
    UnknownProcess(String),
    /// A deployed process has no such version.
    #[error("process `{process}` has no version {version}")]
    UnknownVersion {
        /// The process key.
        process: String,
        /// The version asked for.
        version: u32,
    },
    /// No such instance.
    #[error("no instance `{0}`")]
    UnknownInstance(String),
    /// No such job.
    #[error("no job `{0}`")]
    UnknownJob(String),
    /// No such task.
    #[error("no task `{0}`")]
    UnknownTask(String),
    /// No open incident with this id.
    #[error("no open incident `{0}`")]
    UnknownIncident(String),
    /// An archive run that cannot start as asked.
    #[error("cannot archive: {0}")]
    InvalidArchive(String),
    /// The core refused the event.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// A migration request that cannot run as asked: (what, why) for every problem.
    #[error("invalid migration: {}", .0.iter().map(|(a, b)| format!("{a}: {b}")).collect::<Vec<_>>().join("; "))]
    InvalidMigration(Vec<(String, String)>),
    /// The job is not locked with this epoch (another worker holds it, or it is finished).
    #[error("job `{job}` is not locked with epoch {epoch}")]
    StaleLock {
        /// The job.
        job: String,
        /// The epoch presented.
        epoch: i64,
    },
    /// The job's lease ran out: it may be handed to another worker.
    #[error("the lease on job `{job}` expired")]
    LeaseExpired {
        /// The job.
        job: String,
    },
    /// The user holds none of the task's roles and is not its assignee.
    #[error("`{user}` may not act on task `{task}`: not a candidate")]
    NotCandidate {
        /// The user.
        user: String,
        /// The task.
        task: String,
    },
    /// The task is claimed by someone else.
    #[error("task `{task}` is claimed by another user")]
    TaskClaimed {
        /// The task.
        task: String,
    },
    /// The task is no longer open.
    #[error("task `{task}` is closed")]
    TaskClosed {
        /// The task.
        task: String,
    },
    /// A substitute or delegate that cannot be named.
    #[error("{0}")]
    InvalidSubstitute(String),
    /// A message with this id was received before.
    #[error("message `{0}` was received before")]
    DuplicateMessage(String),
    /// The owed event was applied already (by another task or engine node).
    #[error("the owed event was applied already")]
    AlreadyApplied,
    /// The step kept conflicting with concurrent steps.
    #[error("instance `{0}` kept changing concurrently")]
    Contention(String),
    /// The writer task stopped.
    #[error("the engine is stopped")]
    Stopped,
    /// A JSON value could not be read or written.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

/// How to open an engine on SQLite.
pub struct EngineOptions {
    /// The database file.
    pub path: PathBuf,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
    /// Most writes in one transaction.
    pub max_batch: usize,
}

impl EngineOptions {
    /// Options with the default batch size.
    pub fn new(path: impl Into<PathBuf>, clock: Arc<dyn Clock>) -> EngineOptions {
        EngineOptions { path: path.into(), clock, max_batch: 1024 }
    }
}

/// One process deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    /// The process key.
    pub key: String,
    /// Its version.
    pub version: u32,
    /// sha256 of its compiled JSON.
    pub hash: String,
    /// False when the same definition was deployed before (nothing changed).
    pub created: bool,
}

/// A message to correlate.
#[derive(Debug, Clone)]
pub struct Message {
    /// The name.
    pub name: String,
    /// The correlation key.
    pub correlation_key: String,
    /// The payload (a JSON object).
    pub payload: serde_json::Value,
    /// Makes delivery idempotent; one is generated when absent.
    pub message_id: Option<String>,
    /// How long it stays buffered when nobody waits for it yet.
    pub ttl: TimeDelta,
}

/// What became of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Correlation {
    /// It reached this instance (waiting for it, or started by it through a message start).
    Delivered {
        /// The instance.
        instance: InstanceId,
    },
    /// Nobody waits for it yet: it is buffered until its time-to-live runs out.
    Buffered,
    /// A message with the same id was received before: nothing happened.
    Duplicate,
}

struct Request {
    write: Write,
    reply: oneshot::Sender<Result<WriteOutcome, WriteError>>,
}

/// Counters of the group-commit writer, and its linger (see [`Engine::set_write_linger`]).
#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    writes: AtomicU64,
    busy_micros: AtomicU64,
    linger_micros: AtomicU64,
}

/// What the group-commit writer has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed.
    pub batches: u64,
    /// Writes applied (steps, fetches, claims...).
    pub writes: u64,
    /// Time spent inside transactions, in microseconds.
    pub busy_micros: u64,
}

/// An instance as this engine last wrote it: what a step needs, without reading the store.
/// Another engine node writing the same instance makes the next write conflict, which evicts it.
struct Cached {
    instance: Instance,
    version: i64,
    parent: Option<(String, String)>,
    history_seq: i64,
    history_hash: String,
}

impl Cached {
    /// The instance as its stored row holds it.
    fn of_row(row: &InstanceRow) -> Result<Cached, Error> {
        Ok(Cached {
            instance: Instance::from_json(&row.state)?,
            version: row.version,
            parent: row.parent_id.clone().zip(row.parent_call.clone()),
            history_seq: row.history_seq,
            history_hash: row.history_hash.clone(),
        })
    }
}

/// A job lock this engine handed out: (instance, epoch, lease end).
type HeldLock = (String, i64, DateTime<Utc>);

/// Most instances (and job locks) kept in memory before the caches are emptied.
const CACHE_LIMIT: usize = 100_000;

struct Inner<S: Store> {
    store: S,
    cache: std::sync::Mutex<HashMap<String, Arc<Cached>>>,
    locks: std::sync::Mutex<HashMap<String, HeldLock>>,
    counters: Arc<Counters>,
    clock: Arc<dyn Clock>,
    writer: mpsc::UnboundedSender<Request>,
    definitions: RwLock<HashMap<(String, u32), Arc<CompiledProcess>>>,
    latest: RwLock<deploy::Latest>,
    prefix: String,
    counter: AtomicU64,
    wake: Notify,
    jobs_ready: watch::Sender<u64>,
}

/// The durable engine: a cheap-to-clone handle.
pub struct Engine<S: Store = SqliteStore> {
    inner: Arc<Inner<S>>,
}

impl<S: Store> Clone for Engine<S> {
    fn clone(&self) -> Self {
        Engine { inner: Arc::clone(&self.inner) }
    }
}

/// An instance to start: its id, business key, inputs and start node.
struct NewInstance<'a> {
    id: &'a str,
    business_key: Option<String>,
    variables: serde_json::Value,
    start: Option<String>,
    starter: Option<Starter>,
}

/// The authenticated person who starts an instance, recorded in its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Starter {
    /// Who sent the start.
    pub user: String,
    /// The requester they act for, when their role allows naming someone else.
    pub on_behalf_of: Option<String>,
}

impl Starter {
    /// A user starting for themselves.
    pub fn user(user: impl Into<String>) -> Starter {
        Starter { user: user.into(), on_behalf_of: None }
    }
}

/// What one step did.
struct Stepped {
    pending: Vec<PendingRow>,
}

/// What one recovery did: timers fired and instances started by cron schedules.
struct Recovered {
    timers_fired: usize,
    instances_started: usize,
}

/// Extra conditions and records of a step.
#[derive(Default, Clone)]
struct Extra {
    guards: Vec<Guard>,
    record_message: Option<MessageRow>,
    consume_pending: Option<String>,
}

impl Engine<SqliteStore> {
    /// Opens the SQLite file (creating and migrating it), then recovers: owed events are applied
    /// and overdue timers fire.
    pub async fn open(options: EngineOptions) -> Result<Engine<SqliteStore>, Error> {
        let store = SqliteStore::open(&options.path).await?;
        let engine = Engine::with_store(store, options.clock, options.max_batch);
        engine.recover().await?;
        Ok(engine)
    }
}

impl<S: Store> Engine<S> {
    /// An engine on `store`; spawns the writer task (call inside a tokio runtime).
    pub fn with_store(store: S, clock: Arc<dyn Clock>, max_batch: usize) -> Engine<S> {
        let (writer, requests) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        // The writer runs on its own thread: its statements are awaited one after another, and
        // on a busy runtime each await would queue behind every runnable task.
        let (writer_store, writer_counters) = (store.clone(), Arc::clone(&counters));
        let spawned = std::thread::Builder::new().name("cloverleaf-writer".into()).spawn(move || {
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt.block_on(write_loop(writer_store, requests, max_batch.max(1), writer_counters)),
                Err(error) => tracing::error!(%error, "cannot start the writer runtime"),
            }
        });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the writer thread");
        }
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        Engine {
            inner: Arc::new(Inner {
                store,
                cache: std::sync::Mutex::new(HashMap::new()),
                locks: std::sync::Mutex::new(HashMap::new()),
                counters,
                clock,
                writer,
                definitions: RwLock::new(HashMap::new()),
                latest: RwLock::new(deploy::Latest::default()),
                prefix: base36(nanos),
                counter: AtomicU64::new(0),
                wake: Notify::new(),
                jobs_ready: watch::Sender::new(0),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// What the group-commit writer has done so far.
    pub fn writer_stats(&self) -> WriterStats {
        let c = &self.inner.counters;
        WriterStats {
            batches: c.batches.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            busy_micros: c.busy_micros.load(Ordering::Relaxed),
        }
    }

    /// How long the group-commit writer waits for more writes before it commits a batch, when
    /// that batch or the one before it holds more than one write (a lone caller is written at
    /// once), and only until it holds 16. Fewer, fuller transactions for a few milliseconds more a write: worth it where each
    /// statement is a network round trip ([`POSTGRES_WRITE_LINGER`] is
    /// [`Engine::connect`]'s default on PostgreSQL); zero (the default otherwise) commits what has
    /// queued as soon as the batch before it committed.
    pub fn set_write_linger(&self, linger: std::time::Duration) {
        let micros = u64::try_from(linger.as_micros()).unwrap_or(u64::MAX);
        self.inner.counters.linger_micros.store(micros, Ordering::Relaxed);
    }

    /// The writer's linger (see [`Engine::set_write_linger`]).
    pub fn write_linger(&self) -> std::time::Duration {
        std::time::Duration::from_micros(self.inner.counters.linger_micros.load(Ordering::Relaxed))
    }

    /// The clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Applies every owed event, fires every overdue timer and starts every due cron start
    /// (coalesced, see [`Engine::fire_due_schedules`]); returns how many timers fired and
    /// instances started.
    pub async fn recover(&self) -> Result<usize, Error> {
        let recovered = self.recover_counted().await?;
        Ok(recovered.timers_fired + recovered.instances_started)
    }

    /// Applies every owed event (committed by a step, not yet applied to its target).
    async fn apply_owed_events(&self) -> Result<(), Error> {
        loop {
            let pending = self.inner.store.pending(256).await?;
            if pending.is_empty() {
                return Ok(());
            }
            self.settle(pending).await?;
        }
    }

    /// [`Engine::recover`], with the timers fired and the cron starts counted apart (the
    /// scheduler reports them separately).
    async fn recover_counted(&self) -> Result<Recovered, Error> {
        self.apply_owed_events().await?;
        let timers_fired = self.fire_due_timers().await?;
        let instances_started = self.fire_due_schedules().await?;
        Ok(Recovered { timers_fired, instances_started })
    }

    /// The current state of an instance.
    pub async fn instance(&self, id: &InstanceId) -> Result<Instance, Error> {
        let row = self.inner.store.load_instance(id).await?.ok_or_else(|| Error::UnknownInstance(id.0.clone()))?;
        Ok(Instance::from_json(&row.state)?)
    }

    /// The current state of each of `ids` that exists, by id, in one read (an inbox's tasks, say).
    pub async fn instances(&self, ids: &[InstanceId]) -> Result<std::collections::HashMap<String, Instance>, Error> {
        let mut wanted: Vec<InstanceId> = ids.to_vec();
        wanted.sort_by(|a, b| a.0.cmp(&b.0));
        wanted.dedup();
        let rows = self.inner.store.load_instances(&wanted).await?;
        rows.into_iter().map(|row| Ok((row.id, Instance::from_json(&row.state)?))).collect()
    }

    /// Cancels an instance and everything it has open.
    pub async fn cancel(&self, instance: &InstanceId, by: &str) -> Result<(), Error> {
        let stepped = self.run(instance.as_str(), Event::Cancel { by: by.to_string() }, Extra::default()).await?;
        self.settle(stepped.pending).await
    }

    /// An operator repairs a running instance (cancels a token, starts one before a node, sets
    /// a variable), recorded in its history with `by` and `reason`; one step like any other.
    pub async fn modify(
        &self,
        instance: &InstanceId,
        modification: crate::event::Modification,
        by: &str,
        reason: &str,
    ) -> Result<(), Error> {
        let event = Event::Modify { modification, by: by.to_string(), reason: reason.to_string() };
        let stepped = self.run(instance.as_str(), event, Extra::default()).await?;
        self.settle(stepped.pending).await
    }

    /// An operator retries an incident: its job runs again, or its node is re-entered.
    pub async fn retry_incident(&self, incident: &IncidentId) -> Result<(), Error> {
        let (instance, job) =
            self.inner.store.incident(incident).await?.ok_or_else(|| Error::UnknownIncident(incident.0.clone()))?;
        let event = match job {
            Some(job) => Event::RetryJob { job },
            None => Event::ResolveIncident { incident: incident.clone() },
        };
        let stepped = self.run(instance.as_str(), event, Extra::default()).await?;
        self.settle(stepped.pending).await
    }

    /// The history rows of an instance.
    pub async fn history(&self, instance: &InstanceId) -> Result<Vec<HistoryRow>, Error> {
        Ok(self.inner.store.history(instance).await?)
    }

    /// The accepted events of an instance, in order, with the time each was applied.
    pub async fn events(&self, instance: &InstanceId) -> Result<Vec<(Event, DateTime<Utc>)>, Error> {
        let rows = self.inner.store.events(instance).await?;
        rows.into_iter().map(|(at, text)| Ok((serde_json::from_str(&text)?, at))).collect()
    }

    /// Recomputes an instance's history hash chain and reports the first altered row.
    pub async fn verify_history(&self, instance: &InstanceId) -> Result<HistoryCheck, Error> {
        let row = self
            .inner
            .store
            .load_instance(instance)
            .await?
            .ok_or_else(|| Error::UnknownInstance(instance.0.clone()))?;
        let rows = self.inner.store.history(instance).await?;
        Ok(HistoryCheck::verify(&rows, row.history_seq, &row.history_hash))
    }
}

fn base36(mut n: u128) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}
