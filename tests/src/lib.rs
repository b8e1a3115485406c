//! Cross-crate integration tests and fixtures of Cloverleaf. The tests live in `tests/tests/`.
