//! The one dialect layer of the engine's stores: every read is written once, generic over a
//! [`Reader`] (the SQL dialect it speaks and result rows from its read pool).
//!
//! Where the dialects agree, one SQL text serves both: numbered `$N` parameters (sqlx binds
//! SQLite's by their number too) and `COUNT(*) FILTER (WHERE ...)`. Where they do not (JSON
//! functions, list parameters, pattern matching) an [`Each`] holds one text per dialect. What
//! differs in more than its text (the batched writes, `FOR UPDATE SKIP LOCKED` fetches and timer
//! claims, advisory locks, DDL) stays in `sqlite/` and `postgres/`.

use std::future::Future;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use super::rows::Columns;
use super::{AnyStore, Error, PgStore, SqliteStore};

/// The SQL a store speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    Sqlite,
    Postgres,
}

/// A bound parameter of a query.
#[derive(Debug)]
pub(super) enum Arg<'a> {
    /// Text, or NULL.
    Text(Option<&'a str>),
    /// A 64-bit integer.
    Int(i64),
    /// A 64-bit integer, or NULL (typed, for PostgreSQL).
    OptInt(Option<i64>),
    /// A list of texts: a JSON array on SQLite (read with `json_each`), a `text[]` on PostgreSQL.
    Texts(Vec<String>),
    /// A list of integers: a JSON array on SQLite, a `bigint[]` on PostgreSQL.
    Ints(Vec<i64>),
}

/// What the shared reads need of a store: its dialect, and result rows from its read pool (never
/// the group-commit writer, so a listing does not hold up the steps of running instances).
pub(super) trait Reader: Sync {
    /// A result row.
    type Row: Columns + Send;
    /// The dialect of its SQL.
    fn dialect(&self) -> Dialect;
    /// Runs `sql` with `args` bound to `$1`, `$2`... in order.
    fn rows(&self, sql: &str, args: Vec<Arg<'_>>) -> impl Future<Output = Result<Vec<Self::Row>, Error>> + Send;

    /// Where this node's read of the due jobs of `job_types` at `now` may start (see
    /// `postgres::floor`); `None` reads them all.
    fn due_floor(&self, _job_types: &[String], _now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        None
    }

    /// Records that a read of the due jobs of `job_types` at `now`, from the start of the index
    /// (`read_all`) or from [`Reader::due_floor`], found none.
    fn saw_nothing_due(&self, _job_types: &[String], _now: DateTime<Utc>, _read_all: bool) {}

    /// The first row of `sql`, if any.
    fn row(&self, sql: &str, args: Vec<Arg<'_>>) -> impl Future<Output = Result<Option<Self::Row>, Error>> + Send {
        async move { Ok(self.rows(sql, args).await?.into_iter().next()) }
    }
}

/// `sql` with `args` bound for SQLite: a list as a JSON array (read with `json_each`).
pub(super) fn sqlite_query<'q>(
    sql: &'q str,
    args: Vec<Arg<'q>>,
) -> Result<sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>, Error> {
    let mut query = sqlx::query(sql);
    for arg in args {
        query = match arg {
            Arg::Text(text) => query.bind(text),
            Arg::Int(n) => query.bind(n),
            Arg::OptInt(n) => query.bind(n),
            Arg::Texts(list) => query.bind(serde_json::to_string(&list)?),
            Arg::Ints(list) => query.bind(serde_json::to_string(&list)?),
        };
    }
    Ok(query)
}

/// `sql` with `args` bound for PostgreSQL: a list as an array.
pub(super) fn pg_query<'q>(
    sql: &'q str,
    args: Vec<Arg<'q>>,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let mut query = sqlx::query(sql);
    for arg in args {
        query = match arg {
            Arg::Text(text) => query.bind(text),
            Arg::Int(n) => query.bind(n),
            Arg::OptInt(n) => query.bind(n),
            Arg::Texts(list) => query.bind(list),
            Arg::Ints(list) => query.bind(list),
        };
    }
    query
}

impl Reader for SqliteStore {
    type Row = SqliteRow;

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn rows(&self, sql: &str, args: Vec<Arg<'_>>) -> Result<Vec<SqliteRow>, Error> {
        Ok(sqlite_query(sql, args)?.fetch_all(self.reader()).await?)
    }
}

impl Reader for PgStore {
    type Row = PgRow;

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn rows(&self, sql: &str, args: Vec<Arg<'_>>) -> Result<Vec<PgRow>, Error> {
        let mut conn = self.reader().await?;
        let rows = pg_query(sql, args).fetch_all(&mut *conn).await?;
        conn.release();
        Ok(rows)
    }

    fn due_floor(&self, job_types: &[String], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        PgStore::due_floor(self, job_types, now)
    }

    fn saw_nothing_due(&self, job_types: &[String], now: DateTime<Utc>, read_all: bool) {
        PgStore::saw_nothing_due(self, job_types, now, read_all);
    }
}

/// A result row of either store.
pub(super) enum AnyRow {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

impl Columns for AnyRow {
    fn text(&self, col: &str) -> Result<String, Error> {
        match self {
            AnyRow::Sqlite(row) => row.text(col),
            AnyRow::Postgres(row) => row.text(col),
        }
    }

    fn opt_text(&self, col: &str) -> Result<Option<String>, Error> {
        match self {
            AnyRow::Sqlite(row) => row.opt_text(col),
            AnyRow::Postgres(row) => row.opt_text(col),
        }
    }

    fn int(&self, col: &str) -> Result<i64, Error> {
        match self {
            AnyRow::Sqlite(row) => row.int(col),
            AnyRow::Postgres(row) => row.int(col),
        }
    }

    fn opt_int(&self, col: &str) -> Result<Option<i64>, Error> {
        match self {
            AnyRow::Sqlite(row) => row.opt_int(col),
            AnyRow::Postgres(row) => row.opt_int(col),
        }
    }

    fn version(&self, col: &str) -> Result<u32, Error> {
        match self {
            AnyRow::Sqlite(row) => row.version(col),
            AnyRow::Postgres(row) => row.version(col),
        }
    }
}

impl Reader for AnyStore {
    type Row = AnyRow;

    fn dialect(&self) -> Dialect {
        match self {
            AnyStore::Sqlite(_) => Dialect::Sqlite,
            AnyStore::Postgres(_) => Dialect::Postgres,
        }
    }

    async fn rows(&self, sql: &str, args: Vec<Arg<'_>>) -> Result<Vec<AnyRow>, Error> {
        Ok(match self {
            AnyStore::Sqlite(s) => s.rows(sql, args).await?.into_iter().map(AnyRow::Sqlite).collect(),
            AnyStore::Postgres(s) => s.rows(sql, args).await?.into_iter().map(AnyRow::Postgres).collect(),
        })
    }

    fn due_floor(&self, job_types: &[String], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            AnyStore::Sqlite(_) => None,
            AnyStore::Postgres(s) => s.due_floor(job_types, now),
        }
    }

    fn saw_nothing_due(&self, job_types: &[String], now: DateTime<Utc>, read_all: bool) {
        if let AnyStore::Postgres(s) = self {
            s.saw_nothing_due(job_types, now, read_all);
        }
    }
}

/// One SQL text per dialect.
pub(super) struct Each {
    pub(super) sqlite: &'static str,
    pub(super) postgres: &'static str,
}

impl Each {
    /// The text `reader` speaks.
    pub(super) fn pick(&self, reader: &impl Reader) -> &'static str {
        self.of(reader.dialect())
    }

    /// The text of `dialect`.
    pub(super) fn of(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Sqlite => self.sqlite,
            Dialect::Postgres => self.postgres,
        }
    }
}

/// An optional instant read from a one-row aggregate (`MIN(...) AS at`).
pub(super) fn first_instant(rows: &[impl Columns], col: &str) -> Result<Option<DateTime<Utc>>, Error> {
    match rows.first() {
        Some(row) => row.opt_timestamp(col),
        None => Ok(None),
    }
}
