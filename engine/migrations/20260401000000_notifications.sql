-- Notifications to the people concerned (a task offered, handed to someone, reminded of, past
-- its due time). Applied by sqlx::migrate!; never edit an applied migration.
--
-- A row is written in the transaction of the step that raised it, so a crash loses none; the
-- server's notifier delivers it at least once, always under the same id (the receivers'
-- idempotency key). A taken row is left to its taker until `next_attempt_at`; a delivery that
-- keeps failing ends `dead` until an operator retries it.
CREATE TABLE notifications (
    id TEXT PRIMARY KEY,
    instance_id TEXT,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    delivered_at TEXT
);
CREATE INDEX notifications_due ON notifications (state, next_attempt_at, id);
