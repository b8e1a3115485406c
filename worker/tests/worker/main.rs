//! The worker against a real engine and sub-ledger: each test gets its own SQLite file and a
//! virtual clock.

mod end_to_end;
mod handlers;
mod harness;
mod http;
mod runtime;
