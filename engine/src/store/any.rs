//! A store chosen at run time by URL: SQLite or PostgreSQL.
