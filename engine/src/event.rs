//! What can happen to an instance: the inputs of [`crate::step`](fn@crate::step).

use std::collections::BTreeMap;

use cloverleaf_dsl::expr::Value;
use serde::{Deserialize, Serialize};

use crate::ids::{CallId, IncidentId, JobId, SubscriptionId, TaskId, TimerId, TokenId};
use crate::value_serde;

/// The error code a called process fails with when it refuses its start (see
/// [`Event::StartRefused`]); a call's `on error "start_refused"` (or `on error` without a code)
/// catches it.
pub const START_REFUSED: &str = "start_refused";

/// An event delivered to one instance. Serializable, so a runtime can keep an event log and
/// replay it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum Event {
    /// Starts a created instance with its inputs (a JSON object, read with the inputs' types).
    Start {
        /// The inputs.
        variables: serde_json::Value,
        /// A business key (an order number) to find the instance by.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        business_key: Option<String>,
        /// The start node to use; `None`: the first plain start (else the first start).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start: Option<String>,
        /// The authenticated user who starts it, recorded in the history (none for timer and
        /// child starts).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        started_by: Option<String>,
        /// The user the starter acts for, when a role allows naming another requester.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_behalf_of: Option<String>,
    },
    /// A worker finished a job; `output` is the job's result object.
    JobCompleted {
        /// The job.
        job: JobId,
        /// The result.
        output: serde_json::Value,
    },
    /// A job attempt failed (technical failure): retried per the task's policy, then an incident.
    JobFailed {
        /// The job.
        job: JobId,
        /// What went wrong.
        message: String,
    },
    /// A job raised a business error: taken by a matching `on error`, else an incident.
    JobBusinessError {
        /// The job.
        job: JobId,
        /// The error code.
        code: String,
    },
    /// A person completed a human task with a form.
    TaskCompleted {
        /// The task.
        task: TaskId,
        /// Who completed it.
        by: String,
        /// The user `by` acts for (delegation, out of office).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_behalf_of: Option<String>,
        /// The form, a JSON object.
        form: serde_json::Value,
    },
    /// A person hands a human task to someone else, who then completes it for them.
    TaskDelegated {
        /// The task.
        task: TaskId,
        /// Who delegates.
        by: String,
        /// Who receives it.
        to: String,
    },
    /// A timer is due.
    TimerFired {
        /// The timer.
        timer: TimerId,
    },
    /// A message matched a subscription (name and correlation key matched by the runtime).
    MessageCorrelated {
        /// The subscription.
        subscription: SubscriptionId,
        /// The message's payload, a JSON object.
        payload: serde_json::Value,
    },
    /// A called child process completed.
    ChildCompleted {
        /// The call.
        call: CallId,
        /// The child's outcome.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<String>,
        /// The child's variables (typed values).
        #[serde(with = "value_serde::map")]
        variables: BTreeMap<String, Value>,
    },
    /// A called process refused the start its caller asked for (an input out of bounds, a
    /// value that does not fit its type), which no retry of the same start can change: the
    /// instance fails with [`START_REFUSED`], so that an `on error` of its call (with that code,
    /// or none) catches it or an incident on the call says so, instead of the caller waiting at
    /// the call for ever.
    StartRefused {
        /// Why, in the core's words.
        reason: String,
    },
    /// A called child process failed: an error end, a cancellation (`cancelled`) or a refused
    /// start ([`START_REFUSED`]).
    ChildFailed {
        /// The call.
        call: CallId,
        /// The error code.
        code: String,
    },
    /// Cancels the instance and everything it has open.
    Cancel {
        /// Who cancels.
        by: String,
    },
    /// An operator retries a job whose incident is open.
    RetryJob {
        /// The job.
        job: JobId,
    },
    /// An operator resolves an incident: the stuck node runs again.
    ResolveIncident {
        /// The incident.
        incident: IncidentId,
    },
    /// An operator repairs a running instance by hand: cancels a token, starts one before a
    /// node, or sets a variable; recorded in the history with who and why.
    Modify {
        /// What to do.
        modification: Modification,
        /// The operator.
        by: String,
        /// Why, in the operator's words.
        reason: String,
    },
    /// An operator moved the instance to another deployed version of its definition. Applied by
    /// [`crate::migrate`] with both definitions (never by [`crate::step`](fn@crate::step)); kept in the event
    /// log so that [`crate::replay_versions`] rebuilds a migrated instance.
    Migrate {
        /// The version it ran.
        from_version: u32,
        /// The version it runs from now on.
        to_version: u32,
        /// Renamed nodes: old name → new name (a node of the same name maps to itself).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        mapping: BTreeMap<String, String>,
        /// The operator.
        by: String,
        /// Why, in the operator's words.
        reason: String,
    },
}

/// An operator's repair of a running instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Modification {
    /// Ends a token and closes everything it waits for; refused for the last token (cancel the
    /// instance instead).
    CancelToken {
        /// The token.
        token: TokenId,
    },
    /// Starts a new token before a node of the main flow: the node runs as if a flow led there.
    StartBefore {
        /// The node.
        node: String,
    },
    /// Sets a declared variable to a value of its type (a JSON value, read as at a start).
    SetVariable {
        /// The variable.
        name: String,
        /// The value.
        value: serde_json::Value,
    },
}

impl Event {
    /// A short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Start { .. } => "start",
            Event::JobCompleted { .. } => "job completed",
            Event::JobFailed { .. } => "job failed",
            Event::JobBusinessError { .. } => "job business error",
            Event::TaskCompleted { .. } => "task completed",
            Event::TaskDelegated { .. } => "task delegated",
            Event::TimerFired { .. } => "timer fired",
            Event::MessageCorrelated { .. } => "message correlated",
            Event::ChildCompleted { .. } => "child completed",
            Event::StartRefused { .. } => "start refused",
            Event::ChildFailed { .. } => "child failed",
            Event::Cancel { .. } => "cancel",
            Event::RetryJob { .. } => "retry job",
            Event::ResolveIncident { .. } => "resolve incident",
            Event::Migrate { .. } => "migrate",
            Event::Modify { .. } => "modify",
        }
    }
}
