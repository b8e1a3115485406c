//! Fetch-and-lock: every job fetch of a batch served by one `FOR UPDATE SKIP LOCKED` statement.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::postgres::PgConnection;

use super::floor::{DueFloors, Learnt};
use crate::store::rows::Columns;
use crate::store::{Error, LockedJob, Write, rows, ts};

/// A job-type pattern as a LIKE pattern: `*` is the only wildcard; LIKE's own specials match
/// literally.
pub(in crate::store) fn like_pattern(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        match c {
            '\\' | '%' | '_' => {
                out.push('\\');
                out.push(c);
            }
            '*' => out.push('%'),
            other => out.push(other),
        }
    }
    out
}

/// Serves every fetch of a batch with ONE statement ([`FETCH_JOBS`]), however many workers asked:
/// each statement is a round trip inside the writer's transaction, and one scan of the due jobs
/// serves every fetch for the same job types. Fetches are grouped by their set of job types; a
/// group takes as many due jobs as its fetches want together, in due order, and hands them out
/// in the batch's order: the first fetch gets the first `max` jobs, the next the following ones.
/// A group is due as of the earliest `now` among its fetches.
///
/// Each group reads from its floor in `floors` up (see [`floor`](super::floor)); what the
/// fetch learnt about the floors is returned, to be recorded once the batch committed.
pub(super) async fn fetch_jobs(
    conn: &mut PgConnection,
    batch: &[Write],
    fetches: &[usize],
    floors: &DueFloors,
) -> Result<(Vec<(usize, Vec<LockedJob>)>, Vec<Learnt>), Error> {
    let mut by_types: BTreeMap<Vec<String>, Vec<usize>> = BTreeMap::new();
    for &i in fetches {
        if let Write::FetchJobs { job_types, .. } = &batch[i] {
            by_types.entry(super::floor_key(job_types)).or_default().push(i);
        }
    }
    let (mut groups, mut requests) = (Vec::new(), Vec::new());
    // Per group: its types, due instant, whether it reads from the start, how many it wants.
    let mut reads: Vec<(&Vec<String>, DateTime<Utc>, bool, i64)> = Vec::new();
    let mut group_of: BTreeMap<usize, usize> = BTreeMap::new();
    let mut wanted_in_all = 0i64;
    for (group, (job_types, members)) in by_types.iter().enumerate() {
        let mut wanted = 0i64;
        let mut now: Option<DateTime<Utc>> = None;
        for &i in members {
            if let Write::FetchJobs { worker, max, now: at, lease_until, .. } = &batch[i] {
                let max = (*max).max(0);
                requests.push(json!({
                    "request": i, "grp": group, "worker": worker, "lease": ts(*lease_until), "first": wanted, "max": max,
                }));
                group_of.insert(i, group);
                wanted = wanted.saturating_add(max);
                now = Some(now.map_or(*at, |n| n.min(*at)));
            }
        }
        let Some(now) = now else { continue };
        // Exact names go through the indexes; a pattern (`finance.*`, `*`) becomes a LIKE.
        let wildcard = job_types.iter().any(|t| t.contains('*'));
        let types: Vec<String> =
            if wildcard { job_types.iter().map(|t| like_pattern(t)).collect() } else { job_types.clone() };
        let since = floors.since(job_types, now);
        groups.push(json!({
            "grp": group, "types": types, "wildcard": wildcard, "now": ts(now), "wanted": wanted,
            // Claim times are `ts` text: the empty text sorts below every one of them.
            "since": since.map(ts).unwrap_or_default(),
        }));
        reads.push((job_types, now, since.is_none(), wanted));
        wanted_in_all = wanted_in_all.saturating_add(wanted);
    }
    let mut locked: BTreeMap<usize, Vec<LockedJob>> = fetches.iter().map(|&i| (i, Vec::new())).collect();
    if wanted_in_all > 0 {
        let picked = sqlx::query(FETCH_JOBS)
            .bind(Value::Array(groups).to_string())
            .bind(Value::Array(requests).to_string())
            .fetch_all(&mut *conn)
            .await?;
        for row in &picked {
            let request = usize::try_from(row.int("request")?).map_err(|_| Error::Corrupt("fetch request".into()))?;
            locked.entry(request).or_default().push(rows::locked_job(row)?);
        }
    }
    let mut got = vec![0i64; reads.len()];
    for (request, jobs) in &locked {
        if let Some(&group) = group_of.get(request) {
            got[group] += i64::try_from(jobs.len()).unwrap_or(i64::MAX);
        }
    }
    let sets: Vec<&[String]> = reads.iter().map(|(types, ..)| types.as_slice()).collect();
    let learnt = reads
        .iter()
        .enumerate()
        .map(|(group, (types, now, full, wanted))| Learnt {
            types: (*types).clone(),
            now: *now,
            full: *full,
            // A job two groups picked goes to one of them: a group that overlaps another may
            // get fewer than it wants while more are due, so only a group alone in its types
            // learns that it found every due job.
            exhausted: got[group] < *wanted && !overlaps_another(&sets, group),
        })
        .collect();
    let locked = locked
        .into_iter()
        .map(|(i, mut jobs)| {
            jobs.sort_by(|a, b| a.id.cmp(&b.id));
            (i, jobs)
        })
        .collect();
    Ok((locked, learnt))
}

/// Whether the job types of group `group` of `sets` may meet another group's (a pattern may
/// meet any type).
pub(super) fn overlaps_another(sets: &[&[String]], group: usize) -> bool {
    let mine = sets[group];
    let pattern = |types: &[String]| types.iter().any(|t| t.contains('*'));
    sets.iter().enumerate().any(|(other, types)| {
        other != group && (pattern(mine) || pattern(types) || types.iter().any(|t| mine.contains(t)))
    })
}

/// Due as a fetch sees it (ready and due, or leased with the lease run out) at `$now`, in the
/// terms of the `jobs_due` index.
macro_rules! due {
    ($now:literal, $since:literal) => {
        concat!("state IN ('ready', 'locked') AND ", pg_due_at!(), " <= ", $now, " AND ", pg_due_at!(), " >= ", $since)
    };
}

/// The due jobs of each fetch group `g` that passes `$groups` and whose types pass `$types`,
/// at most as many as the group wants, due first, locked.
macro_rules! claim {
    ($groups:literal, $types:expr) => {
        concat!(
            "SELECT g.grp, j.id, j.at FROM fetch_groups g CROSS JOIN LATERAL (SELECT id, ",
            pg_due_at!(),
            " AS at FROM jobs WHERE ",
            due!("g.now", "g.since"),
            " AND ",
            $types,
            " ORDER BY at, id LIMIT g.wanted FOR UPDATE SKIP LOCKED) j WHERE ",
            $groups
        )
    };
}

/// Locks the due jobs of every fetch of a batch. `$1`: the groups of fetches (`grp`, job `types`
/// or LIKE patterns when `wildcard`, `now`, how many jobs they `wanted`, the claim time `since`
/// which they read, the empty text for all); `$2`: the fetches
/// (`request`, `grp`, `worker`, `lease` end, their `first` job's rank in the group, `max`).
///
/// A group of one job type reads the `jobs_due` index in claim order and stops after the jobs it
/// wants, however many are due (its due time is also compared as a row with the type, which
/// only `jobs_due` can serve: on an empty table the planner otherwise cached a read of every due
/// job in `jobs_due_at`, filtering the type); a group of several types or of patterns can read
/// `jobs_due_at` the same way, passing over other types' jobs (or collect its due jobs and sort
/// them, when the planner expects few). SKIP LOCKED leaves jobs another node is locking to that node; locking
/// rechecks the due time on the newest version of each row (a job another node claimed since
/// the scan is left out) and holds until the commit, so the UPDATE finds the picked rows by
/// primary key alone: were it to repeat the due condition, the planner, which believes few jobs
/// are due, could scan every due job again, dead index entries included. (As `jobs.id =
/// ANY(ARRAY(...))`, the plan cached while `jobs` was small scanned the whole table for it.) A
/// job two groups both picked (their types overlap) goes to the first group only, so a fetch may
/// get fewer than `max` jobs although more are due. The groups and fetches come through
/// `batch_rows` (see its migration), taken for one row each, so that the plan cached for this
/// statement keeps to the indexes once `jobs` has grown.
pub(super) const FETCH_JOBS: &str = concat!(
    "WITH fetch_groups AS (SELECT g.* FROM batch_rows($1::jsonb) AS b(row) CROSS JOIN LATERAL jsonb_to_record(b.row) \
     AS g(grp bigint, types text[], wildcard boolean, now text, wanted bigint, since text)), \
     fetches AS (SELECT f.* FROM batch_rows($2::jsonb) AS b(row) CROSS JOIN LATERAL jsonb_to_record(b.row) \
     AS f(request bigint, grp bigint, worker text, lease text, first bigint, max bigint)), \
     one_type AS (",
    claim!(
        "NOT g.wildcard AND cardinality(g.types) = 1",
        concat!("job_type = g.types[1] AND (job_type, ", pg_due_at!(), ") <= (g.types[1], g.now)")
    ),
    "), several AS (",
    claim!("NOT g.wildcard AND cardinality(g.types) <> 1", "job_type = ANY(g.types)"),
    "), matching AS (",
    claim!("g.wildcard", "job_type LIKE ANY(g.types)"),
    "), picked AS (SELECT DISTINCT ON (id) grp, id, at FROM \
     (SELECT * FROM one_type UNION ALL SELECT * FROM several UNION ALL SELECT * FROM matching) p \
     ORDER BY id, grp), \
     ranked AS (SELECT grp, id, row_number() OVER (PARTITION BY grp ORDER BY at, id) - 1 AS k FROM picked), \
     assigned AS (SELECT n.id, f.request, f.worker, f.lease FROM ranked n \
     JOIN fetches f ON f.grp = n.grp AND n.k >= f.first AND n.k - f.first < f.max) \
     UPDATE jobs SET state = 'locked', lock_owner = a.worker, lock_epoch = lock_epoch + 1, lock_expires_at = a.lease \
     FROM assigned a WHERE jobs.id = a.id \
     RETURNING a.request, jobs.id AS id, jobs.instance_id, jobs.node, jobs.job_type, jobs.input, \
     jobs.idempotency_key, jobs.attempt, jobs.lock_epoch, jobs.lock_expires_at"
);
