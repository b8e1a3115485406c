//! The real binary: `serve` creates its configuration, deploys, serves and stops on SIGTERM;
//! `audit verify` exits 1 on an altered history.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cloverleaf_testkit::eventually;
use cloverleaf_testkit::testdb::ScratchDb;

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let path = std::env::temp_dir().join(format!("cloverleaf-serve-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        Dir(path)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cloverleaf"))
}

fn processes() -> String {
    format!("{}/../processes", env!("CARGO_MANIFEST_DIR"))
}

/// Starts `serve` in `dir` on a free port and the database `db`; returns the child, its address
/// and what it printed.
fn start(dir: &Path, db: &str) -> (Child, String, std::sync::mpsc::Receiver<String>) {
    let mut child = binary()
        .current_dir(dir)
        .args(["serve", "--processes", &processes(), "--listen", "127.0.0.1:0", "--db", db])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut seen = Vec::new();
    loop {
        match received.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                if let Some(rest) = line.split("serving on http://").nth(1) {
                    let address = rest.split_whitespace().next().unwrap().to_string();
                    return (child, address, received);
                }
                seen.push(line);
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the server printed no address: {seen:?}");
            }
        }
    }
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    child.wait().unwrap()
}

/// GETs `url` with `token` and reads the answer as JSON.
async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> serde_json::Value {
    http.get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap()
}

/// The plain token of `user` in a tokens file the server wrote.
fn token_of(tokens: &str, user: &str) -> String {
    let line = tokens.lines().find(|l| l.starts_with(&format!("{user} "))).unwrap();
    line.split('"').nth(1).unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_creates_a_config_with_hashed_tokens_serves_and_stops_on_sigterm() {
    let Some(db) = ScratchDb::new().await else { return };
    let dir = Dir::new("demo");
    let (mut child, address, _lines) = start(&dir.0, &db.url());
    let config = std::fs::read_to_string(dir.0.join("cloverleaf.toml")).unwrap();
    let tokens = std::fs::read_to_string(dir.0.join("cloverleaf.tokens")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.0.join("cloverleaf.tokens")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let carl = token_of(&tokens, "carl");
    assert!(carl.starts_with("clv_") && !config.contains(&carl), "the configuration holds hashes only");
    assert!(config.contains("finance.cfo") && config.contains(&cloverleaf::server::config::hash_token(&carl)));
    let http = reqwest::Client::new();
    let health = http.get(format!("http://{address}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    let anonymous = http.get(format!("http://{address}/v1/definitions")).send().await.unwrap();
    assert_eq!(anonymous.status(), reqwest::StatusCode::UNAUTHORIZED);
    let definitions = get_json(&http, &format!("http://{address}/v1/definitions"), &carl).await;
    assert_eq!(definitions.as_array().unwrap().len(), 5);
    // The in-process workers check credit on the seeded demo company: a small order of a good
    // customer is approved straight through.
    let sam = token_of(&tokens, "sam");
    let started: serde_json::Value = http
        .post(format!("http://{address}/v1/instances"))
        .bearer_auth(&sam)
        .json(&serde_json::json!({"process": "order_approval", "variables": {
            "order_id": "SO-1", "customer_id": "C-001", "amount": "100.00", "requested_by": "sam"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = started["id"].as_str().unwrap().to_string();
    let instance = eventually("the small order to be decided", || async {
        let instance = get_json(&http, &format!("http://{address}/v1/instances/{id}"), &sam).await;
        (instance["status"] != "running").then_some(instance)
    })
    .await;
    assert_eq!(
        (instance["status"].as_str(), instance["outcome"].as_str()),
        (Some("completed"), Some("approved")),
        "{instance}"
    );
    let kpis = get_json(&http, &format!("http://{address}/v1/reports/kpis"), &carl).await;
    assert_eq!(kpis["ledger"]["aging"].as_array().map(Vec::len), Some(5), "{kpis}");
    assert!(kpis["ledger"]["open_receivables"].is_string(), "money as a decimal string: {kpis}");
    let status = terminate(&mut child);
    assert!(status.success(), "{status:?}");
    // The demo company, a Shanghai company, keeps its books on Shanghai's clock.
    let ledger = cloverleaf_finance::Ledger::connect(&db.url()).await.unwrap();
    assert_eq!(ledger.book_zone().await.unwrap(), chrono_tz::Asia::Shanghai);
    ledger.close().await;
    // A second start reads the configuration it made and keeps the deployments.
    let (mut child, address, _lines) = start(&dir.0, &db.url());
    let again = http.get(format!("http://{address}/v1/definitions")).bearer_auth(&carl).send().await.unwrap();
    assert_eq!(again.status(), reqwest::StatusCode::OK);
    assert!(terminate(&mut child).success());
}

#[test]
fn serve_refuses_a_configuration_with_a_plain_token() {
    let dir = Dir::new("plain");
    std::fs::write(dir.0.join("cloverleaf.toml"), "[[users]]\nname = \"mia\"\nroles = []\ntoken_sha256 = \"secret\"\n")
        .unwrap();
    let output = binary()
        .current_dir(&dir.0)
        .args(["serve", "--processes", &processes(), "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("64 hex digits"), "{stderr}");
}

#[test]
fn serve_refuses_a_job_lease_it_could_not_keep_with_words() {
    let dir = Dir::new("lease");
    for (lease, expected) in [("0s", "a lease is from 1s to 1440m"), ("2d", "is not a duration such as 500ms")] {
        let output = binary()
            .current_dir(&dir.0)
            .args(["serve", "--processes", &processes(), "--listen", "127.0.0.1:0", "--job-lease", lease])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{lease}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--job-lease") && stderr.contains(expected), "{lease}: {stderr}");
        // Refused before anything was written.
        assert!(!dir.0.join("cloverleaf.toml").exists() && !dir.0.join("cloverleaf.db").exists());
    }
}

#[test]
fn serve_refuses_a_timer_claim_out_of_bounds_with_words() {
    let dir = Dir::new("claim");
    for (claim, expected) in [("500ms", "a timer claim is from 1s to 1440m"), ("1h", "is not a duration such as")] {
        let output = binary()
            .current_dir(&dir.0)
            .args(["serve", "--processes", &processes(), "--listen", "127.0.0.1:0", "--timer-claim", claim])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{claim}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--timer-claim") && stderr.contains(expected), "{claim}: {stderr}");
        assert!(!dir.0.join("cloverleaf.toml").exists() && !dir.0.join("cloverleaf.db").exists());
    }
}

#[test]
fn serve_refuses_a_write_linger_that_would_hold_every_step_with_words() {
    let dir = Dir::new("linger");
    for (linger, expected) in [("200ms", "the write linger is from 0ms to 100ms"), ("6", "is not a duration such as")] {
        let output = binary()
            .current_dir(&dir.0)
            .args(["serve", "--processes", &processes(), "--listen", "127.0.0.1:0", "--write-linger", linger])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{linger}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--write-linger") && stderr.contains(expected), "{linger}: {stderr}");
        assert!(!dir.0.join("cloverleaf.toml").exists() && !dir.0.join("cloverleaf.db").exists());
    }
}

#[test]
fn serve_refuses_a_book_time_zone_it_does_not_know_with_words() {
    let dir = Dir::new("zone");
    let output = binary()
        .current_dir(&dir.0)
        .args(["serve", "--processes", &processes(), "--listen", "127.0.0.1:0", "--book-time-zone", "Beijing"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--book-time-zone") && stderr.contains("write an IANA name such as Asia/Shanghai"),
        "{stderr}"
    );
    assert!(!dir.0.join("cloverleaf.toml").exists() && !dir.0.join("cloverleaf.db").exists());
}

#[tokio::test]
async fn audit_verify_exits_1_on_an_altered_row() {
    let dir = Dir::new("audit");
    let db = dir.0.join("audit.db");
    {
        let engine = cloverleaf_engine::runtime::Engine::open(cloverleaf_engine::runtime::EngineOptions::new(
            &db,
            std::sync::Arc::new(cloverleaf_engine::SystemClock),
        ))
        .await
        .unwrap();
        engine.deploy(&[("p.flow", "process p \"P\" { start -> done  end done \"Done\" }")]).await.unwrap();
        engine.start("p", None, serde_json::json!({})).await.unwrap();
        engine.store().close().await;
    }
    let url = format!("sqlite://{}", db.display());
    let clean = binary().args(["audit", "verify", "--db", &url]).output().unwrap();
    let stdout = String::from_utf8_lossy(&clean.stdout);
    assert_eq!(clean.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("checked 1 instance(s)") && stdout.contains("all intact"), "{stdout}");
    {
        let store = cloverleaf_engine::store::SqliteStore::open(&db).await.unwrap();
        sqlx::query("UPDATE events SET at = '2020-01-01T00:00:00.000000Z' WHERE seq = 1")
            .execute(store.pool())
            .await
            .unwrap();
        store.close().await;
    }
    let altered = binary().args(["audit", "verify", "--db", &url]).output().unwrap();
    let stdout = String::from_utf8_lossy(&altered.stdout);
    assert_eq!(altered.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("ALTERED") && stdout.contains("1 instance(s) altered"), "{stdout}");
    let missing = binary().args(["audit", "verify", "--db", "sqlite://no/such.db"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
}
