//! How the ledger reaches its database: a URL picks SQLite or PostgreSQL, both behind sqlx's
//! `Any` driver so that every operation is one SQL text for both, and the locks a write
//! transaction takes (see the module docs of [`ledger`](super) for the order they are taken in).

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use cloverleaf_engine::store::pool::{Lender, Setup, checked_when_idle};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Column, Executor, Row};

use super::Error;
use super::tx::LedgerTx;

/// The database behind a [`Ledger`](super::Ledger).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Backend {
    Sqlite,
    Postgres,
}

/// How long a SQLite writer waits for the file's write lock.
const SQLITE_BUSY: Duration = Duration::from_secs(10);

/// How long a ledger operation waits for a connection: on SQLite a write waits for the one
/// writing connection, behind the writes queued before it (a month-end close among them).
const CONNECTION_WAIT: Duration = Duration::from_secs(30);

/// How long a PostgreSQL writer waits for one of its locks before its job fails (and is
/// retried): a writer stuck while holding one must not stop the ledger for good.
const PG_LOCK_TIMEOUT: &str = "30s";

/// How long a batch of invoices waits for its scoped locks before its invoices are issued one
/// per transaction instead (see [`series`](super::series)): long enough for the writes that
/// hold them in passing (another node's batch, a cost posting), short enough that a customer
/// held by an operator delays the others of the batch once, briefly.
pub(super) const BATCH_LOCK_WAIT: &str = "2s";

/// The ledger-wide advisory lock ("ClovLedg" in ASCII), held until the transaction ends: shared
/// by every scoped write, exclusive for the rare writes that need the whole ledger still (see
/// [`Mode`]). The engine's own advisory locks are `hashtextextended` values of their names; a
/// collision with one of them would only serialise more.
const LEDGER_LOCK: i64 = 0x436c_6f76_4c65_6467;

/// The first key of every scope lock ("Cl" and a class number): scope locks use PostgreSQL's
/// two-key advisory locks, a space apart from the one-key locks of the engine and [`LEDGER_LOCK`].
const SCOPE_SPACE: i32 = 0x436c_0000;

fn install_drivers() {
    sqlx::any::install_default_drivers();
}

/// How a [`Ledger`](super::Ledger) reaches its database.
pub(super) struct Pools {
    /// The ledger's write transactions (see [`LedgerTx`]).
    pub writes: Lender<AnyConnection>,
    /// Reports and lookups.
    pub read: AnyPool,
    /// Migrations, and the raw SQL of tools and tests.
    pub tools: AnyPool,
}

/// The pools on the SQLite file at `path` (created if missing), after applying the migrations.
/// One writing connection for the ledger's transactions: they queue for it instead of spinning
/// on SQLite's busy handler.
pub(super) async fn sqlite(path: &Path) -> Result<Pools, Error> {
    cloverleaf_engine::store::create_private(path);
    install_drivers();
    // Absolute, so that the URL's first path segment can never be read as a host.
    let path = std::path::absolute(path).map_err(|e| Error::Url(format!("{}: {e}", path.display())))?;
    let (write_options, read_options) = (sqlite_options(&path, "rwc")?, sqlite_options(&path, "ro")?);
    let busy = format!("PRAGMA busy_timeout = {}", SQLITE_BUSY.as_millis());
    // The URL carries the file and its mode only: the pragmas are set on each new connection.
    let write_setup: Arc<str> = format!("{busy}; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL").into();
    let tools_setup = Arc::clone(&write_setup);
    let tools = checked_when_idle(AnyPoolOptions::new())
        .max_connections(1)
        .after_connect(move |conn, _| {
            let setup = Arc::clone(&tools_setup);
            Box::pin(async move {
                conn.execute(&*setup).await?;
                Ok(())
            })
        })
        .connect_with(write_options.clone())
        .await?;
    let mut migrator = sqlx::migrate!("./migrations");
    // The engine's migrations live in the same database.
    migrator.set_ignore_missing(true);
    // sqlx takes no lock to migrate SQLite: under the file's write lock, processes opening a new
    // file together migrate it once (the others then find the migrations applied).
    let mut tx = tools.begin_with("BEGIN IMMEDIATE").await?;
    migrator.run(&mut *tx).await?;
    tx.commit().await?;
    let setup: Setup<AnyConnection> = Arc::new(move |conn: &mut AnyConnection| {
        let setup = Arc::clone(&write_setup);
        Box::pin(async move {
            conn.execute(&*setup).await?;
            Ok(())
        })
    });
    let writes = Lender::new(write_options, 1, CONNECTION_WAIT, Some(setup));
    let read = checked_when_idle(AnyPoolOptions::new())
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
    Ok(Pools { writes, read, tools })
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

/// The pools on the PostgreSQL database at `url`, after applying the migrations. Writes and
/// reads apart, so that reports and lookups are not queued behind writers waiting for a lock.
pub(super) async fn postgres(url: &str) -> Result<Pools, Error> {
    install_drivers();
    let options = AnyConnectOptions::from_str(url)?;
    let tools = checked_when_idle(AnyPoolOptions::new())
        .max_connections(2)
        .acquire_timeout(CONNECTION_WAIT)
        .connect_with(options.clone())
        .await?;
    let mut migrator = sqlx::migrate!("./migrations_pg");
    // The engine's migrations share `_sqlx_migrations`; the migrator's own advisory lock makes
    // nodes that start together migrate once.
    migrator.set_ignore_missing(true);
    migrator.run(&tools).await?;
    // Writes of different customers, orders and payments run side by side, a few at a time: each
    // node has as many reads (its engine has ten connections more, its invoice batches one), so
    // that five busy nodes stay within PostgreSQL's default of 100 connections.
    let writes = Lender::new(options.clone(), 4, CONNECTION_WAIT, None);
    let read = checked_when_idle(AnyPoolOptions::new())
        .max_connections(4)
        .acquire_timeout(CONNECTION_WAIT)
        .connect_with(options)
        .await?;
    Ok(Pools { writes, read, tools })
}

/// What a scoped write locks on PostgreSQL: the things it reads to decide and then changes. Two
/// writes wait for each other only when they share a scope (or for the number series, see
/// [`ledger`](super)).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// A job's idempotency key: the same job delivered twice runs once, the second run waits
    /// for the first and answers with its output.
    Key(String),
    /// An order: its recorded lines, its one invoice, its cost posting, its budget reservation.
    Order(String),
    /// A customer's business: its orders and invoices being issued.
    Customer(String),
    /// The same lock as [`Scope::Customer`], taken shared: for writes that add to a customer's
    /// business without reading what the others add (an invoice batch, costing an order). They
    /// go side by side, each holding its own orders exclusive, and the writes that take the
    /// customer exclusive (a credit check) wait for all of them, and they for it. A write naming
    /// both takes it exclusive.
    CustomerShared(String),
    /// An invoice: what is open on it, its payments applied, its dunning, its write-off.
    Invoice(String),
    /// A payment: what of it is applied, refunded or returned.
    Payment(String),
    /// A cost centre's budgets: what is reserved on them (taken late, once the customer's cost
    /// centre is read).
    CostCentre(String),
    /// A stocked product: its quantity on hand and value (taken late by costing, once the
    /// order's lines are read, in ascending order of the products).
    Product(String),
}

impl Scope {
    /// The class number, which orders the classes: locks are taken in ascending
    /// `(class, hash)` order.
    fn class(&self) -> i32 {
        match self {
            Scope::Key(_) => 1,
            Scope::Order(_) => 2,
            Scope::Customer(_) | Scope::CustomerShared(_) => 3,
            Scope::Invoice(_) => 4,
            Scope::Payment(_) => 5,
            Scope::CostCentre(_) => 6,
            Scope::Product(_) => 7,
        }
    }

    fn name(&self) -> &str {
        match self {
            Scope::Key(s)
            | Scope::Order(s)
            | Scope::Customer(s)
            | Scope::CustomerShared(s)
            | Scope::Invoice(s)
            | Scope::Payment(s)
            | Scope::CostCentre(s)
            | Scope::Product(s) => s,
        }
    }

    /// The scope's two advisory lock keys on PostgreSQL (`pg_locks` shows them as `classid` and
    /// `objid`): the class in a space of its own (`SCOPE_SPACE`), and a 32-bit FNV-1a hash of the name (stable
    /// across builds and nodes, unlike std's hasher). Two names with one hash share a lock, which
    /// only makes them wait for each other.
    pub fn keys(&self) -> (i32, i32) {
        let mut hash: u32 = 0x811c_9dc5;
        for byte in self.name().bytes() {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
        (SCOPE_SPACE | self.class(), i32::from_ne_bytes(hash.to_ne_bytes()))
    }

    /// Whether the scope's lock is taken shared.
    fn shared(&self) -> bool {
        matches!(self, Scope::CustomerShared(_))
    }
}

/// How a write transaction locks the ledger on PostgreSQL.
#[derive(Debug, Clone)]
pub(super) enum Mode<'a> {
    /// The whole ledger, still: waits for every write in flight and holds off every other until
    /// it ends. For rare writes that read or change across scopes (seeding, customers, budgets'
    /// amounts, closing a period, alerts, reports).
    Exclusive,
    /// The ledger lock shared, then these scopes, in ascending order.
    Scoped(&'a [Scope]),
    /// As `Scoped`, the scopes of a batch of invoices, each waited for at most
    /// [`BATCH_LOCK_WAIT`] (then [`is_lock_timeout`]); later statements wait as long as any.
    Batch(&'a [Scope]),
}

/// Begins a ledger write transaction on a connection of `writes`, in one round trip.
///
/// SQLite: `BEGIN IMMEDIATE` takes the file's write lock at once (a deferred transaction could
/// fail to upgrade while the engine's writer commits to the same file); one writer at a time,
/// whatever the mode.
///
/// PostgreSQL: READ COMMITTED, then the locks of `mode`. Every statement after them sees every
/// write committed by the holders they waited for; READ COMMITTED is set explicitly because under
/// a stricter default the snapshot would be taken before the locks are granted.
pub(super) async fn begin(writes: &Lender<AnyConnection>, backend: Backend, mode: Mode<'_>) -> Result<LedgerTx, Error> {
    Ok(LedgerTx::begin(writes, backend, &begin_sql(backend, &mode)).await?.0)
}

/// The statements that begin a write transaction of `mode` (see [`begin`]).
pub(super) fn begin_sql(backend: Backend, mode: &Mode<'_>) -> String {
    match backend {
        Backend::Sqlite => "BEGIN IMMEDIATE".to_string(),
        Backend::Postgres => format!("BEGIN ISOLATION LEVEL READ COMMITTED; {}", lock_sql(mode)),
    }
}

/// Begins a ledger write transaction on a connection of `writes` (as [`begin`]) for an operation that runs once per
/// idempotency `key`, and reads the output an earlier run recorded under it. The read follows the
/// locks (the key is one of them), so a run of the same key in flight is waited for and its
/// output seen. On PostgreSQL the read goes in the round trip that begins the transaction.
pub(super) async fn begin_once(
    writes: &Lender<AnyConnection>,
    backend: Backend,
    mode: Mode<'_>,
    key: &str,
) -> Result<(LedgerTx, Option<String>), Error> {
    // A NUL cannot be written as a literal (nor stored as text): such a key is read as a
    // parameter, and refused there.
    if backend == Backend::Postgres && !key.contains('\0') {
        let sql =
            format!("{}; SELECT output FROM idempotency_keys WHERE key = {}", begin_sql(backend, &mode), literal(key));
        let (tx, rows) = LedgerTx::begin(writes, backend, &sql).await?;
        let stored = rows.iter().find(|row| row.columns().first().is_some_and(|c| c.name() == "output"));
        let output = stored.map(|row| row.try_get::<String, _>(0)).transpose()?;
        return Ok((tx, output));
    }
    let mut tx = begin(writes, backend, mode).await?;
    let row =
        sqlx::query("SELECT output FROM idempotency_keys WHERE key = $1").bind(key).fetch_optional(&mut *tx).await?;
    let output = row.map(|row| row.try_get::<String, _>(0)).transpose()?;
    Ok((tx, output))
}

/// `text` as an SQL string literal for the simple protocol, which has no parameters: an escape
/// string, so that it reads the same whatever `standard_conforming_strings` says, with each
/// backslash doubled and each quote written twice (a backslash before a quote is refused by a
/// server with `backslash_quote = off`).
pub(super) fn literal(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 3);
    quoted.push_str("E'");
    for c in text.chars() {
        if c == '\\' || c == '\'' {
            quoted.push(c);
        }
        quoted.push(c);
    }
    quoted.push('\'');
    quoted
}

/// Takes `scope` late in a scoped transaction, once what it names is known (a customer's cost
/// centre). It must rank above every scope the transaction holds (see [`Scope::class`]), or
/// the fixed order that keeps writers from deadlocking is broken. No-op on SQLite.
pub(super) async fn lock(conn: &mut AnyConnection, backend: Backend, scope: &Scope) -> Result<(), Error> {
    if backend == Backend::Postgres {
        let (class, hash) = scope.keys();
        let shared = if scope.shared() { "_shared" } else { "" };
        conn.execute(format!("SELECT pg_advisory_xact_lock{shared}({class}, {hash})").as_str()).await?;
    }
    Ok(())
}

/// Whether `error` is a lock not granted within the transaction's lock timeout.
pub(super) fn is_lock_timeout(error: &Error) -> bool {
    match error {
        Error::Database(sqlx::Error::Database(e)) => e.code().as_deref() == Some("55P03"),
        _ => false,
    }
}

/// The most locks one `SELECT` of [`lock_sql`] takes: PostgreSQL allows 1,664 columns a row.
const LOCKS_PER_SELECT: usize = 1_000;

/// The statements that take `mode`'s locks: simple protocol, no parameters (the keys are
/// integers computed here, inlined), so one round trip. The locks are the columns of one
/// `SELECT`, evaluated left to right, in ascending order: a batch of 64 invoices takes its 193
/// locks in one statement parsed and planned once, where a statement per lock cost PostgreSQL
/// about 10 ms a batch.
fn lock_sql(mode: &Mode<'_>) -> String {
    let mut sql = format!("SET LOCAL lock_timeout = '{PG_LOCK_TIMEOUT}'; ");
    match mode {
        Mode::Exclusive => sql.push_str(&format!("SELECT pg_advisory_xact_lock({LEDGER_LOCK})")),
        Mode::Scoped(scopes) | Mode::Batch(scopes) => {
            let brief = matches!(mode, Mode::Batch(_));
            if brief {
                sql = format!("SET LOCAL lock_timeout = '{BATCH_LOCK_WAIT}'; ");
            }
            // Each lock once, in ascending order, exclusive where any scope naming it is.
            let mut keys: Vec<((i32, i32), bool)> = scopes.iter().map(|s| (s.keys(), s.shared())).collect();
            keys.sort_unstable();
            keys.dedup_by_key(|(key, _)| *key);
            let mut locks = vec![format!("pg_advisory_xact_lock_shared({LEDGER_LOCK})")];
            locks.extend(keys.into_iter().map(|((class, hash), shared)| {
                let shared = if shared { "_shared" } else { "" };
                format!("pg_advisory_xact_lock{shared}({class}, {hash})")
            }));
            let selects: Vec<String> =
                locks.chunks(LOCKS_PER_SELECT).map(|chunk| format!("SELECT {}", chunk.join(", "))).collect();
            sql.push_str(&selects.join("; "));
            if brief {
                // The batch's reads are each a list of up to 64 keys. On a table that grew since
                // its statistics were taken (a new database, a burst of orders) PostgreSQL
                // estimates a third of the table matches such a list, and reads it all: 3 to 5 ms
                // a read at 20,000 invoices. Every read of a batch goes by a key's index.
                sql.push_str(&format!(
                    "; SET LOCAL lock_timeout = '{PG_LOCK_TIMEOUT}'; SET LOCAL enable_seqscan = off"
                ));
            }
        }
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_locks_are_taken_in_one_order_whatever_order_they_are_named_in() {
        let a = [Scope::Payment("P-1".into()), Scope::Key("k".into()), Scope::Invoice("INV-1".into())];
        let b = [Scope::Invoice("INV-1".into()), Scope::Payment("P-1".into()), Scope::Key("k".into())];
        assert_eq!(lock_sql(&Mode::Scoped(&a)), lock_sql(&Mode::Scoped(&b)));
        let sql = lock_sql(&Mode::Scoped(&a));
        let at = |class: i32| sql.find(&format!("({}, ", SCOPE_SPACE | class)).unwrap();
        assert!(sql.find("_shared(").unwrap() < at(1));
        assert!(at(1) < at(4) && at(4) < at(5), "{sql}");
    }

    #[test]
    fn scope_keys_are_stable_and_apart_by_class() {
        // FNV-1a of "C-001": a change here would make nodes of two builds lock apart.
        assert_eq!(
            Scope::Customer("C-001".into()).keys(),
            (0x436c_0003, i32::from_ne_bytes(0xb656_222cu32.to_ne_bytes()))
        );
        assert_ne!(Scope::Customer("X".into()).keys(), Scope::Order("X".into()).keys());
        assert!(lock_sql(&Mode::Exclusive).ends_with(&format!("pg_advisory_xact_lock({LEDGER_LOCK})")));
    }

    #[test]
    fn a_key_written_as_a_literal_reads_back_as_itself() {
        assert_eq!(literal("order~SO-1.call.3:notify:1"), "E'order~SO-1.call.3:notify:1'");
        assert_eq!(literal(r"it's a \ key"), r"E'it''s a \\ key'");
        assert_eq!(literal(""), "E''");
    }

    #[test]
    fn a_batch_takes_the_scopes_of_all_its_invoices_in_the_one_order_waiting_briefly() {
        // Two batches naming the same invoices' scopes in different orders lock alike: ascending
        // by class (every key, then every order, then every customer), so they cannot deadlock.
        let scopes = |order: &[usize]| -> Vec<Scope> {
            order
                .iter()
                .flat_map(|&n| {
                    [
                        Scope::CustomerShared(format!("C-{n}")),
                        Scope::Order(format!("SO-{n}")),
                        Scope::Key(format!("k-{n}")),
                    ]
                })
                .collect()
        };
        let (a, b) = (scopes(&[1, 2, 3]), scopes(&[3, 1, 2]));
        let sql = lock_sql(&Mode::Batch(&a));
        assert_eq!(sql, lock_sql(&Mode::Batch(&b)));
        // One statement takes them all, the ledger's lock shared first.
        assert_eq!(sql.matches("SELECT ").count(), 1, "{sql}");
        assert!(sql.contains(&format!("SELECT pg_advisory_xact_lock_shared({LEDGER_LOCK}), pg_advisory_xact_lock(")));
        let locks = taken(&sql);
        assert_eq!(locks.len(), 9, "{sql}");
        let classes: Vec<i32> = locks.iter().map(|&(_, class)| class).collect();
        assert!(classes.windows(2).all(|w| w[0] <= w[1]), "{sql}");
        // The keys and orders exclusive, the customers shared.
        assert!(locks.iter().all(|&(shared, class)| shared == (class == SCOPE_SPACE | 3)), "{sql}");
        assert!(sql.starts_with(&format!("SET LOCAL lock_timeout = '{BATCH_LOCK_WAIT}'")), "{sql}");
        assert!(
            sql.ends_with(&format!("SET LOCAL lock_timeout = '{PG_LOCK_TIMEOUT}'; SET LOCAL enable_seqscan = off")),
            "{sql}"
        );
    }

    /// The scope locks of `sql`, in the order taken: whether shared, and the class.
    fn taken(sql: &str) -> Vec<(bool, i32)> {
        sql.split("pg_advisory_xact_lock")
            .skip(2)
            .map(|s| {
                let shared = s.starts_with("_shared(");
                let class = s.trim_start_matches("_shared").trim_start_matches('(').split(',').next().unwrap();
                (shared, class.parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn a_customer_named_shared_is_locked_shared_unless_also_named_exclusive() {
        let customer = SCOPE_SPACE | 3;
        let shared = [Scope::Order("SO-1".into()), Scope::CustomerShared("C-1".into())];
        assert_eq!(taken(&lock_sql(&Mode::Scoped(&shared))), [(false, SCOPE_SPACE | 2), (true, customer)]);
        assert_eq!(Scope::CustomerShared("C-1".into()).keys(), Scope::Customer("C-1".into()).keys());
        let both = [Scope::CustomerShared("C-1".into()), Scope::Customer("C-1".into())];
        assert_eq!(taken(&lock_sql(&Mode::Batch(&both))), [(false, customer)]);
        let two = [Scope::CustomerShared("C-1".into()), Scope::CustomerShared("C-1".into())];
        assert_eq!(taken(&lock_sql(&Mode::Scoped(&two))), [(true, customer)]);
    }
}
