//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! Writes go through one connection (SQLite has one writer anyway); reads use a small pool.
//! [`Store::write`] opens one transaction per batch and keeps the statement count per batch
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

use super::rows::{self, TASK_COLUMNS};
use super::{
    BufferedMessage, DeploymentRow, Error, Guard, HistoryRow, InstanceRow, JobChange, JobInfo, LockedJob, MessageRow,
    PendingRow, StepWrite, Store, Substitution, TaskChange, TaskInfo, Write, WriteError, WriteOutcome, parse_ts, ts,
};

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

/// The SQLite implementation of [`Store`]. Cheap to clone.
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
        let mut acc = Rows::default();
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
        acc.flush(&mut tx).await?;
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
                    rows.push(vec![P::T(id), P::T(worker.clone()), P::T(ts(*lease_until))]);
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
    acc: &mut Rows,
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
                P::T(r.id.clone()),
                P::T(r.process_key.clone()),
                P::I(i64::from(r.process_version)),
                P::T(r.status.clone()),
                P::N(r.business_key.clone()),
                P::N(r.parent_id.clone()),
                P::N(r.parent_call.clone()),
                P::T(r.state.clone()),
                P::I(r.version),
                P::I(r.history_seq),
                P::T(r.history_hash.clone()),
                P::T(ts(r.at)),
                P::T(ts(r.at)),
            ]),
            Some(expected) => updates.push(vec![
                P::T(r.id.clone()),
                P::T(r.status.clone()),
                P::T(r.state.clone()),
                P::I(r.version),
                P::I(r.history_seq),
                P::T(r.history_hash.clone()),
                P::T(ts(r.at)),
                P::I(expected),
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

impl Store for SqliteStore {
    async fn write(&self, batch: Vec<Write>) -> Vec<Result<WriteOutcome, WriteError>> {
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

    async fn load_instance(&self, id: &str) -> Result<Option<InstanceRow>, Error> {
        let row = sqlx::query(
            "SELECT id, process_key, process_version, status, business_key, parent_id, parent_call, state, version, \
             history_seq, history_hash, updated_at FROM instances WHERE id = ?1",
        )
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(rows::instance).transpose()
    }

    async fn deployment(&self, key: &str, version: Option<u32>) -> Result<Option<DeploymentRow>, Error> {
        let query = match version {
            Some(v) => sqlx::query(
                "SELECT process_key, version, hash, source, compiled, deployed_at FROM deployments \
                 WHERE process_key = ?1 AND version = ?2",
            )
            .bind(key)
            .bind(v),
            None => sqlx::query(
                "SELECT process_key, version, hash, source, compiled, deployed_at FROM deployments \
                 WHERE process_key = ?1 ORDER BY version DESC LIMIT 1",
            )
            .bind(key),
        };
        query.fetch_optional(&self.read).await?.as_ref().map(rows::deployment).transpose()
    }

    async fn job(&self, id: &str) -> Result<Option<JobInfo>, Error> {
        let row =
            sqlx::query("SELECT id, instance_id, job_type, state, lock_epoch, lock_expires_at FROM jobs WHERE id = ?1")
                .bind(id)
                .fetch_optional(&self.read)
                .await?;
        row.as_ref().map(rows::job_info).transpose()
    }

    async fn task(&self, id: &str) -> Result<Option<TaskInfo>, Error> {
        let row = sqlx::query(&format!("{TASK_COLUMNS} WHERE id = ?1")).bind(id).fetch_optional(&self.read).await?;
        row.as_ref().map(rows::task_info).transpose()
    }

    async fn open_tasks(&self, instance: Option<&str>) -> Result<Vec<TaskInfo>, Error> {
        let rows = match instance {
            Some(instance) => {
                sqlx::query(&format!(
                    "{TASK_COLUMNS} WHERE instance_id = ?1 AND state = 'open' ORDER BY created_at, id"
                ))
                .bind(instance)
                .fetch_all(&self.read)
                .await?
            }
            None => {
                sqlx::query(&format!("{TASK_COLUMNS} WHERE state = 'open' ORDER BY created_at, id"))
                    .fetch_all(&self.read)
                    .await?
            }
        };
        rows.iter().map(rows::task_info).collect()
    }

    async fn due_schedules(&self, now: DateTime<Utc>) -> Result<Vec<(String, String, DateTime<Utc>)>, Error> {
        let rows = sqlx::query(
            "SELECT process_key, node, next_fire_at FROM schedules WHERE next_fire_at <= ?1 ORDER BY next_fire_at",
        )
        .bind(ts(now))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(rows::schedule).collect()
    }

    async fn next_schedule(&self) -> Result<Option<DateTime<Utc>>, Error> {
        let at: Option<String> =
            sqlx::query_scalar("SELECT MIN(next_fire_at) FROM schedules").fetch_one(&self.read).await?;
        at.as_deref().map(parse_ts).transpose()
    }

    async fn latest_versions(&self) -> Result<Vec<(String, u32)>, Error> {
        let rows = sqlx::query("SELECT process_key, MAX(version) AS version FROM deployments GROUP BY process_key")
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(rows::latest_version).collect()
    }

    async fn inbox(&self, user: &str, roles: &[String], principals: &[String]) -> Result<Vec<TaskInfo>, Error> {
        let rows = sqlx::query(&format!(
            "{TASK_COLUMNS} WHERE state = 'open' AND (EXISTS (SELECT 1 FROM json_each(tasks.roles) r \
             WHERE r.value IN (SELECT value FROM json_each(?2))) \
             OR assignee = ?1 OR claimed_by = ?1 \
             OR assignee IN (SELECT value FROM json_each(?3)) OR claimed_by IN (SELECT value FROM json_each(?3))) \
             ORDER BY created_at, id"
        ))
        .bind(user)
        .bind(json!(roles).to_string())
        .bind(json!(principals).to_string())
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(rows::task_info).collect()
    }

    async fn principals_of(&self, substitute: &str, now: DateTime<Utc>) -> Result<Vec<String>, Error> {
        let rows = sqlx::query(
            "SELECT user_name FROM substitutes WHERE substitute = ?1 AND from_at <= ?2 AND until_at > ?2 \
             ORDER BY user_name",
        )
        .bind(substitute)
        .bind(ts(now))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("user_name")?)).collect()
    }

    async fn substitute_of(&self, user: &str) -> Result<Option<Substitution>, Error> {
        let row = sqlx::query("SELECT substitute, from_at, until_at FROM substitutes WHERE user_name = ?1")
            .bind(user)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(rows::substitution).transpose()
    }

    async fn subscriptions_for(&self, name: &str, key: &str) -> Result<Vec<(String, String)>, Error> {
        let rows = sqlx::query(
            "SELECT id, instance_id FROM subscriptions WHERE message_name = ?1 AND correlation_key = ?2 \
             ORDER BY rowid",
        )
        .bind(name)
        .bind(key)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(rows::id_and_instance).collect()
    }

    async fn buffered_message(
        &self,
        name: &str,
        key: &str,
        now: DateTime<Utc>,
        skip: &[i64],
    ) -> Result<Option<BufferedMessage>, Error> {
        let row = sqlx::query(
            "SELECT seq, message_id, payload FROM messages WHERE message_name = ?1 AND correlation_key = ?2 \
             AND state = 'buffered' AND expires_at > ?3 AND seq NOT IN (SELECT value FROM json_each(?4)) \
             ORDER BY seq LIMIT 1",
        )
        .bind(name)
        .bind(key)
        .bind(ts(now))
        .bind(json!(skip).to_string())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(rows::buffered_message).transpose()
    }

    async fn message_seen(&self, message_id: &str) -> Result<bool, Error> {
        let row = sqlx::query("SELECT 1 FROM messages WHERE message_id = ?1")
            .bind(message_id)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.is_some())
    }

    async fn due_timers(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<(String, String)>, Error> {
        let rows = sqlx::query("SELECT id, instance_id FROM timers WHERE due_at <= ?1 ORDER BY due_at, id LIMIT ?2")
            .bind(ts(now))
            .bind(limit)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(rows::id_and_instance).collect()
    }

    async fn next_timer(&self) -> Result<Option<DateTime<Utc>>, Error> {
        let row = sqlx::query("SELECT MIN(due_at) AS due FROM timers").fetch_one(&self.read).await?;
        let due: Option<String> = row.try_get("due")?;
        due.as_deref().map(parse_ts).transpose()
    }

    async fn pending(&self, limit: i64) -> Result<Vec<PendingRow>, Error> {
        let rows = sqlx::query("SELECT id, instance_id, event FROM pending_events ORDER BY rowid LIMIT ?1")
            .bind(limit)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(rows::pending).collect()
    }

    async fn incident(&self, id: &str) -> Result<Option<(String, Option<String>)>, Error> {
        let row = sqlx::query("SELECT instance_id, job_id FROM incidents WHERE id = ?1 AND state = 'open'")
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(rows::incident).transpose()
    }

    async fn history(&self, instance: &str) -> Result<Vec<HistoryRow>, Error> {
        let rows = sqlx::query(
            "SELECT instance_id, seq, at, kind, node, who, on_behalf_of, detail, prev_hash, hash FROM history \
             WHERE instance_id = ?1 ORDER BY seq",
        )
        .bind(instance)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(rows::history).collect()
    }

    async fn events(&self, instance: &str) -> Result<Vec<(DateTime<Utc>, String)>, Error> {
        let rows = sqlx::query("SELECT at, event FROM events WHERE instance_id = ?1 ORDER BY seq")
            .bind(instance)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(rows::event).collect()
    }
}

async fn apply_step(
    conn: &mut SqliteConnection,
    step: &StepWrite,
    acc: &mut Rows,
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

/// One bound value of a bulk statement.
enum P {
    T(String),
    N(Option<String>),
    I(i64),
    M(Option<i64>),
}

/// Runs `head VALUES (?, ...), (?, ...) tail` over `rows` (each `cols` values), in chunks whose
/// sizes are powers of two so that a few statement shapes serve every batch (and stay cached).
async fn values(
    conn: &mut SqliteConnection,
    head: &str,
    tail: &str,
    cols: usize,
    rows: Vec<Vec<P>>,
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
                    P::T(v) => query.bind(v),
                    P::N(v) => query.bind(v),
                    P::I(v) => query.bind(v),
                    P::M(v) => query.bind(v),
                };
            }
        }
        out.extend(query.fetch_all(&mut *conn).await?);
        left -= n;
    }
    Ok(out)
}

/// The rows of accepted steps not written yet, one list per statement.
#[derive(Default)]
struct Rows {
    job_inserts: Vec<Vec<P>>,
    job_updates: Vec<Vec<P>>,
    task_inserts: Vec<Vec<P>>,
    task_assigns: Vec<Vec<P>>,
    task_closes: Vec<Vec<P>>,
    timer_upserts: Vec<Vec<P>>,
    timer_deletes: Vec<Vec<P>>,
    sub_inserts: Vec<Vec<P>>,
    sub_deletes: Vec<Vec<P>>,
    incident_inserts: Vec<Vec<P>>,
    incident_closes: Vec<Vec<P>>,
    history: Vec<Vec<P>>,
    events: Vec<Vec<P>>,
    pending: Vec<Vec<P>>,
}

impl Rows {
    fn add(&mut self, step: &StepWrite) {
        let instance = &step.instance.id;
        for change in &step.jobs {
            match change {
                JobChange::Insert(j) => self.job_inserts.push(vec![
                    P::T(j.id.clone()),
                    P::T(j.instance_id.clone()),
                    P::T(j.node.clone()),
                    P::T(j.job_type.clone()),
                    P::T(j.input.clone()),
                    P::T(j.idempotency_key.clone()),
                    P::I(j.retries),
                    P::I(j.attempt),
                    P::T(j.state.clone()),
                    P::T(ts(j.due_at)),
                ]),
                JobChange::Update { id, state, due_at, attempt } => self.job_updates.push(vec![
                    P::T(id.clone()),
                    P::T(state.clone()),
                    P::N(due_at.map(ts)),
                    P::M(*attempt),
                ]),
            }
        }
        for change in &step.tasks {
            match change {
                TaskChange::Insert(t) => self.task_inserts.push(vec![
                    P::T(t.id.clone()),
                    P::T(t.instance_id.clone()),
                    P::T(t.node.clone()),
                    P::T(t.title.clone()),
                    P::T(t.roles.clone()),
                    P::N(t.assignee.clone()),
                    P::T(t.form.clone()),
                    P::N(t.due_at.map(ts)),
                    P::T(ts(t.created_at)),
                ]),
                TaskChange::Close { id, state, completed_by } => {
                    self.task_closes.push(vec![P::T(id.clone()), P::T(state.clone()), P::N(completed_by.clone())])
                }
                TaskChange::Assign { id, assignee } => {
                    self.task_assigns.push(vec![P::T(id.clone()), P::T(assignee.clone())])
                }
            }
        }
        for t in &step.timers_upsert {
            self.timer_upserts.push(vec![
                P::T(t.id.clone()),
                P::T(t.instance_id.clone()),
                P::T(t.node.clone()),
                P::T(ts(t.due_at)),
            ]);
        }
        self.timer_deletes.extend(step.timers_delete.iter().map(|id| vec![P::T(id.clone())]));
        for s in &step.subscriptions_insert {
            self.sub_inserts.push(vec![
                P::T(s.id.clone()),
                P::T(s.instance_id.clone()),
                P::T(s.node.clone()),
                P::T(s.message_name.clone()),
                P::T(s.correlation_key.clone()),
            ]);
        }
        self.sub_deletes.extend(step.subscriptions_delete.iter().map(|id| vec![P::T(id.clone())]));
        for i in &step.incidents_insert {
            self.incident_inserts.push(vec![
                P::T(i.id.clone()),
                P::T(i.instance_id.clone()),
                P::T(i.node.clone()),
                P::N(i.job_id.clone()),
                P::T(i.message.clone()),
                P::T(ts(i.at)),
            ]);
        }
        self.incident_closes.extend(step.incidents_close.iter().map(|id| vec![P::T(id.clone())]));
        for h in &step.history {
            self.history.push(vec![
                P::T(h.instance_id.clone()),
                P::I(h.seq),
                P::T(h.at.clone()),
                P::T(h.kind.clone()),
                P::N(h.node.clone()),
                P::N(h.who.clone()),
                P::N(h.on_behalf_of.clone()),
                P::T(h.detail.clone()),
                P::T(h.prev_hash.clone()),
                P::T(h.hash.clone()),
            ]);
        }
        for (seq, at, event) in &step.events {
            self.events.push(vec![P::T(instance.clone()), P::I(*seq), P::T(ts(*at)), P::T(event.clone())]);
        }
        for p in &step.pending {
            self.pending.push(vec![P::T(p.id.clone()), P::T(p.instance_id.clone()), P::T(p.event.clone())]);
        }
    }

    async fn flush(&mut self, conn: &mut SqliteConnection) -> Result<(), Error> {
        // (head, tail, columns): inserts before updates and deletes of the same table.
        const STATEMENTS: [(&str, &str, usize); 14] = [
            (
                "INSERT INTO jobs (id, instance_id, node, job_type, input, idempotency_key, retries, attempt, state, \
                 due_at)",
                "",
                10,
            ),
            (
                "UPDATE jobs SET state = u.column2, due_at = COALESCE(u.column3, jobs.due_at), \
                 attempt = COALESCE(u.column4, jobs.attempt), lock_owner = NULL, lock_expires_at = NULL FROM (",
                ") AS u WHERE jobs.id = u.column1",
                4,
            ),
            ("INSERT INTO tasks (id, instance_id, node, title, roles, assignee, form, due_at, created_at)", "", 9),
            ("UPDATE tasks SET assignee = u.column2, claimed_by = NULL FROM (", ") AS u WHERE tasks.id = u.column1", 2),
            (
                "UPDATE tasks SET state = u.column2, completed_by = u.column3 FROM (",
                ") AS u WHERE tasks.id = u.column1",
                3,
            ),
            (
                "INSERT INTO timers (id, instance_id, node, due_at)",
                "ON CONFLICT (id) DO UPDATE SET due_at = excluded.due_at, node = excluded.node",
                4,
            ),
            ("DELETE FROM timers WHERE id IN (", ")", 1),
            ("INSERT INTO subscriptions (id, instance_id, node, message_name, correlation_key)", "", 5),
            ("DELETE FROM subscriptions WHERE id IN (", ")", 1),
            ("INSERT INTO incidents (id, instance_id, node, job_id, message, raised_at)", "", 6),
            ("UPDATE incidents SET state = 'resolved' WHERE id IN (", ")", 1),
            (
                "INSERT INTO history (instance_id, seq, at, kind, node, who, on_behalf_of, detail, prev_hash, hash)",
                "",
                10,
            ),
            ("INSERT INTO events (instance_id, seq, at, event)", "", 4),
            ("INSERT INTO pending_events (id, instance_id, event)", "", 3),
        ];
        let lists = [
            &mut self.job_inserts,
            &mut self.job_updates,
            &mut self.task_inserts,
            &mut self.task_assigns,
            &mut self.task_closes,
            &mut self.timer_upserts,
            &mut self.timer_deletes,
            &mut self.sub_inserts,
            &mut self.sub_deletes,
            &mut self.incident_inserts,
            &mut self.incident_closes,
            &mut self.history,
            &mut self.events,
            &mut self.pending,
        ];
        for ((head, tail, cols), list) in STATEMENTS.iter().zip(lists) {
            if !list.is_empty() {
                values(conn, head, tail, *cols, std::mem::take(list)).await?;
            }
        }
        Ok(())
    }
}
