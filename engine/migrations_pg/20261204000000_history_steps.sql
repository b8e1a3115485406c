-- History written one row per step (PostgreSQL). Applied by sqlx::migrate!; never edit an
-- applied migration.
--
-- A step wrote one `history` row per entry, three to six for most steps: a third of a
-- human-task instance's rows. Now a step's entries are one row of `history_steps`: the first
-- entry's position, the step's time, the hash the entries chain from, and the entries as a JSON
-- array (kept as text, exactly as written) of `[kind, node, who, on_behalf_of, detail, hash]`.
-- Each entry keeps its own hash, computed exactly as before, so the chain of an instance
-- verifies the same whether it was written before this migration or after.
--
-- `history` stays readable as a view with the columns of the old table, one row per entry, for
-- the queries that look entries up by person or kind and for operators' own SQL.

CREATE TABLE history_steps (
    instance_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at TEXT COLLATE "C" NOT NULL,
    prev_hash TEXT NOT NULL,
    entries TEXT NOT NULL,
    PRIMARY KEY (instance_id, seq)
);

INSERT INTO history_steps (instance_id, seq, at, prev_hash, entries)
SELECT instance_id, seq, at, prev_hash, json_build_array(json_build_array(kind, node, who, on_behalf_of, detail, hash))::text
FROM history;

DROP TABLE history;

CREATE VIEW history AS
SELECT s.instance_id, s.seq + e.ord - 1 AS seq, s.at,
       e.v ->> 0 AS kind, e.v ->> 1 AS node, e.v ->> 2 AS who, e.v ->> 3 AS on_behalf_of, e.v ->> 4 AS detail,
       CASE WHEN e.ord = 1 THEN s.prev_hash ELSE s.entries::jsonb -> (e.ord::int - 2) ->> 5 END AS prev_hash,
       e.v ->> 5 AS hash
FROM history_steps s CROSS JOIN LATERAL jsonb_array_elements(s.entries::jsonb) WITH ORDINALITY AS e(v, ord);
