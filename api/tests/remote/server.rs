//! A server on a socket over a fresh database (see the server harness) and a virtual clock, with the reference
//! processes deployed and neither in-process workers nor a scheduler: every job waits for a
//! remote worker.

use std::net::SocketAddr;
use std::sync::Arc;

use cloverleaf::remote::RemoteSource;
use cloverleaf::server::{AppState, app};
use cloverleaf_engine::VirtualClock;
use cloverleaf_engine::runtime::Engine;
use cloverleaf_engine::store::AnyStore;
use cloverleaf_testkit::testdb::ScratchDb;
use serde_json::Value;

use crate::harness::{reference_files, t0, token, users};

pub struct Server {
    pub engine: Engine<AnyStore>,
    pub clock: VirtualClock,
    pub address: SocketAddr,
    pub db: ScratchDb,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// `None` when the test is skipped (PostgreSQL unreachable outside CI).
    pub async fn start() -> Option<Server> {
        let db = ScratchDb::new().await?;
        let clock = VirtualClock::new(t0());
        let engine = Engine::connect(&db.url(), Arc::new(clock.clone())).await.unwrap();
        let files = reference_files();
        let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
        engine.deploy(&refs).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = app(AppState::new(engine.clone(), users()));
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Some(Server { engine, clock, address, db, http: reqwest::Client::new(), stop: Some(stop), task: Some(task) })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A source calling as `user`.
    pub fn source(&self, user: &str) -> RemoteSource {
        RemoteSource::new(&self.url(), &token(user)).unwrap()
    }

    /// POSTs `body` as `user`; the status and the JSON answer.
    pub async fn post(&self, path: &str, user: &str, body: Value) -> (u16, Value) {
        let response =
            self.http.post(format!("{}{path}", self.url())).bearer_auth(token(user)).json(&body).send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn get(&self, path: &str, user: &str) -> Value {
        let response = self.http.get(format!("{}{path}", self.url())).bearer_auth(token(user)).send().await.unwrap();
        assert!(response.status().is_success(), "GET {path}: {}", response.status());
        response.json().await.unwrap()
    }

    /// Starts `process` for `customer` and `amount`, requested by sam; the instance id.
    pub async fn start_order(&self, process: &str, order: &str, customer: &str, amount: &str) -> String {
        let (status, body) = self
            .post(
                "/v1/instances",
                "sam",
                serde_json::json!({"process": process, "business_key": order, "variables": {
                    "order_id": order, "customer_id": customer, "amount": amount, "requested_by": "sam"}}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        self.engine.store().close().await;
    }
}
