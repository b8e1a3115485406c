//! `cloverleaf worker` and its [`cloverleaf::remote::RemoteSource`] against a real server on a
//! socket: the source's calls and the errors they map to, a worker driving the reference
//! processes from outside the server, and the binary as a user starts and stops it.

#[allow(dead_code)]
#[path = "../server/harness.rs"]
mod harness;

mod archive;
mod cli;
mod e2e;
mod migrate;
mod server;
mod source;
