//! Straight-through throughput of 1, 2 and 3 engine nodes sharing one PostgreSQL database, beside
//! the same workload on a SQLite file (WAL, `synchronous=FULL`) and the raw single-row commit rate
//! of both, all measured in one run. Every step is durable on both stores.
//!
//! A node is an `Engine<AnyStore>` from [`Engine::connect`], with its own connection pools and
//! its own group-commit writer; the nodes of a measure live in this process. The starters are
//! spread over the nodes; each fetches and completes whatever credit check is due through its
//! own node, whichever node created it, as workers attached to several nodes would.
//!
//! The PostgreSQL measures run in a database of their own, a [`ScratchDb`], created at the start
//! and dropped at the end (also when a measure fails). When the server cannot be reached only
//! SQLite is measured (unless `CI` is set: then the bench fails).
//! After each measure the store is checked: every instance started completed, and no job is left.
//!
//! `cargo bench -p cloverleaf-engine --bench nodes` (env: `BENCH_PG_URL`, the server without a
//! database name, else `CLOVERLEAF_TEST_PG_URL` as [`cloverleaf_testkit::testdb`] reads it; `BENCH_INSTANCES`, `BENCH_SQLITE_INSTANCES`, `BENCH_CONCURRENCY`,
//! `BENCH_WORKER_THREADS`; `BENCH_RAW_PG_CONNECTIONS`, the widest raw measure's connections, 64
//! unless a server shared with other clients has fewer to spare; `BENCH_WRITE_LINGER_MS`, the
//! PostgreSQL nodes' writer linger instead of the engine's default).

mod common;

use std::sync::Arc;

use cloverleaf_engine::SystemClock;
use cloverleaf_engine::runtime::{Engine, Error, WriterStats};
use cloverleaf_engine::store::AnyStore;
use cloverleaf_testkit::machine::{cpu_busy, cpu_model, cpu_times};
use cloverleaf_testkit::testdb::{PG_URL_VAR, ScratchDb};
use common::workload::{SqliteFile, reference_files, straight_through};
use common::{BenchResult, env_usize, pg_raw, sqlite_raw};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// One engine node.
type Node = Engine<AnyStore>;

/// Instances run before each measure, to fill the nodes' connection pools and statement caches.
const WARM_UP: usize = 500;
/// Most connections of the raw PostgreSQL measure at full concurrency, unless
/// `BENCH_RAW_PG_CONNECTIONS` says otherwise.
const RAW_PG_CONNECTIONS: usize = 64;

fn main() -> BenchResult<()> {
    if let Some(server) = std::env::var_os("BENCH_PG_URL") {
        // SAFETY: no other thread runs yet, so none reads the environment meanwhile.
        unsafe { std::env::set_var(PG_URL_VAR, server) };
    }
    common::block_on(run())
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

    match ScratchDb::postgres().await {
        // The database is dropped when `db` goes, whatever the measures did.
        Some(db) => lines.extend(pg_measures(&db, &workload).await?),
        None => println!("NOTICE: PostgreSQL is not reachable (see above): measuring SQLite only"),
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

// ---------------------------------------------------------------------------------------------
// SQLite

async fn sqlite_measures(workload: &Workload) -> BenchResult<Vec<Line>> {
    let file = SqliteFile::new(&format!("nodes-{}.db", std::process::id()));
    println!();
    println!("sqlite: WAL, synchronous=FULL, file {}", file.path().display());
    let url = format!("sqlite://{}", file.path().display());
    let node = Engine::connect(&url, Arc::new(SystemClock)).await?;
    deploy(&node, &workload.files).await?;
    let raw = sqlite_raw(file.path(), workload.concurrency).await?;
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

// ---------------------------------------------------------------------------------------------
// PostgreSQL

async fn pg_measures(db: &ScratchDb, workload: &Workload) -> BenchResult<Vec<Line>> {
    let url = db.url();
    let name = url.rsplit('/').next().unwrap_or_default();
    let mut admin = PgConnection::connect(&url).await?;
    let (version, sync, fsync, autovacuum): (String, String, String, String) = sqlx::query_as(
        "SELECT current_setting('server_version'), current_setting('synchronous_commit'), current_setting('fsync'), \
         current_setting('autovacuum')",
    )
    .fetch_one(&mut admin)
    .await?;
    println!();
    println!(
        "postgresql {version}: synchronous_commit={sync}, fsync={fsync}, autovacuum={autovacuum}, database {name}"
    );

    let mut lines = Vec::new();
    let tasks = workload.concurrency;
    let wide = tasks.min(env_usize("BENCH_RAW_PG_CONNECTIONS", RAW_PG_CONNECTIONS).max(1));
    for (tasks, connections) in [(1, 1), (2, 2), (3, 3), (tasks, wide)] {
        // Each measure starts on an empty table.
        sqlx::query("DROP TABLE IF EXISTS bench_raw").execute(&mut admin).await?;
        let raw = pg_raw(&url, tasks, connections).await?;
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
            let node = Engine::connect(&url, Arc::new(SystemClock)).await?;
            if let Some(millis) = std::env::var("BENCH_WRITE_LINGER_MS").ok().and_then(|v| v.parse().ok()) {
                node.set_write_linger(std::time::Duration::from_millis(millis));
            }
            nodes.push(node);
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
