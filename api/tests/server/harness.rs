//! A router over a fresh database per test, an engine on a virtual clock, the reference
//! processes deployed, and one user per demo role with a known token.
//!
//! `CLOVERLEAF_TEST_BACKEND=postgres` runs the suite on PostgreSQL, each test on a database of
//! its own ([`ScratchDb`]); a test is skipped with a notice when PostgreSQL cannot be reached,
//! unless `CI` is set.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use cloverleaf::server::config::{ConfigFile, UserEntry, Users, hash_token};
use cloverleaf::server::{AppState, app};
use cloverleaf_engine::VirtualClock;
use cloverleaf_engine::runtime::Engine;
use cloverleaf_engine::store::AnyStore;
use cloverleaf_testkit::testdb::ScratchDb;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// Monday 2026-01-05 09:00 UTC.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()
}

/// The test users: (name, roles). Each one's token is `token-{name}`.
pub const USERS: &[(&str, &[&str])] = &[
    ("sam", &["sales.rep"]),
    ("mia", &["sales.manager"]),
    ("max", &["sales.manager"]),
    ("dora", &["sales.director"]),
    ("cora", &["finance.credit_controller"]),
    ("carl", &["finance.cfo", "finance.controller"]),
    ("ada", &["admin"]),
    ("robot", &["worker"]),
    ("lou", &["logistics.coordinator"]),
    ("arlo", &["finance.ar_clerk"]),
    ("vera", &["auditor"]),
    ("prom", &["metrics"]),
];

pub fn token(user: &str) -> String {
    format!("token-{user}")
}

/// mia's password for the pages' sign-in; the other test users have none.
pub const MIA_PASSWORD: &str = "mia's own long password";

/// Its argon2id hash, as `cloverleaf hash-password` printed it.
const MIA_PASSWORD_ARGON2: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$IPPn0SmlPazYPwI5Nhqk7Q$7LcuIj1vmhaBkFiCaPcplyccV27Q6CMr7CXdk1ecmrs";

pub fn users() -> Users {
    let config = ConfigFile {
        users: USERS
            .iter()
            .map(|(name, roles)| UserEntry {
                name: (*name).to_string(),
                roles: roles.iter().map(|r| (*r).to_string()).collect(),
                token_sha256: hash_token(&token(name)),
                password_argon2: (*name == "mia").then(|| MIA_PASSWORD_ARGON2.to_string()),
                time_zone: Some("Asia/Shanghai".to_string()),
                email: None,
                language: None,
            })
            .collect(),
        ..ConfigFile::default()
    };
    Users::from_config(&config).unwrap()
}

/// Every `.flow` file of `processes/` as (file name, text), in name order.
pub fn reference_files() -> Vec<(String, String)> {
    let dir = format!("{}/../processes", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".flow"))
        .collect();
    names.sort();
    names.into_iter().map(|n| (n.clone(), std::fs::read_to_string(format!("{dir}/{n}")).unwrap())).collect()
}

/// The text of `processes/{name}`.
pub fn reference_file(name: &str) -> String {
    std::fs::read_to_string(format!("{}/../processes/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// An answer: status, headers, and the body as JSON (or as a JSON string when it is text).
pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    /// Panics with the body unless the status is `status`.
    #[track_caller]
    pub fn expect(&self, status: StatusCode) -> &Value {
        assert_eq!(self.status, status, "{}", self.text);
        &self.body
    }

    /// Panics unless this is an error answer of `status` with `code`, in the one error shape.
    #[track_caller]
    pub fn expect_error(&self, status: StatusCode, code: &str) -> &Value {
        assert_eq!(self.status, status, "{}", self.text);
        let error = &self.body["error"];
        assert_eq!(error["code"], code, "{}", self.text);
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", self.text);
        assert!(error.get("details").is_some(), "{}", self.text);
        assert_eq!(self.body.as_object().map(|o| o.len()), Some(1), "only `error` at the top: {}", self.text);
        error
    }
}

/// The router over an engine, with the clock the tests move.
pub struct Api {
    pub app: Router,
    pub state: AppState,
    pub engine: Engine<AnyStore>,
    pub clock: VirtualClock,
    pub db: ScratchDb,
}

impl Api {
    /// With no process deployed; `None` when the test is skipped (see the module docs).
    pub async fn empty() -> Option<Api> {
        let db = ScratchDb::new().await?;
        let clock = VirtualClock::new(t0());
        let engine = Engine::connect(&db.url(), Arc::new(clock.clone())).await.unwrap();
        let state = AppState::new(engine.clone(), users());
        let app = app(state.clone());
        Some(Api { app, state, engine, clock, db })
    }

    /// With every reference process deployed; `None` when the test is skipped.
    pub async fn new() -> Option<Api> {
        let api = Api::empty().await?;
        let files = reference_files();
        let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
        api.engine.deploy(&refs).await.unwrap();
        Some(api)
    }

    pub fn advance(&self, by: TimeDelta) {
        self.clock.advance(by);
    }

    /// Sends a request as `user` (no token with `None`); the body is JSON unless `raw` is used.
    pub async fn call(&self, method: Method, path: &str, user: Option<&str>, body: Option<Value>) -> Answer {
        let body = body.map(|b| b.to_string());
        self.raw(method, path, user, body.as_deref(), "application/json").await
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        user: Option<&str>,
        body: Option<&str>,
        content_type: &str,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(user) = user {
            request = request.header(header::AUTHORIZATION, format!("Bearer {}", token(user)));
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request = request.body(Body::from(body.unwrap_or_default().to_string())).unwrap();
        self.send(request).await
    }

    pub async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(text.clone()));
        Answer { status, headers, body, text }
    }

    pub async fn get(&self, path: &str, user: &str) -> Answer {
        self.call(Method::GET, path, Some(user), None).await
    }

    pub async fn post(&self, path: &str, user: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(user), Some(body)).await
    }

    pub async fn put(&self, path: &str, user: &str, body: Value) -> Answer {
        self.call(Method::PUT, path, Some(user), Some(body)).await
    }

    /// POST with no body.
    pub async fn post_empty(&self, path: &str, user: &str) -> Answer {
        self.call(Method::POST, path, Some(user), None).await
    }

    /// Starts an order of `amount` requested by `requester`; returns its id.
    pub async fn order(&self, amount: &str, requester: &str) -> String {
        self.order_entered_by(requester, requester, amount).await
    }

    /// Starts an order of `amount` that `entered_by` enters for `requester`; returns its id.
    pub async fn order_entered_by(&self, entered_by: &str, requester: &str, amount: &str) -> String {
        let answer = self
            .post(
                "/v1/instances",
                entered_by,
                json!({"process": "order_approval", "business_key": "SO-1", "variables": {
                    "order_id": "SO-1", "customer_id": "C-7", "amount": amount, "requested_by": requester}}),
            )
            .await;
        answer.expect(StatusCode::CREATED)["id"].as_str().unwrap().to_string()
    }

    /// Locks the one due job of `job_type` as the worker.
    pub async fn one_job(&self, job_type: &str) -> Value {
        let answer = self
            .post(
                "/v1/jobs/fetch-and-lock",
                "robot",
                json!({"worker_id": "w1", "topics": [job_type], "max_jobs": 10, "lock_ms": 60000}),
            )
            .await;
        let jobs = answer.expect(StatusCode::OK).as_array().unwrap().clone();
        assert_eq!(jobs.len(), 1, "{}", answer.text);
        jobs[0].clone()
    }

    /// Answers the one due credit check as the worker, for a good customer (limit 500,000,
    /// nothing open, risk A): a small order is approved straight through, a larger one goes to
    /// the sales manager.
    pub async fn pass_credit_check(&self) {
        let job = self.one_job("credit.check").await;
        self.post(
            &format!("/v1/jobs/{}/complete", job["id"].as_str().unwrap()),
            "robot",
            json!({"epoch": job["epoch"], "variables": {"credit_limit": "500000", "open_ar": "0", "risk": "A"}}),
        )
        .await
        .expect(StatusCode::NO_CONTENT);
    }

    /// Starts an order and answers its credit check so that it waits for the sales manager.
    pub async fn order_at_manager(&self, amount: &str, requester: &str) -> (String, String) {
        let id = self.order(amount, requester).await;
        self.pass_credit_check().await;
        let tasks = self.engine.tasks(Some(&id.as_str().into())).await.unwrap();
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].node, "manager_approval");
        (id, tasks[0].id.0.clone())
    }

    /// The status of an instance.
    pub async fn status(&self, id: &str) -> Value {
        let answer = self.get(&format!("/v1/instances/{id}"), "ada").await;
        let body = answer.expect(StatusCode::OK);
        json!({"status": body["status"], "outcome": body["outcome"]})
    }
}

/// The text of some HTML without its tags (attributes are not seen).
pub fn visible(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Seeds the demo company into a sub-ledger on the test's database and routes `api` through it.
pub async fn with_ledger(api: &mut Api) -> cloverleaf_finance::Ledger {
    let ledger = cloverleaf_finance::Ledger::connect(&api.db.url()).await.unwrap();
    ledger.seed_demo_company(t0().date_naive()).await.unwrap();
    let state = cloverleaf::server::AppState::with_ledger(api.engine.clone(), users(), ledger.clone());
    api.app = cloverleaf::server::app(state);
    ledger
}
