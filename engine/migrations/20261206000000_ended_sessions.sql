-- Sessions of the pages ended at sign-out. A session's cookie is signed and carries its expiry,
-- so it stays valid until then unless it is named here; each row is kept until that expiry and
-- dropped by the next sign-out after it.
CREATE TABLE ended_sessions (
    session TEXT PRIMARY KEY,
    until_at TEXT NOT NULL
);
CREATE INDEX ended_sessions_until ON ended_sessions (until_at);
