//! Why the core refused an event. A refused event changes nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{CallId, IncidentId, JobId, SubscriptionId, TaskId, TimerId};

/// A refused event: the instance is left as it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case", tag = "rejection")]
pub enum Rejection {
    /// The definition given is not the one the instance runs.
    #[error("instance runs process `{instance}`, not `{definition}`")]
    WrongDefinition {
        /// The instance's process key.
        instance: String,
        /// The definition's key.
        definition: String,
    },
    /// The event does not fit the instance's status (such as a job completion before start).
    #[error("{event} is not accepted by an instance that is {status}")]
    InvalidState {
        /// The event's name.
        event: String,
        /// The status, in words.
        status: String,
    },
    /// No open job with this id.
    #[error("no open job `{job}`")]
    UnknownJob {
        /// The id.
        job: JobId,
    },
    /// The job has an open incident: only an operator retry moves it.
    #[error("job `{job}` has an open incident")]
    JobInIncident {
        /// The id.
        job: JobId,
    },
    /// The job is not stuck on an incident.
    #[error("job `{job}` has no open incident")]
    JobNotInIncident {
        /// The id.
        job: JobId,
    },
    /// No open task with this id.
    #[error("no open task `{task}`")]
    UnknownTask {
        /// The id.
        task: TaskId,
    },
    /// No open timer with this id.
    #[error("no open timer `{timer}`")]
    UnknownTimer {
        /// The id.
        timer: TimerId,
    },
    /// A timer delivered before its time.
    #[error("timer `{timer}` is not due before {at}")]
    TimerNotDue {
        /// The id.
        timer: TimerId,
        /// When it is due.
        at: DateTime<Utc>,
    },
    /// No open subscription with this id.
    #[error("no open subscription `{subscription}`")]
    UnknownSubscription {
        /// The id.
        subscription: SubscriptionId,
    },
    /// No open call with this id.
    #[error("no open call `{call}`")]
    UnknownCall {
        /// The id.
        call: CallId,
    },
    /// No open incident with this id.
    #[error("no open incident `{incident}`")]
    UnknownIncident {
        /// The id.
        incident: IncidentId,
    },
    /// No start node of that name, or none at all.
    #[error("no start node `{start}`")]
    UnknownStart {
        /// The name asked for.
        start: String,
    },
    /// Start inputs that do not fit the process's declared inputs.
    #[error("invalid inputs: {}", list(fields))]
    InvalidInput {
        /// (field, what is wrong).
        fields: Vec<(String, String)>,
    },
    /// A form that does not fit the approval's form.
    #[error("invalid form: {}", list(fields))]
    InvalidForm {
        /// (field, what is wrong).
        fields: Vec<(String, String)>,
    },
    /// A job result or message payload the node's output mappings cannot read.
    #[error("invalid output: {}", list(fields))]
    InvalidOutput {
        /// (variable, what is wrong).
        fields: Vec<(String, String)>,
    },
    /// The user may not complete this task (separation of duties).
    #[error("separation of duties: `{user}` may not complete this task (not by {rule})")]
    SeparationOfDuties {
        /// The `not by` rule broken, as written.
        rule: String,
        /// The user refused.
        user: String,
    },
    /// A task delegated back to someone who already handed it on, or to its holder.
    #[error("`{user}` already held this task: a delegation may not go back along its chain")]
    DelegationLoop {
        /// The delegate refused.
        user: String,
    },
    /// The instance references a node its definition does not have.
    #[error("node `{node}` is not in the definition")]
    UnknownNode {
        /// The node.
        node: String,
    },
    /// A migration to another version is unsafe for this instance: every reason, each with
    /// what it is about (a token, a node, a variable) and how to make it safe.
    #[error("cannot migrate: {}", list(problems))]
    CannotMigrate {
        /// (what, why).
        problems: Vec<(String, String)>,
    },
    /// An operator's modification that does not fit the instance or its definition: (what, why).
    #[error("cannot modify: {}", list(problems))]
    CannotModify {
        /// (what, why).
        problems: Vec<(String, String)>,
    },
    /// A version of the definition that is not deployed (replaying a migration).
    #[error("version {version} of `{process}` is not deployed")]
    UnknownVersion {
        /// The process key.
        process: String,
        /// The version.
        version: u32,
    },
    /// One event ran more than the step limit of node entries: a loop that never waits.
    #[error("more than {limit} nodes entered in one step")]
    StepLimit {
        /// The limit.
        limit: usize,
    },
}

fn list(fields: &[(String, String)]) -> String {
    fields.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; ")
}
