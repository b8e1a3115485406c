//! The JSON bodies the API answers with, and their conversions from engine types.
//!
//! Variables travel in their JSON form: money and decimals as decimal strings keeping their
//! scale (`"1234.50"`), dates `2026-01-31`, datetimes RFC 3339, durations ISO 8601.

use std::collections::BTreeMap;
use std::fmt::Display;

use chrono::{DateTime, TimeDelta, Utc};
use cloverleaf_engine::store::{HistoryRow, LockedJob, TaskInfo};
use cloverleaf_engine::{Instance, Status, TokenState};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A process instance.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceView {
    /// The id.
    pub id: String,
    /// The process key.
    pub process: String,
    /// The deployed version it runs.
    pub version: u32,
    /// The business key (an order number...).
    pub business_key: Option<String>,
    /// created, running, completed, failed or cancelled.
    pub status: String,
    /// The end reached, once completed.
    pub outcome: Option<String>,
    /// The error code, once failed.
    pub error_code: Option<String>,
    /// Who cancelled it.
    pub cancelled_by: Option<String>,
    /// The calling instance, for a called process.
    pub parent_id: Option<String>,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
    /// When it last changed.
    pub updated_at: Option<DateTime<Utc>>,
    /// The variables.
    #[schema(value_type = Object)]
    pub variables: BTreeMap<String, Value>,
    /// Where its tokens are.
    pub tokens: Vec<TokenView>,
    /// What it waits for.
    pub waiting: WaitingView,
}

/// A token's position.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// The node.
    pub node: String,
    /// waiting, at_join, or incident.
    pub state: String,
    /// The incident it is stuck on.
    pub incident: Option<String>,
}

/// Everything an instance has open.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct WaitingView {
    /// Human tasks: (id, node).
    pub tasks: Vec<OpenItem>,
    /// Jobs for workers.
    pub jobs: Vec<OpenItem>,
    /// Timers.
    pub timers: Vec<OpenItem>,
    /// Message subscriptions.
    pub messages: Vec<OpenItem>,
    /// Called processes.
    pub calls: Vec<OpenItem>,
    /// Incidents.
    pub incidents: Vec<OpenItem>,
}

/// One open wait.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenItem {
    /// The id.
    pub id: String,
    /// The node.
    pub node: String,
    /// What it is: the job type, the message name and key, the called process, the timer's
    /// time, the incident's message.
    pub detail: Option<String>,
}

impl InstanceView {
    /// The view of an instance; times and parent come from its row when known.
    pub fn new(instance: &Instance, row: Option<&RowInfo>) -> InstanceView {
        let (status, outcome, error_code, cancelled_by) = match instance.status() {
            Status::Created => ("created", None, None, None),
            Status::Running => ("running", None, None, None),
            Status::Completed { outcome } => ("completed", outcome.clone(), None, None),
            Status::Failed { code } => ("failed", None, Some(code.clone()), None),
            Status::Cancelled { by } => ("cancelled", None, None, Some(by.clone())),
        };
        let waiting = WaitingView {
            tasks: open_items(instance.tasks(), |task| (&task.node, None)),
            jobs: open_items(instance.jobs(), |job| (&job.node, Some(job.job_type.clone()))),
            timers: open_items(instance.timers(), |timer| (&timer.node, Some(timer.at.to_rfc3339()))),
            messages: open_items(instance.subscriptions(), |sub| {
                (&sub.node, Some(format!("{} key {}", sub.message, sub.correlation_key)))
            }),
            calls: open_items(instance.calls(), |call| (&call.node, Some(call.process.clone()))),
            incidents: open_items(instance.incidents(), |incident| (&incident.node, Some(incident.message.clone()))),
        };
        InstanceView {
            id: instance.id().0.clone(),
            process: instance.process().to_string(),
            version: instance.process_version(),
            business_key: instance.business_key().map(str::to_string),
            status: status.to_string(),
            outcome,
            error_code,
            cancelled_by,
            parent_id: row.and_then(|r| r.parent_id.clone()),
            created_at: row.map(|r| r.created_at),
            updated_at: row.map(|r| r.updated_at),
            variables: instance.variables().iter().map(|(k, v)| (k.clone(), v.to_json())).collect(),
            tokens: instance
                .tokens()
                .values()
                .map(|t| {
                    let (state, incident) = match &t.state {
                        TokenState::Waiting => ("waiting", None),
                        TokenState::AtJoin => ("at_join", None),
                        TokenState::Incident { incident } => ("incident", Some(incident.0.clone())),
                    };
                    TokenView { node: t.node.clone(), state: state.to_string(), incident }
                })
                .collect(),
            waiting,
        }
    }
}

/// The open waits of one kind: each one's id, node and what it is.
fn open_items<K: Display, V>(waits: &BTreeMap<K, V>, what: impl Fn(&V) -> (&String, Option<String>)) -> Vec<OpenItem> {
    waits
        .iter()
        .map(|(id, wait)| {
            let (node, detail) = what(wait);
            OpenItem { id: id.to_string(), node: node.clone(), detail }
        })
        .collect()
}

/// The parts of an instance's row the view shows beside its state.
#[derive(Debug, Clone)]
pub struct RowInfo {
    /// The calling instance.
    pub parent_id: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// An instance as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceSummaryView {
    /// The id.
    pub id: String,
    /// The process key.
    pub process: String,
    /// The version it runs.
    pub version: u32,
    /// created, running, completed, failed or cancelled.
    pub status: String,
    /// The business key.
    pub business_key: Option<String>,
    /// The calling instance.
    pub parent_id: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A human task.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskView {
    /// The id.
    pub id: String,
    /// The instance.
    pub instance_id: String,
    /// The approval node.
    pub node: String,
    /// The title.
    pub title: String,
    /// The roles it is offered to.
    pub roles: Vec<String>,
    /// The user it is assigned to.
    pub assignee: Option<String>,
    /// The form fields: name, type, optional.
    #[schema(value_type = Vec<Object>)]
    pub form: Value,
    /// The SLA.
    pub due_at: Option<DateTime<Utc>>,
    /// open, completed or cancelled.
    pub state: String,
    /// Who claimed it.
    pub claimed_by: Option<String>,
    /// Who completed it.
    pub completed_by: Option<String>,
}

impl From<TaskInfo> for TaskView {
    fn from(t: TaskInfo) -> TaskView {
        TaskView {
            id: t.id.0,
            instance_id: t.instance_id.0,
            node: t.node,
            title: t.title,
            roles: t.roles,
            assignee: t.assignee,
            form: t.form,
            due_at: t.due_at,
            state: t.state.to_string(),
            claimed_by: t.claimed_by,
            completed_by: t.completed_by,
        }
    }
}

/// A job locked for a worker.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    /// The id.
    pub id: String,
    /// The instance.
    pub instance_id: String,
    /// The task node.
    pub node: String,
    /// The job type (topic).
    pub job_type: String,
    /// The input object (money as decimal strings).
    #[schema(value_type = Object)]
    pub input: Value,
    /// Stable per activation: make side effects once per key.
    pub idempotency_key: String,
    /// The attempt (1 is the first).
    pub attempt: i64,
    /// The lock epoch to present on complete, fail, error and extend-lock.
    pub epoch: i64,
    /// The lease's end.
    pub lock_expires_at: DateTime<Utc>,
    /// When the lock was taken, on the server's clock: a worker takes "today" from it rather
    /// than from its own machine.
    pub locked_at: DateTime<Utc>,
}

impl JobView {
    /// The view of a job just locked for `lease` (its lock was taken a lease before it ends).
    pub fn locked(j: LockedJob, lease: TimeDelta) -> JobView {
        JobView {
            locked_at: j.lock_expires_at - lease,
            id: j.id.0,
            instance_id: j.instance_id.0,
            node: j.node,
            job_type: j.job_type,
            input: j.input,
            idempotency_key: j.idempotency_key,
            attempt: j.attempt,
            epoch: j.epoch,
            lock_expires_at: j.lock_expires_at,
        }
    }
}

/// One audit-trail entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    /// 1-based position.
    pub seq: i64,
    /// When (RFC 3339).
    pub at: String,
    /// What happened.
    pub kind: String,
    /// Where.
    pub node: Option<String>,
    /// Who acted.
    pub who: Option<String>,
    /// For whom.
    pub on_behalf_of: Option<String>,
    /// The entry (variables changed, detail).
    #[schema(value_type = Object)]
    pub detail: Value,
    /// sha256 of the previous entry.
    pub prev_hash: String,
    /// sha256 chained over this entry.
    pub hash: String,
}

impl From<HistoryRow> for HistoryEntry {
    fn from(h: HistoryRow) -> HistoryEntry {
        // The stored detail is JSON; an unreadable one is shown as the text it is.
        let detail = serde_json::from_str(&h.detail).unwrap_or(Value::String(h.detail));
        HistoryEntry {
            seq: h.seq,
            at: h.at,
            kind: h.kind,
            node: h.node,
            who: h.who,
            on_behalf_of: h.on_behalf_of,
            detail,
            prev_hash: h.prev_hash,
            hash: h.hash,
        }
    }
}
