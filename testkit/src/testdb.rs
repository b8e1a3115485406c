//! Scratch databases for tests and benchmarks: a fresh SQLite file, or a uniquely named
//! PostgreSQL database, removed again when dropped.
//!
//! `CLOVERLEAF_TEST_BACKEND` picks the backend of [`ScratchDb::new`]: `sqlite` (the default) or
//! `postgres`. PostgreSQL is reached at `CLOVERLEAF_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432`, the server without a database name). When that server
//! cannot be reached the database is not created and a `SKIPPED` notice goes to stderr, unless
//! `CI` is set: then it panics, so that a CI run cannot pass by skipping.
//!
//! ```no_run
//! # async fn demo() {
//! use cloverleaf_testkit::testdb::ScratchDb;
//!
//! let Some(db) = ScratchDb::new().await else { return }; // skipped, with a notice
//! let url = db.url(); // give it to Engine::connect, Ledger::connect, `serve --db`...
//! # let _ = url; }
//! ```

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

/// The environment variable that picks the backend of [`ScratchDb::new`].
pub const BACKEND_VAR: &str = "CLOVERLEAF_TEST_BACKEND";
/// The environment variable naming the PostgreSQL server (without a database name).
pub const PG_URL_VAR: &str = "CLOVERLEAF_TEST_PG_URL";
/// The PostgreSQL server used when [`PG_URL_VAR`] is unset.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432";

/// A kind of database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

impl Backend {
    /// The backend [`BACKEND_VAR`] names; SQLite when it is unset or empty.
    ///
    /// # Panics
    /// On a value other than `sqlite`, `postgres` or `postgresql`: a misspelt backend must not
    /// quietly run the tests on the other one.
    pub fn from_env() -> Backend {
        match std::env::var(BACKEND_VAR).as_deref() {
            Err(_) | Ok("" | "sqlite") => Backend::Sqlite,
            Ok("postgres" | "postgresql") => Backend::Postgres,
            Ok(other) => panic!("{BACKEND_VAR}={other}: expected `sqlite` or `postgres`"),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A name no other scratch database (of this or another process) uses.
fn unique(prefix: &str, separator: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    [prefix, &std::process::id().to_string(), &n.to_string(), &nanos.to_string()].join(separator)
}

/// A database of its own for one test or benchmark run; see the [module docs](self).
#[derive(Debug)]
pub struct ScratchDb {
    place: Place,
}

#[derive(Debug)]
enum Place {
    Sqlite(PathBuf),
    Postgres { server: String, name: String },
}

impl ScratchDb {
    /// A fresh database on the backend [`BACKEND_VAR`] names; `None` when PostgreSQL is
    /// unreachable outside CI (after a notice).
    pub async fn new() -> Option<ScratchDb> {
        match Backend::from_env() {
            Backend::Sqlite => Some(ScratchDb::sqlite()),
            Backend::Postgres => ScratchDb::postgres().await,
        }
    }

    /// A fresh SQLite file in the temporary directory (created by whoever opens it).
    pub fn sqlite() -> ScratchDb {
        let path = std::env::temp_dir().join(format!("{}.db", unique("cloverleaf-scratch", "-")));
        ScratchDb { place: Place::Sqlite(path) }
    }

    /// A fresh PostgreSQL database on the server [`PG_URL_VAR`] names; `None` when the server
    /// cannot be reached and `CI` is unset (after a `SKIPPED` notice on stderr).
    ///
    /// # Panics
    /// When the server cannot be reached and `CI` is set, or refuses to create the database.
    pub async fn postgres() -> Option<ScratchDb> {
        let server = pg_server();
        let admin = format!("{server}/postgres");
        let mut conn = match admin_connection(&admin).await {
            Ok(conn) => conn,
            Err(reason) => {
                if std::env::var_os("CI").is_some() {
                    panic!("PostgreSQL not reachable at {server} ({reason}); CI is set, so this fails");
                }
                // Straight to stderr: libtest captures `eprintln!` of passing tests.
                let test = std::thread::current().name().unwrap_or("a test").to_string();
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: {test}: PostgreSQL not reachable at {server} ({reason}); \
                     set {PG_URL_VAR}, or run with {BACKEND_VAR}=sqlite"
                );
                return None;
            }
        };
        let name = unique("cloverleaf_scratch", "_");
        if let Err(e) = sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await {
            panic!("cannot create the scratch database {name} on {server}: {e}");
        }
        let _ = conn.close().await;
        Some(ScratchDb { place: Place::Postgres { server, name } })
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        match self.place {
            Place::Sqlite(_) => Backend::Sqlite,
            Place::Postgres { .. } => Backend::Postgres,
        }
    }

    /// The URL to open it by: the file's path, or `postgres://.../NAME`.
    pub fn url(&self) -> String {
        match &self.place {
            Place::Sqlite(path) => path.display().to_string(),
            Place::Postgres { server, name } => format!("{server}/{name}"),
        }
    }
}

/// A connection to the server's `postgres` database. A server that is up but full (too many
/// clients, or still starting) is waited for, up to half a minute: only a server that cannot be
/// reached at all makes a test skip.
async fn admin_connection(admin: &str) -> Result<PgConnection, String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let error = match tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(admin)).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(e)) => e,
            Err(_) => return Err("timed out".into()),
        };
        // 53300: too many connections; 57P03: the server is starting up.
        let busy =
            error.as_database_error().and_then(|e| e.code()).is_some_and(|code| code == "53300" || code == "57P03");
        if !busy || std::time::Instant::now() >= deadline {
            return Err(error.to_string());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The PostgreSQL server scratch databases are made on, without a trailing slash.
fn pg_server() -> String {
    std::env::var(PG_URL_VAR).unwrap_or_else(|_| DEFAULT_PG_URL.into()).trim_end_matches('/').to_string()
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        match &self.place {
            Place::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Place::Postgres { server, name } => {
                // Drop may run inside a runtime, which cannot be blocked on: drop the database
                // from a thread with a runtime of its own. FORCE ends connections left open.
                let admin = format!("{server}/postgres");
                let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                let dropped = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    rt.block_on(async {
                        let mut conn = PgConnection::connect(&admin).await?;
                        sqlx::query(&sql).execute(&mut conn).await?;
                        conn.close().await
                    })
                    .map_err(std::io::Error::other)
                })
                .join();
                if !matches!(dropped, Ok(Ok(()))) {
                    let _ = writeln!(std::io::stderr(), "could not drop scratch database {name}: {dropped:?}");
                }
            }
        }
    }
}
