//! A ledger write transaction on a lent connection, begun with its locks (and, for an
//! operation run once per idempotency key, the read of that key) in the round trip that begins
//! it, and on PostgreSQL committed with its last statement (the key's record) in one more.
//!
//! sqlx's own transaction cannot carry statements after its `BEGIN`: when one of them fails (a
//! batch's lock wait running out, by design) it rolls nothing back, since on its side the
//! transaction never began, and the connection goes back to the pool inside an aborted
//! transaction, refusing every later statement. Here a transaction not ended by a successful
//! `COMMIT` or `ROLLBACK` (a failed begin, an error on the way, a future dropped midway) closes its
//! connection instead of returning it to the lender, and the server rolls the transaction back.

use std::ops::{Deref, DerefMut};

use cloverleaf_engine::store::pool::{Lender, Lent};
use sqlx::{AnyConnection, Executor};

use super::Error;
use super::db::Backend;

/// An open ledger write transaction (see the module docs). Reads and writes go through it as an
/// `AnyConnection`.
pub struct LedgerTx {
    /// Marked reusable only once `COMMIT` or `ROLLBACK` succeeded: closed when dropped before.
    conn: Lent<AnyConnection>,
    /// Where it runs: PostgreSQL's simple protocol runs several statements in one round trip.
    backend: Backend,
}

impl std::fmt::Debug for LedgerTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerTx").field("backend", &self.backend).finish_non_exhaustive()
    }
}

impl LedgerTx {
    /// Begins a transaction on a connection of `pool` with `begin`, one or more statements sent
    /// in one round trip (simple protocol: no parameters), the first of which begins it; the
    /// rows of any statement of them that returns some.
    pub(super) async fn begin(
        writes: &Lender<AnyConnection>,
        backend: Backend,
        begin: &str,
    ) -> Result<(LedgerTx, Vec<sqlx::any::AnyRow>), Error> {
        // Not reusable from before the statements are sent: should they fail or be abandoned
        // midway, the connection is closed, not lent again.
        let mut tx = LedgerTx { conn: writes.lend().await?, backend };
        let rows = (&mut *tx.conn).fetch_all(begin).await?;
        Ok((tx, rows))
    }

    /// Whether the transaction is on PostgreSQL.
    pub(super) fn is_postgres(&self) -> bool {
        self.backend == Backend::Postgres
    }

    /// Commits the transaction.
    pub async fn commit(mut self) -> Result<(), Error> {
        (&mut *self.conn).execute("COMMIT").await?;
        self.conn.set_reusable();
        Ok(())
    }

    /// Runs `last` (statements without parameters), then commits, in one round trip on
    /// PostgreSQL. Should `last` fail, nothing after it runs and the transaction is rolled back.
    pub(super) async fn commit_after(mut self, last: &str) -> Result<(), Error> {
        if self.is_postgres() {
            (&mut *self.conn).execute(format!("{last}; COMMIT").as_str()).await?;
            self.conn.set_reusable();
            return Ok(());
        }
        (&mut *self.conn).execute(last).await?;
        self.commit().await
    }

    /// Rolls the transaction back.
    pub async fn rollback(mut self) -> Result<(), Error> {
        (&mut *self.conn).execute("ROLLBACK").await?;
        self.conn.set_reusable();
        Ok(())
    }
}

impl Deref for LedgerTx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.conn
    }
}

impl DerefMut for LedgerTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}
