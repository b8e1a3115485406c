//! The scale-out store: one PostgreSQL database shared by several engine nodes.
//!
//! [`PgStore`] implements [`Store`] with the semantics of the SQLite store: [`Store::write`]
//! applies a batch in ONE transaction and answers each write on its own; a refused write changes
//! nothing and never makes the others of its batch fail. Checks are made before changes, under
//! row locks that hold until the commit, so a check cannot go stale before the batch commits.
//! When the database fails a batch (a deadlock between nodes, say), the writes are applied one by
//! one, and a write that alone loses a deadlock or serialization race is tried again.
//!
//! Instants are stored as text in the fixed-width [`ts`] form, as on SQLite, in columns with the
//! "C" collation: byte order is time order, and history rows hash the very text they store.
//! PostgreSQL 11 or later is required.
//!
//! # Coordination between nodes
//!
//! There is no coordinator: the nodes meet only in the database.
//!
//! - **Instances** carry a version column. A batch first locks every instance it updates
//!   (`SELECT ... ORDER BY id FOR UPDATE`, one lock order on every node) and compares the version
//!   with the one its step was computed from; a mismatch is [`WriteError::Conflict`], and the
//!   runtime reloads and steps again. Two nodes therefore never both apply a step to one
//!   instance; a new instance is an `INSERT ... ON CONFLICT DO NOTHING`, so of two nodes creating
//!   one id (a cron fire, a message start) one wins.
//! - **Jobs** are claimed by fetch-and-lock with `FOR UPDATE SKIP LOCKED`: concurrent fetches on
//!   different nodes take different jobs without waiting for each other; the lock rechecks the
//!   due time (or the lease end) on the newest version of the row, and holds until the commit,
//!   so the `UPDATE` that follows finds the rows by primary key alone. Every fetch of a batch is
//!   served by one statement, which hands the jobs it locks out to the fetches in turn. A step
//!   that completes a job locks the job row while it checks the lock epoch.
//! - **Timers** are claimed by [`Store::due_timers`] the same way: a claimed timer carries
//!   `claimed_until` (a minute after the claim), other nodes skip it until then, and a step
//!   that moves the timer clears the claim. Should two nodes still fire one timer (a claim ran out
//!   mid-step), the version check lets one step through; the other reloads, and the core refuses
//!   the timer as unknown (or, for a repeating timer already moved on, as not due yet).
//! - **Messages**: buffering a message and opening a subscription for it check each other's
//!   tables; a transaction-scoped advisory lock per (name, correlation key), and one per message
//!   id, make those checks and the inserts that follow them atomic across nodes. Deployments
//!   take one per process key, so concurrent deploys agree on version numbers.
//! - **Wake-ups**: a transaction that creates or readies jobs sends `NOTIFY cloverleaf_jobs`, one
//!   that creates or moves timers or cron starts sends `NOTIFY cloverleaf_timers` (delivered on
//!   commit, with the sending node's id as payload). [`PgStore::listen`] turns the other nodes'
//!   notifications into [`tokio::sync::watch`] changes, which
//!   [`Engine::connect`](crate::runtime::Engine::connect) passes to the engine's job signal and
//!   scheduler, so idle workers and schedulers wake at once. Notifications are lost while a listener reconnects (both channels then fire), and a
//!   lease running out or a retry falling due sends none: nodes still poll, but only as a
//!   fallback, at the runtime's usual intervals.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow};
use tokio::sync::watch;

use super::rows::{self, Columns, TASK_COLUMNS};
use super::{
    BufferedMessage, DeploymentRow, Error, Guard, HistoryRow, InstanceRow, JobChange, JobInfo, LockedJob, MessageRow,
    PendingRow, StepWrite, Store, Substitution, TaskChange, TaskInfo, Write, WriteError, WriteOutcome, parse_ts, ts,
};

/// The channel notified when jobs are created or made ready.
pub const JOBS_CHANNEL: &str = "cloverleaf_jobs";
/// The channel notified when timers or cron starts are created or moved.
pub const TIMERS_CHANNEL: &str = "cloverleaf_timers";

/// SQLSTATE invalid_catalog_name: the database named in the URL does not exist.
const NO_SUCH_DATABASE: &str = "3D000";

/// Creates the database `url` names. Nodes starting together may race to create it: the losers
/// find it created (SQLSTATE duplicate_database), which is what they wanted.
async fn create_database(url: &str) -> Result<(), Error> {
    use sqlx::migrate::MigrateDatabase as _;
    match sqlx::Postgres::create_database(url).await {
        Ok(()) => {
            tracing::info!(
                database = PgConnectOptions::from_str(url)?.get_database().unwrap_or(""),
                "created the database"
            );
            Ok(())
        }
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// How long a timer claimed by [`Store::due_timers`] is left to the node that claimed it.
fn timer_claim() -> TimeDelta {
    TimeDelta::seconds(60)
}

/// The PostgreSQL implementation of [`Store`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PgStore {
    /// Reads, and the claims made outside the writer (timers).
    read: PgPool,
    /// The group-commit writer's connections. Created lazily, so that they belong to the
    /// writer's own runtime rather than to the caller's.
    write: PgPool,
    options: Arc<PgConnectOptions>,
    /// Tells this node's notifications from the others'.
    node: Arc<str>,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`) and applies the
    /// migrations. A database the server does not have is created first (when the user may), so
    /// a first start needs no `createdb`.
    pub async fn connect(url: &str) -> Result<PgStore, Error> {
        let options = PgConnectOptions::from_str(url)?;
        match PgStore::connect_with(options.clone()).await {
            Err(Error::Database(sqlx::Error::Database(e))) if e.code().as_deref() == Some(NO_SUCH_DATABASE) => {
                create_database(url).await?;
                PgStore::connect_with(options).await
            }
            other => other,
        }
    }

    /// Connects with `options` and applies the migrations.
    pub async fn connect_with(options: PgConnectOptions) -> Result<PgStore, Error> {
        let read = pool_options(8).connect_with(options.clone()).await?;
        // Other crates (the sub-ledger) keep their own migrations in the same database. The
        // migrator takes an advisory lock, so nodes starting together migrate once.
        let mut migrator = sqlx::migrate!("./migrations_pg");
        migrator.set_ignore_missing(true);
        migrator.run(&read).await?;
        let write = pool_options(2).connect_lazy_with(options.clone());
        Ok(PgStore { read, write, options: Arc::new(options), node: node_id().into() })
    }

    /// The read pool, for tools and tests that need raw SQL.
    pub fn pool(&self) -> &PgPool {
        &self.read
    }

    /// This store's node id: the payload of the notifications it sends.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Closes the pools.
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    /// Listens for the notifications of the OTHER nodes on this database (this node signals
    /// itself in process). Spawns a task on the current runtime that holds one connection and
    /// ends when every receiver of the returned [`Wakeups`] is dropped.
    pub async fn listen(&self) -> Result<Wakeups, Error> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_with(PgConnectOptions::clone(&self.options))
            .await?;
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen_all([JOBS_CHANNEL, TIMERS_CHANNEL]).await?;
        let (jobs, jobs_rx) = watch::channel(0u64);
        let (timers, timers_rx) = watch::channel(0u64);
        let node = Arc::clone(&self.node);
        tokio::spawn(async move {
            let bump = |tx: &watch::Sender<u64>| tx.send_modify(|n| *n = n.wrapping_add(1));
            let mut failing = false;
            loop {
                let received = tokio::select! {
                    () = async { jobs.closed().await; timers.closed().await } => break,
                    received = listener.try_recv() => received,
                };
                match received {
                    Ok(Some(n)) => {
                        failing = false;
                        if n.payload() == &*node {
                            continue;
                        }
                        match n.channel() {
                            JOBS_CHANNEL => bump(&jobs),
                            TIMERS_CHANNEL => bump(&timers),
                            _ => {}
                        }
                    }
                    // Reconnected: whatever was sent meanwhile is lost, so look again.
                    Ok(None) => {
                        bump(&jobs);
                        bump(&timers);
                    }
                    Err(error) => {
                        if !failing {
                            tracing::warn!(%error, "listening for other nodes failed; polling until it recovers");
                        }
                        failing = true;
                        bump(&jobs);
                        bump(&timers);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            // The listener holds the pool's one connection: give it back before closing.
            drop(listener);
            pool.close().await;
        });
        Ok(Wakeups { jobs: jobs_rx, timers: timers_rx })
    }

    async fn write_batch(&self, batch: &[Write]) -> Result<Vec<Result<WriteOutcome, WriteError>>, Error> {
        let mut tx = self.write.begin().await?;
        let conn: &mut PgConnection = &mut tx;
        let mut acc = Rows::default();
        let mut results: Vec<Option<Result<WriteOutcome, WriteError>>> = Vec::with_capacity(batch.len());
        results.resize_with(batch.len(), || None);
        // Writes that arrive together are concurrent, so any order is a valid one. Everything but
        // steps goes first (claims, fetches, buffered messages, deployments), then the steps,
        // whose table rows are written together at the end. Steps still see what the earlier
        // writes did: their checks read claims and buffered messages, which are written at once.
        let mut fetches = Vec::new();
        for (i, write) in batch.iter().enumerate() {
            match write {
                Write::Step(_) => {}
                Write::FetchJobs { .. } => fetches.push(i),
                other => results[i] = Some(apply_other(conn, other, &mut acc).await?),
            }
        }
        for (i, jobs) in fetch_jobs(conn, batch, &fetches).await? {
            results[i] = Some(Ok(WriteOutcome::Jobs(jobs)));
        }
        // A second step of one instance in the same batch loaded the state the first replaces.
        let mut seen = HashSet::new();
        let mut steps = Vec::new();
        for (i, write) in batch.iter().enumerate() {
            let Write::Step(step) = write else { continue };
            if seen.insert(step.instance.id.as_str()) {
                steps.push((i, step.as_ref()));
            } else {
                results[i] = Some(Err(WriteError::Conflict(step.instance.id.clone())));
            }
        }
        // Lock every instance the batch updates, in id order, and read its version.
        let mut ids: Vec<&str> =
            steps.iter().filter(|(_, s)| s.expected_version.is_some()).map(|(_, s)| s.instance.id.as_str()).collect();
        ids.sort_unstable();
        let mut versions: HashMap<String, i64> = HashMap::new();
        if !ids.is_empty() {
            let rows = sqlx::query("SELECT id, version FROM instances WHERE id = ANY($1) ORDER BY id FOR UPDATE")
                .bind(ids)
                .fetch_all(&mut *conn)
                .await?;
            for row in rows {
                versions.insert(row.try_get("id")?, row.try_get("version")?);
            }
        }
        let mut simple = Vec::new();
        for (i, step) in steps {
            if let Some(expected) = step.expected_version
                && versions.get(&step.instance.id) != Some(&expected)
            {
                results[i] = Some(Err(WriteError::Conflict(step.instance.id.clone())));
            } else if is_simple(step) {
                simple.push((i, step));
            } else {
                results[i] = Some(apply_step(conn, step, &mut acc).await?);
            }
        }
        for (i, outcome) in apply_simple_steps(conn, &simple, &mut acc).await? {
            results[i] = Some(outcome);
        }
        acc.flush(conn, &self.node).await?;
        tx.commit().await?;
        Ok(results.into_iter().map(|r| r.unwrap_or(Ok(WriteOutcome::Done))).collect())
    }
}

impl PgStore {
    /// Applies one write in its own transaction, trying again when it lost a deadlock or
    /// serialization race to another node.
    async fn write_alone(&self, write: &Write) -> Result<WriteOutcome, WriteError> {
        let mut tries = 0;
        loop {
            match self.write_batch(std::slice::from_ref(write)).await {
                Ok(mut results) => return results.pop().unwrap_or(Ok(WriteOutcome::Done)),
                Err(error) if is_transient(&error) && tries < TRANSIENT_RETRIES => tries += 1,
                Err(error) => return Err(WriteError::Store(Arc::new(error))),
            }
        }
    }
}

/// A pool of up to `max` connections with JIT compilation off. The store's statements are short
/// and many; the planner turns JIT on above an estimated cost that a batch's fetch reaches easily,
/// and compiling then takes far longer than the statement itself (~140 ms against ~6 ms for a
/// fetch with 10,000 jobs due). A `SET` after connecting, rather than a startup option, which
/// connection poolers such as PgBouncer refuse.
fn pool_options(max: u32) -> PgPoolOptions {
    PgPoolOptions::new().max_connections(max).acquire_timeout(Duration::from_secs(10)).after_connect(|conn, _| {
        Box::pin(async move {
            sqlx::query("SET jit = off").execute(conn).await?;
            Ok(())
        })
    })
}

/// How often a write alone is tried again after losing a deadlock or serialization race.
const TRANSIENT_RETRIES: usize = 3;

/// Receivers that change when another node notifies (see [`PgStore::listen`]).
#[derive(Debug, Clone)]
pub struct Wakeups {
    jobs: watch::Receiver<u64>,
    timers: watch::Receiver<u64>,
}

impl Wakeups {
    /// Changes when another node created or readied jobs (or a lost connection was restored).
    pub fn jobs(&self) -> watch::Receiver<u64> {
        self.jobs.clone()
    }

    /// Changes when another node created or moved timers or cron starts (or a lost connection
    /// was restored).
    pub fn timers(&self) -> watch::Receiver<u64> {
        self.timers.clone()
    }
}

/// A fresh id for this store: the process, the time, and a counter.
fn node_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{}-{nanos:x}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// True when the database gave up on the transaction because of a concurrent one: trying again
/// is the cure.
fn is_transient(error: &Error) -> bool {
    match error {
        Error::Database(sqlx::Error::Database(db)) => matches!(db.code().as_deref(), Some("40P01" | "40001")),
        _ => false,
    }
}

/// Takes a transaction-scoped advisory lock named by `name` (a collision only serializes more).
async fn advisory_lock(conn: &mut PgConnection, name: &str) -> Result<(), Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))").bind(name).execute(&mut *conn).await?;
    Ok(())
}

/// The lock that makes buffering a message and subscribing to it exclude each other.
fn correlation_lock(name: &str, key: &str) -> String {
    format!("cloverleaf.message\u{1f}{name}\u{1f}{key}")
}

/// The lock that makes recording a message id atomic with checking it.
fn message_id_lock(id: &str) -> String {
    format!("cloverleaf.message-id\u{1f}{id}")
}

/// Runs `sql`, whose `$1` is a JSON array of row objects, with `rows`.
async fn with_rows(conn: &mut PgConnection, sql: &str, rows: Vec<Value>) -> Result<Vec<PgRow>, Error> {
    Ok(sqlx::query(sql).bind(Value::Array(rows).to_string()).fetch_all(&mut *conn).await?)
}

/// A job-type pattern as a LIKE pattern: `*` is the only wildcard; LIKE's own specials match
/// literally.
pub(super) fn like_pattern(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        match c {
            '\\' | '%' | '_' => {
                out.push('\\');
                out.push(c);
            }
            '*' => out.push('%'),
            other => out.push(other),
        }
    }
    out
}

/// Serves every fetch of a batch with ONE statement ([`FETCH_JOBS`]), however many workers asked:
/// each statement is a round trip inside the writer's transaction, and one scan of the due jobs
/// serves every fetch for the same job types. Fetches are grouped by their set of job types; a
/// group takes as many due jobs as its fetches want together, in due order, and hands them out
/// in the batch's order: the first fetch gets the first `max` jobs, the next the following ones.
/// A group is due as of the earliest `now` among its fetches.
async fn fetch_jobs(
    conn: &mut PgConnection,
    batch: &[Write],
    fetches: &[usize],
) -> Result<Vec<(usize, Vec<LockedJob>)>, Error> {
    let mut by_types: BTreeMap<Vec<String>, Vec<usize>> = BTreeMap::new();
    for &i in fetches {
        if let Write::FetchJobs { job_types, .. } = &batch[i] {
            let mut key = job_types.clone();
            key.sort();
            key.dedup();
            by_types.entry(key).or_default().push(i);
        }
    }
    let (mut groups, mut requests) = (Vec::new(), Vec::new());
    let mut wanted_in_all = 0i64;
    for (group, (job_types, members)) in by_types.iter().enumerate() {
        let mut wanted = 0i64;
        let mut now: Option<DateTime<Utc>> = None;
        for &i in members {
            if let Write::FetchJobs { worker, max, now: at, lease_until, .. } = &batch[i] {
                let max = (*max).max(0);
                requests.push(json!({
                    "request": i, "grp": group, "worker": worker, "lease": ts(*lease_until), "first": wanted, "max": max,
                }));
                wanted = wanted.saturating_add(max);
                now = Some(now.map_or(*at, |n| n.min(*at)));
            }
        }
        let Some(now) = now else { continue };
        // Exact names go through the indexes; a pattern (`finance.*`, `*`) becomes a LIKE.
        let wildcard = job_types.iter().any(|t| t.contains('*'));
        let types: Vec<String> =
            if wildcard { job_types.iter().map(|t| like_pattern(t)).collect() } else { job_types.clone() };
        groups.push(json!({"grp": group, "types": types, "wildcard": wildcard, "now": ts(now), "wanted": wanted}));
        wanted_in_all = wanted_in_all.saturating_add(wanted);
    }
    let mut locked: BTreeMap<usize, Vec<LockedJob>> = fetches.iter().map(|&i| (i, Vec::new())).collect();
    if wanted_in_all > 0 {
        let picked = sqlx::query(FETCH_JOBS)
            .bind(Value::Array(groups).to_string())
            .bind(Value::Array(requests).to_string())
            .fetch_all(&mut *conn)
            .await?;
        for row in &picked {
            let request = usize::try_from(row.int("request")?).map_err(|_| Error::Corrupt("fetch request".into()))?;
            locked.entry(request).or_default().push(rows::locked_job(row)?);
        }
    }
    Ok(locked
        .into_iter()
        .map(|(i, mut jobs)| {
            jobs.sort_by(|a, b| a.id.cmp(&b.id));
            (i, jobs)
        })
        .collect())
}

/// When a ready job is due, or a locked one's lease runs out: the order of the `jobs_due` and
/// `jobs_due_at` indexes.
macro_rules! due_at {
    () => {
        "CASE WHEN state = 'ready' THEN due_at ELSE lock_expires_at END"
    };
}

/// Due as a fetch sees it (ready and due, or leased with the lease run out) at `$now`, in the
/// terms of the `jobs_due` index.
macro_rules! due {
    ($now:literal) => {
        concat!("state IN ('ready', 'locked') AND ", due_at!(), " <= ", $now)
    };
}

/// The due jobs of each fetch group `g` that passes `$groups` and whose types pass `$types`,
/// at most as many as the group wants, due first, locked.
macro_rules! claim {
    ($groups:literal, $types:literal) => {
        concat!(
            "SELECT g.grp, j.id, j.at FROM fetch_groups g CROSS JOIN LATERAL (SELECT id, ",
            due_at!(),
            " AS at FROM jobs WHERE ",
            due!("g.now"),
            " AND ",
            $types,
            " ORDER BY at, id LIMIT g.wanted FOR UPDATE SKIP LOCKED) j WHERE ",
            $groups
        )
    };
}

/// Locks the due jobs of every fetch of a batch. `$1`: the groups of fetches (`grp`, job `types`
/// or LIKE patterns when `wildcard`, `now`, how many jobs they `wanted`); `$2`: the fetches
/// (`request`, `grp`, `worker`, `lease` end, their `first` job's rank in the group, `max`).
///
/// A group of one job type reads the `jobs_due` index in claim order and stops after the jobs it
/// wants, however many are due; a group of several types or of patterns can read `jobs_due_at`
/// the same way, passing over other types' jobs (or collect its due jobs and sort them, when the
/// planner expects few). SKIP LOCKED leaves jobs another node is locking to that node; locking
/// rechecks the due time on the newest version of each row (a job another node claimed since
/// the scan is left out) and holds until the commit, so the UPDATE finds the picked rows by
/// primary key alone (`= ANY(ARRAY(...))`): were it to repeat the due condition or scan `jobs`
/// for the join, the planner, which believes few jobs are due, could scan every due job again,
/// dead index entries included. A job two groups both picked (their types overlap) goes to the
/// first group only, so a fetch may get fewer than `max` jobs although more are due.
const FETCH_JOBS: &str = concat!(
    "WITH fetch_groups AS (SELECT * FROM jsonb_to_recordset($1::jsonb) \
     AS g(grp bigint, types text[], wildcard boolean, now text, wanted bigint)), \
     fetches AS (SELECT * FROM jsonb_to_recordset($2::jsonb) \
     AS f(request bigint, grp bigint, worker text, lease text, first bigint, max bigint)), \
     one_type AS (",
    claim!("NOT g.wildcard AND cardinality(g.types) = 1", "job_type = g.types[1]"),
    "), several AS (",
    claim!("NOT g.wildcard AND cardinality(g.types) <> 1", "job_type = ANY(g.types)"),
    "), matching AS (",
    claim!("g.wildcard", "job_type LIKE ANY(g.types)"),
    "), picked AS (SELECT DISTINCT ON (id) grp, id, at FROM \
     (SELECT * FROM one_type UNION ALL SELECT * FROM several UNION ALL SELECT * FROM matching) p \
     ORDER BY id, grp), \
     ranked AS (SELECT grp, id, row_number() OVER (PARTITION BY grp ORDER BY at, id) - 1 AS k FROM picked), \
     assigned AS (SELECT n.id, f.request, f.worker, f.lease FROM ranked n \
     JOIN fetches f ON f.grp = n.grp AND n.k >= f.first AND n.k - f.first < f.max) \
     UPDATE jobs SET state = 'locked', lock_owner = a.worker, lock_epoch = lock_epoch + 1, lock_expires_at = a.lease \
     FROM assigned a WHERE jobs.id = ANY(ARRAY(SELECT id FROM assigned)) AND jobs.id = a.id \
     RETURNING a.request, jobs.id AS id, jobs.instance_id, jobs.node, jobs.job_type, jobs.input, \
     jobs.idempotency_key, jobs.attempt, jobs.lock_epoch, jobs.lock_expires_at"
);

/// A step whose only checks are job epochs and its instance's version: checked in bulk.
fn is_simple(step: &StepWrite) -> bool {
    step.guards.iter().all(|g| matches!(g, Guard::JobLocked { .. }))
        && step.record_message.is_none()
        && step.consume_messages.is_empty()
        && step.consume_pending.is_none()
        && step.children.is_empty()
}

fn instance_json(r: &InstanceRow, expected: Option<i64>) -> Value {
    json!({
        "id": r.id, "process_key": r.process_key, "process_version": r.process_version, "status": r.status,
        "business_key": r.business_key, "parent_id": r.parent_id, "parent_call": r.parent_call,
        "state": r.state, "version": r.version, "history_seq": r.history_seq, "history_hash": r.history_hash,
        "at": ts(r.at), "expected": expected,
    })
}

const INSTANCE_RECORD: &str = "jsonb_to_recordset($1::jsonb) AS r(id text, process_key text, process_version bigint, \
                               status text, business_key text, parent_id text, parent_call text, state text, \
                               version bigint, history_seq bigint, history_hash text, at text, expected bigint)";

/// Inserts new instances; returns the ids inserted (an id taken already is left out).
async fn insert_instances(conn: &mut PgConnection, rows: Vec<Value>) -> Result<HashSet<String>, Error> {
    let sql = format!(
        "INSERT INTO instances (id, process_key, process_version, status, business_key, parent_id, parent_call, \
         state, version, history_seq, history_hash, created_at, updated_at) \
         SELECT id, process_key, process_version, status, business_key, parent_id, parent_call, state, version, \
         history_seq, history_hash, at, at FROM {INSTANCE_RECORD} ON CONFLICT (id) DO NOTHING RETURNING id"
    );
    with_rows(conn, &sql, rows).await?.iter().map(|r| Ok(r.try_get("id")?)).collect()
}

/// Updates instances still at their expected version; returns the ids updated.
async fn update_instances(conn: &mut PgConnection, rows: Vec<Value>) -> Result<HashSet<String>, Error> {
    let sql = format!(
        "UPDATE instances SET status = r.status, state = r.state, version = r.version, \
         history_seq = r.history_seq, history_hash = r.history_hash, updated_at = r.at FROM {INSTANCE_RECORD} \
         WHERE instances.id = r.id AND instances.version = r.expected RETURNING instances.id AS id"
    );
    with_rows(conn, &sql, rows).await?.iter().map(|r| Ok(r.try_get("id")?)).collect()
}

/// Checks and writes many simple steps with a few statements: one for every job-epoch guard,
/// one insert for new instances, one update for the rest (each guarded by its version).
async fn apply_simple_steps(
    conn: &mut PgConnection,
    steps: &[(usize, &StepWrite)],
    acc: &mut Rows,
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
async fn apply_step(
    conn: &mut PgConnection,
    step: &StepWrite,
    acc: &mut Rows,
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

async fn message_seen(conn: &mut PgConnection, message_id: &str) -> Result<bool, Error> {
    let row = sqlx::query("SELECT 1 AS one FROM messages WHERE message_id = $1")
        .bind(message_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.is_some())
}

async fn insert_message(conn: &mut PgConnection, message: &MessageRow, state: &str) -> Result<(), Error> {
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

async fn check_guard(conn: &mut PgConnection, guard: &Guard) -> Result<Option<WriteError>, Error> {
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

async fn apply_other(
    conn: &mut PgConnection,
    write: &Write,
    acc: &mut Rows,
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

/// The rows of accepted steps not written yet, one list per statement, and the notifications
/// the batch owes.
#[derive(Default)]
struct Rows {
    job_inserts: Vec<Value>,
    job_updates: Vec<Value>,
    task_inserts: Vec<Value>,
    task_assigns: Vec<Value>,
    task_closes: Vec<Value>,
    timer_upserts: Vec<Value>,
    timer_deletes: Vec<Value>,
    sub_inserts: Vec<Value>,
    sub_deletes: Vec<Value>,
    incident_inserts: Vec<Value>,
    incident_closes: Vec<Value>,
    history: Vec<Value>,
    events: Vec<Value>,
    pending: Vec<Value>,
    wake_jobs: bool,
    wake_timers: bool,
}

/// (statement, where `$1` is the rows as a JSON array): inserts before updates and deletes of
/// the same table, as on SQLite.
const FLUSH: [&str; 14] = [
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

impl Rows {
    fn add(&mut self, step: &StepWrite) {
        let instance = &step.instance.id;
        for change in &step.jobs {
            match change {
                JobChange::Insert(j) => {
                    self.wake_jobs = true;
                    self.job_inserts.push(json!({
                        "id": j.id, "instance_id": j.instance_id, "node": j.node, "job_type": j.job_type,
                        "input": j.input, "idempotency_key": j.idempotency_key, "retries": j.retries,
                        "attempt": j.attempt, "state": j.state, "due_at": ts(j.due_at),
                    }));
                }
                JobChange::Update { id, state, due_at, attempt } => {
                    self.wake_jobs |= state == "ready";
                    self.job_updates.push(json!({
                        "id": id, "state": state, "due_at": due_at.map(ts), "attempt": attempt,
                    }));
                }
            }
        }
        for change in &step.tasks {
            match change {
                TaskChange::Insert(t) => self.task_inserts.push(json!({
                    "id": t.id, "instance_id": t.instance_id, "node": t.node, "title": t.title, "roles": t.roles,
                    "assignee": t.assignee, "form": t.form, "due_at": t.due_at.map(ts),
                    "created_at": ts(t.created_at),
                })),
                TaskChange::Close { id, state, completed_by } => {
                    self.task_closes.push(json!({"id": id, "state": state, "completed_by": completed_by}))
                }
                TaskChange::Assign { id, assignee } => self.task_assigns.push(json!({"id": id, "assignee": assignee})),
            }
        }
        // The plan gives at most one change per job, task and timer, and a batch holds one step
        // per instance: each statement touches a row once, as `ON CONFLICT DO UPDATE` requires.
        for t in &step.timers_upsert {
            self.wake_timers = true;
            self.timer_upserts.push(json!({
                "id": t.id, "instance_id": t.instance_id, "node": t.node, "due_at": ts(t.due_at),
            }));
        }
        self.timer_deletes.extend(step.timers_delete.iter().map(|id| json!({"id": id})));
        for s in &step.subscriptions_insert {
            self.sub_inserts.push(json!({
                "id": s.id, "instance_id": s.instance_id, "node": s.node, "message_name": s.message_name,
                "correlation_key": s.correlation_key,
            }));
        }
        self.sub_deletes.extend(step.subscriptions_delete.iter().map(|id| json!({"id": id})));
        for i in &step.incidents_insert {
            self.incident_inserts.push(json!({
                "id": i.id, "instance_id": i.instance_id, "node": i.node, "job_id": i.job_id,
                "message": i.message, "raised_at": ts(i.at),
            }));
        }
        self.incident_closes.extend(step.incidents_close.iter().map(|id| json!({"id": id})));
        for h in &step.history {
            self.history.push(history_json(h));
        }
        for (seq, at, event) in &step.events {
            self.events.push(json!({"instance_id": instance, "seq": seq, "at": ts(*at), "event": event}));
        }
        for p in &step.pending {
            self.pending.push(json!({"id": p.id, "instance_id": p.instance_id, "event": p.event}));
        }
    }

    /// Writes the rows, then queues the notifications (delivered only if the batch commits).
    async fn flush(&mut self, conn: &mut PgConnection, node: &str) -> Result<(), Error> {
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
        for (sql, list) in FLUSH.iter().zip(lists) {
            if !list.is_empty() {
                with_rows(conn, sql, std::mem::take(list)).await?;
            }
        }
        for (wake, channel) in [(self.wake_jobs, JOBS_CHANNEL), (self.wake_timers, TIMERS_CHANNEL)] {
            if wake {
                sqlx::query("SELECT pg_notify($1, $2)").bind(channel).bind(node).execute(&mut *conn).await?;
            }
        }
        Ok(())
    }
}

fn history_json(h: &HistoryRow) -> Value {
    json!({
        "instance_id": h.instance_id, "seq": h.seq, "at": h.at, "kind": h.kind, "node": h.node, "who": h.who,
        "on_behalf_of": h.on_behalf_of, "detail": h.detail, "prev_hash": h.prev_hash, "hash": h.hash,
    })
}

impl Store for PgStore {
    async fn write(&self, batch: Vec<Write>) -> Vec<Result<WriteOutcome, WriteError>> {
        match self.write_batch(&batch).await {
            Ok(results) => results,
            Err(error) if batch.len() == 1 && !is_transient(&error) => vec![Err(WriteError::Store(Arc::new(error)))],
            Err(error) => {
                // One write broke the batch, or another node's batch deadlocked with it: apply
                // each alone so the others still land.
                tracing::warn!(%error, size = batch.len(), "batch failed; writing one by one");
                let mut results = Vec::with_capacity(batch.len());
                for write in &batch {
                    results.push(self.write_alone(write).await);
                }
                results
            }
        }
    }

    async fn load_instance(&self, id: &str) -> Result<Option<InstanceRow>, Error> {
        let row = sqlx::query(
            "SELECT id, process_key, process_version, status, business_key, parent_id, parent_call, state, version, \
             history_seq, history_hash, updated_at FROM instances WHERE id = $1",
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
                 WHERE process_key = $1 AND version = $2",
            )
            .bind(key)
            .bind(i64::from(v)),
            None => sqlx::query(
                "SELECT process_key, version, hash, source, compiled, deployed_at FROM deployments \
                 WHERE process_key = $1 ORDER BY version DESC LIMIT 1",
            )
            .bind(key),
        };
        query.fetch_optional(&self.read).await?.as_ref().map(rows::deployment).transpose()
    }

    async fn job(&self, id: &str) -> Result<Option<JobInfo>, Error> {
        let row =
            sqlx::query("SELECT id, instance_id, job_type, state, lock_epoch, lock_expires_at FROM jobs WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.read)
                .await?;
        row.as_ref().map(rows::job_info).transpose()
    }

    async fn task(&self, id: &str) -> Result<Option<TaskInfo>, Error> {
        let row = sqlx::query(&format!("{TASK_COLUMNS} WHERE id = $1")).bind(id).fetch_optional(&self.read).await?;
        row.as_ref().map(rows::task_info).transpose()
    }

    async fn open_tasks(&self, instance: Option<&str>) -> Result<Vec<TaskInfo>, Error> {
        let rows = match instance {
            Some(instance) => {
                sqlx::query(&format!(
                    "{TASK_COLUMNS} WHERE instance_id = $1 AND state = 'open' ORDER BY created_at, id"
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

    async fn inbox(&self, user: &str, roles: &[String], principals: &[String]) -> Result<Vec<TaskInfo>, Error> {
        let rows = sqlx::query(&format!(
            "{TASK_COLUMNS} WHERE state = 'open' AND (EXISTS (SELECT 1 FROM jsonb_array_elements_text(tasks.roles::jsonb) \
             AS r(role) WHERE r.role = ANY($2)) \
             OR assignee = $1 OR claimed_by = $1 OR assignee = ANY($3) OR claimed_by = ANY($3)) \
             ORDER BY created_at, id"
        ))
        .bind(user)
        .bind(roles.to_vec())
        .bind(principals.to_vec())
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(rows::task_info).collect()
    }

    async fn principals_of(&self, substitute: &str, now: DateTime<Utc>) -> Result<Vec<String>, Error> {
        let rows = sqlx::query(
            "SELECT user_name FROM substitutes WHERE substitute = $1 AND from_at <= $2 AND until_at > $2 \
             ORDER BY user_name",
        )
        .bind(substitute)
        .bind(ts(now))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("user_name")?)).collect()
    }

    async fn substitute_of(&self, user: &str) -> Result<Option<Substitution>, Error> {
        let row = sqlx::query("SELECT substitute, from_at, until_at FROM substitutes WHERE user_name = $1")
            .bind(user)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(rows::substitution).transpose()
    }

    async fn subscriptions_for(&self, name: &str, key: &str) -> Result<Vec<(String, String)>, Error> {
        let rows = sqlx::query(
            "SELECT id, instance_id FROM subscriptions WHERE message_name = $1 AND correlation_key = $2 ORDER BY seq",
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
            "SELECT seq, message_id, payload FROM messages WHERE message_name = $1 AND correlation_key = $2 \
             AND state = 'buffered' AND expires_at > $3 AND seq <> ALL($4) ORDER BY seq LIMIT 1",
        )
        .bind(name)
        .bind(key)
        .bind(ts(now))
        .bind(skip.to_vec())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(rows::buffered_message).transpose()
    }

    async fn message_seen(&self, message_id: &str) -> Result<bool, Error> {
        let mut conn = self.read.acquire().await?;
        message_seen(&mut conn, message_id).await
    }

    /// Claims the timers due at `now` that no other node holds (see the module docs): each is
    /// left to this node for a minute of `now`'s clock.
    async fn due_timers(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<(String, String)>, Error> {
        const FREE: &str = "due_at <= $1 AND (claimed_until IS NULL OR claimed_until <= $1)";
        let sql = format!(
            "WITH picked AS (SELECT id FROM timers WHERE {FREE} ORDER BY due_at, id LIMIT $2 \
             FOR UPDATE SKIP LOCKED) \
             UPDATE timers SET claimed_until = $3 WHERE timers.id = ANY(ARRAY(SELECT id FROM picked)) \
             RETURNING timers.id AS id, instance_id, due_at"
        );
        let rows = sqlx::query(&sql)
            .bind(ts(now))
            .bind(limit.max(0))
            .bind(ts(now.checked_add_signed(timer_claim()).unwrap_or(now)))
            .fetch_all(&self.read)
            .await?;
        let mut due = rows
            .iter()
            .map(|r| Ok((r.try_get::<String, _>("due_at")?, r.try_get("id")?, r.try_get("instance_id")?)))
            .collect::<Result<Vec<(String, String, String)>, Error>>()?;
        due.sort();
        Ok(due.into_iter().map(|(_, id, instance)| (id, instance)).collect())
    }

    async fn due_schedules(&self, now: DateTime<Utc>) -> Result<Vec<(String, String, DateTime<Utc>)>, Error> {
        let rows = sqlx::query(
            "SELECT process_key, node, next_fire_at FROM schedules WHERE next_fire_at <= $1 ORDER BY next_fire_at",
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

    /// The earliest time a timer can be claimed: a claimed timer counts from its claim's end,
    /// so a node does not spin on a timer another node is firing.
    async fn next_timer(&self) -> Result<Option<DateTime<Utc>>, Error> {
        let due: Option<String> =
            sqlx::query_scalar("SELECT MIN(GREATEST(due_at, COALESCE(claimed_until, due_at))) FROM timers")
                .fetch_one(&self.read)
                .await?;
        due.as_deref().map(parse_ts).transpose()
    }

    async fn pending(&self, limit: i64) -> Result<Vec<PendingRow>, Error> {
        let rows = sqlx::query("SELECT id, instance_id, event FROM pending_events ORDER BY seq LIMIT $1")
            .bind(limit.max(0))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(rows::pending).collect()
    }

    async fn incident(&self, id: &str) -> Result<Option<(String, Option<String>)>, Error> {
        let row = sqlx::query("SELECT instance_id, job_id FROM incidents WHERE id = $1 AND state = 'open'")
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(rows::incident).transpose()
    }

    async fn history(&self, instance: &str) -> Result<Vec<HistoryRow>, Error> {
        let rows = sqlx::query(
            "SELECT instance_id, seq, at, kind, node, who, on_behalf_of, detail, prev_hash, hash FROM history \
             WHERE instance_id = $1 ORDER BY seq",
        )
        .bind(instance)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(rows::history).collect()
    }

    async fn events(&self, instance: &str) -> Result<Vec<(DateTime<Utc>, String)>, Error> {
        let rows = sqlx::query("SELECT at, event FROM events WHERE instance_id = $1 ORDER BY seq")
            .bind(instance)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(rows::event).collect()
    }
}

#[cfg(test)]
mod tests {
    //! Several engine nodes on one database. They run wherever PostgreSQL is reachable at
    //! `CLOVERLEAF_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432`); elsewhere they are
    //! skipped with a notice, unless `CI` is set.

    use std::collections::HashSet;
    use std::sync::Arc;
    use std::time::Duration;

    use chrono::{TimeDelta, TimeZone, Utc};
    use serde_json::json;
    use sqlx::Connection;
    use sqlx::postgres::PgConnection;

    use super::like_pattern;
    use crate::runtime::{Engine, Error, Message};
    use crate::store::{AnyStore, Store};
    use crate::testdb::ScratchDb;
    use crate::{Event, InstanceId, VirtualClock};

    const NODES: &str = r#"process nodes "Nodes" {
  start -> pause
  wait pause { for 1h } -> work
  task work { job "nodes.work" } -> done
  end done "Done"
}"#;

    /// Two engine nodes on one fresh database, sharing a virtual clock.
    async fn two_nodes() -> Option<(ScratchDb, VirtualClock, Engine<AnyStore>, Engine<AnyStore>)> {
        let db = ScratchDb::postgres().await?;
        let clock = VirtualClock::new(Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap());
        let a = Engine::connect(&db.url(), Arc::new(clock.clone())).await.unwrap();
        let b = Engine::connect(&db.url(), Arc::new(clock.clone())).await.unwrap();
        a.deploy(&[("nodes.flow", NODES)]).await.unwrap();
        Some((db, clock, a, b))
    }

    async fn count_events(engine: &Engine<AnyStore>, id: &InstanceId, which: fn(&Event) -> bool) -> usize {
        engine.events(id).await.unwrap().iter().filter(|(e, _)| which(e)).count()
    }

    #[test]
    fn job_type_patterns_escape_like_specials() {
        assert_eq!(like_pattern("finance.*"), "finance.%");
        assert_eq!(like_pattern("a_b%c\\*"), "a\\_b\\%c\\\\%");
    }

    #[tokio::test]
    async fn a_database_the_server_lacks_is_created_on_connect() {
        let Some(db) = ScratchDb::postgres().await else { return };
        let name = db.url().rsplit('/').next().unwrap().to_string();
        let admin = db.url().replace(&format!("/{name}"), "/postgres");
        let mut conn = PgConnection::connect(&admin).await.unwrap();
        sqlx::query(&format!("DROP DATABASE \"{name}\"")).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        let store = super::PgStore::connect(&db.url()).await.unwrap();
        let tables: i64 =
            sqlx::query_scalar("SELECT count(*) FROM information_schema.tables WHERE table_name = 'instances'")
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!(tables, 1, "created and migrated");
        store.close().await;
        // A second node starting on it finds it there.
        super::PgStore::connect(&db.url()).await.unwrap().close().await;
    }

    #[tokio::test]
    async fn the_store_connects_with_jit_off() {
        let Some(db) = ScratchDb::postgres().await else { return };
        let store = super::PgStore::connect(&db.url()).await.unwrap();
        let jit: String = sqlx::query_scalar("SHOW jit").fetch_one(store.pool()).await.unwrap();
        assert_eq!(jit, "off");
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_nodes_claim_each_timer_and_each_job_once() {
        let Some((_db, clock, a, b)) = two_nodes().await else { return };
        let mut ids = Vec::new();
        for _ in 0..20 {
            ids.push(a.start("nodes", None, json!({})).await.unwrap());
        }
        clock.advance(TimeDelta::hours(2));
        let now = a.now();

        // Both claim at once: every due timer goes to exactly one of them...
        let (ta, tb) = tokio::join!(a.store().due_timers(now, 1024), b.store().due_timers(now, 1024));
        let (ta, tb) = (ta.unwrap(), tb.unwrap());
        let claimed: HashSet<_> = ta.iter().chain(&tb).map(|(timer, _)| timer.clone()).collect();
        assert_eq!((ta.len() + tb.len(), claimed.len()), (20, 20));
        // ... and is left to it for a minute.
        assert!(b.store().due_timers(now, 1024).await.unwrap().is_empty());
        assert_eq!(a.store().next_timer().await.unwrap(), Some(now + TimeDelta::seconds(60)));

        // The claims run out (as if their node died): both nodes fire, each timer fires once.
        clock.advance(TimeDelta::seconds(61));
        let (fa, fb) = tokio::join!(a.fire_due_timers(), b.fire_due_timers());
        assert_eq!(fa.unwrap() + fb.unwrap(), 20);
        for id in &ids {
            assert_eq!(count_events(&a, id, |e| matches!(e, Event::TimerFired { .. })).await, 1);
        }

        // Both fetch at once, a few at a time: every job is locked by one node only.
        let fetch = |engine: Engine<AnyStore>, worker: &'static str| async move {
            let mut got = Vec::new();
            loop {
                let jobs = engine.fetch_and_lock(worker, &["nodes.work"], 3, TimeDelta::minutes(5)).await.unwrap();
                if jobs.is_empty() {
                    return got;
                }
                got.extend(jobs);
            }
        };
        let (ja, jb) = tokio::join!(fetch(a.clone(), "wa"), fetch(b.clone(), "wb"));
        let locked: HashSet<_> = ja.iter().chain(&jb).map(|j| j.id.clone()).collect();
        assert_eq!((ja.len() + jb.len(), locked.len()), (20, 20));

        // Each node completes the jobs it holds; the other node's epoch is refused.
        if let Some(job) = jb.first() {
            assert!(matches!(a.complete_job(&job.id, job.epoch + 1, json!({})).await, Err(Error::StaleLock { .. })));
        }
        for (engine, jobs) in [(&a, &ja), (&b, &jb)] {
            for job in jobs {
                engine.complete_job(&job.id, job.epoch, json!({})).await.unwrap();
            }
        }
        for id in &ids {
            assert!(b.instance(id).await.unwrap().status().is_final());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_step_raced_by_two_nodes_is_applied_by_one() {
        let Some((_db, _clock, a, b)) = two_nodes().await else { return };
        let mut ids = Vec::new();
        for _ in 0..10 {
            let id = a.start("nodes", None, json!({})).await.unwrap();
            // Both nodes hold the instance at the same version.
            b.instance(&id).await.unwrap();
            ids.push(id);
        }
        let mut set = tokio::task::JoinSet::new();
        for id in &ids {
            for (engine, by) in [(a.clone(), "ann"), (b.clone(), "bob")] {
                let id = id.clone();
                set.spawn(async move { engine.cancel(&id, by).await.is_ok() });
            }
        }
        let won = set.join_all().await.into_iter().filter(|ok| *ok).count();
        assert_eq!(won, ids.len());
        for id in &ids {
            assert_eq!(count_events(&b, id, |e| matches!(e, Event::Cancel { .. })).await, 1);
            assert!(a.verify_history(id).await.unwrap().is_intact());
        }
    }

    const PAY: &str = r#"process pay "Pay" {
  input { invoice_id: text }
  var received: money = 0
  start -> wait_pay
  receive wait_pay "Wait" { message "payment.received" key invoice_id  out { received: amount } } -> done
  end done "Done"
}"#;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_raced_by_its_subscription_on_another_node_is_never_stranded() {
        let Some((_db, _clock, a, b)) = two_nodes().await else { return };
        a.deploy(&[("pay.flow", PAY)]).await.unwrap();
        let mut set = tokio::task::JoinSet::new();
        for i in 0..20 {
            let (a, b) = (a.clone(), b.clone());
            set.spawn(async move {
                let message = Message {
                    name: "payment.received".into(),
                    correlation_key: format!("INV-{i}"),
                    payload: json!({"amount": "100.50"}),
                    message_id: Some(format!("m-{i}")),
                    ttl: TimeDelta::days(1),
                };
                let input = json!({"invoice_id": format!("INV-{i}")});
                let (started, correlated) = tokio::join!(a.start("pay", None, input.clone()), b.correlate(message));
                correlated.unwrap();
                match started {
                    Ok(id) => id,
                    // The start's subscription found the message buffered by then: the store
                    // refused it (`BufferedMessageWaiting`), which `start` reports as contention.
                    // Started again, it takes the message.
                    Err(Error::Contention(_)) => a.start("pay", None, input).await.unwrap(),
                    Err(e) => panic!("{e}"),
                }
            });
        }
        for id in set.join_all().await {
            // Delivered at once, or buffered and taken when the subscription opened: never both
            // a buffered message and a subscription still waiting for it.
            assert!(a.instance(&id).await.unwrap().status().is_final(), "{id} still waits");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn timers_and_jobs_created_on_one_node_wake_the_other() {
        let Some((_db, clock, a, b)) = two_nodes().await else { return };
        let wakeups = b.store().listen().await.unwrap().unwrap();
        let (mut timers, mut jobs) = (wakeups.timers(), b.job_signal());
        timers.borrow_and_update();
        jobs.borrow_and_update();
        let bound = Duration::from_secs(10);

        a.start("nodes", None, json!({})).await.unwrap();
        tokio::time::timeout(bound, timers.changed()).await.unwrap().unwrap();

        clock.advance(TimeDelta::hours(2));
        assert_eq!(a.fire_due_timers().await.unwrap(), 1);
        tokio::time::timeout(bound, jobs.changed()).await.unwrap().unwrap();
    }
}
