//! Timers fired per second with a million pending, beside the raw single-row commit rate of the
//! same SQLite file (WAL, `synchronous=FULL`) measured in the same run; then, when a server is
//! reachable, the same on PostgreSQL.
//!
//! Every instance waits at `wait pause { until due }`. The pending ones wait for dates spread
//! over the coming year; a slice of them, spread through the tables among the pending ones, is
//! due at the next midnight. The scheduler ([`Scheduler`]) runs on a virtual clock;
//! the clock is moved to that midnight and the wall-clock time until no due timer is left is
//! measured. Afterwards exactly the due slice must have completed and every other instance must
//! still be untouched, its timer in place. The same slice is then fired once more on a fresh
//! database with nothing else pending, to show what the million costs.
//!
//! Starting a million instances through the engine would take minutes at a few thousand a second,
//! so a few templates are started through it and the rest are copies of their rows under new ids,
//! checked against their templates before and after firing (see [`copies`]).
//!
//! `cargo bench -p cloverleaf-engine --bench timers` (env: `BENCH_PENDING`, `BENCH_DUE`;
//! `BENCH_PG_PENDING`, `BENCH_PG_DUE`, where a pending count of 0 skips PostgreSQL;
//! `BENCH_WORKER_THREADS`; the PostgreSQL server is `CLOVERLEAF_TEST_PG_URL`, see
//! [`cloverleaf_testkit::testdb`]).

#[path = "../common/mod.rs"]
mod common;
mod copies;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use cloverleaf_engine::VirtualClock;
use cloverleaf_engine::runtime::{Engine, EngineOptions, Scheduler, SchedulerOptions};
use cloverleaf_engine::store::{Store, ts};
use cloverleaf_testkit::machine::{cpu_busy, cpu_model, cpu_times};
use cloverleaf_testkit::testdb::{Backend, ScratchDb};
use common::{BenchResult, env_usize, pg_raw, sqlite_raw};
use copies::{Cell, InstanceRows, T_INSTANCES, TABLES, check_schema, compare_sample, insert};
use serde_json::json;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, ConnectOptions as _, Executor as _, Row as _};

/// The process every instance runs.
const FLOW: &str = r#"process bench_timer "Timer benchmark" {
  input { due: date }
  start -> pause
  wait pause { until due } -> done
  end done "Done"
}
"#;
const PROCESS: &str = "bench_timer";
/// The date the due slice waits for; the clock starts the morning before.
const DUE_DATE: &str = "2026-01-06";
/// Templates of pending instances, one a week from the first date below.
const PENDING_TEMPLATES: usize = 52;
const FIRST_PENDING_DATE: &str = "2026-02-02";
/// Instances copied per transaction.
const COPIES_PER_TRANSACTION: usize = 10_000;
/// The firing measure fails when no timer fired for this long.
const STALL: Duration = Duration::from_secs(120);
/// Copies compared with their template, before and after firing.
const SAMPLE: usize = 40;

fn main() -> BenchResult<()> {
    common::block_on(run())
}

/// How many instances wait, and how many of them fall due.
#[derive(Debug, Clone, Copy)]
struct Plan {
    pending: usize,
    due: usize,
}

/// What one measure found.
struct Measured {
    /// Timers fired per second.
    rate: f64,
    /// Raw single-row commits per second on the same database, when measured.
    raw: Option<f64>,
}

/// One row of the summary.
struct Line {
    measure: String,
    rate: f64,
    note: String,
}

async fn run() -> BenchResult<()> {
    let sqlite_plan =
        Plan { pending: env_usize("BENCH_PENDING", 1_000_000), due: env_usize("BENCH_DUE", 20_000).max(1) };
    let pg_plan =
        Plan { pending: env_usize("BENCH_PG_PENDING", 1_000_000), due: env_usize("BENCH_PG_DUE", 20_000).max(1) };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("machine: {cores} cores, {}; load average at start {}", cpu_model(), load_average());

    let mut lines = Vec::new();
    println!("\n== SQLite (WAL, synchronous=FULL)");
    let main = measure_on(&ScratchDb::sqlite(), sqlite_plan, true).await?;
    println!("\n-- the same due slice on a fresh file, nothing else pending");
    let alone = measure_on(&ScratchDb::sqlite(), Plan { pending: 0, due: sqlite_plan.due }, false).await?;
    lines.extend(summary("SQLite", "raw single-row commits through sqlx (same file)", sqlite_plan, &main, &alone));

    if pg_plan.pending == 0 {
        println!("\nNOTICE: BENCH_PG_PENDING=0: PostgreSQL skipped");
    } else if let Some(db) = ScratchDb::postgres().await {
        println!("\n== PostgreSQL");
        let main = measure_on(&db, pg_plan, true).await?;
        drop(db);
        println!("\n-- the same due slice in a fresh database, nothing else pending");
        let db = ScratchDb::postgres().await.ok_or("PostgreSQL went away")?;
        let alone = measure_on(&db, Plan { pending: 0, due: pg_plan.due }, false).await?;
        lines.extend(summary(
            "PostgreSQL",
            "raw single-row commits, 1 connection (same database)",
            pg_plan,
            &main,
            &alone,
        ));
    } else {
        println!("\nNOTICE: PostgreSQL not reachable: measured SQLite only");
    }

    println!("\nload average at the end {}", load_average());
    println!("\n| measure | per second |\n|---|---|");
    for line in lines {
        println!("| {} | {}{} |", line.measure, thousands(line.rate), line.note);
    }
    Ok(())
}

/// The summary rows of one backend.
fn summary(backend: &str, raw_label: &str, plan: Plan, main: &Measured, alone: &Measured) -> Vec<Line> {
    let raw = main.raw.unwrap_or(f64::NAN);
    let (due, pending) = (thousands(plan.due as f64), thousands(plan.pending as f64));
    vec![
        Line { measure: format!("{backend}: {raw_label}"), rate: raw, note: String::new() },
        Line {
            measure: format!("{backend}: timers fired, {due} due among {pending} pending"),
            rate: main.rate,
            note: format!(" (ratio {:.2})", main.rate / raw),
        },
        Line {
            measure: format!("{backend}: timers fired, {due} due, nothing else pending"),
            rate: alone.rate,
            note: format!(" (ratio {:.2})", alone.rate / raw),
        },
    ]
}

/// Opens an engine on `db` and measures `plan` there (with `raw`, the raw commit rate too).
async fn measure_on(db: &ScratchDb, plan: Plan, raw: bool) -> BenchResult<Measured> {
    let clock = VirtualClock::new(start_time());
    match db.backend() {
        Backend::Sqlite => {
            let engine = Engine::open(EngineOptions::new(db.url(), Arc::new(clock.clone()))).await?;
            measure(&engine, &clock, db, plan, raw).await
        }
        Backend::Postgres => {
            let engine = Engine::connect(&db.url(), Arc::new(clock.clone())).await?;
            measure(&engine, &clock, db, plan, raw).await
        }
    }
}

/// Builds the instances, fires the due slice with the scheduler and checks what fired; with
/// `raw`, measures raw commits before building and after firing, and keeps the higher rate.
async fn measure<S: Store>(
    engine: &Engine<S>,
    clock: &VirtualClock,
    db: &ScratchDb,
    plan: Plan,
    raw: bool,
) -> BenchResult<Measured> {
    let raw_before = if raw { Some(raw_commits(db).await?) } else { None };
    let pool = bench_pool(db).await?;
    engine.deploy(&[("bench_timer.flow", FLOW)]).await?;

    let setup = Instant::now();
    let built = build(engine, &pool, db.backend(), plan).await?;
    println!(
        "setup: templates started through the engine: {}; copies written: {} in {:.1} s ({}/s); \
         setup took {:.1} s in all",
        built.templates.len(),
        thousands(built.copies as f64),
        built.copy_time.as_secs_f64(),
        thousands(built.copies as f64 / built.copy_time.as_secs_f64().max(1e-9)),
        setup.elapsed().as_secs_f64()
    );
    if db.backend() == Backend::Sqlite {
        let size = std::fs::metadata(db.url()).map_or(0, |m| m.len());
        println!("database file: {:.2} GB", size as f64 / 1e9);
    }
    let compared = compare_sample(engine, &pool, &built.pending_sample).await?
        + compare_sample(engine, &pool, &built.due_sample).await?;
    println!(
        "before firing: {compared} copies are their templates' rows with only the id changed; they replay and verify"
    );

    // The scheduler runs as `serve` runs it; it fires whatever the clock's jump makes due.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let scheduler = Scheduler::new(engine.clone(), SchedulerOptions::default());
    let first_pass = scheduler.handle();
    let mut scheduler = tokio::spawn(scheduler.run(async {
        let _ = stopped.await;
    }));
    // Let it finish its first pass (nothing is due) and go to sleep.
    tokio::select! {
        _ = first_pass.wait_until(|s| s.passes >= 1) => {}
        ended = &mut scheduler => {
            ended??;
            return Err("the scheduler stopped before its first pass".into());
        }
    }
    let due_at = due_time();
    let due_ts = ts(due_at);
    let writer_before = engine.writer_stats();
    let cpu_before = cpu_times();
    let started = Instant::now();
    clock.advance_to(due_at);
    let mut left = plan.due as i64;
    let mut progress = Instant::now();
    while left > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now_left = count(&pool, "SELECT COUNT(*) FROM timers WHERE due_at <= $1", Some(&due_ts)).await?;
        if now_left < left {
            progress = Instant::now();
        } else if progress.elapsed() > STALL {
            return Err(format!("no timer fired for {STALL:?}; {now_left} due timers left").into());
        }
        left = now_left;
    }
    let elapsed = started.elapsed();
    let cpu = cpu_busy(cpu_before, cpu_times());
    let writer_after = engine.writer_stats();
    let _ = stop.send(());
    scheduler.await??;
    let rate = plan.due as f64 / elapsed.as_secs_f64();
    let batches = writer_after.batches - writer_before.batches;
    let writes = writer_after.writes - writer_before.writes;
    println!(
        "fired {} timers in {:.2} s: {}/s; machine CPU busy {cpu}; writer: {batches} transactions, \
         {:.1} writes and {:.1} ms each",
        thousands(plan.due as f64),
        elapsed.as_secs_f64(),
        thousands(rate),
        writes as f64 / batches.max(1) as f64,
        (writer_after.busy_micros - writer_before.busy_micros) as f64 / batches.max(1) as f64 / 1000.0
    );

    check_outcome(&pool, plan, &built, &due_ts).await?;
    let due_template = &built.templates[0];
    let fired_sample: Vec<(String, String)> = built
        .due_ids
        .iter()
        .skip(1)
        .step_by((built.due_ids.len() / SAMPLE).max(1))
        .chain(built.due_ids.last())
        .map(|id| (due_template.clone(), id.clone()))
        .collect();
    let compared = compare_sample(engine, &pool, &fired_sample).await?;
    println!(
        "after firing: exactly the {} due instances completed{}; {compared} fired copies are the fired \
         template's rows with only the id changed, replay and verify",
        thousands(plan.due as f64),
        match plan.pending {
            0 => String::new(),
            n => format!(" and the {} others wait untouched", thousands(n as f64)),
        }
    );

    pool.close().await;
    let raw = match raw_before {
        Some(before) => {
            let after = raw_commits(db).await?;
            println!(
                "raw single-row commits/s: {} before building, {} after firing; the higher one is used",
                thousands(before),
                thousands(after)
            );
            Some(before.max(after))
        }
        None => None,
    };
    Ok(Measured { rate, raw })
}

/// The virtual clock's start: the morning before the due slice.
fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).single().unwrap_or_default()
}

/// When the due slice falls due (midnight UTC of [`DUE_DATE`]).
fn due_time() -> DateTime<Utc> {
    let date = NaiveDate::parse_from_str(DUE_DATE, "%Y-%m-%d").unwrap_or_default();
    date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

/// A pool of the benchmark's own on `db`, for copying rows and checking them.
async fn bench_pool(db: &ScratchDb) -> BenchResult<AnyPool> {
    sqlx::any::install_default_drivers();
    let options = match db.backend() {
        Backend::Sqlite => AnyConnectOptions::from_url(&SqliteConnectOptions::new().filename(db.url()).to_url_lossy())?,
        Backend::Postgres => db.url().parse()?,
    };
    let sqlite = db.backend() == Backend::Sqlite;
    let pool = AnyPoolOptions::new()
        .max_connections(2)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if sqlite {
                    // The engine's writer may hold the file's write lock for a while.
                    conn.execute("PRAGMA busy_timeout = 30000").await?;
                }
                Ok(())
            })
        })
        .connect_with(options)
        .await?;
    Ok(pool)
}

async fn count(pool: &AnyPool, sql: &str, arg: Option<&str>) -> BenchResult<i64> {
    let mut query = sqlx::query(sql);
    if let Some(arg) = arg {
        query = query.bind(arg.to_string());
    }
    Ok(query.fetch_one(pool).await?.try_get::<i64, _>(0)?)
}

/// The instances of a run: templates first (the due one at 0), then copies.
struct Built {
    templates: Vec<String>,
    copies: usize,
    copy_time: Duration,
    /// Every instance of the due slice, templates included.
    due_ids: Vec<String>,
    /// (template, copy) pairs checked before firing.
    pending_sample: Vec<(String, String)>,
    due_sample: Vec<(String, String)>,
}

/// Starts the templates through the engine and writes the copies: the due ones spread evenly
/// among the pending ones, the pending ones shared out over the pending templates in turn.
async fn build<S: Store>(engine: &Engine<S>, pool: &AnyPool, backend: Backend, plan: Plan) -> BenchResult<Built> {
    let due_template = engine.start(PROCESS, None, json!({ "due": DUE_DATE })).await?.0;
    let first = NaiveDate::parse_from_str(FIRST_PENDING_DATE, "%Y-%m-%d")?;
    let mut pending_templates = Vec::new();
    for week in 0..PENDING_TEMPLATES.min(plan.pending) {
        let date = first + TimeDelta::weeks(week as i64);
        let due = date.format("%Y-%m-%d").to_string();
        pending_templates.push(engine.start(PROCESS, None, json!({ "due": due })).await?.0);
    }
    let mut templates = vec![due_template.clone()];
    templates.extend(pending_templates.iter().cloned());
    let lacking = check_schema(pool, backend).await?;
    let mut rows = Vec::with_capacity(templates.len());
    for id in &templates {
        for sql in &lacking {
            if count(pool, sql, Some(id.as_str())).await? != 0 {
                return Err(format!("template {id} has what its copies would lack: {sql}").into());
            }
        }
        let template = InstanceRows::load(pool, id).await?;
        let sizes: Vec<usize> = template.tables.iter().map(Vec::len).collect();
        if sizes[T_INSTANCES] != 1 || sizes[1] != 1 {
            return Err(format!("template {id}: expected one instance row and one timer, found {sizes:?}").into());
        }
        rows.push(template);
    }

    let due_copies = plan.due - 1;
    let pending_copies = plan.pending - pending_templates.len();
    let copies = due_copies + pending_copies;
    let mut due_ids = vec![due_template.clone()];
    let (mut pending_sample, mut due_sample) = (Vec::new(), Vec::new());
    let (pending_every, due_every) = ((pending_copies / SAMPLE).max(1), (due_copies / SAMPLE).max(1));
    let (mut pending_n, mut due_n) = (0usize, 0usize);
    let started = Instant::now();
    let mut conn = pool.acquire().await?;
    let mut n = 0usize;
    while n < copies {
        let mut batch: Vec<Vec<Vec<Cell>>> = vec![Vec::new(); TABLES.len()];
        let end = (n + COPIES_PER_TRANSACTION).min(copies);
        for k in n + 1..=end {
            let id = format!("i-timers-{k:08}");
            // Bresenham: copy k is due when the count of due copies up to k steps up.
            let due = k * due_copies / copies > (k - 1) * due_copies / copies;
            let t = if due {
                due_n += 1;
                if due_n % due_every == 0 {
                    due_sample.push((due_template.clone(), id.clone()));
                }
                due_ids.push(id.clone());
                0
            } else {
                pending_n += 1;
                let t = 1 + (pending_n - 1) % pending_templates.len().max(1);
                if pending_n % pending_every == 0 {
                    pending_sample.push((templates[t].clone(), id.clone()));
                }
                t
            };
            let copy = rows[t].copy_as(&templates[t], &id)?;
            for (acc, rows) in batch.iter_mut().zip(copy.tables) {
                acc.extend(rows);
            }
        }
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        for (table, rows) in TABLES.iter().zip(batch) {
            insert(&mut tx, backend, table, rows).await?;
        }
        tx.commit().await?;
        n = end;
    }
    if due_ids.len() != plan.due || due_n + pending_n != copies {
        return Err(format!("built {} due instances, planned {}", due_ids.len(), plan.due).into());
    }
    // Start the measure from a clean state: the WAL folded into the file (SQLite), fresh
    // statistics after the bulk load, as autovacuum would gather them (PostgreSQL).
    let tidy = match backend {
        Backend::Sqlite => "PRAGMA wal_checkpoint(TRUNCATE)",
        Backend::Postgres => "ANALYZE",
    };
    sqlx::query(tidy).execute(&mut *conn).await?;
    let copy_time = started.elapsed();
    Ok(Built { templates, copies, copy_time, due_ids, pending_sample, due_sample })
}

/// Exactly the due slice completed; every other instance still waits, untouched, its timer in place.
async fn check_outcome(pool: &AnyPool, plan: Plan, built: &Built, due_ts: &str) -> BenchResult<()> {
    let total = (plan.pending + plan.due) as i64;
    let (pending, due) = (plan.pending as i64, plan.due as i64);
    let mut due_completed = 0;
    for chunk in built.due_ids.chunks(1000) {
        let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!("SELECT COUNT(*) FROM instances WHERE status = 'completed' AND id IN ({})", marks.join(", "));
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(id.clone());
        }
        due_completed += query.fetch_one(pool).await?.try_get::<i64, _>(0)?;
    }
    let checks = [
        ("instances", count(pool, "SELECT COUNT(*) FROM instances", None).await?, total),
        (
            "completed instances",
            count(
                pool,
                "SELECT COUNT(*) FROM instances WHERE process_key = $1 AND status = 'completed'",
                Some(PROCESS),
            )
            .await?,
            due,
        ),
        ("completed instances of the due slice", due_completed, due),
        (
            "running instances never stepped since their start",
            count(
                pool,
                "SELECT COUNT(*) FROM instances WHERE process_key = $1 AND status = 'running' AND version = 1",
                Some(PROCESS),
            )
            .await?,
            pending,
        ),
        ("timers left", count(pool, "SELECT COUNT(*) FROM timers", None).await?, pending),
        (
            "timers left that are due",
            count(pool, "SELECT COUNT(*) FROM timers WHERE due_at <= $1", Some(due_ts)).await?,
            0,
        ),
        (
            "timers left of running instances",
            count(
                pool,
                "SELECT COUNT(*) FROM timers t JOIN instances i ON i.id = t.instance_id WHERE i.status = 'running'",
                None,
            )
            .await?,
            pending,
        ),
    ];
    let failed: Vec<String> = checks
        .iter()
        .filter(|(_, found, expected)| found != expected)
        .map(|(what, found, expected)| format!("{what}: {found}, expected {expected}"))
        .collect();
    if failed.is_empty() { Ok(()) } else { Err(format!("check failed: {}", failed.join("; ")).into()) }
}

// ---------------------------------------------------------------------------------------------
// Raw commits and the machine

/// The raw single-row commit rate of `db`, over one connection.
async fn raw_commits(db: &ScratchDb) -> BenchResult<f64> {
    match db.backend() {
        Backend::Sqlite => sqlite_raw(Path::new(&db.url()), 1).await,
        Backend::Postgres => pg_raw(&db.url(), 1, 1).await,
    }
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// A rate or count with thousands separators, rounded to a whole number.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
