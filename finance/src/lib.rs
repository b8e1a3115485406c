//! The reference finance sub-ledger of Cloverleaf and the built-in handlers of every job type the
//! reference processes use.
//!
//! - [`ledger`]: customers, orders, invoices, payments, a double-entry journal, periods, the
//!   indicator catalogue and alerts, in the engine's database (a SQLite file, or a PostgreSQL
//!   database shared by several nodes);
//! - [`jobs`]: the handlers, registered on a generic [`cloverleaf_worker::Worker`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use cloverleaf_engine::SystemClock;
//! use cloverleaf_engine::runtime::Engine;
//! use cloverleaf_finance::Ledger;
//! use cloverleaf_worker::{Worker, WorkerOptions};
//!
//! // A file path or sqlite://PATH for one node; postgres://... for several sharing a database.
//! let url = "cloverleaf.db";
//! let engine = Engine::connect(url, Arc::new(SystemClock)).await?;
//! let ledger = Ledger::connect(url).await?;
//! ledger.seed_demo_company(ledger.book_date(engine.now()).await?).await?;
//! let worker = Worker::new(engine.clone(), cloverleaf_finance::handlers(&ledger), WorkerOptions::new("in-process"));
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let running = tokio::spawn(worker.run(async { let _ = stopped.await; }));
//! // ... start instances ...
//! let _ = stop.send(());
//! running.await??;
//! # Ok(()) }
//! ```
//!
//! Architecture Invariant: every handler that changes the ledger records its output under the
//! job's idempotency key in the same transaction, so a job run twice (its first worker died after
//! posting) posts once; and it takes "today" from the job's context, never from the machine.

#![warn(missing_docs)]

pub mod jobs;
pub mod ledger;

pub use jobs::{JOB_TYPES, handlers};
pub use ledger::{BudgetLine, Error, Held, Ledger, LedgerKpis, Scope};
