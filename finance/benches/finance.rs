//! Worker throughput on a file-backed SQLite database (WAL, `synchronous=FULL`): jobs completed
//! per second by an in-process worker, with a no-op handler and with the invoice handler, beside
//! the engine's straight-through rate (start → job completed through the engine API → end)
//! measured in the same run. Then the invoice handler on PostgreSQL, with one node and with two
//! (each an engine, a ledger handle and a worker on one database), when a server is reachable
//! (`CLOVERLEAF_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432`; a scratch database
//! is created and dropped), and then the cost postings the same instances queued (one per order,
//! no number series), beside the server's raw single-row commits per second in the same
//! run: one connection committing one after another, and four at once (commits that share a
//! disk flush).
//!
//! `cargo bench -p cloverleaf-finance --bench finance` (env: `BENCH_JOBS`, `BENCH_INVOICES`,
//! `BENCH_CONCURRENCY`, `BENCH_WORKER_CONCURRENCY`, `BENCH_WORKER_THREADS` (tokio's, default 2);
//! `BENCH_CUSTOMERS`, how many customers the PostgreSQL invoices are spread over: the demo
//! company's first twelve by default, as many customers added for the run above twelve;
//! `BENCH_PG=0` leaves PostgreSQL out).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use cloverleaf_engine::SystemClock;
use cloverleaf_engine::runtime::{Engine, Message};
use cloverleaf_engine::store::AnyStore;
use cloverleaf_finance::ledger::NewCustomer;
use cloverleaf_finance::{self as finance, Ledger};
use cloverleaf_testkit::machine::{cpu_busy, cpu_model, cpu_times};
use cloverleaf_testkit::testdb::ScratchDb;
use cloverleaf_worker::{Handlers, JobContext, Worker, WorkerHandle, WorkerOptions, WorkerStats};
use rust_decimal::Decimal;
use serde_json::json;

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> BenchResult<()> {
    let threads = env_usize("BENCH_WORKER_THREADS", 2);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?;
    runtime.block_on(run())
}

async fn run() -> BenchResult<()> {
    let jobs = env_usize("BENCH_JOBS", 10_000);
    let invoices = env_usize("BENCH_INVOICES", 3_000);
    let concurrency = env_usize("BENCH_CONCURRENCY", 256);
    let worker_concurrency = env_usize("BENCH_WORKER_CONCURRENCY", 256);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("bench-worker-{}.db", std::process::id()));
    remove(&path);

    let engine = Engine::connect(&path.display().to_string(), Arc::new(SystemClock)).await?;
    let files = reference_files()?;
    engine.deploy(&files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect::<Vec<_>>()).await?;
    let ledger = Ledger::open(&path).await?;
    ledger.seed_demo_company(engine.now().date_naive()).await?;

    // Warm-up, then the engine's own straight-through figure.
    straight_through(&engine, 500, 64).await?;
    let engine_rate = straight_through(&engine, jobs, concurrency).await?;

    // The same instances with their credit checks queued, drained by a worker with a no-op handler.
    start_orders(&engine, jobs, concurrency).await?;
    let mut noop = Handlers::new();
    noop.register("credit.check", |_: JobContext| async {
        Ok(json!({"credit_limit": "50000.00", "open_ar": "0.00", "risk": "A"}))
    });
    let (noop_rate, noop_stats) = drain(&engine, noop, jobs, worker_concurrency).await?;

    // Straight through with the worker: starters and the worker at once.
    let mut noop = Handlers::new();
    noop.register("credit.check", |_: JobContext| async {
        Ok(json!({"credit_limit": "50000.00", "open_ar": "0.00", "risk": "A"}))
    });
    let worker_st_rate = with_worker(&engine, noop, jobs, concurrency, worker_concurrency).await?;

    // Invoices: each job issues a numbered invoice and posts it in the ledger (its own transaction).
    queue_invoices(&engine, invoices, concurrency, DEMO_CUSTOMERS).await?;
    let (invoice_rate, invoice_stats) = drain(&engine, invoice_only(&ledger), invoices, worker_concurrency).await?;
    let balanced = ledger.trial_balance().await?.is_balanced();

    let cpu = cpu_model();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("machine: {cores} cores, {cpu}");
    println!("sqlite: WAL, synchronous=FULL, file {}", path.display());
    println!(
        "engine straight-through instances/s (API):   {engine_rate:>8.0}  ({jobs} instances, {concurrency} starters)"
    );
    println!(
        "worker, no-op handler, queued jobs/s:         {noop_rate:>8.0}  ({} jobs, {worker_concurrency} at once)",
        noop_stats.completed
    );
    println!("worker, no-op handler, straight-through/s:    {worker_st_rate:>8.0}  ({jobs} instances)");
    println!(
        "worker, invoice handler, invoices/s:          {invoice_rate:>8.0}  ({} invoices, books balanced: {balanced})",
        invoice_stats.completed
    );
    println!("ratio worker no-op / engine straight-through: {:>8.2}", noop_rate / engine_rate);
    println!("ratio worker invoice / engine straight-through: {:>6.2}", invoice_rate / engine_rate);
    ledger.close().await;
    drop(engine);
    remove(&path);

    if std::env::var("BENCH_PG").as_deref() != Ok("0") {
        if let Some((serial, four)) = postgres_raw_commits(2_000).await? {
            println!("postgresql, raw single-row commits/s:       {serial:>8.0}  (one connection)");
            println!("postgresql, raw single-row commits/s:       {four:>8.0}  (four connections at once)");
        }
        let customers = env_usize("BENCH_CUSTOMERS", DEMO_CUSTOMERS).max(1);
        for nodes in [1, 2] {
            let Some(drained) = postgres_invoices(nodes, invoices, concurrency, worker_concurrency, customers).await?
            else {
                break;
            };
            let plural = if nodes == 1 { " " } else { "s" };
            println!(
                "postgresql, invoice handler, {nodes} node{plural}:     {:>8.0}  ({} invoices for {customers} customers, books balanced: {}; machine CPU busy {})",
                drained.invoices.rate, drained.invoices.completed, drained.balanced, drained.invoices.busy
            );
            println!(
                "postgresql, cost handler, {nodes} node{plural}:        {:>8.0}  (one cost posting per order, no series; machine CPU busy {})",
                drained.costs.rate, drained.costs.busy
            );
        }
    }
    Ok(())
}

/// Handlers with only the built-in `invoice.issue`.
fn invoice_only(ledger: &Ledger) -> Handlers {
    only(ledger, "invoice.issue")
}

/// Handlers with only the built-in handler of `job_type`.
fn only(ledger: &Ledger, job_type: &str) -> Handlers {
    let mut handlers = Handlers::new();
    if let Some(handler) = finance::handlers(ledger).get(job_type) {
        handlers.register_arc(job_type, Arc::clone(handler));
    }
    handlers
}

/// Single-row commits per second on a scratch PostgreSQL database: `n` by one connection one
/// after another, then `n` by four connections at once. `None` when no server is reachable.
async fn postgres_raw_commits(n: usize) -> BenchResult<Option<(f64, f64)>> {
    let Some(db) = ScratchDb::postgres().await else { return Ok(None) };
    let ledger = Ledger::connect(&db.url()).await?;
    let pool = ledger.pool().clone();
    sqlx::query("CREATE TABLE bench_raw (id BIGSERIAL PRIMARY KEY, payload TEXT NOT NULL)").execute(&pool).await?;
    let insert = |pool: sqlx::AnyPool, count: usize| async move {
        let mut conn = pool.acquire().await?;
        for i in 0..count {
            sqlx::query("INSERT INTO bench_raw (payload) VALUES ($1)")
                .bind(format!("row {i}"))
                .execute(&mut *conn)
                .await?;
        }
        Ok::<_, sqlx::Error>(())
    };
    let start = Instant::now();
    insert(pool.clone(), n).await?;
    let serial = n as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..4 {
        set.spawn(insert(pool.clone(), n / 4));
    }
    while let Some(done) = set.join_next().await {
        done??;
    }
    let four = (n / 4 * 4) as f64 / start.elapsed().as_secs_f64();
    ledger.close().await;
    Ok(Some((serial, four)))
}

/// How one job type was drained.
struct Drained {
    /// Jobs per second.
    rate: f64,
    completed: u64,
    /// The machine's CPU busy share meanwhile: whether the drain was bound by the CPU.
    busy: String,
}

/// What the PostgreSQL drains measured.
struct PostgresDrains {
    invoices: Drained,
    costs: Drained,
    balanced: bool,
}

/// `invoices` invoice jobs on a scratch PostgreSQL database drained by `nodes` nodes at once, each
/// an engine, a ledger handle and a worker of its own, then the cost postings the same orders
/// queued, and whether the books balance. `None` when no PostgreSQL server is reachable.
async fn postgres_invoices(
    nodes: usize,
    invoices: usize,
    concurrency: usize,
    worker_concurrency: usize,
    customers: usize,
) -> BenchResult<Option<PostgresDrains>> {
    let Some(db) = ScratchDb::postgres().await else { return Ok(None) };
    let url = db.url();
    let mut members = Vec::new();
    for _ in 0..nodes {
        let engine = Engine::connect(&url, Arc::new(SystemClock)).await?;
        let ledger = Ledger::connect(&url).await?;
        members.push((engine, ledger));
    }
    let (first, first_ledger) = &members[0];
    let files = reference_files()?;
    first.deploy(&files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect::<Vec<_>>()).await?;
    first_ledger.seed_demo_company(first.now().date_naive()).await?;
    if customers > DEMO_CUSTOMERS {
        for n in 0..customers {
            first_ledger.upsert_customer(&bench_customer(n)).await?;
        }
    }
    queue_invoices(first, invoices, concurrency, customers).await?;

    let invoiced = drain_nodes(&members, "invoice.issue", invoices, worker_concurrency).await?;
    // The cost postings the same instances queued: one per order, no number series.
    let costs = drain_nodes(&members, "ledger.post_cost", invoices, worker_concurrency).await?;
    let balanced = first_ledger.trial_balance().await?.is_balanced();
    for (engine, ledger) in members {
        ledger.close().await;
        engine.store().close().await;
    }
    Ok(Some(PostgresDrains { invoices: invoiced, costs, balanced }))
}

/// Drains `jobs` jobs of `job_type` with a worker on each node at once.
async fn drain_nodes(
    members: &[(Engine<AnyStore>, Ledger)],
    job_type: &str,
    jobs: usize,
    worker_concurrency: usize,
) -> BenchResult<Drained> {
    let nodes = members.len();
    let (report, mut reports) = tokio::sync::mpsc::unbounded_channel::<(usize, WorkerStats)>();
    let mut stops = Vec::new();
    let mut running = Vec::new();
    let cpu_before = cpu_times();
    let start = Instant::now();
    for (n, (engine, ledger)) in members.iter().enumerate() {
        let worker = Worker::new(engine.clone(), only(ledger, job_type), options(worker_concurrency));
        forward_stats(n, worker.handle(), report.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        running.push(tokio::spawn(worker.run(async move {
            let _ = stopped.await;
        })));
    }
    drop(report);
    let goal = jobs as u64;
    let mut latest = vec![WorkerStats::default(); nodes];
    while let Some((n, stats)) = reports.recv().await {
        latest[n] = stats;
        if latest.iter().map(|s| s.completed + s.failed + s.business_errors).sum::<u64>() >= goal {
            break;
        }
    }
    let rate = jobs as f64 / start.elapsed().as_secs_f64();
    let busy = cpu_busy(cpu_before, cpu_times());
    for stop in stops {
        let _ = stop.send(());
    }
    let mut completed = 0;
    for run in running {
        completed += run.await??.completed;
    }
    Ok(Drained { rate, completed, busy })
}

/// Sends worker `n`'s counters each time they change, until the receiver is gone.
fn forward_stats(n: usize, handle: WorkerHandle, report: tokio::sync::mpsc::UnboundedSender<(usize, WorkerStats)>) {
    tokio::spawn(async move {
        let mut last = WorkerStats::default();
        loop {
            let stats = handle.wait_until(|s| s != &last).await;
            last = stats;
            if report.send((n, stats)).is_err() {
                break;
            }
        }
    });
}

fn remove(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

fn reference_files() -> BenchResult<Vec<(String, String)>> {
    let dir = format!("{}/../processes", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".flow"))
        .collect();
    names.sort();
    names.into_iter().map(|n| Ok((n.clone(), std::fs::read_to_string(format!("{dir}/{n}"))?))).collect()
}

fn order(i: usize) -> serde_json::Value {
    json!({"order_id": format!("SO-{i}"), "customer_id": "C-001", "amount": "5000.00", "requested_by": "rita"})
}

/// Runs `f(i)` for `0..n` on `concurrency` tasks.
async fn spread<F, Fut>(n: usize, concurrency: usize, f: F) -> BenchResult<()>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), cloverleaf_engine::runtime::Error>> + Send,
{
    let mut set = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let f = f.clone();
        set.spawn(async move {
            let mut i = w;
            while i < n {
                f(i).await?;
                i += concurrency;
            }
            Ok::<_, cloverleaf_engine::runtime::Error>(())
        });
    }
    while let Some(done) = set.join_next().await {
        done??;
    }
    Ok(())
}

/// The engine benchmark's measure: start → credit check completed through the API → end.
async fn straight_through(engine: &Engine<AnyStore>, instances: usize, concurrency: usize) -> BenchResult<f64> {
    let start = Instant::now();
    let e = engine.clone();
    spread(instances, concurrency, move |i| {
        let engine = e.clone();
        async move {
            engine.start("order_approval", None, order(i)).await?;
            complete_credit_checks(&engine, 1).await.map(|_| ())
        }
    })
    .await?;
    while complete_credit_checks(engine, 256).await? > 0 {}
    Ok(instances as f64 / start.elapsed().as_secs_f64())
}

async fn complete_credit_checks(
    engine: &Engine<AnyStore>,
    max: usize,
) -> Result<usize, cloverleaf_engine::runtime::Error> {
    let jobs = engine.fetch_and_lock("bench", &["credit.check"], max, TimeDelta::seconds(60)).await?;
    for job in &jobs {
        engine.complete_job(&job.id, job.epoch, json!({"credit_limit": "50000", "open_ar": "0", "risk": "A"})).await?;
    }
    Ok(jobs.len())
}

async fn start_orders(engine: &Engine<AnyStore>, n: usize, concurrency: usize) -> BenchResult<()> {
    let e = engine.clone();
    spread(n, concurrency, move |i| {
        let engine = e.clone();
        async move { engine.start("order_approval", None, order(i)).await.map(|_| ()) }
    })
    .await
}

/// The demo company's customers the invoices go to by default (`C-001` to `C-012`).
const DEMO_CUSTOMERS: usize = 12;

/// The demo company has 30 customers (one blocked): more are added as `C-031` on, in good standing.
fn bench_customer(n: usize) -> NewCustomer {
    NewCustomer {
        id: customer_id(30 + n),
        name: format!("Bench customer {n}"),
        email: None,
        country: "DE".into(),
        credit_limit: Decimal::new(10_000_000, 0),
        risk_rating: 'A',
        blocked: false,
        payment_terms_days: 30,
        tax_rate: Decimal::new(19, 2),
    }
}

/// The id of the `n`th customer (0-based), as the demo company numbers them.
fn customer_id(n: usize) -> String {
    format!("C-{:03}", n + 1)
}

/// The customer of the `i`th invoice: the demo's first twelve, or as many added ones.
fn bench_customer_of(i: usize, customers: usize) -> String {
    if customers <= DEMO_CUSTOMERS { customer_id(i % customers.max(1)) } else { customer_id(30 + i % customers) }
}

/// `n` ship-then-invoice instances whose shipments were dispatched: `n` invoice jobs queued (and
/// as many cost postings, which the invoice benchmark leaves alone), spread over `customers`.
async fn queue_invoices(engine: &Engine<AnyStore>, n: usize, concurrency: usize, customers: usize) -> BenchResult<()> {
    let e = engine.clone();
    spread(n, concurrency, move |i| {
        let engine = e.clone();
        async move {
            let order_id = format!("INV-BENCH-{i}");
            let customer = bench_customer_of(i, customers);
            let amount = format!("{}.{:02}", 100 + i % 900, i % 100);
            let input = json!({"order_id": order_id, "customer_id": customer, "amount": amount});
            engine.start("ship_then_invoice", None, input).await?;
            let payload = json!({"shipment_id": format!("SH-{i}"), "carrier": "DHL"});
            let message = Message {
                name: "shipment.dispatched".into(),
                correlation_key: order_id,
                payload,
                message_id: None,
                ttl: TimeDelta::hours(1),
            };
            engine.correlate(message).await.map(|_| ())
        }
    })
    .await
}

fn options(concurrency: usize) -> WorkerOptions {
    let mut options = WorkerOptions::new("bench");
    options.max_concurrency = concurrency;
    options.lease = TimeDelta::minutes(5);
    options.poll_wait = Duration::from_millis(500);
    options
}

/// Runs a worker until it has completed `n` jobs; the rate and its counters.
async fn drain(
    engine: &Engine<AnyStore>,
    handlers: Handlers,
    n: usize,
    concurrency: usize,
) -> BenchResult<(f64, WorkerStats)> {
    let worker = Worker::new(engine.clone(), handlers, options(concurrency));
    let handle = worker.handle();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let start = Instant::now();
    let running = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    let goal = n as u64;
    handle.wait_until(|s| s.completed + s.failed + s.business_errors >= goal).await;
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let _ = stop.send(());
    let stats = running.await??;
    Ok((rate, stats))
}

/// Starters and a worker at once: instances per second.
async fn with_worker(
    engine: &Engine<AnyStore>,
    handlers: Handlers,
    n: usize,
    concurrency: usize,
    worker_concurrency: usize,
) -> BenchResult<f64> {
    let worker = Worker::new(engine.clone(), handlers, options(worker_concurrency));
    let handle = worker.handle();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let start = Instant::now();
    let running = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    start_orders(engine, n, concurrency).await?;
    let goal = n as u64;
    handle.wait_until(|s| s.completed >= goal).await;
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let _ = stop.send(());
    running.await??;
    Ok(rate)
}
