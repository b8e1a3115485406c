//! Engine throughput on a file-backed SQLite database (WAL, `synchronous=FULL`), beside the raw
//! single-row commit rate of the same file measured in the same run.
//!
//! `cargo bench -p cloverleaf-engine --bench engine` (env: `BENCH_INSTANCES`, `BENCH_CONCURRENCY`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use cloverleaf_engine::SystemClock;
use cloverleaf_engine::runtime::{Engine, EngineOptions};
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> BenchResult<()> {
    let workers = env_usize("BENCH_WORKER_THREADS", 2);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()?;
    runtime.block_on(run())
}

async fn run() -> BenchResult<()> {
    let instances = env_usize("BENCH_INSTANCES", 20_000);
    let concurrency = env_usize("BENCH_CONCURRENCY", 256);
    let human = env_usize("BENCH_HUMAN_INSTANCES", instances / 4);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("bench-{}.db", std::process::id()));
    remove(&path);

    let engine = Engine::open(EngineOptions::new(&path, Arc::new(SystemClock))).await?;
    engine.deploy(&reference_files()?.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect::<Vec<_>>()).await?;

    let raw = raw_commits(&path, Duration::from_secs(2)).await?;
    // Warm up caches and the statement cache.
    straight_through(&engine, 500, 64).await?;
    let before = engine.writer_stats();
    let st = straight_through(&engine, instances, concurrency).await?;
    let after = engine.writer_stats();
    let batches = after.batches - before.batches;
    let writes = after.writes - before.writes;
    println!(
        "straight-through: {batches} transactions, {:.1} writes each, {:.0} us busy each",
        writes as f64 / batches.max(1) as f64,
        (after.busy_micros - before.busy_micros) as f64 / batches.max(1) as f64
    );
    let ht = human_task(&engine, human, concurrency).await?;
    let raw_after = raw_commits(&path, Duration::from_secs(2)).await?;
    let raw = raw.max(raw_after);

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("machine: {cores} cores, {cpu}");
    println!("sqlite: WAL, synchronous=FULL, file {}", path.display());
    println!("raw single-row commits/s (sqlx):      {raw:>10.0}");
    println!(
        "straight-through instances/s:         {st:>10.0}  ({instances} instances, {concurrency} concurrent starters)"
    );
    println!("one-human-task instances/s:           {ht:>10.0}  ({human} instances)");
    println!("ratio straight-through / raw commits: {:>10.2}", st / raw);
    println!("ratio human-task / raw commits:       {:>10.2}", ht / raw);
    drop(engine);
    remove(&path);
    Ok(())
}

fn remove(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
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

/// Single-row autocommit INSERTs through sqlx on the same file, for `time`.
async fn raw_commits(path: &Path, time: Duration) -> BenchResult<f64> {
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
    let mut n = 0u64;
    while start.elapsed() < time {
        sqlx::query("INSERT INTO bench_raw (v) VALUES (?1)").bind("x").execute(&pool).await?;
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    pool.close().await;
    Ok(rate)
}

fn order(i: usize, amount: &str) -> serde_json::Value {
    json!({"order_id": format!("SO-{i}"), "customer_id": "C-7", "amount": amount, "requested_by": "rita"})
}

/// start → credit check completed in-process → decide → end, `instances` times.
async fn straight_through(engine: &Engine, instances: usize, concurrency: usize) -> BenchResult<f64> {
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let engine = engine.clone();
        let share = instances / concurrency + usize::from(w < instances % concurrency);
        set.spawn(async move {
            for i in 0..share {
                engine.start("order_approval", None, order(i, "5000.00")).await?;
                complete_credit_checks(&engine, 1).await?;
            }
            Ok::<_, cloverleaf_engine::runtime::Error>(())
        });
    }
    while let Some(done) = set.join_next().await {
        done??;
    }
    // Jobs another starter's fetch skipped.
    while complete_credit_checks(engine, 256).await? > 0 {}
    Ok(instances as f64 / start.elapsed().as_secs_f64())
}

async fn complete_credit_checks(engine: &Engine, max: usize) -> Result<usize, cloverleaf_engine::runtime::Error> {
    let jobs = engine.fetch_and_lock("bench", &["credit.check"], max, TimeDelta::seconds(60)).await?;
    for job in &jobs {
        engine.complete_job(&job.id, job.epoch, json!({"credit_limit": "50000", "open_ar": "0", "risk": "A"})).await?;
    }
    Ok(jobs.len())
}

/// start → credit check → a manager approves through the engine API → end.
async fn human_task(engine: &Engine, instances: usize, concurrency: usize) -> BenchResult<f64> {
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let engine = engine.clone();
        let share = instances / concurrency + usize::from(w < instances % concurrency);
        set.spawn(async move {
            for i in 0..share {
                let id = engine.start("order_approval", None, order(i, "20000.00")).await?;
                complete_credit_checks(&engine, 1).await?;
                for task in engine.tasks(Some(&id)).await? {
                    engine.complete_task(&task.id, "max", &["sales.manager"], json!({"approve": true})).await?;
                }
            }
            Ok::<_, cloverleaf_engine::runtime::Error>(())
        });
    }
    while let Some(done) = set.join_next().await {
        done??;
    }
    // Approvals whose credit check another starter completed.
    loop {
        let checks = complete_credit_checks(engine, 256).await?;
        let tasks = engine.tasks(None).await?;
        for task in &tasks {
            engine.complete_task(&task.id, "max", &["sales.manager"], json!({"approve": true})).await?;
        }
        if checks == 0 && tasks.is_empty() {
            break;
        }
    }
    Ok(instances as f64 / start.elapsed().as_secs_f64())
}
