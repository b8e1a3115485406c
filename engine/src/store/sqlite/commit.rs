//! One batch of writes in one SQLite transaction, on the writer's own connection ([`Direct`]).
//!
//! A batch keeps its statement count small: every fetch of the batch is served by two
//! statements; the job-epoch and free-task guards, instance versions and new instance ids of all
//! steps are checked by one, which returns only what fails; the new instances are inserted by
//! one, the versioned updates made by one, and the rows of the accepted steps written a table at
//! a time, each in one multi-row statement with bound parameters, padded to a power of two (see
//! [`Direct::values`]). Steps with rarer checks (a buffered message, an owed event, a child to
//! start) are checked one by one; a refused step changes nothing.
//!
//! The bulk inserts and updates here are `OR FAIL`: a statement that fails fails its batch,
//! whose transaction is rolled back whole (and each write then tried alone), so SQLite need not
//! keep a statement journal to undo one multi-row statement on its own (about 6 % of the
//! writer's thread under `perf`, in the human-task bench).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::json;

use super::super::batch::{Cell, StepRows, TABLES};
use super::super::rows;
use super::super::rows::Columns;
use super::super::sql::Arg;
use super::super::writes::{apply_other, apply_step, simple_outcomes};
use super::super::{Error, Guard, LockedJob, StepWrite, Write, WriteError, WriteOutcome, ts};
use super::direct::{Direct, borrowed};
use super::glob_pattern;

/// The answers to some writes of a batch, each beside its index in the batch.
type Answers = Vec<(usize, Result<WriteOutcome, WriteError>)>;

/// Applies `batch` in one transaction: every write is answered, or the whole batch fails (and
/// changes nothing).
pub(super) async fn write_batch(
    conn: &mut Direct,
    batch: &[Write],
) -> Result<Vec<Result<WriteOutcome, WriteError>>, Error> {
    conn.begin()?;
    match batch_writes(conn, batch).await {
        Ok(results) => {
            conn.commit()?;
            Ok(results)
        }
        Err(error) => {
            conn.rollback();
            Err(error)
        }
    }
}

async fn batch_writes(conn: &mut Direct, batch: &[Write]) -> Result<Vec<Result<WriteOutcome, WriteError>>, Error> {
    let mut acc = StepRows::default();
    let mut results: Vec<Option<Result<WriteOutcome, WriteError>>> = Vec::with_capacity(batch.len());
    results.resize_with(batch.len(), || None);
    // Writes that arrive together are concurrent, so any order is a valid one. Everything but
    // steps goes first (claims, fetches, buffered messages, deployments), then the steps,
    // whose rows are written together at the end: a handful of statements per batch.
    // Steps still see what the earlier writes did: their guards read claims and buffered
    // messages, which are written at once.
    let mut fetches: Vec<usize> = Vec::new();
    for (i, write) in batch.iter().enumerate() {
        match write {
            Write::Step(_) => {}
            Write::FetchJobs { .. } => fetches.push(i),
            other => results[i] = Some(apply_other(conn, other, &mut acc).await?),
        }
    }
    for (i, outcome) in fetch_jobs(conn, batch, &fetches)? {
        results[i] = Some(outcome);
    }
    // A second step of one instance in the same batch loaded the state the first replaces.
    let mut seen = HashSet::new();
    let mut simple = Vec::new();
    for (i, write) in batch.iter().enumerate() {
        let Write::Step(step) = write else { continue };
        if !seen.insert(step.instance.id.as_str()) {
            results[i] = Some(Err(WriteError::Conflict(step.instance.id.clone())));
        } else if is_simple(step) {
            simple.push((i, step.as_ref()));
        } else {
            results[i] = Some(apply_step(conn, step, &mut acc).await?);
        }
    }
    for (i, outcome) in apply_simple_steps(conn, &simple, &mut acc)? {
        results[i] = Some(outcome);
    }
    flush(conn, &mut acc)?;
    Ok(results.into_iter().map(|r| r.unwrap_or(Ok(WriteOutcome::Done))).collect())
}

/// Serves every fetch of a batch with two statements per set of job types: one finds the due
/// jobs (ready, or leased with the lease run out), one locks them for their requesters.
fn fetch_jobs(conn: &Direct, batch: &[Write], fetches: &[usize]) -> Result<Answers, Error> {
    let mut groups: BTreeMap<Vec<String>, Vec<usize>> = BTreeMap::new();
    for &i in fetches {
        if let Write::FetchJobs { job_types, .. } = &batch[i] {
            let mut key = job_types.clone();
            key.sort();
            groups.entry(key).or_default().push(i);
        }
    }
    let mut out = Vec::with_capacity(fetches.len());
    for (job_types, requests) in groups {
        let mut wanted = 0i64;
        let mut now: Option<DateTime<Utc>> = None;
        for &i in &requests {
            if let Write::FetchJobs { max, now: at, .. } = &batch[i] {
                wanted = wanted.saturating_add((*max).max(0));
                now = Some(now.map_or(*at, |n| n.min(*at)));
            }
        }
        let Some(now) = now else { continue };
        // Exact names use the partial indexes; a pattern (`finance.*`, `*`) becomes a GLOB.
        let wildcard = job_types.iter().any(|t| t.contains('*'));
        let sql = if wildcard {
            "SELECT id FROM (SELECT id, due_at AS at FROM jobs WHERE state = 'ready' AND due_at <= ?2 \
             AND EXISTS (SELECT 1 FROM json_each(?1) WHERE jobs.job_type GLOB value) \
             UNION ALL SELECT id, lock_expires_at AS at FROM jobs WHERE state = 'locked' \
             AND lock_expires_at <= ?2 AND EXISTS (SELECT 1 FROM json_each(?1) WHERE jobs.job_type GLOB value)) \
             ORDER BY at, id LIMIT ?3"
        } else {
            "SELECT id FROM (SELECT id, due_at AS at FROM jobs WHERE state = 'ready' AND due_at <= ?2 \
             AND job_type IN (SELECT value FROM json_each(?1)) \
             UNION ALL SELECT id, lock_expires_at AS at FROM jobs WHERE state = 'locked' \
             AND lock_expires_at <= ?2 AND job_type IN (SELECT value FROM json_each(?1))) \
             ORDER BY at, id LIMIT ?3"
        };
        let patterns: Vec<String> =
            if wildcard { job_types.iter().map(|t| glob_pattern(t)).collect() } else { job_types.clone() };
        let patterns = json!(patterns).to_string();
        let due = ts(now);
        let candidates = conn.rows(sql, &[Arg::Text(Some(&patterns)), Arg::Text(Some(&due)), Arg::Int(wanted)])?;
        let mut ids = candidates.iter().map(|r| r.text("id")).collect::<Result<Vec<_>, _>>()?.into_iter();
        let mut owner: HashMap<String, usize> = HashMap::new();
        let mut rows = Vec::new();
        for &i in &requests {
            if let Write::FetchJobs { worker, max, lease_until, .. } = &batch[i] {
                for id in ids.by_ref().take(usize::try_from(*max).unwrap_or(0)) {
                    owner.insert(id.clone(), i);
                    rows.push(vec![
                        Cell::Text(Cow::Owned(id)),
                        Cell::Text(Cow::Borrowed(worker)),
                        Cell::Text(Cow::Owned(ts(*lease_until))),
                    ]);
                }
            }
        }
        let mut locked: HashMap<usize, Vec<LockedJob>> = HashMap::new();
        if !rows.is_empty() {
            let head = "UPDATE OR FAIL jobs SET state = 'locked', lock_owner = u.column2, lock_epoch = lock_epoch + 1, \
                        lock_expires_at = u.column3 FROM (";
            let tail = ") AS u WHERE jobs.id = u.column1 RETURNING jobs.id AS id, instance_id, node, job_type, \
                        input, idempotency_key, attempt, lock_epoch, lock_expires_at";
            for r in conn.values(head, tail, 3, rows)? {
                let job = rows::locked_job(&r)?;
                let Some(&i) = owner.get(&job.id.0) else { continue };
                locked.entry(i).or_default().push(job);
            }
        }
        for i in requests {
            let mut jobs = locked.remove(&i).unwrap_or_default();
            jobs.sort_by(|a, b| a.id.cmp(&b.id));
            out.push((i, Ok(WriteOutcome::Jobs(jobs))));
        }
    }
    Ok(out)
}

/// A step whose only checks are job epochs, free tasks and its instance's version: checked in
/// bulk.
fn is_simple(step: &StepWrite) -> bool {
    step.guards.iter().all(|g| matches!(g, Guard::JobLocked { .. } | Guard::TaskFree { .. }))
        && step.record_message.is_none()
        && step.consume_messages.is_empty()
        && step.consume_pending.is_none()
        && step.children.is_empty()
        && step.started.is_empty()
}

/// Checks and writes many simple steps with a few statements: one checks every job-epoch and
/// free-task guard, every updated instance's version and every new instance's id (neither live
/// nor archived); then one inserts the new instances and one updates the rest (each still
/// guarded by its version). The check returns only what fails (usually nothing).
fn apply_simple_steps<'a>(
    conn: &Direct,
    steps: &[(usize, &'a StepWrite)],
    acc: &mut StepRows<'a>,
) -> Result<Answers, Error> {
    if steps.is_empty() {
        return Ok(Vec::new());
    }
    // (order, step, kind, key, number, user): a step is refused for its first failing guard.
    let mut checks: Vec<Vec<Cell<'_>>> = Vec::new();
    for (i, step) in steps {
        let mut check = |kind: &'static str, key: &'a str, number: Option<i64>, user: Option<&'a str>| {
            checks.push(vec![
                Cell::Int(checks.len() as i64),
                Cell::Int(*i as i64),
                borrowed(kind),
                borrowed(key),
                Cell::OptInt(number),
                Cell::OptText(user.map(Cow::Borrowed)),
            ]);
        };
        for guard in &step.guards {
            match guard {
                Guard::JobLocked { job, epoch } => check("job", job, Some(*epoch), None),
                Guard::TaskFree { task, user } => check("task", task, None, Some(user)),
                Guard::NoBufferedMessage { .. } => {}
            }
        }
        match step.expected_version {
            Some(expected) => check("version", &step.instance.id, Some(expected), None),
            None => check("new", &step.instance.id, None, None),
        }
    }
    let head = "SELECT u.column2 AS i, u.column3 AS kind, u.column4 AS key, u.column5 AS number FROM (";
    let tail = ") AS u WHERE u.column1 IS NOT NULL AND CASE u.column3 \
         WHEN 'job' THEN NOT EXISTS (SELECT 1 FROM jobs WHERE id = u.column4 AND state = 'locked' \
         AND lock_epoch = u.column5) \
         WHEN 'task' THEN NOT EXISTS (SELECT 1 FROM tasks WHERE id = u.column4 AND state = 'open' \
         AND (claimed_by IS NULL OR claimed_by = u.column6)) \
         WHEN 'version' THEN NOT EXISTS (SELECT 1 FROM instances WHERE id = u.column4 AND version = u.column5) \
         ELSE EXISTS (SELECT 1 FROM instances WHERE id = u.column4) \
         OR EXISTS (SELECT 1 FROM archived_instances WHERE id = u.column4) END ORDER BY u.column1";
    let mut refused: HashMap<usize, WriteError> = HashMap::new();
    // Steps whose instance moved on (or, for a new one, exists or was archived): not written.
    let mut stale: HashSet<usize> = HashSet::new();
    for row in conn.values(head, tail, 6, checks)? {
        let i = usize::try_from(row.int("i")?).map_err(|_| Error::Corrupt("check index".into()))?;
        let key = row.text("key")?;
        match row.text("kind")?.as_str() {
            "job" => {
                let epoch = row.int("number")?;
                refused.entry(i).or_insert(WriteError::StaleEpoch { job: key, epoch });
            }
            "task" => {
                refused.entry(i).or_insert(WriteError::TaskTaken { task: key });
            }
            _ => {
                stale.insert(i);
            }
        }
    }
    let mut inserts = Vec::new();
    let mut updates = Vec::new();
    for (i, step) in steps {
        if refused.contains_key(i) || stale.contains(i) {
            continue;
        }
        let r = &step.instance;
        match step.expected_version {
            None => inserts.push(vec![
                borrowed(&r.id),
                borrowed(&r.process_key),
                Cell::Int(i64::from(r.process_version)),
                borrowed(r.status.as_str()),
                Cell::OptText(r.business_key.as_deref().map(Cow::Borrowed)),
                Cell::OptText(r.parent_id.as_deref().map(Cow::Borrowed)),
                Cell::OptText(r.parent_call.as_deref().map(Cow::Borrowed)),
                borrowed(&r.state),
                Cell::Int(r.version),
                Cell::Int(r.history_seq),
                borrowed(&r.history_hash),
                Cell::Text(Cow::Owned(ts(r.at))),
                Cell::Text(Cow::Owned(ts(r.at))),
            ]),
            Some(expected) => updates.push(vec![
                borrowed(&r.id),
                borrowed(r.status.as_str()),
                borrowed(&r.state),
                Cell::Int(r.version),
                Cell::Int(r.history_seq),
                borrowed(&r.history_hash),
                Cell::Text(Cow::Owned(ts(r.at))),
                Cell::Int(expected),
                Cell::Int(i64::from(r.process_version)),
            ]),
        }
    }
    if !inserts.is_empty() {
        let head = "INSERT OR FAIL INTO instances (id, process_key, process_version, status, business_key, parent_id, \
                    parent_call, state, version, history_seq, history_hash, created_at, updated_at) SELECT * FROM (";
        conn.values(head, ") WHERE column1 IS NOT NULL", 13, inserts)?;
    }
    if !updates.is_empty() {
        // The process version changes only when an instance migrates; it is written with every step.
        let head = "UPDATE OR FAIL instances SET status = u.column2, state = u.column3, version = u.column4, \
                    history_seq = u.column5, history_hash = u.column6, updated_at = u.column7, \
                    process_version = u.column9 FROM (";
        let tail = ") AS u WHERE instances.id = u.column1 AND instances.version = u.column8";
        conn.values(head, tail, 9, updates)?;
    }
    // The check ran in this transaction on the only writer: every step it passed is written.
    Ok(simple_outcomes(steps, refused, |i, _| !stale.contains(&i), acc))
}

/// Writes the collected rows of a batch's steps, a table at a time.
fn flush(conn: &Direct, rows: &mut StepRows<'_>) -> Result<(), Error> {
    // An insert's tail: the rows of NULLs that pad its values are not inserted.
    const INSERTED: &str = ") WHERE column1 IS NOT NULL";
    // (head, tail) for each `Table`, in its order.
    const STATEMENTS: [(&str, &str); TABLES] = [
        (
            "INSERT OR FAIL INTO jobs (id, instance_id, node, job_type, input, idempotency_key, retries, attempt, state, \
             due_at) SELECT * FROM (",
            INSERTED,
        ),
        (
            "UPDATE OR FAIL jobs SET state = u.column2, due_at = COALESCE(u.column3, jobs.due_at), \
             attempt = COALESCE(u.column4, jobs.attempt), lock_owner = NULL, lock_expires_at = NULL FROM (",
            ") AS u WHERE jobs.id = u.column1",
        ),
        (
            "INSERT OR FAIL INTO tasks (id, instance_id, node, title, roles, assignee, form, due_at, created_at) SELECT * FROM (",
            INSERTED,
        ),
        (
            "UPDATE OR FAIL tasks SET assignee = u.column2, claimed_by = NULL FROM (",
            ") AS u WHERE tasks.id = u.column1",
        ),
        (
            "UPDATE OR FAIL tasks SET state = u.column2, completed_by = u.column3 FROM (",
            ") AS u WHERE tasks.id = u.column1",
        ),
        (
            "INSERT OR FAIL INTO timers (id, instance_id, node, due_at) SELECT * FROM (",
            ") WHERE column1 IS NOT NULL ON CONFLICT (id) DO UPDATE SET due_at = excluded.due_at, node = excluded.node",
        ),
        ("DELETE FROM timers WHERE id IN (", ")"),
        (
            "INSERT OR FAIL INTO subscriptions (id, instance_id, node, message_name, correlation_key) SELECT * FROM (",
            INSERTED,
        ),
        ("DELETE FROM subscriptions WHERE id IN (", ")"),
        ("INSERT OR FAIL INTO incidents (id, instance_id, node, job_id, message, raised_at) SELECT * FROM (", INSERTED),
        ("UPDATE OR FAIL incidents SET state = 'resolved' WHERE id IN (", ")"),
        (
            "INSERT OR FAIL INTO events (instance_id, seq, at, event, history_seq, prev_hash, entries, people) SELECT * FROM (",
            INSERTED,
        ),
        ("INSERT OR FAIL INTO pending_events (id, instance_id, event) SELECT * FROM (", INSERTED),
        ("DELETE FROM pending_events WHERE id IN (", ")"),
        (
            "INSERT OR FAIL INTO notifications (id, instance_id, kind, subject, payload, created_at, next_attempt_at) \
             SELECT column1, column2, column3, column4, column5, column6, column6 FROM (",
            ") WHERE column1 IS NOT NULL ON CONFLICT (id) DO NOTHING",
        ),
    ];
    for (table, columns, list) in rows.take() {
        let (head, tail) = STATEMENTS[table as usize];
        conn.values(head, tail, columns.len(), list)?;
    }
    Ok(())
}
