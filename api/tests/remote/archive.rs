//! `cloverleaf archive` on the databases of a running server: refused without an operator, a
//! dry run that moves nothing, a run that moves the ended instances the server then answers
//! "archived" for, an archive `audit verify` accepts, and a second run that finds nothing.

use std::process::Command;

use cloverleaf_engine::runtime::Error;
use cloverleaf_testkit::testdb::ScratchDb;
use serde_json::json;

use crate::harness::token;
use crate::server::Server;

/// Runs `cloverleaf args...` (off the runtime's threads); (exit code, stdout, stderr).
async fn cloverleaf(args: Vec<String>) -> (Option<i32>, String, String) {
    tokio::task::spawn_blocking(move || {
        let output = Command::new(env!("CARGO_BIN_EXE_cloverleaf"))
            .args(&args)
            .env_remove("CLOVERLEAF_TOKEN")
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap();
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        (output.status.code(), text(output.stdout), text(output.stderr))
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A small order approved straight through (the server's clock stands in January 2026).
async fn approved(server: &Server, order: &str) -> String {
    let id = server.start_order("order_approval", order, "C-7", "100.00").await;
    let jobs = server.engine.fetch_and_lock("w1", &["credit.check"], 1, chrono::TimeDelta::seconds(60)).await.unwrap();
    let variables = json!({"credit_limit": "500000", "open_ar": "0", "risk": "A"});
    server.engine.complete_job(&jobs[0].id, jobs[0].epoch, variables).await.unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_while_the_server_runs() {
    let Some(server) = Server::start().await else { return };
    let ended = [approved(&server, "SO-1").await, approved(&server, "SO-2").await];
    let waiting = server.start_order("order_approval", "SO-3", "C-7", "50000.00").await;
    let archive = ScratchDb::new().await.expect("a second scratch database");
    let (db, into) = (server.db.url(), archive.url());
    let base = |extra: &[&str]| {
        let mut list = args(&["archive", "--db", &db, "--into", &into, "--ended-before", "2026-02-01"]);
        list.extend(args(extra));
        list
    };

    let (code, stdout, stderr) = cloverleaf(base(&[])).await;
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("--operator"), "{stderr}");
    let itself = args(&["archive", "--db", &db, "--into", &db, "--ended-before", "2026-02-01", "--operator", "olga"]);
    let (code, _, stderr) = cloverleaf(itself).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("live database itself"), "{stderr}");
    let (code, stdout, stderr) = cloverleaf(base(&["--operator", "olga", "--dry-run"])).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("would archive 2 of 2 ended instance(s)"), "{stdout}");
    for id in &ended {
        assert!(server.engine.instance(&id.as_str().into()).await.is_ok(), "a dry run moves nothing");
    }

    let (code, stdout, stderr) = cloverleaf(base(&["--operator", "olga", "--label", "cold-2026"])).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("archived 2 of 2 ended instance(s)") && stdout.contains("into cold-2026"), "{stdout}");
    for id in &ended {
        assert!(matches!(server.engine.instance(&id.as_str().into()).await, Err(Error::UnknownInstance(_))));
        let response = reqwest::Client::new()
            .get(format!("{}/v1/instances/{id}", server.url()))
            .bearer_auth(token("sam"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 410);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["details"]["archive"], "cold-2026");
    }
    // The server goes on with what still runs.
    assert_eq!(server.get(&format!("/v1/instances/{waiting}"), "sam").await["status"], "running");

    let (code, stdout, stderr) = cloverleaf(args(&["audit", "verify", "--db", &into])).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("checked 2 instance(s)") && stdout.contains("all intact"), "{stdout}");
    let (code, stdout, stderr) = cloverleaf(base(&["--operator", "olga"])).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("archived 0 of 0"), "{stdout}");
    server.stop().await;
}
