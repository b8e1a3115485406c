-- An archived id is still never used again, but a start under it is skipped instead of failing
-- (SQLite). Applied by sqlx::migrate!; never edit an applied migration.
--
-- The trigger of `20261201000000_archived_instances.sql` aborted the statement, and with it the
-- whole batch of steps written together; the engine then told the caller of a retried start a
-- database error. Skipping the row makes the insert do nothing, as for an id that exists, and
-- the engine answers that the instance was started before (it finds the tombstone).

DROP TRIGGER instances_not_archived;

CREATE TRIGGER instances_not_archived BEFORE INSERT ON instances
WHEN EXISTS (SELECT 1 FROM archived_instances WHERE id = NEW.id)
BEGIN
    SELECT RAISE(IGNORE);
END;
