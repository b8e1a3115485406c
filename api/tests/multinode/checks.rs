//! The checks on the database once every order finished, and the report of what the run did.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::Method;
use sqlx::PgPool;

use crate::audit::{DUNNING_TIMER, serve_name};
use crate::driver::Driver;
use crate::{VICTIM, max_open, orders};

/// One number from the database.
async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Counts by a text key.
async fn counts(pool: &PgPool, sql: &str) -> BTreeMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>(sql)
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .collect()
}

/// What the instance check found, for the report.
pub(crate) struct Instances {
    started_by_node: BTreeMap<String, i64>,
}

/// Every order finished once, at `cash_collected`, with one child per call.
pub(crate) async fn check_instances(pool: &PgPool) -> Instances {
    let orders = orders() as i64;
    assert_eq!(count(pool, "SELECT count(*) FROM instances WHERE process_key = 'order_to_cash'").await, orders);
    assert_eq!(
        count(pool, "SELECT count(DISTINCT business_key) FROM instances WHERE process_key = 'order_to_cash'").await,
        orders,
        "one instance per order"
    );
    assert_eq!(
        counts(pool, "SELECT process_key || ' ' || status, count(*) FROM instances GROUP BY 1").await,
        BTreeMap::from([
            ("collect_then_reconcile completed".to_string(), orders),
            ("order_approval completed".to_string(), orders),
            ("order_to_cash completed".to_string(), orders),
            ("ship_then_invoice completed".to_string(), orders),
        ]),
        "every order and each of its three children completed"
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM (SELECT parent_id, process_key FROM instances WHERE parent_id IS NOT NULL \
             GROUP BY 1, 2 HAVING count(*) <> 1) twice"
        )
        .await,
        0,
        "a call started its child once"
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM instances i LEFT JOIN (SELECT instance_id, count(*) AS n FROM history \
             WHERE kind = 'completed' GROUP BY 1) h ON h.instance_id = i.id WHERE coalesce(h.n, 0) <> 1"
        )
        .await,
        0,
        "each instance's history records one completion"
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(DISTINCT h.instance_id) FROM history h JOIN instances i ON i.id = h.instance_id \
             WHERE i.process_key = 'order_to_cash' AND h.kind = 'end_reached' AND h.node = 'cash_collected'"
        )
        .await,
        orders,
        "every order ends with its cash collected"
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM history WHERE kind = 'end_reached' AND node = 'cash_collected'").await,
        orders,
        "one end each"
    );
    // Nothing left behind: no open wait, job, task, message or event.
    for (what, sql) in [
        ("timers", "SELECT count(*) FROM timers"),
        ("subscriptions", "SELECT count(*) FROM subscriptions"),
        ("open tasks", "SELECT count(*) FROM tasks WHERE state = 'open'"),
        ("unfinished jobs", "SELECT count(*) FROM jobs WHERE state <> 'done'"),
        ("buffered messages", "SELECT count(*) FROM messages WHERE state = 'buffered'"),
        ("pending events", "SELECT count(*) FROM pending_events"),
    ] {
        assert_eq!(count(pool, sql).await, 0, "{what} left after every order finished");
    }
    let started_by_node = counts(
        pool,
        "SELECT app, count(*) FROM mn_audit a JOIN instances i ON i.id = a.id \
         WHERE a.tbl = 'instances' AND i.process_key = 'order_to_cash' GROUP BY 1",
    )
    .await;
    assert!(
        started_by_node.keys().all(|app| app.starts_with("serve-")),
        "each node's connections carry its name (application_name in the URL): {started_by_node:?}"
    );
    Instances { started_by_node }
}

/// What the job check found, for the report.
pub(crate) struct Jobs {
    completed: i64,
    by_worker: BTreeMap<String, i64>,
    taken_over: i64,
    failed_attempts: i64,
}

/// A completion in the audit: a locked job turned `done`.
const COMPLETION: &str = "c.tbl = 'jobs' AND c.new_state = 'done' AND c.old_state IS DISTINCT FROM 'done'";
/// A lock in the audit: a job handed to a worker with a new epoch.
const LOCK: &str = "l.tbl = 'jobs' AND l.new_state = 'locked' AND (l.old_state IS DISTINCT FROM 'locked' OR l.new_epoch <> l.old_epoch)";

/// Each job completed exactly once, by the worker holding its current lock, and never locked
/// again afterwards; the jobs the victim held were completed by others.
pub(crate) async fn check_jobs(pool: &PgPool) -> Jobs {
    let orders = orders() as i64;
    let by_type = counts(pool, "SELECT job_type, count(*) FROM jobs GROUP BY 1").await;
    // The job types one order's road through order_to_cash creates: seven of the thirteen of
    // `cloverleaf_finance::JOB_TYPES` (no return, refund, write-off, report or close).
    let expected: BTreeMap<String, i64> = [
        "credit.check",
        "invoice.issue",
        "ledger.post_cost",
        "outbox.notify",
        "dunning.send",
        "payment.match",
        "receipt.post",
    ]
    .into_iter()
    .map(|t| (t.to_string(), orders))
    .collect();
    assert_eq!(by_type, expected, "one job of each type per order");
    let completed = count(pool, &format!("SELECT count(*) FROM mn_audit c WHERE {COMPLETION}")).await;
    assert_eq!(
        count(
            pool,
            &format!(
                "SELECT count(*) FROM jobs j LEFT JOIN (SELECT c.id, count(*) AS n FROM mn_audit c WHERE {COMPLETION} \
                 GROUP BY 1) c ON c.id = j.id WHERE coalesce(c.n, 0) <> 1"
            )
        )
        .await,
        0,
        "every job completed exactly once"
    );
    assert_eq!(completed, orders * 7);
    assert_eq!(
        count(pool, &format!("SELECT count(*) FROM mn_audit c WHERE {COMPLETION} AND (c.old_state <> 'locked' OR c.old_owner IS NULL)"))
            .await,
        0,
        "a job is completed only under a lock"
    );
    assert_eq!(
        count(
            pool,
            &format!(
                "SELECT count(*) FROM mn_audit c JOIN mn_audit l ON l.tbl = 'jobs' AND l.id = c.id AND l.seq > c.seq \
                 WHERE {COMPLETION} AND {LOCK}"
            )
        )
        .await,
        0,
        "no job was handed to a worker after another had completed it"
    );
    // Jobs the victim's workers held when it died: each was locked again by another after the
    // kill and completed by someone other than the victim.
    let taken_over = count(
        pool,
        &format!(
            "SELECT count(DISTINCT l.id) FROM mn_audit l WHERE {LOCK} AND l.app = '{victim}' AND l.new_owner LIKE 'in-process@%' \
             AND l.at < (SELECT at FROM mn_marks WHERE name = 'kill') \
             AND NOT EXISTS (SELECT 1 FROM mn_audit x WHERE x.tbl = 'jobs' AND x.id = l.id AND x.seq > l.seq \
                 AND x.at < (SELECT at FROM mn_marks WHERE name = 'kill') AND x.new_state IS DISTINCT FROM 'locked')",
            victim = serve_name(VICTIM)
        ),
    )
    .await;
    assert_eq!(
        count(
            pool,
            &format!(
                "SELECT count(*) FROM mn_audit WHERE app = '{}' AND at >= (SELECT at FROM mn_marks WHERE name = 'kill')",
                serve_name(VICTIM)
            )
        )
        .await,
        0,
        "nothing was written by the dead node after its death"
    );
    let by_worker = counts(
        pool,
        &format!(
            "SELECT CASE WHEN c.old_owner LIKE 'in-process@%' THEN 'in-process on ' || c.app ELSE c.old_owner END, count(*) \
             FROM mn_audit c WHERE {COMPLETION} GROUP BY 1"
        ),
    )
    .await;
    let failed_attempts = count(
        pool,
        "SELECT count(*) FROM mn_audit WHERE tbl = 'jobs' AND old_state = 'locked' AND new_state IN ('ready', 'incident')",
    )
    .await;
    Jobs { completed, by_worker, taken_over, failed_attempts }
}

/// What the timer check found, for the report.
pub(crate) struct Timers {
    dunning_fired: i64,
    fired_after_kill: i64,
    victims_fired: i64,
    victims_claimed_fired: i64,
}

/// Each invoice's first dunning timer fired once; those the victim scheduled and had not fired
/// when it died fired on the survivors after the kill.
pub(crate) async fn check_timers(pool: &PgPool) -> Timers {
    let orders = orders() as i64;
    let dunning_fired =
        count(pool, "SELECT count(*) FROM history WHERE kind = 'timer_fired' AND node = 'await_payment'").await;
    assert_eq!(dunning_fired, orders, "one dunning timer fired per invoice");
    assert_eq!(
        count(pool, "SELECT count(*) FROM history WHERE kind = 'end_reached' AND node = 'dunning_done'").await,
        orders,
        "one dunning side path per invoice"
    );
    let kill = "(SELECT at FROM mn_marks WHERE name = 'kill')";
    let fired_after_kill = count(
        pool,
        &format!(
            "SELECT count(*) FROM history WHERE kind = 'timer_fired' AND node = 'await_payment' AND at::timestamptz > {kill}"
        ),
    )
    .await;
    let victim = serve_name(VICTIM);
    // The victim's dunning timers pending at the kill, and of them those it had claimed to fire.
    // A timer the victim itself deleted was its own work whatever the time of the delete (the
    // kill is marked once its last connection has ended, so none should fall after it).
    let pending = format!(
        "FROM mn_audit a WHERE a.tbl = 'timers' AND a.op = 'insert' AND a.app = '{victim}' AND {DUNNING_TIMER} \
         AND a.at < {kill} AND NOT EXISTS (SELECT 1 FROM mn_audit d WHERE d.tbl = 'timers' AND d.op = 'delete' \
             AND d.id = a.id AND (d.at < {kill} OR d.app = '{victim}'))"
    );
    let victims_pending = count(pool, &format!("SELECT count(*) {pending}")).await;
    assert!(
        victims_pending > 0,
        "{victim} held no pending dunning timer when it died: the test did not exercise timer takeover"
    );
    // Fired by another node: deleted by a survivor after the kill, and a dunning letter went out
    // at or after the timer's due time. The firing's time is not compared with the kill: a
    // survivor may take its `now` just before the kill is marked and commit just after (both
    // sides race for due timers all along; seen in CI), and that is a takeover all the same; a
    // firing by the victim itself would have been its own delete, excluded above.
    let taken_over = format!(
        "EXISTS (SELECT 1 FROM mn_audit d WHERE d.tbl = 'timers' AND d.op = 'delete' \
             AND d.id = a.id AND d.at > {kill} AND d.app <> '{victim}')"
    );
    let fired = "EXISTS (SELECT 1 FROM history h WHERE h.instance_id = a.instance_id AND h.kind = 'timer_fired' \
             AND h.node = 'await_payment' AND h.at::timestamptz >= a.due_at::timestamptz)";
    let victims_fired = count(pool, &format!("SELECT count(*) {pending} AND {taken_over} AND {fired}")).await;
    if victims_fired != victims_pending {
        let missing: Vec<(String,)> = sqlx::query_as(&format!(
            "SELECT a.id || ' due ' || a.due_at || ': ' || coalesce((SELECT string_agg(x.op || ' by ' || x.app || ' at ' \
                 || x.at::text, ', ' ORDER BY x.seq) FROM mn_audit x WHERE x.tbl = 'timers' AND x.id = a.id AND x.op <> 'insert'), \
                 'no change') || '; fired at ' || coalesce((SELECT string_agg(h.at, ', ') FROM history h \
                 WHERE h.instance_id = a.instance_id AND h.kind = 'timer_fired' AND h.node = 'await_payment'), 'never') \
             {pending} AND NOT ({taken_over} AND {fired}) ORDER BY a.id"
        ))
        .fetch_all(pool)
        .await
        .expect("the timers not taken over are listed");
        let kill_at: (String,) = sqlx::query_as("SELECT at::text FROM mn_marks WHERE name = 'kill'")
            .fetch_one(pool)
            .await
            .expect("kill mark");
        panic!(
            "{victims_fired} of the {victims_pending} dunning timers {victim} left fired on another node after it died \
             (killed at {}); the others:\n{}",
            kill_at.0,
            missing.into_iter().map(|(line,)| line).collect::<Vec<_>>().join("\n")
        );
    }
    let victims_claimed_fired = count(
        pool,
        &format!(
            "SELECT count(*) {pending} AND EXISTS (SELECT 1 FROM mn_audit u WHERE u.tbl = 'timers' AND u.op = 'update' \
                 AND u.id = a.id AND u.app = '{victim}' AND u.claimed_until IS NOT NULL AND u.at < {kill})"
        ),
    )
    .await;
    Timers { dunning_fired, fired_after_kill, victims_fired, victims_claimed_fired }
}

/// What the sub-ledger check found, for the report.
pub(crate) struct Ledger {
    first_number: String,
    last_number: String,
    trial_balance: String,
}

/// One invoice per order, numbered without gaps, paid, dunned once; the books balance.
pub(crate) async fn check_ledger(pool: &PgPool) -> Ledger {
    let orders = orders() as i64;
    let ours = "FROM invoices WHERE order_id LIKE 'SO-%'";
    assert_eq!(count(pool, &format!("SELECT count(*) {ours}")).await, orders, "one invoice per order");
    assert_eq!(
        count(pool, &format!("SELECT count(DISTINCT order_id) {ours}")).await,
        orders,
        "no order invoiced twice"
    );
    assert_eq!(count(pool, &format!("SELECT count(*) {ours} AND status <> 'paid'")).await, 0, "every invoice paid");
    assert_eq!(count(pool, &format!("SELECT count(*) {ours} AND dunning_level <> 1")).await, 0, "dunned once each");
    let (first_number, last_number, distinct): (String, String, i64) =
        sqlx::query_as(&format!("SELECT min(number), max(number), count(DISTINCT number) {ours}"))
            .fetch_one(pool)
            .await
            .expect("invoice numbers");
    let serial = |n: &str| n.rsplit('-').next().and_then(|s| s.parse::<i64>().ok()).unwrap_or(-1);
    assert_eq!(
        (distinct, serial(&last_number) - serial(&first_number) + 1),
        (orders, orders),
        "gapless invoice numbers {first_number}..{last_number}"
    );
    for (what, sql) in [
        (
            "invoice postings",
            "SELECT count(*) FROM (SELECT document FROM journal_entries WHERE kind = 'invoice' GROUP BY 1 \
             HAVING count(*) <> 1) twice",
        ),
        (
            "dunning letters",
            "SELECT count(*) FROM invoices i LEFT JOIN (SELECT invoice_id, count(*) AS n FROM outbox \
             WHERE kind = 'dunning_letter' GROUP BY 1) o ON o.invoice_id = i.id \
             WHERE i.order_id LIKE 'SO-%' AND coalesce(o.n, 0) <> 1",
        ),
        (
            "unbalanced journal entries",
            "SELECT count(*) FROM (SELECT entry_id FROM journal_lines GROUP BY 1 \
             HAVING sum(debit::numeric) <> sum(credit::numeric)) unbalanced",
        ),
    ] {
        assert_eq!(count(pool, sql).await, 0, "{what}");
    }
    let trial_balance: String = sqlx::query_scalar(
        "SELECT (coalesce(sum(debit::numeric), 0) - coalesce(sum(credit::numeric), 0))::text FROM journal_lines",
    )
    .fetch_one(pool)
    .await
    .expect("trial balance");
    assert!(
        trial_balance.trim_start_matches('-').chars().all(|c| c == '0' || c == '.'),
        "trial balance {trial_balance}"
    );
    Ledger { first_number, last_number, trial_balance }
}

/// The history chains of the orders the victim started, and of their children, check out
/// through the API.
pub(crate) async fn check_history_chains(driver: &Driver) -> usize {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT i.id FROM instances i JOIN mn_audit a ON a.tbl = 'instances' AND a.id = i.id \
         WHERE a.app = $1 ORDER BY i.id LIMIT 100",
    )
    .bind(serve_name(VICTIM))
    .fetch_all(&driver.db)
    .await
    .expect("instances the victim started");
    let token = driver.tokens.get("ada");
    for id in &ids {
        match driver.cluster.send(None, Method::GET, &format!("/v1/instances/{id}/history"), &token, None).await {
            Ok((200, history)) => assert_eq!(history["intact"], true, "history of {id}: {history}"),
            other => panic!("history of {id}: {other:?}"),
        }
    }
    ids.len()
}

/// The pace of the run, from when each order finished (its last update, stamped by the node that
/// finished it; the nodes share the machine's clock with the database, which marked the kill):
/// the run splits into its stretch with every node alive and the one after the kill.
pub(crate) struct Pace {
    /// Orders finished from the first finish up to the kill, and over how many seconds.
    before_kill: (i64, f64),
    /// Orders finished after the kill, and the seconds from the kill to the last finish.
    after_kill: (i64, f64),
    /// Orders finished in each 10 s from the first finish (the kill's 10 s marked `|`).
    per_10s: String,
    /// Orders per second from the 10th to the 90th percentile of the finishes: the pace once the
    /// run is going, without its start or the tail of orders waiting out the dead node's leases.
    steady: f64,
    /// How long an order took from its start to its end: mean and 90th percentile, in seconds.
    latency: (f64, f64),
    /// Transactions committed in the database by every process, reads included (PostgreSQL counts a
    /// read-only statement outside a transaction as one).
    commits: i64,
}

/// How fast orders finished before and after the kill (a figure, never an assertion).
pub(crate) async fn pace(pool: &PgPool) -> Pace {
    let (before, first, kill, after, last): (i64, f64, f64, i64, f64) = sqlx::query_as(
        "WITH done AS (SELECT updated_at::timestamptz AS at FROM instances WHERE process_key = 'order_to_cash'), \
         kill AS (SELECT at FROM mn_marks WHERE name = 'kill') \
         SELECT count(*) FILTER (WHERE done.at <= kill.at), \
         extract(epoch FROM min(done.at))::float8, extract(epoch FROM min(kill.at))::float8, \
         count(*) FILTER (WHERE done.at > kill.at), extract(epoch FROM max(done.at))::float8 \
         FROM done CROSS JOIN kill",
    )
    .fetch_one(pool)
    .await
    .unwrap_or_else(|e| panic!("the pace of the run: {e}"));
    let buckets: Vec<(i64, i64)> = sqlx::query_as(
        "WITH done AS (SELECT updated_at::timestamptz AS at FROM instances WHERE process_key = 'order_to_cash') \
         SELECT floor(extract(epoch FROM at - (SELECT min(at) FROM done)) / 10)::int8, count(*)::int8 \
         FROM done GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap_or_else(|e| panic!("the finishes by 10 s: {e}"));
    let kill_bucket = ((kill - first) / 10.0).floor() as i64;
    let last_bucket = buckets.last().map_or(0, |(b, _)| *b);
    let per_10s = (0..=last_bucket)
        .map(|b| {
            let n = buckets.iter().find(|(k, _)| *k == b).map_or(0, |(_, n)| *n);
            if b == kill_bucket { format!("|{n}|") } else { n.to_string() }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let commits: i64 =
        sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
            .fetch_one(pool)
            .await
            .unwrap_or_else(|e| panic!("the commit count: {e}"));
    let latency: (f64, f64) = sqlx::query_as(
        "WITH took AS (SELECT extract(epoch FROM updated_at::timestamptz - created_at::timestamptz)::float8 AS s \
         FROM instances WHERE process_key = 'order_to_cash') \
         SELECT avg(s)::float8, (percentile_cont(0.9) WITHIN GROUP (ORDER BY s))::float8 FROM took",
    )
    .fetch_one(pool)
    .await
    .unwrap_or_else(|e| panic!("the time an order took: {e}"));
    let (count, p10, p90): (i64, f64, f64) = sqlx::query_as(
        "WITH done AS (SELECT extract(epoch FROM updated_at::timestamptz)::float8 AS at FROM instances \
         WHERE process_key = 'order_to_cash') \
         SELECT count(*), (percentile_cont(0.1) WITHIN GROUP (ORDER BY at))::float8, \
         (percentile_cont(0.9) WITHIN GROUP (ORDER BY at))::float8 FROM done",
    )
    .fetch_one(pool)
    .await
    .unwrap_or_else(|e| panic!("the steady pace: {e}"));
    let steady = if p90 > p10 { 0.8 * count as f64 / (p90 - p10) } else { 0.0 };
    Pace { before_kill: (before, kill - first), after_kill: (after, last - kill), per_10s, steady, latency, commits }
}

/// The run and its checks, for the report on stderr.
pub(crate) struct Report {
    pub(crate) elapsed: Duration,
    pub(crate) killed_at: Duration,
    pub(crate) started_at_kill: usize,
    pub(crate) victim_timers: i64,
    pub(crate) instances: Instances,
    pub(crate) jobs: Jobs,
    pub(crate) timers: Timers,
    pub(crate) ledger: Ledger,
    pub(crate) intact: usize,
    pub(crate) pace: Pace,
}

impl Report {
    /// The figures, straight to stderr so that they show for a passing test too.
    pub(crate) fn print(&self, driver: &Driver) {
        let incidents = driver.incidents.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let tasks = driver.tasks_done.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let victim = serve_name(VICTIM);
        let mut out = format!(
            "multinode: {} orders to cash on 3 serve nodes and 2 workers (one PostgreSQL database) in {:.1} s: \
             {:.1} orders/s\n",
            orders(),
            self.elapsed.as_secs_f64(),
            orders() as f64 / self.elapsed.as_secs_f64()
        );
        let rate = |(n, secs): (i64, f64)| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        out.push_str(&format!(
            "  pace: {} orders finished in the {:.1} s from the first finish to the kill ({:.1} orders/s, every node \
             alive); {} in the {:.1} s after it ({:.1} orders/s, the dead node's jobs and timers waiting out their \
             leases and claims)\n",
            self.pace.before_kill.0,
            self.pace.before_kill.1,
            rate(self.pace.before_kill),
            self.pace.after_kill.0,
            self.pace.after_kill.1,
            rate(self.pace.after_kill),
        ));
        out.push_str(&format!(
            "  {:.1} orders/s from the 10th to the 90th percentile finish; an order took {:.1} s from start to end on \
             average, 90 % of them under {:.1} s (at most {} open: at that time an order, {:.0} orders/s at most)\n",
            self.pace.steady,
            self.pace.latency.0,
            self.pace.latency.1,
            max_open(),
            // Little's law: orders finish no faster than the open ones are let in.
            max_open() as f64 / self.pace.latency.0.max(f64::EPSILON),
        ));
        out.push_str(&format!(
            "  orders finished per 10 s: {}; {} transactions committed in the database (reads included), {:.1} per order\n",
            self.pace.per_10s,
            self.pace.commits,
            self.pace.commits as f64 / orders() as f64
        ));
        out.push_str(&format!(
            "  {victim} killed (SIGKILL) at {:.1} s, after {} starts, holding {} pending dunning timer(s); \
             {} request(s) sent again to a survivor, {} start(s) answered as duplicates\n",
            self.killed_at.as_secs_f64(),
            self.started_at_kill,
            self.victim_timers,
            driver.cluster.resent.load(Ordering::Relaxed),
            driver.duplicate_starts.load(Ordering::Relaxed),
        ));
        out.push_str(&format!("  orders started by node: {}\n", listing(&self.instances.started_by_node)));
        out.push_str(&format!(
            "  jobs: {} completed, each once: {}; {} taken over from {victim} after its leases ran out; {} failed attempt(s) retried\n",
            self.jobs.completed,
            listing(&self.jobs.by_worker),
            self.jobs.taken_over,
            self.jobs.failed_attempts,
        ));
        out.push_str(&format!(
            "  timers: {} dunning timers fired, {} after the kill; {} left by {victim} fired on the survivors \
             ({} of them claimed by {victim} when it died)\n",
            self.timers.dunning_fired,
            self.timers.fired_after_kill,
            self.timers.victims_fired,
            self.timers.victims_claimed_fired,
        ));
        out.push_str(&format!(
            "  people: {} tasks completed ({}); incidents retried by the operator: {}{}\n",
            tasks.values().sum::<usize>(),
            tasks.iter().map(|(node, n)| format!("{node} {n}")).collect::<Vec<_>>().join(", "),
            incidents.len(),
            incidents.values().map(|i| format!("\n    {i}")).collect::<String>(),
        ));
        out.push_str(&format!(
            "  ledger: {} invoices {}..{}, one per order, all paid and dunned once; trial balance {}; \
             {} history chains of {victim}'s instances intact\n",
            orders(),
            self.ledger.first_number,
            self.ledger.last_number,
            self.ledger.trial_balance,
            self.intact,
        ));
        let _ = std::io::stderr().write_all(out.as_bytes());
    }
}

fn listing(counts: &BTreeMap<String, i64>) -> String {
    counts.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
}
