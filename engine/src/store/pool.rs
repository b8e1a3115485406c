//! How the stores lend their database connections.
//!
//! sqlx pings a pooled connection (a round trip to the server) each time it lends it and each
//! time it takes it back. The ping on return cannot be turned off: it is how sqlx learns that a
//! connection it takes back is not stuck in the middle of an exchange (a future dropped while it
//! waited for an answer). A busy node sends a statement or a transaction hundreds of times a
//! second, so that ping doubles the round trips of every read. Two remedies here:
//!
//! - [`checked_when_idle`] keeps sqlx's pools but pings a connection before lending it only when
//!   it has been idle a while, as connection pools commonly do (the ping on lending only finds a
//!   connection that broke while idle: the server restarted, a proxy's idle timeout);
//! - [`Lender`], for the busiest paths, lends connections that come back without a ping. The
//!   borrower says when an exchange completed ([`Lent::release`]); a connection dropped without
//!   it is closed instead of reused, so no connection is lent in the middle of an exchange.

use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::pool::PoolOptions;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A pooled connection idle at least this long is pinged before it is lent.
pub const CHECK_IDLE_AFTER: Duration = Duration::from_millis(500);

/// A connection idle this long is closed rather than lent (sqlx's default idle timeout).
pub const CLOSE_IDLE_AFTER: Duration = Duration::from_secs(600);

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

/// What a [`Lender`] runs on each new connection before lending it (a `SET`, say).
pub type Setup<C> =
    Arc<dyn for<'c> Fn(&'c mut C) -> Pin<Box<dyn Future<Output = Result<(), sqlx::Error>> + Send + 'c>> + Send + Sync>;

/// Lends up to `max` connections of type `C`, connecting lazily (a connection belongs to the
/// runtime of the task that first borrowed it), checking one idle for [`CHECK_IDLE_AFTER`] or
/// longer with a ping, and taking one back without a ping when its borrower released it (see
/// the module docs). Cheap to clone.
pub struct Lender<C: Connection + 'static> {
    inner: Arc<Inner<C>>,
}

struct Inner<C: Connection + 'static> {
    /// Connections waiting to be lent, with the time each came back; the last back is lent
    /// first, so that the others can age out when fewer are needed.
    idle: Mutex<Vec<(C, Instant)>>,
    permits: Arc<Semaphore>,
    options: C::Options,
    setup: Option<Setup<C>>,
    /// How long a borrower waits for a connection (a free one, or a new one connected).
    wait: Duration,
    /// An idle connection older than this is pinged before it is lent ([`CHECK_IDLE_AFTER`]).
    check_after: Duration,
    /// An idle connection older than this is closed ([`CLOSE_IDLE_AFTER`]).
    close_after: Duration,
    closed: AtomicBool,
}

impl<C: Connection + 'static> Clone for Lender<C> {
    fn clone(&self) -> Self {
        Lender { inner: Arc::clone(&self.inner) }
    }
}

impl<C: Connection + 'static> std::fmt::Debug for Lender<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = self.inner.idle.lock().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("Lender")
            .field("idle", &idle)
            .field("free", &self.inner.permits.available_permits())
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl<C: Connection + 'static> Lender<C> {
    /// A lender of at most `max` connections made with `options`, each set up by `setup` once
    /// connected; a borrower waits at most `wait` for one.
    pub fn new(options: C::Options, max: usize, wait: Duration, setup: Option<Setup<C>>) -> Lender<C> {
        Lender {
            inner: Arc::new(Inner {
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(max.max(1))),
                options,
                setup,
                wait,
                check_after: CHECK_IDLE_AFTER,
                close_after: CLOSE_IDLE_AFTER,
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// A connection: an idle one (pinged first when idle a while), or a new one. Fails with
    /// [`sqlx::Error::PoolTimedOut`] when none could be had in time, with
    /// [`sqlx::Error::PoolClosed`] after [`Lender::close`].
    pub async fn lend(&self) -> Result<Lent<C>, sqlx::Error> {
        let inner = &self.inner;
        let deadline = tokio::time::Instant::now() + inner.wait;
        if inner.closed.load(Ordering::Acquire) {
            return Err(sqlx::Error::PoolClosed);
        }
        let permit = tokio::time::timeout_at(deadline, Arc::clone(&inner.permits).acquire_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        loop {
            let (idle, stale) = {
                let mut idle = inner.idle.lock().unwrap_or_else(PoisonError::into_inner);
                // The oldest are at the front: those idle too long are closed, though the last
                // back, lent first, would never reach them.
                let stale = idle.iter().take_while(|(_, since)| since.elapsed() >= inner.close_after).count();
                let stale: Vec<_> = idle.drain(..stale).collect();
                (idle.pop(), stale)
            };
            for (conn, _) in stale {
                close_in_background(conn);
            }
            let Some((mut conn, since)) = idle else { break };
            if since.elapsed() >= inner.check_after {
                match tokio::time::timeout_at(deadline, conn.ping()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "an idle connection failed its check; closing it");
                        continue;
                    }
                    Err(_) => return Err(sqlx::Error::PoolTimedOut),
                }
            }
            return Ok(Lent { conn: Some(conn), released: false, home: Arc::clone(inner), _permit: permit });
        }
        let connect = async {
            let mut conn = C::connect_with(&inner.options).await?;
            if let Some(setup) = &inner.setup {
                setup(&mut conn).await?;
            }
            Ok::<C, sqlx::Error>(conn)
        };
        let conn = tokio::time::timeout_at(deadline, connect).await.map_err(|_| sqlx::Error::PoolTimedOut)??;
        Ok(Lent { conn: Some(conn), released: false, home: Arc::clone(inner), _permit: permit })
    }

    /// How many connections wait to be lent.
    #[cfg(test)]
    fn idle(&self) -> usize {
        self.inner.idle.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// The options new connections are made with.
    pub fn options(&self) -> &C::Options {
        &self.inner.options
    }

    /// Whether [`Lender::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Closes the idle connections, and each lent one as it comes back; later borrowers fail.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.permits.close();
        let idle = std::mem::take(&mut *self.inner.idle.lock().unwrap_or_else(PoisonError::into_inner));
        for (conn, _) in idle {
            // Closing says goodbye to the server; a connection already broken has nothing to say.
            let _ = conn.close().await;
        }
    }
}

/// A connection lent by a [`Lender`]. It goes back to the lender when dropped after
/// [`Lent::release`]; dropped without, it is closed (its last exchange may be unfinished).
pub struct Lent<C: Connection + 'static> {
    conn: Option<C>,
    released: bool,
    home: Arc<Inner<C>>,
    /// Held until the connection is back (or closed), so that a borrower waiting for a permit
    /// finds it idle.
    _permit: OwnedSemaphorePermit,
}

impl<C: Connection + 'static> Lent<C> {
    /// Gives the connection back for reuse. Call it only when every exchange on it completed: a
    /// statement's answer read in full, a transaction committed or rolled back (a transaction
    /// dropped after a database error counts: its rollback is sent with the next exchange).
    pub fn release(mut self) {
        self.set_reusable();
    }

    /// Marks the connection fit for reuse (as [`Lent::release`] says when), so that it goes back
    /// to the lender when dropped.
    pub fn set_reusable(&mut self) {
        self.released = true;
    }
}

impl<C: Connection + 'static> Deref for Lent<C> {
    type Target = C;

    fn deref(&self) -> &C {
        self.conn.as_ref().expect("a lent connection is present until dropped")
    }
}

impl<C: Connection + 'static> DerefMut for Lent<C> {
    fn deref_mut(&mut self) -> &mut C {
        self.conn.as_mut().expect("a lent connection is present until dropped")
    }
}

impl<C: Connection + 'static> Drop for Lent<C> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if self.released && !self.home.closed.load(Ordering::Acquire) {
            self.home.idle.lock().unwrap_or_else(PoisonError::into_inner).push((conn, Instant::now()));
        } else {
            close_in_background(conn);
        }
    }
}

/// Closes `conn` on the current runtime if there is one (so the server hears a goodbye rather
/// than a dropped socket), or drops it.
fn close_in_background<C: Connection + 'static>(conn: C) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), conn.close()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
    use sqlx::{Executor as _, Row as _};

    fn lender(max: usize) -> Lender<SqliteConnection> {
        lender_closing_after(max, CLOSE_IDLE_AFTER)
    }

    /// A lender whose idle connections are closed after `close_after`.
    fn lender_closing_after(max: usize, close_after: Duration) -> Lender<SqliteConnection> {
        let setup: Setup<SqliteConnection> = Arc::new(|conn: &mut SqliteConnection| {
            Box::pin(async move {
                conn.execute("CREATE TEMP TABLE IF NOT EXISTS marks (n INTEGER)").await?;
                Ok(())
            })
        });
        let mut lender =
            Lender::new(SqliteConnectOptions::new().in_memory(true), max, Duration::from_secs(2), Some(setup));
        Arc::get_mut(&mut lender.inner).expect("a new lender is not shared").close_after = close_after;
        lender
    }

    /// Each in-memory SQLite connection is its own database: a mark left on one shows whether
    /// the next borrower got the same connection back.
    async fn marked(conn: &mut SqliteConnection) -> bool {
        sqlx::query("SELECT count(*) FROM marks").fetch_one(&mut *conn).await.unwrap().get::<i64, _>(0) > 0
    }

    #[tokio::test]
    async fn a_released_connection_is_lent_again_and_an_unreleased_one_is_not() {
        let lender = lender(1);
        let mut conn = lender.lend().await.unwrap();
        conn.execute("INSERT INTO marks VALUES (1)").await.unwrap();
        conn.release();
        let mut again = lender.lend().await.unwrap();
        assert!(marked(&mut again).await, "the released connection comes back");
        drop(again);
        let mut fresh = lender.lend().await.unwrap();
        assert!(!marked(&mut fresh).await, "a connection dropped without release is not reused");
    }

    #[tokio::test]
    async fn borrowers_wait_for_a_connection_then_time_out() {
        let lender = Lender::<SqliteConnection>::new(
            SqliteConnectOptions::new().in_memory(true),
            1,
            Duration::from_millis(50),
            None,
        );
        let held = lender.lend().await.unwrap();
        assert!(matches!(lender.lend().await, Err(sqlx::Error::PoolTimedOut)));
        held.release();
        lender.lend().await.expect("the released connection is free again");
    }

    /// Connections idle too long are closed, the oldest too, though the last one back is lent
    /// first. The test lets 50 ms pass to age them: the age it checks, not a race.
    #[tokio::test]
    async fn connections_idle_too_long_are_closed_oldest_first() {
        let lender = lender_closing_after(2, Duration::from_millis(50));
        let (old, mut recent) = (lender.lend().await.unwrap(), lender.lend().await.unwrap());
        old.release();
        tokio::time::sleep(Duration::from_millis(60)).await;
        recent.execute("INSERT INTO marks VALUES (1)").await.unwrap();
        recent.release();
        assert_eq!(lender.idle(), 2);
        let mut lent = lender.lend().await.unwrap();
        assert!(marked(&mut lent).await, "the recent one is lent");
        assert_eq!(lender.idle(), 0, "the old one, behind it, is closed");
        lent.release();
        tokio::time::sleep(Duration::from_millis(60)).await;
        let mut fresh = lender.lend().await.unwrap();
        assert!(!marked(&mut fresh).await, "once it too sat idle too long, a new connection is made");
    }

    #[tokio::test]
    async fn a_closed_lender_lends_nothing() {
        let lender = lender(2);
        lender.lend().await.unwrap().release();
        lender.close().await;
        assert!(matches!(lender.lend().await, Err(sqlx::Error::PoolClosed)));
    }
}
