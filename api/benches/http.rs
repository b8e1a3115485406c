//! Load generator for the HTTP API (`cargo bench -p cloverleaf --bench http`): the server runs
//! in-process on a real socket over a fresh SQLite file (WAL, `synchronous=FULL`, every step
//! durable), and concurrent keep-alive clients drive it.
//!
//! Measures, beside the machine's raw SQLite commit rate in the same run:
//! - human-task completions per second through `POST /v1/tasks/{id}/complete` (role check, form
//!   check, separation of duties, one durable step each);
//! - instance starts per second through `POST /v1/instances`.
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
    println!(
        "writer: {} transactions for {} writes ({:.1} writes per commit)",
        stats.batches,
        stats.writes,
        stats.writes as f64 / stats.batches.max(1) as f64
    );
    engine.store().close().await;
}
