//! The Cloverleaf worker runtime: executes the automated steps (jobs) of running processes.
//!
//! Not built yet: this crate only reserves its place in the workspace.
