//! Runs a job's ledger operation once per idempotency key. Every operation that changes the
//! ledger runs in one transaction that also records its output under the job's idempotency key: a
//! second run with the same key changes nothing and returns the first run's output.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::AnyConnection;

use super::{Error, ts_text};

/// The output an earlier run recorded under `key` (as stored), decoded.
pub(super) fn replayed<T: DeserializeOwned>(stored: &str, key: &str) -> Result<T, Error> {
    serde_json::from_str(stored).map_err(|e| Error::Corrupt(format!("stored output of {key}: {e}")))
}

/// Records `output` under `key`, in the caller's transaction.
pub(super) async fn remember<T: Serialize>(
    conn: &mut AnyConnection,
    key: &str,
    job_type: &str,
    output: &T,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let text = serde_json::to_string(output).map_err(|e| Error::Corrupt(e.to_string()))?;
    sqlx::query("INSERT INTO idempotency_keys (key, job_type, output, created_at) VALUES ($1, $2, $3, $4)")
        .bind(key)
        .bind(job_type)
        .bind(text)
        .bind(ts_text(now))
        .execute(conn)
        .await?;
    Ok(())
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
        if let Some(stored) = $stored {
            return $crate::ledger::idempotency::replayed(&stored, $key);
        }
        let $conn: &mut ::sqlx::AnyConnection = &mut $tx;
        let output = $body;
        $crate::ledger::idempotency::remember(&mut $tx, $key, $job_type, &output, $now).await?;
        $tx.commit().await?;
        Ok(output)
    }};
}

pub(super) use once;
