//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! Writes go through one connection (SQLite has one writer anyway); reads use a small pool.
//! [`Store::write`](super::Store::write) opens one transaction per batch and keeps the statement count per batch
//! small, because each statement costs a round trip to sqlx's connection thread: every fetch of
//! the batch is served by two statements, the job-epoch guards of all steps by one, the versioned
//! instance updates by one (`UPDATE ... FROM (VALUES ...) RETURNING` tells which steps won), and
//! the rows of the accepted steps a table at a time, each in one multi-row statement with bound
//! parameters. Steps with rarer checks (a claim, a buffered message, an owed event) are checked
//! one by one; a refused step changes nothing.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqliteConnection};

use super::batch::{Cell, StepRows, TABLES};
use super::reads::Backend;
use super::rows;
use super::sql::{Arg, Reader, first_instant};
use super::{Error, Guard, InstanceRow, LockedJob, MessageRow, StepWrite, Write, WriteError, WriteOutcome, ts};

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
        let write =
            SqlitePoolOptions::new().max_connections(1).min_connections(1).connect_with(options.clone()).await?;
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
                other => results[i] = Some(apply_other(&mut tx, other).await?),
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
                results[i] = Some(apply_step(&mut tx, step, &mut acc).await?);
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
                    rows.push(vec![Cell::Text(id), Cell::Text(worker.clone()), Cell::Text(ts(*lease_until))]);
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

/// A step whose only checks are job epochs and its instance's version: checked in bulk.
fn is_simple(step: &StepWrite) -> bool {
    step.guards.iter().all(|g| matches!(g, Guard::JobLocked { .. }))
        && step.record_message.is_none()
        && step.consume_messages.is_empty()
        && step.consume_pending.is_none()
        && step.children.is_empty()
}

/// Checks and writes many simple steps with a few statements: one for every job-epoch guard,
/// one insert for new instances, one update for the rest (each guarded by its version).
async fn apply_simple_steps(
    conn: &mut SqliteConnection,
    steps: &[(usize, &StepWrite)],
    acc: &mut StepRows,
) -> Result<Vec<(usize, Result<WriteOutcome, WriteError>)>, Error> {
    let mut out = Vec::with_capacity(steps.len());
    if steps.is_empty() {
        return Ok(out);
    }
    let mut guards = Vec::new();
    for (i, step) in steps {
        for guard in &step.guards {
            if let Guard::JobLocked { job, epoch } = guard {
                guards.push(json!({"i": i, "job": job, "epoch": epoch}));
            }
        }
    }
    let mut refused: HashMap<usize, WriteError> = HashMap::new();
    if !guards.is_empty() {
        let rows = sqlx::query(
            "SELECT value->>'i' AS i, value->>'job' AS job, value->>'epoch' AS epoch FROM json_each(?1) \
             WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE id = value->>'job' AND state = 'locked' \
             AND lock_epoch = value->>'epoch')",
        )
        .bind(Value::Array(guards).to_string())
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            let i: i64 = row.try_get("i")?;
            let i = usize::try_from(i).map_err(|_| Error::Corrupt("guard index".into()))?;
            refused.insert(i, WriteError::StaleEpoch { job: row.try_get("job")?, epoch: row.try_get("epoch")? });
        }
    }
    let mut inserts = Vec::new();
    let mut updates = Vec::new();
    for (i, step) in steps {
        if refused.contains_key(i) {
            continue;
        }
        let r = &step.instance;
        match step.expected_version {
            None => inserts.push(vec![
                Cell::Text(r.id.clone()),
                Cell::Text(r.process_key.clone()),
                Cell::Int(i64::from(r.process_version)),
                Cell::Text(r.status.clone()),
                Cell::OptText(r.business_key.clone()),
                Cell::OptText(r.parent_id.clone()),
                Cell::OptText(r.parent_call.clone()),
                Cell::Text(r.state.clone()),
                Cell::Int(r.version),
                Cell::Int(r.history_seq),
                Cell::Text(r.history_hash.clone()),
                Cell::Text(ts(r.at)),
                Cell::Text(ts(r.at)),
            ]),
            Some(expected) => updates.push(vec![
                Cell::Text(r.id.clone()),
                Cell::Text(r.status.clone()),
                Cell::Text(r.state.clone()),
                Cell::Int(r.version),
                Cell::Int(r.history_seq),
                Cell::Text(r.history_hash.clone()),
                Cell::Text(ts(r.at)),
                Cell::Int(expected),
            ]),
        }
    }
    let mut written: std::collections::HashSet<String> = std::collections::HashSet::new();
    if !inserts.is_empty() {
        let head = "INSERT INTO instances (id, process_key, process_version, status, business_key, parent_id, \
                    parent_call, state, version, history_seq, history_hash, created_at, updated_at)";
        for row in values(conn, head, "ON CONFLICT (id) DO NOTHING RETURNING id", 13, inserts).await? {
            written.insert(row.try_get("id")?);
        }
    }
    if !updates.is_empty() {
        let head = "UPDATE instances SET status = u.column2, state = u.column3, version = u.column4, \
                    history_seq = u.column5, history_hash = u.column6, updated_at = u.column7 FROM (";
        let tail =
            ") AS u WHERE instances.id = u.column1 AND instances.version = u.column8 RETURNING instances.id AS id";
        for row in values(conn, head, tail, 8, updates).await? {
            written.insert(row.try_get("id")?);
        }
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
        let sql = "SELECT id, instance_id FROM timers WHERE due_at <= $1 ORDER BY due_at, id LIMIT $2";
        self.rows(sql, vec![Arg::Text(Some(&now)), Arg::Int(limit)]).await?.iter().map(rows::id_and_instance).collect()
    }

    async fn next_takeable_timer(&self) -> Result<Option<DateTime<Utc>>, Error> {
        first_instant(&self.rows("SELECT MIN(due_at) AS due FROM timers", vec![]).await?, "due")
    }
}

async fn apply_step(
    conn: &mut SqliteConnection,
    step: &StepWrite,
    acc: &mut StepRows,
) -> Result<Result<WriteOutcome, WriteError>, Error> {
    let id = &step.instance.id;
    // Checks first: nothing is changed until every one holds.
    for guard in &step.guards {
        if let Some(refusal) = check_guard(conn, guard).await? {
            return Ok(Err(refusal));
        }
    }
    if let Some(message) = &step.record_message {
        let seen = sqlx::query("SELECT 1 FROM messages WHERE message_id = ?1")
            .bind(&message.message_id)
            .fetch_optional(&mut *conn)
            .await?;
        if seen.is_some() {
            return Ok(Err(WriteError::DuplicateMessage(message.message_id.clone())));
        }
    }
    for seq in &step.consume_messages {
        let open = sqlx::query("SELECT 1 FROM messages WHERE seq = ?1 AND state = 'buffered'")
            .bind(seq)
            .fetch_optional(&mut *conn)
            .await?;
        if open.is_none() {
            return Ok(Err(WriteError::Conflict(id.clone())));
        }
    }
    if let Some(pending) = &step.consume_pending {
        let open =
            sqlx::query("SELECT 1 FROM pending_events WHERE id = ?1").bind(pending).fetch_optional(&mut *conn).await?;
        if open.is_none() {
            return Ok(Err(WriteError::PendingGone));
        }
    }
    let row = &step.instance;
    let written = match step.expected_version {
        None => insert_instance(conn, row).await?,
        Some(expected) => sqlx::query(
            "UPDATE instances SET status = ?2, state = ?3, version = ?4, history_seq = ?5, history_hash = ?6, \
             updated_at = ?7 WHERE id = ?1 AND version = ?8",
        )
        .bind(id)
        .bind(&row.status)
        .bind(&row.state)
        .bind(row.version)
        .bind(row.history_seq)
        .bind(&row.history_hash)
        .bind(ts(row.at))
        .bind(expected)
        .execute(&mut *conn)
        .await?
        .rows_affected(),
    };
    if written == 0 {
        return Ok(Err(WriteError::Conflict(id.clone())));
    }
    // Every check held: apply.
    if let Some(message) = &step.record_message {
        insert_message(conn, message, "delivered").await?;
    }
    for seq in &step.consume_messages {
        sqlx::query("UPDATE messages SET state = 'delivered', instance_id = ?2 WHERE seq = ?1")
            .bind(seq)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    if let Some(pending) = &step.consume_pending {
        sqlx::query("DELETE FROM pending_events WHERE id = ?1").bind(pending).execute(&mut *conn).await?;
    }
    for child in &step.children {
        if insert_instance(conn, child).await? == 0 {
            return Err(Error::Corrupt(format!("child instance `{}` exists already", child.id)));
        }
    }
    acc.add(step);
    Ok(Ok(WriteOutcome::Done))
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
    .bind(&row.status)
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

async fn insert_message(conn: &mut SqliteConnection, message: &MessageRow, state: &str) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO messages (message_id, message_name, correlation_key, payload, state, instance_id, received_at, \
         expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
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

async fn check_guard(conn: &mut SqliteConnection, guard: &Guard) -> Result<Option<WriteError>, Error> {
    Ok(match guard {
        Guard::JobLocked { job, epoch } => {
            let ok = sqlx::query("SELECT 1 FROM jobs WHERE id = ?1 AND state = 'locked' AND lock_epoch = ?2")
                .bind(job)
                .bind(epoch)
                .fetch_optional(&mut *conn)
                .await?;
            ok.is_none().then(|| WriteError::StaleEpoch { job: job.clone(), epoch: *epoch })
        }
        Guard::TaskFree { task, user } => {
            let ok = sqlx::query(
                "SELECT 1 FROM tasks WHERE id = ?1 AND state = 'open' AND (claimed_by IS NULL OR claimed_by = ?2)",
            )
            .bind(task)
            .bind(user)
            .fetch_optional(&mut *conn)
            .await?;
            ok.is_none().then(|| WriteError::TaskTaken { task: task.clone() })
        }
        Guard::NoBufferedMessage { name, key, now } => {
            let waiting = sqlx::query(
                "SELECT 1 FROM messages WHERE message_name = ?1 AND correlation_key = ?2 AND state = 'buffered' \
                 AND expires_at > ?3 LIMIT 1",
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

async fn apply_other(conn: &mut SqliteConnection, write: &Write) -> Result<Result<WriteOutcome, WriteError>, Error> {
    match write {
        Write::Step(_) => Ok(Ok(WriteOutcome::Done)),
        Write::Deploy(d) => {
            let existing = sqlx::query("SELECT version FROM deployments WHERE process_key = ?1 AND hash = ?2")
                .bind(&d.key)
                .bind(&d.hash)
                .fetch_optional(&mut *conn)
                .await?;
            if let Some(row) = existing {
                return Ok(Ok(WriteOutcome::Deployed { version: row.try_get("version")?, created: false }));
            }
            let row = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM deployments WHERE process_key = ?1")
                .bind(&d.key)
                .fetch_one(&mut *conn)
                .await?;
            let version: u32 = row.try_get::<u32, _>("v")?.saturating_add(1);
            sqlx::query(
                "INSERT INTO deployments (process_key, version, hash, source, compiled, deployed_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .bind(&d.key)
            .bind(version)
            .bind(&d.hash)
            .bind(&d.source)
            .bind(&d.compiled)
            .bind(ts(d.at))
            .execute(&mut *conn)
            .await?;
            Ok(Ok(WriteOutcome::Deployed { version, created: true }))
        }
        Write::FetchJobs { .. } => Ok(Ok(WriteOutcome::Jobs(Vec::new()))),
        Write::ClaimTask { task, user, by } => {
            let changed = match user {
                Some(user) => sqlx::query(
                    "UPDATE tasks SET claimed_by = ?2 WHERE id = ?1 AND state = 'open' \
                     AND (claimed_by IS NULL OR claimed_by = ?2)",
                )
                .bind(task)
                .bind(user)
                .execute(&mut *conn)
                .await?
                .rows_affected(),
                None => sqlx::query(
                    "UPDATE tasks SET claimed_by = NULL WHERE id = ?1 AND state = 'open' AND claimed_by = ?2",
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
                "UPDATE jobs SET lock_expires_at = ?4 WHERE id = ?1 AND state = 'locked' AND lock_epoch = ?2 \
                 AND lock_expires_at > ?3",
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
                        "INSERT INTO substitutes (user_name, substitute, from_at, until_at) VALUES (?1, ?2, ?3, ?4) \
                         ON CONFLICT (user_name) DO UPDATE SET substitute = ?2, from_at = ?3, until_at = ?4",
                    )
                    .bind(user)
                    .bind(substitute)
                    .bind(ts(*from))
                    .bind(ts(*until))
                    .execute(&mut *conn)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM substitutes WHERE user_name = ?1").bind(user).execute(&mut *conn).await?;
                }
            }
            Ok(Ok(WriteOutcome::Done))
        }
        Write::SetSchedules { process, nodes } => {
            let keep: Vec<&str> = nodes.iter().map(|(n, _, _)| n.as_str()).collect();
            sqlx::query(
                "DELETE FROM schedules WHERE process_key = ?1 AND node NOT IN (SELECT value FROM json_each(?2))",
            )
            .bind(process)
            .bind(json!(keep).to_string())
            .execute(&mut *conn)
            .await?;
            for (node, schedule, next) in nodes {
                sqlx::query(
                    "INSERT INTO schedules (process_key, node, schedule, next_fire_at) VALUES (?1, ?2, ?3, ?4) \
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
            Ok(Ok(WriteOutcome::Done))
        }
        Write::AdvanceSchedule { process, node, from, to } => {
            sqlx::query(
                "UPDATE schedules SET next_fire_at = ?4 WHERE process_key = ?1 AND node = ?2 AND next_fire_at = ?3",
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
            let seen = sqlx::query("SELECT 1 FROM messages WHERE message_id = ?1")
                .bind(&message.message_id)
                .fetch_optional(&mut *conn)
                .await?;
            if seen.is_some() {
                return Ok(Err(WriteError::DuplicateMessage(message.message_id.clone())));
            }
            let waiting =
                sqlx::query("SELECT 1 FROM subscriptions WHERE message_name = ?1 AND correlation_key = ?2 LIMIT 1")
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
            let dropped = sqlx::query("DELETE FROM pending_events WHERE id = ?1").bind(id).execute(&mut *conn).await?;
            Ok(Ok(WriteOutcome::Dropped(dropped.rows_affected() > 0)))
        }
    }
}

/// Runs `head VALUES (?, ...), (?, ...) tail` over `rows` (each `cols` values), in chunks whose
/// sizes are powers of two so that a few statement shapes serve every batch (and stay cached).
async fn values(
    conn: &mut SqliteConnection,
    head: &str,
    tail: &str,
    cols: usize,
    rows: Vec<Vec<Cell>>,
) -> Result<Vec<sqlx::sqlite::SqliteRow>, Error> {
    let mut out = Vec::new();
    let max = (30_000 / cols.max(1)).clamp(1, 256);
    let mut rows = rows.into_iter().peekable();
    let mut left = rows.len();
    while left > 0 {
        let n = 1usize << (usize::BITS - 1 - left.min(max).leading_zeros());
        let tuple = format!("({})", vec!["?"; cols].join(", "));
        let sql = format!("{head} VALUES {} {tail}", vec![tuple.as_str(); n].join(", "));
        let mut query = sqlx::query(&sql);
        for row in rows.by_ref().take(n) {
            for value in row {
                query = match value {
                    Cell::Text(v) => query.bind(v),
                    Cell::OptText(v) => query.bind(v),
                    Cell::Int(v) => query.bind(v),
                    Cell::OptInt(v) => query.bind(v),
                };
            }
        }
        out.extend(query.fetch_all(&mut *conn).await?);
        left -= n;
    }
    Ok(out)
}

/// Writes the collected rows of a batch's steps, a table at a time.
async fn flush(conn: &mut SqliteConnection, rows: &mut StepRows) -> Result<(), Error> {
    // (head, tail) for each `Table`, in its order.
    const STATEMENTS: [(&str, &str); TABLES] = [
        (
            "INSERT INTO jobs (id, instance_id, node, job_type, input, idempotency_key, retries, attempt, state, \
             due_at)",
            "",
        ),
        (
            "UPDATE jobs SET state = u.column2, due_at = COALESCE(u.column3, jobs.due_at), \
             attempt = COALESCE(u.column4, jobs.attempt), lock_owner = NULL, lock_expires_at = NULL FROM (",
            ") AS u WHERE jobs.id = u.column1",
        ),
        ("INSERT INTO tasks (id, instance_id, node, title, roles, assignee, form, due_at, created_at)", ""),
        ("UPDATE tasks SET assignee = u.column2, claimed_by = NULL FROM (", ") AS u WHERE tasks.id = u.column1"),
        ("UPDATE tasks SET state = u.column2, completed_by = u.column3 FROM (", ") AS u WHERE tasks.id = u.column1"),
        (
            "INSERT INTO timers (id, instance_id, node, due_at)",
            "ON CONFLICT (id) DO UPDATE SET due_at = excluded.due_at, node = excluded.node",
        ),
        ("DELETE FROM timers WHERE id IN (", ")"),
        ("INSERT INTO subscriptions (id, instance_id, node, message_name, correlation_key)", ""),
        ("DELETE FROM subscriptions WHERE id IN (", ")"),
        ("INSERT INTO incidents (id, instance_id, node, job_id, message, raised_at)", ""),
        ("UPDATE incidents SET state = 'resolved' WHERE id IN (", ")"),
        ("INSERT INTO history (instance_id, seq, at, kind, node, who, on_behalf_of, detail, prev_hash, hash)", ""),
        ("INSERT INTO events (instance_id, seq, at, event)", ""),
        ("INSERT INTO pending_events (id, instance_id, event)", ""),
    ];
    for (table, columns, list) in rows.take() {
        let (head, tail) = STATEMENTS[table as usize];
        values(conn, head, tail, columns.len(), list).await?;
    }
    Ok(())
}
