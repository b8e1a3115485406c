//! Load generator for the HTTP API (`cargo bench -p cloverleaf --bench http`): the server runs
//! in-process on a real socket over a fresh SQLite file (WAL, `synchronous=FULL`, every step
//! durable), and concurrent keep-alive clients drive it.
//!
//! Measures, beside the machine's raw SQLite commit rate in the same run:
//! - human-task completions per second through `POST /v1/tasks/{id}/complete` (role check, form
//!   check, separation of duties, one durable step each);
//! - instance starts per second through `POST /v1/instances`;
//! - how long a manager's inbox page takes with every task those starts opened waiting in it
//!   (`GET /inbox`, signed in through the sign-in form; the first page and the last), one request
//!   at a time.
//!
//! `BENCH_N` sets how many of each (default 4000), `BENCH_CLIENTS` the concurrent clients
//! (default 64).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cloverleaf::server::config::{ConfigFile, UserEntry, Users, hash_token};
use cloverleaf::server::{AppState, app};
use cloverleaf_engine::SystemClock;
use cloverleaf_engine::runtime::Engine;
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

const BENCH_PROCESS: &str = r#"process bench_approval "Bench approval" {
  access {
    start by sales.rep
    requester requested_by
  }
  input { order_id: text, requested_by: user }
  var approve: bool = false
  start -> review
  approval review "Review order {order_id}" {
    role sales.manager
    not by requested_by
    form { approve: bool }
    due 24h
  } -> done
  end done "Done"
}
"#;

struct Temp(PathBuf);

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn users() -> Users {
    let entry = |name: &str, role: &str| UserEntry {
        name: name.to_string(),
        roles: vec![role.to_string()],
        token_sha256: hash_token(&format!("bench-{name}")),
        password_argon2: None,
        time_zone: None,
        email: None,
        language: None,
    };
    let config =
        ConfigFile { users: vec![entry("mia", "sales.manager"), entry("sam", "sales.rep")], ..ConfigFile::default() };
    Users::from_config(&config).expect("valid users")
}

/// Single-row transactions, one after another, on a file opened like the engine's.
async fn raw_commits(path: &std::path::Path, window: Duration) -> f64 {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.expect("raw database");
    sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)").execute(&pool).await.expect("table");
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < window {
        let mut tx = pool.begin().await.expect("begin");
        sqlx::query("INSERT INTO t (v) VALUES (?1)").bind("x").execute(&mut *tx).await.expect("insert");
        tx.commit().await.expect("commit");
        n += 1;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    pool.close().await;
    rate
}

/// Runs `n` requests over `clients` concurrent keep-alive clients; returns requests per second.
async fn drive<F>(n: usize, clients: usize, request: F) -> f64
where
    F: Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (request, next) = (Arc::clone(&request), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let response = request(&client, i).send().await.expect("request");
                let status = response.status();
                if !status.is_success() {
                    panic!("request {i}: {status} {}", response.text().await.unwrap_or_default());
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("client");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// Reads of each inbox page measured (after one read to warm up).
const INBOX_READS: usize = 15;
/// Tasks on one inbox page, as the page shows them.
const INBOX_PAGE: usize = 50;

/// The `name=value` of the cookie `name` a response sets.
fn set_cookie(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_string()
}

/// Signs the manager in through the sign-in form, then reads the first and the last page of their
/// inbox of `open` tasks one request at a time; each page's median time in milliseconds.
async fn inbox_pages(base: &str, open: usize) -> Vec<(usize, f64)> {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let form = client.get(format!("{base}/login")).send().await.expect("sign-in page");
    let nonce = set_cookie(&form, "clv_login");
    let text = form.text().await.expect("sign-in page");
    let marker = "name=\"csrf\" value=\"";
    let csrf = text[text.find(marker).expect("the sign-in form's nonce") + marker.len()..].split('"').next().unwrap();
    let signed = client
        .post(format!("{base}/login"))
        .header(reqwest::header::COOKIE, nonce)
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("token=bench-mia&csrf={csrf}"))
        .send()
        .await
        .expect("sign in");
    assert_eq!(signed.status(), reqwest::StatusCode::SEE_OTHER, "signed in");
    let session = set_cookie(&signed, "clv_session");
    let last = open.div_ceil(INBOX_PAGE).max(1);
    let mut medians = Vec::new();
    for page in [1, last] {
        let mut times = Vec::new();
        for read in 0..=INBOX_READS {
            let started = Instant::now();
            let response = client
                .get(format!("{base}/inbox?page={page}"))
                .header(reqwest::header::COOKIE, &session)
                .send()
                .await
                .expect("inbox");
            assert_eq!(response.status(), reqwest::StatusCode::OK, "the inbox page");
            let body = response.text().await.expect("inbox");
            let rows = body.matches("class=\"task-link\"").count();
            let expected = if page == last { open - (last - 1) * INBOX_PAGE } else { INBOX_PAGE.min(open) };
            assert_eq!(rows, expected, "tasks on inbox page {page}");
            if read > 0 {
                times.push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        times.sort_by(f64::total_cmp);
        medians.push((page, times[times.len() / 2]));
    }
    medians
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let n = env_number("BENCH_N", 4000);
    let clients = env_number("BENCH_CLIENTS", 64);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let dir = Temp(std::env::temp_dir().join(format!("cloverleaf-http-bench-{}-{nanos}", std::process::id())));
    std::fs::create_dir_all(&dir.0).expect("temp dir");

    let raw = raw_commits(&dir.0.join("raw.db"), Duration::from_secs(3)).await;

    let url = dir.0.join("bench.db").display().to_string();
    let engine = Engine::connect(&url, Arc::new(SystemClock)).await.expect("engine");
    let roles =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../processes/roles.flow")).expect("roles");
    engine.deploy(&[("roles.flow", &roles), ("bench.flow", BENCH_PROCESS)]).await.expect("deploy");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listen");
    let address = listener.local_addr().expect("address");
    let server_engine = engine.clone();
    tokio::spawn(async move { axum::serve(listener, app(AppState::new(server_engine, users()))).await });
    let base = format!("http://{address}");

    // Starts over HTTP: each one durable step that opens a human task.
    let url = format!("{base}/v1/instances");
    let starts = drive(n, clients, move |client, i| {
        client.post(&url).bearer_auth("bench-sam").json(&json!({
            "process": "bench_approval", "business_key": format!("SO-{i}"),
            "variables": {"order_id": format!("SO-{i}"), "requested_by": "sam"}}))
    })
    .await;

    // The inbox page of the manager all those tasks wait for.
    let inbox = inbox_pages(&base, n).await;

    // Completions over HTTP of the tasks those starts opened.
    let tasks: Vec<String> = engine.tasks(None).await.expect("tasks").into_iter().map(|t| t.id.0).collect();
    assert_eq!(tasks.len(), n, "every start opened a task");
    let tasks = Arc::new(tasks);
    let base_for_tasks = base.clone();
    let completions = drive(n, clients, move |client, i| {
        client
            .post(format!("{base_for_tasks}/v1/tasks/{}/complete", tasks[i]))
            .bearer_auth("bench-mia")
            .json(&json!({"variables": {"approve": true}}))
    })
    .await;
    let left = engine.tasks(None).await.expect("tasks").len();
    assert_eq!(left, 0, "every task completed");

    let stats = engine.writer_stats();
    println!("HTTP API on SQLite (WAL, synchronous=FULL), {n} requests per measure, {clients} clients");
    println!("{:<62} {:>10}", "measure", "per second");
    println!("{:<62} {:>10.0}", "raw single-row commits through sqlx (same machine, same run)", raw);
    println!("{:<62} {:>10.0}  (ratio {:.2})", "instance starts, POST /v1/instances", starts, starts / raw);
    println!(
        "{:<62} {:>10.0}  (ratio {:.2})",
        "human-task completions, POST /v1/tasks/{id}/complete",
        completions,
        completions / raw
    );
    for (page, median) in inbox {
        println!(
            "{:<62} {:>7.1} ms  (median of {INBOX_READS})",
            format!("inbox page {page}, {n} open tasks, GET /inbox"),
            median
        );
    }
    println!(
        "writer: {} transactions for {} writes ({:.1} writes per commit)",
        stats.batches,
        stats.writes,
        stats.writes as f64 / stats.batches.max(1) as f64
    );
    engine.store().close().await;
}
