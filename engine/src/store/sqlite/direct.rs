//! The group-commit writer's own SQLite connection, called on the thread that runs the batch.
//!
//! Through sqlx, every statement is a message to the connection's worker thread and every row a
//! message back: two threads waking each other a dozen times a batch, a third of the writer's
//! time. The writer's batches go through this connection instead, called directly, with the
//! statement cache and the parameter binding the batch writes need and nothing else. Reads,
//! migrations and the archive keep sqlx's pools; the archive takes the writer's lock (see
//! [`SqliteStore::hold_writer`](super::SqliteStore::hold_writer)) for its write transactions,
//! so the two writers of one file take turns in the process, as they did on one pooled
//! connection.

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OpenFlags, Statement};

use super::super::batch::Cell;
use super::super::rows::Columns;
use super::super::sql::{Arg, Dialect};
use super::super::writes::Tx;
use super::super::{Error, InstanceRow, ts};

/// Prepared statements the write connection keeps: the batch statements come in many shapes (a
/// table's rows padded to 1, 2, 4 ... 256), and a cache that holds them all prepares none twice.
const WRITER_STATEMENTS: usize = 1024;

/// The page cache of the write connection, in KiB: it holds the index pages every step touches.
/// Not more: when a B-tree split reorders its new pages, SQLite parks one under the number of
/// the lock page (262,145 at 4 KB pages), beyond the end of the file, and every commit after
/// that walks the whole page cache to drop pages past the end. With 64 MiB that walk was 8 % of
/// the writer's thread under `perf`; 16 MiB took 14 % off the human-task writer path (four
/// alternating runs; three with 1,000,000 instances pre-filled: 108-109 against 119-152 µs).
const WRITER_CACHE_KIB: i64 = 16_384;

/// How long a write waits for another connection's write transaction (the sub-ledger's, another
/// process's) before it fails with "database is locked".
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The writer's connection. Not shared: the store keeps it behind an async mutex.
#[derive(Debug)]
pub(crate) struct Direct {
    conn: Connection,
}

/// What the write connection has done since it opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterCounters {
    /// Rows inserted, updated or deleted.
    pub rows_changed: i64,
    /// Pages written to the write-ahead log.
    pub wal_pages: i64,
    /// The database's page size in bytes.
    pub page_size: i64,
}

impl Direct {
    /// Opens the (migrated) database file at `path` for writing, with `synchronous=FULL`.
    pub(super) fn open(path: &Path) -> Result<Direct, Error> {
        // The connection is used by one thread at a time (behind the store's mutex).
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        conn.set_prepared_statement_cache_capacity(WRITER_STATEMENTS);
        Ok(Direct { conn })
    }

    /// Starts the batch's transaction. IMMEDIATE takes the write lock up front (waiting out
    /// other writers through the busy timeout): a deferred transaction that reads first and
    /// then writes fails at once with "database is locked" when another writer got in between.
    pub(super) fn begin(&self) -> Result<(), Error> {
        // A batch that ended without its commit or rollback (a panic on the writer's thread, a
        // failed rollback) must not keep the write lock or refuse every later batch.
        self.rollback();
        self.conn.prepare_cached("BEGIN IMMEDIATE")?.raw_execute()?;
        Ok(())
    }

    /// Commits the batch's transaction; rolls it back if the commit fails.
    pub(super) fn commit(&self) -> Result<(), Error> {
        let committed = self.conn.prepare_cached("COMMIT").and_then(|mut s| s.raw_execute());
        if let Err(error) = committed {
            self.rollback();
            return Err(error.into());
        }
        Ok(())
    }

    /// Rolls back the open transaction, if any (a failed statement may have ended it already).
    pub(super) fn rollback(&self) {
        if !self.conn.is_autocommit()
            && let Err(error) = self.conn.execute_batch("ROLLBACK")
        {
            tracing::error!(%error, "cannot roll back the batch");
        }
    }

    /// The counters of [`WriterCounters`].
    pub(super) fn counters(&self) -> Result<WriterCounters, Error> {
        let page_size = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let (mut pages, mut high) = (0, 0);
        // SAFETY: the connection is open and used by this thread alone (the caller holds the
        // store's writer lock); both out-pointers are valid for the call.
        let status = unsafe {
            rusqlite::ffi::sqlite3_db_status(
                self.conn.handle(),
                rusqlite::ffi::SQLITE_DBSTATUS_CACHE_WRITE,
                &mut pages,
                &mut high,
                0,
            )
        };
        if status != rusqlite::ffi::SQLITE_OK {
            return Err(Error::Corrupt(format!("sqlite3_db_status failed with code {status}")));
        }
        Ok(WriterCounters {
            rows_changed: i64::try_from(self.conn.total_changes()).unwrap_or(i64::MAX),
            wal_pages: i64::from(pages),
            page_size,
        })
    }

    /// A pragma's value, as text.
    #[cfg(test)]
    pub(super) fn pragma(&self, name: &str) -> String {
        let value: Value = self.conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0)).unwrap();
        match value {
            Value::Text(text) => text,
            Value::Integer(n) => n.to_string(),
            other => format!("{other:?}"),
        }
    }

    /// The rows of `sql`, its parameters bound by `bind`.
    fn query(
        &self,
        sql: &str,
        bind: impl FnOnce(&mut Statement<'_>) -> Result<(), Error>,
    ) -> Result<Vec<DirectRow>, Error> {
        let mut statement = self.conn.prepare_cached(sql)?;
        bind(&mut statement)?;
        let count = statement.column_count();
        // Most statements of a batch return nothing: the column names are read at the first row.
        let mut names: Option<Arc<[String]>> = None;
        let mut out = Vec::new();
        let mut rows = statement.raw_query();
        while let Some(row) = rows.next()? {
            let names =
                names.get_or_insert_with(|| row.as_ref().column_names().into_iter().map(str::to_owned).collect());
            let values = (0..count).map(|i| owned(row.get_ref(i)?)).collect::<Result<Vec<_>, _>>()?;
            out.push(DirectRow { names: Arc::clone(names), values });
        }
        Ok(out)
    }

    /// The rows of `sql` with `args` bound (see [`bind_args`]).
    pub(super) fn rows(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<DirectRow>, Error> {
        self.query(sql, |statement| bind_args(statement, args))
    }

    /// Runs `head VALUES (?, ...), (?, ...) tail` over `rows` (each `cols` values): one statement
    /// for up to 256 rows (fewer for wide ones), padded with rows of NULLs to a power of two, so
    /// that a few statement shapes serve every batch (and stay prepared). Every statement must
    /// ignore a row whose first value is NULL: an insert selects from the values `WHERE column1
    /// IS NOT NULL`, an update or delete by id matches no NULL id. The padding needs no binding:
    /// a cached statement comes back with every parameter NULL.
    pub(super) fn values(
        &self,
        head: &str,
        tail: &str,
        cols: usize,
        rows: Vec<Vec<Cell<'_>>>,
    ) -> Result<Vec<DirectRow>, Error> {
        let mut out = Vec::new();
        // The most rows a statement takes: a power of two, its binds well within SQLite's 32,766.
        let max = 1usize << (usize::BITS - 1 - (30_000 / cols.max(1)).clamp(1, 256).leading_zeros());
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<Vec<Cell<'_>>> = rows.by_ref().take(max).collect();
            let sql = values_sql(head, tail, cols, chunk.len().next_power_of_two());
            out.extend(self.query(&sql, |statement| {
                for (index, cell) in chunk.iter().flatten().enumerate() {
                    bind_cell(statement, index + 1, cell)?;
                }
                Ok(())
            })?);
        }
        Ok(out)
    }
}

/// A value copied out of SQLite; text that is not UTF-8 is an error, not a panic.
fn owned(value: ValueRef<'_>) -> Result<Value, Error> {
    Ok(match value {
        ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Value::Text(text.to_owned()),
            Err(e) => return Err(Error::Corrupt(format!("stored text is not UTF-8: {e}"))),
        },
        other => Value::from(other),
    })
}

fn bind_cell(statement: &mut Statement<'_>, index: usize, cell: &Cell<'_>) -> Result<(), Error> {
    match cell {
        Cell::Text(v) => statement.raw_bind_parameter(index, v.as_ref()),
        Cell::OptText(v) => statement.raw_bind_parameter(index, v.as_deref()),
        Cell::Int(v) => statement.raw_bind_parameter(index, v),
        Cell::OptInt(v) => statement.raw_bind_parameter(index, v),
    }?;
    Ok(())
}

/// Binds `args` by sqlx's rules for SQLite: `$N` and `?N` to the Nth argument, a bare `?` to the
/// next one in order; a list as a JSON array (read with `json_each`). Stricter where sqlx is
/// lenient: a parameter with no argument, or one not numbered (`:name`), is an error, where
/// sqlx would leave it NULL.
fn bind_args(statement: &mut Statement<'_>, args: &[Arg<'_>]) -> Result<(), Error> {
    let mut next = 0;
    for index in 1..=statement.parameter_count() {
        let n = match statement.parameter_name(index) {
            None => {
                next += 1;
                next
            }
            Some(name) => name
                .get(1..)
                .and_then(|digits| digits.parse::<usize>().ok())
                .ok_or_else(|| rusqlite::Error::InvalidParameterName(name.to_string()))?,
        };
        let arg = n.checked_sub(1).and_then(|i| args.get(i));
        let arg = arg.ok_or(rusqlite::Error::InvalidParameterCount(n, args.len()))?;
        match arg {
            Arg::Text(v) => statement.raw_bind_parameter(index, v)?,
            Arg::Int(v) => statement.raw_bind_parameter(index, v)?,
            Arg::OptInt(v) => statement.raw_bind_parameter(index, v)?,
            Arg::Texts(list) => statement.raw_bind_parameter(index, serde_json::to_string(list)?)?,
            Arg::Ints(list) => statement.raw_bind_parameter(index, serde_json::to_string(list)?)?,
        }
    }
    Ok(())
}

/// `head VALUES (?, ...) × n tail`.
pub(super) fn values_sql(head: &str, tail: &str, cols: usize, n: usize) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + 16 + n * (cols * 3 + 2));
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for r in 0..n {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            sql.push_str(if c == 0 { "?" } else { ", ?" });
        }
        sql.push(')');
    }
    sql.push(' ');
    sql.push_str(tail);
    sql
}

/// A result row of the write connection, its values copied out of SQLite. Stricter than sqlx's
/// rows: NULL read as text or an integer is an error (sqlx would decode it as "" or 0).
#[derive(Debug)]
pub(crate) struct DirectRow {
    names: Arc<[String]>,
    values: Vec<Value>,
}

impl DirectRow {
    fn value(&self, col: &str) -> Result<&Value, Error> {
        let found = self.names.iter().position(|name| name == col).and_then(|i| self.values.get(i));
        found.ok_or_else(|| Error::Corrupt(format!("the row has no column `{col}`")))
    }

    fn mismatch(col: &str, expected: &str, found: &Value) -> Error {
        Error::Corrupt(format!("column `{col}`: {expected} expected, found {:?}", found.data_type()))
    }
}

impl Columns for DirectRow {
    fn text(&self, col: &str) -> Result<String, Error> {
        match self.value(col)? {
            Value::Text(text) => Ok(text.clone()),
            other => Err(Self::mismatch(col, "text", other)),
        }
    }

    fn opt_text(&self, col: &str) -> Result<Option<String>, Error> {
        match self.value(col)? {
            Value::Null => Ok(None),
            Value::Text(text) => Ok(Some(text.clone())),
            other => Err(Self::mismatch(col, "text or NULL", other)),
        }
    }

    fn int(&self, col: &str) -> Result<i64, Error> {
        match self.value(col)? {
            Value::Integer(n) => Ok(*n),
            other => Err(Self::mismatch(col, "an integer", other)),
        }
    }

    fn opt_int(&self, col: &str) -> Result<Option<i64>, Error> {
        match self.value(col)? {
            Value::Null => Ok(None),
            Value::Integer(n) => Ok(Some(*n)),
            other => Err(Self::mismatch(col, "an integer or NULL", other)),
        }
    }

    fn version(&self, col: &str) -> Result<u32, Error> {
        let n = self.int(col)?;
        u32::try_from(n).map_err(|_| Error::Corrupt(format!("column `{col}`: {n} is not a version")))
    }
}

impl Tx for Direct {
    type Row = DirectRow;

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn fetch(&mut self, sql: &str, args: Vec<Arg<'_>>) -> Result<Vec<DirectRow>, Error> {
        self.rows(sql, &args)
    }

    async fn execute(&mut self, sql: &str, args: Vec<Arg<'_>>) -> Result<u64, Error> {
        self.rows(sql, &args)?;
        Ok(self.conn.changes())
    }

    /// SQLite has one writer: a transaction that writes excludes every other already.
    async fn exclusive(&mut self, _name: &str) -> Result<(), Error> {
        Ok(())
    }

    async fn write_instances(&mut self, rows: Vec<(&InstanceRow, Option<i64>)>) -> Result<HashSet<String>, Error> {
        write_instances(self, rows).await
    }
}

/// A new instance unless its id is taken.
const INSERT_INSTANCE: &str = "INSERT INTO instances (id, process_key, process_version, status, business_key, \
     parent_id, parent_call, state, version, history_seq, history_hash, created_at, updated_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12) ON CONFLICT (id) DO NOTHING";

/// An instance's new state if it is still at the expected version.
const UPDATE_INSTANCE: &str = "UPDATE instances SET status = ?2, state = ?3, version = ?4, history_seq = ?5, \
     history_hash = ?6, updated_at = ?7, process_version = ?9 WHERE id = ?1 AND version = ?8";

/// [`Tx::write_instances`] for SQLite: a statement an instance (this path serves the rarer steps;
/// the common ones are written in bulk).
pub(super) async fn write_instances(
    tx: &mut impl Tx,
    rows: Vec<(&InstanceRow, Option<i64>)>,
) -> Result<HashSet<String>, Error> {
    let mut written = HashSet::new();
    for (row, expected) in rows {
        let at = ts(row.at);
        let args = match expected {
            None => vec![
                text(&row.id),
                text(&row.process_key),
                Arg::Int(i64::from(row.process_version)),
                text(row.status.as_str()),
                Arg::Text(row.business_key.as_deref()),
                Arg::Text(row.parent_id.as_deref()),
                Arg::Text(row.parent_call.as_deref()),
                text(&row.state),
                Arg::Int(row.version),
                Arg::Int(row.history_seq),
                text(&row.history_hash),
                text(&at),
            ],
            Some(expected) => vec![
                text(&row.id),
                text(row.status.as_str()),
                text(&row.state),
                Arg::Int(row.version),
                Arg::Int(row.history_seq),
                text(&row.history_hash),
                text(&at),
                Arg::Int(expected),
                Arg::Int(i64::from(row.process_version)),
            ],
        };
        let sql = if expected.is_none() { INSERT_INSTANCE } else { UPDATE_INSTANCE };
        if tx.execute(sql, args).await? > 0 {
            written.insert(row.id.clone());
        }
    }
    Ok(written)
}

fn text(value: &str) -> Arg<'_> {
    Arg::Text(Some(value))
}

/// Borrowed text as a cell.
pub(super) fn borrowed(value: &str) -> Cell<'_> {
    Cell::Text(Cow::Borrowed(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_memory() -> Direct {
        Direct { conn: Connection::open_in_memory().unwrap() }
    }

    fn rows(ids: &[String]) -> Vec<Vec<Cell<'_>>> {
        ids.iter().zip(0i64..).map(|(id, n)| vec![borrowed(id), Cell::Int(n)]).collect()
    }

    fn count(conn: &Direct, sql: &str) -> i64 {
        conn.conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// The rows of NULLs that pad a statement's values to a power of two are neither inserted nor
    /// matched, whatever the count: below one statement's most, and over it (600 rows of two
    /// values take statements of 256, 256 and 128).
    #[test]
    fn padded_statements_write_exactly_the_rows_given() {
        let conn = in_memory();
        conn.conn.execute_batch("CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER NOT NULL)").unwrap();
        for total in [1usize, 3, 5, 600] {
            conn.conn.execute_batch("DELETE FROM t").unwrap();
            let ids: Vec<String> = (0..total).map(|i| format!("id-{i}")).collect();
            let insert = ("INSERT INTO t (id, n) SELECT * FROM (", ") WHERE column1 IS NOT NULL RETURNING id");
            assert_eq!(conn.values(insert.0, insert.1, 2, rows(&ids)).unwrap().len(), total);
            assert_eq!(count(&conn, "SELECT count(*) FROM t"), total as i64);

            let odd: Vec<String> = ids.iter().skip(1).step_by(2).cloned().collect();
            let update = ("UPDATE t SET n = -1 FROM (", ") AS u WHERE t.id = u.column1 RETURNING t.id");
            assert_eq!(conn.values(update.0, update.1, 2, rows(&odd)).unwrap().len(), odd.len());
            assert_eq!(count(&conn, "SELECT count(*) FROM t WHERE n = -1"), odd.len() as i64);

            let gone: Vec<Vec<Cell<'_>>> = odd.iter().map(|id| vec![borrowed(id)]).collect();
            conn.values("DELETE FROM t WHERE id IN (", ")", 1, gone).unwrap();
            assert_eq!(count(&conn, "SELECT count(*) FROM t"), (total - odd.len()) as i64, "{total} rows");
        }
    }

    /// Parameters bind as sqlx binds them: `$N` and `?N` by number (one argument may serve a
    /// parameter used twice), a bare `?` in order; a list as JSON; a missing argument or a named
    /// parameter is refused with its name, not bound to NULL.
    #[tokio::test]
    async fn arguments_bind_by_number_as_sqlx_binds_them() {
        let mut conn = in_memory();
        let row = conn
            .fetch(
                "SELECT $2 AS b, $1 AS a, $1 || ?3 AS again, (SELECT count(*) FROM json_each($4)) AS listed",
                vec![text("one"), Arg::Int(2), text("!"), Arg::Texts(vec!["x".into(), "y".into()])],
            )
            .await
            .unwrap();
        assert_eq!(row[0].int("b").unwrap(), 2);
        assert_eq!(row[0].text("a").unwrap(), "one");
        assert_eq!(row[0].text("again").unwrap(), "one!");
        assert_eq!(row[0].int("listed").unwrap(), 2);
        let bare = conn.fetch("SELECT ? AS a, ? AS b", vec![Arg::OptInt(None), text("z")]).await.unwrap();
        assert_eq!(bare[0].opt_int("a").unwrap(), None);
        assert_eq!(bare[0].opt_text("b").unwrap().as_deref(), Some("z"));
        // A type the column does not hold is an error naming the column.
        let wrong = bare[0].int("b").unwrap_err().to_string();
        assert!(wrong.contains("`b`"), "{wrong}");

        let missing = conn.fetch("SELECT $2 AS a", vec![text("only one")]).await.unwrap_err().to_string();
        assert!(missing.contains('2'), "{missing}");
        let named = conn.fetch("SELECT :name AS a", vec![text("x")]).await.unwrap_err().to_string();
        assert!(named.contains(":name"), "{named}");
    }

    /// A failed statement inside a transaction leaves nothing behind once it rolls back, and the
    /// connection takes the next transaction as usual.
    #[tokio::test]
    async fn a_failed_transaction_rolls_back_whole() {
        let mut conn = in_memory();
        conn.conn.execute_batch("CREATE TABLE t (id TEXT PRIMARY KEY)").unwrap();
        conn.begin().unwrap();
        conn.execute("INSERT INTO t (id) VALUES ($1)", vec![text("a")]).await.unwrap();
        let duplicate = conn.execute("INSERT INTO t (id) VALUES ($1)", vec![text("a")]).await;
        assert!(duplicate.unwrap_err().to_string().contains("UNIQUE"));
        conn.rollback();
        assert_eq!(count(&conn, "SELECT count(*) FROM t"), 0);
        conn.begin().unwrap();
        assert_eq!(conn.execute("INSERT INTO t (id) VALUES ($1)", vec![text("b")]).await.unwrap(), 1);
        conn.commit().unwrap();
        assert_eq!(count(&conn, "SELECT count(*) FROM t"), 1);

        // A batch that never reached its commit or rollback (a panic mid-batch) is rolled back
        // by the next one, which then starts as usual.
        conn.begin().unwrap();
        conn.execute("INSERT INTO t (id) VALUES ($1)", vec![text("lost")]).await.unwrap();
        conn.begin().unwrap();
        conn.commit().unwrap();
        assert_eq!(count(&conn, "SELECT count(*) FROM t WHERE id = 'lost'"), 0);
    }

    /// Stored text that is not UTF-8 is an error naming what is wrong, not a panic.
    #[tokio::test]
    async fn text_that_is_not_utf8_is_an_error() {
        let mut conn = in_memory();
        let error = conn.fetch("SELECT CAST(x'ff' AS TEXT) AS t", vec![]).await.unwrap_err().to_string();
        assert!(error.contains("UTF-8"), "{error}");
    }
}
