//! The Cloverleaf worker: executes the automated steps (jobs) of running processes.
//!
//! Four parts:
//! - [`source`]: the [`JobSource`] trait (fetch and lock with a long poll, complete, fail, raise a
//!   business error, extend or release a lock, the source's clock), implemented here for the
//!   in-process [`cloverleaf_engine::Engine`] and elsewhere over HTTP;
//! - [`runtime`]: the [`Worker`], which runs registered [`Handlers`] concurrently up to a limit,
//!   extends the leases of long jobs, reports every outcome under the job's lock epoch and stops
//!   cleanly (jobs in flight finish or are released);
//! - [`ledger`] and [`finance`]: the reference finance sub-ledger in the engine's database (a
//!   SQLite file, or a PostgreSQL database shared by several nodes) and the built-in handlers of
//!   every job type the reference processes use;
//! - [`http`]: a generic handler that hands a job to an ERP endpoint.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use cloverleaf_engine::SystemClock;
//! use cloverleaf_engine::runtime::Engine;
//! use cloverleaf_worker::{Ledger, Worker, WorkerOptions, finance};
//!
//! // A file path or sqlite://PATH for one node; postgres://... for several sharing a database.
//! let url = "cloverleaf.db";
//! let engine = Engine::connect(url, Arc::new(SystemClock)).await?;
//! let ledger = Ledger::connect(url).await?;
//! ledger.seed_demo_company(engine.now().date_naive()).await?;
//! let worker = Worker::new(engine.clone(), finance::handlers(&ledger), WorkerOptions::new("in-process"));
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let running = tokio::spawn(worker.run(async { let _ = stopped.await; }));
//! // ... start instances ...
//! let _ = stop.send(());
//! running.await??;
//! # Ok(()) }
//! ```
//!
//! Architecture Invariant: handlers take "today" from the job source's clock ([`JobContext::now`]),
//! never from the machine, so processes on a virtual clock post on virtual dates. Every handler
//! that changes the ledger records its output under the job's idempotency key in the same
//! transaction, so a job run twice (its first worker died after posting) posts once.

#![warn(missing_docs)]

pub mod finance;
pub mod handler;
pub mod http;
pub mod ledger;
pub mod runtime;
pub mod source;

pub use handler::{Handler, HandlerError, HandlerResult, Handlers, JobContext, topic_matches};
pub use http::{Endpoint, HttpHandler};
pub use ledger::{Ledger, LedgerKpis};
pub use runtime::{Worker, WorkerHandle, WorkerOptions, WorkerStats};
pub use source::{FetchRequest, Job, JobSource, SourceError};
