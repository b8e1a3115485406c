//! The durable side of [`Sim`](crate::sim::Sim): the runtime's public API driven to completion
//! on every call, as a worker, a timer loop and a cron scheduler would drive it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use cloverleaf_engine::memory::{Error, JobAttempt, JobInput, JobOutcome, Reminder};
use cloverleaf_engine::runtime::{self, Engine};
use cloverleaf_engine::store::{AnyStore, JobState, Queries, Store};
use cloverleaf_engine::{Clock, IncidentId, InstanceId, JobId, TaskId, VirtualClock};
use cloverleaf_testkit::testdb::ScratchDb;

use crate::sim::{Job, Task};

type Handler = Arc<dyn Fn(&JobInput) -> JobOutcome + Send + Sync>;

/// The durable runtime driven synchronously: its engine, database, clock and what the scenario
/// registered.
pub struct Durable {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) engine: Engine<AnyStore>,
    pub(crate) clock: VirtualClock,
    pub(crate) _db: ScratchDb,
    pub(crate) handlers: BTreeMap<String, Handler>,
    pub(crate) attempts: Vec<JobAttempt>,
    pub(crate) auto_run: bool,
    /// Cron starts fire only when the scenario asks, as in memory.
    pub(crate) schedules: bool,
    pub(crate) message_ttl: Option<TimeDelta>,
    /// Instances in the order they appeared (a parent before the children it called).
    pub(crate) known: Vec<InstanceId>,
    /// When each job id was first seen open: its creation (every call ends with a look).
    pub(crate) job_seen: BTreeMap<JobId, DateTime<Utc>>,
}

/// Buffered messages live this long on the durable side unless the scenario sets a time to
/// live (in memory they never expire).
pub(crate) const FOREVER: TimeDelta = TimeDelta::days(3650);

pub(crate) fn engine_error(e: runtime::Error) -> Error {
    match e {
        runtime::Error::Rejected(r) => Error::Rejected(r),
        runtime::Error::UnknownProcess(process) => Error::UnknownProcess { process, version: None },
        runtime::Error::UnknownVersion { process, version } => {
            Error::UnknownProcess { process, version: Some(version) }
        }
        runtime::Error::UnknownInstance(id) => Error::UnknownInstance(InstanceId::from(id)),
        runtime::Error::UnknownJob(id) => Error::UnknownJob(JobId::from(id)),
        // A task withdrawn (escalated, cancelled) is no longer open: in memory it is gone.
        runtime::Error::UnknownTask(task) | runtime::Error::TaskClosed { task } => {
            Error::UnknownTask(TaskId::from(task))
        }
        runtime::Error::UnknownIncident(id) => Error::UnknownIncident(IncidentId::from(id)),
        other => panic!("the durable runtime failed: {other}"),
    }
}

impl Durable {
    pub(crate) fn new(start: DateTime<Utc>) -> Durable {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        let clock = VirtualClock::new(start);
        let (engine, db) = rt.block_on(async {
            let db = ScratchDb::new().await.expect("a database (checked before the scenario ran)");
            let engine = Engine::connect(&db.url(), Arc::new(clock.clone())).await.unwrap();
            let files = crate::common::reference_files();
            let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
            let deployed = engine.deploy(&refs).await.unwrap();
            assert_eq!(deployed.len(), 5);
            (engine, db)
        });
        Durable {
            rt,
            engine,
            clock,
            _db: db,
            handlers: BTreeMap::new(),
            attempts: Vec::new(),
            auto_run: false,
            schedules: false,
            message_ttl: None,
            known: Vec::new(),
            job_seen: BTreeMap::new(),
        }
    }

    /// Notes what appeared since the last look: new instances (in start order, parents first)
    /// and new jobs (created now).
    pub(crate) fn look(&mut self) {
        let now = self.clock.now();
        let store = self.engine.store();
        let (mut summaries, jobs) = self.rt.block_on(async {
            let summaries = store.instances(None, None, None, i64::MAX, 0).await.unwrap();
            let jobs = store.open_jobs(None).await.unwrap();
            (summaries, jobs)
        });
        for job in jobs {
            self.job_seen.entry(job.id).or_insert(now);
        }
        summaries.reverse();
        let mut known: BTreeSet<InstanceId> = self.known.iter().cloned().collect();
        // Oldest first; at one instant a parent comes before its children, children in call order.
        let order = |id: &InstanceId| (id.as_str().matches(".call.").count(), id.as_str().len());
        summaries.sort_by(|a, b| (a.created_at, order(&a.id), &a.id).cmp(&(b.created_at, order(&b.id), &b.id)));
        for s in summaries {
            if known.insert(s.id.clone()) {
                self.known.push(s.id);
            }
        }
    }

    /// Moves the clock to `at`, stopping at every timer, cron fire and (with auto-run) job retry
    /// on the way, in time order.
    pub(crate) fn advance_to(&mut self, at: DateTime<Utc>) -> Result<(), Error> {
        if self.auto_run {
            self.run_jobs()?;
        }
        loop {
            let now = self.clock.now();
            let store = self.engine.store();
            let types: Vec<String> = self.handlers.keys().cloned().collect();
            let schedules = self.schedules;
            let (timer, schedule, retry) = self.rt.block_on(async {
                let timer = store.next_timer().await.unwrap();
                let schedule = if schedules { store.next_schedule().await.unwrap() } else { None };
                let retry = if types.is_empty() { None } else { store.next_ready_job(&types).await.unwrap() };
                (timer, schedule, retry)
            });
            let retry = retry.filter(|_| self.auto_run).filter(|r| *r > now);
            let next = [timer, schedule, retry].into_iter().flatten().filter(|t| *t <= at).min();
            let Some(when) = next else { break };
            self.clock.advance_to(when.max(now));
            let fired = self.rt.block_on(async {
                let mut fired = 0;
                loop {
                    let now = self.engine.fire_due_timers().await.unwrap();
                    let cron = if schedules { self.engine.fire_due_schedules().await.unwrap() } else { 0 };
                    if now + cron == 0 {
                        return fired;
                    }
                    fired += now + cron;
                }
            });
            self.look();
            let ran = if self.auto_run { self.run_jobs()? } else { 0 };
            assert!(when > now || fired + ran > 0, "nothing due at {when} moved");
        }
        self.clock.advance_to(at);
        self.look();
        if self.auto_run {
            self.run_jobs()?;
        }
        Ok(())
    }

    pub(crate) fn pending_jobs(&self) -> Vec<Job> {
        let jobs = self.rt.block_on(self.engine.store().open_jobs(None)).unwrap();
        jobs.into_iter()
            .filter(|j| j.state != JobState::Incident)
            .map(|j| Job {
                created_at: self.job_seen.get(&j.id).copied().unwrap_or(j.due_at),
                id: j.id,
                instance: j.instance_id,
                job_type: j.job_type,
                input: j.input,
                idempotency_key: j.idempotency_key,
                attempt: j.attempt,
                not_before: j.due_at,
            })
            .collect()
    }

    /// Locks `job` as a worker would, and reports `outcome`.
    pub(crate) fn finish_one(&mut self, job: &JobId, outcome: JobOutcome) -> Result<(), Error> {
        let engine = &self.engine;
        let open = self.rt.block_on(engine.store().open_jobs(None)).unwrap().into_iter().find(|j| j.id == *job);
        let Some(open) = open else { return Err(Error::UnknownJob(job.clone())) };
        let locked = self.rt.block_on(async {
            let mut locked =
                engine.fetch_and_lock("scenario", &[&open.job_type], 1_000, TimeDelta::minutes(5)).await.unwrap();
            let mine = locked.iter().position(|l| l.id == *job).map(|i| locked.remove(i));
            for other in locked {
                engine.release_job(&other.id, other.epoch).await.unwrap();
            }
            mine
        });
        let Some(locked) = locked else { panic!("job {job} is open but not due at {}", self.clock.now()) };
        let result = self.report(&locked.id, locked.epoch, &outcome);
        self.attempts.push(JobAttempt {
            at: self.clock.now(),
            job: job.clone(),
            instance: locked.instance_id.clone(),
            job_type: locked.job_type.clone(),
            input: locked.input.clone(),
            attempt: u32::try_from(locked.attempt).unwrap(),
            outcome,
            rejection: match &result {
                Err(Error::Rejected(r)) => Some(r.clone()),
                _ => None,
            },
        });
        if result.is_err() {
            // A refused report leaves the job locked: hand it back, as a worker's lease would.
            let _ = self.rt.block_on(engine.release_job(&locked.id, locked.epoch));
        }
        self.look();
        result
    }

    pub(crate) fn report(&self, job: &JobId, epoch: i64, outcome: &JobOutcome) -> Result<(), Error> {
        let engine = &self.engine;
        self.rt
            .block_on(async {
                match outcome {
                    JobOutcome::Complete(output) => engine.complete_job(job, epoch, output.clone()).await,
                    JobOutcome::Fail(message) => engine.fail_job(job, epoch, message).await,
                    JobOutcome::BusinessError(code) => engine.business_error(job, epoch, code).await,
                }
            })
            .map_err(engine_error)
    }

    pub(crate) fn run_jobs(&mut self) -> Result<usize, Error> {
        let types: Vec<String> = self.handlers.keys().cloned().collect();
        let types: Vec<&str> = types.iter().map(String::as_str).collect();
        let mut runs = 0;
        loop {
            let now = self.clock.now();
            // The oldest due job first, as in memory.
            let due =
                self.pending_jobs().into_iter().find(|j| j.not_before <= now && types.contains(&j.job_type.as_str()));
            let Some(due) = due else { return Ok(runs) };
            runs += 1;
            assert!(runs <= cloverleaf_engine::memory::RUN_LIMIT, "a loop of automated steps");
            let engine = &self.engine;
            let locked = self.rt.block_on(async {
                let mut locked =
                    engine.fetch_and_lock("scenario", &[&due.job_type], 1_000, TimeDelta::minutes(5)).await.unwrap();
                let mine = locked.iter().position(|l| l.id == due.id).map(|i| locked.remove(i));
                for other in locked {
                    engine.release_job(&other.id, other.epoch).await.unwrap();
                }
                mine.expect("the due job locks")
            });
            let input = JobInput {
                job: locked.id.clone(),
                instance: locked.instance_id.clone(),
                node: locked.node.clone(),
                job_type: locked.job_type.clone(),
                input: locked.input.clone(),
                idempotency_key: locked.idempotency_key.clone(),
                attempt: u32::try_from(locked.attempt).unwrap(),
                now,
            };
            let outcome = (self.handlers[&locked.job_type])(&input);
            let mut attempt = JobAttempt {
                at: now,
                job: locked.id.clone(),
                instance: locked.instance_id.clone(),
                job_type: locked.job_type.clone(),
                input: locked.input.clone(),
                attempt: u32::try_from(locked.attempt).unwrap(),
                outcome: outcome.clone(),
                rejection: None,
            };
            match self.report(&locked.id, locked.epoch, &outcome) {
                Ok(()) => {}
                Err(Error::Rejected(r)) => {
                    // One run, one attempt: the refused result is recorded as the failure it is.
                    let message = format!("the core refused the handler's result: {r}");
                    attempt.outcome = JobOutcome::Fail(message.clone());
                    self.report(&locked.id, locked.epoch, &attempt.outcome)?;
                }
                Err(e) => return Err(e),
            }
            self.attempts.push(attempt);
            self.look();
        }
    }

    pub(crate) fn tasks(&self) -> Vec<Task> {
        let infos = self.rt.block_on(self.engine.tasks(None)).unwrap();
        let mut tasks: Vec<Task> = infos
            .into_iter()
            .map(|t| {
                let instance = self.rt.block_on(self.engine.instance(&t.instance_id)).unwrap();
                let created_at = instance.tasks().get(&t.id).map(|w| w.created_at).expect("an open task waits");
                Task {
                    id: t.id,
                    instance: t.instance_id,
                    node: t.node,
                    title: t.title,
                    roles: t.roles,
                    due_at: t.due_at,
                    created_at,
                }
            })
            .collect();
        tasks.sort_by(|a, b| {
            (a.created_at, a.id.as_str().len(), &a.id).cmp(&(b.created_at, b.id.as_str().len(), &b.id))
        });
        tasks
    }

    pub(crate) fn reminders(&self) -> Vec<Reminder> {
        let notices = self.rt.block_on(self.engine.store().notifications(None, i64::MAX)).unwrap();
        let mut out: Vec<(DateTime<Utc>, String, Reminder)> = notices
            .into_iter()
            .filter(|n| n.row.kind == "task_reminder" || n.row.kind == "task_overdue")
            .map(|n| {
                let payload: serde_json::Value = serde_json::from_str(&n.row.payload).unwrap();
                let reminder = Reminder {
                    at: n.row.created_at,
                    task: TaskId::from(n.row.subject.clone()),
                    node: payload["node"].as_str().unwrap_or_default().to_string(),
                    overdue: n.row.kind == "task_overdue",
                };
                (n.row.created_at, n.row.id, reminder)
            })
            .collect();
        out.sort_by(|a, b| (a.0, a.1.len(), &a.1).cmp(&(b.0, b.1.len(), &b.1)));
        out.into_iter().map(|(_, _, r)| r).collect()
    }
}
