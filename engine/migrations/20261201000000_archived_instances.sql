-- History retention: what is left in the live database of an instance moved into an archive
-- database (`cloverleaf archive`). Applied by sqlx::migrate!; never edit an applied migration.
--
-- One row per archived instance, so that reads answer "archived on ... into ..." instead of
-- "not found", and readers are judged as before (process, version, case). `archive` is a
-- label naming where the rows went, never a URL with a password; `archived_by` the operator;
-- `participants` who took part (JSON: users who acted or held its tasks, roles its tasks were
-- offered to), so they may still learn where their case went.
CREATE TABLE archived_instances (
    id TEXT PRIMARY KEY,
    process_key TEXT NOT NULL,
    process_version INTEGER NOT NULL,
    status TEXT NOT NULL,
    business_key TEXT,
    parent_id TEXT,
    ended_at TEXT NOT NULL,
    archived_at TEXT NOT NULL,
    archive TEXT NOT NULL,
    archived_by TEXT NOT NULL,
    participants TEXT NOT NULL
);

-- An archived id is never used again (a start retried under the same id long after would
-- otherwise begin a second instance beside the archived one).
CREATE TRIGGER instances_not_archived BEFORE INSERT ON instances
WHEN EXISTS (SELECT 1 FROM archived_instances WHERE id = NEW.id)
BEGIN
    SELECT RAISE(ABORT, 'the instance id was archived and is not used again');
END;
