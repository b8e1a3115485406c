-- Letters handed to delivery. The server's notifier queues each outbox row once, as the
-- notification `outbox.{id}` in the engine's notifications table (which keeps its attempts,
-- errors and dead letters), and sets `queued_at`; a row queued twice after a crash is one
-- notification, by its id. `sent_at` is left unused: the delivery is recorded there.
-- Applied by sqlx::migrate!; never edit an applied migration. Versions are unique across the
-- engine's and the ledger's folders: on one database they share one migrations table.
ALTER TABLE outbox ADD COLUMN queued_at TEXT;
CREATE INDEX outbox_unqueued ON outbox (queued_at, id);
