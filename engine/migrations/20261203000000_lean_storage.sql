-- Less index work per step (SQLite only; PostgreSQL keeps its tables as they are). Applied by
-- sqlx::migrate!; never edit an applied migration.
--
-- Indexes that the writes kept up to date for rows no read looks for: `tasks_state` held every
-- task ever closed (each close moved its entry), while the reads want only open tasks, by
-- creation: a partial index of the open tasks in that order serves them without a sort and
-- loses a task's entry when it closes. `instances_business_key` held an entry for each of the
-- many instances without a business key.
--
-- Timers are small rows with a TEXT key, inserted by one step and deleted by another: rebuilt
-- WITHOUT ROWID, each lives in its key's B-tree alone instead of a rowid table and an index
-- from its key. (The larger rows each step writes, history entries above all, stay in rowid
-- tables: appended at the right edge they dirty fewer pages than in their key's B-tree, where
-- the entries of a batch's instances land on different leaves.)

DROP INDEX tasks_state;
CREATE INDEX tasks_open ON tasks (created_at, id) WHERE state = 'open';

DROP INDEX instances_business_key;
CREATE INDEX instances_business_key ON instances (business_key) WHERE business_key IS NOT NULL;

CREATE TABLE timers_lean (
    id TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL,
    node TEXT NOT NULL,
    due_at TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO timers_lean (id, instance_id, node, due_at) SELECT id, instance_id, node, due_at FROM timers;
DROP TABLE timers;
ALTER TABLE timers_lean RENAME TO timers;
CREATE INDEX timers_due ON timers (due_at);
