//! An in-process engine over the pure core, for tests, demos and designers: no database, no
//! threads, no async. Time is a [`VirtualClock`] that only [`MemoryEngine::advance`] moves.
//!
//! [`MemoryEngine`] deploys compiled processes, starts instances and routes every [`Effect`] the
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
//! Architecture Invariant: this module only drives [`crate::step`]; it decides nothing the core
//! decides (routing, separation of duties, form validation, retries). Events that one instance's
//! effects cause for another (a child's end for its parent, a buffered message for a new
//! subscription) are queued and applied one at a time, in order, after the step that caused them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use cloverleaf_dsl::model::{FormField, NodeKind, Trigger};
use cloverleaf_dsl::{Compilation, CompiledProcess};

use crate::clock::{Clock, VirtualClock};
use crate::effect::{Effect, HistoryEvent, HistoryKind};
use crate::event::Event;
use crate::ids::{CallId, IncidentId, InstanceId, JobId, SubscriptionId, TaskId, TimerId};
use crate::instance::Instance;
use crate::rejection::Rejection;
use crate::step::{replay, step};

/// Most jobs one [`MemoryEngine::run_jobs`] call runs before it stops as a runaway loop.
pub const RUN_LIMIT: usize = 10_000;

/// Most queued events one API call may cause before it stops as a runaway cascade.
pub const CASCADE_LIMIT: usize = 100_000;

/// Why the in-memory engine refused a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The compilation has errors; nothing was deployed.
    #[error("the processes do not compile:\n{0}")]
    Compilation(String),
    /// No deployment of this process key (or of this version).
    #[error("process `{process}` is not deployed{}", version.map(|v| format!(" in version {v}")).unwrap_or_default())]
    UnknownProcess {
        /// The key.
        process: String,
        /// The version asked for, if any.
        version: Option<u32>,
    },
    /// No instance with this id.
    #[error("no instance `{0}`")]
    UnknownInstance(InstanceId),
    /// No open job with this id.
    #[error("no open job `{0}`")]
    UnknownJob(JobId),
    /// No open task with this id.
    #[error("no open task `{0}`")]
    UnknownTask(TaskId),
    /// No open incident with this id.
    #[error("no open incident `{0}`")]
    UnknownIncident(IncidentId),
    /// The core refused the event; nothing changed.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// Jobs kept creating jobs beyond [`RUN_LIMIT`] runs.
    #[error("more than {0} jobs run in one call: a loop of automated steps")]
    RunawayJobs(usize),
    /// Events kept causing events beyond [`CASCADE_LIMIT`].
    #[error("more than {0} events caused by one call")]
    RunawayCascade(usize),
}

/// A deployed definition: its key and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    /// The process key.
    pub process: String,
    /// The version (1 for the first deployment of a key).
    pub version: u32,
    /// False when the same definition was already the latest version (idempotent deploy).
    pub new: bool,
}

/// How to start an instance, beyond its inputs.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// The version to run; `None`: the latest.
    pub version: Option<u32>,
    /// A business key (an order number).
    pub business_key: Option<String>,
    /// The start node; `None`: the process's plain start.
    pub start: Option<String>,
}

/// An open job in the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The job id (from the core).
    pub id: JobId,
    /// The instance it belongs to.
    pub instance: InstanceId,
    /// The task node.
    pub node: String,
    /// The job type.
    pub job_type: String,
    /// The input object.
    pub input: serde_json::Value,
    /// Stable per activation of the node.
    pub idempotency_key: String,
    /// The attempt about to run (1 is the first try).
    pub attempt: u32,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Not fetchable before this time (a retry's backoff).
    pub not_before: DateTime<Utc>,
    /// The open incident, when retries ran out: only an operator retry moves it.
    pub incident: Option<IncidentId>,
    seq: u64,
}

/// What a job handler is given.
#[derive(Debug, Clone, PartialEq)]
pub struct JobInput {
    /// The job id.
    pub job: JobId,
    /// The instance.
    pub instance: InstanceId,
    /// The task node.
    pub node: String,
    /// The job type.
    pub job_type: String,
    /// The input object.
    pub input: serde_json::Value,
    /// Stable per activation: make side effects once per key.
    pub idempotency_key: String,
    /// The attempt (1 is the first try).
    pub attempt: u32,
    /// The engine's current time.
    pub now: DateTime<Utc>,
}

/// What a job handler answers.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    /// Done, with this result object.
    Complete(serde_json::Value),
    /// A technical failure: retried per the task's policy, then an incident.
    Fail(String),
    /// A business error with this code: taken by a matching `on error`.
    BusinessError(String),
}

impl JobOutcome {
    /// Done, with this result object.
    pub fn complete(output: serde_json::Value) -> JobOutcome {
        JobOutcome::Complete(output)
    }
}

/// One attempt at a job, by a handler or through the API.
#[derive(Debug, Clone, PartialEq)]
pub struct JobAttempt {
    /// When.
    pub at: DateTime<Utc>,
    /// The job.
    pub job: JobId,
    /// The instance.
    pub instance: InstanceId,
    /// The job type.
    pub job_type: String,
    /// The job's input object.
    pub input: serde_json::Value,
    /// The attempt number.
    pub attempt: u32,
    /// What happened.
    pub outcome: JobOutcome,
    /// The core's refusal, when the outcome was not accepted.
    pub rejection: Option<Rejection>,
}

/// An open human task in the inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// The task id (from the core).
    pub id: TaskId,
    /// The instance.
    pub instance: InstanceId,
    /// The process key.
    pub process: String,
    /// The approval node.
    pub node: String,
    /// The title, placeholders rendered.
    pub title: String,
    /// Roles whose members may complete it.
    pub roles: Vec<String>,
    /// The user it is assigned to.
    pub assignee: Option<String>,
    /// The form.
    pub form: Vec<FormField>,
    /// The SLA.
    pub due_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Reminders sent so far (overdue notices included).
    pub reminders: u32,
    seq: u64,
}

/// A reminder the engine sent for a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reminder {
    /// When.
    pub at: DateTime<Utc>,
    /// The task.
    pub task: TaskId,
    /// The approval node.
    pub node: String,
    /// True when the task's due time had passed.
    pub overdue: bool,
}

/// An open incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenIncident {
    /// The incident id.
    pub id: IncidentId,
    /// The instance.
    pub instance: InstanceId,
    /// Where.
    pub node: String,
    /// The job concerned, if any.
    pub job: Option<JobId>,
    /// What went wrong.
    pub message: String,
    /// When it was raised.
    pub at: DateTime<Utc>,
}

/// What [`MemoryEngine::correlate`] did with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Correlation {
    /// Delivered to this instance.
    Delivered(InstanceId),
    /// No subscription matched: kept until one does (or its time to live runs out).
    Buffered,
    /// A message with this id was already accepted: nothing was done.
    Duplicate,
}

/// One line of the story.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Which instance.
    pub instance: InstanceId,
    /// What happened, in words.
    pub text: String,
}

/// An event the engine queued for an instance (a cascade) that the core refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// When.
    pub at: DateTime<Utc>,
    /// The instance.
    pub instance: InstanceId,
    /// The event's name.
    pub event: String,
    /// Why.
    pub rejection: Rejection,
}

/// A job handler.
type Handler = Box<dyn Fn(&JobInput) -> JobOutcome + Send + Sync>;

struct Record {
    definition: Arc<CompiledProcess>,
    instance: Instance,
    log: Vec<(Event, DateTime<Utc>)>,
    history: Vec<(DateTime<Utc>, HistoryEvent)>,
    parent: Option<(InstanceId, CallId)>,
}

struct TimerEntry {
    instance: InstanceId,
    node: String,
    at: DateTime<Utc>,
    seq: u64,
}

struct SubscriptionEntry {
    instance: InstanceId,
    message: String,
    key: String,
    seq: u64,
}

struct Buffered {
    message: String,
    key: String,
    payload: serde_json::Value,
    expires_at: Option<DateTime<Utc>>,
}

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

    /// Rebuilds an instance from its event log on its definition.
    pub fn replay(&self, id: &InstanceId) -> Result<Instance, Error> {
        let record = self.records.get(id).ok_or_else(|| Error::UnknownInstance(id.clone()))?;
        let fresh = Instance::new(id.clone(), record.instance.process(), record.instance.process_version());
        Ok(replay(&record.definition, fresh, record.log.iter().map(|(e, t)| (e, *t)))?)
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
    /// [`Rejection`]s (separation of duties, form errors) come back unchanged in [`Error::Rejected`].
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
                self.buffer.push(Buffered { message: name.to_string(), key: key.to_string(), payload, expires_at });
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

    /// Applies an API event, then everything it causes.
    fn act(&mut self, instance: &InstanceId, event: Event) -> Result<(), Error> {
        self.apply(instance, event)?;
        self.drain()?;
        self.settle()
    }

    fn settle(&mut self) -> Result<(), Error> {
        if self.auto_run {
            self.run_jobs()?;
        }
        Ok(())
    }

    /// Applies queued events in order until none is left.
    fn drain(&mut self) -> Result<(), Error> {
        let mut count = 0;
        while let Some((instance, event)) = self.queue.pop_front() {
            count += 1;
            if count > CASCADE_LIMIT {
                self.queue.clear();
                return Err(Error::RunawayCascade(CASCADE_LIMIT));
            }
            let name = event.name().to_string();
            let redeliver = match &event {
                Event::MessageCorrelated { payload, .. } => Some(payload.clone()),
                _ => None,
            };
            let subscription = match &event {
                Event::MessageCorrelated { subscription, .. } => {
                    self.subscriptions.get(subscription).map(|s| (s.message.clone(), s.key.clone()))
                }
                _ => None,
            };
            match self.apply(&instance, event) {
                Ok(()) => {}
                Err(Error::Rejected(rejection)) => {
                    self.note(&instance, format!("{name} refused: {rejection}"));
                    self.refusals.push(Refusal { at: self.now(), instance: instance.clone(), event: name, rejection });
                    if let (Some(payload), Some((message, key))) = (redeliver, subscription) {
                        self.buffer.push(Buffered { message, key, payload, expires_at: None });
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Steps one instance with one event at the current time and routes the effects.
    fn apply(&mut self, id: &InstanceId, event: Event) -> Result<(), Error> {
        let now = self.now();
        let record = self.records.get_mut(id).ok_or_else(|| Error::UnknownInstance(id.clone()))?;
        let transition = step(&record.definition, &record.instance, event.clone(), now)?;
        record.instance = transition.instance;
        record.log.push((event, now));
        for effect in transition.effects {
            self.route(id, effect);
        }
        self.reconcile(id);
        Ok(())
    }

    /// Drops what the instance no longer has open: the core closes a completed job, task or
    /// subscription (and a fired timer) without a withdrawal effect.
    fn reconcile(&mut self, id: &InstanceId) {
        let Some(record) = self.records.get(id) else { return };
        let inst = &record.instance;
        self.jobs.retain(|k, j| j.instance != *id || inst.jobs().contains_key(k));
        self.tasks.retain(|k, t| t.instance != *id || inst.tasks().contains_key(k));
        self.timers.retain(|k, t| t.instance != *id || inst.timers().contains_key(k));
        self.subscriptions.retain(|k, s| s.instance != *id || inst.subscriptions().contains_key(k));
        self.incidents.retain(|k, i| i.instance != *id || inst.incidents().contains_key(k));
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn note(&mut self, instance: &InstanceId, text: String) {
        self.timeline.push(TimelineEntry { at: self.now(), instance: instance.clone(), text });
    }

    fn route(&mut self, id: &InstanceId, effect: Effect) {
        let now = self.now();
        match effect {
            Effect::CreateJob { job, node, job_type, input, idempotency_key, .. } => {
                self.note(id, format!("job {job_type} created at {node}"));
                let seq = self.next_seq();
                self.jobs.insert(
                    job.clone(),
                    Job {
                        id: job,
                        instance: id.clone(),
                        node,
                        job_type,
                        input,
                        idempotency_key,
                        attempt: 1,
                        created_at: now,
                        not_before: now,
                        incident: None,
                        seq,
                    },
                );
            }
            Effect::RetryJob { job, at, attempt } => {
                if let Some(j) = self.jobs.get_mut(&job) {
                    j.not_before = at;
                    j.attempt = attempt;
                    j.incident = None;
                    let text = format!(
                        "job {} will run again at {} (attempt {attempt})",
                        j.job_type,
                        at.format("%Y-%m-%d %H:%M:%S")
                    );
                    self.note(id, text);
                }
            }
            Effect::CancelJob { job } => {
                if let Some(j) = self.jobs.remove(&job) {
                    self.note(id, format!("job {} withdrawn", j.job_type));
                }
            }
            Effect::CreateTask { task, node, title, roles, assignee, form, due_at } => {
                let to = match &assignee {
                    Some(user) => format!("assigned to {user}"),
                    None => format!("for {}", roles.join(", ")),
                };
                self.note(id, format!("task \"{title}\" {to}"));
                let seq = self.next_seq();
                let process = self.records.get(id).map(|r| r.instance.process().to_string()).unwrap_or_default();
                self.tasks.insert(
                    task.clone(),
                    Task {
                        id: task,
                        instance: id.clone(),
                        process,
                        node,
                        title,
                        roles,
                        assignee,
                        form,
                        due_at,
                        created_at: now,
                        reminders: 0,
                        seq,
                    },
                );
            }
            Effect::CancelTask { task } => {
                if let Some(t) = self.tasks.remove(&task) {
                    self.note(id, format!("task \"{}\" withdrawn", t.title));
                }
            }
            Effect::AssignTask { task, to } => {
                if let Some(t) = self.tasks.get_mut(&task) {
                    t.assignee = Some(to.clone());
                    let text = format!("task \"{}\" delegated to {to}", t.title);
                    self.note(id, text);
                }
            }
            Effect::Remind { task, overdue } => {
                if let Some(t) = self.tasks.get_mut(&task) {
                    t.reminders += 1;
                    let (title, node) = (t.title.clone(), t.node.clone());
                    let what = if overdue { "overdue notice" } else { "reminder" };
                    self.note(id, format!("{what} for task \"{title}\""));
                    self.reminders.push(Reminder { at: now, task, node, overdue });
                }
            }
            Effect::ScheduleTimer { timer, node, at } => {
                let seq = self.next_seq();
                self.timers.insert(timer, TimerEntry { instance: id.clone(), node, at, seq });
            }
            Effect::CancelTimer { timer } => {
                self.timers.remove(&timer);
            }
            Effect::Subscribe { subscription, message, correlation_key, .. } => {
                self.note(id, format!("waits for message {message} ({correlation_key})"));
                let seq = self.next_seq();
                let buffered = self.buffer.iter().position(|b| {
                    b.message == message && b.key == correlation_key && b.expires_at.is_none_or(|e| e > now)
                });
                if let Some(i) = buffered {
                    let b = self.buffer.remove(i);
                    self.queue.push_back((
                        id.clone(),
                        Event::MessageCorrelated { subscription: subscription.clone(), payload: b.payload },
                    ));
                }
                self.subscriptions.insert(
                    subscription,
                    SubscriptionEntry { instance: id.clone(), message, key: correlation_key, seq },
                );
            }
            Effect::Unsubscribe { subscription } => {
                self.subscriptions.remove(&subscription);
            }
            Effect::StartChild { call, node, process, inputs } => {
                let started_by = self.records.get(id).and_then(|r| r.instance.started_by().map(str::to_string));
                match self.create(&process, None, Some((id.clone(), call.clone()))) {
                    Ok(child) => {
                        self.note(id, format!("{node} calls {process} as {child}"));
                        self.children.insert(call, child.clone());
                        self.queue.push_back((
                            child,
                            Event::Start {
                                variables: inputs,
                                business_key: None,
                                start: None,
                                started_by,
                                on_behalf_of: None,
                            },
                        ));
                    }
                    Err(e) => {
                        self.note(id, format!("{node} cannot call {process}: {e}"));
                        self.queue.push_back((id.clone(), Event::ChildFailed { call, code: "not_deployed".into() }));
                    }
                }
            }
            Effect::CancelChild { call } => {
                if let Some(child) = self.children.remove(&call) {
                    if let Some(r) = self.records.get_mut(&child) {
                        r.parent = None;
                    }
                    let running = self.records.get(&child).is_some_and(|r| !r.instance.status().is_final());
                    if running {
                        self.queue.push_front((child, Event::Cancel { by: id.to_string() }));
                    }
                }
            }
            Effect::RaiseIncident { incident, node, job, message } => {
                self.note(id, format!("incident at {node}: {message}"));
                if let Some(j) = job.as_ref().and_then(|j| self.jobs.get_mut(j)) {
                    j.incident = Some(incident.clone());
                }
                self.incidents.insert(
                    incident.clone(),
                    OpenIncident { id: incident, instance: id.clone(), node, job, message, at: now },
                );
            }
            Effect::CloseIncident { incident } => {
                if let Some(i) = self.incidents.remove(&incident) {
                    if let Some(j) = i.job.as_ref().and_then(|j| self.jobs.get_mut(j)) {
                        j.incident = None;
                    }
                    self.note(id, format!("incident at {} closed", i.node));
                }
            }
            Effect::Completed { outcome } => {
                self.note(id, format!("completed: {}", outcome.as_deref().unwrap_or("-")));
                self.report_to_parent(id, |call, variables| Event::ChildCompleted { call, outcome, variables });
            }
            Effect::Failed { code } => {
                self.note(id, format!("failed with error {code}"));
                self.report_to_parent(id, |call, _| Event::ChildFailed { call, code });
            }
            Effect::Cancelled { by } => {
                self.note(id, format!("cancelled by {by}"));
                self.report_to_parent(id, |call, _| Event::ChildFailed { call, code: "cancelled".into() });
            }
            Effect::History(h) => {
                if let Some(text) = history_text(&h) {
                    self.note(id, text);
                }
                if let Some(r) = self.records.get_mut(id) {
                    r.history.push((now, h));
                }
            }
        }
    }

    fn report_to_parent(
        &mut self,
        child: &InstanceId,
        event: impl FnOnce(CallId, BTreeMap<String, cloverleaf_dsl::expr::Value>) -> Event,
    ) {
        let Some(record) = self.records.get(child) else { return };
        let Some((parent, call)) = record.parent.clone() else { return };
        let variables = record.instance.variables().clone();
        self.children.remove(&call);
        self.queue.push_back((parent, event(call, variables)));
    }
}

/// The words for the history entries worth a timeline line (creation effects have their own).
fn history_text(h: &HistoryEvent) -> Option<String> {
    let node = h.node.as_deref().unwrap_or("-");
    Some(match h.kind {
        HistoryKind::Started => "started".to_string(),
        HistoryKind::Decided => format!("{node}: {}", h.detail.as_deref().unwrap_or("")),
        HistoryKind::JobCompleted => format!("job at {node} completed"),
        HistoryKind::JobFailed => format!("job at {node} failed: {}", h.detail.as_deref().unwrap_or("")),
        HistoryKind::BusinessError => format!("job at {node} raised {}", h.detail.as_deref().unwrap_or("")),
        HistoryKind::TaskCompleted => {
            let who = h.who.as_deref().unwrap_or("?");
            match &h.on_behalf_of {
                Some(p) => format!("{who} (for {p}) completed {node}"),
                None => format!("{who} completed {node}"),
            }
        }
        HistoryKind::TimerFired => format!("timer fired at {node}"),
        HistoryKind::MessageReceived => format!("message {} received at {node}", h.detail.as_deref().unwrap_or("")),
        HistoryKind::ChildCompleted => format!("{node} returned {}", h.detail.as_deref().unwrap_or("-")),
        HistoryKind::ChildFailed => format!("{node} failed with {}", h.detail.as_deref().unwrap_or("-")),
        _ => return None,
    })
}
