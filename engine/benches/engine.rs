//! Engine throughput on a file-backed SQLite database (WAL, `synchronous=FULL`), beside the raw
//! single-row commit rate of the same file measured in the same run.
//!
//! Beside each rate it prints what one instance costs the writer: rows written, WAL bytes, CPU
//! time on the writer path (see `common/cost.rs`). `BENCH_PREFILL=N` first fills the database
//! with N completed instances (copies of instances completed through the engine, see
//! `common/prefill.rs`), to show how the rates hold up on a database with history.
//! `BENCH_ARCHIVE=1` then moves them all into a second file (`Engine::archive`, as `cloverleaf
//! archive` does) and `VACUUM`s the live one before the rates are measured: the archive rate and
//! the live file's size before and after are printed.
//!
//! `cargo bench -p cloverleaf-engine --bench engine` (env: `BENCH_INSTANCES`, `BENCH_CONCURRENCY`,
//! `BENCH_HUMAN_INSTANCES`, `BENCH_WORKER_THREADS`, `BENCH_PREFILL`, `BENCH_ARCHIVE`,
//! `BENCH_ARCHIVE_BATCH`).

mod common;

use std::sync::Arc;
use std::time::Instant;

use cloverleaf_engine::SystemClock;
use cloverleaf_engine::runtime::{Engine, EngineOptions};
use cloverleaf_testkit::machine::cpu_model;
use common::workload::{SqliteFile, complete_credit_checks, order, reference_files, straight_through};
use common::{BenchResult, cost, env_usize, sqlite_raw};
use serde_json::json;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> BenchResult<()> {
    common::block_on(run())
}

async fn run() -> BenchResult<()> {
    let instances = env_usize("BENCH_INSTANCES", 20_000);
    let concurrency = env_usize("BENCH_CONCURRENCY", 256);
    let human = env_usize("BENCH_HUMAN_INSTANCES", instances / 4);
    let prefill = env_usize("BENCH_PREFILL", 0);
    let file = SqliteFile::new(&format!("bench-{}.db", std::process::id()));
    let path = file.path();

    let engine = Engine::open(EngineOptions::new(path, Arc::new(SystemClock))).await?;
    engine.deploy(&reference_files()?.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect::<Vec<_>>()).await?;

    if prefill > 0 {
        let took = common::prefill::prefill(&engine, path, prefill).await?;
        let size = std::fs::metadata(path).map_or(0, |m| m.len());
        println!(
            "pre-filled: {prefill} completed instances in {:.0} s, file {:.2} GB",
            took.as_secs_f64(),
            size as f64 / 1e9
        );
    }
    let archived = if prefill > 0 && env_usize("BENCH_ARCHIVE", 0) > 0 {
        let archive = SqliteFile::new(&format!("bench-{}-archive.db", std::process::id()));
        let raw = sqlite_raw(path, 1).await?;
        let a = common::prefill::archive_all(path, archive.path()).await?;
        let line = format!(
            "archived: {} instances at {:.0}/s (raw commits/s {raw:.0}); live file {:.2} GB before, {:.2} GB after \
             (free pages, reused by new rows), {:.2} GB after VACUUM ({:.0} s); archive file {:.2} GB",
            a.instances,
            a.rate,
            a.before as f64 / 1e9,
            a.after as f64 / 1e9,
            a.vacuumed as f64 / 1e9,
            a.vacuum.as_secs_f64(),
            a.archive as f64 / 1e9
        );
        println!("{line}");
        Some(line)
    } else {
        None
    };
    let raw = sqlite_raw(path, 1).await?;
    // Warm up caches and the statement cache.
    straight_through(std::slice::from_ref(&engine), 500, 64).await?;
    let before = engine.writer_stats();
    let cost_before = cost::read(&engine).await?;
    let st = straight_through(std::slice::from_ref(&engine), instances, concurrency).await?;
    let cost_after = cost::read(&engine).await?;
    let after = engine.writer_stats();
    let st_cost = cost::per_instance(cost_before, cost_after, instances);
    let batches = after.batches - before.batches;
    let writes = after.writes - before.writes;
    let busy = after.busy_micros - before.busy_micros;
    let st_busy = format!(
        "{batches} transactions, {:.1} writes each, {:.0} us each, writer busy {:.0} us per instance",
        writes as f64 / batches.max(1) as f64,
        busy as f64 / batches.max(1) as f64,
        busy as f64 / instances.max(1) as f64
    );
    let ht_before = cost::read(&engine).await?;
    let ht = human_task(&engine, human, concurrency).await?;
    let ht_cost = cost::per_instance(ht_before, cost::read(&engine).await?, human);
    let raw_after = sqlite_raw(path, 1).await?;
    let raw = raw.max(raw_after);

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("machine: {cores} cores, {}", cpu_model());
    let archived = archived.map_or(String::new(), |line| format!(", then {line}"));
    println!(
        "sqlite: WAL, synchronous=FULL, file {}, {prefill} completed instances pre-filled{archived}",
        path.display()
    );
    println!("raw single-row commits/s (sqlx):      {raw:>10.0}");
    println!(
        "straight-through instances/s:         {st:>10.0}  ({instances} instances, {concurrency} concurrent starters)"
    );
    println!("one-human-task instances/s:           {ht:>10.0}  ({human} instances)");
    println!("ratio straight-through / raw commits: {:>10.2}", st / raw);
    println!("ratio human-task / raw commits:       {:>10.2}", ht / raw);
    println!("straight-through writer: {st_busy}");
    println!("{}", st_cost.line("straight-through instance"));
    println!("{}", ht_cost.line("one-human-task instance"));
    // The engine goes before `file` removes its database.
    drop(engine);
    Ok(())
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
