//! Durable storage of deployments, instances and everything a step opens.
//!
//! The runtime talks to a database only through [`Store`]: a handful of reads and one
//! [`Store::write`] that applies a whole batch of [`Write`]s in ONE transaction (group commit)
//! and answers each write on its own. A [`StepWrite`] is everything one accepted step changes,
//! computed by the runtime before it reaches the store, so a store implementation is plain SQL
//! and knows nothing of the core. [`SqliteStore`] is the embedded implementation, [`PgStore`]
//! the shared one.
//!
//! One dialect strategy: every read (the [`Store`]'s and the [`Queries`]) is written once over a
//! small dialect layer (`sql.rs`: the dialect, bound arguments, result rows), with one SQL text
//! where the dialects agree and one per dialect where they do not. Each backend keeps only what
//! differs in more than its text: the group-committed batch write, PostgreSQL's `SKIP LOCKED`
//! fetches, timer claims and advisory locks, and the DDL of its migrations.
//!
//! Architecture Invariant: every write in a batch is either applied whole or refused whole with
//! a typed [`WriteError`]; a refused write never makes the other writes of its batch fail.

/// When a PostgreSQL job becomes claimable: a ready job at its due time, a locked one when its
/// lease runs out. The key of the `jobs_due` and `jobs_due_at` indexes, spelled as they are, so
/// that the planner can read them (the due check in `query`, the fetch in `postgres::fetch`).
macro_rules! pg_due_at {
    () => {
        "CASE WHEN state = 'ready' THEN due_at ELSE lock_expires_at END"
    };
}

pub mod any;
pub mod archive;
mod batch;
mod history;
pub mod pool;
pub mod postgres;
pub mod query;
mod reads;
mod rows;
mod sql;
mod sqlite;
mod states;
mod writes;

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::ids::{IncidentId, InstanceId, JobId, SubscriptionId, TaskId, TimerId};

pub use archive::{Participants, Tombstone, archive_label};
pub use history::{GENESIS_HASH, HistoryCheck, HistoryRow, HistoryStep, chain_hash, person_key, sha256_hex};
pub use query::Queries;
pub use sqlite::{SqliteStore, WriterCounters, WriterHold, create_private};
pub use states::{IncidentState, InstanceState, JobState, TaskState};
pub use {
    any::{AnyStore, DatabaseUrl},
    postgres::PgStore,
};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database refused or failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The group-commit writer's SQLite connection refused or failed.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Migrations could not be applied.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored JSON column did not parse.
    #[error("stored json: {0}")]
    Json(#[from] serde_json::Error),
    /// A stored value is not what the schema promises.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// Why one write of a batch was refused (the rest of the batch is unaffected).
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The instance changed since it was loaded (optimistic concurrency): load and step again.
    #[error("instance `{0}` was changed concurrently")]
    Conflict(String),
    /// The job is no longer locked with this epoch.
    #[error("job `{job}` is not locked with epoch {epoch}")]
    StaleEpoch {
        /// The job.
        job: String,
        /// The epoch the caller held.
        epoch: i64,
    },
    /// The task is closed or claimed by someone else.
    #[error("task `{task}` is closed or claimed by another user")]
    TaskTaken {
        /// The task.
        task: String,
    },
    /// A message with this id was received before.
    #[error("message `{0}` was received before")]
    DuplicateMessage(String),
    /// A subscription for the message appeared: deliver it instead of buffering.
    #[error("a subscription for the message exists")]
    SubscriptionExists,
    /// A buffered message for a new subscription exists: step again to consume it.
    #[error("a buffered message waits for the new subscription")]
    BufferedMessageWaiting,
    /// The owed event this step consumes was applied already.
    #[error("the owed event was applied already")]
    PendingGone,
    /// The database failed; the whole batch was rolled back and the write retried alone.
    #[error("{0}")]
    Store(Arc<Error>),
}

/// One write, applied inside the batch's transaction.
#[derive(Debug)]
pub enum Write {
    /// Persist one accepted step.
    Step(Box<StepWrite>),
    /// Deploy a compiled process (idempotent by hash).
    Deploy(DeploymentRow),
    /// Lock up to `max` due jobs of the given types.
    FetchJobs {
        /// The worker.
        worker: String,
        /// The job types.
        job_types: Vec<String>,
        /// At most this many.
        max: i64,
        /// Now.
        now: DateTime<Utc>,
        /// The lease's end.
        lease_until: DateTime<Utc>,
    },
    /// Claim (`user: Some`) or unclaim a task held by `by`.
    ClaimTask {
        /// The task.
        task: String,
        /// The new claimant, or none to unclaim.
        user: Option<String>,
        /// The user acting.
        by: String,
    },
    /// Extend the lease of a job still held under `epoch` and not yet run out at `now`.
    ExtendLock {
        /// The job.
        job: String,
        /// The lock epoch the worker holds.
        epoch: i64,
        /// Now.
        now: DateTime<Utc>,
        /// The lease's new end.
        until: DateTime<Utc>,
    },
    /// Name (or, with `substitute: None`, remove) the substitute of `user` for a period.
    SetSubstitute {
        /// The absent user.
        user: String,
        /// Who acts for them.
        substitute: Option<String>,
        /// From.
        from: DateTime<Utc>,
        /// Until (exclusive).
        until: DateTime<Utc>,
    },
    /// End a session of the pages (sign-out) until `until`, when its cookie expires anyway;
    /// sessions ended before `now` are dropped.
    EndSession {
        /// The session's id (a digest of its cookie, never the cookie itself).
        session: String,
        /// When the session would have expired.
        until: DateTime<Utc>,
        /// Now.
        now: DateTime<Utc>,
    },
    /// Set the cursor of a cron start: kept when `schedule` is unchanged, else moved to `next`.
    /// Schedules of the process not in `nodes` are dropped (a new version removed them).
    SetSchedules {
        /// The process.
        process: String,
        /// (start node, schedule as text, next fire) of its latest version.
        nodes: Vec<(String, String, DateTime<Utc>)>,
    },
    /// Move a cron start's cursor from `from` to `to`; does nothing when another node moved it.
    AdvanceSchedule {
        /// The process.
        process: String,
        /// The start node.
        node: String,
        /// The fire being handled.
        from: DateTime<Utc>,
        /// The next fire.
        to: DateTime<Utc>,
    },
    /// Buffer a message nobody waits for yet.
    BufferMessage(MessageRow),
    /// Drop an owed event its instance refused.
    DropPending(String),
    /// Take up to `max` notifications due for delivery at `now`, each left to the taker until
    /// `until` (another node takes it again after that, should the taker die).
    TakeNotifications {
        /// The time of the take.
        now: DateTime<Utc>,
        /// The end of the taker's lease.
        until: DateTime<Utc>,
        /// At most this many.
        max: i64,
    },
    /// Record the outcome of one delivery attempt of a notification.
    NotificationAttempt {
        /// The notification.
        id: String,
        /// When the attempt ended.
        at: DateTime<Utc>,
        /// What became of it.
        outcome: DeliveryOutcome,
    },
    /// Raise notifications not caused by a step (alerts); one whose id exists already is left
    /// as it is.
    Notify(Vec<NotificationRow>),
    /// Give a dead notification another round of attempts, from `now`.
    RetryNotification {
        /// The notification.
        id: String,
        /// When the retry was asked for.
        now: DateTime<Utc>,
    },
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Every receiver accepted it.
    Delivered,
    /// It failed; try again at this time.
    Retry {
        /// Why it failed.
        error: String,
        /// When to try again.
        at: DateTime<Utc>,
    },
    /// It failed for the last time: dead-lettered until an operator retries it.
    Dead {
        /// Why it failed.
        error: String,
    },
}

/// A notification to deliver: written in the same transaction as the step that caused it, so a
/// crash loses none, and delivered at least once, always under the same id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRow {
    /// A stable id, the receivers' idempotency key (`{task}.{kind}.{step}`).
    pub id: String,
    /// The instance it is about (none for an alert).
    pub instance_id: Option<String>,
    /// `task_created`, `task_assigned`, `task_reminder`, `task_overdue`, `alert_opened`,
    /// `alert_cleared`.
    pub kind: String,
    /// What it is about (a task id, an alert id).
    pub subject: String,
    /// The body receivers get (JSON).
    pub payload: String,
    /// When it was raised.
    pub created_at: DateTime<Utc>,
}

/// A notification as stored, with its delivery state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The notification.
    pub row: NotificationRow,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    /// Delivery attempts made.
    pub attempts: i64,
    /// The last failure.
    pub last_error: Option<String>,
}

/// What a write produced.
#[derive(Debug)]
pub enum WriteOutcome {
    /// Done, nothing to report.
    Done,
    /// The version deployed, and whether it is new.
    Deployed {
        /// The version.
        version: u32,
        /// False when the same hash was deployed before.
        created: bool,
    },
    /// The jobs locked.
    Jobs(Vec<LockedJob>),
    /// Whether a claim or unclaim changed the task.
    Claimed(bool),
    /// Whether the lease was extended.
    Extended(bool),
    /// Whether an owed event was still there to drop (another node may have applied it).
    Dropped(bool),
    /// The notifications taken for delivery.
    Notifications(Vec<Notification>),
    /// Whether a dead notification was there to retry.
    Retried(bool),
}

/// A deployment row.
#[derive(Debug, Clone)]
pub struct DeploymentRow {
    /// The process key.
    pub key: String,
    /// The version (ignored on write: the store picks it).
    pub version: u32,
    /// sha256 of the compiled JSON.
    pub hash: String,
    /// The `.flow` source.
    pub source: String,
    /// The compiled JSON.
    pub compiled: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// An instance row: the state JSON and what the store indexes.
#[derive(Debug, Clone)]
pub struct InstanceRow {
    /// The id.
    pub id: String,
    /// The process key.
    pub process_key: String,
    /// The deployed version it runs.
    pub process_version: u32,
    /// Where it stands.
    pub status: InstanceState,
    /// The business key.
    pub business_key: Option<String>,
    /// The calling instance.
    pub parent_id: Option<String>,
    /// The parent's call.
    pub parent_call: Option<String>,
    /// The instance JSON.
    pub state: String,
    /// The optimistic-concurrency version.
    pub version: i64,
    /// The last history sequence number.
    pub history_seq: i64,
    /// The hash of the last history row.
    pub history_hash: String,
    /// Now.
    pub at: DateTime<Utc>,
}

/// A job row as created.
#[derive(Debug, Clone)]
pub struct JobRow {
    /// The id.
    pub id: String,
    /// The instance.
    pub instance_id: String,
    /// The task node.
    pub node: String,
    /// The job type.
    pub job_type: String,
    /// The input JSON.
    pub input: String,
    /// Stable per activation.
    pub idempotency_key: String,
    /// Attempts allowed.
    pub retries: i64,
    /// The attempt about to run.
    pub attempt: i64,
    /// Where it stands.
    pub state: JobState,
    /// Not before.
    pub due_at: DateTime<Utc>,
}

/// A change to a job.
#[derive(Debug, Clone)]
pub enum JobChange {
    /// A new job.
    Insert(JobRow),
    /// A new state (the lock is released); due time and attempt when given.
    Update {
        /// The job.
        id: String,
        /// The new state.
        state: JobState,
        /// A new due time.
        due_at: Option<DateTime<Utc>>,
        /// A new attempt number.
        attempt: Option<i64>,
    },
}

/// A human task row as created.
#[derive(Debug, Clone)]
pub struct TaskRow {
    /// The id.
    pub id: String,
    /// The instance.
    pub instance_id: String,
    /// The approval node.
    pub node: String,
    /// The title.
    pub title: String,
    /// Candidate roles (JSON array).
    pub roles: String,
    /// The assignee.
    pub assignee: Option<String>,
    /// The form (JSON).
    pub form: String,
    /// The SLA.
    pub due_at: Option<DateTime<Utc>>,
    /// Now.
    pub created_at: DateTime<Utc>,
}

/// A change to a task.
#[derive(Debug, Clone)]
pub enum TaskChange {
    /// A new open task.
    Insert(TaskRow),
    /// Closed (completed or cancelled).
    Close {
        /// The task.
        id: String,
        /// Completed or cancelled.
        state: TaskState,
        /// Who completed it.
        completed_by: Option<String>,
    },
    /// Assigned to someone else (delegation); any claim is released.
    Assign {
        /// The task.
        id: String,
        /// The new assignee.
        assignee: String,
    },
}

/// A timer row.
#[derive(Debug, Clone)]
pub struct TimerRow {
    /// The id.
    pub id: String,
    /// The instance.
    pub instance_id: String,
    /// The node.
    pub node: String,
    /// When.
    pub due_at: DateTime<Utc>,
}

/// A subscription row.
#[derive(Debug, Clone)]
pub struct SubscriptionRow {
    /// The id.
    pub id: String,
    /// The instance.
    pub instance_id: String,
    /// The node.
    pub node: String,
    /// The message name.
    pub message_name: String,
    /// The correlation key.
    pub correlation_key: String,
}

/// An incident row.
#[derive(Debug, Clone)]
pub struct IncidentRow {
    /// The id.
    pub id: String,
    /// The instance.
    pub instance_id: String,
    /// The node.
    pub node: String,
    /// The job.
    pub job_id: Option<String>,
    /// What went wrong.
    pub message: String,
    /// Now.
    pub at: DateTime<Utc>,
}

/// A received message.
#[derive(Debug, Clone)]
pub struct MessageRow {
    /// The message id (unique).
    pub message_id: String,
    /// The name.
    pub name: String,
    /// The correlation key.
    pub correlation_key: String,
    /// The payload JSON.
    pub payload: String,
    /// The instance it reached, if delivered.
    pub instance_id: Option<String>,
    /// Now.
    pub received_at: DateTime<Utc>,
    /// Buffered until.
    pub expires_at: DateTime<Utc>,
}

/// A buffered message, as read back.
#[derive(Debug, Clone)]
pub struct BufferedMessage {
    /// Its row number.
    pub seq: i64,
    /// The message id.
    pub message_id: String,
    /// The payload JSON.
    pub payload: String,
}

/// An event owed to an instance (a child's start or end, a parent's cancel).
#[derive(Debug, Clone)]
pub struct PendingRow {
    /// The id.
    pub id: String,
    /// The receiving instance.
    pub instance_id: String,
    /// The event JSON.
    pub event: String,
}

/// A check made inside the transaction before the step's changes are applied.
#[derive(Debug, Clone)]
pub enum Guard {
    /// The job is still locked with this epoch.
    JobLocked {
        /// The job.
        job: String,
        /// The epoch.
        epoch: i64,
    },
    /// The task is open and unclaimed or claimed by `user`.
    TaskFree {
        /// The task.
        task: String,
        /// The user completing it.
        user: String,
    },
    /// No unexpired buffered message waits for this name and key, but those of `except`.
    NoBufferedMessage {
        /// The name.
        name: String,
        /// The key.
        key: String,
        /// Now.
        now: DateTime<Utc>,
        /// The buffered messages (by `seq`) the write delivers itself (another instance it
        /// starts may take the one this subscription would have waited for), and those the
        /// subscribing instance cannot take (left buffered until they expire).
        except: Vec<i64>,
    },
}

/// Everything one accepted step (possibly a short chain of core steps) changes.
#[derive(Debug, Clone)]
pub struct StepWrite {
    /// The new instance row.
    pub instance: InstanceRow,
    /// `None`: insert a new instance; `Some(v)`: update only if its version is still `v`.
    pub expected_version: Option<i64>,
    /// Checks that must hold.
    pub guards: Vec<Guard>,
    /// Buffered messages (by `seq`) this step delivers.
    pub consume_messages: Vec<i64>,
    /// A message delivered directly by this step (idempotency record).
    pub record_message: Option<MessageRow>,
    /// The owed event this step consumes.
    pub consume_pending: Option<String>,
    /// Job changes.
    pub jobs: Vec<JobChange>,
    /// Task changes.
    pub tasks: Vec<TaskChange>,
    /// Timers to create or move.
    pub timers_upsert: Vec<TimerRow>,
    /// Timers to drop.
    pub timers_delete: Vec<String>,
    /// Subscriptions to open.
    pub subscriptions_insert: Vec<SubscriptionRow>,
    /// Subscriptions to drop.
    pub subscriptions_delete: Vec<String>,
    /// Incidents raised.
    pub incidents_insert: Vec<IncidentRow>,
    /// Incidents closed.
    pub incidents_close: Vec<String>,
    /// The history entries, chained, stored as one row (none when the step wrote none).
    pub history: Option<HistoryStep>,
    /// The accepted events: (seq, at, event JSON).
    pub events: Vec<(i64, DateTime<Utc>, String)>,
    /// Child instances created (status created), started later by an owed start event.
    pub children: Vec<InstanceRow>,
    /// Child instances this step starts: each one's first step, a new instance (no expected
    /// version), written with this one or not at all. Their checks are this write's checks;
    /// their own `started` is empty.
    pub started: Vec<StepWrite>,
    /// Events owed to other instances.
    pub pending: Vec<PendingRow>,
    /// Notifications to deliver.
    pub notifications: Vec<NotificationRow>,
}

impl StepWrite {
    /// This step, then the first steps of the children it starts.
    pub fn with_started(&self) -> impl Iterator<Item = &StepWrite> {
        std::iter::once(self).chain(&self.started)
    }

    /// The checks of this step and of the children it starts.
    pub fn all_guards(&self) -> impl Iterator<Item = &Guard> {
        self.with_started().flat_map(|write| write.guards.iter())
    }

    /// The instances this write creates: children to be started later, and children started.
    pub fn new_children(&self) -> impl Iterator<Item = &InstanceRow> {
        self.children
            .iter()
            .chain(self.started.iter().flat_map(|child| std::iter::once(&child.instance).chain(child.children.iter())))
    }
}

/// A job as read.
#[derive(Debug, Clone)]
pub struct JobInfo {
    /// The id.
    pub id: JobId,
    /// The instance.
    pub instance_id: InstanceId,
    /// The job type.
    pub job_type: String,
    /// Where it stands.
    pub state: JobState,
    /// The lock epoch.
    pub lock_epoch: i64,
    /// The lease's end.
    pub lock_expires_at: Option<DateTime<Utc>>,
}

/// A job handed to a worker by fetch-and-lock.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LockedJob {
    /// The id.
    pub id: JobId,
    /// The instance.
    pub instance_id: InstanceId,
    /// The task node.
    pub node: String,
    /// The job type.
    pub job_type: String,
    /// The input.
    pub input: serde_json::Value,
    /// Stable per activation: make side effects once per key.
    pub idempotency_key: String,
    /// The attempt (1 is the first).
    pub attempt: i64,
    /// The lock epoch to present on completion.
    pub epoch: i64,
    /// The lease's end.
    pub lock_expires_at: DateTime<Utc>,
}

/// An out-of-office arrangement: `substitute` acts for the user who named them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Substitution {
    /// Who acts.
    pub substitute: String,
    /// From (inclusive).
    pub from: DateTime<Utc>,
    /// Until (exclusive).
    pub until: DateTime<Utc>,
}

/// A human task as read.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskInfo {
    /// The id.
    pub id: TaskId,
    /// The instance.
    pub instance_id: InstanceId,
    /// The approval node.
    pub node: String,
    /// The title.
    pub title: String,
    /// Candidate roles.
    pub roles: Vec<String>,
    /// The assignee.
    pub assignee: Option<String>,
    /// The form fields (JSON).
    pub form: serde_json::Value,
    /// The SLA.
    pub due_at: Option<DateTime<Utc>>,
    /// Where it stands.
    pub state: TaskState,
    /// Who claimed it.
    pub claimed_by: Option<String>,
    /// Who completed it.
    pub completed_by: Option<String>,
}

/// The storage interface of the runtime. Implemented by [`SqliteStore`], [`PgStore`] and
/// [`AnyStore`]: the reads once for all three over the dialect layer (`reads.rs`), the batched
/// write and the timer claims by each backend.
pub trait Store: Clone + Send + Sync + 'static {
    /// Applies `batch` in one transaction; one result per write, in order.
    fn write(&self, batch: Vec<Write>) -> impl Future<Output = Vec<Result<WriteOutcome, WriteError>>> + Send;
    /// Loads an instance row.
    fn load_instance(&self, id: &InstanceId) -> impl Future<Output = Result<Option<InstanceRow>, Error>> + Send;
    /// Loads the rows of the instances of `ids` there are, in one read, in no particular order.
    fn load_instances(&self, ids: &[InstanceId]) -> impl Future<Output = Result<Vec<InstanceRow>, Error>> + Send;
    /// True when `id` names an instance moved into an archive: its tombstone stays, and the id
    /// is never used again (an insert under it does nothing).
    fn is_archived(&self, id: &InstanceId) -> impl Future<Output = Result<bool, Error>> + Send;
    /// A deployment by key; the latest when `version` is `None`.
    fn deployment(
        &self,
        key: &str,
        version: Option<u32>,
    ) -> impl Future<Output = Result<Option<DeploymentRow>, Error>> + Send;
    /// A job.
    fn job(&self, id: &JobId) -> impl Future<Output = Result<Option<JobInfo>, Error>> + Send;
    /// A task.
    fn task(&self, id: &TaskId) -> impl Future<Output = Result<Option<TaskInfo>, Error>> + Send;
    /// Open tasks, of one instance or all.
    fn open_tasks(&self, instance: Option<&InstanceId>) -> impl Future<Output = Result<Vec<TaskInfo>, Error>> + Send;
    /// Open tasks `user` may act on: of one of `roles`, assigned to or claimed by `user` or by one
    /// of `principals` (the users `user` substitutes for).
    fn inbox(
        &self,
        user: &str,
        roles: &[String],
        principals: &[String],
    ) -> impl Future<Output = Result<Vec<TaskInfo>, Error>> + Send;
    /// The users whose substitute `substitute` is at `now`.
    fn principals_of(
        &self,
        substitute: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<String>, Error>> + Send;
    /// The substitute `user` named.
    fn substitute_of(&self, user: &str) -> impl Future<Output = Result<Option<Substitution>, Error>> + Send;
    /// True when the session `session` of the pages was ended (signed out).
    fn session_ended(&self, session: &str) -> impl Future<Output = Result<bool, Error>> + Send;
    /// Subscriptions matching a message: (subscription, instance), oldest first.
    fn subscriptions_for(
        &self,
        name: &str,
        key: &str,
    ) -> impl Future<Output = Result<Vec<(SubscriptionId, InstanceId)>, Error>> + Send;
    /// The oldest unexpired buffered message for a name and key, skipping `skip`.
    fn buffered_message(
        &self,
        name: &str,
        key: &str,
        now: DateTime<Utc>,
        skip: &[i64],
    ) -> impl Future<Output = Result<Option<BufferedMessage>, Error>> + Send;
    /// True if a message with this id was received.
    fn message_seen(&self, message_id: &str) -> impl Future<Output = Result<bool, Error>> + Send;
    /// Timers due at `now`: (timer, instance), earliest first. A store shared by several engine
    /// nodes claims the timers it returns for a while, so that two nodes do not both try them.
    fn due_timers(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<(TimerId, InstanceId)>, Error>> + Send;
    /// Cron starts due at `now`: (process, node, fire).
    fn due_schedules(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<(String, String, DateTime<Utc>)>, Error>> + Send;
    /// The earliest cron start.
    fn next_schedule(&self) -> impl Future<Output = Result<Option<DateTime<Utc>>, Error>> + Send;
    /// The latest version of every deployed process.
    fn latest_versions(&self) -> impl Future<Output = Result<Vec<(String, u32)>, Error>> + Send;
    /// The earliest timer.
    fn next_timer(&self) -> impl Future<Output = Result<Option<DateTime<Utc>>, Error>> + Send;
    /// Owed events, oldest first.
    fn pending(&self, limit: i64) -> impl Future<Output = Result<Vec<PendingRow>, Error>> + Send;
    /// An incident: (instance, job).
    fn incident(
        &self,
        id: &IncidentId,
    ) -> impl Future<Output = Result<Option<(InstanceId, Option<JobId>)>, Error>> + Send;
    /// The history rows of an instance, in order.
    fn history(&self, instance: &InstanceId) -> impl Future<Output = Result<Vec<HistoryRow>, Error>> + Send;
    /// The accepted events of an instance, in order: (at, event JSON).
    fn events(&self, instance: &InstanceId)
    -> impl Future<Output = Result<Vec<(DateTime<Utc>, String)>, Error>> + Send;
}

/// The text form of an instant in the database: fixed width, so text order is time order.
pub fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Reads [`ts`]'s form back.
pub fn parse_ts(text: &str) -> Result<DateTime<Utc>, Error> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::Corrupt(format!("time `{text}`: {e}")))
}
