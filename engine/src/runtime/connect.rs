//! Opening an engine by database URL.

use std::sync::{Arc, PoisonError, Weak};
use std::time::Duration;

use crate::clock::Clock;
use crate::store::AnyStore;
use crate::store::postgres::Wakeups;

use super::{Engine, EngineOptions, Error, Inner};

/// How often a wake-up forwarder checks that its engine still exists while nothing is notified.
const ALIVE_CHECK: Duration = Duration::from_secs(5);

impl Engine<AnyStore> {
    /// Opens the store `url` names (`sqlite://PATH`, a file path, or `postgres://...`), applies
    /// its migrations, then recovers like [`Engine::open`]: owed events are applied and overdue
    /// timers fire. On PostgreSQL the engine also listens to the other nodes on the database:
    /// their new jobs wake this engine's workers ([`Engine::job_signal`]) and their new timers
    /// its scheduler ([`Scheduler`](super::Scheduler)) without waiting for the next poll, and
    /// their deployments make it read the latest process versions again. On PostgreSQL the
    /// writer lingers [`POSTGRES_WRITE_LINGER`](super::POSTGRES_WRITE_LINGER) for company (see
    /// [`Engine::set_write_linger`]).
    pub async fn connect(url: &str, clock: Arc<dyn Clock>) -> Result<Engine<AnyStore>, Error> {
        let store = AnyStore::connect(url).await?;
        let wakeups = store.listen().await?;
        // The default batch size is the one `EngineOptions` gives.
        let max_batch = EngineOptions::new("", Arc::clone(&clock)).max_batch;
        let postgres = matches!(store, AnyStore::Postgres(_));
        let engine = Engine::with_store(store, clock, max_batch);
        if postgres {
            engine.set_write_linger(super::POSTGRES_WRITE_LINGER);
        }
        if let Some(wakeups) = wakeups {
            forward(Arc::downgrade(&engine.inner), wakeups);
        }
        engine.recover().await?;
        Ok(engine)
    }

    /// Opens the store like [`Engine::connect`] for a one-off operator command (`migrate`,
    /// `modify` on a database): owed events are applied, but no timer fires and no cron start
    /// runs, which stay the work of the scheduler of whichever server runs the processes.
    pub async fn connect_to_operate(url: &str, clock: Arc<dyn Clock>) -> Result<Engine<AnyStore>, Error> {
        let store = AnyStore::connect(url).await?;
        let max_batch = EngineOptions::new("", Arc::clone(&clock)).max_batch;
        let engine = Engine::with_store(store, clock, max_batch);
        engine.apply_owed_events().await?;
        Ok(engine)
    }
}

/// Passes other nodes' notifications to the engine's own signals until the engine is dropped
/// (then the receivers go, and the listener closes its connection).
fn forward(engine: Weak<Inner<AnyStore>>, wakeups: Wakeups) {
    if let Some(inner) = engine.upgrade() {
        inner.latest.write().unwrap_or_else(PoisonError::into_inner).listen();
    }
    let (mut jobs, mut timers, mut deployments) = (wakeups.jobs(), wakeups.timers(), wakeups.deployments());
    drop(wakeups);
    tokio::spawn(async move {
        loop {
            let wake = tokio::select! {
                changed = jobs.changed() => changed.map(|()| Wake::Jobs),
                changed = timers.changed() => changed.map(|()| Wake::Timers),
                changed = deployments.changed() => changed.map(|()| Wake::Deployments),
                () = tokio::time::sleep(ALIVE_CHECK) => {
                    if engine.strong_count() == 0 {
                        break;
                    }
                    continue;
                }
            };
            let Ok(wake) = wake else { break };
            let Some(inner) = engine.upgrade() else { break };
            match wake {
                Wake::Jobs => inner.jobs_ready.send_modify(|n| *n = n.wrapping_add(1)),
                Wake::Timers => inner.wake.notify_one(),
                Wake::Deployments => inner.latest.write().unwrap_or_else(PoisonError::into_inner).forget(),
            }
        }
    });
}

/// What another node's notification is about.
enum Wake {
    /// Jobs created or readied: this engine's workers look.
    Jobs,
    /// Timers or cron starts created or moved: this engine's scheduler looks.
    Timers,
    /// A process version deployed: this engine reads the latest versions again.
    Deployments,
}
