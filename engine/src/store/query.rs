//! Read-only listings and report queries (operators, the HTTP API, metrics, KPIs), on either
//! store, behind one trait: [`Queries`].
//!
//! Each query is written once, generic over a store's `Reader` (the dialect layer, `sql.rs`).
//! JSON functions, job-type patterns and the event count have a text per dialect. Results ordered by a column
//! PostgreSQL compares with the database's collation (process keys, statuses, roles, incident
//! ids) are sorted here, in byte order, so both stores list alike whatever that collation is.
//!
//! The queries run on the stores' read pools, never on the group-commit writer, so an
//! operator's listing or a metrics scrape does not hold up the steps of running instances.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cloverleaf_engine::store::Error> {
//! use cloverleaf_engine::store::{AnyStore, Queries};
//!
//! let store = AnyStore::connect("postgres://cloverleaf@db.internal/cloverleaf").await?;
//! let running = store.instances(Some("order_to_cash"), Some("running"), None, 100, 0).await?;
//! # let _ = running; Ok(()) }
//! ```

use std::future::Future;

use super::rows::{self, Columns, NOTIFICATION_COLUMNS};
use super::sql::{Arg, Dialect, Each, Reader};
use super::{Error, IncidentState, InstanceState, JobState, Notification, parse_ts, person_key, ts};
use chrono::{DateTime, Utc};

use crate::ids::{IncidentId, InstanceId, JobId};

/// The latest deployment of a process key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentSummary {
    /// The process key.
    pub key: String,
    /// The latest version.
    pub version: u32,
    /// sha256 of the latest version's compiled JSON.
    pub hash: String,
    /// When the latest version was deployed.
    pub deployed_at: DateTime<Utc>,
    /// How many versions are deployed.
    pub versions: u32,
}

/// One deployed version of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionSummary {
    /// The version.
    pub version: u32,
    /// sha256 of its compiled JSON.
    pub hash: String,
    /// When it was deployed.
    pub deployed_at: DateTime<Utc>,
}

/// An instance as listed: what the store indexes, without its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSummary {
    /// The id.
    pub id: InstanceId,
    /// The process key.
    pub process_key: String,
    /// The deployed version it runs.
    pub process_version: u32,
    /// Where it stands.
    pub status: InstanceState,
    /// The business key.
    pub business_key: Option<String>,
    /// The calling instance.
    pub parent_id: Option<InstanceId>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A job not finished yet, as listed: waiting for its first try or a retry, held by a worker, or
/// stuck on an incident.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenJob {
    /// The id.
    pub id: JobId,
    /// The instance.
    pub instance_id: InstanceId,
    /// The task node.
    pub node: String,
    /// The job type.
    pub job_type: String,
    /// The input object.
    pub input: serde_json::Value,
    /// Stable per activation: make side effects once per key.
    pub idempotency_key: String,
    /// The attempt about to run (1 is the first try).
    pub attempt: u32,
    /// Ready, locked or incident.
    pub state: JobState,
    /// Not fetchable before this time (the creation, or a retry's backoff).
    pub due_at: DateTime<Utc>,
}

/// An incident as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentSummary {
    /// The id.
    pub id: IncidentId,
    /// The instance.
    pub instance_id: InstanceId,
    /// The instance's process key.
    pub process_key: String,
    /// The node it is stuck at.
    pub node: String,
    /// The job that ran out of retries, if any.
    pub job_id: Option<JobId>,
    /// What went wrong.
    pub message: String,
    /// Open or resolved.
    pub state: IncidentState,
    /// When it was raised.
    pub raised_at: DateTime<Utc>,
}

/// Timers as the scheduler sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimerStats {
    /// Every timer not fired yet.
    pub pending: i64,
    /// Timers whose time has come.
    pub due: i64,
    /// Timers overdue by more than the lateness threshold (the scheduler is behind).
    pub late: i64,
    /// The due time of the oldest due timer.
    pub oldest_due: Option<DateTime<Utc>>,
}

/// Counts of one group (a process and status, a job type and state, a role...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCount {
    /// The group's labels, in the order the query names them.
    pub labels: Vec<String>,
    /// How many.
    pub count: i64,
}

/// A completed instance's start and end, for cycle times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cycle {
    /// When it was created.
    pub started: DateTime<Utc>,
    /// When it completed.
    pub ended: DateTime<Utc>,
}

/// The read-only listings and reports every store answers alike: [`SqliteStore`](super::SqliteStore), [`PgStore`](super::postgres::PgStore)
/// and [`AnyStore`](super::any::AnyStore) (which asks the store it holds). Bring it into scope to call them
/// (`use cloverleaf_engine::store::Queries`).
pub trait Queries {
    /// The latest deployment of every process key, by key.
    fn deployments(&self) -> impl Future<Output = Result<Vec<DeploymentSummary>, Error>> + Send;

    /// Every deployed version of a process, oldest first (empty for an unknown key).
    fn deployment_versions(&self, key: &str) -> impl Future<Output = Result<Vec<VersionSummary>, Error>> + Send;

    /// The latest deployment's source of every process key: (key, source), by key.
    fn latest_sources(&self) -> impl Future<Output = Result<Vec<(String, String)>, Error>> + Send;

    /// Instances matching every filter given, newest first, at most `limit` after skipping
    /// `offset` (a negative limit lists none, a negative offset skips none).
    fn instances(
        &self,
        process: Option<&str>,
        status: Option<&str>,
        business_key: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> impl Future<Output = Result<Vec<InstanceSummary>, Error>> + Send;

    /// Ids of the instances `user` took part in: started, acted on or was acted for (the
    /// history), held or completed a task of, or could be offered a task of through `roles`.
    fn participations(&self, user: &str, roles: &[String]) -> impl Future<Output = Result<Vec<String>, Error>> + Send;

    /// One instance as listed.
    fn instance_summary(&self, id: &str) -> impl Future<Output = Result<Option<InstanceSummary>, Error>> + Send;

    /// Instance ids with their recorded history head (seq, hash), in id order after `after`:
    /// pages for a full audit.
    fn history_heads(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<(String, i64, String)>, Error>> + Send;

    /// Incidents, oldest first; only open ones unless `all`; of one instance when given.
    fn incidents(
        &self,
        all: bool,
        instance: Option<&str>,
    ) -> impl Future<Output = Result<Vec<IncidentSummary>, Error>> + Send;

    /// True when a job of one of `job_types` could be locked at `now` (ready and due, or its
    /// lease ran out); a type may be a pattern with `*`. A cheap check before a fetch, which
    /// writes.
    fn has_due_jobs(
        &self,
        job_types: &[String],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// When the earliest ready job of `job_types` (exact types) becomes due: a job waiting for
    /// its retry's backoff is ready but not yet due. `None` when no such job is ready.
    fn next_ready_job(&self, job_types: &[String])
    -> impl Future<Output = Result<Option<DateTime<Utc>>, Error>> + Send;

    /// Instances by process and status: labels `[process, status]`.
    fn instance_counts(&self) -> impl Future<Output = Result<Vec<GroupCount>, Error>> + Send;

    /// Jobs by type and state, leases run out counted as `expired`: labels `[job_type, state]`.
    fn job_counts(&self, now: DateTime<Utc>) -> impl Future<Output = Result<Vec<GroupCount>, Error>> + Send;

    /// Pending, due and late timers; late means due before `late_before`.
    fn timer_stats(
        &self,
        now: DateTime<Utc>,
        late_before: DateTime<Utc>,
    ) -> impl Future<Output = Result<TimerStats, Error>> + Send;

    /// Open human tasks by candidate role (a task offered to two roles counts for each; an
    /// assigned task without roles counts as `(assigned)`), optionally of one process; with how
    /// many are past their due time: labels `[process, role]`, count, and overdue in a second list.
    fn open_tasks_by_role(
        &self,
        process: Option<&str>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<(GroupCount, i64)>, Error>> + Send;

    /// Whether the database answers, at the cost of a statement that reads no table: what a
    /// health probe asks every few seconds.
    fn ping(&self) -> impl Future<Output = Result<(), Error>> + Send;

    /// Every accepted event so far.
    fn event_count(&self) -> impl Future<Output = Result<i64, Error>> + Send;

    /// Open incidents by process: labels `[process]`.
    fn open_incident_counts(&self) -> impl Future<Output = Result<Vec<GroupCount>, Error>> + Send;

    /// Start and end of the completed instances of `process`, for cycle times, oldest first.
    fn cycles(&self, process: &str) -> impl Future<Output = Result<Vec<Cycle>, Error>> + Send;

    /// Human tasks that missed their due time, by process: still open past it at `now`, or
    /// completed after it. Labels `[process]`.
    fn sla_breaches(
        &self,
        process: Option<&str>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<GroupCount>, Error>> + Send;

    /// Open jobs (ready, locked or stuck on an incident), in due order: all, or one instance's.
    fn open_jobs(&self, instance: Option<&str>) -> impl Future<Output = Result<Vec<OpenJob>, Error>> + Send;

    /// Messages buffered for a subscription that does not exist yet and still alive at `now`, as
    /// (name, correlation key), oldest first.
    fn buffered_messages(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<(String, String)>, Error>> + Send;

    /// Notifications, newest first: all, or those in `state` (`pending`, `delivered`, `dead`).
    fn notifications(
        &self,
        state: Option<&str>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<Notification>, Error>> + Send;

    /// Notifications of one of `kinds`, newest first: all, or those in `state`.
    fn notifications_of(
        &self,
        kinds: &[String],
        state: Option<&str>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<Notification>, Error>> + Send;
}

/// Notifications whose kind is one of `$3`.
const KIND_IN: Each = Each { sqlite: "kind IN (SELECT value FROM json_each($3))", postgres: "kind = ANY($3)" };

const DEPLOYMENTS: &str = "SELECT d.process_key, d.version, d.hash, d.deployed_at, m.versions FROM deployments d \
     JOIN (SELECT process_key, MAX(version) AS latest, COUNT(*) AS versions FROM deployments GROUP BY process_key) m \
     ON m.process_key = d.process_key AND m.latest = d.version";

const DEPLOYMENT_VERSIONS: &str =
    "SELECT version, hash, deployed_at FROM deployments WHERE process_key = $1 ORDER BY version";

const LATEST_SOURCES: &str = "SELECT d.process_key, d.source FROM deployments d WHERE d.version = \
     (SELECT MAX(version) FROM deployments m WHERE m.process_key = d.process_key)";

const INSTANCE_COLUMNS: &str =
    "SELECT id, process_key, process_version, status, business_key, parent_id, created_at, updated_at FROM instances";

const HISTORY_HEADS: &str =
    "SELECT id, history_seq, history_hash FROM instances WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2";

const INCIDENTS: &str = "SELECT c.id, c.instance_id, i.process_key, c.node, c.job_id, c.message, c.state, c.raised_at \
     FROM incidents c JOIN instances i ON i.id = c.instance_id";

/// ` WHERE` and the conditions of the filters given (`column = $N`, numbered from 1 as `args`
/// grows), or nothing. A filter not given is left out of the text rather than written as
/// `$N IS NULL OR column = $N`: PostgreSQL plans a prepared statement once for every value, and
/// that plan reads the whole table whether a filter is given or not.
fn filters<'a>(given: &[(&str, Option<&'a str>)], args: &mut Vec<Arg<'a>>) -> String {
    let mut conditions = Vec::new();
    for (column, value) in given {
        if let Some(value) = value {
            args.push(Arg::Text(Some(value)));
            conditions.push(format!("{column} = ${}", args.len()));
        }
    }
    if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) }
}

/// Open jobs, of every instance or (with ` AND instance_id = $1`) of one: two statements, as one
/// for both (`$1 IS NULL OR ...`) would be planned once for both on PostgreSQL, as a scan of
/// every job, and kept so for every instance's page.
macro_rules! open_jobs {
    ($of:literal) => {
        concat!(
            "SELECT id, instance_id, node, job_type, input, idempotency_key, attempt, state, due_at \
             FROM jobs WHERE state IN ('ready', 'locked', 'incident')",
            $of
        )
    };
}
const OPEN_JOBS: &str = open_jobs!("");
const OPEN_JOBS_OF: &str = open_jobs!(" AND instance_id = $1");

const BUFFERED_MESSAGES: &str = "SELECT message_name, correlation_key FROM messages \
     WHERE state = 'buffered' AND expires_at > $1 ORDER BY seq";

/// A job due as a fetch sees it at `$2` (ready and due, or leased with the lease run out) whose
/// type passes `$types`. PostgreSQL's text is in the terms of its `jobs_due` index, and reads it
/// from the node's floor `$3` up (the empty text for all; see `postgres::floor`).
macro_rules! due_jobs {
    (sqlite, $types:literal) => {
        concat!(
            "SELECT 1 AS one FROM jobs WHERE ((state = 'ready' AND due_at <= $2) OR (state = 'locked' \
             AND lock_expires_at <= $2)) AND ",
            $types,
            " LIMIT 1"
        )
    };
    (postgres, $types:literal) => {
        concat!(
            "SELECT 1 AS one FROM jobs WHERE state IN ('ready', 'locked') AND ",
            pg_due_at!(),
            " <= $2 AND ",
            pg_due_at!(),
            " >= $3 AND ",
            $types,
            " LIMIT 1"
        )
    };
}

/// Exact job types ($1: the types). On PostgreSQL each type is looked up in `jobs_due` by type and
/// due time: with `job_type = ANY($1)`, the plan cached on a new database read every due job of
/// every type through `jobs_due_at` and filtered the types. The due time is compared as a row with
/// the type, which only `jobs_due` (type first) can serve: as a plain `<=` it is `jobs_due_at`'s
/// key too, and on an empty table the planner took that one. The index is read backwards, from
/// now: its older entries are mostly dead (the earlier versions of claimed and finished jobs,
/// until a vacuum), and a type with a job due finds it before them. A type with none due steps
/// over them down to the node's floor (`$3`), a plain comparison: as a row comparison only its
/// type would end the scan, which then read every older entry of the type (0.75 ms and about
/// 300 buffers a call late in the order-to-cash run).
pub(super) const HAS_DUE_JOBS: Each = Each {
    sqlite: due_jobs!(sqlite, "job_type IN (SELECT value FROM json_each($1))"),
    postgres: concat!(
        "SELECT 1 AS one FROM unnest($1::text[]) AS t(job_type) CROSS JOIN LATERAL (SELECT 1 FROM jobs \
         WHERE jobs.job_type = t.job_type AND state IN ('ready', 'locked') AND (jobs.job_type, ",
        pg_due_at!(),
        ") <= (t.job_type, $2) AND ",
        pg_due_at!(),
        " >= $3 ORDER BY jobs.job_type DESC, ",
        pg_due_at!(),
        " DESC LIMIT 1) AS j LIMIT 1"
    ),
};

/// Job-type patterns ($1: GLOB patterns on SQLite, LIKE patterns on PostgreSQL).
const HAS_DUE_JOBS_MATCHING: Each = Each {
    sqlite: due_jobs!(sqlite, "EXISTS (SELECT 1 FROM json_each($1) WHERE jobs.job_type GLOB value)"),
    postgres: due_jobs!(postgres, "job_type LIKE ANY($1)"),
};

const NEXT_READY_JOB: Each = Each {
    sqlite: "SELECT MIN(due_at) AS due FROM jobs WHERE state = 'ready' \
             AND job_type IN (SELECT value FROM json_each($1))",
    postgres: "SELECT MIN(due_at) AS due FROM jobs WHERE state = 'ready' AND job_type = ANY($1)",
};

const INSTANCE_COUNTS: &str = "SELECT process_key, status, COUNT(*) AS n FROM instances GROUP BY process_key, status";

const JOB_COUNTS: &str = "SELECT job_type, \
     CASE WHEN state = 'locked' AND lock_expires_at <= $1 THEN 'expired' ELSE state END AS job_state, \
     COUNT(*) AS n FROM jobs GROUP BY job_type, job_state";

const TIMER_STATS: &str = "SELECT COUNT(*) AS pending, COUNT(*) FILTER (WHERE due_at <= $1) AS due, \
     COUNT(*) FILTER (WHERE due_at <= $2) AS late, MIN(due_at) AS oldest FROM timers";

/// A task offered to several roles is one row per role; one without roles, one row.
const OPEN_TASKS_BY_ROLE: Each = Each {
    sqlite: "SELECT i.process_key, COALESCE(r.value, '(assigned)') AS role, COUNT(*) AS n, \
             COUNT(*) FILTER (WHERE t.due_at < $2) AS overdue \
             FROM tasks t JOIN instances i ON i.id = t.instance_id LEFT JOIN json_each(t.roles) r \
             WHERE t.state = 'open' AND ($1 IS NULL OR i.process_key = $1) \
             GROUP BY i.process_key, COALESCE(r.value, '(assigned)')",
    postgres: "SELECT i.process_key, COALESCE(r.value, '(assigned)') AS role, COUNT(*) AS n, \
               COUNT(*) FILTER (WHERE t.due_at < $2) AS overdue \
               FROM tasks t JOIN instances i ON i.id = t.instance_id \
               LEFT JOIN LATERAL jsonb_array_elements_text(t.roles::jsonb) AS r(value) ON true \
               WHERE t.state = 'open' AND ($1 IS NULL OR i.process_key = $1) \
               GROUP BY i.process_key, COALESCE(r.value, '(assigned)')",
};

/// The event log only grows: SQLite's highest row id counts it without a scan.
const EVENT_COUNT: Each =
    Each { sqlite: "SELECT COALESCE(MAX(rowid), 0) AS n FROM events", postgres: "SELECT COUNT(*) AS n FROM events" };

const OPEN_INCIDENT_COUNTS: &str = "SELECT i.process_key, COUNT(*) AS n FROM incidents c \
     JOIN instances i ON i.id = c.instance_id WHERE c.state = 'open' GROUP BY i.process_key";

const CYCLES: &str = "SELECT created_at, updated_at FROM instances WHERE process_key = $1 AND status = 'completed' \
     ORDER BY created_at, id";

/// A completed task breached when its completion event came after its due time.
macro_rules! sla_breaches {
    ($event:literal, $task:literal) => {
        concat!(
            "SELECT i.process_key, COUNT(*) AS n FROM tasks t JOIN instances i ON i.id = t.instance_id \
             WHERE t.due_at IS NOT NULL AND ($1 IS NULL OR i.process_key = $1) AND ( \
               (t.state = 'open' AND t.due_at < $2) \
               OR (t.state = 'completed' AND EXISTS (SELECT 1 FROM events e WHERE e.instance_id = t.instance_id \
                   AND e.at > t.due_at AND ",
            $event,
            " = 'task_completed' AND ",
            $task,
            " = t.id))) GROUP BY i.process_key"
        )
    };
}

const SLA_BREACHES: Each = Each {
    sqlite: sla_breaches!("json_extract(e.event, '$.event')", "json_extract(e.event, '$.task')"),
    postgres: sla_breaches!("(e.event::jsonb ->> 'event')", "(e.event::jsonb ->> 'task')"),
};

/// The instances a user took part in: named in a step's history entries (`events.people`, a JSON
/// array searched for the name as a JSON string, `$3`), or holding, having completed or being
/// offered (by role) one of its tasks.
macro_rules! participations {
    ($named:literal, $by_role:literal) => {
        concat!(
            "SELECT instance_id FROM events WHERE ",
            $named,
            " UNION SELECT instance_id FROM tasks WHERE assignee = $1 OR claimed_by = $1 OR completed_by = $1 \
             UNION SELECT t.instance_id FROM tasks t WHERE ",
            $by_role
        )
    };
}

const PARTICIPATIONS: Each = Each {
    sqlite: participations!(
        "instr(people, $3) > 0",
        "EXISTS (SELECT 1 FROM json_each(t.roles) r WHERE r.value IN (SELECT value FROM json_each($2)))"
    ),
    postgres: participations!(
        "strpos(people, $3) > 0",
        "EXISTS (SELECT 1 FROM jsonb_array_elements_text(t.roles::jsonb) r WHERE r = ANY($2))"
    ),
};

impl<R: Reader> Queries for R {
    async fn participations(&self, user: &str, roles: &[String]) -> Result<Vec<String>, Error> {
        let key = person_key(user);
        let args = vec![Arg::Text(Some(user)), Arg::Texts(roles.to_vec()), Arg::Text(Some(&key))];
        let rows = self.rows(PARTICIPATIONS.pick(self), args).await?;
        let mut ids = rows.iter().map(|r| r.text("instance_id")).collect::<Result<Vec<_>, Error>>()?;
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    async fn deployments(&self) -> Result<Vec<DeploymentSummary>, Error> {
        let rows = self.rows(DEPLOYMENTS, vec![]).await?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(DeploymentSummary {
                    key: r.text("process_key")?,
                    version: r.version("version")?,
                    hash: r.text("hash")?,
                    deployed_at: r.timestamp("deployed_at")?,
                    versions: count_u32(r, "versions")?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn deployment_versions(&self, key: &str) -> Result<Vec<VersionSummary>, Error> {
        let rows = self.rows(DEPLOYMENT_VERSIONS, vec![Arg::Text(Some(key))]).await?;
        rows.iter()
            .map(|r| {
                Ok(VersionSummary {
                    version: r.version("version")?,
                    hash: r.text("hash")?,
                    deployed_at: r.timestamp("deployed_at")?,
                })
            })
            .collect()
    }

    async fn latest_sources(&self) -> Result<Vec<(String, String)>, Error> {
        let rows = self.rows(LATEST_SOURCES, vec![]).await?;
        let mut out =
            rows.iter().map(|r| Ok((r.text("process_key")?, r.text("source")?))).collect::<Result<Vec<_>, Error>>()?;
        out.sort();
        Ok(out)
    }

    async fn instances(
        &self,
        process: Option<&str>,
        status: Option<&str>,
        business_key: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<InstanceSummary>, Error> {
        let mut args = Vec::new();
        let filter =
            filters(&[("process_key", process), ("status", status), ("business_key", business_key)], &mut args);
        args.extend([Arg::Int(limit.max(0)), Arg::Int(offset.max(0))]);
        let (limit_at, offset_at) = (args.len() - 1, args.len());
        // Both columns are byte-ordered on PostgreSQL too ("C"), so the page is cut in SQL.
        let sql = format!(
            "{INSTANCE_COLUMNS}{filter} ORDER BY created_at DESC, id DESC LIMIT ${limit_at} OFFSET ${offset_at}"
        );
        self.rows(&sql, args).await?.iter().map(instance_summary).collect()
    }

    async fn instance_summary(&self, id: &str) -> Result<Option<InstanceSummary>, Error> {
        let rows = self.rows(&format!("{INSTANCE_COLUMNS} WHERE id = $1"), vec![Arg::Text(Some(id))]).await?;
        rows.first().map(instance_summary).transpose()
    }

    async fn history_heads(&self, after: Option<&str>, limit: i64) -> Result<Vec<(String, i64, String)>, Error> {
        let rows = self.rows(HISTORY_HEADS, vec![Arg::Text(after), Arg::Int(limit.max(0))]).await?;
        rows.iter().map(|r| Ok((r.text("id")?, r.int("history_seq")?, r.text("history_hash")?))).collect()
    }

    async fn incidents(&self, all: bool, instance: Option<&str>) -> Result<Vec<IncidentSummary>, Error> {
        let mut args = Vec::new();
        let open = if all { None } else { Some("open") };
        let filter = filters(&[("c.state", open), ("c.instance_id", instance)], &mut args);
        let rows = self.rows(&format!("{INCIDENTS}{filter}"), args).await?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(IncidentSummary {
                    id: IncidentId::from(r.text("id")?),
                    instance_id: InstanceId::from(r.text("instance_id")?),
                    process_key: r.text("process_key")?,
                    node: r.text("node")?,
                    job_id: r.opt_text("job_id")?.map(JobId::from),
                    message: r.text("message")?,
                    state: r.text("state")?.parse()?,
                    raised_at: r.timestamp("raised_at")?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        out.sort_by(|a, b| (a.raised_at, &a.id).cmp(&(b.raised_at, &b.id)));
        Ok(out)
    }

    async fn open_jobs(&self, instance: Option<&str>) -> Result<Vec<OpenJob>, Error> {
        let rows = match instance {
            Some(id) => self.rows(OPEN_JOBS_OF, vec![Arg::Text(Some(id))]).await?,
            None => self.rows(OPEN_JOBS, vec![]).await?,
        };
        let mut out = rows
            .iter()
            .map(|r| {
                let input = r.text("input")?;
                Ok(OpenJob {
                    id: JobId::from(r.text("id")?),
                    instance_id: InstanceId::from(r.text("instance_id")?),
                    node: r.text("node")?,
                    job_type: r.text("job_type")?,
                    input: serde_json::from_str(&input).map_err(|e| Error::Corrupt(format!("job input: {e}")))?,
                    idempotency_key: r.text("idempotency_key")?,
                    attempt: r.version("attempt")?,
                    state: r.text("state")?.parse()?,
                    due_at: r.timestamp("due_at")?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        // Ids end in a counter (`.job.9` before `.job.10`): order by due time, then id length.
        out.sort_by(|a, b| (a.due_at, a.id.as_str().len(), &a.id).cmp(&(b.due_at, b.id.as_str().len(), &b.id)));
        Ok(out)
    }

    async fn buffered_messages(&self, now: DateTime<Utc>) -> Result<Vec<(String, String)>, Error> {
        let now = ts(now);
        let rows = self.rows(BUFFERED_MESSAGES, vec![Arg::Text(Some(&now))]).await?;
        rows.iter().map(|r| Ok((r.text("message_name")?, r.text("correlation_key")?))).collect()
    }

    async fn has_due_jobs(&self, job_types: &[String], now: DateTime<Utc>) -> Result<bool, Error> {
        let wildcard = job_types.iter().any(|t| t.contains('*'));
        let (sql, types) = if wildcard {
            let patterns = match self.dialect() {
                Dialect::Sqlite => job_types.iter().map(|t| super::sqlite::glob_pattern(t)).collect(),
                Dialect::Postgres => job_types.iter().map(|t| super::postgres::like_pattern(t)).collect(),
            };
            (HAS_DUE_JOBS_MATCHING.pick(self), patterns)
        } else {
            (HAS_DUE_JOBS.pick(self), job_types.to_vec())
        };
        let floor = self.due_floor(job_types, now);
        let (since, at) = (floor.map(ts).unwrap_or_default(), ts(now));
        let mut args = vec![Arg::Texts(types), Arg::Text(Some(&at))];
        if self.dialect() == Dialect::Postgres {
            args.push(Arg::Text(Some(&since)));
        }
        let due = !self.rows(sql, args).await?.is_empty();
        if !due {
            self.saw_nothing_due(job_types, now, floor.is_none());
        }
        Ok(due)
    }

    async fn next_ready_job(&self, job_types: &[String]) -> Result<Option<DateTime<Utc>>, Error> {
        let rows = self.rows(NEXT_READY_JOB.pick(self), vec![Arg::Texts(job_types.to_vec())]).await?;
        match rows.first() {
            Some(row) => row.opt_text("due")?.as_deref().map(parse_ts).transpose(),
            None => Ok(None),
        }
    }

    async fn instance_counts(&self) -> Result<Vec<GroupCount>, Error> {
        groups(&self.rows(INSTANCE_COUNTS, vec![]).await?, &["process_key", "status"])
    }

    async fn job_counts(&self, now: DateTime<Utc>) -> Result<Vec<GroupCount>, Error> {
        let now = ts(now);
        groups(&self.rows(JOB_COUNTS, vec![Arg::Text(Some(&now))]).await?, &["job_type", "job_state"])
    }

    async fn timer_stats(&self, now: DateTime<Utc>, late_before: DateTime<Utc>) -> Result<TimerStats, Error> {
        let (now, late_before) = (ts(now), ts(late_before));
        let rows = self.rows(TIMER_STATS, vec![Arg::Text(Some(&now)), Arg::Text(Some(&late_before))]).await?;
        let Some(row) = rows.first() else { return Ok(TimerStats::default()) };
        let due = row.int("due")?;
        Ok(TimerStats {
            pending: row.int("pending")?,
            due,
            late: row.int("late")?,
            // The oldest timer is due exactly when some timer is.
            oldest_due: if due > 0 { row.opt_timestamp("oldest")? } else { None },
        })
    }

    async fn open_tasks_by_role(
        &self,
        process: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(GroupCount, i64)>, Error> {
        let now = ts(now);
        let rows = self.rows(OPEN_TASKS_BY_ROLE.pick(self), vec![Arg::Text(process), Arg::Text(Some(&now))]).await?;
        let mut out = rows
            .iter()
            .map(|r| {
                let labels = vec![r.text("process_key")?, r.text("role")?];
                Ok((GroupCount { labels, count: r.int("n")? }, r.int("overdue")?))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        out.sort_by(|a, b| a.0.labels.cmp(&b.0.labels));
        Ok(out)
    }

    async fn ping(&self) -> Result<(), Error> {
        self.rows("SELECT 1 AS n", vec![]).await.map(|_| ())
    }

    async fn event_count(&self) -> Result<i64, Error> {
        let rows = self.rows(EVENT_COUNT.pick(self), vec![]).await?;
        rows.first().map_or(Ok(0), |r| r.int("n"))
    }

    async fn open_incident_counts(&self) -> Result<Vec<GroupCount>, Error> {
        groups(&self.rows(OPEN_INCIDENT_COUNTS, vec![]).await?, &["process_key"])
    }

    async fn cycles(&self, process: &str) -> Result<Vec<Cycle>, Error> {
        let rows = self.rows(CYCLES, vec![Arg::Text(Some(process))]).await?;
        rows.iter()
            .map(|r| Ok(Cycle { started: r.timestamp("created_at")?, ended: r.timestamp("updated_at")? }))
            .collect()
    }

    async fn sla_breaches(&self, process: Option<&str>, now: DateTime<Utc>) -> Result<Vec<GroupCount>, Error> {
        let now = ts(now);
        let rows = self.rows(SLA_BREACHES.pick(self), vec![Arg::Text(process), Arg::Text(Some(&now))]).await?;
        groups(&rows, &["process_key"])
    }

    async fn notifications(&self, state: Option<&str>, limit: i64) -> Result<Vec<Notification>, Error> {
        let sql = format!(
            "{NOTIFICATION_COLUMNS} WHERE ($1 IS NULL OR state = $1) ORDER BY created_at DESC, id DESC LIMIT $2"
        );
        self.rows(&sql, vec![Arg::Text(state), Arg::Int(limit.max(0))]).await?.iter().map(rows::notification).collect()
    }

    async fn notifications_of(
        &self,
        kinds: &[String],
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Notification>, Error> {
        let sql = format!(
            "{NOTIFICATION_COLUMNS} WHERE ($1 IS NULL OR state = $1) AND {} ORDER BY created_at DESC, id DESC LIMIT $2",
            KIND_IN.pick(self)
        );
        let args = vec![Arg::Text(state), Arg::Int(limit.max(0)), Arg::Texts(kinds.to_vec())];
        self.rows(&sql, args).await?.iter().map(rows::notification).collect()
    }
}

/// A COUNT column that must fit a `u32`.
fn count_u32(row: &impl Columns, col: &str) -> Result<u32, Error> {
    let n = row.int(col)?;
    u32::try_from(n).map_err(|_| Error::Corrupt(format!("{col} {n}")))
}

/// Group counts: the `labels` columns and the count `n`, sorted by labels.
fn groups(rows: &[impl Columns], labels: &[&str]) -> Result<Vec<GroupCount>, Error> {
    let mut out = rows
        .iter()
        .map(|r| {
            let labels = labels.iter().map(|l| r.text(l)).collect::<Result<Vec<_>, Error>>()?;
            Ok(GroupCount { labels, count: r.int("n")? })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}

fn instance_summary(r: &impl Columns) -> Result<InstanceSummary, Error> {
    Ok(InstanceSummary {
        id: InstanceId::from(r.text("id")?),
        process_key: r.text("process_key")?,
        process_version: r.version("process_version")?,
        status: r.text("status")?.parse()?,
        business_key: r.opt_text("business_key")?,
        parent_id: r.opt_text("parent_id")?.map(InstanceId::from),
        created_at: r.timestamp("created_at")?,
        updated_at: r.timestamp("updated_at")?,
    })
}
