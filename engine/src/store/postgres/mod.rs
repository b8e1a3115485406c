//! The scale-out store: one PostgreSQL database shared by several engine nodes.
//!
//! [`PgStore`] implements [`Store`](crate::store::Store) with the semantics of the SQLite store: [`Store::write`](crate::store::Store::write)
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
//! - **Timers** are claimed by [`Store::due_timers`](crate::store::Store::due_timers) the same way: a claimed timer carries
//!   `claimed_until` (20 s after the claim), other nodes skip it until then, and a step
//!   that moves the timer clears the claim. Should two nodes still fire one timer (a claim ran out
//!   mid-step), the version check lets one step through; the other reloads, and the core refuses
//!   the timer as unknown (or, for a repeating timer already moved on, as not due yet).
//! - **Messages**: buffering a message and opening a subscription for it check each other's
//!   tables; a transaction-scoped advisory lock per (name, correlation key), and one per message
//!   id, make those checks and the inserts that follow them atomic across nodes. Deployments
//!   take one per process key, so concurrent deploys agree on version numbers.
//! - **Wake-ups**: a transaction that creates or readies jobs sends `NOTIFY cloverleaf_jobs`, one
//!   that creates or moves timers or cron starts sends `NOTIFY cloverleaf_timers` (delivered on
//!   commit, with the sending node's id as payload); a deployment sends
//!   `NOTIFY cloverleaf_deployments`, and the other nodes read the latest versions again. [`PgStore::listen`] turns the other nodes'
//!   notifications into [`tokio::sync::watch`] changes, which
//!   [`Engine::connect`](crate::runtime::Engine::connect) passes to the engine's job signal and
//!   scheduler, so idle workers and schedulers wake at once. Notifications are lost while a listener reconnects (every channel then fires), and a
//!   lease running out or a retry falling due sends none: nodes still poll, but only as a
//!   fallback, at the runtime's usual intervals.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow};
use tokio::sync::watch;

mod fetch;
mod floor;
mod steps;

use super::writes::{Tx, apply_other, apply_step};
use fetch::fetch_jobs;
pub(super) use fetch::like_pattern;
use floor::DueFloors;
use steps::{apply_simple_steps, flush, insert_instances, instance_json, is_simple, update_instances};

use super::batch::StepRows;
use super::pool::{Lender, Lent, Setup};
use super::reads::{Backend, in_firing_order};
use super::sql::{Arg, Dialect, pg_query};
use super::{Error, InstanceRow, Write, WriteError, WriteOutcome, parse_ts, ts};

/// The channel notified when jobs are created or made ready.
pub const JOBS_CHANNEL: &str = "cloverleaf_jobs";
/// The channel notified when timers or cron starts are created or moved.
pub const TIMERS_CHANNEL: &str = "cloverleaf_timers";
/// The channel notified when a process version is deployed.
pub const DEPLOYMENTS_CHANNEL: &str = "cloverleaf_deployments";

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

/// How long a timer claimed by [`Store::due_timers`](crate::store::Store::due_timers) is left to
/// the node that claimed it, unless [`PgStore::set_timer_claim`] says otherwise: as long as a
/// job's default lease, so a dead node's timers are fired by another as soon as its jobs are
/// taken over. Firing a pass's claimed timers takes well under a second; should a claim still run
/// out mid-pass, a timer fired twice is refused the second time (see the module docs).
pub const DEFAULT_TIMER_CLAIM: TimeDelta = TimeDelta::seconds(20);

/// The PostgreSQL implementation of [`Store`](crate::store::Store). Cheap to clone.
#[derive(Debug, Clone)]
pub struct PgStore {
    /// Migrations, archiving, and the raw SQL of tools and tests ([`PgStore::pool`]).
    tools: PgPool,
    /// Reads, and the claims made outside the writer (timers).
    read: Lender<PgConnection>,
    /// The group-commit writer's connections. Created lazily, so that they belong to the
    /// writer's own runtime rather than to the caller's.
    write: Lender<PgConnection>,
    options: Arc<PgConnectOptions>,
    /// Tells this node's notifications from the others'.
    node: Arc<str>,
    /// Where this node's reads of due jobs start.
    floors: Arc<DueFloors>,
    /// How long this node's timer claims last, in milliseconds (see [`DEFAULT_TIMER_CLAIM`]).
    timer_claim_ms: Arc<AtomicI64>,
}

impl PgStore {
    /// How long the timers this node claims are left to it before another node may fire them:
    /// how soon a dead node's timers fire elsewhere. At least a second; a node that fires a pass
    /// in well under a second needs no more, and a longer claim only delays the takeover.
    pub fn set_timer_claim(&self, claim: TimeDelta) {
        let ms = claim.num_milliseconds().max(1_000);
        self.timer_claim_ms.store(ms, Ordering::Relaxed);
    }

    /// How long this node's timer claims last (see [`PgStore::set_timer_claim`]).
    pub fn timer_claim(&self) -> TimeDelta {
        TimeDelta::milliseconds(self.timer_claim_ms.load(Ordering::Relaxed))
    }

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
        let tools = pool_options(2).connect_with(options.clone()).await?;
        // Other crates (the sub-ledger) keep their own migrations in the same database. The
        // migrator takes an advisory lock, so nodes starting together migrate once.
        let mut migrator = sqlx::migrate!("./migrations_pg");
        migrator.set_ignore_missing(true);
        migrator.run(&tools).await?;
        Ok(PgStore {
            tools,
            read: lender(&options, 8),
            write: lender(&options, 2),
            options: Arc::new(options),
            node: node_id().into(),
            floors: Arc::default(),
            timer_claim_ms: Arc::new(AtomicI64::new(DEFAULT_TIMER_CLAIM.num_milliseconds())),
        })
    }

    /// Where this node's read of the due jobs of `job_types` at `now` may start (see
    /// [`floor`]); `None` reads them all.
    pub(in crate::store) fn due_floor(&self, job_types: &[String], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.floors.since(&floor_key(job_types), now)
    }

    /// Records that a read at `now` found no job of `job_types` due, from the start of the index
    /// (`read_all`) or from the floor [`PgStore::due_floor`] gave.
    pub(in crate::store) fn saw_nothing_due(&self, job_types: &[String], now: DateTime<Utc>, read_all: bool) {
        self.floors.learn(floor::Learnt { types: floor_key(job_types), now, full: read_all, exhausted: true });
    }

    /// A pool for tools and tests that need raw SQL (two connections; the engine's own reads
    /// and writes have theirs).
    pub fn pool(&self) -> &PgPool {
        &self.tools
    }

    /// A connection for reads (see [`Lender`]).
    pub(in crate::store) async fn reader(&self) -> Result<Lent<PgConnection>, Error> {
        Ok(self.read.lend().await?)
    }

    /// This store's node id: the payload of the notifications it sends.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Closes the pools.
    pub async fn close(&self) {
        self.tools.close().await;
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
        listener.listen_all([JOBS_CHANNEL, TIMERS_CHANNEL, DEPLOYMENTS_CHANNEL]).await?;
        let (jobs, jobs_rx) = watch::channel(0u64);
        let (timers, timers_rx) = watch::channel(0u64);
        let (deployments, deployments_rx) = watch::channel(0u64);
        let node = Arc::clone(&self.node);
        tokio::spawn(async move {
            let bump = |tx: &watch::Sender<u64>| tx.send_modify(|n| *n = n.wrapping_add(1));
            let mut failing = false;
            loop {
                let received = tokio::select! {
                    () = async { jobs.closed().await; timers.closed().await; deployments.closed().await } => break,
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
                            DEPLOYMENTS_CHANNEL => bump(&deployments),
                            _ => {}
                        }
                    }
                    // Reconnected: whatever was sent meanwhile is lost, so look again.
                    Ok(None) => {
                        bump(&jobs);
                        bump(&timers);
                        bump(&deployments);
                    }
                    Err(error) => {
                        if !failing {
                            tracing::warn!(%error, "listening for other nodes failed; polling until it recovers");
                        }
                        failing = true;
                        bump(&jobs);
                        bump(&timers);
                        bump(&deployments);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        // Listen again now, then look again: what was sent until then is lost,
                        // and a deployment has no polling to fall back on.
                        if sqlx::query("SELECT 1").execute(&mut listener).await.is_ok() {
                            bump(&jobs);
                            bump(&timers);
                            bump(&deployments);
                        }
                    }
                }
            }
            // The listener holds the pool's one connection: give it back before closing.
            drop(listener);
            pool.close().await;
        });
        Ok(Wakeups { jobs: jobs_rx, timers: timers_rx, deployments: deployments_rx })
    }

    async fn write_batch(&self, batch: &[Write]) -> Result<Vec<Result<WriteOutcome, WriteError>>, Error> {
        let mut lent = self.write.lend().await?;
        let outcome = self.write_batch_on(&mut lent, batch).await;
        // A database error ends the transaction on the server, and its rollback goes out with
        // the connection's next exchange; any other failure may have left an exchange unfinished.
        if matches!(outcome, Ok(_) | Err(Error::Database(sqlx::Error::Database(_)))) {
            lent.release();
        }
        outcome
    }

    async fn write_batch_on(
        &self,
        conn: &mut PgConnection,
        batch: &[Write],
    ) -> Result<Vec<Result<WriteOutcome, WriteError>>, Error> {
        use sqlx::Connection as _;
        let mut tx = conn.begin().await?;
        let conn: &mut PgConnection = &mut tx;
        let mut acc = StepRows::default();
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
        let (fetched, learnt) = fetch_jobs(conn, batch, &fetches, &self.floors).await?;
        for (i, jobs) in fetched {
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
            let rows = sqlx::query(LOCK_INSTANCES).bind(serde_json::to_string(&ids)?).fetch_all(&mut *conn).await?;
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
        flush(conn, &mut acc, &self.node).await?;
        tx.commit().await?;
        for learnt in learnt {
            self.floors.learn(learnt);
        }
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

impl Tx for PgConnection {
    type Row = PgRow;

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn fetch(&mut self, sql: &str, args: Vec<Arg<'_>>) -> Result<Vec<PgRow>, Error> {
        Ok(pg_query(sql, args).fetch_all(&mut *self).await?)
    }

    async fn execute(&mut self, sql: &str, args: Vec<Arg<'_>>) -> Result<u64, Error> {
        Ok(pg_query(sql, args).execute(&mut *self).await?.rows_affected())
    }

    /// A transaction-scoped advisory lock named by `name` (a hash collision only serialises
    /// more).
    async fn exclusive(&mut self, name: &str) -> Result<(), Error> {
        pg_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", vec![Arg::Text(Some(name))])
            .execute(&mut *self)
            .await?;
        Ok(())
    }

    async fn write_instances(&mut self, rows: Vec<(&InstanceRow, Option<i64>)>) -> Result<HashSet<String>, Error> {
        let (inserts, updates): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(_, expected)| expected.is_none());
        let mut written = HashSet::new();
        if !inserts.is_empty() {
            written.extend(insert_instances(self, inserts.iter().map(|(r, e)| instance_json(r, *e)).collect()).await?);
        }
        if !updates.is_empty() {
            written.extend(update_instances(self, updates.iter().map(|(r, e)| instance_json(r, *e)).collect()).await?);
        }
        Ok(written)
    }
}

/// A pool of up to `max` connections with JIT compilation off. The store's statements are short
/// and many; the planner turns JIT on above an estimated cost that a batch's fetch reaches easily,
/// and compiling then takes far longer than the statement itself (~140 ms against ~6 ms for a
/// fetch with 10,000 jobs due). A `SET` after connecting, rather than a startup option, which
/// connection poolers such as PgBouncer refuse.
fn pool_options(max: u32) -> PgPoolOptions {
    super::pool::checked_when_idle(PgPoolOptions::new())
        .max_connections(max)
        .acquire_timeout(CONNECTION_WAIT)
        .after_connect(|conn, _| Box::pin(jit_off(conn)))
}

/// A [`Lender`] of up to `max` connections set up as [`pool_options`]'s.
fn lender(options: &PgConnectOptions, max: usize) -> Lender<PgConnection> {
    let setup: Setup<PgConnection> = Arc::new(|conn: &mut PgConnection| Box::pin(jit_off(conn)));
    Lender::new(options.clone(), max, CONNECTION_WAIT, Some(setup))
}

async fn jit_off(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SET jit = off").execute(conn).await?;
    Ok(())
}

/// How long a read or a write waits for a connection.
const CONNECTION_WAIT: Duration = Duration::from_secs(10);

/// How often a write alone is tried again after losing a deadlock or serialization race.
const TRANSIENT_RETRIES: usize = 3;

/// Receivers that change when another node notifies (see [`PgStore::listen`]).
#[derive(Debug, Clone)]
pub struct Wakeups {
    jobs: watch::Receiver<u64>,
    timers: watch::Receiver<u64>,
    deployments: watch::Receiver<u64>,
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

    /// Changes when another node deployed a process version (or a lost connection was
    /// restored).
    pub fn deployments(&self) -> watch::Receiver<u64> {
        self.deployments.clone()
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

/// Runs `sql`, whose `$1` is a JSON array of row objects, with `rows`.
async fn with_rows(conn: &mut PgConnection, sql: &str, rows: Vec<Value>) -> Result<Vec<PgRow>, Error> {
    Ok(sqlx::query(sql).bind(Value::Array(rows).to_string()).fetch_all(&mut *conn).await?)
}

/// Locks the instances of `$1` (a JSON array of ids) and reads their versions, joined through
/// `batch_ids` (see its migration) so that the cached plan reads the primary key.
const LOCK_INSTANCES: &str = "SELECT i.id, i.version FROM batch_ids($1::jsonb) AS b(id) \
     JOIN instances i ON i.id = b.id ORDER BY i.id FOR UPDATE OF i";

impl Backend for PgStore {
    async fn commit(&self, batch: Vec<Write>) -> Vec<Result<WriteOutcome, WriteError>> {
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

    /// Claims the timers due at `now` that no other node holds (see the module docs): each is
    /// left to this node for [`PgStore::timer_claim`] of `now`'s clock.
    async fn take_due_timers(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<(String, String)>, Error> {
        const FREE: &str = "due_at <= $1 AND (claimed_until IS NULL OR claimed_until <= $1)";
        let sql = format!(
            "WITH picked AS (SELECT id FROM timers WHERE {FREE} ORDER BY due_at, id LIMIT $2 \
             FOR UPDATE SKIP LOCKED) \
             UPDATE timers SET claimed_until = $3 FROM picked WHERE timers.id = picked.id \
             RETURNING timers.id AS id, instance_id, due_at"
        );
        let mut conn = self.reader().await?;
        let rows = sqlx::query(&sql)
            .bind(ts(now))
            .bind(limit.max(0))
            .bind(ts(now.checked_add_signed(self.timer_claim()).unwrap_or(now)))
            .fetch_all(&mut *conn)
            .await?;
        conn.release();
        let due = rows
            .iter()
            .map(|r| Ok((r.try_get::<String, _>("due_at")?, r.try_get("id")?, r.try_get("instance_id")?)))
            .collect::<Result<Vec<(String, String, String)>, Error>>()?;
        Ok(in_firing_order(due))
    }

    /// The earliest time a timer can be claimed: a claimed timer counts from its claim's end,
    /// so a node does not spin on a timer another node is firing. Free timers are read in due
    /// order from `timers_due`, claimed ones from `timers_claimed` (only they are in it).
    async fn next_takeable_timer(&self) -> Result<Option<DateTime<Utc>>, Error> {
        const NEXT: &str = "SELECT LEAST(\
             (SELECT MIN(due_at) FROM timers WHERE claimed_until IS NULL), \
             (SELECT MIN(GREATEST(due_at, claimed_until)) FROM timers WHERE claimed_until IS NOT NULL))";
        let mut conn = self.reader().await?;
        let due: Option<String> = sqlx::query_scalar(NEXT).fetch_one(&mut *conn).await?;
        conn.release();
        due.as_deref().map(parse_ts).transpose()
    }
}

/// The key of a set of job types in [`DueFloors`], as fetches are grouped: sorted, no repeats.
fn floor_key(job_types: &[String]) -> Vec<String> {
    let mut key = job_types.to_vec();
    key.sort();
    key.dedup();
    key
}

#[cfg(test)]
mod tests;
