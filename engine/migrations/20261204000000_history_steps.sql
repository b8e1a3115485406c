-- History written one row per step (SQLite). Applied by sqlx::migrate!; never edit an applied
-- migration.
--
-- A step wrote one `history` row per entry, three to six for most steps, each with its own
-- B-tree insert into the table and into its key's index: a third of a human-task instance's
-- rows. Now a step's entries are one row of `history_steps`: the first entry's position, the
-- step's time, the hash the entries chain from, and the entries as a JSON array of
-- `[kind, node, who, on_behalf_of, detail, hash]`. Each entry keeps its own hash, computed
-- exactly as before, so the chain of an instance verifies the same whether it was written
-- before this migration (one entry per row) or after (one step per row).
--
-- `history` stays readable as a view with the columns of the old table, one row per entry, for
-- the queries that look entries up by person or kind and for operators' own SQL.

CREATE TABLE history_steps (
    instance_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    entries TEXT NOT NULL,
    PRIMARY KEY (instance_id, seq)
);

INSERT INTO history_steps (instance_id, seq, at, prev_hash, entries)
SELECT instance_id, seq, at, prev_hash, json_array(json_array(kind, node, who, on_behalf_of, detail, hash))
FROM history ORDER BY instance_id, seq;

DROP TABLE history;

CREATE VIEW history (instance_id, seq, at, kind, node, who, on_behalf_of, detail, prev_hash, hash) AS
SELECT s.instance_id, s.seq + e.key, s.at,
       json_extract(e.value, '$[0]'), json_extract(e.value, '$[1]'), json_extract(e.value, '$[2]'),
       json_extract(e.value, '$[3]'), json_extract(e.value, '$[4]'),
       CASE e.key WHEN 0 THEN s.prev_hash ELSE json_extract(s.entries, '$[' || (e.key - 1) || '][5]') END,
       json_extract(e.value, '$[5]')
FROM history_steps s, json_each(s.entries) e;
