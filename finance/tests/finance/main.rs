//! The worker runtime and the finance handlers against a real engine and sub-ledger: each test gets its own database and a
//! virtual clock. `CLOVERLEAF_TEST_BACKEND=postgres` runs them on PostgreSQL (a database per
//! test, see `cloverleaf_testkit::testdb`); the default is a SQLite file per test.

mod aging;
mod budgets;
mod concurrency;
mod connect;
mod end_to_end;
mod handlers;
mod harness;
mod http;
mod kpi_scale;
mod kpis;
mod letters;
mod locks;
mod runtime;
mod series;
mod stock;
mod zone;
