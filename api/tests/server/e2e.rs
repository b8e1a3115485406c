//! Once over a real socket: order approval and the start of order to cash, driven by users of
//! different roles and by an external worker, with the refusals a client meets.

use std::sync::Arc;

use cloverleaf::server::{AppState, app};
use cloverleaf_engine::SystemClock;
use cloverleaf_engine::runtime::Engine;
use cloverleaf_testkit::testdb::ScratchDb;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{reference_files, token, users};

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn send(&self, method: reqwest::Method, path: &str, user: &str, body: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(token(user));
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn get(&self, path: &str, user: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, user, None).await
    }

    async fn post(&self, path: &str, user: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, user, Some(&body.to_string())).await
    }

    /// Fetches one job of `topic` and completes it with `result`, as a worker over HTTP.
    async fn work(&self, topic: &str, result: Value) -> Value {
        let (status, jobs) = self
            .post(
                "/v1/jobs/fetch-and-lock",
                "robot",
                json!({"worker_id": "e2e", "topics": [topic], "max_jobs": 1, "lock_ms": 30000, "wait_ms": 5000}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{jobs}");
        let job = jobs[0].clone();
        let (status, body) = self
            .post(
                &format!("/v1/jobs/{}/complete", job["id"].as_str().unwrap()),
                "robot",
                json!({"epoch": job["epoch"], "variables": result}),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        job
    }

    /// The one task of `user`'s inbox at `node`.
    async fn task_at(&self, user: &str, node: &str) -> String {
        let (status, tasks) = self.get("/v1/tasks", user).await;
        assert_eq!(status, StatusCode::OK);
        let found: Vec<&Value> = tasks.as_array().unwrap().iter().filter(|t| t["node"] == node).collect();
        assert_eq!(found.len(), 1, "{tasks}");
        found[0]["id"].as_str().unwrap().to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_approval_and_order_to_cash_over_http() {
    let Some(db) = ScratchDb::new().await else { return };
    let engine = Engine::connect(&db.url(), Arc::new(SystemClock)).await.unwrap();
    let files = reference_files();
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    engine.deploy(&refs).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app(AppState::new(engine, users())))
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    let client = Client { http: reqwest::Client::new(), base: format!("http://{address}") };

    // A large order, requested by a sales manager herself.
    let (status, started) = client
        .post(
            "/v1/instances",
            "mia",
            json!({"process": "order_approval", "business_key": "SO-100", "variables": {
                "order_id": "SO-100", "customer_id": "C-1", "amount": "150000.00", "requested_by": "mia"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let order = started["id"].as_str().unwrap().to_string();
    client.work("credit.check", json!({"credit_limit": "1000000.00", "open_ar": "0", "risk": "A"})).await;

    let manager_task = client.task_at("max", "manager_approval").await;
    let complete = format!("/v1/tasks/{manager_task}/complete");
    // A sales rep holds none of the task's roles.
    let (status, body) = client.post(&complete, "sam", json!({"variables": {"approve": true}})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("not_candidate")), "{body}");
    // Nobody approves their own order.
    let (status, body) = client.post(&complete, "mia", json!({"variables": {"approve": true}})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "separation_of_duties");
    assert_eq!(body["error"]["details"]["rule"], "not by requested_by");
    // Malformed JSON and unknown fields are 400 with words.
    let (status, body) = client.send(reqwest::Method::POST, &complete, "max", Some("{\"variables\": ")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_json")), "{body}");
    let (status, body) = client.post(&complete, "max", json!({"variables": {"approve": true}, "note": "ok"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().contains("unknown field `note`"), "{body}");
    // A wrong type in the form.
    let (status, body) = client.post(&complete, "max", json!({"variables": {"approve": "yes"}})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["details"]["fields"][0]["field"], "approve");
    let (status, body) =
        client.post(&complete, "max", json!({"variables": {"approve": true, "comment": "fine"}})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A second completion of the same task.
    let (status, body) = client.post(&complete, "max", json!({"variables": {"approve": true}})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("task_closed")), "{body}");

    // Above 100,000 the CFO approves too.
    let cfo_task = client.task_at("carl", "cfo_approval").await;
    let (status, _) =
        client.post(&format!("/v1/tasks/{cfo_task}/complete"), "carl", json!({"variables": {"approve": true}})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, instance) = client.get(&format!("/v1/instances/{order}"), "ada").await;
    assert_eq!((instance["status"].as_str(), instance["outcome"].as_str()), (Some("completed"), Some("approved")));
    let (_, history) = client.get(&format!("/v1/instances/{order}/history"), "ada").await;
    assert_eq!(history["intact"], true);

    // Order to cash calls order approval, then waits for the shipment.
    let (status, o2c) = client
        .post(
            "/v1/instances",
            "sam",
            json!({"process": "order_to_cash", "business_key": "SO-200", "variables": {
                "order_id": "SO-200", "customer_id": "C-2", "amount": "25000.00", "requested_by": "sam"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{o2c}");
    let o2c = o2c["id"].as_str().unwrap().to_string();
    let job = client.work("credit.check", json!({"credit_limit": "100000.00", "open_ar": "0", "risk": "B"})).await;
    assert!(job["instance_id"].as_str().unwrap().starts_with(&format!("{o2c}.call.")), "the called instance: {job}");
    let child_task = client.task_at("mia", "manager_approval").await;
    let (status, _) =
        client.post(&format!("/v1/tasks/{child_task}/complete"), "mia", json!({"variables": {"approve": true}})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, delivered) = client
        .post(
            "/v1/messages",
            "robot",
            json!({"name": "shipment.dispatched", "correlation_key": "SO-200", "variables": {"shipment_id": "SH-1", "carrier": "DHL"}}),
        )
        .await;
    assert_eq!((status, delivered["outcome"].as_str()), (StatusCode::OK, Some("delivered")), "{delivered}");
    let (_, jobs) = client
        .post(
            "/v1/jobs/fetch-and-lock",
            "robot",
            json!({"worker_id": "e2e", "topics": ["*"], "max_jobs": 10, "lock_ms": 30000, "wait_ms": 5000}),
        )
        .await;
    let mut types: Vec<&str> = jobs.as_array().unwrap().iter().map(|j| j["job_type"].as_str().unwrap()).collect();
    types.sort_unstable();
    assert_eq!(types.len(), 2, "invoice and cost of goods in parallel: {jobs}");
    let (_, running) = client.get("/v1/instances?process=order_to_cash&status=running", "ada").await;
    assert_eq!(running[0]["id"], o2c.as_str());

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
