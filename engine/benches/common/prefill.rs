//! A database that already holds many completed instances. Completing a million instances
//! through the engine would take minutes, so a few templates are completed through it and the
//! rest are copies of their rows (every column of every table that names them) under new ids:
//! each text cell has the template's id replaced by the copy's, and the history chain is
//! computed again for the new id (each row's hash covers it), as the timers bench does. A
//! template must have no rows in tables the copy leaves out; a sample of copies is checked to
//! verify.

use std::path::Path;
use std::time::{Duration, Instant};

use cloverleaf_engine::InstanceId;
use cloverleaf_engine::runtime::Engine;
use cloverleaf_engine::store::{GENESIS_HASH, HistoryStep};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Column as _, Row as _, SqliteConnection, TypeInfo as _, ValueRef as _};

use super::BenchResult;
use super::workload::straight_through;

/// The tables copied, with the column that names the instance.
const COPIED: [(&str, &str); 3] = [("instances", "id"), ("jobs", "instance_id"), ("events", "instance_id")];

/// Most templates completed through the engine.
const TEMPLATES: usize = 1_000;

/// Copies inserted per transaction.
const PER_TRANSACTION: usize = 20_000;

/// Most bound parameters in one statement (SQLite allows 32,766).
const MAX_PARAMS: usize = 30_000;

#[derive(Debug, Clone)]
enum Cell {
    Text(Option<String>),
    Int(i64),
}

/// One table's rows of a template: its column names and rows.
struct Rows {
    table: &'static str,
    columns: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

/// Fills the database of `engine` (the SQLite file at `path`) with `count` completed
/// straight-through instances: templates through the engine, the rest copied, then every page
/// synced to disk. Returns the time it took.
pub async fn prefill(engine: &Engine, path: &Path, count: usize) -> BenchResult<Duration> {
    let started = Instant::now();
    let templates = count.min(TEMPLATES);
    straight_through(std::slice::from_ref(engine), templates, 64).await?;
    let options = SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        // Setting up a bench's database need not survive a power cut.
        .synchronous(SqliteSynchronous::Off)
        .busy_timeout(Duration::from_secs(60));
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
    let mut conn = pool.acquire().await?;
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM instances WHERE status = 'completed' ORDER BY id LIMIT ?1")
            .bind(i64::try_from(templates)?)
            .fetch_all(&mut *conn)
            .await?;
    if ids.len() < templates {
        return Err(format!("{} completed templates, {templates} wanted", ids.len()).into());
    }
    check_nothing_else(&mut conn, &ids).await?;
    let mut loaded = Vec::with_capacity(ids.len());
    for id in &ids {
        loaded.push((id.clone(), load(&mut conn, id).await?));
    }
    let mut next = 0;
    let mut sample = Vec::new();
    while next < count - templates {
        let n = PER_TRANSACTION.min(count - templates - next);
        let mut tables: Vec<Rows> =
            loaded[0].1.iter().map(|t| Rows { table: t.table, columns: t.columns.clone(), rows: Vec::new() }).collect();
        for k in next..next + n {
            let (template, rows) = &loaded[k % loaded.len()];
            // Sorts before the ids the engine gives (a prefix of base-36 time), as older instances would.
            let copy = format!("i-0fill-{k:07}");
            for (into, rows) in tables.iter_mut().zip(copy_as(rows, template, &copy)?) {
                into.rows.extend(rows);
            }
            if k % 100_003 == 0 {
                sample.push(copy);
            }
        }
        sqlx::query("BEGIN").execute(&mut *conn).await?;
        for rows in tables {
            insert(&mut conn, rows).await?;
        }
        sqlx::query("COMMIT").execute(&mut *conn).await?;
        next += n;
    }
    // Written without syncs, the copies would still sit in the operating system's cache, and
    // the first checkpoint measured afterwards would sync gigabytes of them: the measure would
    // time the set-up. A database that grew to this size over months has its pages on disk.
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut *conn).await?;
    drop(conn);
    pool.close().await;
    std::fs::File::open(path)?.sync_all()?;
    for id in sample {
        let check = engine.verify_history(&InstanceId(id.clone())).await?;
        if !check.is_intact() || check.rows == 0 {
            return Err(format!("the copy {id} does not verify: {check:?}").into());
        }
    }
    Ok(started.elapsed())
}

/// Refuses templates with rows in tables the copies leave out (they would be missing).
async fn check_nothing_else(conn: &mut SqliteConnection, ids: &[String]) -> BenchResult<()> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) c WHERE m.type = 'table' \
         AND c.name = 'instance_id'",
    )
    .fetch_all(&mut *conn)
    .await?;
    let list = serde_json::to_string(ids)?;
    for table in tables.iter().filter(|t| !COPIED.iter().any(|(c, _)| c == t)) {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE instance_id IN (SELECT value FROM json_each(?1))");
        let n: i64 = sqlx::query_scalar(&sql).bind(&list).fetch_one(&mut *conn).await?;
        if n > 0 {
            return Err(format!("templates have {n} rows in {table}, which copies would lack").into());
        }
    }
    Ok(())
}

/// Every row of the instance `id` in the copied tables.
async fn load(conn: &mut SqliteConnection, id: &str) -> BenchResult<Vec<Rows>> {
    let mut out = Vec::new();
    for (table, owner) in COPIED {
        let order = if table == "instances" || table == "jobs" { "id" } else { "seq" };
        let rows: Vec<SqliteRow> = sqlx::query(&format!("SELECT * FROM {table} WHERE {owner} = ?1 ORDER BY {order}"))
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
        let columns = match rows.first() {
            Some(row) => row.columns().iter().map(|c| c.name().to_string()).collect(),
            None => Vec::new(),
        };
        let mut cells = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut out = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                let raw = row.try_get_raw(i)?;
                out.push(match raw.type_info().name() {
                    "INTEGER" => Cell::Int(row.try_get(i)?),
                    "NULL" => Cell::Text(None),
                    "TEXT" => Cell::Text(Some(row.try_get(i)?)),
                    other => return Err(format!("{table}: a {other} value the copies cannot carry").into()),
                });
            }
            cells.push(out);
        }
        out.push(Rows { table, columns, rows: cells });
    }
    Ok(out)
}

/// The rows of one template (`tables`, in [`COPIED`] order) as the copy `to`: the id `from`
/// replaced by `to` in every text cell, the history chain computed again and the instance's
/// recorded chain head set to its last hash.
fn copy_as(tables: &[Rows], from: &str, to: &str) -> BenchResult<Vec<Vec<Vec<Cell>>>> {
    let mut out: Vec<Vec<Vec<Cell>>> = tables
        .iter()
        .map(|t| {
            t.rows
                .iter()
                .map(|row| {
                    row.iter()
                        .map(|cell| match cell {
                            Cell::Text(Some(t)) if t.contains(from) => Cell::Text(Some(t.replace(from, to))),
                            other => other.clone(),
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    // A step's history entries are in its last event's row.
    let (events, instances) = (&tables[2], &tables[0]);
    let col = |rows: &Rows, name: &str| rows.columns.iter().position(|c| c == name).ok_or(format!("no column {name}"));
    let text = |row: &[Cell], name: &str| match col(events, name).ok().and_then(|i| row.get(i)) {
        Some(Cell::Text(Some(t))) => Ok(t.clone()),
        _ => Err(format!("event row without {name}")),
    };
    let (prev_col, entries_col, seq_col) =
        (col(events, "prev_hash")?, col(events, "entries")?, col(events, "history_seq")?);
    let mut prev = GENESIS_HASH.to_string();
    for row in &mut out[2] {
        let Some(Cell::Int(seq)) = row.get(seq_col).cloned() else { continue };
        let step = HistoryStep {
            instance_id: text(row, "instance_id")?,
            seq,
            at: text(row, "at")?,
            prev_hash: text(row, "prev_hash")?,
            entries: text(row, "entries")?,
            people: None,
        };
        let (step, last) = step.chained_from(&prev);
        row[prev_col] = Cell::Text(Some(step.prev_hash));
        row[entries_col] = Cell::Text(Some(step.entries));
        prev = last;
    }
    let head = col(instances, "history_hash")?;
    for row in &mut out[0] {
        row[head] = Cell::Text(Some(prev.clone()));
    }
    Ok(out)
}

/// Inserts `rows` into its table, as few multi-row statements as the parameter limit allows.
/// Parameters are anonymous (`?`): sqlx looks up the name of each numbered one, and SQLite finds
/// a name by walking the statement's list of names, which makes binding thousands quadratic.
async fn insert(conn: &mut SqliteConnection, rows: Rows) -> BenchResult<()> {
    let width = rows.columns.len();
    if width == 0 {
        return Ok(());
    }
    let per_statement = (MAX_PARAMS / width).max(1);
    let tuple = format!("({})", vec!["?"; width].join(", "));
    let mut list = rows.rows.into_iter().peekable();
    while list.peek().is_some() {
        let chunk: Vec<Vec<Cell>> = list.by_ref().take(per_statement).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES {}",
            rows.table,
            rows.columns.join(", "),
            vec![tuple.as_str(); chunk.len()].join(", ")
        );
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

/// What archiving the pre-filled instances took and left.
pub struct Archived {
    /// Instances moved.
    pub instances: usize,
    /// Instances per second.
    pub rate: f64,
    /// Bytes of the live file (with its WAL, after a checkpoint) before.
    pub before: u64,
    /// And after the move, before any vacuum.
    pub after: u64,
    /// And after `VACUUM`.
    pub vacuumed: u64,
    /// How long the `VACUUM` took.
    pub vacuum: Duration,
    /// Bytes of the archive file.
    pub archive: u64,
}

/// Bytes of the SQLite file at `path` and its WAL, after the WAL is checkpointed into it.
async fn file_size(pool: &sqlx::SqlitePool, path: &Path) -> BenchResult<u64> {
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(pool).await?;
    let wal = path.with_extension("db-wal");
    Ok(std::fs::metadata(path).map_or(0, |m| m.len()) + std::fs::metadata(wal).map_or(0, |m| m.len()))
}

/// Moves every instance that ended so far out of the live file at `path` into a second file,
/// `archive`, as `cloverleaf archive` would (a second engine on the file, beside the bench's),
/// then shrinks the live file with `VACUUM`: deleted rows leave free pages that new rows reuse,
/// but the file only gets smaller when it is rewritten.
pub async fn archive_all(path: &Path, archive: &Path) -> BenchResult<Archived> {
    use cloverleaf_engine::runtime::ArchiveOptions;
    use cloverleaf_engine::store::AnyStore;

    let url = path.display().to_string();
    let operator =
        Engine::<AnyStore>::connect_to_operate(&url, std::sync::Arc::new(cloverleaf_engine::SystemClock)).await?;
    let pool = operator.store().as_sqlite().ok_or("a SQLite file")?.pool().clone();
    let before = file_size(&pool, path).await?;
    let into = AnyStore::connect(&archive.display().to_string()).await?;
    let options = ArchiveOptions {
        ended_before: chrono::Utc::now(),
        into: Some(into.clone()),
        label: "bench-archive".into(),
        by: "bench".into(),
        batch: super::env_usize("BENCH_ARCHIVE_BATCH", cloverleaf_engine::runtime::ARCHIVE_BATCH),
        dry_run: false,
    };
    let started = Instant::now();
    let report = operator.archive(&options).await?;
    let rate = report.archived as f64 / started.elapsed().as_secs_f64();
    if !report.refused.is_empty() {
        return Err(format!("{} instances refused, the first: {:?}", report.refused.len(), report.refused[0]).into());
    }
    let after = file_size(&pool, path).await?;
    let started = Instant::now();
    sqlx::query("VACUUM").execute(&pool).await?;
    let vacuum = started.elapsed();
    let vacuumed = file_size(&pool, path).await?;
    let archive_pool = into.as_sqlite().ok_or("a SQLite file")?.pool().clone();
    let archive_size = file_size(&archive_pool, archive).await?;
    into.close().await;
    operator.store().close().await;
    Ok(Archived { instances: report.archived, rate, before, after, vacuumed, vacuum, archive: archive_size })
}
