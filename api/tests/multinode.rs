//! Several nodes on one PostgreSQL database, one of them killed.
//!
//! Three `cloverleaf serve` processes and two `cloverleaf worker` processes share one scratch
//! database. 2,000 orders to cash are started round robin across the serve nodes over HTTP;
//! half-way through, one serve node gets SIGKILL. Afterwards:
//!
//! - every order finished, once, at `cash_collected` (one instance per business key, one
//!   completion each, three children each);
//! - every job was completed exactly once, and no job was locked again after its completion;
//!   the jobs the dead node held were taken over when its leases ran out;
//! - the dunning timers the dead node had scheduled, still pending when it died, fired on the
//!   surviving nodes;
//! - the sub-ledger holds one invoice per order, gapless numbers, one dunning letter each, all
//!   paid, and a trial balance of zero.
//!
//! The processes are the reference ones of `processes/`, with the waits that take days turned
//! into seconds so that timers fire during the test, and an extra `start on message` on
//! `order_to_cash` ([`fixture_processes`]): a start by message is idempotent by the message id,
//! so a start retried after its node died without answering is still one instance (a retried
//! `POST /v1/instances` would make a second one).
//!
//! The test plays the people and systems around the orders, over HTTP only: sales signs orders
//! (`order.signed`), approvers work their inboxes (claim, complete), logistics reports each
//! dispatch and the bank each payment (paid once the first dunning letter went out, so that
//! every invoice has a timer that must fire), an operator retries incidents. To learn what is
//! waiting it reads the engine's tables (subscriptions, history), and it records every change of
//! a job, timer or instance row with triggers of its own (`mn_audit`), tagged with the writing
//! connection's `application_name`: each process connects as its own name, so the audit tells
//! which node or worker did what, and when.
//!
//! PostgreSQL is reached at `CLOVERLEAF_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432`); when it is unreachable the test is skipped with a
//! notice, unless `CI` is set.

use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cloverleaf_engine::testdb::ScratchDb;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::task::JoinSet;

/// Orders started.
const ORDERS: usize = 2_000;
/// The serve node killed (0-based), once this many orders have been started.
const VICTIM: usize = 1;
const KILL_AFTER_STARTS: usize = ORDERS / 2;
/// The dead node must hold at least this many pending dunning timers when it is killed (waited
/// for up to [`KILL_WAIT`] after [`KILL_AFTER_STARTS`]).
const MIN_VICTIM_TIMERS: i64 = 10;
const KILL_WAIT: Duration = Duration::from_secs(30);
/// Orders started but not finished at most; the starter waits below it.
const MAX_OPEN: usize = 400;
/// Requests the starter keeps in flight.
const START_CONCURRENCY: usize = 16;
/// Requests each other loop keeps in flight.
const LOOP_CONCURRENCY: usize = 12;
/// How long the run may go without an order starting or finishing before it is taken as stuck:
/// the test deadline (a loaded machine is slow, not broken), and at least three minutes.
fn stall_limit() -> Duration {
    cloverleaf_testkit::deadline().max(Duration::from_secs(180))
}
/// How often the loops look for work.
const POLL: Duration = Duration::from_millis(250);
/// Customers rated A or B with room for many open invoices.
const CUSTOMERS: [&str; 7] = ["C-002", "C-008", "C-010", "C-014", "C-018", "C-023", "C-030"];
/// Approvers and the roles they hold in the demo configuration `serve` writes.
const APPROVERS: [&str; 6] = ["mia", "cora", "dora", "carl", "lou", "arlo"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_serve_node_loses_no_order_and_runs_no_job_twice() {
    let Some(db) = ScratchDb::postgres().await else { return };
    let clock = Instant::now();
    let dir = TempDir::new();
    let processes = dir.path.join("processes");
    fixture_processes(&processes);
    let config = dir.path.join("cloverleaf.toml");
    let mut children = Children::new(&dir.path);

    let pool = PgPoolOptions::new()
        .max_connections(4)
        // The test's own reads wait behind five busy nodes on a loaded machine: slow, not broken.
        .acquire_timeout(cloverleaf_testkit::deadline())
        .connect(&connection_url(&db.url(), "multinode-test"))
        .await
        .expect("the test connects to its database");
    // What is tested is a node's death, not the database server's: commits need not wait for the
    // disk, which lets the sub-ledger (whose writes run one at a time) keep up.
    let name: String = sqlx::query_scalar("SELECT current_database()").fetch_one(&pool).await.expect("database name");
    sqlx::raw_sql(&format!("ALTER DATABASE \"{name}\" SET synchronous_commit = off"))
        .execute(&pool)
        .await
        .expect("synchronous_commit is set");
    // The first node creates the schema, the demo configuration and the demo company; the audit
    // triggers go in before anything runs; then the other nodes and the workers join.
    let mut nodes = vec![children.serve(0, &db.url(), &processes, &config)];
    sqlx::raw_sql(AUDIT).execute(&pool).await.expect("the audit triggers install");
    let more = [
        children.spawn_serve(1, &db.url(), &processes, &config),
        children.spawn_serve(2, &db.url(), &processes, &config),
    ];
    for index in more {
        nodes.push(children.address(index));
    }
    let tokens = Tokens::read(&dir.path.join("cloverleaf.tokens"));
    // The workers talk to the nodes that survive, so that they keep working throughout.
    let survivors: Vec<usize> = (0..nodes.len()).filter(|n| *n != VICTIM).collect();
    for (w, node) in survivors.iter().enumerate() {
        children.worker(w, &nodes[*node], &tokens.get("robot"), &db.url());
    }
    let cluster = Cluster::new(&nodes);
    let driver = Arc::new(Driver::new(cluster, pool.clone(), tokens));

    let mut loops = JoinSet::new();
    loops.spawn(Arc::clone(&driver).count_finished());
    loops.spawn(Arc::clone(&driver).work_inboxes());
    loops.spawn(Arc::clone(&driver).dispatch_shipments());
    loops.spawn(Arc::clone(&driver).pay_invoices());
    loops.spawn(Arc::clone(&driver).retry_incidents());
    note(clock, "3 serve nodes and 2 workers running; starting orders");
    let first_start = Instant::now();
    let starter = tokio::spawn(Arc::clone(&driver).start_orders());

    // Kill the victim half-way, once it holds dunning timers that have not fired yet.
    while driver.started.load(Ordering::SeqCst) < KILL_AFTER_STARTS {
        driver.check_deadline(clock, "waiting to kill a node").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let waiting_since = Instant::now();
    while victim_timers_pending(&pool).await < MIN_VICTIM_TIMERS && waiting_since.elapsed() < KILL_WAIT {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let victim_timers = victim_timers_pending(&pool).await;
    driver.cluster.nodes[VICTIM].alive.store(false, Ordering::SeqCst);
    children.kill(VICTIM);
    sqlx::query("INSERT INTO mn_marks (name, at) VALUES ('kill', clock_timestamp())")
        .execute(&pool)
        .await
        .expect("the kill is marked");
    let killed_at = clock.elapsed();
    note(clock, &format!("{} killed", serve_name(VICTIM)));
    let started_at_kill = driver.started.load(Ordering::SeqCst);

    while driver.finished.load(Ordering::SeqCst) < ORDERS {
        driver.check_deadline(clock, "waiting for every order to finish").await;
        tokio::time::sleep(POLL).await;
    }
    let elapsed = first_start.elapsed();
    driver.stop.store(true, Ordering::SeqCst);
    starter.await.expect("the starter stops");
    while let Some(joined) = loops.join_next().await {
        joined.expect("a driver loop stops");
    }
    let problems = driver.problems.lock().unwrap_or_else(PoisonError::into_inner).clone();
    assert!(problems.is_empty(), "the driver met {} problem(s):\n{}", problems.len(), problems.join("\n"));

    note(clock, "every order finished; checking the database");
    let instances = check_instances(&pool).await;
    let jobs = check_jobs(&pool).await;
    let timers = check_timers(&pool).await;
    let ledger = check_ledger(&pool).await;
    let intact = check_history_chains(&driver).await;
    let report = Report { elapsed, killed_at, started_at_kill, victim_timers, instances, jobs, timers, ledger, intact };
    report.print(&driver);
    pool.close().await;
}

/// A line of progress on stderr (shown even when the test passes).
fn note(clock: Instant, what: &str) {
    let _ = writeln!(std::io::stderr(), "multinode: {:6.1} s {what}", clock.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------------------------
// The processes

/// The reference processes this test runs (`month_end_close` would only add a cron start).
const REFERENCE: [&str; 5] = [
    "roles.flow",
    "order_approval.flow",
    "ship_then_invoice.flow",
    "collect_then_reconcile.flow",
    "order_to_cash.flow",
];

/// What changes in them: (file, reference text, replacement). The first dunning comes 5 s after
/// an invoice starts waiting for payment, the later steps of dunning never during the test; a
/// dispatch is chased after 30 s instead of 5 days; `order_to_cash` also starts on a message.
const CHANGES: [(&str, &str, &str); 5] = [
    ("collect_then_reconcile.flow", "also after due_date + 7d -> first_dunning", "also after 5s -> first_dunning"),
    ("collect_then_reconcile.flow", "also after due_date + 30d -> second_dunning", "also after 1h -> second_dunning"),
    ("collect_then_reconcile.flow", "after due_date + 60d -> finance_decision", "after 2h -> finance_decision"),
    ("ship_then_invoice.flow", "after 5d -> chase_shipment", "after 30s -> chase_shipment"),
    (
        "order_to_cash.flow",
        "  start -> approve\n",
        "  start -> approve\n  start signed on message \"order.signed\" -> approve\n",
    ),
];

/// Writes the reference processes with [`CHANGES`] into `dir`, and checks them with the binary.
fn fixture_processes(dir: &Path) {
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("../processes");
    std::fs::create_dir_all(dir).expect("the processes directory is created");
    for file in REFERENCE {
        let mut text = std::fs::read_to_string(reference.join(file)).expect("the reference process reads");
        for (_, from, to) in CHANGES.iter().filter(|(f, _, _)| *f == file) {
            assert!(text.contains(from), "processes/{file} no longer contains `{from}`: update this test's CHANGES");
            text = text.replacen(from, to, 1);
        }
        std::fs::write(dir.join(file), text).expect("the fixture process writes");
    }
    let files: Vec<PathBuf> = REFERENCE.iter().map(|f| dir.join(f)).collect();
    let output = Command::new(env!("CARGO_BIN_EXE_cloverleaf")).arg("check").args(&files).output().expect("check runs");
    assert!(
        output.status.success(),
        "the fixture processes do not check:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// One order: its id, customer and amount. One in ten is above 10,000 and needs a sales
/// manager's approval; the others are approved straight through (unless the customer's open
/// receivables reach its credit limit, when a credit controller reviews it first).
fn order(n: usize) -> (String, &'static str, String) {
    let spread = (n * 7_919) % 145_000;
    let cents = if n % 10 == 9 { 1_050_000 + spread } else { 5_000 + spread };
    (format!("SO-{:05}", n + 1), CUSTOMERS[n % CUSTOMERS.len()], format!("{}.{:02}", cents / 100, cents % 100))
}

/// The form an approver sends for a task at `node`.
fn form(node: &str) -> Option<Value> {
    match node {
        "credit_review" | "manager_approval" | "director_approval" | "cfo_approval" => Some(json!({"approve": true})),
        "chase_shipment" => Some(json!({"chase_note": "dispatch confirmed by the warehouse"})),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// The audit

/// Every change of a job, timer or instance row, with the `application_name` of the connection
/// that wrote it; `mn_marks` holds the moment of the kill.
const AUDIT: &str = r#"
CREATE TABLE mn_marks (name TEXT PRIMARY KEY, at TIMESTAMPTZ NOT NULL);
CREATE TABLE mn_audit (
    seq BIGSERIAL PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    app TEXT NOT NULL DEFAULT current_setting('application_name'),
    tbl TEXT NOT NULL,
    op TEXT NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    instance_id TEXT,
    node TEXT,
    new_state TEXT,
    new_owner TEXT,
    new_epoch BIGINT,
    old_state TEXT,
    old_owner TEXT,
    old_epoch BIGINT,
    due_at TEXT,
    claimed_until TEXT
);
CREATE INDEX mn_audit_row ON mn_audit (tbl, id);

CREATE FUNCTION mn_audit_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO mn_audit (tbl, op, id, instance_id, node, new_state, new_owner, new_epoch)
        VALUES ('jobs', 'insert', NEW.id, NEW.instance_id, NEW.job_type, NEW.state, NEW.lock_owner, NEW.lock_epoch);
    ELSE
        INSERT INTO mn_audit (tbl, op, id, instance_id, node, new_state, new_owner, new_epoch,
                              old_state, old_owner, old_epoch)
        VALUES ('jobs', 'update', NEW.id, NEW.instance_id, NEW.job_type, NEW.state, NEW.lock_owner,
                NEW.lock_epoch, OLD.state, OLD.lock_owner, OLD.lock_epoch);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER mn_audit_jobs AFTER INSERT OR UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION mn_audit_jobs();

CREATE FUNCTION mn_audit_timers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO mn_audit (tbl, op, id, instance_id, node, due_at, claimed_until)
        VALUES ('timers', 'delete', OLD.id, OLD.instance_id, OLD.node, OLD.due_at, OLD.claimed_until);
    ELSE
        INSERT INTO mn_audit (tbl, op, id, instance_id, node, due_at, claimed_until)
        VALUES ('timers', lower(TG_OP), NEW.id, NEW.instance_id, NEW.node, NEW.due_at, NEW.claimed_until);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER mn_audit_timers AFTER INSERT OR UPDATE OR DELETE ON timers
    FOR EACH ROW EXECUTE FUNCTION mn_audit_timers();

CREATE FUNCTION mn_audit_instances() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO mn_audit (tbl, op, id, node) VALUES ('instances', 'insert', NEW.id, NEW.process_key);
    RETURN NULL;
END $$;
CREATE TRIGGER mn_audit_instances AFTER INSERT ON instances FOR EACH ROW EXECUTE FUNCTION mn_audit_instances();
"#;

/// The `application_name` of serve node `index`.
fn serve_name(index: usize) -> String {
    format!("serve-{}", index + 1)
}

/// `url` with the connection named `name` (what the audit records as `app`).
fn connection_url(url: &str, name: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}application_name={name}")
}

/// A dunning timer: one at `await_payment` due within a minute of being scheduled (the other
/// two boundaries there are hours away).
const DUNNING_TIMER: &str = "a.node = 'await_payment' AND a.due_at::timestamptz < a.at + interval '1 minute'";

/// Dunning timers the victim scheduled that have not fired yet.
async fn victim_timers_pending(pool: &PgPool) -> i64 {
    let sql = format!(
        "SELECT count(*) FROM timers t JOIN mn_audit a ON a.tbl = 'timers' AND a.op = 'insert' AND a.id = t.id \
         WHERE a.app = $1 AND {DUNNING_TIMER}"
    );
    sqlx::query_scalar(&sql).bind(serve_name(VICTIM)).fetch_one(pool).await.expect("pending timers count")
}

// ---------------------------------------------------------------------------------------------
// The driver: the people and systems around the orders

/// A serve node as the driver sees it.
struct Node {
    name: String,
    url: String,
    alive: AtomicBool,
}

/// The serve nodes behind one HTTP client: a request goes to a live node, and one that fails
/// for want of an answer (a dead node, a reset connection) or with a 5xx is sent again to the
/// next live node. Everything the driver sends may be sent twice: starts and messages carry a
/// message id, and a second claim or completion of a task answers 409.
struct Cluster {
    nodes: Vec<Node>,
    http: reqwest::Client,
    next: AtomicUsize,
    /// Requests sent again because their node had died.
    resent: AtomicUsize,
}

impl Cluster {
    fn new(urls: &[String]) -> Cluster {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(30))
            .build()
            .expect("the HTTP client builds");
        let nodes = urls
            .iter()
            .enumerate()
            .map(|(n, url)| Node { name: serve_name(n), url: url.clone(), alive: AtomicBool::new(true) })
            .collect();
        Cluster { nodes, http, next: AtomicUsize::new(0), resent: AtomicUsize::new(0) }
    }

    /// Sends a request to node `prefer` (or the next in turn) if it lives, else to the next one
    /// alive; returns the status and the JSON body of the first answer below 500.
    async fn send(
        &self,
        prefer: Option<usize>,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let first = prefer.unwrap_or_else(|| self.next.fetch_add(1, Ordering::Relaxed));
        let mut last = String::new();
        for attempt in 0..20 {
            // Each attempt starts one node further along.
            let node = (0..self.nodes.len())
                .map(|k| &self.nodes[(first + attempt + k) % self.nodes.len()])
                .find(|n| n.alive.load(Ordering::SeqCst))
                .ok_or("no node is alive")?;
            let mut request = self.http.request(method.clone(), format!("{}{path}", node.url)).bearer_auth(token);
            if let Some(body) = body {
                request = request.json(body);
            }
            let answer = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    response.text().await.map(|text| (status, text))
                }
                Err(e) => Err(e),
            };
            match answer {
                Ok((status, text)) if status < 500 => {
                    return Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))));
                }
                Ok((status, text)) => last = format!("{} answered {status}: {text}", node.name),
                Err(e) => {
                    if !node.alive.load(Ordering::SeqCst) {
                        self.resent.fetch_add(1, Ordering::Relaxed);
                    }
                    last = format!("{}: {e}", node.name);
                }
            }
            tokio::time::sleep(Duration::from_millis(50 * (attempt as u64 + 1).min(10))).await;
        }
        Err(format!("{method} {path}: no answer after 20 attempts; last: {last}"))
    }
}

/// The plain tokens `serve` wrote beside the configuration it created.
struct Tokens(BTreeMap<String, String>);

impl Tokens {
    fn read(path: &Path) -> Tokens {
        let text = std::fs::read_to_string(path).expect("serve wrote the tokens file");
        let tokens = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| Some((l.split_whitespace().next()?.to_string(), l.split('"').nth(1)?.to_string())))
            .collect();
        Tokens(tokens)
    }

    fn get(&self, user: &str) -> String {
        self.0.get(user).unwrap_or_else(|| panic!("no token for {user}")).clone()
    }
}

struct Driver {
    cluster: Cluster,
    db: PgPool,
    tokens: Tokens,
    /// Orders whose start was acknowledged.
    started: AtomicUsize,
    /// Starts answered as duplicates (sent again after a first attempt had started the order).
    duplicate_starts: AtomicUsize,
    /// Orders finished, as last counted.
    finished: AtomicUsize,
    tasks_done: AtomicUsize,
    shipped: Mutex<HashSet<String>>,
    paid: Mutex<HashSet<String>>,
    busy_tasks: Mutex<HashSet<String>>,
    incidents: Mutex<BTreeMap<String, String>>,
    problems: Mutex<Vec<String>>,
    stop: AtomicBool,
    /// When orders last started or finished, and how many had by then.
    progress: Mutex<(Instant, usize)>,
}

/// Runs `work` on each item, at most `limit` at once.
async fn bounded<T, F, Fut>(items: Vec<T>, limit: usize, work: F)
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut set = JoinSet::new();
    for item in items {
        if set.len() >= limit {
            rethrow(set.join_next().await);
        }
        set.spawn(work(item));
    }
    while let Some(joined) = set.join_next().await {
        rethrow(Some(joined));
    }
}

/// Passes a spawned task's panic on.
fn rethrow(joined: Option<Result<(), tokio::task::JoinError>>) {
    if let Some(Err(e)) = joined
        && e.is_panic()
    {
        std::panic::resume_unwind(e.into_panic());
    }
}

impl Driver {
    fn new(cluster: Cluster, db: PgPool, tokens: Tokens) -> Driver {
        Driver {
            cluster,
            db,
            tokens,
            started: AtomicUsize::new(0),
            duplicate_starts: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            tasks_done: AtomicUsize::new(0),
            shipped: Mutex::new(HashSet::new()),
            paid: Mutex::new(HashSet::new()),
            busy_tasks: Mutex::new(HashSet::new()),
            incidents: Mutex::new(BTreeMap::new()),
            problems: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            progress: Mutex::new((Instant::now(), 0)),
        }
    }

    fn problem(&self, what: String) {
        self.problems.lock().unwrap_or_else(PoisonError::into_inner).push(what);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Fails with what is stuck when no order has started or finished for [`stall_limit`]: the
    /// run may be slow on a loaded machine, but it must keep moving.
    async fn check_deadline(&self, clock: Instant, doing: &str) {
        let moved = self.started.load(Ordering::SeqCst) + self.finished.load(Ordering::SeqCst);
        {
            let mut progress = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
            if moved != progress.1 {
                *progress = (Instant::now(), moved);
            }
            if progress.0.elapsed() < stall_limit() {
                return;
            }
        }
        let problems = self.problems.lock().unwrap_or_else(PoisonError::into_inner).clone();
        panic!(
            "{doing}: nothing moved for {:?}; {} of {ORDERS} orders started, {} finished after {:?}\n{}\nproblems: {problems:#?}",
            stall_limit(),
            self.started.load(Ordering::SeqCst),
            self.finished.load(Ordering::SeqCst),
            clock.elapsed(),
            stuck(&self.db).await
        );
    }

    /// Sales signs the orders, round robin across the nodes, keeping at most [`MAX_OPEN`]
    /// unfinished.
    async fn start_orders(self: Arc<Self>) {
        let mut set = JoinSet::new();
        for n in 0..ORDERS {
            while n >= self.finished.load(Ordering::SeqCst) + MAX_OPEN && !self.stopped() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if set.len() >= START_CONCURRENCY {
                rethrow(set.join_next().await);
            }
            set.spawn(Arc::clone(&self).start(n));
        }
        while let Some(joined) = set.join_next().await {
            rethrow(Some(joined));
        }
    }

    async fn start(self: Arc<Self>, n: usize) {
        let (order_id, customer, amount) = order(n);
        let body = json!({
            "name": "order.signed",
            "correlation_key": order_id,
            "message_id": format!("signed-{order_id}"),
            "variables": {"order_id": order_id, "customer_id": customer, "amount": amount, "requested_by": "sam"},
        });
        let token = self.tokens.get("ada");
        let answer = self
            .cluster
            .send(Some(n % self.cluster.nodes.len()), Method::POST, "/v1/messages", &token, Some(&body))
            .await;
        match answer {
            Ok((200, reply)) if reply["outcome"] == "delivered" => {}
            Ok((200, reply)) if reply["outcome"] == "duplicate" => {
                self.duplicate_starts.fetch_add(1, Ordering::Relaxed);
            }
            other => return self.problem(format!("start of {order_id}: {other:?}")),
        }
        self.started.fetch_add(1, Ordering::SeqCst);
    }

    /// Counts the orders finished.
    async fn count_finished(self: Arc<Self>) {
        while !self.stopped() {
            let finished: Result<i64, _> = sqlx::query_scalar(
                "SELECT count(*) FROM instances WHERE process_key = 'order_to_cash' AND status <> 'running' \
                 AND status <> 'created'",
            )
            .fetch_one(&self.db)
            .await;
            match finished {
                Ok(n) => self.finished.store(usize::try_from(n).unwrap_or(0), Ordering::SeqCst),
                Err(e) => self.problem(format!("counting finished orders: {e}")),
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Approvers claim and complete what their inboxes show.
    async fn work_inboxes(self: Arc<Self>) {
        while !self.stopped() {
            let mut work = Vec::new();
            for user in APPROVERS {
                let token = self.tokens.get(user);
                match self.cluster.send(None, Method::GET, "/v1/tasks", &token, None).await {
                    Ok((200, Value::Array(tasks))) => {
                        let mut busy = self.busy_tasks.lock().unwrap_or_else(PoisonError::into_inner);
                        for task in tasks {
                            let id = task["id"].as_str().unwrap_or_default().to_string();
                            if task["state"] == "open" && busy.insert(id.clone()) {
                                work.push((
                                    user,
                                    token.clone(),
                                    id,
                                    task["node"].as_str().unwrap_or_default().to_string(),
                                ));
                            }
                        }
                    }
                    other => self.problem(format!("inbox of {user}: {other:?}")),
                }
            }
            let me = Arc::clone(&self);
            bounded(work, LOOP_CONCURRENCY, move |(user, token, id, node)| {
                let me = Arc::clone(&me);
                async move { me.complete_task(user, &token, &id, &node).await }
            })
            .await;
            tokio::time::sleep(POLL).await;
        }
    }

    async fn complete_task(&self, user: &str, token: &str, id: &str, node: &str) {
        let Some(form) = form(node) else {
            return self.problem(format!("{user} got an unexpected task {id} at {node}"));
        };
        let path = format!("/v1/tasks/{id}");
        let claimed = self.cluster.send(None, Method::POST, &format!("{path}/claim"), token, None).await;
        // 409: claimed before (by this user, through a node that died before answering) or closed.
        if !matches!(claimed, Ok((200 | 409, _))) {
            self.busy_tasks.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
            return self.problem(format!("{user} claiming {id}: {claimed:?}"));
        }
        let body = json!({"variables": form});
        match self.cluster.send(None, Method::POST, &format!("{path}/complete"), token, Some(&body)).await {
            Ok((200, _)) => {
                self.tasks_done.fetch_add(1, Ordering::Relaxed);
            }
            // Completed already: an earlier attempt went through.
            Ok((409, _)) => {}
            other => {
                self.busy_tasks.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
                self.problem(format!("{user} completing {id}: {other:?}"));
            }
        }
    }

    /// Logistics reports the dispatch of every order that waits for it.
    async fn dispatch_shipments(self: Arc<Self>) {
        let token = self.tokens.get("ada");
        while !self.stopped() {
            let waiting: Vec<String> = match sqlx::query_scalar(
                "SELECT correlation_key FROM subscriptions WHERE message_name = 'shipment.dispatched'",
            )
            .fetch_all(&self.db)
            .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    self.problem(format!("reading subscriptions: {e}"));
                    Vec::new()
                }
            };
            let new: Vec<String> = {
                let mut shipped = self.shipped.lock().unwrap_or_else(PoisonError::into_inner);
                waiting.into_iter().filter(|o| shipped.insert(o.clone())).collect()
            };
            let me = Arc::clone(&self);
            let token = token.clone();
            bounded(new, LOOP_CONCURRENCY, move |order_id| {
                let (me, token) = (Arc::clone(&me), token.clone());
                async move {
                    let body = json!({
                        "name": "shipment.dispatched",
                        "correlation_key": order_id,
                        "message_id": format!("dispatched-{order_id}"),
                        "variables": {"shipment_id": format!("SH-{order_id}"), "carrier": "DHL"},
                    });
                    me.send_message(&token, &body, &me.shipped, &order_id).await;
                }
            })
            .await;
            tokio::time::sleep(POLL).await;
        }
    }

    /// The bank reports the payment of every invoice that waits for it once its first dunning
    /// letter went out.
    async fn pay_invoices(self: Arc<Self>) {
        let token = self.tokens.get("ada");
        while !self.stopped() {
            let waiting: Vec<(String, String)> = match sqlx::query_as(
                "SELECT s.instance_id, s.correlation_key FROM subscriptions s \
                 WHERE s.message_name = 'payment.received' AND EXISTS (SELECT 1 FROM history h \
                 WHERE h.instance_id = s.instance_id AND h.kind = 'end_reached' AND h.node = 'dunning_done')",
            )
            .fetch_all(&self.db)
            .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    self.problem(format!("reading subscriptions: {e}"));
                    Vec::new()
                }
            };
            let new: Vec<(String, String)> = {
                let mut paid = self.paid.lock().unwrap_or_else(PoisonError::into_inner);
                waiting.into_iter().filter(|(_, invoice)| paid.insert(invoice.clone())).collect()
            };
            let me = Arc::clone(&self);
            let token = token.clone();
            bounded(new, LOOP_CONCURRENCY, move |(instance, invoice)| {
                let (me, token) = (Arc::clone(&me), token.clone());
                async move { me.pay(&token, &instance, &invoice).await }
            })
            .await;
            tokio::time::sleep(POLL).await;
        }
    }

    async fn pay(&self, token: &str, instance: &str, invoice: &str) {
        let amount = match self.cluster.send(None, Method::GET, &format!("/v1/instances/{instance}"), token, None).await
        {
            Ok((200, view)) => view["variables"]["amount_due"].clone(),
            other => {
                self.paid.lock().unwrap_or_else(PoisonError::into_inner).remove(invoice);
                return self.problem(format!("reading {instance}: {other:?}"));
            }
        };
        let body = json!({
            "name": "payment.received",
            "correlation_key": invoice,
            "message_id": format!("paid-{invoice}"),
            "variables": {"amount": amount, "reference": invoice, "payment_id": format!("PAY-{invoice}")},
        });
        self.send_message(token, &body, &self.paid, invoice).await;
    }

    /// Sends a message; on failure forgets `key` in `sent` so that the next round sends it again.
    async fn send_message(&self, token: &str, body: &Value, sent: &Mutex<HashSet<String>>, key: &str) {
        match self.cluster.send(None, Method::POST, "/v1/messages", token, Some(body)).await {
            Ok((200 | 202, _)) => {}
            other => {
                sent.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
                self.problem(format!("message {}: {other:?}", body["message_id"]));
            }
        }
    }

    /// An operator retries every incident (and the test reports them).
    async fn retry_incidents(self: Arc<Self>) {
        let token = self.tokens.get("ada");
        while !self.stopped() {
            match self.cluster.send(None, Method::GET, "/v1/incidents", &token, None).await {
                Ok((200, Value::Array(incidents))) => {
                    for incident in incidents {
                        let id = incident["id"].as_str().unwrap_or_default().to_string();
                        let what =
                            format!("{} at {}: {}", incident["instance_id"], incident["node"], incident["message"]);
                        self.incidents.lock().unwrap_or_else(PoisonError::into_inner).insert(id.clone(), what);
                        let path = format!("/v1/incidents/{id}/retry");
                        match self.cluster.send(None, Method::POST, &path, &token, None).await {
                            Ok((200 | 409, _)) => {}
                            other => self.problem(format!("retrying incident {id}: {other:?}")),
                        }
                    }
                }
                other => self.problem(format!("listing incidents: {other:?}")),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// What is left unfinished, for a failure message.
async fn stuck(pool: &PgPool) -> String {
    let queries = [
        (
            "instances by process and status",
            "SELECT process_key || ' ' || status, count(*) FROM instances GROUP BY 1 ORDER BY 1",
        ),
        (
            "jobs by type and state",
            "SELECT job_type || ' ' || state, count(*) FROM jobs WHERE state <> 'done' GROUP BY 1 ORDER BY 1",
        ),
        ("open tasks by node", "SELECT node, count(*) FROM tasks WHERE state = 'open' GROUP BY 1 ORDER BY 1"),
        ("subscriptions by message", "SELECT message_name, count(*) FROM subscriptions GROUP BY 1 ORDER BY 1"),
        ("timers by node", "SELECT node, count(*) FROM timers GROUP BY 1 ORDER BY 1"),
        (
            "open incidents by node",
            "SELECT node || ': ' || min(message), count(*) FROM incidents WHERE state = 'open' GROUP BY node ORDER BY 1",
        ),
    ];
    let mut out = String::new();
    for (title, sql) in queries {
        out.push_str(&format!("{title}:\n"));
        match sqlx::query_as::<_, (String, i64)>(sql).fetch_all(pool).await {
            Ok(rows) => rows.iter().for_each(|(k, n)| out.push_str(&format!("  {k}: {n}\n"))),
            Err(e) => out.push_str(&format!("  ({e})\n")),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The checks

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

struct Instances {
    started_by_node: BTreeMap<String, i64>,
}

/// Every order finished once, at `cash_collected`, with one child per call.
async fn check_instances(pool: &PgPool) -> Instances {
    let orders = ORDERS as i64;
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

struct Jobs {
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
async fn check_jobs(pool: &PgPool) -> Jobs {
    let orders = ORDERS as i64;
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

struct Timers {
    dunning_fired: i64,
    fired_after_kill: i64,
    victims_fired: i64,
    victims_claimed_fired: i64,
}

/// Each invoice's first dunning timer fired once; those the victim scheduled and had not fired
/// when it died fired on the survivors after the kill.
async fn check_timers(pool: &PgPool) -> Timers {
    let orders = ORDERS as i64;
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
    let pending = format!(
        "FROM mn_audit a WHERE a.tbl = 'timers' AND a.op = 'insert' AND a.app = '{victim}' AND {DUNNING_TIMER} \
         AND a.at < {kill} AND NOT EXISTS (SELECT 1 FROM mn_audit d WHERE d.tbl = 'timers' AND d.op = 'delete' \
             AND d.id = a.id AND d.at < {kill})"
    );
    let victims_pending = count(pool, &format!("SELECT count(*) {pending}")).await;
    assert!(
        victims_pending > 0,
        "{victim} held no pending dunning timer when it died: the test did not exercise timer takeover"
    );
    let victims_fired = count(
        pool,
        &format!(
            "SELECT count(*) {pending} AND EXISTS (SELECT 1 FROM mn_audit d WHERE d.tbl = 'timers' AND d.op = 'delete' \
                 AND d.id = a.id AND d.at > {kill} AND d.app <> '{victim}') \
             AND EXISTS (SELECT 1 FROM history h WHERE h.instance_id = a.instance_id AND h.kind = 'timer_fired' \
                 AND h.node = 'await_payment' AND h.at::timestamptz > {kill})"
        ),
    )
    .await;
    assert_eq!(victims_fired, victims_pending, "every dunning timer {victim} left fired on another node after it died");
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

struct Ledger {
    first_number: String,
    last_number: String,
    trial_balance: String,
}

/// One invoice per order, numbered without gaps, paid, dunned once; the books balance.
async fn check_ledger(pool: &PgPool) -> Ledger {
    let orders = ORDERS as i64;
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
async fn check_history_chains(driver: &Driver) -> usize {
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

struct Report {
    elapsed: Duration,
    killed_at: Duration,
    started_at_kill: usize,
    victim_timers: i64,
    instances: Instances,
    jobs: Jobs,
    timers: Timers,
    ledger: Ledger,
    intact: usize,
}

impl Report {
    /// The figures, straight to stderr so that they show for a passing test too.
    fn print(&self, driver: &Driver) {
        let incidents = driver.incidents.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let victim = serve_name(VICTIM);
        let mut out = format!(
            "multinode: {ORDERS} orders to cash on 3 serve nodes and 2 workers (one PostgreSQL database) in {:.1} s: \
             {:.1} orders/s\n",
            self.elapsed.as_secs_f64(),
            ORDERS as f64 / self.elapsed.as_secs_f64()
        );
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
            "  people: {} tasks completed; incidents retried by the operator: {}{}\n",
            driver.tasks_done.load(Ordering::Relaxed),
            incidents.len(),
            incidents.values().map(|i| format!("\n    {i}")).collect::<String>(),
        ));
        out.push_str(&format!(
            "  ledger: {ORDERS} invoices {}..{}, one per order, all paid and dunned once; trial balance {}; \
             {} history chains of {victim}'s instances intact\n",
            self.ledger.first_number, self.ledger.last_number, self.ledger.trial_balance, self.intact,
        ));
        let _ = std::io::stderr().write_all(out.as_bytes());
    }
}

fn listing(counts: &BTreeMap<String, i64>) -> String {
    counts.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
}

// ---------------------------------------------------------------------------------------------
// Processes and files

/// A temporary directory, removed unless the test fails (then its logs stay for a look).
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new() -> TempDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!("cloverleaf-multinode-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("the scratch directory is created");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = writeln!(std::io::stderr(), "multinode: logs and configuration kept in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A child process and the file its stderr goes to.
struct Child {
    name: String,
    process: std::process::Child,
    log: PathBuf,
}

/// The child processes: each is killed and waited for when this is dropped, and when the test
/// fails the tail of each one's log is printed.
struct Children {
    dir: PathBuf,
    list: Vec<Child>,
}

impl Children {
    fn new(dir: &Path) -> Children {
        Children { dir: dir.to_path_buf(), list: Vec::new() }
    }

    fn spawn(&mut self, name: &str, args: &[&str], env: &[(&str, &str)]) -> usize {
        let log = self.dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("the log file is created");
        let process = Command::new(env!("CARGO_BIN_EXE_cloverleaf"))
            .current_dir(&self.dir)
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        self.list.push(Child { name: name.to_string(), process, log });
        self.list.len() - 1
    }

    /// Starts serve node `index` without waiting for it; returns its place in the list.
    fn spawn_serve(&mut self, index: usize, db: &str, processes: &Path, config: &Path) -> usize {
        let name = serve_name(index);
        let url = connection_url(db, &name);
        let (processes, config) = (processes.display().to_string(), config.display().to_string());
        let args = ["serve", "--db", &url, "--processes", &processes, "--config", &config, "--listen", "127.0.0.1:0"];
        self.spawn(&name, &args, &[])
    }

    /// Starts serve node `index` and waits until it serves; returns its base URL.
    fn serve(&mut self, index: usize, db: &str, processes: &Path, config: &Path) -> String {
        let child = self.spawn_serve(index, db, processes, config);
        self.address(child)
    }

    /// The base URL child `index` prints once it serves.
    fn address(&mut self, index: usize) -> String {
        let started = Instant::now();
        loop {
            let child = &mut self.list[index];
            let log = std::fs::read_to_string(&child.log).unwrap_or_default();
            if let Some(rest) = log.split("serving on http://").nth(1) {
                let address = rest.split_whitespace().next().unwrap_or_default();
                return format!("http://{address}");
            }
            if let Ok(Some(status)) = child.process.try_wait() {
                panic!("{} exited with {status} before serving:\n{log}", child.name);
            }
            assert!(started.elapsed() < Duration::from_secs(120), "{} did not start serving:\n{log}", child.name);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn worker(&mut self, index: usize, server: &str, token: &str, db: &str) {
        let name = format!("worker-{}", index + 1);
        let ledger = connection_url(db, &name);
        let args = ["worker", "--server", server, "--worker-id", &name, "--ledger", &ledger];
        self.spawn(&name, &args, &[("CLOVERLEAF_TOKEN", token)]);
    }

    /// SIGKILL (what `Child::kill` sends on Unix) to serve node `index`, then reaps it.
    fn kill(&mut self, index: usize) {
        let child = &mut self.list[index];
        assert_eq!(child.name, serve_name(index), "the serve nodes come first in the list");
        child.process.kill().unwrap_or_else(|e| panic!("cannot kill {}: {e}", child.name));
        let _ = child.process.wait();
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.list {
            let _ = child.process.kill();
            let _ = child.process.wait();
        }
        if std::thread::panicking() {
            let mut out = String::new();
            for child in &self.list {
                let log = std::fs::read_to_string(&child.log).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                out.push_str(&format!("---- last lines of {} ({})\n", child.name, child.log.display()));
                for line in &lines[lines.len().saturating_sub(40)..] {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            let _ = std::io::stderr().write_all(out.as_bytes());
        }
    }
}
