//! Copies of instances. Starting a million instances through the engine would take minutes at a
//! few thousand a second, so a few templates are started through it and the rest are copies of
//! their rows: the instance, its timer, its event log and its history, under a new id.
//!
//! The instance id is the only id in those rows (the timer's id is derived from it,
//! `{instance}.timer.2`), and it is rewritten wherever it occurs; the history's hash chain is
//! recomputed, since each row's hash covers the instance id. The copied tables are checked to have
//! no column the copies would miss (but a timer's claim, which a template must not hold), and a
//! template must have no rows in the other tables that name instances (jobs, tasks,
//! subscriptions...), which its copies would lack. A sample of copies is checked before and after
//! firing: its rows are its template's with only the id changed, its event log replays to its
//! stored state, and its history chain verifies.

use cloverleaf_engine::runtime::Engine;
use cloverleaf_engine::store::{GENESIS_HASH, HistoryStep, Store};
use cloverleaf_engine::{Instance, InstanceId, replay};
use cloverleaf_testkit::testdb::Backend;
use sqlx::{AnyConnection, AnyPool, Row as _};

use crate::PROCESS;
use crate::common::BenchResult;

/// Most bound parameters in one statement (SQLite allows 32,766, PostgreSQL 65,535).
const MAX_PARAMS: usize = 30_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Int,
    OptInt,
}

/// A table holding an instance's rows, and its columns.
pub struct Table {
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
    columns: &[
        ("instance_id", Kind::Text),
        ("seq", Kind::Int),
        ("at", Kind::Text),
        ("event", Kind::Text),
        ("history_seq", Kind::OptInt),
        ("prev_hash", Kind::Text),
        ("entries", Kind::Text),
        ("people", Kind::Text),
    ],
};
/// The tables copied, in the order of [`InstanceRows::tables`].
pub const TABLES: [&Table; 3] = [&INSTANCES, &TIMERS, &EVENTS];
pub const T_INSTANCES: usize = 0;
/// The events, whose rows carry the history entries of their steps.
const T_EVENTS: usize = 2;
/// Columns of the copied tables that are not copied: they must be empty in a template.
const NOT_COPIED_COLUMNS: [&str; 1] = ["claimed_until"];

fn column(table: &Table, name: &str) -> usize {
    table.columns.iter().position(|(c, _)| *c == name).unwrap_or(usize::MAX)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Text(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
}

impl Cell {
    fn text(&self) -> Option<&str> {
        match self {
            Cell::Text(t) => t.as_deref(),
            Cell::Int(_) | Cell::OptInt(_) => None,
        }
    }
}

/// Every row of one instance in [`TABLES`], each table's rows in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRows {
    pub tables: Vec<Vec<Vec<Cell>>>,
}

impl InstanceRows {
    pub async fn load(pool: &AnyPool, id: &str) -> BenchResult<InstanceRows> {
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
                        Kind::OptInt => Cell::OptInt(row.try_get::<Option<i64>, _>(i)?),
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
    pub fn copy_as(&self, from: &str, to: &str) -> BenchResult<InstanceRows> {
        let mut copy = self.renamed(from, to);
        let (prev_col, entries_col) = (column(&EVENTS, "prev_hash"), column(&EVENTS, "entries"));
        let mut prev = GENESIS_HASH.to_string();
        for row in &mut copy.tables[T_EVENTS] {
            let Some(step) = history_step(row)? else { continue };
            let (step, last) = step.chained_from(&prev);
            row[prev_col] = Cell::Text(Some(step.prev_hash));
            row[entries_col] = Cell::Text(Some(step.entries));
            prev = last;
        }
        let instance = copy.tables[T_INSTANCES].first_mut().ok_or("copy of a template without its instance row")?;
        instance[column(&INSTANCES, "history_hash")] = Cell::Text(Some(prev));
        Ok(copy)
    }

    /// The rows with the history hashes (and the recorded chain head) blanked: they differ
    /// between two instances with the same history, since they cover the instance id.
    fn without_hashes(mut self) -> InstanceRows {
        let (prev_col, entries_col) = (column(&EVENTS, "prev_hash"), column(&EVENTS, "entries"));
        for row in &mut self.tables[T_EVENTS] {
            let Ok(Some(step)) = history_step(row) else { continue };
            let mut entries = step.rows();
            for entry in &mut entries {
                entry.prev_hash.clear();
                entry.hash.clear();
            }
            row[prev_col] = Cell::Text(None);
            row[entries_col] = Cell::Text(HistoryStep::of(&entries).map(|s| s.entries));
        }
        for row in &mut self.tables[T_INSTANCES] {
            row[column(&INSTANCES, "history_hash")] = Cell::Text(None);
        }
        self
    }
}

/// The history entries an event row of [`EVENTS`] carries, if its step wrote any.
fn history_step(cells: &[Cell]) -> BenchResult<Option<HistoryStep>> {
    let Some(Cell::OptInt(Some(seq))) = cells.get(column(&EVENTS, "history_seq")) else { return Ok(None) };
    let text = |name: &str| {
        cells
            .get(column(&EVENTS, name))
            .and_then(Cell::text)
            .map(str::to_string)
            .ok_or(format!("event row without {name}"))
    };
    Ok(Some(HistoryStep {
        instance_id: text("instance_id")?,
        seq: *seq,
        at: text("at")?,
        prev_hash: text("prev_hash")?,
        entries: text("entries")?,
        people: None,
    }))
}

/// Inserts `rows` into `table`, as few multi-row statements as the parameter limit allows.
/// On SQLite the parameters are anonymous (`?`, bound in order): sqlx looks up the name of each
/// numbered or named one, and SQLite finds a name by walking the statement's list of names, which
/// makes binding thousands of them quadratic.
pub async fn insert(
    conn: &mut AnyConnection,
    backend: Backend,
    table: &Table,
    rows: Vec<Vec<Cell>>,
) -> BenchResult<()> {
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
                Cell::OptInt(i) => query.bind(i),
            };
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Checks that the copied tables have no column the copies would miss but the claim of a timer,
/// and returns what a template must not have, as queries counting it for the template `$1`: a
/// claimed timer, or a row in any other table that names instances (its copies would get none).
pub async fn check_schema(pool: &AnyPool, backend: Backend) -> BenchResult<Vec<String>> {
    let (tables_sql, columns_sql) = match backend {
        Backend::Sqlite => {
            ("SELECT name FROM sqlite_master WHERE type = 'table'", "SELECT name FROM pragma_table_info($1)")
        }
        Backend::Postgres => (
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() \
             AND table_type = 'BASE TABLE'",
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
pub async fn compare_sample<S: Store>(
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
