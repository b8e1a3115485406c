-- A step's history entries stored in its event's row (PostgreSQL). Applied by sqlx::migrate!;
-- never edit an applied migration.
--
-- A step wrote one `history` row per entry, three to six for most steps: a third of a
-- human-task instance's rows. Now a step's entries travel in the row of the event that made
-- them, the last event the step applied: the first entry's position (`history_seq`), the hash
-- the entries chain from (`prev_hash`), and the entries as a JSON array, kept as text exactly as
-- written, of `[kind, node, who, on_behalf_of, detail, hash]` (`entries`); their time is the
-- event's. Each entry keeps its own hash, computed exactly as before, so every chain verifies as
-- it did. An event whose step wrote no entry has none. `people` lists the users the entries name
-- (who acted, for whom) as a JSON array: who took part in an instance is found from it without
-- reading the entries.
--
-- `history` stays readable as a view with the columns of the old table, one row per entry, for
-- the queries that look entries up by person or kind and for operators' own SQL.

ALTER TABLE events ADD COLUMN history_seq BIGINT;
ALTER TABLE events ADD COLUMN prev_hash TEXT;
ALTER TABLE events ADD COLUMN entries TEXT;
ALTER TABLE events ADD COLUMN people TEXT;

-- Every entry was written with the events of its step, at their time: an entry with no event of
-- its instance at its time stops the migration rather than being lost.
DO $$
DECLARE
    unplaced BIGINT;
BEGIN
    SELECT COUNT(*) INTO unplaced FROM history h
    WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.instance_id = h.instance_id AND e.at = h.at);
    IF unplaced > 0 THEN
        RAISE EXCEPTION '% history entries have no event of their instance at their time', unplaced;
    END IF;
END;
$$;

UPDATE events SET history_seq = g.first_seq, prev_hash = g.prev_hash, entries = g.entries,
    people = (SELECT json_agg(DISTINCT p.name ORDER BY p.name)::text FROM (
                  SELECT h.who AS name FROM history h
                  WHERE h.instance_id = g.instance_id AND h.at = g.at AND h.who IS NOT NULL
                  UNION SELECT h.on_behalf_of FROM history h
                  WHERE h.instance_id = g.instance_id AND h.at = g.at AND h.on_behalf_of IS NOT NULL) p)
FROM (
    SELECT h.instance_id, h.at, MIN(h.seq) AS first_seq,
           (array_agg(h.prev_hash ORDER BY h.seq))[1] AS prev_hash,
           json_agg(json_build_array(h.kind, h.node, h.who, h.on_behalf_of, h.detail, h.hash) ORDER BY h.seq)::text
               AS entries
    FROM history h GROUP BY h.instance_id, h.at
) g
WHERE events.instance_id = g.instance_id AND events.at = g.at
  AND events.seq = (SELECT MAX(l.seq) FROM events l WHERE l.instance_id = g.instance_id AND l.at = g.at);

DROP TABLE history;

CREATE VIEW history AS
SELECT s.instance_id, s.history_seq + e.ord - 1 AS seq, s.at,
       e.v ->> 0 AS kind, e.v ->> 1 AS node, e.v ->> 2 AS who, e.v ->> 3 AS on_behalf_of, e.v ->> 4 AS detail,
       CASE WHEN e.ord = 1 THEN s.prev_hash ELSE s.entries::jsonb -> (e.ord::int - 2) ->> 5 END AS prev_hash,
       e.v ->> 5 AS hash
FROM events s CROSS JOIN LATERAL jsonb_array_elements(s.entries::jsonb) WITH ORDINALITY AS e(v, ord)
WHERE s.entries IS NOT NULL;
