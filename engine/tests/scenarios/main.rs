//! The reference finance processes end to end, each scenario twice: on the in-memory engine and on
//! the durable runtime (a fresh database per scenario, `CLOVERLEAF_TEST_BACKEND` picks SQLite or
//! PostgreSQL), both on a virtual clock, with handlers that compute what a worker would, no
//! sleeps. One module per process.

/// Declares each scenario once and runs it on both drivers: `name::in_memory` and
/// `name::durable`.
macro_rules! scenarios {
    ($($(#[doc = $doc:literal])* fn $name:ident() $body:block)*) => {
        $(
            $(#[doc = $doc])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                fn scenario() $body

                #[test]
                fn in_memory() {
                    crate::sim::run_on(crate::sim::Driver::Memory, scenario);
                }

                #[test]
                fn durable() {
                    crate::sim::run_on(crate::sim::Driver::Durable, scenario);
                }
            }
        )*
    };
}

mod collect_then_reconcile;
#[path = "../common/mod.rs"]
mod common;
mod durable;
mod engine;
mod harness;
mod month_end_close;
mod order_approval;
mod order_to_cash;
mod replay;
mod ship_then_invoice;
mod sim;
