//! An in-process engine over the pure core, for tests, demos and designers: no database, no
//! threads, no async. Time is a [`VirtualClock`] that only [`MemoryEngine::advance`] moves.
//!
//! [`MemoryEngine`] deploys compiled processes, starts instances and routes every [`Effect`](crate::Effect) the
//! core emits: jobs go to a queue (completed through the API or by registered in-process
//! handlers), human tasks to an inbox, timers to a time-ordered queue, subscriptions to a
//! correlation table (with a buffer for early messages), child calls to child instances. Every
//! accepted event is kept in a per-instance event log, so [`MemoryEngine::replay`] can rebuild
//! an instance, and a readable [`TimelineEntry`] list tells the story.
//!
//! ```
//! use chrono::{TimeDelta, TimeZone, Utc};
//! use cloverleaf_dsl::Project;
//! use cloverleaf_engine::memory::{JobOutcome, MemoryEngine};
//! use cloverleaf_engine::Status;
//!
//! let mut project = Project::new();
//! project.add("p.flow", r#"process p "P" {
//!     input { amount: money }
//!     var fee: money = 0
//!     start -> price
//!     task price { job "fee.compute" in { amount } out { fee } } -> done
//!     end done "Done"
//! }"#);
//! let mut engine = MemoryEngine::new(Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap());
//! engine.deploy_compilation(&project.compile()).unwrap();
//! engine.register("fee.compute", |_job| JobOutcome::complete(serde_json::json!({"fee": "2.50"})));
//! let id = engine.start("p", serde_json::json!({"amount": "100.00"})).unwrap();
//! engine.run_jobs().unwrap();
//! assert_eq!(engine.instance(&id).unwrap().status(), &Status::Completed { outcome: Some("done".into()) });
//! engine.advance(TimeDelta::hours(1));
//! ```
//!
//! Architecture Invariant: this module only drives [`crate::step`](fn@crate::step); it decides nothing the core
//! decides (routing, separation of duties, form validation, retries). Events that one instance's
//! effects cause for another (a child's end for its parent, a buffered message for a new
//! subscription) are queued and applied one at a time, in order, after the step that caused them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use cloverleaf_dsl::model::{NodeKind, Trigger};
use cloverleaf_dsl::{Compilation, CompiledProcess};

use crate::clock::{Clock, VirtualClock};
use crate::effect::HistoryEvent;
use crate::event::Event;
use crate::ids::{CallId, IncidentId, InstanceId, JobId, SubscriptionId, TaskId, TimerId};
use crate::instance::Instance;
use crate::step::{Migration, MigrationPlan, migrate, replay_versions};

/// Most jobs one [`MemoryEngine::run_jobs`] call runs before it stops as a runaway loop.
pub const RUN_LIMIT: usize = 10_000;

/// Most queued events one API call may cause before it stops as a runaway cascade.
pub const CASCADE_LIMIT: usize = 100_000;

mod interpret;
mod model;

use model::{Buffered, Handler, Offer, Record, SubscriptionEntry, TimerEntry};
pub use model::{
    Correlation, Deployed, Error, Job, JobAttempt, JobInput, JobOutcome, OpenIncident, Refusal, Reminder, StartOptions,
    Task, TimelineEntry,
};

/// The in-process engine: see the module documentation.
pub struct MemoryEngine {
    clock: VirtualClock,
    deployments: BTreeMap<String, Vec<Arc<CompiledProcess>>>,
    records: BTreeMap<InstanceId, Record>,
    order: Vec<InstanceId>,
    counters: BTreeMap<String, u64>,
    jobs: BTreeMap<JobId, Job>,
    tasks: BTreeMap<TaskId, Task>,
    timers: BTreeMap<TimerId, TimerEntry>,
    subscriptions: BTreeMap<SubscriptionId, SubscriptionEntry>,
    buffer: Vec<Buffered>,
    offers: BTreeMap<SubscriptionId, Offer>,
    seen_messages: BTreeSet<String>,
    children: BTreeMap<CallId, InstanceId>,
    incidents: BTreeMap<IncidentId, OpenIncident>,
    handlers: BTreeMap<String, Handler>,
    attempts: Vec<JobAttempt>,
    reminders: Vec<Reminder>,
    timeline: Vec<TimelineEntry>,
    refusals: Vec<Refusal>,
    queue: VecDeque<(InstanceId, Event)>,
    message_ttl: Option<TimeDelta>,
    auto_run: bool,
    schedules: Option<BTreeMap<(String, String), DateTime<Utc>>>,
    seq: u64,
}

impl std::fmt::Debug for MemoryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryEngine")
            .field("now", &self.clock.now())
            .field("instances", &self.order)
            .field("jobs", &self.jobs.len())
            .field("tasks", &self.tasks.len())
            .field("timers", &self.timers.len())
            .finish_non_exhaustive()
    }
}

impl MemoryEngine {
    /// An empty engine whose virtual clock stands at `start`.
    pub fn new(start: DateTime<Utc>) -> MemoryEngine {
        MemoryEngine::with_clock(VirtualClock::new(start))
    }

    /// An empty engine on a shared virtual clock.
    pub fn with_clock(clock: VirtualClock) -> MemoryEngine {
        MemoryEngine {
            clock,
            deployments: BTreeMap::new(),
            records: BTreeMap::new(),
            order: Vec::new(),
            counters: BTreeMap::new(),
            jobs: BTreeMap::new(),
            tasks: BTreeMap::new(),
            timers: BTreeMap::new(),
            subscriptions: BTreeMap::new(),
            buffer: Vec::new(),
            offers: BTreeMap::new(),
            seen_messages: BTreeSet::new(),
            children: BTreeMap::new(),
            incidents: BTreeMap::new(),
            handlers: BTreeMap::new(),
            attempts: Vec::new(),
            reminders: Vec::new(),
            timeline: Vec::new(),
            refusals: Vec::new(),
            queue: VecDeque::new(),
            message_ttl: None,
            auto_run: false,
            schedules: None,
            seq: 0,
        }
    }

    // ---- configuration -------------------------------------------------------------------

    /// How long a message that matched no subscription stays buffered (`None`: for ever).
    pub fn set_message_ttl(&mut self, ttl: Option<TimeDelta>) {
        self.message_ttl = ttl;
    }

    /// When on, registered handlers run after every call and at every instant
    /// [`MemoryEngine::advance`] stops at (a job then runs at the time it was created).
    pub fn set_auto_run(&mut self, on: bool) {
        self.auto_run = on;
    }

    /// When on, [`MemoryEngine::advance`] starts an instance at every fire of a cron start
    /// (`start every ...`), counting fires from now.
    pub fn set_schedules(&mut self, on: bool) {
        if !on {
            self.schedules = None;
            return;
        }
        let now = self.now();
        let mut cursors = self.schedules.take().unwrap_or_default();
        for key in self.deployments.keys() {
            for node in self.schedule_nodes(key) {
                cursors.entry((key.clone(), node)).or_insert(now);
            }
        }
        self.schedules = Some(cursors);
    }

    /// Registers the in-process handler of a job type (replacing an earlier one).
    pub fn register<F>(&mut self, job_type: impl Into<String>, handler: F)
    where
        F: Fn(&JobInput) -> JobOutcome + Send + Sync + 'static,
    {
        self.handlers.insert(job_type.into(), Box::new(handler));
    }

    // ---- deployments ---------------------------------------------------------------------

    /// Deploys compiled processes; a definition equal to its key's latest version is not
    /// deployed again.
    pub fn deploy(&mut self, processes: &[CompiledProcess]) -> Vec<Deployed> {
        let mut out = Vec::new();
        for p in processes {
            let versions = self.deployments.entry(p.key.clone()).or_default();
            if versions.last().is_some_and(|latest| **latest == *p) {
                out.push(Deployed { process: p.key.clone(), version: versions.len() as u32, new: false });
                continue;
            }
            versions.push(Arc::new(p.clone()));
            out.push(Deployed { process: p.key.clone(), version: versions.len() as u32, new: true });
            let now = self.now();
            let nodes = self.schedule_nodes(&p.key);
            if let Some(cursors) = self.schedules.as_mut() {
                for node in nodes {
                    cursors.entry((p.key.clone(), node)).or_insert(now);
                }
            }
        }
        out
    }

    /// Deploys every process of a compilation, or nothing when it has errors.
    pub fn deploy_compilation(&mut self, compilation: &Compilation) -> Result<Vec<Deployed>, Error> {
        if compilation.has_errors() {
            return Err(Error::Compilation(compilation.render()));
        }
        Ok(self.deploy(&compilation.processes))
    }

    /// A deployed definition (`None` for the version: the latest).
    pub fn definition(&self, process: &str, version: Option<u32>) -> Option<&CompiledProcess> {
        let versions = self.deployments.get(process)?;
        let found = match version {
            None => versions.last(),
            Some(v) => versions.get((v as usize).checked_sub(1)?),
        };
        found.map(|d| &**d)
    }

    fn schedule_nodes(&self, process: &str) -> Vec<String> {
        let Some(def) = self.definition(process, None) else { return Vec::new() };
        def.nodes
            .iter()
            .filter(|n| matches!(n.kind, NodeKind::Start { trigger: Trigger::Schedule { .. }, .. }))
            .map(|n| n.name.clone())
            .collect()
    }

    // ---- time ----------------------------------------------------------------------------

    /// The engine's current time.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The virtual clock (clones share its time).
    pub fn clock(&self) -> &VirtualClock {
        &self.clock
    }

    /// Moves time forward by `by`, firing every timer due on the way in time order, each at its
    /// own time (a negative `by` does nothing).
    pub fn advance(&mut self, by: TimeDelta) -> Result<(), Error> {
        let target = self.now().checked_add_signed(by).unwrap_or(self.now());
        self.advance_to(target)
    }

    /// Moves time forward to `at`, firing every timer due up to then in time order.
    pub fn advance_to(&mut self, at: DateTime<Utc>) -> Result<(), Error> {
        if self.auto_run {
            self.run_jobs()?;
        }
        loop {
            let timer = self
                .timers
                .iter()
                .filter(|(_, t)| t.at <= at)
                .min_by_key(|(_, t)| (t.at, t.seq))
                .map(|(id, t)| (id.clone(), t.at));
            let schedule = self.next_schedule_fire().filter(|(_, _, when)| *when <= at);
            let retry = if self.auto_run {
                self.jobs
                    .values()
                    .filter(|j| j.incident.is_none() && j.not_before > self.now() && j.not_before <= at)
                    .filter(|j| self.handlers.contains_key(&j.job_type))
                    .map(|j| j.not_before)
                    .min()
            } else {
                None
            };
            let next = [timer.as_ref().map(|t| t.1), schedule.as_ref().map(|s| s.2), retry].into_iter().flatten().min();
            let Some(when) = next else { break };
            self.clock.advance_to(when);
            if let Some((timer, _)) = timer.filter(|(_, t_at)| *t_at == when) {
                self.fire_timer(timer)?;
            } else if let Some((process, node, fire)) = schedule.filter(|s| s.2 == when) {
                if let Some(cursors) = self.schedules.as_mut() {
                    cursors.insert((process.clone(), node.clone()), fire);
                }
                let options = StartOptions { start: Some(node), ..StartOptions::default() };
                if let Err(e) = self.start_with(&process, serde_json::json!({}), options) {
                    self.note(&InstanceId(process.clone()), format!("scheduled start refused: {e}"));
                }
            }
            if self.auto_run {
                self.run_jobs()?;
            }
        }
        self.clock.advance_to(at);
        if self.auto_run {
            self.run_jobs()?;
        }
        Ok(())
    }

    fn next_schedule_fire(&self) -> Option<(String, String, DateTime<Utc>)> {
        let cursors = self.schedules.as_ref()?;
        cursors
            .iter()
            .filter_map(|((process, node), after)| {
                let def = self.definition(process, None)?;
                let NodeKind::Start { trigger: Trigger::Schedule { schedule }, .. } = &def.node(node)?.kind else {
                    return None;
                };
                let fire = schedule.next_after(*after)?.with_timezone(&Utc);
                Some((process.clone(), node.clone(), fire))
            })
            .min_by_key(|(_, _, at)| *at)
    }

    fn fire_timer(&mut self, timer: TimerId) -> Result<(), Error> {
        let Some(entry) = self.timers.remove(&timer) else { return Ok(()) };
        let instance = entry.instance.clone();
        self.queue.push_back((instance, Event::TimerFired { timer }));
        self.drain()
    }

    /// Open timers as (instance, node, due time), earliest first.
    pub fn timers(&self) -> Vec<(InstanceId, String, DateTime<Utc>)> {
        let mut all: Vec<&TimerEntry> = self.timers.values().collect();
        all.sort_by_key(|t| (t.at, t.seq));
        all.into_iter().map(|t| (t.instance.clone(), t.node.clone(), t.at)).collect()
    }

    // ---- instances -----------------------------------------------------------------------

    /// Starts an instance of the latest version of `process` with these inputs.
    pub fn start(&mut self, process: &str, variables: serde_json::Value) -> Result<InstanceId, Error> {
        self.start_with(process, variables, StartOptions::default())
    }

    /// Starts an instance with a version, business key or start node.
    pub fn start_with(
        &mut self,
        process: &str,
        variables: serde_json::Value,
        options: StartOptions,
    ) -> Result<InstanceId, Error> {
        let id = self.create(process, options.version, None)?;
        let event = Event::Start {
            variables,
            business_key: options.business_key,
            start: options.start,
            started_by: None,
            on_behalf_of: None,
        };
        if let Err(e) = self.apply(&id, event) {
            self.discard(&id);
            return Err(e);
        }
        self.drain()?;
        self.settle()?;
        Ok(id)
    }

    /// Creates a record for a new instance (not started).
    fn create(
        &mut self,
        process: &str,
        version: Option<u32>,
        parent: Option<(InstanceId, CallId)>,
    ) -> Result<InstanceId, Error> {
        let versions = self
            .deployments
            .get(process)
            .ok_or_else(|| Error::UnknownProcess { process: process.to_string(), version })?;
        let (number, definition) = match version {
            None => (versions.len() as u32, versions.last()),
            Some(v) => (v, (v as usize).checked_sub(1).and_then(|i| versions.get(i))),
        };
        let definition =
            definition.cloned().ok_or_else(|| Error::UnknownProcess { process: process.to_string(), version })?;
        let counter = self.counters.entry(process.to_string()).or_insert(0);
        *counter += 1;
        let id = InstanceId(format!("{process}-{counter}"));
        let instance = Instance::new(id.clone(), process, number);
        self.records.insert(id.clone(), Record { definition, instance, log: Vec::new(), history: Vec::new(), parent });
        self.order.push(id.clone());
        Ok(id)
    }

    /// Forgets an instance whose start was refused (its counter number is not reused).
    fn discard(&mut self, id: &InstanceId) {
        self.records.remove(id);
        self.order.retain(|i| i != id);
    }

    /// Cancels a running instance (and its children).
    pub fn cancel(&mut self, instance: &InstanceId, by: &str) -> Result<(), Error> {
        self.act(instance, Event::Cancel { by: by.to_string() })
    }

    /// An operator repairs a running instance (cancels a token, starts one before a node, sets
    /// a variable), recorded in its history with `by` and `reason`.
    pub fn modify(
        &mut self,
        instance: &InstanceId,
        modification: crate::event::Modification,
        by: &str,
        reason: &str,
    ) -> Result<(), Error> {
        self.act(instance, Event::Modify { modification, by: by.to_string(), reason: reason.to_string() })
    }

    /// An instance's current state.
    pub fn instance(&self, id: &InstanceId) -> Option<&Instance> {
        self.records.get(id).map(|r| &r.instance)
    }

    /// Every instance id, in the order they were created.
    pub fn instances(&self) -> &[InstanceId] {
        &self.order
    }

    /// The instances of one process, in creation order.
    pub fn instances_of(&self, process: &str) -> Vec<InstanceId> {
        self.order
            .iter()
            .filter(|id| self.records.get(*id).is_some_and(|r| r.instance.process() == process))
            .cloned()
            .collect()
    }

    /// The child instances an instance called, in creation order.
    pub fn children(&self, parent: &InstanceId) -> Vec<InstanceId> {
        self.order
            .iter()
            .filter(|id| self.records.get(*id).and_then(|r| r.parent.as_ref()).is_some_and(|(p, _)| p == parent))
            .cloned()
            .collect()
    }

    /// The instance that called this one, with the call id.
    pub fn parent(&self, child: &InstanceId) -> Option<&(InstanceId, CallId)> {
        self.records.get(child)?.parent.as_ref()
    }

    /// The events accepted by an instance, with the time each was applied.
    pub fn event_log(&self, id: &InstanceId) -> Option<&[(Event, DateTime<Utc>)]> {
        self.records.get(id).map(|r| r.log.as_slice())
    }

    /// An instance's history entries, with their times.
    pub fn history(&self, id: &InstanceId) -> Option<&[(DateTime<Utc>, HistoryEvent)]> {
        self.records.get(id).map(|r| r.history.as_slice())
    }

    /// Rebuilds an instance from its event log on the version it started on (and the versions
    /// it migrated to).
    pub fn replay(&self, id: &InstanceId) -> Result<Instance, Error> {
        let record = self.records.get(id).ok_or_else(|| Error::UnknownInstance(id.clone()))?;
        let process = record.instance.process();
        let first = record
            .log
            .iter()
            .find_map(|(e, _)| match e {
                Event::Migrate { from_version, .. } => Some(*from_version),
                _ => None,
            })
            .unwrap_or(record.instance.process_version());
        let fresh = Instance::new(id.clone(), process, first);
        let versions = |v: u32| self.definition(process, Some(v));
        Ok(replay_versions(versions, fresh, record.log.iter().map(|(e, t)| (e, *t)))?)
    }

    /// Moves a running instance to version `to_version` of its definition (`mapping`: renamed
    /// nodes, old → new), recorded in its history with `by` and `reason`; with `dry_run`, only
    /// says what it would do. A refusal ([`Rejection::CannotMigrate`](crate::Rejection)) lists
    /// every reason and changes nothing.
    pub fn migrate(
        &mut self,
        id: &InstanceId,
        to_version: u32,
        mapping: &BTreeMap<String, String>,
        (by, reason): (&str, &str),
        dry_run: bool,
    ) -> Result<MigrationPlan, Error> {
        let now = self.now();
        let record = self.records.get(id).ok_or_else(|| Error::UnknownInstance(id.clone()))?;
        let process = record.instance.process().to_string();
        let to = self
            .deployments
            .get(&process)
            .and_then(|v| (to_version as usize).checked_sub(1).and_then(|i| v.get(i)))
            .cloned()
            .ok_or_else(|| Error::UnknownProcess { process: process.clone(), version: Some(to_version) })?;
        let migration = Migration { from: &record.definition, to: &to, to_version, mapping, by, reason };
        let (transition, plan) = migrate(&migration, &record.instance, now)?;
        if dry_run {
            return Ok(plan);
        }
        let event = migration.event(&record.instance);
        let record = self.records.get_mut(id).ok_or_else(|| Error::UnknownInstance(id.clone()))?;
        record.definition = to;
        record.instance = transition.instance;
        record.log.push((event, now));
        for effect in transition.effects {
            self.route(id, effect);
        }
        self.reconcile(id);
        self.drain()?;
        self.settle()?;
        Ok(plan)
    }

    // ---- jobs ----------------------------------------------------------------------------

    /// Open jobs that are not stuck on an incident, oldest first (retries may not be due yet).
    pub fn pending_jobs(&self) -> Vec<&Job> {
        let mut jobs: Vec<&Job> = self.jobs.values().filter(|j| j.incident.is_none()).collect();
        jobs.sort_by_key(|j| j.seq);
        jobs
    }

    /// An open job (stuck or not).
    pub fn job(&self, id: &JobId) -> Option<&Job> {
        self.jobs.get(id)
    }

    /// Every job attempt so far, by handlers or through the API, in order.
    pub fn job_attempts(&self) -> &[JobAttempt] {
        &self.attempts
    }

    /// Completes a job with its result object.
    pub fn complete_job(&mut self, job: &JobId, output: serde_json::Value) -> Result<(), Error> {
        self.finish_job(job, JobOutcome::Complete(output))
    }

    /// Reports a technical failure of a job attempt.
    pub fn fail_job(&mut self, job: &JobId, message: &str) -> Result<(), Error> {
        self.finish_job(job, JobOutcome::Fail(message.to_string()))
    }

    /// Reports a business error of a job.
    pub fn business_error(&mut self, job: &JobId, code: &str) -> Result<(), Error> {
        self.finish_job(job, JobOutcome::BusinessError(code.to_string()))
    }

    fn finish_job(&mut self, job: &JobId, outcome: JobOutcome) -> Result<(), Error> {
        let open = self.jobs.get(job).cloned().ok_or_else(|| Error::UnknownJob(job.clone()))?;
        let event = match &outcome {
            JobOutcome::Complete(output) => Event::JobCompleted { job: job.clone(), output: output.clone() },
            JobOutcome::Fail(message) => Event::JobFailed { job: job.clone(), message: message.clone() },
            JobOutcome::BusinessError(code) => Event::JobBusinessError { job: job.clone(), code: code.clone() },
        };
        let result = self.act(&open.instance, event);
        self.attempts.push(JobAttempt {
            at: self.now(),
            job: job.clone(),
            instance: open.instance.clone(),
            job_type: open.job_type.clone(),
            input: open.input.clone(),
            attempt: open.attempt,
            outcome,
            rejection: match &result {
                Err(Error::Rejected(r)) => Some(r.clone()),
                _ => None,
            },
        });
        result
    }

    /// Runs registered handlers on due jobs, oldest first, until none is left; returns how many
    /// attempts ran. A result the core refuses (an output that does not fit) counts as a failure.
    pub fn run_jobs(&mut self) -> Result<usize, Error> {
        let mut runs = 0;
        loop {
            let now = self.now();
            let next = self
                .jobs
                .values()
                .filter(|j| j.incident.is_none() && j.not_before <= now && self.handlers.contains_key(&j.job_type))
                .min_by_key(|j| j.seq)
                .cloned();
            let Some(job) = next else { return Ok(runs) };
            runs += 1;
            if runs > RUN_LIMIT {
                return Err(Error::RunawayJobs(RUN_LIMIT));
            }
            let input = JobInput {
                job: job.id.clone(),
                instance: job.instance.clone(),
                node: job.node.clone(),
                job_type: job.job_type.clone(),
                input: job.input.clone(),
                idempotency_key: job.idempotency_key.clone(),
                attempt: job.attempt,
                now,
            };
            let Some(handler) = self.handlers.get(&job.job_type) else { continue };
            let outcome = handler(&input);
            match self.finish_job(&job.id, outcome) {
                Ok(()) => {}
                Err(Error::Rejected(r)) => {
                    // One run, one attempt: the refused result is recorded as the failure it is.
                    self.attempts.pop();
                    self.fail_job(&job.id, &format!("the core refused the handler's result: {r}"))?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    // ---- tasks ---------------------------------------------------------------------------

    /// Every open task, oldest first.
    pub fn tasks(&self) -> Vec<&Task> {
        let mut tasks: Vec<&Task> = self.tasks.values().collect();
        tasks.sort_by_key(|t| t.seq);
        tasks
    }

    /// Open tasks offered to any of these roles, oldest first.
    pub fn tasks_for(&self, roles: &[&str]) -> Vec<&Task> {
        self.tasks().into_iter().filter(|t| t.roles.iter().any(|r| roles.contains(&r.as_str()))).collect()
    }

    /// An open task.
    pub fn task(&self, id: &TaskId) -> Option<&Task> {
        self.tasks.get(id)
    }

    /// Completes a task as `user` (acting for `on_behalf_of`) with a form; the core's
    /// [`Rejection`](crate::Rejection)s (separation of duties, form errors) come back unchanged in [`Error::Rejected`].
    pub fn complete_task(
        &mut self,
        task: &TaskId,
        user: &str,
        on_behalf_of: Option<&str>,
        form: serde_json::Value,
    ) -> Result<(), Error> {
        let open = self.tasks.get(task).ok_or_else(|| Error::UnknownTask(task.clone()))?;
        let instance = open.instance.clone();
        let event = Event::TaskCompleted {
            task: task.clone(),
            by: user.to_string(),
            on_behalf_of: on_behalf_of.map(str::to_string),
            form,
        };
        self.act(&instance, event)
    }

    /// `user` hands a task to `to`, who then completes it on `user`'s behalf; the core refuses a
    /// delegation that a `not by` rule would make pointless.
    pub fn delegate(&mut self, task: &TaskId, user: &str, to: &str) -> Result<(), Error> {
        let open = self.tasks.get(task).ok_or_else(|| Error::UnknownTask(task.clone()))?;
        let instance = open.instance.clone();
        self.act(&instance, Event::TaskDelegated { task: task.clone(), by: user.to_string(), to: to.to_string() })
    }

    /// Reminders sent so far, in order.
    pub fn reminders(&self) -> &[Reminder] {
        &self.reminders
    }

    // ---- messages ------------------------------------------------------------------------

    /// Delivers a message to the oldest subscription with this name and key, or buffers it.
    /// A message id already accepted makes this a no-op.
    pub fn correlate(
        &mut self,
        name: &str,
        key: &str,
        payload: serde_json::Value,
        message_id: Option<&str>,
    ) -> Result<Correlation, Error> {
        if message_id.is_some_and(|id| self.seen_messages.contains(id)) {
            return Ok(Correlation::Duplicate);
        }
        let target = self
            .subscriptions
            .iter()
            .filter(|(_, s)| s.message == name && s.key == key)
            .min_by_key(|(_, s)| s.seq)
            .map(|(id, s)| (id.clone(), s.instance.clone()));
        let result = match target {
            Some((subscription, instance)) => {
                self.act(&instance, Event::MessageCorrelated { subscription, payload })?;
                Correlation::Delivered(instance)
            }
            None => {
                let expires_at = self.message_ttl.and_then(|ttl| self.now().checked_add_signed(ttl));
                let seq = self.next_seq();
                self.buffer.push(Buffered {
                    seq,
                    message: name.to_string(),
                    key: key.to_string(),
                    payload,
                    expires_at,
                });
                Correlation::Buffered
            }
        };
        if let Some(id) = message_id {
            self.seen_messages.insert(id.to_string());
        }
        Ok(result)
    }

    /// Messages waiting for a subscription, as (name, key).
    pub fn buffered_messages(&self) -> Vec<(String, String)> {
        let now = self.now();
        self.buffer
            .iter()
            .filter(|b| b.expires_at.is_none_or(|e| e > now))
            .map(|b| (b.message.clone(), b.key.clone()))
            .collect()
    }

    // ---- incidents -----------------------------------------------------------------------

    /// Open incidents, oldest first.
    pub fn incidents(&self) -> Vec<&OpenIncident> {
        let mut all: Vec<&OpenIncident> = self.incidents.values().collect();
        all.sort_by_key(|i| i.at);
        all
    }

    /// Retries an incident: its job runs again, or its stuck node runs again.
    pub fn retry_incident(&mut self, incident: &IncidentId) -> Result<(), Error> {
        let open = self.incidents.get(incident).ok_or_else(|| Error::UnknownIncident(incident.clone()))?;
        let instance = open.instance.clone();
        self.act(&instance, Event::ResolveIncident { incident: incident.clone() })
    }

    // ---- the story -----------------------------------------------------------------------

    /// Everything that happened, in order.
    pub fn timeline(&self) -> &[TimelineEntry] {
        &self.timeline
    }

    /// The timeline as text, one `time  instance  what` line per entry.
    pub fn timeline_text(&self) -> String {
        let mut out = String::new();
        for e in &self.timeline {
            out.push_str(&format!("{}  {}  {}\n", e.at.format("%Y-%m-%d %H:%M"), e.instance, e.text));
        }
        out
    }

    /// Queued events the core refused (a cascade the engine could not apply).
    pub fn refusals(&self) -> &[Refusal] {
        &self.refusals
    }

    // ---- the machinery -------------------------------------------------------------------
}
