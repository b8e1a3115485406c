//! The state of one instance: status, variables, tokens and every open wait, keyed by id.
//! Serializable as JSON for the store; nothing in it is computed from a clock or at random.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cloverleaf_dsl::expr::Value;
use serde::{Deserialize, Serialize};

use crate::ids::{CallId, IncidentId, InstanceId, JobId, SubscriptionId, TaskId, TimerId, TokenId};
use crate::value_serde;

/// Where an instance is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Status {
    /// Created, not started yet: only `Start` is accepted.
    Created,
    /// Tokens are moving or waiting.
    Running,
    /// Every token reached an end; `outcome` is the name of the last main-flow end reached.
    Completed {
        /// The outcome (`None` when only side paths ended).
        outcome: Option<String>,
    },
    /// An error end was reached.
    Failed {
        /// The error code, raised to a calling process.
        code: String,
    },
    /// Cancelled from outside.
    Cancelled {
        /// Who cancelled it.
        by: String,
    },
}

impl Status {
    /// True once the instance can take no more events.
    pub fn is_final(&self) -> bool {
        !matches!(self, Status::Created | Status::Running)
    }
}

/// One level of a token's branch context.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "frame")]
pub enum Frame {
    /// Branch `branch` of the split `split`, entered by the split's activation `activation`.
    Branch {
        /// The split node.
        split: String,
        /// Which activation of the split (unique in the instance).
        activation: u64,
        /// The branch index.
        branch: usize,
    },
    /// A side path started by a non-interrupting event of `owner`.
    Side {
        /// The node whose boundary event started it.
        owner: String,
        /// Unique in the instance.
        activation: u64,
    },
}

/// What a token is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum TokenState {
    /// Waiting at a wait state (job, task, timer, message, child).
    Waiting,
    /// Arrived at a join, waiting for the other branches.
    AtJoin,
    /// Stuck on an incident until an operator resolves it.
    Incident {
        /// The incident.
        incident: IncidentId,
    },
}

/// A position in the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// The node it is at.
    pub node: String,
    /// The branch context, outermost first.
    pub frames: Vec<Frame>,
    /// Which activation of `node` this is (1-based).
    pub activation: u64,
    /// What it is doing.
    #[serde(flatten)]
    pub state: TokenState,
}

/// An open job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobWait {
    /// The token waiting for it.
    pub token: TokenId,
    /// The task node.
    pub node: String,
    /// The job type.
    pub job_type: String,
    /// Failures so far.
    pub failures: u32,
    /// Retries left before an incident.
    pub retries_left: u32,
    /// The open incident, if the job is stuck.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<IncidentId>,
}

/// An open human task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskWait {
    /// The token waiting for it.
    pub token: TokenId,
    /// The approval node.
    pub node: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Who delegated it, and to whom: the delegate completes it on the delegator's behalf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegated: Option<Delegation>,
}

/// A task handed from one person to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegation {
    /// Who handed it on.
    pub by: String,
    /// Who holds it now.
    pub to: String,
    /// Who handed it on before `by`, first holder first: every hop of a chain is kept, so a
    /// `not by` rule bars everyone who held the task, not only the last one to pass it on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<String>,
}

impl Delegation {
    /// Everyone who handed the task on, first holder first.
    pub fn delegators(&self) -> impl Iterator<Item = &str> {
        self.earlier.iter().map(String::as_str).chain(std::iter::once(self.by.as_str()))
    }

    /// The person the task was first delegated by: the delegate acts on their behalf.
    pub fn origin(&self) -> &str {
        self.earlier.first().unwrap_or(&self.by)
    }
}

/// Why a timer exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "purpose")]
pub enum TimerPurpose {
    /// The node's boundary event number `index`.
    Boundary {
        /// Index into the node's boundaries.
        index: usize,
    },
    /// The approval's reminder number `index`.
    Reminder {
        /// Index into the approval's reminders.
        index: usize,
    },
    /// The approval's due date (SLA).
    Due,
    /// The time a `wait` node waits for.
    Wait,
    /// The timer arm number `index` of a `wait first`.
    FirstArm {
        /// Index into the arms.
        index: usize,
    },
}

/// An open timer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerWait {
    /// The token it belongs to.
    pub token: TokenId,
    /// The node it belongs to.
    pub node: String,
    /// When it fires.
    pub at: DateTime<Utc>,
    /// Why it exists.
    #[serde(flatten)]
    pub purpose: TimerPurpose,
}

/// Why a subscription exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "purpose")]
pub enum SubscriptionPurpose {
    /// A `receive` node.
    Receive,
    /// The message arm number `index` of a `wait first`.
    FirstArm {
        /// Index into the arms.
        index: usize,
    },
}

/// An open message subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// The token waiting.
    pub token: TokenId,
    /// The node.
    pub node: String,
    /// The message name.
    pub message: String,
    /// The correlation key a message must carry.
    pub correlation_key: String,
    /// Why it exists.
    #[serde(flatten)]
    pub purpose: SubscriptionPurpose,
}

/// An open call of a child process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallWait {
    /// The token waiting.
    pub token: TokenId,
    /// The call node.
    pub node: String,
    /// The called process key.
    pub process: String,
}

/// An open incident: a token that cannot go on until an operator acts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// The stuck token.
    pub token: TokenId,
    /// Where.
    pub node: String,
    /// The job whose retries ran out or whose business error nobody catches, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobId>,
    /// What went wrong.
    pub message: String,
}

/// One run of a definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub(crate) id: InstanceId,
    pub(crate) process: String,
    pub(crate) process_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) business_key: Option<String>,
    /// The authenticated user who started it (none for timer, message-less and child starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) started_by: Option<String>,
    #[serde(flatten)]
    pub(crate) status: Status,
    /// The name of the last main-flow end reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last_outcome: Option<String>,
    #[serde(with = "value_serde::map")]
    pub(crate) variables: BTreeMap<String, Value>,
    pub(crate) tokens: BTreeMap<TokenId, Token>,
    pub(crate) jobs: BTreeMap<JobId, JobWait>,
    pub(crate) tasks: BTreeMap<TaskId, TaskWait>,
    pub(crate) timers: BTreeMap<TimerId, TimerWait>,
    pub(crate) subscriptions: BTreeMap<SubscriptionId, Subscription>,
    pub(crate) calls: BTreeMap<CallId, CallWait>,
    pub(crate) incidents: BTreeMap<IncidentId, Incident>,
    /// Entries per node so far (activation numbers).
    pub(crate) activations: BTreeMap<String, u64>,
    /// The source of every id the core creates.
    pub(crate) sequence: u64,
    /// Bumped by every accepted event (optimistic concurrency in the store).
    pub(crate) version: u64,
}

impl Instance {
    /// A new instance of `process` (deployed as `process_version`), waiting for its `Start` event.
    pub fn new(id: impl Into<InstanceId>, process: impl Into<String>, process_version: u32) -> Instance {
        Instance {
            id: id.into(),
            process: process.into(),
            process_version,
            business_key: None,
            started_by: None,
            status: Status::Created,
            last_outcome: None,
            variables: BTreeMap::new(),
            tokens: BTreeMap::new(),
            jobs: BTreeMap::new(),
            tasks: BTreeMap::new(),
            timers: BTreeMap::new(),
            subscriptions: BTreeMap::new(),
            calls: BTreeMap::new(),
            incidents: BTreeMap::new(),
            activations: BTreeMap::new(),
            sequence: 0,
            version: 0,
        }
    }

    /// The instance id.
    pub fn id(&self) -> &InstanceId {
        &self.id
    }

    /// The process key.
    pub fn process(&self) -> &str {
        &self.process
    }

    /// The deployed version of the definition it runs.
    pub fn process_version(&self) -> u32 {
        self.process_version
    }

    /// The business key given at start.
    pub fn business_key(&self) -> Option<&str> {
        self.business_key.as_deref()
    }

    /// The authenticated user who started it, when a person did.
    pub fn started_by(&self) -> Option<&str> {
        self.started_by.as_deref()
    }

    /// The status.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// The variables.
    pub fn variables(&self) -> &BTreeMap<String, Value> {
        &self.variables
    }

    /// One variable.
    pub fn variable(&self, name: &str) -> Option<&Value> {
        self.variables.get(name)
    }

    /// The live tokens.
    pub fn tokens(&self) -> &BTreeMap<TokenId, Token> {
        &self.tokens
    }

    /// Open jobs.
    pub fn jobs(&self) -> &BTreeMap<JobId, JobWait> {
        &self.jobs
    }

    /// Open human tasks.
    pub fn tasks(&self) -> &BTreeMap<TaskId, TaskWait> {
        &self.tasks
    }

    /// Open timers.
    pub fn timers(&self) -> &BTreeMap<TimerId, TimerWait> {
        &self.timers
    }

    /// Open message subscriptions.
    pub fn subscriptions(&self) -> &BTreeMap<SubscriptionId, Subscription> {
        &self.subscriptions
    }

    /// Open calls of child processes.
    pub fn calls(&self) -> &BTreeMap<CallId, CallWait> {
        &self.calls
    }

    /// Open incidents.
    pub fn incidents(&self) -> &BTreeMap<IncidentId, Incident> {
        &self.incidents
    }

    /// The optimistic-concurrency version: the number of events accepted so far.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The JSON form the store persists.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// Reads the JSON form written by [`Instance::to_json`].
    pub fn from_json(text: &str) -> Result<Instance, serde_json::Error> {
        serde_json::from_str(text)
    }
}
