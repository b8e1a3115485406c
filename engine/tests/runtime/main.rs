//! The durable runtime on SQLite: each test gets its own database file and a virtual clock.

mod archive;
mod basics;
mod calendars;
mod calls;
#[path = "../common/mod.rs"]
mod common;
mod harness;
mod history_entries;
mod jobs;
mod messages;
mod migrate;
mod notices;
mod people;
mod queries;
mod scenarios;
mod scheduler;
mod starts;
mod tasks;
mod timer_rows;
mod twins;
