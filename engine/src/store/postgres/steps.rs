//! Applying a batch's writes: steps checked in bulk or one by one under row and advisory locks,
//! claims, messages and deployments, and the steps' rows written a table at a time.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};
use sqlx::Row;
use sqlx::postgres::PgConnection;

use crate::store::batch::{StepRows, TABLES, json_records};
use crate::store::writes::{correlation_lock, simple_outcomes};
use crate::store::{Error, Guard, InstanceRow, StepWrite, WriteError, WriteOutcome, ts};

use super::{DEPLOYMENTS_CHANNEL, JOBS_CHANNEL, TIMERS_CHANNEL, with_rows};

/// A step whose only checks are job epochs, that no buffered message waits for a subscription it
/// or a child it starts opens, the owed event it applies and its instance's version: checked in
/// bulk (the children it creates are inserted in bulk too, once it is written).
pub(super) fn is_simple(step: &StepWrite) -> bool {
    step.all_guards().all(|g| match g {
        Guard::JobLocked { .. } => true,
        Guard::NoBufferedMessage { except, .. } => except.is_empty(),
        Guard::TaskFree { .. } => false,
    }) && step.record_message.is_none()
        && step.consume_messages.is_empty()
        && step.started.iter().all(|child| {
            child.record_message.is_none() && child.consume_messages.is_empty() && child.consume_pending.is_none()
        })
}

pub(super) fn instance_json(r: &InstanceRow, expected: Option<i64>) -> Value {
    json!({
        "id": r.id, "process_key": r.process_key, "process_version": r.process_version, "status": r.status,
        "business_key": r.business_key, "parent_id": r.parent_id, "parent_call": r.parent_call,
        "state": r.state, "version": r.version, "history_seq": r.history_seq, "history_hash": r.history_hash,
        "at": ts(r.at), "expected": expected,
    })
}

pub(super) const INSTANCE_RECORD: &str = "batch_rows($1::jsonb) AS b(row) CROSS JOIN LATERAL jsonb_to_record(b.row) AS r(id text, process_key text, process_version bigint, \
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

/// The statement that updates instances still at their expected version.
pub(super) fn update_instances_sql() -> String {
    format!(
        "UPDATE instances SET status = r.status, state = r.state, version = r.version, \
         history_seq = r.history_seq, history_hash = r.history_hash, updated_at = r.at, \
         process_version = r.process_version FROM {INSTANCE_RECORD} \
         WHERE instances.id = r.id AND instances.version = r.expected RETURNING instances.id AS id"
    )
}

/// Updates instances still at their expected version; returns the ids updated.
pub(super) async fn update_instances(conn: &mut PgConnection, rows: Vec<Value>) -> Result<HashSet<String>, Error> {
    with_rows(conn, &update_instances_sql(), rows).await?.iter().map(|r| Ok(r.try_get("id")?)).collect()
}

/// Locks the owed events of `$1` (a JSON array of ids, sorted) that are still there, by key: one
/// applied by another node meanwhile is gone, and the step that would apply it again is refused.
pub(super) const LOCK_PENDING: &str = "SELECT p.id FROM batch_ids($1::jsonb) AS b(id) \
     CROSS JOIN LATERAL (SELECT pending_events.id FROM pending_events WHERE pending_events.id = b.id FOR UPDATE) AS p";

/// Takes the correlation locks `$1` (their names, in the order given) until the commit: a message
/// buffered on another node meanwhile waits for the subscriptions the batch opens, sees them, and
/// is delivered instead (as one step's check does, in `store::writes`).
pub(super) const LOCK_CORRELATIONS: &str = "SELECT count(pg_advisory_xact_lock(hashtextextended(l.name, 0))) AS locked \
     FROM unnest($1::text[]) AS l(name)";

/// Which of the (name, key, now) triples `$1`, `$2`, `$3` have an unexpired buffered message
/// waiting. Each triple is looked up by its name and key in a lateral subquery: as `EXISTS`, the
/// plan cached on a new database hashed every buffered message (the whole `messages_buffered`
/// index, read for `state` alone) on each call, 1.2 ms a batch with 12,000 messages.
pub(super) const BUFFERED_WAITING: &str = "SELECT g.name, g.key FROM unnest($1::text[], $2::text[], $3::text[]) \
     AS g(name, key, now) CROSS JOIN LATERAL (SELECT 1 FROM messages WHERE message_name = g.name \
     AND correlation_key = g.key AND state = 'buffered' AND expires_at > g.now LIMIT 1) AS m";

/// Locks the jobs of `$1` (a JSON array of ids, sorted: they are locked in its order) and reads
/// their states and epochs (the caller keeps those still locked by a worker). Each job is found by
/// its key alone in a lateral subquery: with `state = 'locked'` in the statement, the plan cached
/// on a new database read every ready and locked job through the partial index `jobs_due_at` for
/// each id (about 5 ms a batch late in the order-to-cash run, its most expensive statement).
pub(super) const LOCK_JOBS: &str = "SELECT j.id, j.lock_epoch, j.state FROM batch_ids($1::jsonb) AS b(id) \
     CROSS JOIN LATERAL (SELECT jobs.id, jobs.lock_epoch, jobs.state FROM jobs WHERE jobs.id = b.id FOR UPDATE) AS j";

/// Checks and writes many simple steps with a few statements: one each for all their job-epoch
/// guards, the owed events they apply and the correlations they open (two), then one insert for
/// new instances, one update for the rest (each guarded by its version), one for their children.
pub(super) async fn apply_simple_steps<'a>(
    conn: &mut PgConnection,
    steps: &[(usize, &'a StepWrite)],
    acc: &mut StepRows<'a>,
) -> Result<Vec<(usize, Result<WriteOutcome, WriteError>)>, Error> {
    if steps.is_empty() {
        return Ok(Vec::new());
    }
    let mut jobs: Vec<&str> = steps
        .iter()
        .flat_map(|(_, s)| s.all_guards())
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
        let rows = sqlx::query(LOCK_JOBS).bind(serde_json::to_string(&jobs)?).fetch_all(&mut *conn).await?;
        for row in rows {
            if row.try_get::<&str, _>("state")? == "locked" {
                held.insert((row.try_get("id")?, row.try_get("lock_epoch")?));
            }
        }
    }
    let mut owed: Vec<&str> = steps.iter().filter_map(|(_, s)| s.consume_pending.as_deref()).collect();
    let mut still_owed: HashSet<String> = HashSet::new();
    if !owed.is_empty() {
        owed.sort_unstable();
        owed.dedup();
        let rows = sqlx::query(LOCK_PENDING).bind(serde_json::to_string(&owed)?).fetch_all(&mut *conn).await?;
        for row in rows {
            still_owed.insert(row.try_get("id")?);
        }
    }
    let waiting = buffered_waiting(conn, steps).await?;
    let mut refused: HashMap<usize, WriteError> = HashMap::new();
    let (mut inserts, mut updates) = (Vec::new(), Vec::new());
    for (i, step) in steps {
        let stale = step.all_guards().find_map(|g| match g {
            Guard::JobLocked { job, epoch } if !held.contains(&(job.clone(), *epoch)) => {
                Some(WriteError::StaleEpoch { job: job.clone(), epoch: *epoch })
            }
            _ => None,
        });
        let buffered = step
            .all_guards()
            .any(|g| match g {
                Guard::NoBufferedMessage { name, key, .. } => waiting.iter().any(|(n, k)| n == name && k == key),
                _ => false,
            })
            .then_some(WriteError::BufferedMessageWaiting);
        let gone =
            step.consume_pending.as_ref().filter(|id| !still_owed.contains(*id)).map(|_| WriteError::PendingGone);
        if let Some(refusal) = stale.or(buffered).or(gone) {
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
    // The children of the steps written: a child that exists already breaks the batch, as it does
    // for a step checked alone.
    let children: Vec<&InstanceRow> = steps
        .iter()
        .filter(|(i, step)| !refused.contains_key(i) && written.contains(&step.instance.id))
        .flat_map(|(_, step)| step.new_children())
        .collect();
    if !children.is_empty() {
        let inserted = insert_instances(conn, children.iter().map(|c| instance_json(c, None)).collect()).await?;
        if let Some(child) = children.iter().find(|c| !inserted.contains(&c.id)) {
            return Err(Error::Corrupt(format!("child instance `{}` exists already", child.id)));
        }
    }
    Ok(simple_outcomes(steps, refused, |_, step| written.contains(&step.instance.id), acc))
}

/// Locks the correlations the steps' subscriptions open (sorted, so batches take them in one
/// order) and reads which of them have a buffered message waiting: (name, key) pairs, usually none.
async fn buffered_waiting(
    conn: &mut PgConnection,
    steps: &[(usize, &StepWrite)],
) -> Result<Vec<(String, String)>, Error> {
    let mut guards: Vec<(&str, &str, String)> = steps
        .iter()
        .flat_map(|(_, s)| s.all_guards())
        .filter_map(|g| match g {
            Guard::NoBufferedMessage { name, key, now, .. } => Some((name.as_str(), key.as_str(), ts(*now))),
            _ => None,
        })
        .collect();
    if guards.is_empty() {
        return Ok(Vec::new());
    }
    let mut locks: Vec<String> = guards.iter().map(|(name, key, _)| correlation_lock(name, key)).collect();
    locks.sort_unstable();
    locks.dedup();
    sqlx::query(LOCK_CORRELATIONS).bind(&locks).execute(&mut *conn).await?;
    guards.sort_unstable();
    let names: Vec<&str> = guards.iter().map(|g| g.0).collect();
    let keys: Vec<&str> = guards.iter().map(|g| g.1).collect();
    let nows: Vec<&str> = guards.iter().map(|g| g.2.as_str()).collect();
    let rows = sqlx::query(BUFFERED_WAITING).bind(names).bind(keys).bind(nows).fetch_all(&mut *conn).await?;
    rows.iter().map(|r| Ok((r.try_get("name")?, r.try_get("key")?))).collect()
}

/// The statement for each `Table`, in its order, where `$1` is the rows as a JSON array. Rows
/// changed by id are joined through `batch_rows` (see its migration), which the planner takes
/// for one row, so that the plan it caches reads the primary key.
pub(super) const FLUSH: [&str; TABLES] = [
    "INSERT INTO jobs (id, instance_id, node, job_type, input, idempotency_key, retries, attempt, state, due_at) \
     SELECT id, instance_id, node, job_type, input, idempotency_key, retries, attempt, state, due_at \
     FROM jsonb_to_recordset($1::jsonb) AS r(id text, instance_id text, node text, job_type text, input text, \
     idempotency_key text, retries bigint, attempt bigint, state text, due_at text)",
    "UPDATE jobs SET state = r.state, due_at = COALESCE(r.due_at, jobs.due_at), \
     attempt = COALESCE(r.attempt, jobs.attempt), lock_owner = NULL, lock_expires_at = NULL \
     FROM batch_rows($1::jsonb) AS b(row) CROSS JOIN LATERAL jsonb_to_record(b.row) \
     AS r(id text, state text, due_at text, attempt bigint) WHERE jobs.id = r.id",
    "INSERT INTO tasks (id, instance_id, node, title, roles, assignee, form, due_at, created_at) \
     SELECT id, instance_id, node, title, roles, assignee, form, due_at, created_at \
     FROM jsonb_to_recordset($1::jsonb) AS r(id text, instance_id text, node text, title text, roles text, \
     assignee text, form text, due_at text, created_at text)",
    "UPDATE tasks SET assignee = r.assignee, claimed_by = NULL \
     FROM batch_rows($1::jsonb) AS b(row) CROSS JOIN LATERAL jsonb_to_record(b.row) \
     AS r(id text, assignee text) WHERE tasks.id = r.id",
    "UPDATE tasks SET state = r.state, completed_by = r.completed_by \
     FROM batch_rows($1::jsonb) AS b(row) CROSS JOIN LATERAL jsonb_to_record(b.row) \
     AS r(id text, state text, completed_by text) WHERE tasks.id = r.id",
    // A timer moved is free to be claimed again at its new time.
    "INSERT INTO timers (id, instance_id, node, due_at) SELECT id, instance_id, node, due_at \
     FROM jsonb_to_recordset($1::jsonb) AS r(id text, instance_id text, node text, due_at text) \
     ON CONFLICT (id) DO UPDATE SET due_at = excluded.due_at, node = excluded.node, claimed_until = NULL",
    "DELETE FROM timers USING batch_rows($1::jsonb) AS b(row) WHERE timers.id = b.row->>'id'",
    "INSERT INTO subscriptions (id, instance_id, node, message_name, correlation_key) \
     SELECT id, instance_id, node, message_name, correlation_key FROM jsonb_to_recordset($1::jsonb) \
     AS r(id text, instance_id text, node text, message_name text, correlation_key text)",
    "DELETE FROM subscriptions USING batch_rows($1::jsonb) AS b(row) WHERE subscriptions.id = b.row->>'id'",
    "INSERT INTO incidents (id, instance_id, node, job_id, message, raised_at) \
     SELECT id, instance_id, node, job_id, message, raised_at FROM jsonb_to_recordset($1::jsonb) \
     AS r(id text, instance_id text, node text, job_id text, message text, raised_at text)",
    "UPDATE incidents SET state = 'resolved' FROM batch_rows($1::jsonb) AS b(row) WHERE incidents.id = b.row->>'id'",
    "INSERT INTO events (instance_id, seq, at, event, history_seq, prev_hash, entries, people) \
     SELECT instance_id, seq, at, event, history_seq, prev_hash, entries, people FROM jsonb_to_recordset($1::jsonb) \
     AS r(instance_id text, seq bigint, at text, event text, history_seq bigint, prev_hash text, entries text, \
     people text)",
    "INSERT INTO pending_events (id, instance_id, event) SELECT id, instance_id, event \
     FROM jsonb_to_recordset($1::jsonb) AS r(id text, instance_id text, event text)",
    "DELETE FROM pending_events USING batch_rows($1::jsonb) AS b(row) WHERE pending_events.id = b.row->>'id'",
    "INSERT INTO notifications (id, instance_id, kind, subject, payload, created_at, next_attempt_at) \
     SELECT id, instance_id, kind, subject, payload, created_at, created_at FROM jsonb_to_recordset($1::jsonb) \
     AS r(id text, instance_id text, kind text, subject text, payload text, created_at text) \
     ON CONFLICT (id) DO NOTHING",
];

/// Writes the collected rows of a batch's steps, then queues the notifications they owe
/// (delivered only if the batch commits).
pub(super) async fn flush(conn: &mut PgConnection, rows: &mut StepRows<'_>, node: &str) -> Result<(), Error> {
    for (table, columns, list) in rows.take() {
        with_rows(conn, FLUSH[table as usize], json_records(columns, &list)).await?;
    }
    for (wake, channel) in [
        (rows.wake_jobs, JOBS_CHANNEL),
        (rows.wake_timers, TIMERS_CHANNEL),
        (rows.wake_deployments, DEPLOYMENTS_CHANNEL),
    ] {
        if wake {
            sqlx::query("SELECT pg_notify($1, $2)").bind(channel).bind(node).execute(&mut *conn).await?;
        }
    }
    Ok(())
}
