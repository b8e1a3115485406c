-- Out-of-office: while `from_at <= now < until_at`, `substitute` acts for `user_name`.
-- One substitute per user at a time; substitutes do not chain.
CREATE TABLE substitutes (
    user_name TEXT PRIMARY KEY,
    substitute TEXT NOT NULL,
    from_at TEXT NOT NULL,
    until_at TEXT NOT NULL
);
CREATE INDEX substitutes_by_substitute ON substitutes (substitute);
