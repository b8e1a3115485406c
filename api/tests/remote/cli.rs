//! The `cloverleaf worker` binary: refusals before it starts, and a run against a server that
//! ends cleanly on SIGTERM.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::TimeDelta;
use cloverleaf_finance::Ledger;
use cloverleaf_testkit::eventually;
use cloverleaf_testkit::testdb::ScratchDb;
use cloverleaf_worker::{FetchRequest, JobSource};
use serde_json::json;

use crate::harness::{t0, token};
use crate::server::Server;

fn worker() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cloverleaf"));
    command.arg("worker").env_remove("CLOVERLEAF_TOKEN").env("RUST_LOG", "info");
    command
}

/// Runs to the end; (exit code, stderr).
fn run(command: &mut Command) -> (Option<i32>, String) {
    let output = command.output().unwrap();
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn a_worker_without_handlers_refuses_to_start() {
    let (code, stderr) = run(worker().args(["--server", "http://127.0.0.1:9", "--token", "t"]));
    assert!(code.is_some_and(|c| c != 0), "{code:?} {stderr}");
    assert!(stderr.contains("the worker has no handlers") && stderr.contains("--ledger"), "{stderr}");
}

#[test]
fn a_worker_refuses_bad_settings_with_words() {
    let dir = ScratchDb::sqlite();
    let ledger = dir.url();
    let endpoints = format!("{ledger}.endpoints.toml");
    let cases: [(Vec<&str>, Option<&str>, &str); 7] = [
        (vec!["--server", "https://h", "--ledger", &ledger], None, "plain HTTP only"),
        (vec!["--server", "http://h", "--ledger", &ledger], Some(" "), "invalid token"),
        (vec!["--server", "http://h", "--endpoints", &endpoints], None, "`soon` is not a duration"),
        (vec!["--server", "http://h", "--ledger", &ledger, "--concurrency", "0"], None, "at least 1"),
        (vec!["--server", "http://h", "--ledger", &ledger, "--topics", "billing.*"], None, "matches none"),
        (vec!["--server", "http://h", "--ledger", &ledger, "--lease", "500ms"], None, "a lease is from 1s to 1440m"),
        (vec!["--server", "http://h", "--ledger", &ledger, "--lease", "a while"], None, "is not a duration"),
    ];
    std::fs::write(&endpoints, "[\"erp.x\"]\nurl = \"http://erp/x\"\ntimeout = \"soon\"\n").unwrap();
    for (args, token, expected) in cases {
        let mut command = worker();
        command.args(&args).env("CLOVERLEAF_TOKEN", token.unwrap_or("t"));
        let (code, stderr) = run(&mut command);
        assert!(code.is_some_and(|c| c != 0), "{args:?}: {code:?} {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_file(&endpoints);
    // No token at all: clap names the flag and the variable.
    let (code, stderr) = run(worker().args(["--server", "http://h", "--ledger", &ledger]));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--token"), "{stderr}");
}

/// Runs the binary with `args` on `server`, makes it check the credit of an order to cash, then
/// stops it with SIGTERM; what it logged.
async fn check_credit_with_the_binary(server: &Server, args: &[&str]) -> String {
    let mut child = worker()
        .args(["--server", &server.url()])
        .args(args)
        .env("CLOVERLEAF_TOKEN", token("robot"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = std::thread::spawn(move || BufReader::new(stderr).lines().map_while(Result::ok).collect::<Vec<_>>());

    // The binary checks the credit; the approved order then waits for the dispatch (observed
    // through the API, so the test does not bet on which process is quicker), and the dispatch
    // makes the invoice due.
    let id = server.start_order("order_to_cash", "SO-5", "C-001", "2500.00").await;
    eventually("the approved order to wait for its dispatch", || async {
        let shipping = server.get("/v1/instances?process=ship_then_invoice", "ada").await;
        let child = shipping.as_array()?.iter().find(|c| c["parent_id"] == id.as_str())?["id"].as_str()?.to_string();
        let child = server.get(&format!("/v1/instances/{child}"), "ada").await;
        (!child["waiting"]["messages"].as_array()?.is_empty()).then_some(())
    })
    .await;
    let (status, body) = server
        .post(
            "/v1/messages",
            "robot",
            json!({"name": "shipment.dispatched", "correlation_key": "SO-5", "variables": {"shipment_id": "SH-5"}}),
        )
        .await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("delivered")), "{body}");
    let request = FetchRequest {
        worker_id: "test".into(),
        topics: vec!["invoice.issue".into()],
        max_jobs: 1,
        lease: TimeDelta::seconds(60),
        wait: Duration::from_secs(50),
    };
    let jobs = server.source("robot").fetch_and_lock(&request).await.unwrap();
    let instance = server.get(&format!("/v1/instances/{id}"), "ada").await;

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    let lines = lines.join().unwrap().join("\n");
    assert_eq!(jobs.len(), 1, "the worker binary did not check the credit:\n{lines}");
    assert_eq!(instance["variables"]["approval_outcome"], "approved", "{instance}");
    assert!(status.success(), "{status:?}\n{lines}");
    assert!(lines.contains("worker started"), "{lines}");
    assert!(lines.contains("worker stopped") && lines.contains("completed: 1"), "{lines}");
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_binary_checks_credit_on_the_ledger_and_stops_on_sigterm() {
    let Some(server) = Server::start().await else { return };
    let ledger = Ledger::connect(&server.db.url()).await.unwrap();
    ledger.seed_demo_company(t0().date_naive()).await.unwrap();
    ledger.close().await;
    let db = server.db.url();
    let args =
        ["--ledger", &db, "--topics", "credit.*", "--worker-id", "cli-1", "--concurrency", "4", "--lease", "45s"];
    let lines = check_credit_with_the_binary(&server, &args).await;
    assert!(lines.contains("cli-1"), "{lines}");
    let started = lines.lines().find(|l| l.contains("worker started")).unwrap_or_default();
    assert!(started.contains("lease_ms") && started.contains("45000"), "{lines}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_binary_hands_a_job_type_to_an_http_endpoint() {
    // A stand-in ERP that answers credit checks for callers with the right key.
    let erp = axum::Router::new().route(
        "/credit",
        axum::routing::post(|headers: axum::http::HeaderMap| async move {
            let keyed = headers.get("x-api-key").is_some_and(|k| k == "k-1");
            let idempotent = headers.contains_key("idempotency-key");
            if keyed && idempotent {
                (axum::http::StatusCode::OK, axum::Json(json!({"credit_limit": "50000", "open_ar": "0", "risk": "A"})))
            } else {
                (axum::http::StatusCode::UNAUTHORIZED, axum::Json(json!({})))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let erp_address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, erp).await });

    let Some(server) = Server::start().await else { return };
    let endpoints = std::env::temp_dir().join(format!("cloverleaf-endpoints-{}.toml", server.address.port()));
    let endpoints = endpoints.display().to_string();
    std::fs::write(
        &endpoints,
        format!(
            "[\"credit.check\"]\nurl = \"http://{erp_address}/credit\"\ntimeout = \"5s\"\nheaders = {{ \"X-Api-Key\" = \"k-1\" }}\n"
        ),
    )
    .unwrap();
    check_credit_with_the_binary(&server, &["--endpoints", &endpoints]).await;
    let _ = std::fs::remove_file(&endpoints);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_token_the_server_refuses_stops_at_once() {
    let Some(server) = Server::start().await else { return };
    let db = server.db.url();
    let url = server.url();
    let (code, stderr) = tokio::task::spawn_blocking(move || {
        run(worker().args(["--server", &url, "--ledger", &db]).env("CLOVERLEAF_TOKEN", "not-a-token"))
    })
    .await
    .unwrap();
    assert!(code.is_some_and(|c| c != 0), "{code:?} {stderr}");
    assert!(stderr.contains("refused the worker: unknown token"), "{stderr}");
    server.stop().await;
}
