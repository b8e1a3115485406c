//! One surface over both drivers of the core, so every scenario runs on the in-memory engine and
//! on the durable runtime (the one `serve` runs, on a fresh database) alike.
//!
//! [`Sim`] speaks the in-memory engine's language: synchronous calls, handlers registered per job
//! type, a clock that only [`Sim::advance`] moves. On the durable side each call runs the
//! runtime's public API to completion: jobs are fetched, locked and completed as a worker would,
//! timers fire through `fire_due_timers` at their own instants, cron starts through
//! `fire_due_schedules`, and what a scenario reads comes back from the store. A few records
//! exist only in memory (the timeline, refused cascades): they are `None` on the durable side,
//! never a made-up answer.

use std::cell::Cell;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use cloverleaf_dsl::CompiledProcess;
use cloverleaf_engine::memory::{
    Correlation, Error, JobAttempt, JobInput, JobOutcome, MemoryEngine, OpenIncident, Refusal, Reminder,
};
use cloverleaf_engine::runtime::{self, Message};
use cloverleaf_engine::store::{Queries, parse_ts};
use cloverleaf_engine::{Clock, Event, HistoryEvent, IncidentId, Instance, InstanceId, JobId, TaskId, replay};
use cloverleaf_testkit::testdb::ScratchDb;

use crate::durable::{Durable, FOREVER, engine_error};

/// Which driver a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// [`MemoryEngine`].
    Memory,
    /// The durable runtime on a fresh database (`CLOVERLEAF_TEST_BACKEND`: SQLite by default).
    Durable,
}

thread_local! {
    static DRIVER: Cell<Driver> = const { Cell::new(Driver::Memory) };
}

/// Runs `scenario` with [`crate::harness::engine`] handing out engines of `driver`. A durable run
/// whose database cannot be had (PostgreSQL unreachable outside CI) is skipped with a notice.
pub fn run_on(driver: Driver, scenario: fn()) {
    // One probe per test binary: a scratch database made and dropped.
    static DATABASE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if driver == Driver::Durable && !*DATABASE.get_or_init(|| block_on(ScratchDb::new()).is_some()) {
        return;
    }
    DRIVER.with(|d| d.set(driver));
    scenario();
}

/// The driver of the running scenario.
pub fn driver() -> Driver {
    DRIVER.with(Cell::get)
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime").block_on(future)
}

/// An open human task, as either driver shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: TaskId,
    pub instance: InstanceId,
    pub node: String,
    pub title: String,
    pub roles: Vec<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// An open job (waiting for a try or a retry), as either driver shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: JobId,
    pub instance: InstanceId,
    pub job_type: String,
    pub input: serde_json::Value,
    pub idempotency_key: String,
    pub attempt: u32,
    pub created_at: DateTime<Utc>,
    pub not_before: DateTime<Utc>,
}

/// An engine of either driver with the in-memory engine's surface.
pub enum Sim {
    Memory(Box<MemoryEngine>),
    Durable(Box<Durable>),
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sim::Memory(m) => m.fmt(f),
            Sim::Durable(d) => write!(f, "Durable at {}", d.clock.now()),
        }
    }
}

impl Sim {
    /// An engine of the running scenario's driver at `start`, with every reference process.
    pub fn new(start: DateTime<Utc>) -> Sim {
        let project = crate::common::reference_project();
        match driver() {
            Driver::Memory => {
                let mut engine = MemoryEngine::new(start);
                let deployed = engine.deploy_compilation(&project.compile()).unwrap();
                assert_eq!(deployed.len(), 5);
                Sim::Memory(Box::new(engine))
            }
            Driver::Durable => Sim::Durable(Box::new(Durable::new(start))),
        }
    }

    /// The in-memory engine, when that is the driver.
    pub fn as_memory(&self) -> Option<&MemoryEngine> {
        match self {
            Sim::Memory(m) => Some(m),
            Sim::Durable(_) => None,
        }
    }

    pub fn register<F>(&mut self, job_type: &str, handler: F)
    where
        F: Fn(&JobInput) -> JobOutcome + Send + Sync + 'static,
    {
        match self {
            Sim::Memory(m) => m.register(job_type, handler),
            Sim::Durable(d) => {
                d.handlers.insert(job_type.to_string(), Arc::new(handler));
            }
        }
    }

    pub fn set_auto_run(&mut self, on: bool) {
        match self {
            Sim::Memory(m) => m.set_auto_run(on),
            Sim::Durable(d) => d.auto_run = on,
        }
    }

    pub fn set_schedules(&mut self, on: bool) {
        match self {
            Sim::Memory(m) => m.set_schedules(on),
            Sim::Durable(d) => d.schedules = on,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Sim::Memory(m) => m.now(),
            Sim::Durable(d) => d.clock.now(),
        }
    }

    pub fn advance(&mut self, by: TimeDelta) -> Result<(), Error> {
        let target = self.now().checked_add_signed(by).unwrap_or(self.now());
        self.advance_to(target)
    }

    pub fn advance_to(&mut self, at: DateTime<Utc>) -> Result<(), Error> {
        match self {
            Sim::Memory(m) => m.advance_to(at),
            Sim::Durable(d) => d.advance_to(at),
        }
    }

    pub fn definition(&self, process: &str, version: Option<u32>) -> Option<Arc<CompiledProcess>> {
        match self {
            Sim::Memory(m) => m.definition(process, version).map(|d| Arc::new(d.clone())),
            Sim::Durable(d) => d.rt.block_on(async {
                let version = match version {
                    Some(v) => v,
                    None => d.engine.latest_version(process).await.ok()?,
                };
                d.engine.definition(process, version).await.ok()
            }),
        }
    }

    // ---- instances -------------------------------------------------------------------------

    pub fn start(&mut self, process: &str, variables: serde_json::Value) -> Result<InstanceId, Error> {
        match self {
            Sim::Memory(m) => m.start(process, variables),
            Sim::Durable(d) => {
                let started = d.rt.block_on(d.engine.start(process, None, variables)).map_err(engine_error);
                d.look();
                started
            }
        }
    }

    pub fn cancel(&mut self, id: &InstanceId, by: &str) -> Result<(), Error> {
        match self {
            Sim::Memory(m) => m.cancel(id, by),
            Sim::Durable(d) => {
                let done = d.rt.block_on(d.engine.cancel(id, by)).map_err(engine_error);
                d.look();
                done
            }
        }
    }

    pub fn instance(&self, id: &InstanceId) -> Option<Instance> {
        match self {
            Sim::Memory(m) => m.instance(id).cloned(),
            Sim::Durable(d) => d.rt.block_on(d.engine.instance(id)).ok(),
        }
    }

    /// Every instance, in the order they started (a parent before the children it called).
    pub fn instances(&self) -> Vec<InstanceId> {
        match self {
            Sim::Memory(m) => m.instances().to_vec(),
            Sim::Durable(d) => d.known.clone(),
        }
    }

    pub fn instances_of(&self, process: &str) -> Vec<InstanceId> {
        match self {
            Sim::Memory(m) => m.instances_of(process),
            Sim::Durable(_) => self
                .instances()
                .into_iter()
                .filter(|i| self.instance(i).is_some_and(|i| i.process() == process))
                .collect(),
        }
    }

    /// The instances `parent` called, in call order.
    pub fn children(&self, parent: &InstanceId) -> Vec<InstanceId> {
        match self {
            Sim::Memory(m) => m.children(parent),
            Sim::Durable(_) => {
                self.instances().into_iter().filter(|c| self.parent(c).as_ref() == Some(parent)).collect()
            }
        }
    }

    pub fn parent(&self, child: &InstanceId) -> Option<InstanceId> {
        match self {
            Sim::Memory(m) => m.parent(child).map(|(p, _)| p.clone()),
            Sim::Durable(d) => {
                d.rt.block_on(d.engine.store().instance_summary(child.as_str())).unwrap().and_then(|s| s.parent_id)
            }
        }
    }

    /// The audit trail of an instance, oldest first.
    pub fn history(&self, id: &InstanceId) -> Vec<(DateTime<Utc>, HistoryEvent)> {
        match self {
            Sim::Memory(m) => m.history(id).map(<[_]>::to_vec).unwrap_or_default(),
            Sim::Durable(d) => {
                d.rt.block_on(d.engine.history(id))
                    .unwrap()
                    .into_iter()
                    .map(|row| (parse_ts(&row.at).unwrap(), serde_json::from_str(&row.detail).unwrap()))
                    .collect()
            }
        }
    }

    /// The event log of an instance, as stored.
    pub fn event_log(&self, id: &InstanceId) -> Vec<(Event, DateTime<Utc>)> {
        match self {
            Sim::Memory(m) => m.event_log(id).map(<[_]>::to_vec).unwrap_or_default(),
            Sim::Durable(d) => d.rt.block_on(d.engine.events(id)).unwrap(),
        }
    }

    /// The instance rebuilt from nothing but its event log and its definition.
    pub fn replay(&self, id: &InstanceId) -> Instance {
        let live = self.instance(id).expect("a known instance");
        let definition = self.definition(live.process(), Some(live.process_version())).expect("its definition");
        let log = self.event_log(id);
        let fresh = Instance::new(id.clone(), live.process(), live.process_version());
        replay(&definition, fresh, log.iter().map(|(e, t)| (e, *t))).expect("the log replays")
    }

    // ---- jobs ------------------------------------------------------------------------------

    /// Open jobs not stuck on an incident, oldest first (retries may not be due yet).
    pub fn pending_jobs(&self) -> Vec<Job> {
        match self {
            Sim::Memory(m) => m
                .pending_jobs()
                .into_iter()
                .map(|j| Job {
                    id: j.id.clone(),
                    instance: j.instance.clone(),
                    job_type: j.job_type.clone(),
                    input: j.input.clone(),
                    idempotency_key: j.idempotency_key.clone(),
                    attempt: j.attempt,
                    created_at: j.created_at,
                    not_before: j.not_before,
                })
                .collect(),
            Sim::Durable(d) => d.pending_jobs(),
        }
    }

    /// Every job attempt so far, by handlers or through this surface, in order.
    pub fn job_attempts(&self) -> Vec<JobAttempt> {
        match self {
            Sim::Memory(m) => m.job_attempts().to_vec(),
            Sim::Durable(d) => d.attempts.clone(),
        }
    }

    pub fn complete_job(&mut self, job: &JobId, output: serde_json::Value) -> Result<(), Error> {
        self.finish_job(job, JobOutcome::Complete(output))
    }

    pub fn fail_job(&mut self, job: &JobId, message: &str) -> Result<(), Error> {
        self.finish_job(job, JobOutcome::Fail(message.into()))
    }

    pub fn business_error(&mut self, job: &JobId, code: &str) -> Result<(), Error> {
        self.finish_job(job, JobOutcome::BusinessError(code.into()))
    }

    fn finish_job(&mut self, job: &JobId, outcome: JobOutcome) -> Result<(), Error> {
        match (self, outcome) {
            (Sim::Memory(m), JobOutcome::Complete(output)) => m.complete_job(job, output),
            (Sim::Memory(m), JobOutcome::Fail(message)) => m.fail_job(job, &message),
            (Sim::Memory(m), JobOutcome::BusinessError(code)) => m.business_error(job, &code),
            (Sim::Durable(d), outcome) => d.finish_one(job, outcome),
        }
    }

    /// Runs registered handlers on due jobs, oldest first, until none is left; returns how many
    /// attempts ran.
    pub fn run_jobs(&mut self) -> Result<usize, Error> {
        match self {
            Sim::Memory(m) => m.run_jobs(),
            Sim::Durable(d) => d.run_jobs(),
        }
    }

    // ---- tasks -----------------------------------------------------------------------------

    /// Every open task, oldest first.
    pub fn tasks(&self) -> Vec<Task> {
        match self {
            Sim::Memory(m) => m
                .tasks()
                .into_iter()
                .map(|t| Task {
                    id: t.id.clone(),
                    instance: t.instance.clone(),
                    node: t.node.clone(),
                    title: t.title.clone(),
                    roles: t.roles.clone(),
                    due_at: t.due_at,
                    created_at: t.created_at,
                })
                .collect(),
            Sim::Durable(d) => d.tasks(),
        }
    }

    /// Open tasks offered to any of these roles, oldest first.
    pub fn tasks_for(&self, roles: &[&str]) -> Vec<Task> {
        self.tasks().into_iter().filter(|t| t.roles.iter().any(|r| roles.contains(&r.as_str()))).collect()
    }

    pub fn task(&self, id: &TaskId) -> Option<Task> {
        self.tasks().into_iter().find(|t| t.id == *id)
    }

    /// `user` completes a task (acting for `on_behalf_of`). On the durable side the user is
    /// taken to hold the task's roles (the server's sign-in is not what scenarios test), and
    /// acting for someone is what it is on the server: that person hands the task over first.
    pub fn complete_task(
        &mut self,
        task: &TaskId,
        user: &str,
        on_behalf_of: Option<&str>,
        form: serde_json::Value,
    ) -> Result<(), Error> {
        match self {
            Sim::Memory(m) => m.complete_task(task, user, on_behalf_of, form),
            Sim::Durable(d) => {
                let done = d.rt.block_on(async {
                    let info = d.engine.task(task).await?;
                    let roles: Vec<&str> = info.roles.iter().map(String::as_str).collect();
                    if let Some(principal) = on_behalf_of {
                        d.engine.delegate(task, principal, &roles, user).await?;
                    }
                    d.engine.complete_task(task, user, &roles, form).await
                });
                d.look();
                done.map_err(engine_error)
            }
        }
    }

    /// Reminders and overdue notices sent so far, in order.
    pub fn reminders(&self) -> Vec<Reminder> {
        match self {
            Sim::Memory(m) => m.reminders().to_vec(),
            Sim::Durable(d) => d.reminders(),
        }
    }

    // ---- messages --------------------------------------------------------------------------

    pub fn set_message_ttl(&mut self, ttl: Option<TimeDelta>) {
        match self {
            Sim::Memory(m) => m.set_message_ttl(ttl),
            Sim::Durable(d) => d.message_ttl = ttl,
        }
    }

    pub fn correlate(
        &mut self,
        name: &str,
        key: &str,
        payload: serde_json::Value,
        message_id: Option<&str>,
    ) -> Result<Correlation, Error> {
        match self {
            Sim::Memory(m) => m.correlate(name, key, payload, message_id),
            Sim::Durable(d) => {
                let message = Message {
                    name: name.into(),
                    correlation_key: key.into(),
                    payload,
                    message_id: message_id.map(str::to_string),
                    ttl: d.message_ttl.unwrap_or(FOREVER),
                };
                let answer = d.rt.block_on(d.engine.correlate(message)).map_err(engine_error);
                d.look();
                Ok(match answer? {
                    runtime::Correlation::Delivered { instance } => Correlation::Delivered(instance),
                    runtime::Correlation::Buffered => Correlation::Buffered,
                    runtime::Correlation::Duplicate => Correlation::Duplicate,
                })
            }
        }
    }

    /// Messages waiting for a subscription, as (name, key).
    pub fn buffered_messages(&self) -> Vec<(String, String)> {
        match self {
            Sim::Memory(m) => m.buffered_messages(),
            Sim::Durable(d) => d.rt.block_on(d.engine.store().buffered_messages(d.clock.now())).unwrap(),
        }
    }

    // ---- timers and incidents --------------------------------------------------------------

    /// Open timers as (instance, node, due time), earliest first.
    pub fn timers(&self) -> Vec<(InstanceId, String, DateTime<Utc>)> {
        match self {
            Sim::Memory(m) => m.timers(),
            Sim::Durable(_) => {
                let mut all = Vec::new();
                for id in self.instances() {
                    let instance = self.instance(&id).expect("a known instance");
                    all.extend(instance.timers().values().map(|t| (id.clone(), t.node.clone(), t.at)));
                }
                all.sort_by_key(|t| t.2);
                all
            }
        }
    }

    /// Open incidents, oldest first.
    pub fn incidents(&self) -> Vec<OpenIncident> {
        match self {
            Sim::Memory(m) => m.incidents().into_iter().cloned().collect(),
            Sim::Durable(d) => {
                d.rt.block_on(d.engine.store().incidents(false, None))
                    .unwrap()
                    .into_iter()
                    .map(|i| OpenIncident {
                        id: i.id,
                        instance: i.instance_id,
                        node: i.node,
                        job: i.job_id,
                        message: i.message,
                        at: i.raised_at,
                    })
                    .collect()
            }
        }
    }

    pub fn retry_incident(&mut self, incident: &IncidentId) -> Result<(), Error> {
        match self {
            Sim::Memory(m) => m.retry_incident(incident),
            Sim::Durable(d) => {
                let done = d.rt.block_on(d.engine.retry_incident(incident)).map_err(engine_error);
                d.look();
                done
            }
        }
    }

    // ---- records only the in-memory engine keeps -------------------------------------------

    /// Events a cascade could not apply (memory only: the durable runtime keeps owed events
    /// until they apply).
    pub fn refusals(&self) -> Option<Vec<Refusal>> {
        self.as_memory().map(|m| m.refusals().to_vec())
    }
}
