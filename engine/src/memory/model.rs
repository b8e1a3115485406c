//! What the in-memory engine shows and keeps: jobs, tasks, reminders, incidents, the timeline,
//! and its own records of instances, timers, subscriptions and buffered messages.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use cloverleaf_dsl::CompiledProcess;
use cloverleaf_dsl::model::FormField;

use crate::effect::HistoryEvent;
use crate::event::Event;
use crate::ids::{CallId, IncidentId, InstanceId, JobId, TaskId};
use crate::instance::Instance;
use crate::rejection::Rejection;

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
    /// Jobs kept creating jobs beyond [`RUN_LIMIT`](super::RUN_LIMIT) runs.
    #[error("more than {0} jobs run in one call: a loop of automated steps")]
    RunawayJobs(usize),
    /// Events kept causing events beyond [`CASCADE_LIMIT`](super::CASCADE_LIMIT).
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
    pub(super) seq: u64,
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
    pub(super) seq: u64,
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

/// What [`MemoryEngine::correlate`](super::MemoryEngine::correlate) did with a message.
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
pub(super) type Handler = Box<dyn Fn(&JobInput) -> JobOutcome + Send + Sync>;

pub(super) struct Record {
    pub(super) definition: Arc<CompiledProcess>,
    pub(super) instance: Instance,
    pub(super) log: Vec<(Event, DateTime<Utc>)>,
    pub(super) history: Vec<(DateTime<Utc>, HistoryEvent)>,
    pub(super) parent: Option<(InstanceId, CallId)>,
}

pub(super) struct TimerEntry {
    pub(super) instance: InstanceId,
    pub(super) node: String,
    pub(super) at: DateTime<Utc>,
    pub(super) seq: u64,
}

pub(super) struct SubscriptionEntry {
    pub(super) instance: InstanceId,
    pub(super) message: String,
    pub(super) key: String,
    pub(super) seq: u64,
}

pub(super) struct Buffered {
    /// Arrival order: a message passed over goes back to its place.
    pub(super) seq: u64,
    pub(super) message: String,
    pub(super) key: String,
    pub(super) payload: serde_json::Value,
    pub(super) expires_at: Option<DateTime<Utc>>,
}

/// A buffered message taken out of the buffer for a new subscription, its delivery queued.
pub(super) struct Offer {
    pub(super) message: Buffered,
    /// The buffered messages (by `seq`) this subscription could not take.
    pub(super) passed_over: Vec<u64>,
}
