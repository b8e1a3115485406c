//! How the stores' connection pools check a connection before lending it.
//!
//! sqlx pings a pooled connection (a round trip to the server) each time it lends it and each
//! time it takes it back. The ping on return cannot be turned off, and it already finds a
//! connection that broke while in use; the ping on lending only finds one that broke while idle
//! (the server restarted, a proxy's idle timeout). A busy node lends connections hundreds of
//! times a second, each idle for microseconds, so the check on lending is kept for connections
//! idle a while, as connection pools commonly do.

use std::time::Duration;

use sqlx::Connection as _;
use sqlx::pool::PoolOptions;

/// A pooled connection idle at least this long is pinged before it is lent.
pub const CHECK_IDLE_AFTER: Duration = Duration::from_millis(500);

/// `options`, checking a connection before lending it only when it has been idle for
/// [`CHECK_IDLE_AFTER`] or longer. A connection that fails the check is closed and another one
/// lent, as sqlx does with its own check.
pub fn checked_when_idle<DB: sqlx::Database>(options: PoolOptions<DB>) -> PoolOptions<DB> {
    options.test_before_acquire(false).before_acquire(|conn, meta| {
        Box::pin(async move {
            if meta.idle_for >= CHECK_IDLE_AFTER {
                conn.ping().await?;
            }
            Ok(true)
        })
    })
}
