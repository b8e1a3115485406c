//! The scheduler: fires due timers and cron starts, then sleeps until the next one is due.
//!
//! Shape, like the worker runtime's: [`SchedulerOptions`] in, [`Scheduler::run`] until a shutdown
//! future completes, a cheap [`SchedulerHandle`] out (counters, wake-up, `wait_until`).
//!
//! Each pass is a [`Engine::recover`]: owed events are applied, due timers fire
//! ([`Engine::fire_due_timers`]) and due cron starts start their instances
//! ([`Engine::fire_due_schedules`]). Between passes it sleeps until the next due timer or cron
//! start, within [`SchedulerOptions::min_wait`] and [`SchedulerOptions::max_wait`]; a step that
//! schedules a timer, another node's new timer (PostgreSQL), a virtual clock's jump or
//! [`SchedulerHandle::wake`] ends the sleep early.
//!
//! ```no_run
//! # async fn demo(engine: cloverleaf_engine::runtime::Engine) -> Result<(), cloverleaf_engine::runtime::Error> {
//! use cloverleaf_engine::runtime::{Scheduler, SchedulerOptions};
//!
//! let scheduler = Scheduler::new(engine, SchedulerOptions::default());
//! let handle = scheduler.handle();
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let running = tokio::spawn(scheduler.run(async {
//!     let _ = stopped.await;
//! }));
//! handle.wait_until(|s| s.passes >= 1).await;
//! let _ = stop.send(());
//! running.await.expect("the scheduler task")?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::store::Store;

use super::{Engine, Error};

/// How a scheduler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerOptions {
    /// Longest sleep between two passes, even when nothing is due: it bounds how late a timer is
    /// seen that nothing announced (written by another node on SQLite, or while a notification
    /// was lost).
    pub max_wait: Duration,
    /// Shortest sleep between two passes. What is still due right after a pass was refused (the
    /// core refuses the timer and it stays due): the scheduler looks again after this pause
    /// rather than spin. When it exceeds `max_wait`, `max_wait` wins.
    pub min_wait: Duration,
}

impl Default for SchedulerOptions {
    /// Defaults: sleeps of 1 s to 60 s.
    fn default() -> SchedulerOptions {
        SchedulerOptions { max_wait: Duration::from_secs(60), min_wait: Duration::from_secs(1) }
    }
}

/// What a scheduler has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedulerStats {
    /// Timers fired (accepted by their instances; refused ones are logged, not counted).
    pub timers_fired: u64,
    /// Instances started by cron schedules.
    pub cron_starts: u64,
    /// Passes completed: each applies owed events and fires whatever is due.
    pub passes: u64,
}

#[derive(Default)]
struct Shared {
    timers_fired: AtomicU64,
    cron_starts: AtomicU64,
    passes: AtomicU64,
    /// Woken after every pass, for [`SchedulerHandle::wait_until`].
    progress: Notify,
    /// Ends the scheduler's sleep, for [`SchedulerHandle::wake`].
    wake: Notify,
}

impl Shared {
    fn snapshot(&self) -> SchedulerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SchedulerStats {
            timers_fired: get(&self.timers_fired),
            cron_starts: get(&self.cron_starts),
            passes: get(&self.passes),
        }
    }
}

/// A cheap-to-clone handle on a scheduler: counters and a wake-up.
#[derive(Clone)]
pub struct SchedulerHandle {
    shared: Arc<Shared>,
}

impl SchedulerHandle {
    /// What the scheduler has done so far.
    pub fn stats(&self) -> SchedulerStats {
        self.shared.snapshot()
    }

    /// Ends the scheduler's current sleep: it makes a pass at once.
    pub fn wake(&self) {
        self.shared.wake.notify_one();
    }

    /// Waits until the counters satisfy `done` (say, `|s| s.timers_fired >= 3`). It has no
    /// deadline of its own: bound it with `tokio::time::timeout` where one is needed.
    pub async fn wait_until(&self, done: impl Fn(&SchedulerStats) -> bool) -> SchedulerStats {
        loop {
            let notified = self.shared.progress.notified();
            tokio::pin!(notified);
            // Registered before the check, so a pass ending between the check and the wait still
            // wakes.
            notified.as_mut().enable();
            let stats = self.stats();
            if done(&stats) {
                return stats;
            }
            notified.await;
        }
    }
}

/// Fires an engine's timers and cron starts as they fall due.
pub struct Scheduler<S: Store> {
    engine: Engine<S>,
    options: SchedulerOptions,
    shared: Arc<Shared>,
}

impl<S: Store> Scheduler<S> {
    /// A scheduler for `engine`.
    pub fn new(engine: Engine<S>, options: SchedulerOptions) -> Scheduler<S> {
        Scheduler { engine, options, shared: Arc::new(Shared::default()) }
    }

    /// A handle that outlives [`Scheduler::run`].
    pub fn handle(&self) -> SchedulerHandle {
        SchedulerHandle { shared: Arc::clone(&self.shared) }
    }

    /// Makes passes until `shutdown` completes; an error of a pass ends the run.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let Scheduler { engine, options, shared } = self;
        tokio::pin!(shutdown);
        let mut jumps = engine.inner.clock.jumps();
        loop {
            let recovered = engine.recover_counted().await?;
            shared.timers_fired.fetch_add(recovered.timers_fired as u64, Ordering::Relaxed);
            shared.cron_starts.fetch_add(recovered.instances_started as u64, Ordering::Relaxed);
            shared.passes.fetch_add(1, Ordering::Relaxed);
            shared.progress.notify_waiters();
            let timer = engine.inner.store.next_timer().await?;
            let schedule = engine.inner.store.next_schedule().await?;
            let next = [timer, schedule].into_iter().flatten().min();
            // Whatever is still due right after the pass was refused (a timer the core keeps
            // refusing is logged each time): the floor makes the next look come later, not at once.
            let wait = next
                .map(|at| (at - engine.now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(options.max_wait)
                .max(options.min_wait)
                .min(options.max_wait);
            let jumped = async {
                match jumps.as_mut() {
                    Some(receiver) => {
                        if receiver.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = tokio::time::sleep(wait) => {}
                () = engine.inner.wake.notified() => {}
                () = shared.wake.notified() => {}
                () = jumped => {}
            }
        }
    }
}

impl<S: Store> Engine<S> {
    /// Runs a [`Scheduler`] with the default [`SchedulerOptions`] until `shutdown` completes: a
    /// convenience for callers that need no handle on it.
    pub async fn run_scheduler(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        Scheduler::new(self, SchedulerOptions::default()).run(shutdown).await
    }
}
