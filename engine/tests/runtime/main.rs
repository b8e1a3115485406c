//! The durable runtime on SQLite: each test gets its own database file and a virtual clock.

mod basics;
mod harness;
mod jobs;
mod messages;
mod tasks;
