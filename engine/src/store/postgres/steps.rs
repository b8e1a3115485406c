//! Applying a batch's writes: steps checked in bulk or one by one under row and advisory locks,
//! claims, messages and deployments, and the steps' rows written a table at a time.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};
use sqlx::Row;
use sqlx::postgres::PgConnection;

use crate::store::batch::{StepRows, TABLES, json_records};
use crate::store::rows::Columns;
use crate::store::{Error, Guard, InstanceRow, MessageRow, StepWrite, Write, WriteError, WriteOutcome, ts};

use super::{JOBS_CHANNEL, TIMERS_CHANNEL, advisory_lock, correlation_lock, message_id_lock, with_rows};

/// A step whose only checks are job epochs and its instance's version: checked in bulk.
pub(super) fn is_simple(step: &StepWrite) -> bool {
    step.guards.iter().all(|g| matches!(g, Guard::JobLocked { .. }))
        && step.record_message.is_none()
        && step.consume_messages.is_empty()
        && step.consume_pending.is_none()
        && step.children.is_empty()
}

pub(super) fn instance_json(r: &InstanceRow, expected: Option<i64>) -> Value {
    json!({
        "id": r.id, "process_key": r.process_key, "process_version": r.process_version, "status": r.status,
        "business_key": r.business_key, "parent_id": r.parent_id, "parent_call": r.parent_call,
        "state": r.state, "version": r.version, "history_seq": r.history_seq, "history_hash": r.history_hash,
        "at": ts(r.at), "expected": expected,
    })
}

pub(super) const INSTANCE_RECORD: &str = "jsonb_to_recordset($1::jsonb) AS r(id text, process_key text, process_version bigint, \
                               status text, business_key text, parent_id text, parent_call text, state text, \
                               version bigint, history_seq bigint, history_hash text, at text, expected bigint)";

/// Inserts new instances; returns the ids inserted (an id taken already is left out).
pub(super) async fn insert_instances(conn: &mut PgConnection, rows: Vec<Value>) -> Result<HashSet<String>, Error> {
    let sql = format!(
        "INSERT INTO instances (id, process_key, process_version, status, business_key, parent_id, parent_call, \
         state, version, history_seq, history_hash, created_at, updated_at) \
         SELECT id, process_key, process_version, status, business_key, parent_id, parent_call, state, version, \
         history_seq, history_hash, at, at FROM {INSTANCE_RECORD} ON CONFLICT (id) DO NOTHING RETURNING id"
    );
    with_rows(conn, &sql, rows).await?.iter().map(|r| Ok(r.try_get("id")?)).collect()
}

/// Updates instances still at their expected version; returns the ids updated.
pub(super) async fn update_instances(conn: &mut PgConnection, rows: Vec<Value>) -> Result<HashSet<String>, Error> {
    let sql = format!(
        "UPDATE instances SET status = r.status, state = r.state, version = r.version, \
         history_seq = r.history_seq, history_hash = r.history_hash, updated_at = r.at FROM {INSTANCE_RECORD} \
         WHERE instances.id = r.id AND instances.version = r.expected RETURNING instances.id AS id"
    );
    with_rows(conn, &sql, rows).await?.iter().map(|r| Ok(r.try_get("id")?)).collect()
}

/// Checks and writes many simple steps with a few statements: one for every job-epoch guard,
/// one insert for new instances, one update for the rest (each guarded by its version).
pub(super) async fn apply_simple_steps(
    conn: &mut PgConnection,
    steps: &[(usize, &StepWrite)],
    acc: &mut StepRows,
) -> Result<Vec<(usize, Result<WriteOutcome, WriteError>)>, Error> {
    let mut out = Vec::with_capacity(steps.len());
    if steps.is_empty() {
        return Ok(out);
    }
    let mut jobs: Vec<&str> = steps
        .iter()
        .flat_map(|(_, s)| s.guards.iter())
        .filter_map(|g| match g {
            Guard::JobLocked { job, .. } => Some(job.as_str()),
            _ => None,
        })
        .collect();
    let mut held: HashSet<(String, i64)> = HashSet::new();
    if !jobs.is_empty() {
        jobs.sort_unstable();
        jobs.dedup();
        // Locked until the commit: a fetch on another node cannot take the job in between.
        let rows = sqlx::query(
            "SELECT id, lock_epoch FROM jobs WHERE id = ANY($1) AND state = 'locked' ORDER BY id FOR UPDATE",
        )
        .bind(jobs)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            held.insert((row.try_get("id")?, row.try_get("lock_epoch")?));
        }
    }
    let mut refused: HashMap<usize, WriteError> = HashMap::new();
    let (mut inserts, mut updates) = (Vec::new(), Vec::new());
    for (i, step) in steps {
        let stale = step.guards.iter().find_map(|g| match g {
            Guard::JobLocked { job, epoch } if !held.contains(&(job.clone(), *epoch)) => {
                Some(WriteError::StaleEpoch { job: job.clone(), epoch: *epoch })
            }
            _ => None,
        });
        if let Some(refusal) = stale {
            refused.insert(*i, refusal);
        } else if step.expected_version.is_none() {
            inserts.push(instance_json(&step.instance, None));
        } else {
            updates.push(instance_json(&step.instance, step.expected_version));
        }
    }
    let mut written = HashSet::new();
    if !inserts.is_empty() {
        written.extend(insert_instances(conn, inserts).await?);
    }
    if !updates.is_empty() {
        written.extend(update_instances(conn, updates).await?);
    }
    for (i, step) in steps {
        if let Some(refusal) = refused.remove(i) {
            out.push((*i, Err(refusal)));
        } else if written.contains(&step.instance.id) {
            acc.add(step);
            out.push((*i, Ok(WriteOutcome::Done)));
        } else {
            out.push((*i, Err(WriteError::Conflict(step.instance.id.clone()))));
        }
    }
    Ok(out)
}

/// Checks and applies a step with rarer checks (a claim, messages, an owed event, children).
/// Its instance, if it existed, is locked at its expected version already.
pub(super) async fn apply_step(
    conn: &mut PgConnection,
    step: &StepWrite,
    acc: &mut StepRows,
) -> Result<Result<WriteOutcome, WriteError>, Error> {
    let id = &step.instance.id;
    // Checks first, each under a lock held until the commit: nothing is changed until every
    // one holds. The message id is locked before the correlation, as buffering does, so the
    // two never wait for each other in opposite orders.
    if let Some(message) = &step.record_message {
        advisory_lock(conn, &message_id_lock(&message.message_id)).await?;
    }
    for guard in &step.guards {
        if let Some(refusal) = check_guard(conn, guard).await? {
            return Ok(Err(refusal));
        }
    }
    if let Some(message) = &step.record_message
        && message_seen(conn, &message.message_id).await?
    {
        return Ok(Err(WriteError::DuplicateMessage(message.message_id.clone())));
    }
    if !step.consume_messages.is_empty() {
        let mut wanted = step.consume_messages.clone();
        wanted.sort_unstable();
        wanted.dedup();
        let open =
            sqlx::query("SELECT seq FROM messages WHERE seq = ANY($1) AND state = 'buffered' ORDER BY seq FOR UPDATE")
                .bind(&wanted)
                .fetch_all(&mut *conn)
                .await?;
        if open.len() != wanted.len() {
            return Ok(Err(WriteError::Conflict(id.clone())));
        }
    }
    if let Some(pending) = &step.consume_pending {
        let open = sqlx::query("SELECT 1 AS one FROM pending_events WHERE id = $1 FOR UPDATE")
            .bind(pending)
            .fetch_optional(&mut *conn)
            .await?;
        if open.is_none() {
            return Ok(Err(WriteError::PendingGone));
        }
    }
    let row = instance_json(&step.instance, step.expected_version);
    let written = match step.expected_version {
        None => insert_instances(conn, vec![row]).await?,
        Some(_) => update_instances(conn, vec![row]).await?,
    };
    if !written.contains(id) {
        return Ok(Err(WriteError::Conflict(id.clone())));
    }
    // Every check held: apply.
    if let Some(message) = &step.record_message {
        insert_message(conn, message, "delivered").await?;
    }
    if !step.consume_messages.is_empty() {
        sqlx::query("UPDATE messages SET state = 'delivered', instance_id = $2 WHERE seq = ANY($1)")
            .bind(&step.consume_messages)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    if let Some(pending) = &step.consume_pending {
        sqlx::query("DELETE FROM pending_events WHERE id = $1").bind(pending).execute(&mut *conn).await?;
    }
    if !step.children.is_empty() {
        let rows: Vec<Value> = step.children.iter().map(|c| instance_json(c, None)).collect();
        let written = insert_instances(conn, rows).await?;
        if let Some(child) = step.children.iter().find(|c| !written.contains(&c.id)) {
            return Err(Error::Corrupt(format!("child instance `{}` exists already", child.id)));
        }
    }
    acc.add(step);
    Ok(Ok(WriteOutcome::Done))
}

pub(super) async fn message_seen(conn: &mut PgConnection, message_id: &str) -> Result<bool, Error> {
    let row = sqlx::query("SELECT 1 AS one FROM messages WHERE message_id = $1")
        .bind(message_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.is_some())
}

pub(super) async fn insert_message(conn: &mut PgConnection, message: &MessageRow, state: &str) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO messages (message_id, message_name, correlation_key, payload, state, instance_id, received_at, \
         expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&message.message_id)
    .bind(&message.name)
    .bind(&message.correlation_key)
    .bind(&message.payload)
    .bind(state)
    .bind(&message.instance_id)
    .bind(ts(message.received_at))
    .bind(ts(message.expires_at))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn check_guard(conn: &mut PgConnection, guard: &Guard) -> Result<Option<WriteError>, Error> {
    Ok(match guard {
        Guard::JobLocked { job, epoch } => {
            let ok = sqlx::query(
                "SELECT 1 AS one FROM jobs WHERE id = $1 AND state = 'locked' AND lock_epoch = $2 FOR UPDATE",
            )
            .bind(job)
            .bind(epoch)
            .fetch_optional(&mut *conn)
            .await?;
            ok.is_none().then(|| WriteError::StaleEpoch { job: job.clone(), epoch: *epoch })
        }
        Guard::TaskFree { task, user } => {
            let ok = sqlx::query(
                "SELECT 1 AS one FROM tasks WHERE id = $1 AND state = 'open' \
                 AND (claimed_by IS NULL OR claimed_by = $2) FOR UPDATE",
            )
            .bind(task)
            .bind(user)
            .fetch_optional(&mut *conn)
            .await?;
            ok.is_none().then(|| WriteError::TaskTaken { task: task.clone() })
        }
        Guard::NoBufferedMessage { name, key, now } => {
            // Held until the commit: a message buffered on another node meanwhile waits for the
            // subscription this step opens, sees it, and is delivered instead.
            advisory_lock(conn, &correlation_lock(name, key)).await?;
            let waiting = sqlx::query(
                "SELECT 1 AS one FROM messages WHERE message_name = $1 AND correlation_key = $2 \
                 AND state = 'buffered' AND expires_at > $3 LIMIT 1",
            )
            .bind(name)
            .bind(key)
            .bind(ts(*now))
            .fetch_optional(&mut *conn)
            .await?;
            waiting.is_some().then_some(WriteError::BufferedMessageWaiting)
        }
    })
}

pub(super) async fn apply_other(
    conn: &mut PgConnection,
    write: &Write,
    acc: &mut StepRows,
) -> Result<Result<WriteOutcome, WriteError>, Error> {
    match write {
        Write::Step(_) => Ok(Ok(WriteOutcome::Done)),
        Write::Deploy(d) => {
            // Concurrent deploys of one key on several nodes agree on the version.
            advisory_lock(conn, &format!("cloverleaf.deploy\u{1f}{}", d.key)).await?;
            let existing = sqlx::query("SELECT version FROM deployments WHERE process_key = $1 AND hash = $2")
                .bind(&d.key)
                .bind(&d.hash)
                .fetch_optional(&mut *conn)
                .await?;
            if let Some(row) = existing {
                return Ok(Ok(WriteOutcome::Deployed { version: row.version("version")?, created: false }));
            }
            let row = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM deployments WHERE process_key = $1")
                .bind(&d.key)
                .fetch_one(&mut *conn)
                .await?;
            let version = row.version("v")?.saturating_add(1);
            sqlx::query(
                "INSERT INTO deployments (process_key, version, hash, source, compiled, deployed_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&d.key)
            .bind(i64::from(version))
            .bind(&d.hash)
            .bind(&d.source)
            .bind(&d.compiled)
            .bind(ts(d.at))
            .execute(&mut *conn)
            .await?;
            Ok(Ok(WriteOutcome::Deployed { version, created: true }))
        }
        // Served together by `fetch_jobs`.
        Write::FetchJobs { .. } => Ok(Ok(WriteOutcome::Jobs(Vec::new()))),
        Write::ClaimTask { task, user, by } => {
            let changed = match user {
                Some(user) => sqlx::query(
                    "UPDATE tasks SET claimed_by = $2 WHERE id = $1 AND state = 'open' \
                     AND (claimed_by IS NULL OR claimed_by = $2)",
                )
                .bind(task)
                .bind(user)
                .execute(&mut *conn)
                .await?
                .rows_affected(),
                None => sqlx::query(
                    "UPDATE tasks SET claimed_by = NULL WHERE id = $1 AND state = 'open' AND claimed_by = $2",
                )
                .bind(task)
                .bind(by)
                .execute(&mut *conn)
                .await?
                .rows_affected(),
            };
            Ok(Ok(WriteOutcome::Claimed(changed > 0)))
        }
        Write::ExtendLock { job, epoch, now, until } => {
            let changed = sqlx::query(
                "UPDATE jobs SET lock_expires_at = $4 WHERE id = $1 AND state = 'locked' AND lock_epoch = $2 \
                 AND lock_expires_at > $3",
            )
            .bind(job)
            .bind(epoch)
            .bind(ts(*now))
            .bind(ts(*until))
            .execute(&mut *conn)
            .await?
            .rows_affected();
            Ok(Ok(WriteOutcome::Extended(changed > 0)))
        }
        Write::SetSubstitute { user, substitute, from, until } => {
            match substitute {
                Some(substitute) => {
                    sqlx::query(
                        "INSERT INTO substitutes (user_name, substitute, from_at, until_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (user_name) DO UPDATE SET substitute = $2, from_at = $3, until_at = $4",
                    )
                    .bind(user)
                    .bind(substitute)
                    .bind(ts(*from))
                    .bind(ts(*until))
                    .execute(&mut *conn)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM substitutes WHERE user_name = $1").bind(user).execute(&mut *conn).await?;
                }
            }
            Ok(Ok(WriteOutcome::Done))
        }
        Write::SetSchedules { process, nodes } => {
            let keep: Vec<&str> = nodes.iter().map(|(n, _, _)| n.as_str()).collect();
            sqlx::query("DELETE FROM schedules WHERE process_key = $1 AND NOT (node = ANY($2))")
                .bind(process)
                .bind(keep)
                .execute(&mut *conn)
                .await?;
            for (node, schedule, next) in nodes {
                sqlx::query(
                    "INSERT INTO schedules (process_key, node, schedule, next_fire_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (process_key, node) DO UPDATE SET schedule = excluded.schedule, \
                     next_fire_at = excluded.next_fire_at WHERE schedules.schedule <> excluded.schedule",
                )
                .bind(process)
                .bind(node)
                .bind(schedule)
                .bind(ts(*next))
                .execute(&mut *conn)
                .await?;
            }
            acc.wake_timers |= !nodes.is_empty();
            Ok(Ok(WriteOutcome::Done))
        }
        Write::AdvanceSchedule { process, node, from, to } => {
            sqlx::query(
                "UPDATE schedules SET next_fire_at = $4 WHERE process_key = $1 AND node = $2 AND next_fire_at = $3",
            )
            .bind(process)
            .bind(node)
            .bind(ts(*from))
            .bind(ts(*to))
            .execute(&mut *conn)
            .await?;
            Ok(Ok(WriteOutcome::Done))
        }
        Write::BufferMessage(message) => {
            advisory_lock(conn, &message_id_lock(&message.message_id)).await?;
            if message_seen(conn, &message.message_id).await? {
                return Ok(Err(WriteError::DuplicateMessage(message.message_id.clone())));
            }
            advisory_lock(conn, &correlation_lock(&message.name, &message.correlation_key)).await?;
            let waiting = sqlx::query(
                "SELECT 1 AS one FROM subscriptions WHERE message_name = $1 AND correlation_key = $2 LIMIT 1",
            )
            .bind(&message.name)
            .bind(&message.correlation_key)
            .fetch_optional(&mut *conn)
            .await?;
            if waiting.is_some() {
                return Ok(Err(WriteError::SubscriptionExists));
            }
            insert_message(conn, message, "buffered").await?;
            Ok(Ok(WriteOutcome::Done))
        }
        Write::DropPending(id) => {
            let dropped = sqlx::query("DELETE FROM pending_events WHERE id = $1").bind(id).execute(&mut *conn).await?;
            Ok(Ok(WriteOutcome::Dropped(dropped.rows_affected() > 0)))
        }
    }
}

/// The statement for each `Table`, in its order, where `$1` is the rows as a JSON array.
pub(super) const FLUSH: [&str; TABLES] = [
    "INSERT INTO jobs (id, instance_id, node, job_type, input, idempotency_key, retries, attempt, state, due_at) \
     SELECT id, instance_id, node, job_type, input, idempotency_key, retries, attempt, state, due_at \
     FROM jsonb_to_recordset($1::jsonb) AS r(id text, instance_id text, node text, job_type text, input text, \
     idempotency_key text, retries bigint, attempt bigint, state text, due_at text)",
    "UPDATE jobs SET state = r.state, due_at = COALESCE(r.due_at, jobs.due_at), \
     attempt = COALESCE(r.attempt, jobs.attempt), lock_owner = NULL, lock_expires_at = NULL \
     FROM jsonb_to_recordset($1::jsonb) AS r(id text, state text, due_at text, attempt bigint) WHERE jobs.id = r.id",
    "INSERT INTO tasks (id, instance_id, node, title, roles, assignee, form, due_at, created_at) \
     SELECT id, instance_id, node, title, roles, assignee, form, due_at, created_at \
     FROM jsonb_to_recordset($1::jsonb) AS r(id text, instance_id text, node text, title text, roles text, \
     assignee text, form text, due_at text, created_at text)",
    "UPDATE tasks SET assignee = r.assignee, claimed_by = NULL \
     FROM jsonb_to_recordset($1::jsonb) AS r(id text, assignee text) WHERE tasks.id = r.id",
    "UPDATE tasks SET state = r.state, completed_by = r.completed_by \
     FROM jsonb_to_recordset($1::jsonb) AS r(id text, state text, completed_by text) WHERE tasks.id = r.id",
    // A timer moved is free to be claimed again at its new time.
    "INSERT INTO timers (id, instance_id, node, due_at) SELECT id, instance_id, node, due_at \
     FROM jsonb_to_recordset($1::jsonb) AS r(id text, instance_id text, node text, due_at text) \
     ON CONFLICT (id) DO UPDATE SET due_at = excluded.due_at, node = excluded.node, claimed_until = NULL",
    "DELETE FROM timers WHERE id IN (SELECT id FROM jsonb_to_recordset($1::jsonb) AS r(id text))",
    "INSERT INTO subscriptions (id, instance_id, node, message_name, correlation_key) \
     SELECT id, instance_id, node, message_name, correlation_key FROM jsonb_to_recordset($1::jsonb) \
     AS r(id text, instance_id text, node text, message_name text, correlation_key text)",
    "DELETE FROM subscriptions WHERE id IN (SELECT id FROM jsonb_to_recordset($1::jsonb) AS r(id text))",
    "INSERT INTO incidents (id, instance_id, node, job_id, message, raised_at) \
     SELECT id, instance_id, node, job_id, message, raised_at FROM jsonb_to_recordset($1::jsonb) \
     AS r(id text, instance_id text, node text, job_id text, message text, raised_at text)",
    "UPDATE incidents SET state = 'resolved' \
     WHERE id IN (SELECT id FROM jsonb_to_recordset($1::jsonb) AS r(id text))",
    "INSERT INTO history (instance_id, seq, at, kind, node, who, on_behalf_of, detail, prev_hash, hash) \
     SELECT instance_id, seq, at, kind, node, who, on_behalf_of, detail, prev_hash, hash \
     FROM jsonb_to_recordset($1::jsonb) AS r(instance_id text, seq bigint, at text, kind text, node text, \
     who text, on_behalf_of text, detail text, prev_hash text, hash text)",
    "INSERT INTO events (instance_id, seq, at, event) SELECT instance_id, seq, at, event \
     FROM jsonb_to_recordset($1::jsonb) AS r(instance_id text, seq bigint, at text, event text)",
    "INSERT INTO pending_events (id, instance_id, event) SELECT id, instance_id, event \
     FROM jsonb_to_recordset($1::jsonb) AS r(id text, instance_id text, event text)",
];

/// Writes the collected rows of a batch's steps, then queues the notifications they owe
/// (delivered only if the batch commits).
pub(super) async fn flush(conn: &mut PgConnection, rows: &mut StepRows, node: &str) -> Result<(), Error> {
    for (table, columns, list) in rows.take() {
        with_rows(conn, FLUSH[table as usize], json_records(columns, &list)).await?;
    }
    for (wake, channel) in [(rows.wake_jobs, JOBS_CHANNEL), (rows.wake_timers, TIMERS_CHANNEL)] {
        if wake {
            sqlx::query("SELECT pg_notify($1, $2)").bind(channel).bind(node).execute(&mut *conn).await?;
        }
    }
    Ok(())
}
