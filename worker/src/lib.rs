//! The Cloverleaf worker: executes the automated steps (jobs) of running processes.
//!
//! Three parts:
//! - [`source`]: the [`JobSource`] trait (fetch and lock with a long poll, complete, fail, raise a
//!   business error, extend or release a lock, the source's clock), implemented here for the
//!   in-process [`cloverleaf_engine::Engine`] and elsewhere over HTTP;
//! - [`runtime`]: the [`Worker`], which runs registered [`Handlers`] concurrently up to a limit,
//!   extends the leases of long jobs, reports every outcome under the job's lock epoch and stops
//!   cleanly (jobs in flight finish or are released);
//! - [`http`]: a generic handler that hands a job to an ERP endpoint.
//!
//! The reference finance handlers are in the `cloverleaf-finance` crate; any others register the
//! same way.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use cloverleaf_engine::SystemClock;
//! use cloverleaf_engine::runtime::Engine;
//! use cloverleaf_worker::{HandlerError, Handlers, Worker, WorkerOptions};
//!
//! let engine = Engine::connect("cloverleaf.db", Arc::new(SystemClock)).await?;
//! let mut handlers = Handlers::new();
//! handlers.register("erp.export", |_job: cloverleaf_worker::JobContext| async move {
//!     Err::<serde_json::Value, _>(HandlerError::failure("the ERP is offline"))
//! });
//! let worker = Worker::new(engine.clone(), handlers, WorkerOptions::new("in-process"));
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let running = tokio::spawn(worker.run(async { let _ = stopped.await; }));
//! // ... start instances ...
//! let _ = stop.send(());
//! running.await??;
//! # Ok(()) }
//! ```
//!
//! Architecture Invariant: handlers take "today" from the job source's clock ([`JobContext::now`]),
//! never from the machine, so processes on a virtual clock post on virtual dates.

#![warn(missing_docs)]

pub mod handler;
pub mod http;
pub mod runtime;
pub mod source;

pub use handler::{Handler, HandlerError, HandlerResult, Handlers, JobContext, topic_matches};
pub use http::{Endpoint, HttpHandler};
pub use runtime::{DEFAULT_LEASE, Worker, WorkerHandle, WorkerOptions, WorkerStats};
pub use source::{FetchRequest, Job, JobSource, SourceError};
