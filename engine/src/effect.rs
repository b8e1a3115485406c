//! What the runtime must do after it has committed a transition: a closed list of effects.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cloverleaf_dsl::expr::Value;
use cloverleaf_dsl::model::{FormField, RetryPolicy};
use serde::{Deserialize, Serialize};

use crate::ids::{CallId, IncidentId, JobId, SubscriptionId, TaskId, TimerId};
use crate::value_serde;

/// One thing to do after commit, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "effect")]
pub enum Effect {
    /// Hand a job to workers.
    CreateJob {
        /// The job.
        job: JobId,
        /// The task node.
        node: String,
        /// The job type workers subscribe to.
        job_type: String,
        /// The job's input object.
        input: serde_json::Value,
        /// Retries and backoff.
        retry: RetryPolicy,
        /// How long one attempt may run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_secs: Option<i64>,
        /// Stable per activation of the node: `{instance}:{node}:{activation}`.
        idempotency_key: String,
    },
    /// Make a failed job fetchable again at `at`.
    RetryJob {
        /// The job.
        job: JobId,
        /// Not before.
        at: DateTime<Utc>,
        /// The attempt number about to run (1 is the first try).
        attempt: u32,
    },
    /// Withdraw a job.
    CancelJob {
        /// The job.
        job: JobId,
    },
    /// Open a human task.
    CreateTask {
        /// The task.
        task: TaskId,
        /// The approval node.
        node: String,
        /// The title, placeholders rendered.
        title: String,
        /// Roles whose members may claim it.
        roles: Vec<String>,
        /// The user it is assigned to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assignee: Option<String>,
        /// The form to fill in.
        form: Vec<FormField>,
        /// The SLA.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due_at: Option<DateTime<Utc>>,
    },
    /// Withdraw a human task.
    CancelTask {
        /// The task.
        task: TaskId,
    },
    /// The task is now assigned to `to` (delegation).
    AssignTask {
        /// The task.
        task: TaskId,
        /// The new assignee.
        to: String,
    },
    /// Remind the candidates of a task (or tell them it is overdue); the task stays open.
    Remind {
        /// The task.
        task: TaskId,
        /// True when the task's due time has passed.
        overdue: bool,
    },
    /// Fire `TimerFired { timer }` at `at`.
    ScheduleTimer {
        /// The timer.
        timer: TimerId,
        /// The node it belongs to.
        node: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Drop a timer.
    CancelTimer {
        /// The timer.
        timer: TimerId,
    },
    /// Deliver messages with this name and key as `MessageCorrelated { subscription }`.
    Subscribe {
        /// The subscription.
        subscription: SubscriptionId,
        /// The node.
        node: String,
        /// The message name.
        message: String,
        /// The correlation key.
        correlation_key: String,
    },
    /// Drop a subscription.
    Unsubscribe {
        /// The subscription.
        subscription: SubscriptionId,
    },
    /// Start a child instance; report its end as `ChildCompleted` / `ChildFailed { call }`.
    StartChild {
        /// The call (a good id for the child instance).
        call: CallId,
        /// The call node.
        node: String,
        /// The process key to start.
        process: String,
        /// The child's inputs (a JSON object for its `Start`).
        inputs: serde_json::Value,
    },
    /// Cancel a child instance.
    CancelChild {
        /// The call.
        call: CallId,
    },
    /// A token is stuck until an operator acts.
    RaiseIncident {
        /// The incident.
        incident: IncidentId,
        /// Where.
        node: String,
        /// The job concerned, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        job: Option<JobId>,
        /// What went wrong.
        message: String,
    },
    /// An incident is closed (resolved, or its token was cancelled).
    CloseIncident {
        /// The incident.
        incident: IncidentId,
    },
    /// The instance completed.
    Completed {
        /// The outcome.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<String>,
    },
    /// The instance ended with an error end, or refused its start (a calling parent gets
    /// `ChildFailed`).
    Failed {
        /// The error code.
        code: String,
    },
    /// The instance was cancelled (a calling parent gets `ChildFailed { code: "cancelled" }`).
    Cancelled {
        /// Who cancelled it.
        by: String,
    },
    /// Append to the instance's history.
    History(HistoryEvent),
}

/// What a history entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryKind {
    /// The instance started.
    Started,
    /// A token entered a node.
    Entered,
    /// A set node assigned variables.
    Assigned,
    /// A decide took an arm.
    Decided,
    /// A job completed.
    JobCompleted,
    /// A job attempt failed.
    JobFailed,
    /// A job raised a business error.
    BusinessError,
    /// A person completed a task.
    TaskCompleted,
    /// A person delegated a task to someone else.
    TaskDelegated,
    /// A timer fired.
    TimerFired,
    /// A message arrived.
    MessageReceived,
    /// A child completed.
    ChildCompleted,
    /// A child failed.
    ChildFailed,
    /// A token reached an end.
    EndReached,
    /// An incident was raised.
    IncidentRaised,
    /// An operator resolved an incident.
    IncidentResolved,
    /// The instance completed.
    Completed,
    /// The instance failed.
    Failed,
    /// The instance was cancelled.
    Cancelled,
    /// An operator moved the instance to another version of its definition.
    Migrated,
    /// An operator cancelled a token, started one, or set a variable by hand.
    Modified,
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// What happened.
    pub kind: HistoryKind,
    /// Where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Who acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub who: Option<String>,
    /// The user `who` acted for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    /// Variables changed, with their new values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", with = "value_serde::map")]
    pub variables: BTreeMap<String, Value>,
    /// A detail (a decide's arm, an error message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl HistoryEvent {
    /// An entry of `kind` at `node`.
    pub fn new(kind: HistoryKind, node: Option<&str>) -> HistoryEvent {
        HistoryEvent {
            kind,
            node: node.map(str::to_string),
            who: None,
            on_behalf_of: None,
            variables: BTreeMap::new(),
            detail: None,
        }
    }

    /// With a detail.
    pub fn detail(mut self, detail: impl Into<String>) -> HistoryEvent {
        self.detail = Some(detail.into());
        self
    }
}
