//! Straight-through throughput of 1, 2 and 3 engine nodes sharing one PostgreSQL database, beside
//! the same workload on a SQLite file (WAL, `synchronous=FULL`) and the raw single-row commit rate
//! of both, all measured in one run. Every step is durable on both stores.
//!
//! A node is an `Engine<AnyStore>` from [`Engine::connect`], with its own connection pools and
//! its own group-commit writer; the nodes of a measure live in this process. The starters are
//! spread over the nodes; each fetches and completes whatever credit check is due through its
//! own node, whichever node created it, as workers attached to several nodes would.
//!
//! The PostgreSQL measures run in a database of their own, created at the start and dropped at the
//! end (also when a measure fails). When the server cannot be reached only SQLite is measured.
//! After each measure the store is checked: every instance started completed, and no job is left.
//!
//! `cargo bench -p cloverleaf-engine --bench nodes` (env: `BENCH_PG_URL`, the server without a
//! database name; `BENCH_INSTANCES`, `BENCH_SQLITE_INSTANCES`, `BENCH_CONCURRENCY`,
//! `BENCH_WORKER_THREADS`; `BENCH_RAW_PG_CONNECTIONS`, the widest raw measure's connections, 64
//! unless a server shared with other clients has fewer to spare).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use cloverleaf_engine::SystemClock;
use cloverleaf_engine::runtime::{Engine, Error, WriterStats};
use cloverleaf_engine::store::AnyStore;
use serde_json::json;
use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// One engine node.
type Node = Engine<AnyStore>;

/// Raw commits are measured for this long.
const RAW_TIME: Duration = Duration::from_secs(2);
/// Instances run before each measure, to fill the nodes' connection pools and statement caches.
const WARM_UP: usize = 500;
/// Most connections of the raw PostgreSQL measure at full concurrency, unless
/// `BENCH_RAW_PG_CONNECTIONS` says otherwise.
const RAW_PG_CONNECTIONS: usize = 64;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> BenchResult<()> {
    let workers = env_usize("BENCH_WORKER_THREADS", 2);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()?;
    runtime.block_on(run())
}

/// What each measure runs.
struct Workload {
    /// Instances per PostgreSQL measure.
    instances: usize,
    /// Instances of the SQLite measure.
    sqlite_instances: usize,
    /// Concurrent starters, spread over the nodes.
    concurrency: usize,
    /// The reference processes.
    files: Vec<(String, String)>,
}

/// One line of the summary: a measure, its rate, and whether its check held.
struct Line {
    label: String,
    rate: f64,
    note: String,
    verified: Option<bool>,
}

impl Line {
    fn print(&self) {
        let rate = match self.verified {
            Some(false) => "   FAILED".to_string(),
            _ => format!("{:>9.0}", self.rate),
        };
        println!("{:<48} {rate}  {}", self.label, self.note);
    }
}

async fn run() -> BenchResult<()> {
    let workload = Workload {
        instances: env_usize("BENCH_INSTANCES", 10_000),
        sqlite_instances: env_usize("BENCH_SQLITE_INSTANCES", 20_000),
        concurrency: env_usize("BENCH_CONCURRENCY", 256).max(1),
        files: reference_files()?,
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("machine: {cores} cores, {}", cpu_model());
    println!(
        "workload: start -> credit check completed in-process -> decide -> end; {} concurrent starters; \
         {} instances per PostgreSQL measure, {} on SQLite (after {WARM_UP} to warm up)",
        workload.concurrency, workload.instances, workload.sqlite_instances
    );

    let mut lines = Vec::new();
    lines.extend(sqlite_measures(&workload).await?);

    let server = std::env::var("BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
        .trim_end_matches('/')
        .to_string();
    match PgDb::create(&server).await {
        Ok(db) => {
            // The database is dropped when `db` goes, whatever the measures did.
            lines.extend(pg_measures(&db, &workload).await?);
        }
        Err(reason) => {
            println!("NOTICE: PostgreSQL is not reachable at {server} ({reason}): measuring SQLite only");
        }
    }

    println!();
    println!("{:<48} {:>9}", "measure", "per second");
    for line in &lines {
        line.print();
    }
    if lines.iter().any(|l| l.verified == Some(false)) {
        return Err("a measure's check failed: its work did not complete".into());
    }
    Ok(())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The machine's busy and total CPU time so far, in ticks (the `cpu` line of /proc/stat).
fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
    let total: u64 = ticks.iter().sum();
    // idle and iowait
    let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// The share of the machine's CPU time spent busy between two readings of [`cpu_times`].
fn cpu_busy(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> String {
    match (before, after) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => format!("{:.0} %", 100.0 * (b1 - b0) as f64 / (t1 - t0) as f64),
        _ => "unknown".into(),
    }
}

fn reference_files() -> BenchResult<Vec<(String, String)>> {
    let dir = format!("{}/../processes", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".flow"))
        .collect();
    names.sort();
    names.into_iter().map(|n| Ok((n.clone(), std::fs::read_to_string(format!("{dir}/{n}"))?))).collect()
}

// ---------------------------------------------------------------------------------------------
// SQLite

/// A SQLite file removed (with its WAL) when dropped.
struct SqliteFile(PathBuf);

impl Drop for SqliteFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

async fn sqlite_measures(workload: &Workload) -> BenchResult<Vec<Line>> {
    let file = SqliteFile(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("nodes-{}.db", std::process::id())));
    drop(SqliteFile(file.0.clone()));
    println!();
    println!("sqlite: WAL, synchronous=FULL, file {}", file.0.display());
    let url = format!("sqlite://{}", file.0.display());
    let node = Engine::connect(&url, Arc::new(SystemClock)).await?;
    deploy(&node, &workload.files).await?;
    let raw = sqlite_raw(&file.0, workload.concurrency, RAW_TIME).await?;
    println!(
        "  raw single-row commits/s: {raw:.0} ({} tasks, 1 connection: SQLite has one writer)",
        workload.concurrency
    );
    let nodes = [node];
    let measured = measure(&nodes, workload.sqlite_instances, workload.concurrency).await?;
    for node in &nodes {
        node.store().close().await;
    }
    Ok(vec![
        Line {
            label: "sqlite raw single-row commits (sqlx)".into(),
            rate: raw,
            note: format!("{} tasks, 1 connection", workload.concurrency),
            verified: None,
        },
        Line {
            label: "sqlite straight-through instances, 1 engine".into(),
            rate: measured.rate,
            note: format!("{} instances, ratio to raw {:.2}", workload.sqlite_instances, measured.rate / raw),
            verified: Some(measured.verified),
        },
    ])
}

/// Single-row autocommit INSERTs through sqlx on the file, from `tasks` tasks over its one
/// connection, for `time`.
async fn sqlite_raw(path: &Path, tasks: usize, time: Duration) -> BenchResult<f64> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_raw (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        .execute(&pool)
        .await?;
    let start = Instant::now();
    let deadline = start + time;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let pool = pool.clone();
        set.spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                sqlx::query("INSERT INTO bench_raw (v) VALUES (?1)").bind("x").execute(&pool).await?;
                n += 1;
            }
            Ok::<_, sqlx::Error>(n)
        });
    }
    let mut n = 0;
    while let Some(done) = set.join_next().await {
        n += done??;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    pool.close().await;
    Ok(rate)
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/// A PostgreSQL database of this run's own, dropped (with whatever connections remain) when
/// dropped.
struct PgDb {
    server: String,
    name: String,
}

impl PgDb {
    /// Creates a uniquely named database on `server`; the reason when the server cannot be
    /// reached.
    async fn create(server: &str) -> Result<PgDb, String> {
        let admin = format!("{server}/postgres");
        let mut conn = match tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(&admin)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("timed out".into()),
        };
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let name = format!("cloverleaf_bench_{}_{nanos}", std::process::id());
        sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await.map_err(|e| e.to_string())?;
        let _ = conn.close().await;
        Ok(PgDb { server: server.to_string(), name })
    }

    fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        // Drop may run inside the benchmark's runtime: drop the database from a thread with its own.
        let admin = format!("{}/postgres", self.server);
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(&admin).await?;
                sqlx::query(&sql).execute(&mut conn).await?;
                conn.close().await
            })
            .map_err(std::io::Error::other)
        })
        .join();
        if matches!(dropped, Ok(Ok(()))) {
            println!("postgresql: dropped database {}", self.name);
        } else {
            eprintln!("could not drop benchmark database {}: {dropped:?}", self.name);
        }
    }
}

async fn pg_measures(db: &PgDb, workload: &Workload) -> BenchResult<Vec<Line>> {
    let url = db.url();
    let mut admin = PgConnection::connect(&url).await?;
    let (version, sync, fsync, autovacuum): (String, String, String, String) = sqlx::query_as(
        "SELECT current_setting('server_version'), current_setting('synchronous_commit'), current_setting('fsync'), \
         current_setting('autovacuum')",
    )
    .fetch_one(&mut admin)
    .await?;
    println!();
    println!(
        "postgresql {version}: synchronous_commit={sync}, fsync={fsync}, autovacuum={autovacuum}, database {}",
        db.name
    );

    let mut lines = Vec::new();
    let tasks = workload.concurrency;
    let wide = tasks.min(env_usize("BENCH_RAW_PG_CONNECTIONS", RAW_PG_CONNECTIONS).max(1));
    for (tasks, connections) in [(1, 1), (2, 2), (3, 3), (tasks, wide)] {
        let raw = pg_raw(&url, tasks, connections, RAW_TIME).await?;
        println!("  raw single-row commits/s: {raw:.0} ({tasks} tasks, {connections} connections)");
        lines.push(Line {
            label: format!("postgresql raw single-row commits, {connections} conn."),
            rate: raw,
            note: format!("{tasks} tasks"),
            verified: None,
        });
    }

    for count in 1..=3 {
        let mut nodes = Vec::new();
        for _ in 0..count {
            nodes.push(Engine::connect(&url, Arc::new(SystemClock)).await?);
        }
        deploy(&nodes[0], &workload.files).await?;
        println!("  {count} node(s):");
        let measured = measure(&nodes, workload.instances, workload.concurrency).await;
        for node in &nodes {
            node.store().close().await;
        }
        drop(nodes);
        let measured = measured?;
        lines.push(Line {
            label: format!("postgresql straight-through instances, {count} node{}", if count == 1 { "" } else { "s" }),
            rate: measured.rate,
            note: format!("{} instances", workload.instances),
            verified: Some(measured.verified),
        });
        // Leave the next measure no dead rows of this one to step over.
        sqlx::query("VACUUM ANALYZE").execute(&mut admin).await?;
    }
    admin.close().await?;
    Ok(lines)
}

/// Single-row autocommit INSERTs into a tiny table through sqlx, from `tasks` tasks over
/// `connections` connections, for `time`.
async fn pg_raw(url: &str, tasks: usize, connections: usize, time: Duration) -> BenchResult<f64> {
    let connections = u32::try_from(connections.max(1))?;
    let pool = PgPoolOptions::new().max_connections(connections).min_connections(connections).connect(url).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_raw (id BIGSERIAL PRIMARY KEY, v TEXT NOT NULL)")
        .execute(&pool)
        .await?;
    sqlx::query("TRUNCATE bench_raw").execute(&pool).await?;
    let start = Instant::now();
    let deadline = start + time;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let pool = pool.clone();
        set.spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                sqlx::query("INSERT INTO bench_raw (v) VALUES ($1)").bind("x").execute(&pool).await?;
                n += 1;
            }
            Ok::<_, sqlx::Error>(n)
        });
    }
    let mut n = 0;
    while let Some(done) = set.join_next().await {
        n += done??;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    pool.close().await;
    Ok(rate)
}

// ---------------------------------------------------------------------------------------------
// The workload

async fn deploy(node: &Node, files: &[(String, String)]) -> Result<(), Error> {
    node.deploy(&files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect::<Vec<_>>()).await?;
    Ok(())
}

/// A measure's rate and whether its check held.
struct Measured {
    rate: f64,
    verified: bool,
}

/// Warms up, runs `instances` straight through on `nodes`, prints what each node's writer did
/// and the check, and returns the rate.
async fn measure(nodes: &[Node], instances: usize, concurrency: usize) -> BenchResult<Measured> {
    straight_through(nodes, WARM_UP, concurrency.min(64)).await?;
    let before_counts = counts(&nodes[0]).await?;
    let before: Vec<WriterStats> = nodes.iter().map(|n| n.writer_stats()).collect();
    let cpu_before = cpu_times();
    let rate = straight_through(nodes, instances, concurrency).await?;
    let cpu = cpu_busy(cpu_before, cpu_times());
    for (i, (node, before)) in nodes.iter().zip(&before).enumerate() {
        let after = node.writer_stats();
        let batches = after.batches - before.batches;
        println!(
            "    node {}: {batches} transactions, {:.1} writes each, {:.1} ms busy each",
            i + 1,
            (after.writes - before.writes) as f64 / batches.max(1) as f64,
            (after.busy_micros - before.busy_micros) as f64 / batches.max(1) as f64 / 1000.0
        );
    }
    let after = counts(&nodes[0]).await?;
    let started = after.instances - before_counts.instances;
    let verified = usize::try_from(started) == Ok(instances) && after.unfinished == 0 && after.jobs_left == 0;
    println!(
        "    check: {started} instances started, {} of them completed, {} jobs left: {}",
        started - after.unfinished,
        after.jobs_left,
        if verified { "ok" } else { "FAILED" }
    );
    println!(
        "    straight-through instances/s: {rate:.0}{} (machine CPU busy {cpu})",
        if verified { "" } else { " (INVALID: check failed)" }
    );
    Ok(Measured { rate, verified })
}

/// What the store holds: instances, those not completed, jobs not done.
struct Counts {
    instances: i64,
    unfinished: i64,
    jobs_left: i64,
}

async fn counts(node: &Node) -> BenchResult<Counts> {
    const SQL: &str = "SELECT (SELECT COUNT(*) FROM instances), \
                       (SELECT COUNT(*) FROM instances WHERE status <> 'completed'), \
                       (SELECT COUNT(*) FROM jobs WHERE state <> 'done')";
    let (instances, unfinished, jobs_left): (i64, i64, i64) = match node.store() {
        AnyStore::Sqlite(s) => sqlx::query_as(SQL).fetch_one(s.pool()).await?,
        AnyStore::Postgres(s) => sqlx::query_as(SQL).fetch_one(s.pool()).await?,
    };
    Ok(Counts { instances, unfinished, jobs_left })
}

fn order(i: usize) -> serde_json::Value {
    json!({"order_id": format!("SO-{i}"), "customer_id": "C-7", "amount": "5000.00", "requested_by": "rita"})
}

/// start → credit check completed in-process → decide → end, `instances` times, by
/// `concurrency` starters spread over `nodes`.
async fn straight_through(nodes: &[Node], instances: usize, concurrency: usize) -> BenchResult<f64> {
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let node = nodes[w % nodes.len()].clone();
        let share = instances / concurrency + usize::from(w < instances % concurrency);
        set.spawn(async move {
            for i in 0..share {
                node.start("order_approval", None, order(i)).await?;
                complete_credit_checks(&node, 1).await?;
            }
            Ok::<_, Error>(())
        });
    }
    while let Some(done) = set.join_next().await {
        done??;
    }
    // Jobs another starter's fetch skipped, through any node.
    loop {
        let mut completed = 0;
        for node in nodes {
            completed += complete_credit_checks(node, 256).await?;
        }
        if completed == 0 {
            break;
        }
    }
    Ok(instances as f64 / start.elapsed().as_secs_f64())
}

async fn complete_credit_checks(node: &Node, max: usize) -> Result<usize, Error> {
    let jobs = node.fetch_and_lock("bench", &["credit.check"], max, TimeDelta::seconds(60)).await?;
    for job in &jobs {
        node.complete_job(&job.id, job.epoch, json!({"credit_limit": "50000", "open_ar": "0", "risk": "A"})).await?;
    }
    Ok(jobs.len())
}
