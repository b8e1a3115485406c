//! Where jobs come from: the [`JobSource`] trait, and its in-process implementation on
//! [`cloverleaf_engine::Engine`].
//!
//! A source hands out jobs locked with a lease and a lock epoch, and takes back their outcome
//! under that epoch. The engine applies retries and backoff from the process definition; a source
//! only carries messages. The api crate implements the same trait over HTTP for external workers.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use cloverleaf_engine::runtime::{Engine, Error as EngineError};
use cloverleaf_engine::store::{LockedJob, Store};
use cloverleaf_engine::{InstanceId, JobId};
use serde::{Deserialize, Serialize};

/// A job locked for this worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The job's id.
    pub id: JobId,
    /// The instance the job belongs to.
    pub instance_id: InstanceId,
    /// The task node that created it.
    pub node: String,
    /// The job type (`"invoice.issue"`).
    pub job_type: String,
    /// The input variables, as the process's `in { }` mapping made them (money as decimal strings,
    /// dates as `"YYYY-MM-DD"`).
    pub input: serde_json::Value,
    /// Stable across retries and re-deliveries of the same activation: side effects are made once
    /// per key.
    pub idempotency_key: String,
    /// The attempt, 1 for the first.
    pub attempt: i64,
    /// The lock epoch to present with the outcome.
    pub epoch: i64,
    /// When the lease runs out unless extended.
    pub lock_expires_at: DateTime<Utc>,
}

impl From<LockedJob> for Job {
    fn from(job: LockedJob) -> Job {
        Job {
            id: job.id,
            instance_id: job.instance_id,
            node: job.node,
            job_type: job.job_type,
            input: job.input,
            idempotency_key: job.idempotency_key,
            attempt: job.attempt,
            epoch: job.epoch,
            lock_expires_at: job.lock_expires_at,
        }
    }
}

/// One fetch-and-lock call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// Names the lock holder (shown to operators).
    pub worker_id: String,
    /// Job types to fetch; a pattern ending in `*` matches every type with that prefix
    /// (`finance.*`), and `*` alone matches all.
    pub topics: Vec<String>,
    /// Most jobs to lock.
    pub max_jobs: usize,
    /// How long each lock lasts unless extended.
    pub lease: TimeDelta,
    /// How long to wait for a job when none is due (long poll); zero returns at once.
    pub wait: Duration,
}

/// Why a source refused or failed a call.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The job is not locked with this epoch: another worker holds it, or it is finished.
    #[error("job {job} is not locked with epoch {epoch}")]
    StaleLock {
        /// The job.
        job: String,
        /// The epoch presented.
        epoch: i64,
    },
    /// The lease ran out: the job may already be with another worker.
    #[error("the lease of job {job} ran out")]
    LeaseExpired {
        /// The job.
        job: String,
    },
    /// No such job.
    #[error("unknown job {0}")]
    UnknownJob(String),
    /// The engine refused the outcome (an output that does not fit the process's variables).
    #[error("outcome refused: {0}")]
    Refused(String),
    /// The source could not be reached or failed; the call may be tried again.
    #[error("job source unavailable: {0}")]
    Unavailable(String),
}

impl SourceError {
    /// True when the lock is gone: the outcome can no longer be reported and must not be retried.
    pub fn lock_lost(&self) -> bool {
        matches!(self, SourceError::StaleLock { .. } | SourceError::LeaseExpired { .. } | SourceError::UnknownJob(_))
    }
}

/// A place that hands out locked jobs and takes back their outcomes.
///
/// Generic rather than object-safe (the futures are `impl Future + Send`); implement it for a cheap
/// handle and clone it freely. Every outcome carries the lock epoch the job was fetched with, and a
/// source refuses a stale one with [`SourceError::StaleLock`] or [`SourceError::LeaseExpired`].
///
/// Cancel safety: the worker drops a pending [`JobSource::fetch_and_lock`] future on shutdown. An
/// implementation must lock no job it cannot hand back: it may wait in a cancellable way, but once
/// it locks jobs it must either return them or release them itself.
pub trait JobSource: Clone + Send + Sync + 'static {
    /// Locks up to `request.max_jobs` due jobs of `request.topics`, waiting up to `request.wait`
    /// for one to become due.
    fn fetch_and_lock(&self, request: &FetchRequest) -> impl Future<Output = Result<Vec<Job>, SourceError>> + Send;

    /// Completes a job with its output variables (a JSON object).
    fn complete(
        &self,
        job: &JobId,
        epoch: i64,
        output: serde_json::Value,
    ) -> impl Future<Output = Result<(), SourceError>> + Send;

    /// Reports a technical failure: the engine retries with the process's backoff, then raises an
    /// incident.
    fn fail(&self, job: &JobId, epoch: i64, message: &str) -> impl Future<Output = Result<(), SourceError>> + Send;

    /// Raises a business error `code`, caught by the task's `on error "code"`.
    fn business_error(
        &self,
        job: &JobId,
        epoch: i64,
        code: &str,
    ) -> impl Future<Output = Result<(), SourceError>> + Send;

    /// Extends the lease to now + `lease`; returns the new end.
    fn extend_lock(
        &self,
        job: &JobId,
        epoch: i64,
        lease: TimeDelta,
    ) -> impl Future<Output = Result<DateTime<Utc>, SourceError>> + Send;

    /// Gives a job back unfinished, so another worker can take it at once. The default ends the
    /// lease now.
    fn release(&self, job: &JobId, epoch: i64) -> impl Future<Output = Result<(), SourceError>> + Send {
        async move { self.extend_lock(job, epoch, TimeDelta::zero()).await.map(|_| ()) }
    }

    /// The source's current time: handlers take "today" from it (the engine's clock, virtual in
    /// tests), never from the machine.
    fn now(&self) -> DateTime<Utc>;
}

impl From<EngineError> for SourceError {
    fn from(error: EngineError) -> SourceError {
        match error {
            EngineError::StaleLock { job, epoch } => SourceError::StaleLock { job, epoch },
            EngineError::LeaseExpired { job } => SourceError::LeaseExpired { job },
            EngineError::UnknownJob(job) => SourceError::UnknownJob(job),
            EngineError::Rejected(rejection) => SourceError::Refused(rejection.to_string()),
            other => SourceError::Unavailable(other.to_string()),
        }
    }
}

/// The in-process source: calls the engine directly, and wakes on its job signal (no polling).
impl<S: Store> JobSource for Engine<S> {
    async fn fetch_and_lock(&self, request: &FetchRequest) -> Result<Vec<Job>, SourceError> {
        let deadline = tokio::time::Instant::now() + request.wait;
        let mut signal = self.job_signal();
        loop {
            // Marks the signal seen before fetching, so a commit racing the fetch still wakes us.
            signal.borrow_and_update();
            let jobs = locked(self, request).await?;
            if !jobs.is_empty() {
                return Ok(jobs);
            }
            match tokio::time::timeout_at(deadline, signal.changed()).await {
                Ok(Ok(())) => continue,
                // Timed out, or the engine stopped: nothing to hand out.
                Ok(Err(_)) | Err(_) => return Ok(Vec::new()),
            }
        }
    }

    async fn complete(&self, job: &JobId, epoch: i64, output: serde_json::Value) -> Result<(), SourceError> {
        Ok(self.complete_job(job, epoch, output).await?)
    }

    async fn fail(&self, job: &JobId, epoch: i64, message: &str) -> Result<(), SourceError> {
        Ok(self.fail_job(job, epoch, message).await?)
    }

    async fn business_error(&self, job: &JobId, epoch: i64, code: &str) -> Result<(), SourceError> {
        Ok(Engine::business_error(self, job, epoch, code).await?)
    }

    async fn extend_lock(&self, job: &JobId, epoch: i64, lease: TimeDelta) -> Result<DateTime<Utc>, SourceError> {
        Ok(Engine::extend_lock(self, job, epoch, lease).await?)
    }

    async fn release(&self, job: &JobId, epoch: i64) -> Result<(), SourceError> {
        Ok(self.release_job(job, epoch).await?)
    }

    fn now(&self) -> DateTime<Utc> {
        Engine::now(self)
    }
}

/// Fetches in a task of its own: if the caller's future is dropped while the engine locks jobs,
/// the task releases them instead of leaving them locked until their lease runs out.
async fn locked<S: Store>(engine: &Engine<S>, request: &FetchRequest) -> Result<Vec<Job>, SourceError> {
    let (engine, request) = (engine.clone(), request.clone());
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let topics: Vec<&str> = request.topics.iter().map(String::as_str).collect();
        let result = engine.fetch_and_lock(&request.worker_id, &topics, request.max_jobs, request.lease).await;
        if let Err(Ok(jobs)) = tx.send(result) {
            for job in jobs {
                if let Err(error) = engine.release_job(&job.id, job.epoch).await {
                    tracing::warn!(job = %job.id, %error, "cannot release a job nobody took");
                }
            }
        }
    });
    match rx.await {
        Ok(result) => Ok(result?.into_iter().map(Job::from).collect()),
        Err(_) => Err(SourceError::Unavailable("the fetch task stopped".into())),
    }
}
