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
//! so a few templates are started through it and the rest are copies of their rows: the instance,
//! its timer, its event log and its history, under a new id. The instance id is the only id in
//! those rows (the timer's id is derived from it, `{instance}.timer.2`), and it is rewritten
//! wherever it occurs; the history's hash chain is recomputed, since each row's hash covers the
//! instance id. The copied tables are checked to have no column the copies would miss (but a
//! timer's claim, which a template must not hold), and a template must have no rows in the other
//! tables that name instances (jobs, tasks, subscriptions...), which its copies would lack. A
//! sample of copies is checked before and after firing: its rows are its template's with only the
//! id changed, its event log replays to its stored state, and its history chain verifies.
//!
//! `cargo bench -p cloverleaf-engine --bench timers` (env: `BENCH_PENDING`, `BENCH_DUE`;
//! `BENCH_PG_PENDING`, `BENCH_PG_DUE`, where a pending count of 0 skips PostgreSQL;
//! `BENCH_WORKER_THREADS`; the PostgreSQL server is `CLOVERLEAF_TEST_PG_URL`, see
//! [`cloverleaf_engine::testdb`]).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use cloverleaf_engine::runtime::{Engine, EngineOptions, Scheduler, SchedulerOptions};
use cloverleaf_engine::store::{GENESIS_HASH, HistoryRow, Store, chain_hash, ts};
use cloverleaf_engine::testdb::{Backend, ScratchDb};
use cloverleaf_engine::{Instance, InstanceId, VirtualClock, replay};
use common::{BenchResult, cpu_busy, cpu_model, cpu_times, env_usize, pg_raw, sqlite_raw};
use serde_json::json;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyConnection, AnyPool, ConnectOptions as _, Executor as _, Row as _};

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
/// Most bound parameters in one statement (SQLite allows 32,766, PostgreSQL 65,535).
const MAX_PARAMS: usize = 30_000;
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

// ---------------------------------------------------------------------------------------------
// Copies of instances

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Int,
}

/// A table holding an instance's rows, and its columns.
struct Table {
    name: &'static str,
    /// The column naming the instance.
    owner: &'static str,
    order: &'static str,
    columns: &'static [(&'static str, Kind)],
}

const INSTANCES: Table = Table {
    name: "instances",
    owner: "id",
    order: "id",
    columns: &[
        ("id", Kind::Text),
        ("process_key", Kind::Text),
        ("process_version", Kind::Int),
        ("status", Kind::Text),
        ("business_key", Kind::Text),
        ("parent_id", Kind::Text),
        ("parent_call", Kind::Text),
        ("state", Kind::Text),
        ("version", Kind::Int),
        ("history_seq", Kind::Int),
        ("history_hash", Kind::Text),
        ("created_at", Kind::Text),
        ("updated_at", Kind::Text),
    ],
};
const TIMERS: Table = Table {
    name: "timers",
    owner: "instance_id",
    order: "id",
    columns: &[("id", Kind::Text), ("instance_id", Kind::Text), ("node", Kind::Text), ("due_at", Kind::Text)],
};
const EVENTS: Table = Table {
    name: "events",
    owner: "instance_id",
    order: "seq",
    columns: &[("instance_id", Kind::Text), ("seq", Kind::Int), ("at", Kind::Text), ("event", Kind::Text)],
};
const HISTORY: Table = Table {
    name: "history",
    owner: "instance_id",
    order: "seq",
    columns: &[
        ("instance_id", Kind::Text),
        ("seq", Kind::Int),
        ("at", Kind::Text),
        ("kind", Kind::Text),
        ("node", Kind::Text),
        ("who", Kind::Text),
        ("on_behalf_of", Kind::Text),
        ("detail", Kind::Text),
        ("prev_hash", Kind::Text),
        ("hash", Kind::Text),
    ],
};
/// The tables copied, in the order of [`InstanceRows::tables`].
const TABLES: [&Table; 4] = [&INSTANCES, &TIMERS, &EVENTS, &HISTORY];
const T_INSTANCES: usize = 0;
const T_HISTORY: usize = 3;
/// Columns of the copied tables that are not copied: they must be empty in a template.
const NOT_COPIED_COLUMNS: [&str; 1] = ["claimed_until"];

fn column(table: &Table, name: &str) -> usize {
    table.columns.iter().position(|(c, _)| *c == name).unwrap_or(usize::MAX)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Cell {
    Text(Option<String>),
    Int(i64),
}

impl Cell {
    fn text(&self) -> Option<&str> {
        match self {
            Cell::Text(t) => t.as_deref(),
            Cell::Int(_) => None,
        }
    }
}

/// Every row of one instance in [`TABLES`], each table's rows in order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InstanceRows {
    tables: Vec<Vec<Vec<Cell>>>,
}

impl InstanceRows {
    async fn load(pool: &AnyPool, id: &str) -> BenchResult<InstanceRows> {
        let mut tables = Vec::with_capacity(TABLES.len());
        for table in TABLES {
            let columns: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
            let sql = format!(
                "SELECT {} FROM {} WHERE {} = $1 ORDER BY {}",
                columns.join(", "),
                table.name,
                table.owner,
                table.order
            );
            let rows = sqlx::query(&sql).bind(id.to_string()).fetch_all(pool).await?;
            let mut cells = Vec::with_capacity(rows.len());
            for row in &rows {
                let mut out = Vec::with_capacity(table.columns.len());
                for (i, (_, kind)) in table.columns.iter().enumerate() {
                    out.push(match kind {
                        Kind::Text => Cell::Text(row.try_get::<Option<String>, _>(i)?),
                        Kind::Int => Cell::Int(row.try_get::<i64, _>(i)?),
                    });
                }
                cells.push(out);
            }
            tables.push(cells);
        }
        Ok(InstanceRows { tables })
    }

    /// The same rows with every occurrence of the id `from` in a text column replaced by `to`.
    fn renamed(&self, from: &str, to: &str) -> InstanceRows {
        let tables = self
            .tables
            .iter()
            .map(|rows| {
                rows.iter()
                    .map(|row| {
                        row.iter()
                            .map(|cell| match cell {
                                Cell::Text(Some(t)) => Cell::Text(Some(t.replace(from, to))),
                                other => other.clone(),
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        InstanceRows { tables }
    }

    /// A copy under the id `to`: renamed, with the history chain computed again for the new id
    /// and the instance's recorded chain head set to its last hash.
    fn copy_as(&self, from: &str, to: &str) -> BenchResult<InstanceRows> {
        let mut copy = self.renamed(from, to);
        let (prev_col, hash_col) = (column(&HISTORY, "prev_hash"), column(&HISTORY, "hash"));
        let mut prev = GENESIS_HASH.to_string();
        for row in &mut copy.tables[T_HISTORY] {
            let hash = chain_hash(&prev, &history_row(row)?);
            row[prev_col] = Cell::Text(Some(prev));
            row[hash_col] = Cell::Text(Some(hash.clone()));
            prev = hash;
        }
        let instance = copy.tables[T_INSTANCES].first_mut().ok_or("copy of a template without its instance row")?;
        instance[column(&INSTANCES, "history_hash")] = Cell::Text(Some(prev));
        Ok(copy)
    }

    /// The rows with the history hashes (and the recorded chain head) blanked: they differ
    /// between two instances with the same history, since they cover the instance id.
    fn without_hashes(mut self) -> InstanceRows {
        for row in &mut self.tables[T_HISTORY] {
            row[column(&HISTORY, "prev_hash")] = Cell::Text(None);
            row[column(&HISTORY, "hash")] = Cell::Text(None);
        }
        for row in &mut self.tables[T_INSTANCES] {
            row[column(&INSTANCES, "history_hash")] = Cell::Text(None);
        }
        self
    }
}

/// A history row of [`HISTORY`]'s cells.
fn history_row(cells: &[Cell]) -> BenchResult<HistoryRow> {
    let text = |name: &str| cells.get(column(&HISTORY, name)).and_then(Cell::text).map(str::to_string);
    let seq = match cells.get(column(&HISTORY, "seq")) {
        Some(Cell::Int(seq)) => *seq,
        _ => return Err("history row without seq".into()),
    };
    Ok(HistoryRow {
        instance_id: text("instance_id").ok_or("history row without instance")?,
        seq,
        at: text("at").ok_or("history row without time")?,
        kind: text("kind").ok_or("history row without kind")?,
        node: text("node"),
        who: text("who"),
        on_behalf_of: text("on_behalf_of"),
        detail: text("detail").ok_or("history row without detail")?,
        prev_hash: text("prev_hash").unwrap_or_default(),
        hash: text("hash").unwrap_or_default(),
    })
}

/// Inserts `rows` into `table`, as few multi-row statements as the parameter limit allows.
/// On SQLite the parameters are anonymous (`?`, bound in order): sqlx looks up the name of each
/// numbered or named one, and SQLite finds a name by walking the statement's list of names, which
/// makes binding thousands of them quadratic.
async fn insert(conn: &mut AnyConnection, backend: Backend, table: &Table, rows: Vec<Vec<Cell>>) -> BenchResult<()> {
    let width = table.columns.len();
    let per_statement = (MAX_PARAMS / width).max(1);
    let columns: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Cell>> = rows.by_ref().take(per_statement).collect();
        let mut sql = format!("INSERT INTO {} ({}) VALUES ", table.name, columns.join(", "));
        for r in 0..chunk.len() {
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for c in 0..width {
                if c > 0 {
                    sql.push_str(", ");
                }
                match backend {
                    Backend::Sqlite => sql.push('?'),
                    Backend::Postgres => sql.push_str(&format!("${}", r * width + c + 1)),
                }
            }
            sql.push(')');
        }
        let mut query = sqlx::query(&sql);
        for cell in chunk.into_iter().flatten() {
            query = match cell {
                Cell::Text(t) => query.bind(t),
                Cell::Int(i) => query.bind(i),
            };
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
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

/// Checks that the copied tables have no column the copies would miss but the claim of a timer,
/// and returns what a template must not have, as queries counting it for the template `$1`: a
/// claimed timer, or a row in any other table that names instances (its copies would get none).
async fn check_schema(pool: &AnyPool, backend: Backend) -> BenchResult<Vec<String>> {
    let (tables_sql, columns_sql) = match backend {
        Backend::Sqlite => {
            ("SELECT name FROM sqlite_master WHERE type = 'table'", "SELECT name FROM pragma_table_info($1)")
        }
        Backend::Postgres => (
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()",
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1",
        ),
    };
    let tables: Vec<String> = sqlx::query_scalar(tables_sql).fetch_all(pool).await?;
    let mut lacking = Vec::new();
    for table in tables {
        let columns: Vec<String> = sqlx::query_scalar(columns_sql).bind(table.clone()).fetch_all(pool).await?;
        match TABLES.iter().find(|t| t.name == table) {
            Some(copied) => {
                let missed: Vec<&String> = columns
                    .iter()
                    .filter(|c| !copied.columns.iter().any(|(name, _)| name == c))
                    .filter(|c| !NOT_COPIED_COLUMNS.contains(&c.as_str()))
                    .collect();
                if !missed.is_empty() {
                    return Err(format!("{table} has columns the copies would miss: {missed:?}").into());
                }
                for column in columns.iter().filter(|c| NOT_COPIED_COLUMNS.contains(&c.as_str())) {
                    lacking.push(format!(
                        "SELECT COUNT(*) FROM {table} WHERE {} = $1 AND {column} IS NOT NULL",
                        copied.owner
                    ));
                }
            }
            None if columns.iter().any(|c| c == "instance_id") => {
                lacking.push(format!("SELECT COUNT(*) FROM {table} WHERE instance_id = $1"));
            }
            None => {}
        }
    }
    Ok(lacking)
}

/// Checks that each copy is its template with only the id changed (rows, history hashes aside),
/// that its event log replays to its stored state and that its history chain verifies; returns
/// how many were checked.
async fn compare_sample<S: Store>(
    engine: &Engine<S>,
    pool: &AnyPool,
    pairs: &[(String, String)],
) -> BenchResult<usize> {
    let definition = engine.definition(PROCESS, 1).await?;
    for (template, copy) in pairs {
        let expected = InstanceRows::load(pool, template).await?.without_hashes();
        let found = InstanceRows::load(pool, copy).await?.renamed(copy, template).without_hashes();
        if found != expected {
            return Err(format!("{copy} differs from its template {template}:\n{found:?}\n{expected:?}").into());
        }
        for id in [template, copy] {
            let id = InstanceId(id.clone());
            let check = engine.verify_history(&id).await?;
            if !check.is_intact() {
                return Err(format!("history of {id} does not verify: {check:?}").into());
            }
            let events = engine.events(&id).await?;
            let replayed =
                replay(&definition, Instance::new(id.as_str(), PROCESS, 1), events.iter().map(|(e, at)| (e, *at)))
                    .map_err(|r| format!("replay of {id} refused: {r}"))?;
            if replayed != engine.instance(&id).await? {
                return Err(format!("{id}: the event log does not replay to the stored state").into());
            }
        }
    }
    Ok(pairs.len())
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
