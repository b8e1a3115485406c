//! Read-only queries of the runtime for operators and the HTTP API.
