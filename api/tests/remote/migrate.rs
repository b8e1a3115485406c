//! `cloverleaf migrate`: through a server with an admin's token (a non-admin is refused), and
//! directly on the database, where an unsafe move is refused with its reason and exit 1.

use std::process::Command;

use crate::harness::{reference_files, token};
use crate::server::Server;

fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the fixture no longer holds {from:?}");
    text.replace(from, to)
}

fn order_approval(edits: &[(&str, &str)]) -> Vec<(String, String)> {
    reference_files()
        .into_iter()
        .map(|(n, t)| {
            if n != "order_approval.flow" {
                return (n, t);
            }
            let text = edits.iter().fold(t, |text, (from, to)| edit(&text, from, to));
            (n, text)
        })
        .collect()
}

async fn deploy(server: &Server, files: &[(String, String)]) {
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    server.engine.deploy(&refs).await.unwrap();
}

/// Runs `cloverleaf migrate args...` (off the runtime's threads); (exit code, stdout, stderr).
async fn migrate(args: Vec<String>, token: Option<String>) -> (Option<i32>, String, String) {
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cloverleaf"));
        command.arg("migrate").args(&args).env_remove("CLOVERLEAF_TOKEN").env_remove("RUST_BACKTRACE");
        if let Some(token) = token {
            command.env("CLOVERLEAF_TOKEN", token);
        }
        let output = command.output().unwrap();
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        (output.status.code(), text(output.stdout), text(output.stderr))
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

async fn version_of(server: &Server, id: &str) -> u32 {
    server.engine.instance(&id.into()).await.unwrap().process_version()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_through_a_server_and_on_the_database() {
    let Some(server) = Server::start().await else { return };
    let waiting = server.start_order("order_approval", "SO-1", "C-7", "50000.00").await;
    deploy(
        &server,
        &order_approval(&[("  var comment: text?\n", "  var comment: text?\n  var priority: text = \"normal\"\n")]),
    )
    .await;
    let url = server.url();
    let common = ["order_approval", "--from", "1", "--to", "2", "--reason", "priorities", "--server", &url];

    // A refused request is an error (exit 2); refused instances are exit 1.
    let (code, _, stderr) = migrate(args(&common), Some(token("mia"))).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("403") && stderr.contains("`admin` role"), "{stderr}");

    let mut dry = args(&common);
    dry.push("--dry-run".into());
    let (code, stdout, stderr) = migrate(dry, Some(token("ada"))).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains(&format!("WOULD MIGRATE {waiting}: at check_credit; waits kept 1")), "{stdout}");
    assert!(stdout.contains("added priority") && stdout.contains("would migrate 1 instance(s)"), "{stdout}");
    assert_eq!(version_of(&server, &waiting).await, 1);

    let (code, stdout, stderr) = migrate(args(&common), Some(token("ada"))).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains(&format!("MIGRATED {waiting}")), "{stdout}");
    assert_eq!(version_of(&server, &waiting).await, 2);
    let history = server.get(&format!("/v1/instances/{waiting}/history"), "ada").await;
    let last = history["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["kind"].as_str(), last["who"].as_str()), (Some("migrated"), Some("ada")), "{last}");

    // Version 3 renames the credit check; on the database, without a mapping, it is refused.
    deploy(
        &server,
        &order_approval(&[
            ("  var comment: text?\n", "  var comment: text?\n  var priority: text = \"normal\"\n"),
            ("check_credit", "credit_check"),
        ]),
    )
    .await;
    let db = server.db.url();
    let local = ["order_approval", "--from", "2", "--to", "3", "--reason", "rename", "--db", &db, "--operator", "ada"];
    let (code, stdout, stderr) = migrate(args(&local), None).await;
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stdout.contains(&format!("REFUSED {waiting}")), "{stdout}");
    assert!(stdout.contains("\"mapping\": {\"check_credit\": \"...\"}"), "{stdout}");
    assert_eq!(version_of(&server, &waiting).await, 2);

    let mut mapped = args(&local);
    mapped.extend(args(&["--map", "check_credit=credit_check"]));
    let (code, stdout, stderr) = migrate(mapped, None).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains(&format!("MIGRATED {waiting}: at check_credit -> credit_check")), "{stdout}");
    let instance = server.engine.instance(&waiting.as_str().into()).await.unwrap();
    assert_eq!(instance.process_version(), 3);
    assert!(instance.jobs().values().all(|j| j.node == "credit_check"), "{:?}", instance.jobs());

    let (code, _, stderr) = migrate(args(&["order_approval", "--from", "3", "--to", "4", "--reason", "r"]), None).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--server"), "{stderr}");
    server.stop().await;
}

/// Runs `cloverleaf modify args...` as `user`; (exit code, stdout, stderr).
async fn modify(args: Vec<String>, user: &str) -> (Option<i32>, String, String) {
    let token = token(user);
    tokio::task::spawn_blocking(move || {
        let output = Command::new(env!("CARGO_BIN_EXE_cloverleaf"))
            .arg("modify")
            .args(&args)
            .env("CLOVERLEAF_TOKEN", token)
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap();
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        (output.status.code(), text(output.stdout), text(output.stderr))
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modify_through_a_server_and_on_the_database() {
    let Some(server) = Server::start().await else { return };
    let id = server.start_order("order_approval", "SO-1", "C-7", "50000.00").await;
    let url = server.url();
    let base = |extra: &[&str]| {
        let mut list = args(&[id.as_str(), "--reason", "bureau corrected", "--server", &url]);
        list.extend(args(extra));
        list
    };
    let (code, _, stderr) = modify(base(&["--set", "risk=\"A\""]), "mia").await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("403") && stderr.contains("`admin` role"), "{stderr}");
    let (code, _, stderr) = modify(base(&["--set", "amount=\"lots\""]), "ada").await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("422") && stderr.contains("variable amount"), "{stderr}");
    let (code, stdout, stderr) = modify(base(&["--set", "risk=\"A\""]), "ada").await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains(&format!("modified {id}: running; tokens at check_credit")), "{stdout}");
    let instance = server.engine.instance(&id.as_str().into()).await.unwrap();
    assert_eq!(instance.variable("risk").unwrap().to_json(), serde_json::json!("A"));

    // On the database: the operator is named for the history, a wrong value is refused there
    // too, and nothing is written on a refusal.
    let db = server.db.url();
    let local = |extra: &[&str]| {
        let mut list = args(&[id.as_str(), "--reason", "rating agency", "--db", &db]);
        list.extend(args(extra));
        list
    };
    let (code, _, stderr) = modify(local(&["--set", "risk=\"B\"", "--operator", " "]), "ada").await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--operator"), "{stderr}");
    let (code, _, stderr) = modify(local(&["--set", "risk=7", "--operator", "olga"]), "ada").await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("risk"), "{stderr}");
    let (code, stdout, stderr) = modify(local(&["--set", "risk=\"B\"", "--operator", "olga"]), "ada").await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains(&format!("modified {id}: running; tokens at check_credit")), "{stdout}");
    let instance = server.engine.instance(&id.as_str().into()).await.unwrap();
    assert_eq!(instance.variable("risk").unwrap().to_json(), serde_json::json!("B"));
    let history = server.get(&format!("/v1/instances/{id}/history"), "ada").await;
    let modified: Vec<(&str, String)> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "modified")
        .map(|e| (e["who"].as_str().unwrap(), e["detail"].to_string()))
        .collect();
    assert_eq!(modified.len(), 2, "one through the server, one on the database: {modified:?}");
    assert_eq!(modified[1].0, "olga");
    assert!(modified[1].1.contains("rating agency"), "{modified:?}");
    server.stop().await;
}
