//! Jobs for workers: fetch-and-lock with a lease and an epoch, lease extension, outcomes under the lock.

use std::sync::{Arc, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;

use crate::event::Event;
use crate::ids::{InstanceId, JobId};
use crate::store::{Guard, JobState, LockedJob, Store, Write, WriteOutcome};

use super::{CACHE_LIMIT, Cached, Engine, Error, Extra};

impl<S: Store> Engine<S> {
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
                {
                    let mut locks = self.inner.locks.lock().unwrap_or_else(PoisonError::into_inner);
                    if locks.len() >= CACHE_LIMIT {
                        locks.clear();
                    }
                    for job in &jobs {
                        locks.insert(job.id.0.clone(), (job.instance_id.0.clone(), job.epoch, job.lock_expires_at));
                    }
                }
                self.cache_instances_of(&jobs).await;
                Ok(jobs)
            }
            other => Err(Error::Write(format!("unexpected outcome {other:?}"))),
        }
    }

    /// Reads into the cache, in one read, the instances of `jobs` it does not hold: their
    /// outcomes step them here, and on a node other than the one that started or last stepped
    /// them each completion read its instance on its own (10,000 single-row reads in a two-node
    /// drain of 20,000 invoices). Best effort: an instance not read now is read as it steps, and
    /// one stepped elsewhere meanwhile is found stale when its step is written, and read again.
    async fn cache_instances_of(&self, jobs: &[LockedJob]) {
        let missing: Vec<InstanceId> = {
            let cache = self.inner.cache.lock().unwrap_or_else(PoisonError::into_inner);
            let mut ids: Vec<&InstanceId> =
                jobs.iter().map(|job| &job.instance_id).filter(|id| !cache.contains_key(id.as_str())).collect();
            ids.sort_unstable_by_key(|id| id.as_str());
            ids.dedup();
            ids.into_iter().cloned().collect()
        };
        if missing.is_empty() {
            return;
        }
        let rows = match self.inner.store.load_instances(&missing).await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::debug!(%error, "the fetched jobs' instances were not read ahead");
                return;
            }
        };
        let read: Vec<(String, Cached)> =
            rows.iter().filter_map(|row| Cached::of_row(row).ok().map(|cached| (row.id.clone(), cached))).collect();
        let mut cache = self.inner.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() + read.len() >= CACHE_LIMIT {
            cache.clear();
        }
        for (id, cached) in read {
            // An entry there already is as new or newer: a step of this node came in between.
            cache.entry(id).or_insert_with(|| Arc::new(cached));
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
                let info = self.inner.store.job(job).await?.ok_or_else(|| Error::UnknownJob(job.0.clone()))?;
                if info.state == JobState::Locked && info.lock_epoch == epoch {
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

    pub(super) async fn job_event(&self, job: &JobId, epoch: i64, event: Event) -> Result<(), Error> {
        // The lock this engine handed out, else the job's row; the write re-checks the epoch.
        let held = self.inner.locks.lock().unwrap_or_else(PoisonError::into_inner).get(job.as_str()).cloned();
        let (instance, expires) = match held {
            Some((instance, held_epoch, expires)) if held_epoch == epoch => (instance, Some(expires)),
            _ => {
                let info = self.inner.store.job(job).await?.ok_or_else(|| Error::UnknownJob(job.0.clone()))?;
                if info.state != JobState::Locked || info.lock_epoch != epoch {
                    return Err(Error::StaleLock { job: job.0.clone(), epoch });
                }
                (info.instance_id.0, info.lock_expires_at)
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
}
