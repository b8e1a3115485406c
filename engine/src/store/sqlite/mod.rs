//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! The group-commit writer's batches go through a connection of its own, called directly on
//! the writer's thread ([`direct`]), one transaction a batch ([`commit`]). Reads use a small
//! pool of read-only sqlx connections; migrations, the archive and tools use one more sqlx
//! connection. The archive's write transactions take turns with the writer's through the
//! writer's lock ([`SqliteStore::hold_writer`]); other writers on that connection (tools, tests)
//! meet the writer in SQLite's busy timeout, as the sub-ledger's connections do.

mod commit;
mod direct;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use tokio::sync::{Mutex, MutexGuard};

use super::reads::{Backend, in_firing_order};
use super::rows::Columns;
use super::sql::{Arg, Dialect, Reader, first_instant, sqlite_query};
use super::writes::Tx;
use super::{Error, InstanceRow, Write, WriteError, WriteOutcome, ts};
pub use direct::WriterCounters;
use direct::{BUSY_TIMEOUT, Direct};

/// Creates a missing database file readable and writable by its owner only (0600): it holds
/// orders, amounts and customers. SQLite gives its `-wal` and `-shm` files the same mode.
/// A file that exists already keeps its mode; any other failure is left for the open that
/// follows to report in its own words.
pub fn create_private(path: &Path) {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let _ = options.open(path);
}

/// The SQLite implementation of [`Store`](super::Store). Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
    /// The writer's connection; `None` once the store is closed.
    writer: Arc<Mutex<Option<Direct>>>,
}

/// While held, the group-commit writer makes no write (see [`SqliteStore::hold_writer`]).
pub struct WriterHold<'a> {
    _guard: MutexGuard<'a, Option<Direct>>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path` and applies the migrations.
    pub async fn open(path: &Path) -> Result<SqliteStore, Error> {
        create_private(path);
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT);
        let write =
            SqlitePoolOptions::new().max_connections(1).min_connections(1).connect_with(options.clone()).await?;
        // Other crates (the sub-ledger) keep their own migrations in the same database.
        let mut migrator = sqlx::migrate!("./migrations");
        migrator.set_ignore_missing(true);
        migrator.run(&write).await?;
        let writer = Direct::open(path)?;
        let read = super::pool::checked_when_idle(SqlitePoolOptions::new())
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        Ok(SqliteStore { read, write, writer: Arc::new(Mutex::new(Some(writer))) })
    }

    /// The pool of one write connection beside the group-commit writer's, for tools and tests
    /// that need raw SQL. A write transaction on it that must not wait on the writer (or keep
    /// it waiting) takes [`SqliteStore::hold_writer`] first.
    pub fn pool(&self) -> &SqlitePool {
        &self.write
    }

    /// The read pool (several read-only connections), for listings and reports.
    pub fn reader(&self) -> &SqlitePool {
        &self.read
    }

    /// Waits for the group-commit writer to finish its batch and keeps it from starting another
    /// until the hold is dropped: a write transaction on [`SqliteStore::pool`] under the hold
    /// neither waits in SQLite's busy loop nor starves behind a busy writer. Never wait for an
    /// engine write while holding it: that write waits for the hold.
    pub async fn hold_writer(&self) -> WriterHold<'_> {
        WriterHold { _guard: self.writer.lock().await }
    }

    /// What the group-commit writer's connection has done since the store opened.
    pub async fn writer_counters(&self) -> Result<WriterCounters, Error> {
        match self.writer.lock().await.as_ref() {
            Some(writer) => writer.counters(),
            None => Err(Error::Database(sqlx::Error::PoolClosed)),
        }
    }

    /// Closes the writer's connection and both pools.
    pub async fn close(&self) {
        self.writer.lock().await.take();
        self.read.close().await;
        self.write.close().await;
    }
}

/// A job-type pattern as a GLOB: `*` is the only wildcard; GLOB's other specials match literally.
pub(super) fn glob_pattern(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        match c {
            '?' => out.push_str("[?]"),
            '[' => out.push_str("[[]"),
            other => out.push(other),
        }
    }
    out
}

impl Backend for SqliteStore {
    async fn commit(&self, batch: Vec<Write>) -> Vec<Result<WriteOutcome, WriteError>> {
        let mut writer = self.writer.lock().await;
        let Some(writer) = writer.as_mut() else {
            let closed = Arc::new(Error::Database(sqlx::Error::PoolClosed));
            return batch.iter().map(|_| Err(WriteError::Store(Arc::clone(&closed)))).collect();
        };
        match commit::write_batch(writer, &batch).await {
            Ok(results) => results,
            Err(error) if batch.len() == 1 => vec![Err(WriteError::Store(Arc::new(error)))],
            Err(error) => {
                // One write broke the batch: apply each alone so the others still land.
                tracing::warn!(%error, size = batch.len(), "batch failed; writing one by one");
                let mut results = Vec::with_capacity(batch.len());
                for write in &batch {
                    let one = match commit::write_batch(writer, std::slice::from_ref(write)).await {
                        Ok(mut r) => r.pop().unwrap_or(Ok(WriteOutcome::Done)),
                        Err(error) => Err(WriteError::Store(Arc::new(error))),
                    };
                    results.push(one);
                }
                results
            }
        }
    }

    async fn take_due_timers(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<(String, String)>, Error> {
        let now = ts(now);
        let sql = "SELECT id, instance_id, due_at FROM timers WHERE due_at <= $1 ORDER BY due_at, id LIMIT $2";
        let rows = self.rows(sql, vec![Arg::Text(Some(&now)), Arg::Int(limit)]).await?;
        let due = rows
            .iter()
            .map(|r| Ok((r.text("due_at")?, r.text("id")?, r.text("instance_id")?)))
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(in_firing_order(due))
    }

    async fn next_takeable_timer(&self) -> Result<Option<DateTime<Utc>>, Error> {
        first_instant(&self.rows("SELECT MIN(due_at) AS due FROM timers", vec![]).await?, "due")
    }
}

impl Tx for SqliteConnection {
    type Row = SqliteRow;

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn fetch(&mut self, sql: &str, args: Vec<Arg<'_>>) -> Result<Vec<SqliteRow>, Error> {
        Ok(sqlite_query(sql, args)?.fetch_all(&mut *self).await?)
    }

    async fn execute(&mut self, sql: &str, args: Vec<Arg<'_>>) -> Result<u64, Error> {
        Ok(sqlite_query(sql, args)?.execute(&mut *self).await?.rows_affected())
    }

    /// SQLite has one writer: a transaction that writes excludes every other already.
    async fn exclusive(&mut self, _name: &str) -> Result<(), Error> {
        Ok(())
    }

    async fn write_instances(&mut self, rows: Vec<(&InstanceRow, Option<i64>)>) -> Result<HashSet<String>, Error> {
        direct::write_instances(self, rows).await
    }
}

#[cfg(test)]
mod tests {
    use cloverleaf_testkit::testdb::ScratchDb;

    use super::*;

    /// The writer's own connection is as durable as the pooled ones (WAL, `synchronous=FULL`,
    /// foreign keys), and a closed store refuses writes with an error instead of writing.
    #[tokio::test]
    async fn the_writer_connection_is_durable_and_refuses_writes_once_closed() {
        let db = ScratchDb::sqlite();
        let store = SqliteStore::open(Path::new(&db.url())).await.unwrap();
        {
            let writer = store.writer.lock().await;
            let writer = writer.as_ref().unwrap();
            assert_eq!(writer.pragma("journal_mode"), "wal");
            assert_eq!(writer.pragma("synchronous"), "2");
            assert_eq!(writer.pragma("foreign_keys"), "1");
        }
        let before = store.writer_counters().await.unwrap();
        assert!(matches!(store.commit(vec![Write::DropPending("none".into())]).await[..], [Ok(_)]));
        assert!(store.writer_counters().await.unwrap().page_size > 0, "{before:?}");

        store.close().await;
        let refused = store.commit(vec![Write::DropPending("none".into())]).await;
        assert!(matches!(&refused[..], [Err(WriteError::Store(_))]), "{refused:?}");
        assert!(store.writer_counters().await.is_err());
    }
}
