-- Fetch-and-lock on a busy jobs table. Applied by sqlx::migrate!; never edit an applied migration.
--
-- Claims and the due-jobs check read live jobs only (ready or locked) in the order claims are
-- made: by the instant a job becomes claimable (a ready job's due time, a locked job's lease end),
-- then by id. `jobs_due` leads with the job type: a fetch for one type reads it in that order and
-- stops after the jobs it wants, however many are due. `jobs_due_at` serves job-type patterns
-- (`finance.*`, `*`) the same way. They replace `jobs_ready` and `jobs_leased`, which needed a
-- sort of every due job on each claim.
CREATE INDEX jobs_due ON jobs (job_type, (CASE WHEN state = 'ready' THEN due_at ELSE lock_expires_at END), id)
    WHERE state IN ('ready', 'locked');
CREATE INDEX jobs_due_at ON jobs ((CASE WHEN state = 'ready' THEN due_at ELSE lock_expires_at END), id)
    WHERE state IN ('ready', 'locked');
DROP INDEX jobs_ready;
DROP INDEX jobs_leased;

-- Every job is inserted, locked and finished, and none of these updates can be HOT (the index
-- predicates name `state`), so each leaves dead tuples and dead index entries that claims step
-- over until a vacuum. Vacuum and analyze the table after 2 % of it changed rather than the
-- default 20 % and 10 %, so dead entries stay few and the planner knows how many jobs are live.
-- (Without effect where autovacuum is off.)
ALTER TABLE jobs SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_analyze_threshold = 1000
);
