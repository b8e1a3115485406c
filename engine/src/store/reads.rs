//! The [`Store`] of every backend: its reads written once over the dialect layer, and the few
//! parts a backend must supply itself ([`Backend`]).

use std::future::Future;

use chrono::{DateTime, Utc};

use super::rows::{self, Columns, TASK_COLUMNS};
use super::sql::{Arg, Each, Reader, first_instant};
use crate::ids::{IncidentId, InstanceId, JobId, SubscriptionId, TaskId, TimerId};

use super::{
    BufferedMessage, DeploymentRow, Error, HistoryRow, InstanceRow, JobInfo, PendingRow, Store, Substitution, TaskInfo,
    Write, WriteError, WriteOutcome, ts,
};

/// What a store does its own way: the group commit, and timers (PostgreSQL claims a due timer
/// for one node so that several engine nodes never fire it twice; SQLite has one engine).
pub(super) trait Backend: Reader + Clone + Send + Sync + 'static {
    /// Applies `batch` in one transaction (see [`Store::write`]).
    fn commit(&self, batch: Vec<Write>) -> impl Future<Output = Vec<Result<WriteOutcome, WriteError>>> + Send;
    /// The timers due at `now`, at most `limit`, oldest first (see [`Store::due_timers`]).
    fn take_due_timers(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<(String, String)>, Error>> + Send;
    /// When the next timer may be taken (see [`Store::next_timer`]).
    fn next_takeable_timer(&self) -> impl Future<Output = Result<Option<DateTime<Utc>>, Error>> + Send;
}

/// Due timers (due time, id, instance) as `(id, instance)` in the order they fire: by due time,
/// and timers due together by their creation (an id's counter, `{instance}.timer.{n}`, so
/// `.timer.9` before `.timer.10`), as the in-memory engine fires them.
pub(super) fn in_firing_order(mut due: Vec<(String, String, String)>) -> Vec<(String, String)> {
    due.sort_by(|a, b| (&a.0, a.1.len(), &a.1).cmp(&(&b.0, b.1.len(), &b.1)));
    due.into_iter().map(|(_, id, instance)| (id, instance)).collect()
}

/// The columns of an instance row as [`rows::instance`] reads them.
macro_rules! instance_select {
    () => {
        "SELECT id, process_key, process_version, status, business_key, parent_id, parent_call, \
         state, version, history_seq, history_hash, updated_at FROM instances"
    };
}

const INSTANCE: &str = concat!(instance_select!(), " WHERE id = $1");

/// Instances by a list of ids, in no particular order.
const INSTANCES: Each = Each {
    sqlite: concat!(instance_select!(), " WHERE id IN (SELECT value FROM json_each($1))"),
    postgres: concat!(instance_select!(), " WHERE id = ANY($1)"),
};

const DEPLOYMENT_COLUMNS: &str = "SELECT process_key, version, hash, source, compiled, deployed_at FROM deployments";

/// Open tasks offered to one of `$2` (roles), or assigned to or claimed by `$1` (the user) or
/// one of `$3` (whom the user stands in for).
const INBOX_WHERE: Each = Each {
    sqlite: "WHERE state = 'open' AND (EXISTS (SELECT 1 FROM json_each(tasks.roles) r \
             WHERE r.value IN (SELECT value FROM json_each($2))) \
             OR assignee = $1 OR claimed_by = $1 \
             OR assignee IN (SELECT value FROM json_each($3)) OR claimed_by IN (SELECT value FROM json_each($3))) \
             ORDER BY created_at, id",
    postgres: "WHERE state = 'open' AND (EXISTS (SELECT 1 FROM jsonb_array_elements_text(tasks.roles::jsonb) \
               AS r(role) WHERE r.role = ANY($2)) \
               OR assignee = $1 OR claimed_by = $1 OR assignee = ANY($3) OR claimed_by = ANY($3)) \
               ORDER BY created_at, id",
};

/// Subscriptions and pending events in arrival order: SQLite's rowid, PostgreSQL's sequence.
const SUBSCRIPTIONS: Each = Each {
    sqlite: "SELECT id, instance_id FROM subscriptions WHERE message_name = $1 AND correlation_key = $2 \
             ORDER BY rowid",
    postgres: "SELECT id, instance_id FROM subscriptions WHERE message_name = $1 AND correlation_key = $2 \
               ORDER BY seq",
};

const PENDING: Each = Each {
    sqlite: "SELECT id, instance_id, event FROM pending_events ORDER BY rowid LIMIT $1",
    postgres: "SELECT id, instance_id, event FROM pending_events ORDER BY seq LIMIT $1",
};

const BUFFERED_MESSAGE: Each = Each {
    sqlite: "SELECT seq, message_id, payload FROM messages WHERE message_name = $1 AND correlation_key = $2 \
             AND state = 'buffered' AND expires_at > $3 AND seq NOT IN (SELECT value FROM json_each($4)) \
             ORDER BY seq LIMIT 1",
    postgres: "SELECT seq, message_id, payload FROM messages WHERE message_name = $1 AND correlation_key = $2 \
               AND state = 'buffered' AND expires_at > $3 AND seq <> ALL($4) ORDER BY seq LIMIT 1",
};

fn text(value: &str) -> Arg<'_> {
    Arg::Text(Some(value))
}

impl<B: Backend> Store for B {
    fn write(&self, batch: Vec<Write>) -> impl Future<Output = Vec<Result<WriteOutcome, WriteError>>> + Send {
        self.commit(batch)
    }

    async fn load_instance(&self, id: &InstanceId) -> Result<Option<InstanceRow>, Error> {
        self.row(INSTANCE, vec![text(id.as_str())]).await?.as_ref().map(rows::instance).transpose()
    }

    async fn load_instances(&self, ids: &[InstanceId]) -> Result<Vec<InstanceRow>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids.iter().map(|id| id.0.clone()).collect();
        self.rows(INSTANCES.pick(self), vec![Arg::Texts(ids)]).await?.iter().map(rows::instance).collect()
    }

    async fn is_archived(&self, id: &InstanceId) -> Result<bool, Error> {
        let sql = "SELECT 1 AS one FROM archived_instances WHERE id = $1";
        Ok(self.row(sql, vec![text(id.as_str())]).await?.is_some())
    }

    async fn deployment(&self, key: &str, version: Option<u32>) -> Result<Option<DeploymentRow>, Error> {
        let row = match version {
            Some(v) => {
                let sql = format!("{DEPLOYMENT_COLUMNS} WHERE process_key = $1 AND version = $2");
                self.row(&sql, vec![text(key), Arg::Int(i64::from(v))]).await?
            }
            None => {
                let sql = format!("{DEPLOYMENT_COLUMNS} WHERE process_key = $1 ORDER BY version DESC LIMIT 1");
                self.row(&sql, vec![text(key)]).await?
            }
        };
        row.as_ref().map(rows::deployment).transpose()
    }

    async fn job(&self, id: &JobId) -> Result<Option<JobInfo>, Error> {
        let sql = "SELECT id, instance_id, job_type, state, lock_epoch, lock_expires_at FROM jobs WHERE id = $1";
        self.row(sql, vec![text(id.as_str())]).await?.as_ref().map(rows::job_info).transpose()
    }

    async fn task(&self, id: &TaskId) -> Result<Option<TaskInfo>, Error> {
        let sql = format!("{TASK_COLUMNS} WHERE id = $1");
        self.row(&sql, vec![text(id.as_str())]).await?.as_ref().map(rows::task_info).transpose()
    }

    async fn open_tasks(&self, instance: Option<&InstanceId>) -> Result<Vec<TaskInfo>, Error> {
        let rows = match instance {
            Some(instance) => {
                let sql = format!("{TASK_COLUMNS} WHERE instance_id = $1 AND state = 'open' ORDER BY created_at, id");
                self.rows(&sql, vec![text(instance.as_str())]).await?
            }
            None => self.rows(&format!("{TASK_COLUMNS} WHERE state = 'open' ORDER BY created_at, id"), vec![]).await?,
        };
        rows.iter().map(rows::task_info).collect()
    }

    async fn inbox(&self, user: &str, roles: &[String], principals: &[String]) -> Result<Vec<TaskInfo>, Error> {
        let args = vec![text(user), Arg::Texts(roles.to_vec()), Arg::Texts(principals.to_vec())];
        let sql = format!("{TASK_COLUMNS} {}", INBOX_WHERE.pick(self));
        self.rows(&sql, args).await?.iter().map(rows::task_info).collect()
    }

    async fn principals_of(&self, substitute: &str, now: DateTime<Utc>) -> Result<Vec<String>, Error> {
        let sql = "SELECT user_name FROM substitutes WHERE substitute = $1 AND from_at <= $2 AND until_at > $2 \
                   ORDER BY user_name";
        let now = ts(now);
        self.rows(sql, vec![text(substitute), text(&now)]).await?.iter().map(|r| r.text("user_name")).collect()
    }

    async fn substitute_of(&self, user: &str) -> Result<Option<Substitution>, Error> {
        let sql = "SELECT substitute, from_at, until_at FROM substitutes WHERE user_name = $1";
        self.row(sql, vec![text(user)]).await?.as_ref().map(rows::substitution).transpose()
    }

    async fn session_ended(&self, session: &str) -> Result<bool, Error> {
        Ok(self.row("SELECT 1 AS ended FROM ended_sessions WHERE session = $1", vec![text(session)]).await?.is_some())
    }

    async fn subscriptions_for(&self, name: &str, key: &str) -> Result<Vec<(SubscriptionId, InstanceId)>, Error> {
        let rows = self.rows(SUBSCRIPTIONS.pick(self), vec![text(name), text(key)]).await?;
        rows.iter()
            .map(|r| rows::id_and_instance(r).map(|(id, instance)| (SubscriptionId(id), InstanceId(instance))))
            .collect()
    }

    async fn buffered_message(
        &self,
        name: &str,
        key: &str,
        now: DateTime<Utc>,
        skip: &[i64],
    ) -> Result<Option<BufferedMessage>, Error> {
        let now = ts(now);
        let args = vec![text(name), text(key), text(&now), Arg::Ints(skip.to_vec())];
        self.row(BUFFERED_MESSAGE.pick(self), args).await?.as_ref().map(rows::buffered_message).transpose()
    }

    async fn message_seen(&self, message_id: &str) -> Result<bool, Error> {
        Ok(self.row("SELECT 1 AS one FROM messages WHERE message_id = $1", vec![text(message_id)]).await?.is_some())
    }

    async fn due_timers(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<(TimerId, InstanceId)>, Error> {
        let due = self.take_due_timers(now, limit).await?;
        Ok(due.into_iter().map(|(timer, instance)| (TimerId(timer), InstanceId(instance))).collect())
    }

    async fn due_schedules(&self, now: DateTime<Utc>) -> Result<Vec<(String, String, DateTime<Utc>)>, Error> {
        let sql = "SELECT process_key, node, next_fire_at FROM schedules WHERE next_fire_at <= $1 \
                   ORDER BY next_fire_at";
        let now = ts(now);
        self.rows(sql, vec![text(&now)]).await?.iter().map(rows::schedule).collect()
    }

    async fn next_schedule(&self) -> Result<Option<DateTime<Utc>>, Error> {
        first_instant(&self.rows("SELECT MIN(next_fire_at) AS at FROM schedules", vec![]).await?, "at")
    }

    async fn latest_versions(&self) -> Result<Vec<(String, u32)>, Error> {
        let sql = "SELECT process_key, MAX(version) AS version FROM deployments GROUP BY process_key";
        self.rows(sql, vec![]).await?.iter().map(rows::latest_version).collect()
    }

    fn next_timer(&self) -> impl Future<Output = Result<Option<DateTime<Utc>>, Error>> + Send {
        self.next_takeable_timer()
    }

    async fn pending(&self, limit: i64) -> Result<Vec<PendingRow>, Error> {
        self.rows(PENDING.pick(self), vec![Arg::Int(limit.max(0))]).await?.iter().map(rows::pending).collect()
    }

    async fn incident(&self, id: &IncidentId) -> Result<Option<(InstanceId, Option<JobId>)>, Error> {
        let sql = "SELECT instance_id, job_id FROM incidents WHERE id = $1 AND state = 'open'";
        Ok(self
            .row(sql, vec![text(id.as_str())])
            .await?
            .as_ref()
            .map(rows::incident)
            .transpose()?
            .map(|(instance, job)| (InstanceId::from(instance), job.map(JobId::from))))
    }

    async fn history(&self, instance: &InstanceId) -> Result<Vec<HistoryRow>, Error> {
        let sql = "SELECT instance_id, history_seq, at, prev_hash, entries FROM events WHERE instance_id = $1 \
             AND entries IS NOT NULL ORDER BY seq";
        let steps = self.rows(sql, vec![text(instance.as_str())]).await?;
        let mut entries = Vec::new();
        for step in &steps {
            entries.extend(rows::history_step(step)?.rows());
        }
        Ok(entries)
    }

    async fn events(&self, instance: &InstanceId) -> Result<Vec<(DateTime<Utc>, String)>, Error> {
        let sql = "SELECT at, event FROM events WHERE instance_id = $1 ORDER BY seq";
        self.rows(sql, vec![text(instance.as_str())]).await?.iter().map(rows::event).collect()
    }
}
