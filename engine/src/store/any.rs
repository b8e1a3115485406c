//! A store chosen at run time by URL: SQLite or PostgreSQL.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cloverleaf_engine::store::Error> {
//! use cloverleaf_engine::store::AnyStore;
//!
//! let embedded = AnyStore::connect("sqlite://cloverleaf.db").await?;
//! let shared = AnyStore::connect("postgres://cloverleaf@db.internal/cloverleaf").await?;
//! # let _ = (embedded, shared); Ok(()) }
//! ```

use std::path::Path;

use chrono::{DateTime, Utc};

use super::postgres::{PgStore, Wakeups};
use super::reads::Backend;
use super::{Error, SqliteStore, Write, WriteError, WriteOutcome};

/// Either store, behind one type: what a binary that takes `--db URL` runs on. Cheap to clone.
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// An embedded SQLite file.
    Sqlite(SqliteStore),
    /// A PostgreSQL database, possibly shared with other engine nodes.
    Postgres(PgStore),
}

/// What a database URL names, read once for everything that takes `--db URL`: the engine's
/// store, the sub-ledger and the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseUrl<'a> {
    /// A SQLite file (its path).
    Sqlite(&'a str),
    /// A PostgreSQL database (the URL as given, trimmed).
    Postgres(&'a str),
}

impl<'a> DatabaseUrl<'a> {
    /// Reads `sqlite://PATH`, `sqlite:PATH`, a bare file path, or `postgres://...` /
    /// `postgresql://...`; anything else is refused with a reason and what to write instead.
    pub fn parse(url: &'a str) -> Result<DatabaseUrl<'a>, String> {
        let url = url.trim();
        if url.is_empty() {
            return Err("the database URL is empty".into());
        }
        let path = if let Some((scheme, rest)) = url.split_once("://") {
            match scheme.to_ascii_lowercase().as_str() {
                "postgres" | "postgresql" => return Ok(DatabaseUrl::Postgres(url)),
                "sqlite" => rest,
                other => {
                    return Err(format!(
                        "unsupported database URL scheme `{other}`: use sqlite://PATH, a file path, or postgres://..."
                    ));
                }
            }
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            rest
        } else {
            url
        };
        if path.is_empty() {
            return Err(format!("the SQLite URL `{url}` names no file"));
        }
        if path.contains('?') {
            return Err(format!(
                "the SQLite URL `{url}` has query parameters, which are not supported: name the file only"
            ));
        }
        if path == ":memory:" || path.starts_with("file::memory:") {
            return Err("an in-memory SQLite database is not supported: reads and writes go through separate \
                        connections, which must share a file"
                .into());
        }
        Ok(DatabaseUrl::Sqlite(path))
    }
}

impl AnyStore {
    /// Opens the store `url` names (see [`AnyStore`]), applying its migrations; an unsupported
    /// URL is a configuration error.
    pub async fn connect(url: &str) -> Result<AnyStore, Error> {
        match DatabaseUrl::parse(url).map_err(|message| Error::Database(sqlx::Error::Configuration(message.into())))? {
            DatabaseUrl::Sqlite(path) => Ok(AnyStore::Sqlite(SqliteStore::open(Path::new(path)).await?)),
            DatabaseUrl::Postgres(url) => Ok(AnyStore::Postgres(PgStore::connect(url).await?)),
        }
    }

    /// The SQLite store, if this is one.
    pub fn as_sqlite(&self) -> Option<&SqliteStore> {
        match self {
            AnyStore::Sqlite(s) => Some(s),
            AnyStore::Postgres(_) => None,
        }
    }

    /// The PostgreSQL store, if this is one.
    pub fn as_postgres(&self) -> Option<&PgStore> {
        match self {
            AnyStore::Postgres(s) => Some(s),
            AnyStore::Sqlite(_) => None,
        }
    }

    /// Wake-ups from other engine nodes on the same database (see [`PgStore::listen`]); `None`
    /// for SQLite, whose file has one engine.
    pub async fn listen(&self) -> Result<Option<Wakeups>, Error> {
        match self {
            AnyStore::Sqlite(_) => Ok(None),
            AnyStore::Postgres(s) => Ok(Some(s.listen().await?)),
        }
    }

    /// Closes the store's connections.
    pub async fn close(&self) {
        match self {
            AnyStore::Sqlite(s) => s.close().await,
            AnyStore::Postgres(s) => s.close().await,
        }
    }
}

impl From<SqliteStore> for AnyStore {
    fn from(store: SqliteStore) -> Self {
        AnyStore::Sqlite(store)
    }
}

impl From<PgStore> for AnyStore {
    fn from(store: PgStore) -> Self {
        AnyStore::Postgres(store)
    }
}

impl Backend for AnyStore {
    async fn commit(&self, batch: Vec<Write>) -> Vec<Result<WriteOutcome, WriteError>> {
        match self {
            AnyStore::Sqlite(s) => s.commit(batch).await,
            AnyStore::Postgres(s) => s.commit(batch).await,
        }
    }

    async fn take_due_timers(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<(String, String)>, Error> {
        match self {
            AnyStore::Sqlite(s) => s.take_due_timers(now, limit).await,
            AnyStore::Postgres(s) => s.take_due_timers(now, limit).await,
        }
    }

    async fn next_takeable_timer(&self) -> Result<Option<DateTime<Utc>>, Error> {
        match self {
            AnyStore::Sqlite(s) => s.next_takeable_timer().await,
            AnyStore::Postgres(s) => s.next_takeable_timer().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DatabaseUrl;

    fn target(url: &str) -> Result<DatabaseUrl<'_>, String> {
        DatabaseUrl::parse(url)
    }

    #[test]
    fn urls_name_their_store() {
        assert_eq!(target("sqlite://cloverleaf.db"), Ok(DatabaseUrl::Sqlite("cloverleaf.db")));
        assert_eq!(target("sqlite:///var/lib/c.db"), Ok(DatabaseUrl::Sqlite("/var/lib/c.db")));
        assert_eq!(target("sqlite:c.db"), Ok(DatabaseUrl::Sqlite("c.db")));
        assert_eq!(target("data/c.db"), Ok(DatabaseUrl::Sqlite("data/c.db")));
        assert_eq!(target("postgres://u@h/db"), Ok(DatabaseUrl::Postgres("postgres://u@h/db")));
        assert_eq!(target(" PostgreSQL://u@h/db "), Ok(DatabaseUrl::Postgres("PostgreSQL://u@h/db")));
    }

    #[test]
    fn unsupported_urls_are_refused_with_a_reason() {
        assert!(target("mysql://h/db").unwrap_err().contains("unsupported database URL scheme `mysql`"));
        assert!(target("").unwrap_err().contains("empty"));
        assert!(target("sqlite://").unwrap_err().contains("names no file"));
        assert!(target("sqlite::memory:").unwrap_err().contains("in-memory"));
        assert!(target("sqlite://c.db?mode=ro").unwrap_err().contains("query parameters"));
    }
}
