//! Read-only SQL queries of the SQLite store (listings and reports).
//!
//! They run on the read pool ([`SqliteStore::reader`]), never on the writer, so an operator's
//! listing or a metrics scrape does not hold up the steps of running instances.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Error, SqliteStore, parse_ts, ts};

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
    pub id: String,
    /// The process key.
    pub process_key: String,
    /// The deployed version it runs.
    pub process_version: u32,
    /// created / running / completed / failed / cancelled.
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

/// An incident as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentSummary {
    /// The id.
    pub id: String,
    /// The instance.
    pub instance_id: String,
    /// The instance's process key.
    pub process_key: String,
    /// The node it is stuck at.
    pub node: String,
    /// The job that ran out of retries, if any.
    pub job_id: Option<String>,
    /// What went wrong.
    pub message: String,
    /// open / resolved.
    pub state: String,
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

fn time(row: &sqlx::sqlite::SqliteRow, column: &str) -> Result<DateTime<Utc>, Error> {
    parse_ts(&row.try_get::<String, _>(column)?)
}

fn groups(rows: &[sqlx::sqlite::SqliteRow], labels: usize) -> Result<Vec<GroupCount>, Error> {
    rows.iter()
        .map(|r| {
            let count = r.try_get(labels)?;
            let labels = (0..labels).map(|i| r.try_get::<String, _>(i)).collect::<Result<Vec<_>, _>>()?;
            Ok(GroupCount { labels, count })
        })
        .collect()
}

impl SqliteStore {
    /// The latest deployment of every process key, by key.
    pub async fn deployments(&self) -> Result<Vec<DeploymentSummary>, Error> {
        let rows = sqlx::query(
            "SELECT d.process_key, d.version, d.hash, d.deployed_at, m.versions FROM deployments d \
             JOIN (SELECT process_key, MAX(version) AS latest, COUNT(*) AS versions FROM deployments \
                   GROUP BY process_key) m ON m.process_key = d.process_key AND m.latest = d.version \
             ORDER BY d.process_key",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeploymentSummary {
                    key: r.try_get("process_key")?,
                    version: r.try_get("version")?,
                    hash: r.try_get("hash")?,
                    deployed_at: time(r, "deployed_at")?,
                    versions: r.try_get("versions")?,
                })
            })
            .collect()
    }

    /// Every deployed version of a process, oldest first (empty for an unknown key).
    pub async fn deployment_versions(&self, key: &str) -> Result<Vec<VersionSummary>, Error> {
        let rows =
            sqlx::query("SELECT version, hash, deployed_at FROM deployments WHERE process_key = ?1 ORDER BY version")
                .bind(key)
                .fetch_all(self.reader())
                .await?;
        rows.iter()
            .map(|r| {
                Ok(VersionSummary {
                    version: r.try_get("version")?,
                    hash: r.try_get("hash")?,
                    deployed_at: time(r, "deployed_at")?,
                })
            })
            .collect()
    }

    /// The latest deployment's source of every process key: (key, source), by key.
    pub async fn latest_sources(&self) -> Result<Vec<(String, String)>, Error> {
        let rows = sqlx::query(
            "SELECT d.process_key, d.source FROM deployments d WHERE d.version = \
             (SELECT MAX(version) FROM deployments m WHERE m.process_key = d.process_key) ORDER BY d.process_key",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(|r| Ok((r.try_get("process_key")?, r.try_get("source")?))).collect()
    }

    /// Instances matching every filter given, newest first, at most `limit` after skipping
    /// `offset`.
    pub async fn instances(
        &self,
        process: Option<&str>,
        status: Option<&str>,
        business_key: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<InstanceSummary>, Error> {
        let rows = sqlx::query(
            "SELECT id, process_key, process_version, status, business_key, parent_id, created_at, updated_at \
             FROM instances WHERE (?1 IS NULL OR process_key = ?1) AND (?2 IS NULL OR status = ?2) \
             AND (?3 IS NULL OR business_key = ?3) ORDER BY created_at DESC, id DESC LIMIT ?4 OFFSET ?5",
        )
        .bind(process)
        .bind(status)
        .bind(business_key)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(instance_summary).collect()
    }

    /// One instance as listed.
    pub async fn instance_summary(&self, id: &str) -> Result<Option<InstanceSummary>, Error> {
        let row = sqlx::query(
            "SELECT id, process_key, process_version, status, business_key, parent_id, created_at, updated_at \
             FROM instances WHERE id = ?1",
        )
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(instance_summary).transpose()
    }

    /// Instance ids with their recorded history head (seq, hash), in id order after `after`:
    /// pages for a full audit.
    pub async fn history_heads(&self, after: Option<&str>, limit: i64) -> Result<Vec<(String, i64, String)>, Error> {
        let rows = sqlx::query(
            "SELECT id, history_seq, history_hash FROM instances WHERE (?1 IS NULL OR id > ?1) ORDER BY id LIMIT ?2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(|r| Ok((r.try_get("id")?, r.try_get("history_seq")?, r.try_get("history_hash")?))).collect()
    }

    /// Incidents, oldest first; only open ones unless `all`; of one instance when given.
    pub async fn incidents(&self, all: bool, instance: Option<&str>) -> Result<Vec<IncidentSummary>, Error> {
        let rows = sqlx::query(
            "SELECT c.id, c.instance_id, i.process_key, c.node, c.job_id, c.message, c.state, c.raised_at \
             FROM incidents c JOIN instances i ON i.id = c.instance_id \
             WHERE (?1 OR c.state = 'open') AND (?2 IS NULL OR c.instance_id = ?2) ORDER BY c.raised_at, c.id",
        )
        .bind(all)
        .bind(instance)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(IncidentSummary {
                    id: r.try_get("id")?,
                    instance_id: r.try_get("instance_id")?,
                    process_key: r.try_get("process_key")?,
                    node: r.try_get("node")?,
                    job_id: r.try_get("job_id")?,
                    message: r.try_get("message")?,
                    state: r.try_get("state")?,
                    raised_at: time(r, "raised_at")?,
                })
            })
            .collect()
    }

    /// True when a job of one of `job_types` could be locked at `now` (ready and due, or its
    /// lease ran out); a type may be a pattern with `*`. A cheap check before a fetch, which
    /// writes.
    pub async fn has_due_jobs(&self, job_types: &[String], now: DateTime<Utc>) -> Result<bool, Error> {
        let wildcard = job_types.iter().any(|t| t.contains('*'));
        let sql = if wildcard {
            "SELECT 1 FROM jobs WHERE ((state = 'ready' AND due_at <= ?2) OR (state = 'locked' AND lock_expires_at <= ?2)) \
             AND EXISTS (SELECT 1 FROM json_each(?1) WHERE jobs.job_type GLOB value) LIMIT 1"
        } else {
            "SELECT 1 FROM jobs WHERE ((state = 'ready' AND due_at <= ?2) OR (state = 'locked' AND lock_expires_at <= ?2)) \
             AND job_type IN (SELECT value FROM json_each(?1)) LIMIT 1"
        };
        let patterns: Vec<String> = if wildcard {
            // GLOB's other specials match literally, as in a fetch.
            job_types.iter().map(|t| t.replace('[', "[[]").replace('?', "[?]")).collect()
        } else {
            job_types.to_vec()
        };
        let row = sqlx::query(sql)
            .bind(serde_json::to_string(&patterns)?)
            .bind(ts(now))
            .fetch_optional(self.reader())
            .await?;
        Ok(row.is_some())
    }

    /// Instances by process and status: labels `[process, status]`.
    pub async fn instance_counts(&self) -> Result<Vec<GroupCount>, Error> {
        let rows = sqlx::query(
            "SELECT process_key, status, COUNT(*) FROM instances GROUP BY process_key, status \
             ORDER BY process_key, status",
        )
        .fetch_all(self.reader())
        .await?;
        groups(&rows, 2)
    }

    /// Jobs by type and state, leases run out counted as `expired`: labels `[job_type, state]`.
    pub async fn job_counts(&self, now: DateTime<Utc>) -> Result<Vec<GroupCount>, Error> {
        let rows = sqlx::query(
            "SELECT job_type, CASE WHEN state = 'locked' AND lock_expires_at <= ?1 THEN 'expired' ELSE state END AS s, \
             COUNT(*) FROM jobs GROUP BY job_type, s ORDER BY job_type, s",
        )
        .bind(ts(now))
        .fetch_all(self.reader())
        .await?;
        groups(&rows, 2)
    }

    /// Pending, due and late timers; late means due before `late_before`.
    pub async fn timer_stats(&self, now: DateTime<Utc>, late_before: DateTime<Utc>) -> Result<TimerStats, Error> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS pending, COALESCE(SUM(due_at <= ?1), 0) AS due, COALESCE(SUM(due_at <= ?2), 0) AS late, \
             MIN(due_at) AS oldest FROM timers",
        )
        .bind(ts(now))
        .bind(ts(late_before))
        .fetch_one(self.reader())
        .await?;
        let due: i64 = row.try_get("due")?;
        let oldest: Option<String> = row.try_get("oldest")?;
        Ok(TimerStats {
            pending: row.try_get("pending")?,
            due,
            late: row.try_get("late")?,
            oldest_due: if due > 0 { oldest.as_deref().map(parse_ts).transpose()? } else { None },
        })
    }

    /// Open human tasks by candidate role (a task offered to two roles counts for each; an
    /// assigned task without roles counts as `(assigned)`), optionally of one process; with how
    /// many are past their due time: labels `[process, role]`, count, and overdue in a second list.
    pub async fn open_tasks_by_role(
        &self,
        process: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(GroupCount, i64)>, Error> {
        let rows = sqlx::query(
            "SELECT i.process_key, COALESCE(r.value, '(assigned)') AS role, COUNT(*) AS n, \
             COALESCE(SUM(t.due_at IS NOT NULL AND t.due_at < ?2), 0) AS overdue \
             FROM tasks t JOIN instances i ON i.id = t.instance_id \
             LEFT JOIN json_each(t.roles) r \
             WHERE t.state = 'open' AND (?1 IS NULL OR i.process_key = ?1) \
             GROUP BY i.process_key, role ORDER BY i.process_key, role",
        )
        .bind(process)
        .bind(ts(now))
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    GroupCount { labels: vec![r.try_get("process_key")?, r.try_get("role")?], count: r.try_get("n")? },
                    r.try_get("overdue")?,
                ))
            })
            .collect()
    }

    /// Every accepted event so far (the event log only grows, so its highest row id counts it).
    pub async fn event_count(&self) -> Result<i64, Error> {
        let row = sqlx::query("SELECT COALESCE(MAX(rowid), 0) AS n FROM events").fetch_one(self.reader()).await?;
        Ok(row.try_get("n")?)
    }

    /// Open incidents by process: labels `[process]`.
    pub async fn open_incident_counts(&self) -> Result<Vec<GroupCount>, Error> {
        let rows = sqlx::query(
            "SELECT i.process_key, COUNT(*) FROM incidents c JOIN instances i ON i.id = c.instance_id \
             WHERE c.state = 'open' GROUP BY i.process_key ORDER BY i.process_key",
        )
        .fetch_all(self.reader())
        .await?;
        groups(&rows, 1)
    }

    /// Start and end of the completed instances of `process`, for cycle times.
    pub async fn cycles(&self, process: &str) -> Result<Vec<Cycle>, Error> {
        let rows =
            sqlx::query("SELECT created_at, updated_at FROM instances WHERE process_key = ?1 AND status = 'completed'")
                .bind(process)
                .fetch_all(self.reader())
                .await?;
        rows.iter().map(|r| Ok(Cycle { started: time(r, "created_at")?, ended: time(r, "updated_at")? })).collect()
    }

    /// Human tasks that missed their due time, by process: still open past it at `now`, or
    /// completed after it. Labels `[process]`.
    pub async fn sla_breaches(&self, process: Option<&str>, now: DateTime<Utc>) -> Result<Vec<GroupCount>, Error> {
        let rows = sqlx::query(
            "SELECT i.process_key, COUNT(*) FROM tasks t JOIN instances i ON i.id = t.instance_id \
             WHERE t.due_at IS NOT NULL AND (?1 IS NULL OR i.process_key = ?1) AND ( \
               (t.state = 'open' AND t.due_at < ?2) \
               OR (t.state = 'completed' AND EXISTS (SELECT 1 FROM events e WHERE e.instance_id = t.instance_id \
                   AND e.at > t.due_at AND json_extract(e.event, '$.event') = 'task_completed' \
                   AND json_extract(e.event, '$.task') = t.id))) \
             GROUP BY i.process_key ORDER BY i.process_key",
        )
        .bind(process)
        .bind(ts(now))
        .fetch_all(self.reader())
        .await?;
        groups(&rows, 1)
    }
}

fn instance_summary(r: &sqlx::sqlite::SqliteRow) -> Result<InstanceSummary, Error> {
    Ok(InstanceSummary {
        id: r.try_get("id")?,
        process_key: r.try_get("process_key")?,
        process_version: r.try_get("process_version")?,
        status: r.try_get("status")?,
        business_key: r.try_get("business_key")?,
        parent_id: r.try_get("parent_id")?,
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
    })
}
