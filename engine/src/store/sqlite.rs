//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! Writes go through one connection (SQLite has one writer anyway); reads use a small pool.
//! [`Store::write`](super::Store::write) opens one transaction per batch and keeps the statement count per batch
//! small, because each statement costs a round trip to sqlx's connection thread (and each row it
//! returns a message): every fetch of the batch is served by two statements; the job-epoch and
//! free-task guards, instance versions and new instance ids of all steps are checked by one,
//! which returns only what fails; the new instances are inserted by one, the versioned updates
//! made by one, and the rows of the accepted steps written a table at a time, each in one
//! multi-row statement with bound parameters, padded to a power of two (see [`values`]). Steps
//! with rarer checks (a buffered message, an owed event, a child to start) are checked one by
//! one; a refused step changes nothing.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::sqlite::SqliteArguments;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Arguments as _, Row, SqliteConnection};

use super::batch::{Cell, StepRows, TABLES};
use super::reads::{Backend, in_firing_order};
use super::rows;
use super::rows::Columns;
use super::sql::{Arg, Dialect, Reader, first_instant, sqlite_query};
use super::writes::{Tx, apply_other, apply_step, simple_outcomes};
use super::{Error, Guard, InstanceRow, LockedJob, StepWrite, Write, WriteError, WriteOutcome, ts};

/// Creates a missing database file readable and writable by its owner only (0600): it holds
/// orders, amounts and customers. SQLite gives its `-wal` and `-shm` files the same mode.
/// A file that exists already keeps its mode; any other failure is left for the open that
/// follows to report in its own words.
pub fn create_private(path: &Path) {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let _ = options.open(path);
}

/// Prepared statements the write connection keeps.
const WRITER_STATEMENTS: usize = 1024;

/// The SQLite implementation of [`Store`](super::Store). Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path` and applies the migrations.
    pub async fn open(path: &Path) -> Result<SqliteStore, Error> {
        create_private(path);
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        // The writer's statements come in many shapes (a table's rows padded to 1, 2, 4 ... 256):
        // a cache that holds them all never prepares one twice. Its page cache holds the indexes
        // that every step touches (64 MiB instead of 2).
        let writer_options = options.clone().statement_cache_capacity(WRITER_STATEMENTS).pragma("cache_size", "-65536");
        let write = SqlitePoolOptions::new().max_connections(1).min_connections(1).connect_with(writer_options).await?;
        // Other crates (the sub-ledger) keep their own migrations in the same database.
        let mut migrator = sqlx::migrate!("./migrations");
        migrator.set_ignore_missing(true);
        migrator.run(&write).await?;
        let read = SqlitePoolOptions::new().max_connections(4).connect_with(options.read_only(true)).await?;
        Ok(SqliteStore { read, write })
    }

    /// The write pool (one connection), for tools and tests that need raw SQL.
    pub fn pool(&self) -> &SqlitePool {
        &self.write
    }

    /// The read pool (several read-only connections), for listings and reports.
    pub fn reader(&self) -> &SqlitePool {
        &self.read
    }

    /// Closes both pools.
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    async fn write_batch(&self, batch: &[Write]) -> Result<Vec<Result<WriteOutcome, WriteError>>, Error> {
        // IMMEDIATE takes the write lock up front (waiting out other writers, such as the
        // sub-ledger's, through the busy timeout): a deferred transaction that reads first and
        // then writes fails at once with "database is locked" when another writer got in between.
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
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
                other => results[i] = Some(apply_other(&mut *tx, other, &mut acc).await?),
            }
        }
        for (i, outcome) in fetch_jobs(&mut tx, batch, &fetches).await? {
            results[i] = Some(outcome);
        }
        // A second step of one instance in the same batch loaded the state the first replaces.
        let mut seen = std::collections::HashSet::new();
        let mut simple = Vec::new();
        for (i, write) in batch.iter().enumerate() {
            let Write::Step(step) = write else { continue };
            if !seen.insert(step.instance.id.as_str()) {
                results[i] = Some(Err(WriteError::Conflict(step.instance.id.clone())));
            } else if is_simple(step) {
                simple.push((i, step.as_ref()));
            } else {
                results[i] = Some(apply_step(&mut *tx, step, &mut acc).await?);
            }
        }
        for (i, outcome) in apply_simple_steps(&mut tx, &simple, &mut acc).await? {
            results[i] = Some(outcome);
        }
        flush(&mut tx, &mut acc).await?;
        tx.commit().await?;
        Ok(results.into_iter().map(|r| r.unwrap_or(Ok(WriteOutcome::Done))).collect())
    }
}

/// Serves every fetch of a batch with two statements per set of job types: one finds the due
/// jobs (ready, or leased with the lease run out), one locks them for their requesters.
async fn fetch_jobs(
    conn: &mut SqliteConnection,
    batch: &[Write],
    fetches: &[usize],
) -> Result<Vec<(usize, Result<WriteOutcome, WriteError>)>, Error> {
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
        let candidates =
            sqlx::query(sql).bind(json!(patterns).to_string()).bind(ts(now)).bind(wanted).fetch_all(&mut *conn).await?;
        let mut ids =
            candidates.iter().map(|r| r.try_get::<String, _>("id")).collect::<Result<Vec<_>, _>>()?.into_iter();
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
            let head = "UPDATE jobs SET state = 'locked', lock_owner = u.column2, lock_epoch = lock_epoch + 1, \
                        lock_expires_at = u.column3 FROM (";
            let tail = ") AS u WHERE jobs.id = u.column1 RETURNING jobs.id AS id, instance_id, node, job_type, \
                        input, idempotency_key, attempt, lock_epoch, lock_expires_at";
            for r in values(conn, head, tail, 3, rows).await? {
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

/// A job-type pattern as a GLOB: `*` is the only wildcard; GLOB's other specials match literally.
pub(super) fn glob_pattern(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        match c {
            '?' => out.push_str("[?]"),
            '[' => out.push_str("[[]"),
            other => out.push(other),
        }
    }
    out
}

/// A step whose only checks are job epochs, free tasks and its instance's version: checked in
/// bulk.
fn is_simple(step: &StepWrite) -> bool {
    step.guards.iter().all(|g| matches!(g, Guard::JobLocked { .. } | Guard::TaskFree { .. }))
        && step.record_message.is_none()
        && step.consume_messages.is_empty()
        && step.consume_pending.is_none()
        && step.children.is_empty()
}

/// Checks and writes many simple steps with a few statements: one checks every job-epoch and
/// free-task guard, every updated instance's version and every new instance's id (neither live
/// nor archived); then one inserts the new instances and one updates the rest (each still
/// guarded by its version). The check returns only what fails (usually nothing), and the writes
/// return no rows: each row that comes back from sqlx's SQLite thread is a message of its own.
async fn apply_simple_steps<'a>(
    conn: &mut SqliteConnection,
    steps: &[(usize, &'a StepWrite)],
    acc: &mut StepRows<'a>,
) -> Result<Vec<(usize, Result<WriteOutcome, WriteError>)>, Error> {
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
    for row in values(conn, head, tail, 6, checks).await? {
        let i: i64 = row.try_get("i")?;
        let i = usize::try_from(i).map_err(|_| Error::Corrupt("check index".into()))?;
        let key: String = row.try_get("key")?;
        match row.try_get::<&str, _>("kind")? {
            "job" => {
                let epoch: i64 = row.try_get("number")?;
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
        let head = "INSERT INTO instances (id, process_key, process_version, status, business_key, parent_id, \
                    parent_call, state, version, history_seq, history_hash, created_at, updated_at) SELECT * FROM (";
        values(conn, head, ") WHERE column1 IS NOT NULL", 13, inserts).await?;
    }
    if !updates.is_empty() {
        // The process version changes only when an instance migrates; it is written with every step.
        let head = "UPDATE instances SET status = u.column2, state = u.column3, version = u.column4, \
                    history_seq = u.column5, history_hash = u.column6, updated_at = u.column7, \
                    process_version = u.column9 FROM (";
        let tail = ") AS u WHERE instances.id = u.column1 AND instances.version = u.column8";
        values(conn, head, tail, 9, updates).await?;
    }
    // The check ran in this transaction on the only writer: every step it passed is written.
    Ok(simple_outcomes(steps, refused, |i, _| !stale.contains(&i), acc))
}

impl Backend for SqliteStore {
    async fn commit(&self, batch: Vec<Write>) -> Vec<Result<WriteOutcome, WriteError>> {
        match self.write_batch(&batch).await {
            Ok(results) => results,
            Err(error) if batch.len() == 1 => vec![Err(WriteError::Store(Arc::new(error)))],
            Err(error) => {
                // One write broke the batch: apply each alone so the others still land.
                tracing::warn!(%error, size = batch.len(), "batch failed; writing one by one");
                let mut results = Vec::with_capacity(batch.len());
                for write in &batch {
                    let one = match self.write_batch(std::slice::from_ref(write)).await {
                        Ok(mut r) => r.pop().unwrap_or(Ok(WriteOutcome::Done)),
                        Err(error) => Err(WriteError::Store(Arc::new(error))),
                    };
                    results.push(one);
                }
                results
            }
        }
    }

    async fn take_due_timers(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<(String, String)>, Error> {
        let now = ts(now);
        let sql = "SELECT id, instance_id, due_at FROM timers WHERE due_at <= $1 ORDER BY due_at, id LIMIT $2";
        let rows = self.rows(sql, vec![Arg::Text(Some(&now)), Arg::Int(limit)]).await?;
        let due = rows
            .iter()
            .map(|r| Ok((r.text("due_at")?, r.text("id")?, r.text("instance_id")?)))
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(in_firing_order(due))
    }

    async fn next_takeable_timer(&self) -> Result<Option<DateTime<Utc>>, Error> {
        first_instant(&self.rows("SELECT MIN(due_at) AS due FROM timers", vec![]).await?, "due")
    }
}

impl Tx for SqliteConnection {
    type Row = SqliteRow;

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn fetch(&mut self, sql: &str, args: Vec<Arg<'_>>) -> Result<Vec<SqliteRow>, Error> {
        Ok(sqlite_query(sql, args)?.fetch_all(&mut *self).await?)
    }

    async fn execute(&mut self, sql: &str, args: Vec<Arg<'_>>) -> Result<u64, Error> {
        Ok(sqlite_query(sql, args)?.execute(&mut *self).await?.rows_affected())
    }

    /// SQLite has one writer: a transaction that writes excludes every other already.
    async fn exclusive(&mut self, _name: &str) -> Result<(), Error> {
        Ok(())
    }

    async fn write_instances(&mut self, rows: Vec<(&InstanceRow, Option<i64>)>) -> Result<HashSet<String>, Error> {
        let mut written = HashSet::new();
        for (row, expected) in rows {
            let changed = match expected {
                None => insert_instance(self, row).await?,
                Some(expected) => update_instance(self, row, expected).await?,
            };
            if changed > 0 {
                written.insert(row.id.clone());
            }
        }
        Ok(written)
    }
}

async fn update_instance(conn: &mut SqliteConnection, row: &InstanceRow, expected: i64) -> Result<u64, Error> {
    Ok(sqlx::query(
        "UPDATE instances SET status = ?2, state = ?3, version = ?4, history_seq = ?5, history_hash = ?6, \
             updated_at = ?7, process_version = ?9 WHERE id = ?1 AND version = ?8",
    )
    .bind(&row.id)
    .bind(row.status.as_str())
    .bind(&row.state)
    .bind(row.version)
    .bind(row.history_seq)
    .bind(&row.history_hash)
    .bind(ts(row.at))
    .bind(expected)
    .bind(row.process_version)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

async fn insert_instance(conn: &mut SqliteConnection, row: &InstanceRow) -> Result<u64, Error> {
    let at = ts(row.at);
    Ok(sqlx::query(
        "INSERT INTO instances (id, process_key, process_version, status, business_key, parent_id, parent_call, \
         state, version, history_seq, history_hash, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&row.id)
    .bind(&row.process_key)
    .bind(row.process_version)
    .bind(row.status.as_str())
    .bind(&row.business_key)
    .bind(&row.parent_id)
    .bind(&row.parent_call)
    .bind(&row.state)
    .bind(row.version)
    .bind(row.history_seq)
    .bind(&row.history_hash)
    .bind(at)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

fn borrowed(value: &str) -> Cell<'_> {
    Cell::Text(Cow::Borrowed(value))
}

/// Runs `head VALUES (?, ...), (?, ...) tail` over `rows` (each `cols` values): one statement for
/// up to 256 rows (fewer for wide ones), padded with rows of NULLs to a power of two, so that a
/// few statement shapes serve every batch (and stay cached) and a table costs a batch one round
/// trip to sqlx's SQLite thread rather than one per power of two in its row count. Every
/// statement must ignore a row whose first value is NULL: an insert selects from the values
/// `WHERE column1 IS NOT NULL`, an update or delete by id matches no NULL id. Text is bound as it
/// is borrowed, without a copy on this side.
async fn values(
    conn: &mut SqliteConnection,
    head: &str,
    tail: &str,
    cols: usize,
    rows: Vec<Vec<Cell<'_>>>,
) -> Result<Vec<sqlx::sqlite::SqliteRow>, Error> {
    let mut out = Vec::new();
    // The most rows a statement takes: a power of two, its binds well within SQLite's 32,766.
    let max = 1usize << (usize::BITS - 1 - (30_000 / cols.max(1)).clamp(1, 256).leading_zeros());
    let mut rows = rows.into_iter().peekable();
    let mut left = rows.len();
    while left > 0 {
        let taken = left.min(max);
        let n = taken.next_power_of_two();
        let sql = values_sql(head, tail, cols, n);
        let mut args = SqliteArguments::default();
        args.reserve(n * cols, 0);
        for row in rows.by_ref().take(taken) {
            for value in row {
                match value {
                    Cell::Text(v) => args.add(v),
                    Cell::OptText(v) => args.add(v),
                    Cell::Int(v) => args.add(v),
                    Cell::OptInt(v) => args.add(v),
                }
                .map_err(sqlx::Error::Encode)?;
            }
        }
        for _ in 0..(n - taken) * cols {
            args.add(None::<&str>).map_err(sqlx::Error::Encode)?;
        }
        out.extend(sqlx::query_with(&sql, args).fetch_all(&mut *conn).await?);
        left -= taken;
    }
    Ok(out)
}

/// `head VALUES (?, ...) × n tail`.
fn values_sql(head: &str, tail: &str, cols: usize, n: usize) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + 16 + n * (cols * 3 + 2));
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for r in 0..n {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            sql.push_str(if c == 0 { "?" } else { ", ?" });
        }
        sql.push(')');
    }
    sql.push(' ');
    sql.push_str(tail);
    sql
}

/// Writes the collected rows of a batch's steps, a table at a time.
async fn flush(conn: &mut SqliteConnection, rows: &mut StepRows<'_>) -> Result<(), Error> {
    // An insert's tail: the rows of NULLs that pad its values are not inserted (see [`values`]).
    const INSERTED: &str = ") WHERE column1 IS NOT NULL";
    // (head, tail) for each `Table`, in its order.
    const STATEMENTS: [(&str, &str); TABLES] = [
        (
            "INSERT INTO jobs (id, instance_id, node, job_type, input, idempotency_key, retries, attempt, state, \
             due_at) SELECT * FROM (",
            INSERTED,
        ),
        (
            "UPDATE jobs SET state = u.column2, due_at = COALESCE(u.column3, jobs.due_at), \
             attempt = COALESCE(u.column4, jobs.attempt), lock_owner = NULL, lock_expires_at = NULL FROM (",
            ") AS u WHERE jobs.id = u.column1",
        ),
        (
            "INSERT INTO tasks (id, instance_id, node, title, roles, assignee, form, due_at, created_at) SELECT * FROM (",
            INSERTED,
        ),
        ("UPDATE tasks SET assignee = u.column2, claimed_by = NULL FROM (", ") AS u WHERE tasks.id = u.column1"),
        ("UPDATE tasks SET state = u.column2, completed_by = u.column3 FROM (", ") AS u WHERE tasks.id = u.column1"),
        (
            "INSERT INTO timers (id, instance_id, node, due_at) SELECT * FROM (",
            ") WHERE column1 IS NOT NULL ON CONFLICT (id) DO UPDATE SET due_at = excluded.due_at, node = excluded.node",
        ),
        ("DELETE FROM timers WHERE id IN (", ")"),
        ("INSERT INTO subscriptions (id, instance_id, node, message_name, correlation_key) SELECT * FROM (", INSERTED),
        ("DELETE FROM subscriptions WHERE id IN (", ")"),
        ("INSERT INTO incidents (id, instance_id, node, job_id, message, raised_at) SELECT * FROM (", INSERTED),
        ("UPDATE incidents SET state = 'resolved' WHERE id IN (", ")"),
        (
            "INSERT INTO events (instance_id, seq, at, event, history_seq, prev_hash, entries, people) SELECT * FROM (",
            INSERTED,
        ),
        ("INSERT INTO pending_events (id, instance_id, event) SELECT * FROM (", INSERTED),
        ("DELETE FROM pending_events WHERE id IN (", ")"),
        (
            "INSERT INTO notifications (id, instance_id, kind, subject, payload, created_at, next_attempt_at) \
             SELECT column1, column2, column3, column4, column5, column6, column6 FROM (",
            ") WHERE column1 IS NOT NULL ON CONFLICT (id) DO NOTHING",
        ),
    ];
    for (table, columns, list) in rows.take() {
        let (head, tail) = STATEMENTS[table as usize];
        values(conn, head, tail, columns.len(), list).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use sqlx::Connection as _;

    use super::*;

    fn rows(ids: &[String]) -> Vec<Vec<Cell<'_>>> {
        ids.iter().zip(0i64..).map(|(id, n)| vec![Cell::Text(Cow::Borrowed(id.as_str())), Cell::Int(n)]).collect()
    }

    /// The rows of NULLs that pad a statement's values to a power of two are neither inserted nor
    /// matched, whatever the count: below one statement's most, and over it (600 rows of two
    /// values take statements of 256, 256 and 128).
    #[tokio::test]
    async fn padded_statements_write_exactly_the_rows_given() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::raw_sql("CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER NOT NULL)").execute(&mut conn).await.unwrap();
        let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);
        for total in [1usize, 3, 5, 600] {
            sqlx::raw_sql("DELETE FROM t").execute(&mut conn).await.unwrap();
            let ids: Vec<String> = (0..total).map(|i| format!("id-{i}")).collect();
            let insert = ("INSERT INTO t (id, n) SELECT * FROM (", ") WHERE column1 IS NOT NULL RETURNING id");
            assert_eq!(values(&mut conn, insert.0, insert.1, 2, rows(&ids)).await.unwrap().len(), total);
            assert_eq!(count("SELECT count(*) FROM t").fetch_one(&mut conn).await.unwrap(), total as i64);

            let odd: Vec<String> = ids.iter().skip(1).step_by(2).cloned().collect();
            let update = ("UPDATE t SET n = -1 FROM (", ") AS u WHERE t.id = u.column1 RETURNING t.id");
            assert_eq!(values(&mut conn, update.0, update.1, 2, rows(&odd)).await.unwrap().len(), odd.len());
            let negative = count("SELECT count(*) FROM t WHERE n = -1").fetch_one(&mut conn).await.unwrap();
            assert_eq!(negative, odd.len() as i64);

            let gone: Vec<Vec<Cell<'_>>> = odd.iter().map(|id| vec![Cell::Text(Cow::Borrowed(id.as_str()))]).collect();
            values(&mut conn, "DELETE FROM t WHERE id IN (", ")", 1, gone).await.unwrap();
            let left = count("SELECT count(*) FROM t").fetch_one(&mut conn).await.unwrap();
            assert_eq!(left, (total - odd.len()) as i64, "{total} rows");
        }
    }
}
