-- A step's history entries stored in its event's row (SQLite). Applied by sqlx::migrate!; never
-- edit an applied migration.
--
-- A step wrote one `history` row per entry, three to six for most steps, each with its own
-- B-tree inserts into the table and its key's index: a third of a human-task instance's rows.
-- Now a step's entries travel in the row of the event that made them, the last event the step
-- applied: the first entry's position (`history_seq`), the hash the entries chain from
-- (`prev_hash`), and the entries as a JSON array of `[kind, node, who, on_behalf_of, detail,
-- hash]` (`entries`); their time is the event's. Each entry keeps its own hash, computed exactly
-- as before, so every chain verifies as it did. An event whose step wrote no entry has none.
-- `people` lists the users the entries name (who acted, for whom) as a JSON array: who took part
-- in an instance is found from it without reading the entries.
--
-- `history` stays readable as a view with the columns of the old table, one row per entry, for
-- the queries that look entries up by person or kind and for operators' own SQL.

ALTER TABLE events ADD COLUMN history_seq INTEGER;
ALTER TABLE events ADD COLUMN prev_hash TEXT;
ALTER TABLE events ADD COLUMN entries TEXT;
ALTER TABLE events ADD COLUMN people TEXT;

-- Every entry was written with the events of its step, at their time: an entry with no event of
-- its instance at its time stops the migration rather than being lost.
CREATE TEMP TABLE history_check (
    unplaced INTEGER NOT NULL CONSTRAINT every_history_entry_has_an_event_at_its_time CHECK (unplaced = 0)
);
INSERT INTO history_check (unplaced)
SELECT COUNT(*) FROM history h
WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.instance_id = h.instance_id AND e.at = h.at);
DROP TABLE history_check;

UPDATE events SET
    history_seq = (SELECT MIN(h.seq) FROM history h WHERE h.instance_id = events.instance_id AND h.at = events.at),
    prev_hash = (SELECT h.prev_hash FROM history h WHERE h.instance_id = events.instance_id AND h.at = events.at
                 ORDER BY h.seq LIMIT 1),
    entries = (SELECT json_group_array(json_array(h.kind, h.node, h.who, h.on_behalf_of, h.detail, h.hash) ORDER BY h.seq)
               FROM history h WHERE h.instance_id = events.instance_id AND h.at = events.at),
    people = (SELECT CASE WHEN COUNT(*) = 0 THEN NULL ELSE json_group_array(p.name ORDER BY p.name) END
              FROM (SELECT h.who AS name FROM history h
                    WHERE h.instance_id = events.instance_id AND h.at = events.at AND h.who IS NOT NULL
                    UNION SELECT h.on_behalf_of FROM history h
                    WHERE h.instance_id = events.instance_id AND h.at = events.at AND h.on_behalf_of IS NOT NULL) p)
WHERE seq = (SELECT MAX(l.seq) FROM events l WHERE l.instance_id = events.instance_id AND l.at = events.at)
  AND EXISTS (SELECT 1 FROM history h WHERE h.instance_id = events.instance_id AND h.at = events.at);

DROP TABLE history;

CREATE VIEW history (instance_id, seq, at, kind, node, who, on_behalf_of, detail, prev_hash, hash) AS
SELECT s.instance_id, s.history_seq + e.key, s.at,
       json_extract(e.value, '$[0]'), json_extract(e.value, '$[1]'), json_extract(e.value, '$[2]'),
       json_extract(e.value, '$[3]'), json_extract(e.value, '$[4]'),
       CASE e.key WHEN 0 THEN s.prev_hash ELSE json_extract(s.entries, '$[' || (e.key - 1) || '][5]') END,
       json_extract(e.value, '$[5]')
FROM events s, json_each(s.entries) e
WHERE s.entries IS NOT NULL;
