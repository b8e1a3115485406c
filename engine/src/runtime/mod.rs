//! The durable runtime: loads an instance, applies the pure core, and persists the new state and
//! every effect in one transaction, dispatching only after the commit.
//!
//! [`Engine`] is a cheap-to-clone handle. Every write goes to one writer task that applies
//! whatever has queued up as ONE transaction (group commit) and answers each caller only after
//! that transaction committed, so many concurrent callers share one `fsync`.
//!
//! A step: load the instance row → [`crate::step`] → (deliver buffered messages to
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

mod connect;
mod plan;
pub mod query;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, TimeDelta, Utc};
use cloverleaf_dsl::model::{NodeKind, Trigger};
use cloverleaf_dsl::{CompiledProcess, Project};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::clock::Clock;
use crate::effect::Effect;
use crate::event::Event;
use crate::ids::{IncidentId, InstanceId, JobId, TaskId};
use crate::instance::Instance;
use crate::rejection::Rejection;
use crate::step::{Transition, step};
use crate::store::{
    self, DeploymentRow, Guard, HistoryCheck, HistoryRow, JobChange, LockedJob, MessageRow, PendingRow, SqliteStore,
    Store, TaskInfo, Write, WriteError, WriteOutcome,
};
use plan::{Before, NewChild, plan};

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
    /// The core refused the event.
    #[error(transparent)]
    Rejected(#[from] Rejection),
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

/// Counters of the group-commit writer.
#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    writes: AtomicU64,
    busy_micros: AtomicU64,
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
    latest: RwLock<HashMap<String, u32>>,
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
                latest: RwLock::new(HashMap::new()),
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

    /// The clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Applies every owed event, fires every overdue timer and starts every due cron start
    /// (coalesced, see [`Engine::fire_due_schedules`]); returns how many timers fired and
    /// instances started.
    pub async fn recover(&self) -> Result<usize, Error> {
        loop {
            let pending = self.inner.store.pending(256).await?;
            if pending.is_empty() {
                break;
            }
            self.settle(pending).await?;
        }
        let fired = self.fire_due_timers().await?;
        Ok(fired + self.fire_due_schedules().await?)
    }

    /// Compiles `files` (name, text) together and deploys every process in them. A process whose
    /// compiled form is unchanged keeps its version; a changed one gets the next version.
    pub async fn deploy(&self, files: &[(&str, &str)]) -> Result<Vec<Deployed>, Error> {
        let mut project = Project::new();
        let mut source = String::new();
        for (name, text) in files {
            project.add(*name, *text);
            source.push_str(&format!("# file: {name}\n{text}\n"));
        }
        let compilation = project.compile();
        if compilation.has_errors() {
            return Err(Error::Compile(compilation.render()));
        }
        let mut deployed = Vec::new();
        for process in &compilation.processes {
            deployed.push(self.deploy_compiled(process, &source).await?);
        }
        Ok(deployed)
    }

    /// Deploys one compiled process with the source it came from (idempotent by hash).
    pub async fn deploy_compiled(&self, process: &CompiledProcess, source: &str) -> Result<Deployed, Error> {
        let compiled = process.to_json();
        let hash = store::sha256_hex(compiled.as_bytes());
        let row = DeploymentRow {
            key: process.key.clone(),
            version: 0,
            hash: hash.clone(),
            source: source.to_string(),
            compiled,
            at: self.now(),
        };
        match self.submit(Write::Deploy(row)).await? {
            WriteOutcome::Deployed { version, created } => {
                let newest = {
                    let mut latest = self.inner.latest.write().unwrap_or_else(PoisonError::into_inner);
                    let entry = latest.entry(process.key.clone()).or_insert(version);
                    *entry = (*entry).max(version);
                    *entry == version
                };
                if newest {
                    self.set_schedules(process).await?;
                }
                Ok(Deployed { key: process.key.clone(), version, hash, created })
            }
            other => Err(Error::Write(format!("unexpected outcome {other:?}"))),
        }
    }

    /// The definition an instance runs.
    pub async fn definition(&self, key: &str, version: u32) -> Result<Arc<CompiledProcess>, Error> {
        if let Some(d) =
            self.inner.definitions.read().unwrap_or_else(PoisonError::into_inner).get(&(key.to_string(), version))
        {
            return Ok(Arc::clone(d));
        }
        let row = self
            .inner
            .store
            .deployment(key, Some(version))
            .await?
            .ok_or_else(|| Error::UnknownProcess(format!("{key} v{version}")))?;
        let definition: Arc<CompiledProcess> = Arc::new(serde_json::from_str(&row.compiled)?);
        self.inner
            .definitions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((key.to_string(), version), Arc::clone(&definition));
        Ok(definition)
    }

    /// The latest deployed version of a process.
    pub async fn latest_version(&self, key: &str) -> Result<u32, Error> {
        if let Some(v) = self.inner.latest.read().unwrap_or_else(PoisonError::into_inner).get(key) {
            return Ok(*v);
        }
        let row = self.inner.store.deployment(key, None).await?.ok_or_else(|| Error::UnknownProcess(key.into()))?;
        self.inner.latest.write().unwrap_or_else(PoisonError::into_inner).insert(key.to_string(), row.version);
        Ok(row.version)
    }

    /// Starts an instance of the latest version of `process`.
    pub async fn start(
        &self,
        process: &str,
        business_key: Option<&str>,
        variables: serde_json::Value,
    ) -> Result<InstanceId, Error> {
        let version = self.latest_version(process).await?;
        self.start_version(process, version, business_key, variables).await
    }

    /// Starts an instance of one deployed version of `process`.
    pub async fn start_version(
        &self,
        process: &str,
        version: u32,
        business_key: Option<&str>,
        variables: serde_json::Value,
    ) -> Result<InstanceId, Error> {
        let definition = self.definition(process, version).await?;
        let id = self.next_id("i");
        let business_key = business_key.map(str::to_string);
        let start = NewInstance { id: &id, business_key, variables, start: None, starter: None };
        self.start_instance(&definition, version, start, Extra::default()).await?.ok_or(Error::Contention(id))
    }

    /// Starts an instance of `process` (the latest version, or `version`) for an authenticated
    /// user, who is recorded as its starter. With `once_id`, at most once per id: when that
    /// instance exists already nothing starts and the answer is it with `false`.
    pub async fn start_for(
        &self,
        starter: &Starter,
        process: &str,
        version: Option<u32>,
        business_key: Option<&str>,
        variables: serde_json::Value,
        once_id: Option<&str>,
    ) -> Result<(InstanceId, bool), Error> {
        if let Some(id) = once_id
            && self.inner.store.load_instance(id).await?.is_some()
        {
            return Ok((InstanceId(id.to_string()), false));
        }
        let version = match version {
            Some(v) => v,
            None => self.latest_version(process).await?,
        };
        let definition = self.definition(process, version).await?;
        let id = once_id.map_or_else(|| self.next_id("i"), str::to_string);
        let business_key = business_key.map(str::to_string);
        let start = NewInstance { id: &id, business_key, variables, start: None, starter: Some(starter.clone()) };
        match self.start_instance(&definition, version, start, Extra::default()).await? {
            Some(id) => Ok((id, true)),
            None if once_id.is_some() => Ok((InstanceId(id), false)),
            None => Err(Error::Contention(id)),
        }
    }

    /// Starts an instance of `process` (the latest version, or `version`) under the id `id`,
    /// once: when an instance with that id exists already, nothing starts and the answer is
    /// that instance with `false`. Lets a client retry a start whose answer it never got.
    pub async fn start_once(
        &self,
        id: &str,
        process: &str,
        version: Option<u32>,
        business_key: Option<&str>,
        variables: serde_json::Value,
    ) -> Result<(InstanceId, bool), Error> {
        if self.inner.store.load_instance(id).await?.is_some() {
            return Ok((InstanceId(id.to_string()), false));
        }
        let version = match version {
            Some(v) => v,
            None => self.latest_version(process).await?,
        };
        let definition = self.definition(process, version).await?;
        let start =
            NewInstance { id, business_key: business_key.map(str::to_string), variables, start: None, starter: None };
        let started = self.start_instance(&definition, version, start, Extra::default()).await?;
        Ok((InstanceId(id.to_string()), started.is_some()))
    }

    /// Starts an instance with a chosen id (at a chosen start node); `None` when an instance with
    /// that id exists already, which makes scheduled and message starts idempotent.
    async fn start_instance(
        &self,
        definition: &CompiledProcess,
        version: u32,
        new: NewInstance<'_>,
        extra: Extra,
    ) -> Result<Option<InstanceId>, Error> {
        let NewInstance { id, business_key, variables, start, starter } = new;
        let instance = Instance::new(id, definition.key.as_str(), version);
        let (started_by, on_behalf_of) = starter.map_or((None, None), |s| (Some(s.user), s.on_behalf_of));
        let event = Event::Start { variables, business_key, start, started_by, on_behalf_of };
        let before = Before {
            instance: &instance,
            expected_version: None,
            parent: None,
            history_seq: 0,
            history_hash: store::GENESIS_HASH.to_string(),
        };
        for _ in 0..MAX_ATTEMPTS {
            match self.step_and_write(definition, &before, event.clone(), &extra).await {
                Ok(stepped) => {
                    self.settle(stepped.pending).await?;
                    return Ok(Some(InstanceId(id.to_string())));
                }
                // Either the id exists (another node started it: done), or a message the new
                // instance waits for was buffered meanwhile: start again, and it is delivered.
                Err(Attempt::Again) => {
                    if self.inner.store.load_instance(id).await?.is_some() {
                        return Ok(None);
                    }
                }
                Err(Attempt::Failed(e)) => return Err(e),
            }
        }
        Err(Error::Contention(id.to_string()))
    }

    /// The current state of an instance.
    pub async fn instance(&self, id: &InstanceId) -> Result<Instance, Error> {
        let row =
            self.inner.store.load_instance(id.as_str()).await?.ok_or_else(|| Error::UnknownInstance(id.0.clone()))?;
        Ok(Instance::from_json(&row.state)?)
    }

    /// Locks up to `max` due jobs of `job_types` for `worker` until now + `lease`. A job whose
    /// lease ran out is handed out again with a new epoch.
    pub async fn fetch_and_lock(
        &self,
        worker: &str,
        job_types: &[&str],
        max: usize,
        lease: TimeDelta,
    ) -> Result<Vec<LockedJob>, Error> {
        let now = self.now();
        let write = Write::FetchJobs {
            worker: worker.to_string(),
            job_types: job_types.iter().map(|t| t.to_string()).collect(),
            max: i64::try_from(max).unwrap_or(i64::MAX),
            now,
            lease_until: now + lease,
        };
        match self.submit(write).await? {
            WriteOutcome::Jobs(jobs) => {
                let mut locks = self.inner.locks.lock().unwrap_or_else(PoisonError::into_inner);
                if locks.len() >= CACHE_LIMIT {
                    locks.clear();
                }
                for job in &jobs {
                    locks.insert(job.id.0.clone(), (job.instance_id.0.clone(), job.epoch, job.lock_expires_at));
                }
                Ok(jobs)
            }
            other => Err(Error::Write(format!("unexpected outcome {other:?}"))),
        }
    }

    /// Changes after every commit that created jobs or made one ready again (a retry, an operator's
    /// retry): in-process workers wait on it instead of polling. A retry due later, or a lease
    /// running out, does not signal: workers also poll at a modest interval.
    pub fn job_signal(&self) -> watch::Receiver<u64> {
        self.inner.jobs_ready.subscribe()
    }

    /// Extends the lease of a job held under `epoch` to now + `lease`; refused when the epoch is
    /// stale or the lease ran out already (the job may be another worker's by now).
    pub async fn extend_lock(&self, job: &JobId, epoch: i64, lease: TimeDelta) -> Result<DateTime<Utc>, Error> {
        let now = self.now();
        let until = now + lease;
        let write = Write::ExtendLock { job: job.0.clone(), epoch, now, until };
        match self.submit(write).await? {
            WriteOutcome::Extended(true) => {
                if let Some(held) =
                    self.inner.locks.lock().unwrap_or_else(PoisonError::into_inner).get_mut(job.as_str())
                {
                    held.2 = until;
                }
                Ok(until)
            }
            _ => {
                let info = self.inner.store.job(job.as_str()).await?.ok_or_else(|| Error::UnknownJob(job.0.clone()))?;
                if info.state == "locked" && info.lock_epoch == epoch {
                    Err(Error::LeaseExpired { job: job.0.clone() })
                } else {
                    Err(Error::StaleLock { job: job.0.clone(), epoch })
                }
            }
        }
    }

    /// Gives a locked job back at once (a worker stopping before it ran the job): it is due again
    /// for any worker, and in-process workers are woken.
    pub async fn release_job(&self, job: &JobId, epoch: i64) -> Result<(), Error> {
        self.extend_lock(job, epoch, TimeDelta::zero()).await?;
        self.inner.jobs_ready.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    /// A worker completed a job it holds with `epoch`.
    pub async fn complete_job(&self, job: &JobId, epoch: i64, output: serde_json::Value) -> Result<(), Error> {
        self.job_event(job, epoch, Event::JobCompleted { job: job.clone(), output }).await
    }

    /// A job attempt failed (technical): retried with backoff, then an incident.
    pub async fn fail_job(&self, job: &JobId, epoch: i64, message: &str) -> Result<(), Error> {
        self.job_event(job, epoch, Event::JobFailed { job: job.clone(), message: message.to_string() }).await
    }

    /// A job raised a business error `code`.
    pub async fn business_error(&self, job: &JobId, epoch: i64, code: &str) -> Result<(), Error> {
        self.job_event(job, epoch, Event::JobBusinessError { job: job.clone(), code: code.to_string() }).await
    }

    async fn job_event(&self, job: &JobId, epoch: i64, event: Event) -> Result<(), Error> {
        // The lock this engine handed out, else the job's row; the write re-checks the epoch.
        let held = self.inner.locks.lock().unwrap_or_else(PoisonError::into_inner).get(job.as_str()).cloned();
        let (instance, expires) = match held {
            Some((instance, held_epoch, expires)) if held_epoch == epoch => (instance, Some(expires)),
            _ => {
                let info = self.inner.store.job(job.as_str()).await?.ok_or_else(|| Error::UnknownJob(job.0.clone()))?;
                if info.state != "locked" || info.lock_epoch != epoch {
                    return Err(Error::StaleLock { job: job.0.clone(), epoch });
                }
                (info.instance_id, info.lock_expires_at)
            }
        };
        if expires.is_some_and(|at| at <= self.now()) {
            return Err(Error::LeaseExpired { job: job.0.clone() });
        }
        let extra = Extra { guards: vec![Guard::JobLocked { job: job.0.clone(), epoch }], ..Extra::default() };
        let result = self.run(&instance, event, extra).await;
        self.inner.locks.lock().unwrap_or_else(PoisonError::into_inner).remove(job.as_str());
        self.settle(result?.pending).await
    }

    /// Open tasks, of one instance or of all.
    pub async fn tasks(&self, instance: Option<&InstanceId>) -> Result<Vec<TaskInfo>, Error> {
        Ok(self.inner.store.open_tasks(instance.map(InstanceId::as_str)).await?)
    }

    /// One task, open or closed.
    pub async fn task(&self, task: &TaskId) -> Result<TaskInfo, Error> {
        self.inner.store.task(task.as_str()).await?.ok_or_else(|| Error::UnknownTask(task.0.clone()))
    }

    /// The open tasks `user` (holding `roles`) may act on: of their roles, assigned to or claimed
    /// by them, or assigned to or claimed by someone they substitute for today.
    pub async fn inbox(&self, user: &str, roles: &[&str]) -> Result<Vec<TaskInfo>, Error> {
        let principals = self.inner.store.principals_of(user, self.now()).await?;
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        Ok(self.inner.store.inbox(user, &roles, &principals).await?)
    }

    /// `user` names `substitute` to act for them from `from` until `until` (out of office);
    /// `None` withdraws it. A substitute acts only for the person who named them: substitutes
    /// do not chain.
    pub async fn set_substitute(
        &self,
        user: &str,
        substitute: Option<&str>,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<(), Error> {
        if let Some(substitute) = substitute {
            if substitute == user {
                return Err(Error::InvalidSubstitute(format!("`{user}` cannot substitute for themselves")));
            }
            if substitute.trim().is_empty() {
                return Err(Error::InvalidSubstitute("the substitute's user name is empty".into()));
            }
            if until <= from {
                return Err(Error::InvalidSubstitute(format!(
                    "the period ends ({}) before it starts ({})",
                    until.to_rfc3339(),
                    from.to_rfc3339()
                )));
            }
        }
        let write =
            Write::SetSubstitute { user: user.to_string(), substitute: substitute.map(str::to_string), from, until };
        self.submit(write).await?;
        Ok(())
    }

    /// The substitute `user` named, with the period.
    pub async fn substitute_of(&self, user: &str) -> Result<Option<store::Substitution>, Error> {
        Ok(self.inner.store.substitute_of(user).await?)
    }

    /// Claims a task for `user`, who must hold one of its roles, be its assignee, or substitute
    /// for its assignee; a user a `not by` rule bars cannot claim it.
    pub async fn claim(&self, task: &TaskId, user: &str, roles: &[&str]) -> Result<(), Error> {
        let (info, principal) = self.open_task_for(task, user, roles).await?;
        self.check_separation(&info, user, principal.as_deref()).await?;
        let write = Write::ClaimTask { task: info.id.0.clone(), user: Some(user.to_string()), by: user.to_string() };
        match self.submit(write).await? {
            WriteOutcome::Claimed(true) => Ok(()),
            _ => Err(Error::TaskClaimed { task: task.0.clone() }),
        }
    }

    /// Releases a task `user` claimed.
    pub async fn unclaim(&self, task: &TaskId, user: &str) -> Result<(), Error> {
        let info = self.task(task).await?;
        if info.state != "open" {
            return Err(Error::TaskClosed { task: task.0.clone() });
        }
        let write = Write::ClaimTask { task: task.0.clone(), user: None, by: user.to_string() };
        match self.submit(write).await? {
            WriteOutcome::Claimed(true) => Ok(()),
            _ => Err(Error::TaskClaimed { task: task.0.clone() }),
        }
    }

    /// `user` (holding `roles`) completes a task with a form. The user must hold one of the task's
    /// roles, be its assignee, or substitute for its assignee (then they act on the assignee's
    /// behalf), and the task must not be claimed by someone else; the core checks the form and
    /// separation of duties (`not by`).
    pub async fn complete_task(
        &self,
        task: &TaskId,
        user: &str,
        roles: &[&str],
        form: serde_json::Value,
    ) -> Result<(), Error> {
        let (info, principal) = self.open_task_for(task, user, roles).await?;
        let event = Event::TaskCompleted { task: task.clone(), by: user.to_string(), on_behalf_of: principal, form };
        self.step_task(info, user, event).await
    }

    /// `user` (holding `roles`) hands a task to `to`, who then completes it on `user`'s behalf, so
    /// `not by` rules follow the task. Any claim is released.
    pub async fn delegate(&self, task: &TaskId, user: &str, roles: &[&str], to: &str) -> Result<(), Error> {
        if to.trim().is_empty() {
            return Err(Error::InvalidSubstitute("the delegate's user name is empty".into()));
        }
        let (info, principal) = self.open_task_for(task, user, roles).await?;
        let by = principal.unwrap_or_else(|| user.to_string());
        let event = Event::TaskDelegated { task: task.clone(), by, to: to.to_string() };
        self.step_task(info, user, event).await
    }

    /// Applies a task event, guarded so that the task is still open and not claimed by anyone
    /// but its holder when the step commits.
    async fn step_task(&self, info: TaskInfo, user: &str, event: Event) -> Result<(), Error> {
        let holder = info.claimed_by.unwrap_or_else(|| user.into());
        let extra = Extra { guards: vec![Guard::TaskFree { task: info.id.0, user: holder }], ..Extra::default() };
        let stepped = self.run(info.instance_id.as_str(), event, extra).await?;
        self.settle(stepped.pending).await
    }

    /// The open task and, when `user` acts as someone's substitute, that person.
    async fn open_task_for(
        &self,
        task: &TaskId,
        user: &str,
        roles: &[&str],
    ) -> Result<(TaskInfo, Option<String>), Error> {
        let info = self.task(task).await?;
        if info.state != "open" {
            return Err(Error::TaskClosed { task: task.0.clone() });
        }
        let own = info.assignee.as_deref() == Some(user)
            || info.claimed_by.as_deref() == Some(user)
            || (info.assignee.is_none() && info.roles.iter().any(|r| roles.contains(&r.as_str())));
        let principal = if own {
            None
        } else {
            let principals = self.inner.store.principals_of(user, self.now()).await?;
            let held_by = info.claimed_by.as_ref().or(info.assignee.as_ref());
            match held_by.filter(|p| principals.contains(p)) {
                Some(p) => Some(p.clone()),
                None => return Err(Error::NotCandidate { user: user.to_string(), task: task.0.clone() }),
            }
        };
        let holder = principal.as_deref().unwrap_or(user);
        if info.claimed_by.as_deref().is_some_and(|c| c != holder) {
            return Err(Error::TaskClaimed { task: task.0.clone() });
        }
        Ok((info, principal))
    }

    async fn check_separation(&self, info: &TaskInfo, user: &str, principal: Option<&str>) -> Result<(), Error> {
        let instance = self.instance(&info.instance_id).await?;
        let definition = self.definition(&instance.process, instance.process_version).await?;
        crate::step::check_separation(&definition, &instance, &info.id, user, principal, self.now())?;
        Ok(())
    }

    /// Delivers a message to the instance waiting for it (the oldest subscription), or buffers it.
    pub async fn correlate(&self, message: Message) -> Result<Correlation, Error> {
        self.correlate_from(message, None).await
    }

    /// [`Engine::correlate`] for an authenticated sender, recorded as the starter of any
    /// instance the message starts.
    pub async fn correlate_from(&self, message: Message, sender: Option<&str>) -> Result<Correlation, Error> {
        let message_id = message.message_id.clone().unwrap_or_else(|| self.next_id("m"));
        let payload = message.payload.to_string();
        for _ in 0..MAX_ATTEMPTS {
            let now = self.now();
            if self.inner.store.message_seen(&message_id).await? {
                return Ok(Correlation::Duplicate);
            }
            let row = MessageRow {
                message_id: message_id.clone(),
                name: message.name.clone(),
                correlation_key: message.correlation_key.clone(),
                payload: payload.clone(),
                instance_id: None,
                received_at: now,
                expires_at: now + message.ttl,
            };
            let subscriptions = self.inner.store.subscriptions_for(&message.name, &message.correlation_key).await?;
            if let Some((subscription, instance)) = subscriptions.into_iter().next() {
                let event =
                    Event::MessageCorrelated { subscription: subscription.into(), payload: message.payload.clone() };
                let record = MessageRow { instance_id: Some(instance.clone()), ..row };
                match self.run(&instance, event, Extra { record_message: Some(record), ..Extra::default() }).await {
                    Ok(stepped) => {
                        self.settle(stepped.pending).await?;
                        return Ok(Correlation::Delivered { instance: InstanceId(instance) });
                    }
                    Err(Error::DuplicateMessage(_)) => return Ok(Correlation::Duplicate),
                    // The subscription closed meanwhile: look again.
                    Err(Error::Rejected(Rejection::UnknownSubscription { .. })) => continue,
                    Err(e) => return Err(e),
                }
            }
            // Nobody waits: a process that starts on this message starts now.
            if let Some(instance) = self.start_on_message(&message, &message_id, &row, sender).await? {
                return Ok(Correlation::Delivered { instance });
            }
            match self.submit_raw(Write::BufferMessage(row)).await? {
                Ok(_) => return Ok(Correlation::Buffered),
                Err(WriteError::DuplicateMessage(_)) => return Ok(Correlation::Duplicate),
                Err(WriteError::SubscriptionExists) => continue,
                Err(e) => return Err(write_error(e)),
            }
        }
        Err(Error::Contention(message_id))
    }

    /// The latest deployed definitions that a message named `name` starts (through `start on
    /// message`), so that a caller can check who may send it.
    pub async fn started_by_message(&self, name: &str) -> Result<Vec<Arc<CompiledProcess>>, Error> {
        let mut found = Vec::new();
        for (key, version) in self.inner.store.latest_versions().await? {
            let definition = self.definition(&key, version).await?;
            if definition.nodes.iter().any(
                |n| matches!(&n.kind, NodeKind::Start { trigger: Trigger::Message { message: m }, .. } if m == name),
            ) {
                found.push(definition);
            }
        }
        Ok(found)
    }

    /// Starts every process (latest version) with a start on `message`'s name, the payload as its
    /// inputs and the correlation key as business key; the first one records the message so
    /// that a redelivery is a duplicate. Ids derive from the message id: starting twice is one start.
    async fn start_on_message(
        &self,
        message: &Message,
        message_id: &str,
        row: &MessageRow,
        sender: Option<&str>,
    ) -> Result<Option<InstanceId>, Error> {
        let mut first = None;
        for (key, version) in self.inner.store.latest_versions().await? {
            let definition = self.definition(&key, version).await?;
            let node = definition.nodes.iter().find(|n| {
                matches!(&n.kind, NodeKind::Start { trigger: Trigger::Message { message: m }, .. } if *m == message.name)
            });
            let Some(node) = node else { continue };
            let id = format!("{key}~{}", crate::ids::segment(message_id));
            let record = first.is_none().then(|| MessageRow { instance_id: Some(id.clone()), ..row.clone() });
            let extra = Extra { record_message: record, ..Extra::default() };
            let new = NewInstance {
                id: &id,
                business_key: Some(message.correlation_key.clone()),
                variables: message.payload.clone(),
                start: Some(node.name.clone()),
                starter: sender.map(Starter::user),
            };
            let started = self.start_instance(&definition, version, new, extra).await?;
            if first.is_none() {
                first = started;
            }
        }
        Ok(first)
    }

    /// Fires every timer due now (each instance's timers in due order); returns how many fired.
    pub async fn fire_due_timers(&self) -> Result<usize, Error> {
        let mut fired = 0usize;
        let mut refused: std::collections::HashSet<(String, String)> = std::collections::HashSet::new();
        for _round in 0..10_000 {
            let now = self.now();
            let due = self.inner.store.due_timers(now, 1024).await?;
            let mut by_instance: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (timer, instance) in due {
                if !refused.contains(&(timer.clone(), instance.clone())) {
                    by_instance.entry(instance).or_default().push(timer);
                }
            }
            if by_instance.is_empty() {
                break;
            }
            let mut set = JoinSet::new();
            for (instance, timers) in by_instance {
                let engine = self.clone();
                set.spawn(async move {
                    let mut out = Vec::new();
                    for timer in timers {
                        let event = Event::TimerFired { timer: timer.as_str().into() };
                        let result = engine.run(&instance, event, Extra::default()).await;
                        out.push((timer, instance.clone(), result));
                    }
                    out
                });
            }
            let mut pending = Vec::new();
            while let Some(joined) = set.join_next().await {
                let results = joined.map_err(|e| Error::Write(format!("timer task: {e}")))?;
                for (timer, instance, result) in results {
                    match result {
                        Ok(stepped) => {
                            fired += 1;
                            pending.extend(stepped.pending);
                        }
                        Err(Error::Rejected(rejection)) => {
                            tracing::warn!(%timer, %instance, %rejection, "timer refused");
                            refused.insert((timer, instance));
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            self.settle(pending).await?;
        }
        Ok(fired)
    }

    /// Cancels an instance and everything it has open.
    pub async fn cancel(&self, instance: &InstanceId, by: &str) -> Result<(), Error> {
        let stepped = self.run(instance.as_str(), Event::Cancel { by: by.to_string() }, Extra::default()).await?;
        self.settle(stepped.pending).await
    }

    /// An operator retries an incident: its job runs again, or its node is re-entered.
    pub async fn retry_incident(&self, incident: &IncidentId) -> Result<(), Error> {
        let (instance, job) = self
            .inner
            .store
            .incident(incident.as_str())
            .await?
            .ok_or_else(|| Error::UnknownIncident(incident.0.clone()))?;
        let event = match job {
            Some(job) => Event::RetryJob { job: job.into() },
            None => Event::ResolveIncident { incident: incident.clone() },
        };
        let stepped = self.run(&instance, event, Extra::default()).await?;
        self.settle(stepped.pending).await
    }

    /// The history rows of an instance.
    pub async fn history(&self, instance: &InstanceId) -> Result<Vec<HistoryRow>, Error> {
        Ok(self.inner.store.history(instance.as_str()).await?)
    }

    /// The accepted events of an instance, in order, with the time each was applied.
    pub async fn events(&self, instance: &InstanceId) -> Result<Vec<(Event, DateTime<Utc>)>, Error> {
        let rows = self.inner.store.events(instance.as_str()).await?;
        rows.into_iter().map(|(at, text)| Ok((serde_json::from_str(&text)?, at))).collect()
    }

    /// Recomputes an instance's history hash chain and reports the first altered row.
    pub async fn verify_history(&self, instance: &InstanceId) -> Result<HistoryCheck, Error> {
        let row = self
            .inner
            .store
            .load_instance(instance.as_str())
            .await?
            .ok_or_else(|| Error::UnknownInstance(instance.0.clone()))?;
        let rows = self.inner.store.history(instance.as_str()).await?;
        Ok(HistoryCheck::verify(&rows, row.history_seq, &row.history_hash))
    }

    /// Points the cron starts of `process` (its latest version) at their next fires; a schedule
    /// that did not change keeps its cursor, so redeploying never skips or repeats a fire.
    async fn set_schedules(&self, process: &CompiledProcess) -> Result<(), Error> {
        let now = self.now();
        let mut nodes = Vec::new();
        for node in &process.nodes {
            if let NodeKind::Start { trigger: Trigger::Schedule { schedule }, .. } = &node.kind {
                let next = schedule.next_after(now).map_or_else(never, |t| t.with_timezone(&Utc));
                nodes.push((node.name.clone(), serde_json::to_string(schedule)?, next));
            }
        }
        self.submit(Write::SetSchedules { process: process.key.clone(), nodes }).await?;
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Starts an instance for every due cron start and returns how many started. Catch-up
    /// policy "coalesce": fires missed while no engine ran start ONE instance, for the latest
    /// missed fire; the schedule then goes on from now. An instance started by a fire has the id
    /// `{process}@{fire}`, so two engine nodes firing together start it once.
    pub async fn fire_due_schedules(&self) -> Result<usize, Error> {
        let now = self.now();
        let mut started = 0;
        for (process, node, fire) in self.inner.store.due_schedules(now).await? {
            let version = self.latest_version(&process).await?;
            let definition = self.definition(&process, version).await?;
            let schedule = definition.nodes.iter().find(|n| n.name == node).and_then(|n| match &n.kind {
                NodeKind::Start { trigger: Trigger::Schedule { schedule }, .. } => Some(schedule.clone()),
                _ => None,
            });
            let Some(schedule) = schedule else {
                self.set_schedules(&definition).await?;
                continue;
            };
            let mut latest = fire;
            while let Some(next) = schedule.next_after(latest).map(|t| t.with_timezone(&Utc)) {
                if next > now {
                    break;
                }
                latest = next;
            }
            let id = format!("{process}@{}", latest.format("%Y%m%dT%H%M%SZ"));
            let new = NewInstance {
                id: &id,
                business_key: None,
                variables: serde_json::json!({}),
                start: Some(node.clone()),
                starter: None,
            };
            let start = self.start_instance(&definition, version, new, Extra::default()).await;
            match start {
                Ok(Some(_)) => started += 1,
                Ok(None) => {}
                // A start the process refuses would be refused at every fire: it is logged, and
                // the schedule moves on rather than retrying forever.
                Err(e) => tracing::warn!(%process, %node, fire = %latest, error = %e, "scheduled start refused"),
            }
            let next = schedule.next_after(latest).map_or_else(never, |t| t.with_timezone(&Utc));
            self.submit(Write::AdvanceSchedule { process, node, from: fire, to: next }).await?;
        }
        Ok(started)
    }

    /// Runs the scheduler until `shutdown` completes: sleeps until the next due timer or cron
    /// start (at most a minute; a step that schedules a timer, or a virtual clock's jump, wakes
    /// it early), then fires what is due.
    pub async fn run_scheduler(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        tokio::pin!(shutdown);
        let mut jumps = self.inner.clock.jumps();
        loop {
            self.recover().await?;
            let timer = self.inner.store.next_timer().await?;
            let schedule = self.inner.store.next_schedule().await?;
            let next = [timer, schedule].into_iter().flatten().min();
            // Whatever is still due right after recovery was refused (a timer the core keeps
            // refusing is logged each time): look again in a second rather than spin.
            let wait = next
                .map(|at| (at - self.now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(Duration::from_secs(60))
                .clamp(Duration::from_secs(1), Duration::from_secs(60));
            let jumped = async {
                match jumps.as_mut() {
                    Some(receiver) => {
                        if receiver.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = tokio::time::sleep(wait) => {}
                () = self.inner.wake.notified() => {}
                () = jumped => {}
            }
        }
    }

    /// Applies owed events (and the events they cause in turn).
    async fn settle(&self, mut work: Vec<PendingRow>) -> Result<(), Error> {
        while let Some(row) = work.pop() {
            let event: Event = serde_json::from_str(&row.event)?;
            let extra = Extra { consume_pending: Some(row.id.clone()), ..Extra::default() };
            match self.run(&row.instance_id, event, extra).await {
                Ok(stepped) => work.extend(stepped.pending),
                Err(Error::Rejected(rejection)) => {
                    // Refused by the stored state: either another node applied it between our
                    // read of the owed events and our step (its row is gone: nothing to say), or
                    // the instance cannot take it.
                    if let WriteOutcome::Dropped(true) = self.submit(Write::DropPending(row.id)).await? {
                        tracing::warn!(instance = %row.instance_id, %rejection, "owed event refused; dropped");
                    }
                }
                // Someone else applied it already.
                Err(Error::AlreadyApplied) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Loads, steps and writes `event` for an existing instance, retrying on conflicts.
    async fn run(&self, instance: &str, event: Event, extra: Extra) -> Result<Stepped, Error> {
        for _ in 0..MAX_ATTEMPTS {
            let cached = self.inner.cache.lock().unwrap_or_else(PoisonError::into_inner).get(instance).cloned();
            let from_cache = cached.is_some();
            let cached = match cached {
                Some(c) => c,
                None => {
                    let row = self
                        .inner
                        .store
                        .load_instance(instance)
                        .await?
                        .ok_or_else(|| Error::UnknownInstance(instance.to_string()))?;
                    Arc::new(Cached {
                        instance: Instance::from_json(&row.state)?,
                        version: row.version,
                        parent: row.parent_id.clone().zip(row.parent_call.clone()),
                        history_seq: row.history_seq,
                        history_hash: row.history_hash.clone(),
                    })
                }
            };
            let definition = self.definition(cached.instance.process(), cached.instance.process_version()).await?;
            let before = Before {
                instance: &cached.instance,
                expected_version: Some(cached.version),
                parent: cached.parent.clone(),
                history_seq: cached.history_seq,
                history_hash: cached.history_hash.clone(),
            };
            match self.step_and_write(&definition, &before, event.clone(), &extra).await {
                Err(Attempt::Again) => {
                    self.inner.cache.lock().unwrap_or_else(PoisonError::into_inner).remove(instance);
                }
                // The cache may lag behind a step another task just committed: read the store.
                Err(Attempt::Failed(Error::Rejected(_))) if from_cache => {
                    self.inner.cache.lock().unwrap_or_else(PoisonError::into_inner).remove(instance);
                }
                Err(Attempt::Failed(e)) => return Err(e),
                Ok(stepped) => return Ok(stepped),
            }
        }
        Err(Error::Contention(instance.to_string()))
    }

    async fn step_and_write(
        &self,
        definition: &CompiledProcess,
        before: &Before<'_>,
        event: Event,
        extra: &Extra,
    ) -> Result<Stepped, Attempt> {
        let now = self.now();
        let id = before.instance.id().as_str();
        let span = tracing::info_span!("step", instance = %id, process = %definition.key, event = event.name(),
            node = tracing::field::Empty);
        let first = span.in_scope(|| step(definition, before.instance, event.clone(), now)).map_err(Error::from)?;
        if let Some(node) = first.effects.iter().find_map(|e| match e {
            Effect::History(h) => h.node.clone(),
            _ => None,
        }) {
            span.record("node", node.as_str());
        }
        let mut steps: Vec<(Event, Transition)> = vec![(event, first)];
        // Deliver buffered messages to subscriptions this step opened, in the same write.
        let mut consumed = Vec::new();
        let mut guards = extra.guards.clone();
        for _ in 0..STEP_CHAIN_LIMIT {
            let current = &steps[steps.len() - 1].1.instance;
            let mut next = None;
            for (sid, sub) in current.subscriptions() {
                if before.instance.subscriptions().contains_key(sid) {
                    continue;
                }
                if let Some(found) =
                    self.inner.store.buffered_message(&sub.message, &sub.correlation_key, now, &consumed).await?
                {
                    next = Some((sid.clone(), found));
                    break;
                }
            }
            let Some((subscription, found)) = next else { break };
            let payload: serde_json::Value = serde_json::from_str(&found.payload).map_err(Error::from)?;
            let event = Event::MessageCorrelated { subscription, payload };
            let t = span.in_scope(|| step(definition, current, event.clone(), now)).map_err(Error::from)?;
            consumed.push(found.seq);
            steps.push((event, t));
        }
        let last = &steps[steps.len() - 1].1.instance;
        for (sid, sub) in last.subscriptions() {
            if !before.instance.subscriptions().contains_key(sid) {
                guards.push(Guard::NoBufferedMessage {
                    name: sub.message.clone(),
                    key: sub.correlation_key.clone(),
                    now,
                });
            }
        }
        let mut children = Vec::new();
        for (_, t) in &steps {
            for effect in &t.effects {
                if let Effect::StartChild { call, process, inputs, .. } = effect {
                    let version = self.latest_version(process).await?;
                    children.push(NewChild {
                        id: call.0.clone(),
                        process: process.clone(),
                        version,
                        inputs: inputs.clone(),
                    });
                }
            }
        }
        let mut write = plan(before, &steps, children, now, || self.next_id("p")).map_err(Error::from)?;
        write.guards = guards;
        write.consume_messages = consumed;
        write.record_message = extra.record_message.clone();
        write.consume_pending = extra.consume_pending.clone();
        let wakes = !write.timers_upsert.is_empty();
        let readies_jobs = write.jobs.iter().any(|j| match j {
            JobChange::Insert(_) => true,
            JobChange::Update { state, .. } => state == "ready",
        });
        let pending = write.pending.clone();
        let (version, history_seq, history_hash) =
            (write.instance.version, write.instance.history_seq, write.instance.history_hash.clone());
        match self.submit_raw(Write::Step(Box::new(write))).await? {
            Ok(_) => {
                if wakes {
                    self.inner.wake.notify_one();
                }
                if readies_jobs {
                    self.inner.jobs_ready.send_modify(|n| *n = n.wrapping_add(1));
                }
                let (_, last) = steps.pop().ok_or(Error::Stopped)?;
                let mut cache = self.inner.cache.lock().unwrap_or_else(PoisonError::into_inner);
                if last.instance.status().is_final() {
                    cache.remove(id);
                } else {
                    if cache.len() >= CACHE_LIMIT {
                        cache.clear();
                    }
                    let cached = Cached {
                        instance: last.instance,
                        version,
                        parent: before.parent.clone(),
                        history_seq,
                        history_hash,
                    };
                    // A slower task must not replace a newer entry with its older one.
                    if cache.get(id).is_none_or(|c| c.version < version) {
                        cache.insert(id.to_string(), Arc::new(cached));
                    }
                }
                Ok(Stepped { pending })
            }
            Err(WriteError::Conflict(_) | WriteError::BufferedMessageWaiting) => Err(Attempt::Again),
            Err(e) => Err(write_error(e).into()),
        }
    }

    async fn submit_raw(&self, write: Write) -> Result<Result<WriteOutcome, WriteError>, Error> {
        let (reply, answer) = oneshot::channel();
        self.inner.writer.send(Request { write, reply }).map_err(|_| Error::Stopped)?;
        answer.await.map_err(|_| Error::Stopped)
    }

    async fn submit(&self, write: Write) -> Result<WriteOutcome, Error> {
        self.submit_raw(write).await?.map_err(write_error)
    }

    fn next_id(&self, kind: &str) -> String {
        let n = self.inner.counter.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{kind}-{}-{n}", self.inner.prefix)
    }
}

/// Most buffered messages delivered in one step.
const STEP_CHAIN_LIMIT: usize = 64;

/// Why one attempt at a step did not land.
enum Attempt {
    /// A conflict: load and step again.
    Again,
    /// A refusal or failure.
    Failed(Error),
}

impl From<Error> for Attempt {
    fn from(e: Error) -> Self {
        Attempt::Failed(e)
    }
}

impl From<store::Error> for Attempt {
    fn from(e: store::Error) -> Self {
        Attempt::Failed(Error::Store(e))
    }
}

fn write_error(e: WriteError) -> Error {
    match e {
        WriteError::Conflict(id) => Error::Contention(id),
        WriteError::StaleEpoch { job, epoch } => Error::StaleLock { job, epoch },
        WriteError::TaskTaken { task } => Error::TaskClaimed { task },
        WriteError::DuplicateMessage(id) => Error::DuplicateMessage(id),
        WriteError::PendingGone => Error::AlreadyApplied,
        other => Error::Write(other.to_string()),
    }
}

async fn write_loop<S: Store>(
    store: S,
    mut requests: mpsc::UnboundedReceiver<Request>,
    max_batch: usize,
    counters: Arc<Counters>,
) {
    while let Some(first) = requests.recv().await {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match requests.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let (writes, replies): (Vec<Write>, Vec<_>) = batch.into_iter().map(|r| (r.write, r.reply)).unzip();
        let size = writes.len();
        let started = std::time::Instant::now();
        let results = store.write(writes).await;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters.writes.fetch_add(size as u64, Ordering::Relaxed);
        counters.busy_micros.fetch_add(micros, Ordering::Relaxed);
        tracing::trace!(size, micros, "batch committed");
        for (reply, result) in replies.into_iter().zip(results) {
            // The caller may have gone away; the write stands.
            let _ = reply.send(result);
        }
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
