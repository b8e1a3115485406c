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
use super::{
    BufferedMessage, DeploymentRow, Error, HistoryRow, InstanceRow, JobInfo, PendingRow, SqliteStore, Store,
    Substitution, TaskInfo, Write, WriteError, WriteOutcome,
};

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

/// Calls the same method on whichever store this is.
macro_rules! delegate {
    ($self:ident.$method:ident($($arg:expr),*)) => {
        match $self {
            AnyStore::Sqlite(s) => s.$method($($arg),*).await,
            AnyStore::Postgres(s) => s.$method($($arg),*).await,
        }
    };
}

impl Store for AnyStore {
    async fn write(&self, batch: Vec<Write>) -> Vec<Result<WriteOutcome, WriteError>> {
        delegate!(self.write(batch))
    }

    async fn load_instance(&self, id: &str) -> Result<Option<InstanceRow>, Error> {
        delegate!(self.load_instance(id))
    }

    async fn deployment(&self, key: &str, version: Option<u32>) -> Result<Option<DeploymentRow>, Error> {
        delegate!(self.deployment(key, version))
    }

    async fn job(&self, id: &str) -> Result<Option<JobInfo>, Error> {
        delegate!(self.job(id))
    }

    async fn task(&self, id: &str) -> Result<Option<TaskInfo>, Error> {
        delegate!(self.task(id))
    }

    async fn open_tasks(&self, instance: Option<&str>) -> Result<Vec<TaskInfo>, Error> {
        delegate!(self.open_tasks(instance))
    }

    async fn inbox(&self, user: &str, roles: &[String], principals: &[String]) -> Result<Vec<TaskInfo>, Error> {
        delegate!(self.inbox(user, roles, principals))
    }

    async fn principals_of(&self, substitute: &str, now: DateTime<Utc>) -> Result<Vec<String>, Error> {
        delegate!(self.principals_of(substitute, now))
    }

    async fn substitute_of(&self, user: &str) -> Result<Option<Substitution>, Error> {
        delegate!(self.substitute_of(user))
    }

    async fn subscriptions_for(&self, name: &str, key: &str) -> Result<Vec<(String, String)>, Error> {
        delegate!(self.subscriptions_for(name, key))
    }

    async fn buffered_message(
        &self,
        name: &str,
        key: &str,
        now: DateTime<Utc>,
        skip: &[i64],
    ) -> Result<Option<BufferedMessage>, Error> {
        delegate!(self.buffered_message(name, key, now, skip))
    }

    async fn message_seen(&self, message_id: &str) -> Result<bool, Error> {
        delegate!(self.message_seen(message_id))
    }

    async fn due_timers(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<(String, String)>, Error> {
        delegate!(self.due_timers(now, limit))
    }

    async fn due_schedules(&self, now: DateTime<Utc>) -> Result<Vec<(String, String, DateTime<Utc>)>, Error> {
        delegate!(self.due_schedules(now))
    }

    async fn next_schedule(&self) -> Result<Option<DateTime<Utc>>, Error> {
        delegate!(self.next_schedule())
    }

    async fn latest_versions(&self) -> Result<Vec<(String, u32)>, Error> {
        delegate!(self.latest_versions())
    }

    async fn next_timer(&self) -> Result<Option<DateTime<Utc>>, Error> {
        delegate!(self.next_timer())
    }

    async fn pending(&self, limit: i64) -> Result<Vec<PendingRow>, Error> {
        delegate!(self.pending(limit))
    }

    async fn incident(&self, id: &str) -> Result<Option<(String, Option<String>)>, Error> {
        delegate!(self.incident(id))
    }

    async fn history(&self, instance: &str) -> Result<Vec<HistoryRow>, Error> {
        delegate!(self.history(instance))
    }

    async fn events(&self, instance: &str) -> Result<Vec<(DateTime<Utc>, String)>, Error> {
        delegate!(self.events(instance))
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
