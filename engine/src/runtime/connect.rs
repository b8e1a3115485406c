//! Opening an engine by database URL.
