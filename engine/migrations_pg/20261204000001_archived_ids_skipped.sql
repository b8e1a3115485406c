-- An archived id is still never used again, but a start under it is skipped instead of failing
-- (PostgreSQL). Applied by sqlx::migrate!; never edit an applied migration.
--
-- The trigger function of `20261201000000_archived_instances.sql` raised an error, which failed
-- the whole batch of steps written together; the engine then told the caller of a retried start
-- a database error. Returning no row makes the insert do nothing, as `ON CONFLICT DO NOTHING`
-- does for an id that exists, and the engine answers that the instance was started before (it
-- finds the tombstone).

CREATE OR REPLACE FUNCTION instances_not_archived() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM archived_instances WHERE id = NEW.id) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END;
$$;
