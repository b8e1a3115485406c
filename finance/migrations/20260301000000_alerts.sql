-- Alerts opened by the rules of the `.rules` files: one open alert per rule and subject (the whole,
-- or a customer); closed when its condition clears, kept afterwards as history.
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule TEXT NOT NULL,
    subject TEXT NOT NULL,
    title TEXT NOT NULL,
    severity TEXT NOT NULL,
    indicator TEXT NOT NULL,
    threshold TEXT NOT NULL,
    opened_value TEXT NOT NULL,
    last_value TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    checked_at TEXT NOT NULL,
    acknowledged_by TEXT,
    acknowledged_at TEXT,
    closed_at TEXT
);
CREATE UNIQUE INDEX alerts_one_open ON alerts (rule, subject) WHERE closed_at IS NULL;
