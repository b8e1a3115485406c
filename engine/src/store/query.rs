//! Read-only SQL queries of the SQLite store (listings and reports).
