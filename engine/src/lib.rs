//! The Cloverleaf engine: runs compiled processes durably (instances, tokens, timers,
//! messages, human tasks, jobs, history).
//!
//! Not built yet: this crate only reserves its place in the workspace. The compiled process
//! model it will run is `cloverleaf_dsl::model`.
