//! Runs a job's ledger operation once per idempotency key. Every operation that changes the
//! ledger runs in one transaction that also records its output under the job's idempotency key: a
//! second run with the same key changes nothing and returns the first run's output.

use super::db::literal;
use super::tx::LedgerTx;
use super::{Error, ts_text};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The output an earlier run recorded under `key` (as stored), decoded.
pub(super) fn replayed<T: DeserializeOwned>(stored: &str, key: &str) -> Result<T, Error> {
    serde_json::from_str(stored).map_err(|e| Error::Corrupt(format!("stored output of {key}: {e}")))
}

/// Records `output` under `key` in `tx`, and commits it. On PostgreSQL the record goes with the
/// `COMMIT`, in one round trip (its values written as literals; a key holding a NUL, which no
/// literal can carry, is bound as a parameter, and refused there).
pub(super) async fn remember_and_commit<T: Serialize>(
    mut tx: LedgerTx,
    key: &str,
    job_type: &str,
    output: &T,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let text = serde_json::to_string(output).map_err(|e| Error::Corrupt(e.to_string()))?;
    let created = ts_text(now);
    if tx.is_postgres() && ![key, job_type, &text].iter().any(|v| v.contains('\0')) {
        let insert = format!(
            "INSERT INTO idempotency_keys (key, job_type, output, created_at) VALUES ({}, {}, {}, {})",
            literal(key),
            literal(job_type),
            literal(&text),
            literal(&created)
        );
        return tx.commit_after(&insert).await;
    }
    sqlx::query("INSERT INTO idempotency_keys (key, job_type, output, created_at) VALUES ($1, $2, $3, $4)")
        .bind(key)
        .bind(job_type)
        .bind(text)
        .bind(created)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Runs `$body` (an expression using `$conn`) once per idempotency key, in one transaction. The
/// helpers are named by full path so that the operations need not import them.
///
/// With `scoped: SCOPES` (a `Vec<Scope>`), the transaction locks the key and those scopes (see
/// [`Scope`](super::Scope)); without, it has the whole ledger to itself.
macro_rules! once {
    ($self:ident, $key:expr, $job_type:expr, $now:expr, |$conn:ident| $body:expr) => {{
        let (mut tx, stored) = $self.begin_once($key).await?;
        $crate::ledger::idempotency::once!(@run tx, stored, $key, $job_type, $now, |$conn| $body)
    }};
    ($self:ident, $key:expr, $job_type:expr, $now:expr, scoped: $scopes:expr, |$conn:ident| $body:expr) => {{
        let key_scope = $crate::ledger::Scope::Key($key.to_string());
        let scopes: ::std::vec::Vec<$crate::ledger::Scope> =
            ::std::iter::once(key_scope).chain(::std::iter::IntoIterator::into_iter($scopes)).collect();
        let (mut tx, stored) = $self.begin_scoped_once(&scopes, $key).await?;
        $crate::ledger::idempotency::once!(@run tx, stored, $key, $job_type, $now, |$conn| $body)
    }};
    (@run $tx:ident, $stored:ident, $key:expr, $job_type:expr, $now:expr, |$conn:ident| $body:expr) => {{
        // Ended by a `ROLLBACK` where nothing is to be kept, so that the connection goes back to
        // the pool (a transaction merely dropped closes it).
        if let Some(stored) = $stored {
            $tx.rollback().await?;
            return $crate::ledger::idempotency::replayed(&stored, $key);
        }
        let run = async {
            let $conn: &mut ::sqlx::AnyConnection = &mut $tx;
            Ok::<_, $crate::ledger::Error>($body)
        }
        .await;
        match run {
            Ok(output) => {
                $crate::ledger::idempotency::remember_and_commit($tx, $key, $job_type, &output, $now).await?;
                Ok(output)
            }
            Err(error) => {
                // A connection that cannot roll back is closed when the transaction drops.
                let _ = $tx.rollback().await;
                Err(error)
            }
        }
    }};
}

pub(super) use once;
