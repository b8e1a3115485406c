//! SQLite's WAL checkpoints, mostly off the writer's path.
//!
//! In WAL mode a commit appends pages to the `-wal` file; a checkpoint copies them into the
//! database file and syncs it. SQLite runs one inside the commit that takes the log past 1,000
//! frames, on the writer's own connection, so the writer copies and syncs while every step
//! queued behind it waits. On a database of 4 GB those pages lie all over the file: with
//! 1,000,000 completed instances in it the engine bench ran 6,165-9,031 straight-through
//! instances a second, and 8,853-12,156 with the copying done here (README, *WAL checkpoints off
//! the writer's path*).
//!
//! A [`Checkpointer`] copies committed frames on a connection of its own soon after each commit
//! (a passive checkpoint: it never waits for and never blocks the writer or a reader). The
//! writer keeps its automatic checkpoint, which then finds nearly every frame copied and
//! synced already: it is what lets the log start over from its beginning, which a checkpoint
//! racing the writer can seldom do, so the `-wal` file stays as small as before.

use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use tokio::sync::Notify;

/// Least time between two checkpoints: each one syncs the database file, which competes with
/// the writer's commits for the disk, and a longer run copies a page written many times once.
const PAUSE: Duration = Duration::from_millis(20);

/// How long a checkpointer with nothing to do waits before it looks whether its store is gone.
const IDLE: Duration = Duration::from_secs(1);

/// Copies committed WAL frames into the database file in the background. Cheap to clone.
#[derive(Debug, Clone)]
pub(super) struct Checkpointer {
    pool: SqlitePool,
    wake: Arc<Notify>,
}

impl Checkpointer {
    /// Opens the checkpointer's connection (read-write: a checkpoint writes the database file)
    /// and starts its task, which ends when [`close`](Self::close) is called or the last clone is
    /// dropped.
    pub(super) async fn start(options: SqliteConnectOptions) -> Result<Checkpointer, sqlx::Error> {
        let pool = SqlitePoolOptions::new().max_connections(1).min_connections(1).connect_with(options).await?;
        let wake = Arc::new(Notify::new());
        tokio::spawn(run(pool.clone(), Arc::downgrade(&wake)));
        Ok(Checkpointer { pool, wake })
    }

    /// The writer committed: there are frames to copy. A commit during a checkpoint or its pause
    /// is remembered, so the next one follows.
    pub(super) fn committed(&self) {
        self.wake.notify_one();
    }

    /// Stops the task and closes its connection.
    pub(super) async fn close(&self) {
        self.pool.close().await;
    }
}

async fn run(pool: SqlitePool, wake: Weak<Notify>) {
    while let Some(notify) = wake.upgrade() {
        let woken = tokio::time::timeout(IDLE, notify.notified()).await.is_ok();
        drop(notify);
        if pool.is_closed() {
            break;
        }
        if !woken {
            continue;
        }
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
            if pool.is_closed() {
                break;
            }
            // Nothing is lost: the writer's own checkpoints still copy every frame.
            tracing::warn!(%error, "background checkpoint failed");
        }
        tokio::time::sleep(PAUSE).await;
    }
    pool.close().await;
}
