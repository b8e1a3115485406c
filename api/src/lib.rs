//! The `cloverleaf` server: the HTTP API with the task inbox ([`server`]), the pages people use
//! ([`web`]), and the audit of the
//! tamper-evident history ([`audit`]). The `cloverleaf` binary is a thin command line over it.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use cloverleaf::server::{AppState, app, config};
//! use cloverleaf_engine::SystemClock;
//! use cloverleaf_engine::runtime::Engine;
//!
//! // sqlite://FILE, a file path, or postgres://USER@HOST/NAME
//! let engine = Engine::connect("sqlite://cloverleaf.db", Arc::new(SystemClock)).await?;
//! let users = config::load(std::path::Path::new("cloverleaf.toml"))?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app(AppState::new(engine, users))).await?;
//! # Ok(()) }
//! ```

pub mod audit;
pub mod demo;
pub mod remote;
pub mod server;
pub mod web;
