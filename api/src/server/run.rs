//! `cloverleaf serve`: configuration, engine, deployment of the processes directory, the timer
//! scheduler, the in-process workers of the built-in finance handlers, and the HTTP server,
//! until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use cloverleaf_engine::SystemClock;
use cloverleaf_engine::runtime::{Engine, Scheduler, SchedulerOptions};
use cloverleaf_engine::store::{AnyStore, DatabaseUrl};
use cloverleaf_finance::{self as finance, Ledger};
use cloverleaf_worker::{Worker, WorkerOptions};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::config::{self, Users};
use super::notify::mail::Mailer;
use super::notify::{Notifier, NotifierOptions};
use super::{AppState, app};

/// What `serve` runs on.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The database URL (`sqlite://cloverleaf.db`) or a file path.
    pub db: String,
    /// The directory whose `.flow` files are deployed on start.
    pub processes: PathBuf,
    /// The configuration file (created with demo users when missing).
    pub config: PathBuf,
    /// The address to listen on.
    pub listen: String,
    /// The lease of the jobs the in-process workers lock: how long the jobs of this node wait
    /// for another node if it dies while running them. `None`: the worker's default
    /// ([`cloverleaf_worker::DEFAULT_LEASE`]).
    pub job_lease: Option<std::time::Duration>,
    /// How long the timers this node claims on PostgreSQL are left to it before another node
    /// may fire them ([`cloverleaf_engine::store::PgStore::set_timer_claim`]). `None`: the job
    /// lease when one is given, else 20 s. No effect on SQLite, whose file has one node.
    pub timer_claim: Option<std::time::Duration>,
    /// How long the writer waits for company before a batch
    /// ([`Engine::set_write_linger`]). `None`: the store's default.
    pub write_linger: Option<std::time::Duration>,
    /// The time zone the books are kept in ([`Ledger::set_book_zone`]); `None`: as the books
    /// say, or the demo company's zone when the demo is seeded into new books.
    pub book_time_zone: Option<chrono_tz::Tz>,
}

/// The database URL as it may be shown: a password in it is replaced by `***`.
pub fn redacted(url: &str) -> String {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    // The user information ends at the last `@` before the path.
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else { return url.to_string() };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_string(),
    }
}

/// Reads the configuration, or creates one with demo users and says where their tokens are;
/// true when it was created.
pub fn load_or_create_config(path: &Path) -> Result<(Users, bool)> {
    if path.exists() {
        return Ok((config::load(path)?, false));
    }
    let created = config::create_demo(path)?;
    let names: Vec<&str> = created.users.iter().map(|(n, _)| n.as_str()).collect();
    eprintln!(
        "created {} with demo users ({}) and fresh random tokens; it keeps only their sha256 hashes",
        created.config.display(),
        names.join(", ")
    );
    eprintln!(
        "the plain bearer tokens are in {} (readable only by you): hand them out, then delete it",
        created.tokens.display()
    );
    Ok((config::load(path)?, true))
}

/// Logs a warning for each deployed calendar that lists no holidays for the current year (or,
/// near its end, the next): business days there count as plain weeks until someone adds them.
async fn warn_of_unlisted_years(engine: &Engine<AnyStore>) {
    let calendars = match engine.calendars().await {
        Ok(calendars) => calendars,
        Err(e) => return tracing::warn!("the deployed calendars could not be read: {e}"),
    };
    let now = engine.now();
    for (name, calendar) in calendars {
        let years = calendar.unlisted_years_at(now);
        if !years.is_empty() {
            tracing::warn!(
                calendar = %name,
                years = ?years,
                "the calendar lists no holidays or make-up working days for these years: business days \
                 there count as plain weeks until they are added to its calendar block and deployed"
            );
        }
    }
}

/// Compiles every `.flow` file of `dir` together and deploys them (unchanged ones keep their
/// version). A missing directory deploys nothing; a file that does not compile stops the start.
pub async fn deploy_directory(engine: &Engine<AnyStore>, dir: &Path) -> Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(dir = %dir.display(), "no processes directory: nothing deployed on start");
            return Ok(0);
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "flow"))
        .collect();
    paths.sort();
    let mut files = Vec::new();
    for path in &paths {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        files.push((name, text));
    }
    if files.is_empty() {
        return Ok(0);
    }
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    let deployed = engine.deploy(&refs).await.with_context(|| format!("cannot deploy {}", dir.display()))?;
    for d in &deployed {
        tracing::info!(process = %d.key, version = d.version, new = d.created, "deployed");
    }
    Ok(deployed.len())
}

/// How long a client may take to send a request's headers before its connection is closed.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves `router` on `listener` (HTTP/1.1) until `shutdown` completes, then lets requests in
/// flight finish for at most [`SHUTDOWN_GRACE`].
///
/// Unlike `axum::serve`, a client that opens a connection and never finishes its headers is
/// dropped after [`HEADER_READ_TIMEOUT`], and one that holds a request open cannot keep the
/// process from stopping.
pub async fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    serve_http_with(listener, router, HEADER_READ_TIMEOUT, shutdown).await
}

/// [`serve_http`] with another header timeout.
pub async fn serve_http_with(
    listener: TcpListener,
    router: axum::Router,
    header_timeout: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(header_timeout);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors, say: wait a little instead of spinning.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let service = hyper_util::service::TowerToHyperService::new(router.clone());
                let connection = graceful.watch(builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("requests still open {} s after the signal: closing them", SHUTDOWN_GRACE.as_secs());
        }
    }
    Ok(())
}

/// How long requests in flight may take to finish once a shutdown signal has come.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs the server until SIGINT or SIGTERM: stops accepting, lets requests in flight finish,
/// stops the scheduler.
pub async fn serve(options: ServeOptions) -> Result<()> {
    let database = redacted(&options.db);
    let (users, demo) = load_or_create_config(&options.config)?;
    let engine = Engine::connect(&options.db, Arc::new(SystemClock))
        .await
        .with_context(|| format!("cannot open the database {database}"))?;
    if let Some(linger) = options.write_linger {
        engine.set_write_linger(linger);
    }
    // A dead node's timers are taken over when its jobs are, unless told otherwise.
    match (engine.store().as_postgres(), options.timer_claim.or(options.job_lease)) {
        (Some(pg), Some(claim)) => {
            pg.set_timer_claim(chrono::TimeDelta::from_std(claim).context("--timer-claim is too long")?);
        }
        (None, Some(_)) if options.timer_claim.is_some() => {
            tracing::warn!("--timer-claim has no effect on SQLite: its file has one node, which claims no timers");
        }
        _ => {}
    }
    let deployed = deploy_directory(&engine, &options.processes).await?;
    warn_of_unlisted_years(&engine).await;
    let rules = super::alerts::load_rules(&options.processes)?;
    // The built-in handlers post to the sub-ledger in the same database.
    let ledger =
        Ledger::connect(&options.db).await.with_context(|| format!("cannot open the sub-ledger in {database}"))?;
    if let Some(zone) = options.book_time_zone {
        ledger.set_book_zone(zone).await.context("cannot keep the books in that time zone")?;
    } else if demo {
        // The demo company dates its postings on its own clock; books begun before in another
        // zone stay in it.
        match ledger.set_book_zone(super::config::DEMO_ZONE).await {
            Ok(()) => {}
            Err(e @ finance::ledger::Error::Input { .. }) => eprintln!("the demo company's books keep their zone: {e}"),
            Err(e) => return Err(e).context("cannot keep the demo company's books"),
        }
    }
    if demo {
        let today = ledger.book_date(engine.now()).await.context("cannot read the books' time zone")?;
        let seed = ledger.seed_demo_company(today).await.context("cannot seed the demo company")?;
        if seed.created {
            // The embedded quick start shows work at once; a shared PostgreSQL database gets the
            // demo company only, and its nodes the orders their users enter.
            let embedded = matches!(DatabaseUrl::parse(&options.db), Ok(DatabaseUrl::Sqlite(_)));
            let orders = if embedded { start_demo_orders(&engine).await } else { 0 };
            eprintln!(
                "seeded the demo company: {} customers, {} opening invoices, {orders} orders entered by sam",
                seed.customers, seed.opening_invoices
            );
        }
    }
    let listener =
        TcpListener::bind(&options.listen).await.with_context(|| format!("cannot listen on {}", options.listen))?;
    let address: SocketAddr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let scheduler = Scheduler::new(engine.clone(), SchedulerOptions::default());
    let scheduler = tokio::spawn(scheduler.run(until_true(stopped.clone())));
    // Named by node, so that an operator looking at a locked job sees which server holds it.
    let worker_id = format!("in-process@{}", node_name());
    let mut worker_options = WorkerOptions::new(worker_id);
    if let Some(lease) = options.job_lease {
        worker_options.lease = chrono::TimeDelta::from_std(lease).context("--job-lease is too long")?;
    }
    let worker = Worker::new(engine.clone(), finance::handlers(&ledger), worker_options);
    let workers = tokio::spawn(worker.run(until_true(stopped.clone())));
    eprintln!(
        "cloverleaf serving on http://{address} ({} user(s), {deployed} process(es) from {}, database {})",
        users.len(),
        options.processes.display(),
        database
    );
    let mail_users = users.clone();
    let state = AppState::with_ledger(engine.clone(), users, ledger.clone());
    tracing::info!(rules = rules.len(), "alert rules loaded");
    state.set_rules(rules);
    let alerting = tokio::spawn(judge_alerts(state.clone(), until_true(stopped.clone())));
    let hooks = config::load_webhooks(&options.config)?;
    let email = config::load_email(&options.config)?;
    tracing::info!(webhooks = hooks.len(), email = email.is_some(), "notification channels loaded");
    let notifying = if hooks.is_empty() && email.is_none() {
        None
    } else {
        let mut notifier = Notifier::new(engine.clone(), hooks, NotifierOptions::default())
            .map_err(anyhow::Error::msg)?
            .with_letters(ledger.clone());
        if let Some(email) = email {
            notifier = notifier.with_email(Mailer::new(email, mail_users));
        }
        Some(tokio::spawn(notifier.run(until_true(stopped.clone()))))
    };
    let router = app(state.clone());
    let server = serve_http(listener, router, async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing requests in flight");
        // A worker's long poll would otherwise hold the server up for its whole wait.
        state.stop_long_polls();
    })
    .await;
    let _ = stop.send(true);
    match scheduler.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "the scheduler stopped with an error"),
        Err(e) => tracing::error!(error = %e, "the scheduler task failed"),
    }
    if let Err(e) = alerting.await {
        tracing::error!(error = %e, "the alert task failed");
    }
    if let Some(task) = notifying
        && let Err(e) = task.await
    {
        tracing::error!(error = %e, "the notification task failed");
    }
    match workers.await {
        Ok(Ok(stats)) => tracing::info!(?stats, "in-process workers stopped"),
        Ok(Err(e)) => tracing::error!(error = %e, "the in-process workers could not run"),
        Err(e) => tracing::error!(error = %e, "the in-process workers failed"),
    }
    ledger.close().await;
    engine.store().close().await;
    server.context("the HTTP server failed")?;
    eprintln!("cloverleaf stopped");
    Ok(())
}

/// Judges the alert rules at start and every [`super::alerts::EVALUATE_EVERY`] until `stop`.
async fn judge_alerts(state: AppState, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        if !state.rules().is_empty() {
            match super::alerts::evaluate(&state, state.engine().now()).await {
                Ok(changes) if changes.opened.is_empty() && changes.closed.is_empty() => {}
                Ok(changes) => tracing::info!(opened = ?changes.opened, closed = ?changes.closed, "alerts changed"),
                Err(e) => tracing::warn!(error = %e.message(), "cannot judge the alert rules"),
            }
        }
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(super::alerts::EVALUATE_EVERY) => {}
        }
    }
}

/// The orders the sales rep of the demo company has just entered, so that a first look at the
/// pages finds work: one above 10,000 that waits for the sales manager, one small enough to go
/// straight through to shipping. How many started (a process that is not deployed starts none).
async fn start_demo_orders(engine: &Engine<AnyStore>) -> usize {
    let sam = cloverleaf_engine::runtime::Starter::user("sam");
    let mut started = 0;
    for (order, customer, amount) in [("SO-1001", "C-004", "24500.00"), ("SO-1002", "C-001", "3200.00")] {
        let variables =
            serde_json::json!({"order_id": order, "customer_id": customer, "amount": amount, "requested_by": "sam"});
        match engine.start_for(&sam, "order_to_cash", None, Some(order), variables, None).await {
            Ok(_) => started += 1,
            Err(e) => tracing::warn!(error = %e, order, "cannot enter a demo order"),
        }
    }
    started
}

/// This process as the lock owner of the jobs it runs: `HOST-PID`.
pub fn node_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_string());
    format!("{host}-{}", std::process::id())
}

/// Completes when the watched flag turns true (or its sender is gone).
pub async fn until_true(mut flag: watch::Receiver<bool>) {
    while !*flag.borrow_and_update() {
        if flag.changed().await.is_err() {
            return;
        }
    }
}

/// Completes on SIGINT or SIGTERM (SIGINT only where there is no SIGTERM).
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// Starts `serve_http_with` on a free port with a 200 ms header timeout; the address, the
    /// trigger of its shutdown and the task.
    async fn tiny_server() -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let timeout = std::time::Duration::from_millis(200);
        let task = tokio::spawn(async move {
            super::serve_http_with(listener, router, timeout, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        (address, stop, task)
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_headers_is_dropped_and_does_not_hold_up_shutdown() {
        let (address, stop, task) = tiny_server().await;
        let mut slow = tokio::net::TcpStream::connect(address).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        // The server closes the connection (an answer, or nothing, then the end of the stream).
        let mut answer = Vec::new();
        let closed = tokio::time::timeout(cloverleaf_testkit::deadline(), slow.read_to_end(&mut answer)).await;
        assert!(closed.is_ok(), "the half-sent request was never dropped");
        // A complete request is still served.
        let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
        client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut reply = String::new();
        client.read_to_string(&mut reply).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 200") && reply.ends_with("hello"), "{reply}");
        // Another half-sent request is open when the signal comes: the server still stops.
        let mut lingering = tokio::net::TcpStream::connect(address).await.unwrap();
        lingering.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        stop.send(()).unwrap();
        tokio::time::timeout(cloverleaf_testkit::deadline(), task).await.expect("the server stops").unwrap();
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(redacted("postgres://app:s3cret@db.internal:5432/cl"), "postgres://app:***@db.internal:5432/cl");
        assert_eq!(redacted("postgres://postgres@127.0.0.1/cl"), "postgres://postgres@127.0.0.1/cl");
        assert_eq!(redacted("postgres://app:p@ss@db/cl"), "postgres://app:***@db/cl");
        assert_eq!(redacted("sqlite://cloverleaf.db"), "sqlite://cloverleaf.db");
        assert_eq!(redacted("data/c.db"), "data/c.db");
    }
}
