//! The reference finance processes end to end on the in-memory engine and its virtual clock:
//! one module per process, handlers that compute what a worker would, no sleeps.

mod collect_then_reconcile;
#[path = "../common/mod.rs"]
mod common;
mod engine;
mod harness;
mod month_end_close;
mod order_approval;
mod order_to_cash;
mod replay;
mod ship_then_invoice;
