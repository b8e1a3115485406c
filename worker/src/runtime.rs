//! The worker runtime: fetch and lock, run handlers concurrently, extend leases, report outcomes
//! under the lock epoch, and stop cleanly.
//!
//! Shape: [`WorkerOptions`] in, [`Worker::run`] until a shutdown future completes, a cheap
//! [`WorkerHandle`] out (counters, wake-up).
//!
//! Shutdown: the worker stops fetching, gives the jobs in flight [`WorkerOptions::shutdown_grace`]
//! to finish and report, then aborts the rest and releases their locks, so no job waits for its
//! lease to run out when a clean stop was possible.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::TimeDelta;
use cloverleaf_engine::JobId;
use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::handler::{Handler, HandlerError, Handlers, JobContext};
use crate::source::{FetchRequest, Job, JobSource, SourceError};

/// The lease of a worker's locks unless set otherwise: a dead worker's jobs are taken over
/// within 20 s, and a running job's lease is extended every 10 s.
pub const DEFAULT_LEASE: TimeDelta = TimeDelta::seconds(20);

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Names the lock holder.
    pub worker_id: String,
    /// Job types to fetch (patterns allowed); `None` fetches every type the handlers cover.
    pub topics: Option<Vec<String>>,
    /// Most handlers running at once.
    pub max_concurrency: usize,
    /// Each lock's lease; a running job's lease is extended every half lease. It is also how long
    /// the jobs of a worker that died (its process killed, its machine gone) wait before another
    /// worker may take them: short enough for a quick take-over, long enough that the extensions
    /// of a busy worker arrive in time.
    pub lease: TimeDelta,
    /// Longest wait of one fetch when nothing is due. New jobs in an in-process engine wake the
    /// worker at once; the wait bounds how late a job made due by the clock alone (a retry after
    /// its backoff) is seen.
    pub poll_wait: Duration,
    /// Pause after a failed fetch before trying again.
    pub error_backoff: Duration,
    /// How long jobs in flight may take to finish after shutdown is asked.
    pub shutdown_grace: Duration,
}

impl WorkerOptions {
    /// Defaults: 32 concurrent jobs, [`DEFAULT_LEASE`], 5 s polls, 10 s grace.
    pub fn new(worker_id: impl Into<String>) -> WorkerOptions {
        WorkerOptions {
            worker_id: worker_id.into(),
            topics: None,
            max_concurrency: 32,
            lease: DEFAULT_LEASE,
            poll_wait: Duration::from_secs(5),
            error_backoff: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Why a worker could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No handler is registered and no topic is configured.
    #[error("the worker has no handlers")]
    NoHandlers,
    /// The concurrency limit is zero.
    #[error("max_concurrency must be at least 1")]
    NoConcurrency,
    /// The lease is not positive.
    #[error("the lease must be positive")]
    NoLease,
}

/// What a worker has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WorkerStats {
    /// Jobs fetched and locked.
    pub fetched: u64,
    /// Jobs completed.
    pub completed: u64,
    /// Jobs reported as failed (the engine retries them).
    pub failed: u64,
    /// Jobs that raised a business error.
    pub business_errors: u64,
    /// Outcomes the source refused because the lock was gone (another worker has the job).
    pub lost_locks: u64,
    /// Leases extended.
    pub extended: u64,
    /// Jobs given back unfinished at shutdown.
    pub released: u64,
}

#[derive(Default)]
struct Counters {
    fetched: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    business_errors: AtomicU64,
    lost_locks: AtomicU64,
    extended: AtomicU64,
    released: AtomicU64,
    /// Woken on every change, for [`WorkerHandle::wait_until`].
    progress: Notify,
}

impl Counters {
    fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
        self.progress.notify_waiters();
    }

    fn snapshot(&self) -> WorkerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerStats {
            fetched: get(&self.fetched),
            completed: get(&self.completed),
            failed: get(&self.failed),
            business_errors: get(&self.business_errors),
            lost_locks: get(&self.lost_locks),
            extended: get(&self.extended),
            released: get(&self.released),
        }
    }
}

struct Shared {
    counters: Counters,
    wake: Notify,
    /// Jobs locked and not yet reported: (epoch), released if the worker stops before they end.
    in_flight: Mutex<HashMap<JobId, i64>>,
}

/// A cheap-to-clone handle on a worker: counters and a wake-up.
#[derive(Clone)]
pub struct WorkerHandle {
    shared: Arc<Shared>,
}

impl WorkerHandle {
    /// What the worker has done so far.
    pub fn stats(&self) -> WorkerStats {
        self.shared.counters.snapshot()
    }

    /// Ends the worker's current wait and fetches at once (after moving a virtual clock past a
    /// retry's backoff, say).
    pub fn wake(&self) {
        self.shared.wake.notify_one();
    }

    /// Waits until the counters satisfy `done` (say, `|s| s.completed >= 3`).
    pub async fn wait_until(&self, done: impl Fn(&WorkerStats) -> bool) -> WorkerStats {
        loop {
            let notified = self.shared.counters.progress.notified();
            tokio::pin!(notified);
            // Registered before the check, so a change between the check and the wait still wakes.
            notified.as_mut().enable();
            let stats = self.stats();
            if done(&stats) {
                return stats;
            }
            notified.await;
        }
    }

    /// Jobs locked by this worker and not yet reported.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// Runs handlers for the jobs of a [`JobSource`].
pub struct Worker<S: JobSource> {
    source: S,
    handlers: Arc<Handlers>,
    options: WorkerOptions,
    shared: Arc<Shared>,
}

impl<S: JobSource> Worker<S> {
    /// A worker taking jobs from `source` and running `handlers`.
    pub fn new(source: S, handlers: Handlers, options: WorkerOptions) -> Worker<S> {
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            wake: Notify::new(),
            in_flight: Mutex::new(HashMap::new()),
        });
        Worker { source, handlers: Arc::new(handlers), options, shared }
    }

    /// A handle that outlives [`Worker::run`].
    pub fn handle(&self) -> WorkerHandle {
        WorkerHandle { shared: Arc::clone(&self.shared) }
    }

    /// Fetches and runs jobs until `shutdown` completes, then stops cleanly; returns the counters.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<WorkerStats, Error> {
        let topics = self.options.topics.clone().unwrap_or_else(|| self.handlers.topics());
        if topics.is_empty() {
            return Err(Error::NoHandlers);
        }
        if self.options.max_concurrency == 0 {
            return Err(Error::NoConcurrency);
        }
        if self.options.lease <= TimeDelta::zero() {
            return Err(Error::NoLease);
        }
        let mut request = FetchRequest {
            worker_id: self.options.worker_id.clone(),
            topics,
            max_jobs: 0,
            lease: self.options.lease,
            wait: self.options.poll_wait,
        };
        let mut tasks: JoinSet<()> = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            while tasks.try_join_next().is_some() {}
            let capacity = self.options.max_concurrency.saturating_sub(tasks.len());
            if capacity == 0 {
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    _ = tasks.join_next() => continue,
                }
            }
            request.max_jobs = capacity;
            // Dropping the fetch on shutdown or wake-up is safe: see `JobSource`'s cancel safety.
            let fetched = tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = self.shared.wake.notified() => continue,
                fetched = self.source.fetch_and_lock(&request) => fetched,
            };
            match fetched {
                Ok(jobs) => {
                    self.shared.counters.add(&self.shared.counters.fetched, jobs.len() as u64);
                    for job in jobs {
                        self.spawn(&mut tasks, job);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "fetch and lock failed");
                    tokio::select! {
                        biased;
                        () = &mut shutdown => break,
                        () = self.shared.wake.notified() => {}
                        () = tokio::time::sleep(self.options.error_backoff) => {}
                    }
                }
            }
        }
        self.stop(tasks).await;
        Ok(self.shared.counters.snapshot())
    }

    fn spawn(&self, tasks: &mut JoinSet<()>, job: Job) {
        self.shared.in_flight.lock().unwrap_or_else(PoisonError::into_inner).insert(job.id.clone(), job.epoch);
        let handler = self.handlers.get(&job.job_type).cloned();
        let (source, shared, lease) = (self.source.clone(), Arc::clone(&self.shared), self.options.lease);
        tasks.spawn(async move {
            let (id, epoch) = (job.id.clone(), job.epoch);
            run_job(&source, handler, job, lease, &shared.counters).await;
            let mut in_flight = shared.in_flight.lock().unwrap_or_else(PoisonError::into_inner);
            // The same job may be ours again under a newer epoch (our lease ran out meanwhile).
            if in_flight.get(&id) == Some(&epoch) {
                in_flight.remove(&id);
            }
        });
    }

    async fn stop(&self, mut tasks: JoinSet<()>) {
        let drained =
            tokio::time::timeout(self.options.shutdown_grace, async { while tasks.join_next().await.is_some() {} })
                .await;
        if drained.is_ok() {
            return;
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        let left: Vec<(JobId, i64)> =
            self.shared.in_flight.lock().unwrap_or_else(PoisonError::into_inner).drain().collect();
        for (job, epoch) in left {
            match self.source.release(&job, epoch).await {
                Ok(()) => self.shared.counters.add(&self.shared.counters.released, 1),
                // Reported just before the abort: nothing to give back.
                Err(error) if error.lock_lost() => {}
                Err(error) => tracing::warn!(%job, %error, "cannot release a job at shutdown"),
            }
        }
    }
}

/// Aborts the handler's task when the job's task is aborted (at shutdown).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn run_job<S: JobSource>(
    source: &S,
    handler: Option<Arc<dyn Handler>>,
    job: Job,
    lease: TimeDelta,
    counters: &Counters,
) {
    let Some(handler) = handler else {
        let message = format!("no handler for job type {}", job.job_type);
        report(source, &job, Err(HandlerError::Failure(message)), counters).await;
        return;
    };
    let context = JobContext { job: job.clone(), now: source.now() };
    // The handler runs in a task of its own so that a panic becomes a failure, not a lost job.
    let work = tokio::spawn(handler.call(context));
    let _guard = AbortOnDrop(work.abort_handle());
    tokio::pin!(work);
    let every = lease.to_std().unwrap_or(Duration::from_secs(60)) / 2;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let outcome = loop {
        tokio::select! {
            joined = &mut work => {
                break joined.unwrap_or_else(|e| Err(HandlerError::Failure(format!("handler panicked: {e}"))));
            }
            _ = ticker.tick() => match source.extend_lock(&job.id, job.epoch, lease).await {
                Ok(_) => counters.add(&counters.extended, 1),
                Err(error) if error.lock_lost() => {
                    // Another worker may have the job now: its outcome is no longer ours to report.
                    tracing::warn!(job = %job.id, %error, "lock lost while the handler ran");
                    counters.add(&counters.lost_locks, 1);
                    return;
                }
                Err(error) => tracing::warn!(job = %job.id, %error, "cannot extend the lease"),
            },
        }
    };
    report(source, &job, outcome, counters).await;
}

/// Tries a report again while the source is unavailable (a busy database, a network blip): the
/// work is done, and giving up would leave the job locked until its lease runs out.
const REPORT_TRIES: u32 = 8;

async fn report<S: JobSource>(source: &S, job: &Job, outcome: crate::handler::HandlerResult, counters: &Counters) {
    let mut delay = Duration::from_millis(20);
    let mut tries = 1;
    let (result, counter) = loop {
        let (result, counter) = match &outcome {
            Ok(output) => (source.complete(&job.id, job.epoch, output.clone()).await, &counters.completed),
            Err(HandlerError::Business { code, message }) => {
                tracing::info!(job = %job.id, %code, %message, "business error");
                (source.business_error(&job.id, job.epoch, code).await, &counters.business_errors)
            }
            Err(HandlerError::Failure(message)) => {
                tracing::warn!(job = %job.id, %message, "job failed");
                (source.fail(&job.id, job.epoch, message).await, &counters.failed)
            }
        };
        match result {
            Err(SourceError::Unavailable(error)) if tries < REPORT_TRIES => {
                tracing::debug!(job = %job.id, %error, tries, "report failed, trying again");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
                tries += 1;
            }
            result => break (result, counter),
        }
    };
    match result {
        Ok(()) => counters.add(counter, 1),
        Err(error) if error.lock_lost() => {
            tracing::warn!(job = %job.id, %error, "outcome refused: the lock is gone");
            counters.add(&counters.lost_locks, 1);
        }
        Err(SourceError::Refused(reason)) => {
            // The output does not fit the process: report it as a failure so an incident shows it.
            tracing::warn!(job = %job.id, %reason, "output refused");
            let message = format!("output refused: {reason}");
            match source.fail(&job.id, job.epoch, &message).await {
                Ok(()) => counters.add(&counters.failed, 1),
                Err(error) => tracing::warn!(job = %job.id, %error, "cannot report a refused output"),
            }
        }
        Err(error) => {
            tracing::warn!(job = %job.id, %error, "cannot report the outcome: the job returns when its lease runs out")
        }
    }
}
