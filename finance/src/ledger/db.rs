//! How the ledger reaches its database: a URL picks SQLite or PostgreSQL, both behind sqlx's
//! `Any` driver so that every operation is one SQL text for both, and a write transaction is
//! serialised with every other ledger write on the database.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor, Transaction};

use super::Error;

/// The database behind a [`Ledger`](super::Ledger).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Backend {
    Sqlite,
    Postgres,
}

/// How long a SQLite writer waits for the file's write lock.
const SQLITE_BUSY: Duration = Duration::from_secs(10);

/// How long a PostgreSQL writer waits for the ledger lock before its job fails (and is retried):
/// a writer stuck while holding it must not stop every node's ledger for good.
const PG_LOCK_TIMEOUT: &str = "30s";

/// The advisory lock every PostgreSQL ledger write holds until its transaction ends ("ClovLedg"
/// in ASCII). The engine's own advisory locks are `hashtextextended` values of their names; a
/// collision with one of them would only serialise more.
const LEDGER_LOCK: i64 = 0x436c_6f76_4c65_6467;

fn install_drivers() {
    sqlx::any::install_default_drivers();
}

/// The write and read pools on the SQLite file at `path` (created if missing), after applying
/// the migrations. One writing connection: ledger transactions queue in the pool instead of
/// spinning on SQLite's busy handler.
pub(super) async fn sqlite(path: &Path) -> Result<(AnyPool, AnyPool), Error> {
    cloverleaf_engine::store::create_private(path);
    install_drivers();
    // Absolute, so that the URL's first path segment can never be read as a host.
    let path = std::path::absolute(path).map_err(|e| Error::Url(format!("{}: {e}", path.display())))?;
    let (write_options, read_options) = (sqlite_options(&path, "rwc")?, sqlite_options(&path, "ro")?);
    let busy = format!("PRAGMA busy_timeout = {}", SQLITE_BUSY.as_millis());
    // The URL carries the file and its mode only: the pragmas are set on each new connection.
    let write_setup = format!("{busy}; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL");
    let write = AnyPoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .after_connect(move |conn, _| {
            let setup = write_setup.clone();
            Box::pin(async move {
                conn.execute(setup.as_str()).await?;
                Ok(())
            })
        })
        .connect_with(write_options)
        .await?;
    let mut migrator = sqlx::migrate!("./migrations");
    // The engine's migrations live in the same database.
    migrator.set_ignore_missing(true);
    // sqlx takes no lock to migrate SQLite: under the file's write lock, processes opening a new
    // file together migrate it once (the others then find the migrations applied).
    let mut tx = write.begin_with("BEGIN IMMEDIATE").await?;
    migrator.run(&mut *tx).await?;
    tx.commit().await?;
    let read = AnyPoolOptions::new()
        .max_connections(4)
        .after_connect(move |conn, _| {
            let setup = busy.clone();
            Box::pin(async move {
                conn.execute(setup.as_str()).await?;
                Ok(())
            })
        })
        .connect_with(read_options)
        .await?;
    Ok((write, read))
}

/// Options for the SQLite file at `path` in `mode` (`rwc`: read, write, create; `ro`: read
/// only). The Any driver takes a URL, and sqlx percent-decodes its path: every byte but the
/// plainest is encoded, `%` included, so the file opened is the one named.
fn sqlite_options(path: &Path, mode: &str) -> Result<AnyConnectOptions, Error> {
    let mut url = String::from("sqlite://");
    for &byte in path.as_os_str().as_encoded_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-_.~".contains(&byte) {
            url.push(char::from(byte));
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    url.push_str("?mode=");
    url.push_str(mode);
    Ok(AnyConnectOptions::from_str(&url)?)
}

/// The write and read pools on the PostgreSQL database at `url`, after applying the migrations.
/// Separate pools, so that reports and lookups are not queued behind writers waiting for the
/// ledger lock.
pub(super) async fn postgres(url: &str) -> Result<(AnyPool, AnyPool), Error> {
    install_drivers();
    let options = AnyConnectOptions::from_str(url)?;
    // Two writers: one holding the ledger lock, one queued for it; more would only wait in the
    // database instead of in the pool.
    let write = AnyPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options.clone())
        .await?;
    let mut migrator = sqlx::migrate!("./migrations_pg");
    // The engine's migrations share `_sqlx_migrations`; the migrator's own advisory lock makes
    // nodes that start together migrate once.
    migrator.set_ignore_missing(true);
    migrator.run(&write).await?;
    let read =
        AnyPoolOptions::new().max_connections(4).acquire_timeout(Duration::from_secs(30)).connect_with(options).await?;
    Ok((write, read))
}

/// Begins a ledger write transaction on `pool`.
///
/// SQLite: `BEGIN IMMEDIATE` takes the file's write lock at once (a deferred transaction could
/// fail to upgrade while the engine's writer commits to the same file).
///
/// PostgreSQL: READ COMMITTED, then the ledger's advisory lock. Every statement after the lock
/// sees every ledger write committed before it was granted; READ COMMITTED is set explicitly
/// because under a stricter default the snapshot would be taken before the lock is granted.
pub(super) async fn begin(pool: &AnyPool, backend: Backend) -> Result<Transaction<'static, Any>, Error> {
    match backend {
        Backend::Sqlite => Ok(pool.begin_with("BEGIN IMMEDIATE").await?),
        Backend::Postgres => {
            let mut tx = pool.begin_with("BEGIN ISOLATION LEVEL READ COMMITTED").await?;
            // One round trip (simple protocol, no parameters): the constant is inlined.
            let lock =
                format!("SET LOCAL lock_timeout = '{PG_LOCK_TIMEOUT}'; SELECT pg_advisory_xact_lock({LEDGER_LOCK})");
            (&mut *tx).execute(lock.as_str()).await?;
            Ok(tx)
        }
    }
}
