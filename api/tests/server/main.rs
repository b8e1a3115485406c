//! The HTTP API through its router (`oneshot`, no socket), one area per module, and once over
//! a real socket end to end. Each test has its own SQLite file and a virtual clock.

mod access;
mod aging_letters;
mod archive;
mod auth;
mod away;
mod case_calls;
mod case_history;
mod definitions;
mod e2e;
mod email;
mod finance_pages;
mod harness;
mod incidents;
mod instances;
mod jobs;
mod letters;
mod messages;
mod migrations;
mod modifications;
mod notify;
mod ops;
mod page_errors;
mod pages_zh;
mod paging;
mod serve;
mod spreadsheets;
mod tasks;
mod web;
