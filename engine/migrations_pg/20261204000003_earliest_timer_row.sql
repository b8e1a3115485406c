-- One timer row per instance: its earliest timer (PostgreSQL). Applied by sqlx::migrate!; never
-- edit an applied migration.
--
-- The instance's state holds all of its timers; the table only tells the scheduler when each
-- instance next needs to be woken. A step now keeps the row on the instance's earliest timer (by
-- due time, then the sequence number its id ends in) and firing it moves the row to the next, so an
-- approval's due date, its reminders and its escalation write one row instead of three. Rows
-- written before this, one per timer, are cut to the earliest of each instance: a later one left
-- behind would outlive the timer it names, since steps no longer drop it.
DELETE FROM timers WHERE id IN (
    SELECT id FROM (
        SELECT id, ROW_NUMBER() OVER (PARTITION BY instance_id ORDER BY due_at, length(id), id) AS rank FROM timers
    ) AS ranked WHERE rank > 1
);

-- The scheduler asks after every pass when a timer can next be claimed: the earliest free timer,
-- or the end of a claim. Claimed rows are the few being fired; indexing only them lets that
-- question read two short index ranges instead of every pending timer.
CREATE INDEX timers_claimed ON timers (claimed_until) WHERE claimed_until IS NOT NULL;
