//! Cross-crate tests of Cloverleaf: the order-to-cash story across the language, the durable
//! engine, the workers, the sub-ledger and the alert rules (`tests/order_to_cash_story.rs`).
//! Tests of one crate live in that crate; helpers shared by the tests are in `testkit/`.
