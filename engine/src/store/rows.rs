//! Reading result rows into the store's row types, once for both backends.
//!
//! [`Columns`] is the little a decoder needs from a result row; it is implemented for SQLite's
//! and PostgreSQL's rows, each with its backend's integer widths. A decoder is generic over it,
//! so each backend gets its own monomorphic copy: no dynamic dispatch, no allocation beyond the
//! values read.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use crate::ids::{InstanceId, JobId, TaskId};

use super::{
    BufferedMessage, DeploymentRow, Error, HistoryStep, InstanceRow, JobInfo, LockedJob, Notification, NotificationRow,
    PendingRow, Substitution, TaskInfo, parse_ts,
};

/// The columns [`task_info`] reads, as the head of a query on `tasks`.
pub(super) const TASK_COLUMNS: &str = "SELECT id, instance_id, node, title, roles, assignee, form, due_at, state, \
                                       claimed_by, completed_by FROM tasks";

/// The typed columns of one result row.
pub(super) trait Columns {
    /// A text column.
    fn text(&self, col: &str) -> Result<String, Error>;
    /// A nullable text column.
    fn opt_text(&self, col: &str) -> Result<Option<String>, Error>;
    /// A 64-bit integer column.
    fn int(&self, col: &str) -> Result<i64, Error>;
    /// A nullable 64-bit integer column.
    fn opt_int(&self, col: &str) -> Result<Option<i64>, Error>;
    /// A deployment version column.
    fn version(&self, col: &str) -> Result<u32, Error>;

    /// An instant in [`ts`](super::ts)'s text form.
    fn timestamp(&self, col: &str) -> Result<DateTime<Utc>, Error> {
        parse_ts(&self.text(col)?)
    }

    /// A nullable instant in [`ts`](super::ts)'s text form.
    fn opt_timestamp(&self, col: &str) -> Result<Option<DateTime<Utc>>, Error> {
        self.opt_text(col)?.as_deref().map(parse_ts).transpose()
    }

    /// A text column holding JSON.
    fn json<T: DeserializeOwned>(&self, col: &str) -> Result<T, Error> {
        Ok(serde_json::from_str(&self.text(col)?)?)
    }
}

impl Columns for SqliteRow {
    fn text(&self, col: &str) -> Result<String, Error> {
        Ok(self.try_get(col)?)
    }

    fn opt_text(&self, col: &str) -> Result<Option<String>, Error> {
        Ok(self.try_get(col)?)
    }

    fn int(&self, col: &str) -> Result<i64, Error> {
        Ok(self.try_get(col)?)
    }

    fn opt_int(&self, col: &str) -> Result<Option<i64>, Error> {
        Ok(self.try_get(col)?)
    }

    /// SQLite's integer, decoded as `u32` by sqlx.
    fn version(&self, col: &str) -> Result<u32, Error> {
        Ok(self.try_get(col)?)
    }
}

impl Columns for PgRow {
    fn text(&self, col: &str) -> Result<String, Error> {
        Ok(self.try_get(col)?)
    }

    fn opt_text(&self, col: &str) -> Result<Option<String>, Error> {
        Ok(self.try_get(col)?)
    }

    fn int(&self, col: &str) -> Result<i64, Error> {
        Ok(self.try_get(col)?)
    }

    fn opt_int(&self, col: &str) -> Result<Option<i64>, Error> {
        Ok(self.try_get(col)?)
    }

    /// A BIGINT column (PostgreSQL has no unsigned types), checked to fit a `u32`.
    fn version(&self, col: &str) -> Result<u32, Error> {
        let v: i64 = self.try_get(col)?;
        u32::try_from(v).map_err(|_| Error::Corrupt(format!("deployment version {v}")))
    }
}

/// A row of `instances` (`id, process_key, process_version, status, business_key, parent_id,
/// parent_call, state, version, history_seq, history_hash, updated_at`).
pub(super) fn instance(row: &impl Columns) -> Result<InstanceRow, Error> {
    Ok(InstanceRow {
        id: row.text("id")?,
        process_key: row.text("process_key")?,
        process_version: row.version("process_version")?,
        status: row.text("status")?.parse()?,
        business_key: row.opt_text("business_key")?,
        parent_id: row.opt_text("parent_id")?,
        parent_call: row.opt_text("parent_call")?,
        state: row.text("state")?,
        version: row.int("version")?,
        history_seq: row.int("history_seq")?,
        history_hash: row.text("history_hash")?,
        at: row.timestamp("updated_at")?,
    })
}

/// A row of `deployments` (`process_key, version, hash, source, compiled, deployed_at`).
pub(super) fn deployment(row: &impl Columns) -> Result<DeploymentRow, Error> {
    Ok(DeploymentRow {
        key: row.text("process_key")?,
        version: row.version("version")?,
        hash: row.text("hash")?,
        source: row.text("source")?,
        compiled: row.text("compiled")?,
        at: row.timestamp("deployed_at")?,
    })
}

/// A row of `jobs` (`id, instance_id, job_type, state, lock_epoch, lock_expires_at`).
pub(super) fn job_info(row: &impl Columns) -> Result<JobInfo, Error> {
    Ok(JobInfo {
        id: JobId::from(row.text("id")?),
        instance_id: InstanceId::from(row.text("instance_id")?),
        job_type: row.text("job_type")?,
        state: row.text("state")?.parse()?,
        lock_epoch: row.int("lock_epoch")?,
        lock_expires_at: row.opt_timestamp("lock_expires_at")?,
    })
}

/// A job just locked (`id, instance_id, node, job_type, input, idempotency_key, attempt,
/// lock_epoch, lock_expires_at`).
pub(super) fn locked_job(row: &impl Columns) -> Result<LockedJob, Error> {
    Ok(LockedJob {
        id: JobId(row.text("id")?),
        instance_id: InstanceId(row.text("instance_id")?),
        node: row.text("node")?,
        job_type: row.text("job_type")?,
        input: row.json("input")?,
        idempotency_key: row.text("idempotency_key")?,
        attempt: row.int("attempt")?,
        epoch: row.int("lock_epoch")?,
        lock_expires_at: row.timestamp("lock_expires_at")?,
    })
}

/// A row of [`TASK_COLUMNS`].
pub(super) fn task_info(row: &impl Columns) -> Result<TaskInfo, Error> {
    Ok(TaskInfo {
        id: TaskId(row.text("id")?),
        instance_id: InstanceId(row.text("instance_id")?),
        node: row.text("node")?,
        title: row.text("title")?,
        roles: row.json("roles")?,
        assignee: row.opt_text("assignee")?,
        form: row.json("form")?,
        due_at: row.opt_timestamp("due_at")?,
        state: row.text("state")?.parse()?,
        claimed_by: row.opt_text("claimed_by")?,
        completed_by: row.opt_text("completed_by")?,
    })
}

/// A row of `substitutes` (`substitute, from_at, until_at`).
pub(super) fn substitution(row: &impl Columns) -> Result<Substitution, Error> {
    Ok(Substitution {
        substitute: row.text("substitute")?,
        from: row.timestamp("from_at")?,
        until: row.timestamp("until_at")?,
    })
}

/// A row of `messages` (`seq, message_id, payload`).
pub(super) fn buffered_message(row: &impl Columns) -> Result<BufferedMessage, Error> {
    Ok(BufferedMessage { seq: row.int("seq")?, message_id: row.text("message_id")?, payload: row.text("payload")? })
}

/// A row of `pending_events` (`id, instance_id, event`).
pub(super) fn pending(row: &impl Columns) -> Result<PendingRow, Error> {
    Ok(PendingRow { id: row.text("id")?, instance_id: row.text("instance_id")?, event: row.text("event")? })
}

/// The history entries of an `events` row (`instance_id, history_seq, at, prev_hash, entries`);
/// `at` stays text, since the hashes cover that very text.
pub(super) fn history_step(row: &impl Columns) -> Result<HistoryStep, Error> {
    Ok(HistoryStep {
        instance_id: row.text("instance_id")?,
        seq: row.int("history_seq")?,
        at: row.text("at")?,
        prev_hash: row.text("prev_hash")?,
        entries: row.text("entries")?,
        people: None,
    })
}

/// A row of `events` (`at, event`).
pub(super) fn event(row: &impl Columns) -> Result<(DateTime<Utc>, String), Error> {
    Ok((row.timestamp("at")?, row.text("event")?))
}

/// A due cron start (`process_key, node, next_fire_at`).
pub(super) fn schedule(row: &impl Columns) -> Result<(String, String, DateTime<Utc>), Error> {
    Ok((row.text("process_key")?, row.text("node")?, row.timestamp("next_fire_at")?))
}

/// The latest version of a process (`process_key, version`).
pub(super) fn latest_version(row: &impl Columns) -> Result<(String, u32), Error> {
    Ok((row.text("process_key")?, row.version("version")?))
}

/// An id and its instance (`id, instance_id`), as of a subscription or a timer.
pub(super) fn id_and_instance(row: &impl Columns) -> Result<(String, String), Error> {
    Ok((row.text("id")?, row.text("instance_id")?))
}

/// An open incident (`instance_id, job_id`).
pub(super) fn incident(row: &impl Columns) -> Result<(String, Option<String>), Error> {
    Ok((row.text("instance_id")?, row.opt_text("job_id")?))
}

/// The columns [`notification`] reads.
pub(super) const NOTIFICATION_COLUMNS: &str =
    "SELECT id, instance_id, kind, subject, payload, created_at, state, attempts, last_error FROM notifications";

/// A row of [`NOTIFICATION_COLUMNS`].
pub(super) fn notification(row: &impl Columns) -> Result<Notification, Error> {
    Ok(Notification {
        row: NotificationRow {
            id: row.text("id")?,
            instance_id: row.opt_text("instance_id")?,
            kind: row.text("kind")?,
            subject: row.text("subject")?,
            payload: row.text("payload")?,
            created_at: row.timestamp("created_at")?,
        },
        state: row.text("state")?,
        attempts: row.int("attempts")?,
        last_error: row.opt_text("last_error")?,
    })
}
