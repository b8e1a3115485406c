//! The generic HTTP handler against a local server.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::TimeDelta;
use cloverleaf_worker::{Endpoint, HandlerError, Handlers, HttpHandler};
use serde_json::{Value, json};

use crate::harness::{Env, completed, context, options, t0};

/// Serves the test endpoints on a free local port.
async fn server() -> (SocketAddr, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let flaky_calls = Arc::clone(&calls);
    let app = Router::new()
        .route(
            "/ok",
            post(|headers: HeaderMap, Json(input): Json<Value>| async move {
                let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                Json(json!({"echo": input, "key": key, "status": "booked"}))
            }),
        )
        .route(
            "/refuse",
            post(|| async {
                (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"error": {"code": "credit_refused", "message": "no"}})))
            }),
        )
        .route("/plain-400", post(|| async { (StatusCode::BAD_REQUEST, "bad request") }))
        .route(
            "/flaky",
            post(move || {
                let calls = Arc::clone(&flaky_calls);
                async move {
                    if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                        (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": {"code": "down"}})))
                    } else {
                        (StatusCode::OK, Json(json!({"credit_limit": "50000.00", "open_ar": "0", "risk": "A"})))
                    }
                }
            }),
        )
        .route("/hang", post(std::future::pending::<&'static str>));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, calls)
}

fn handler(addr: SocketAddr) -> HttpHandler {
    let url = |path: &str| format!("http://{addr}{path}");
    let endpoints = BTreeMap::from([
        ("erp.ok".to_string(), Endpoint::new(url("/ok"))),
        ("erp.refuse".to_string(), Endpoint::new(url("/refuse"))),
        ("erp.plain".to_string(), Endpoint::new(url("/plain-400"))),
        ("credit.check".to_string(), Endpoint::new(url("/flaky"))),
        ("erp.hang".to_string(), Endpoint::new(url("/hang")).timeout(Duration::from_millis(100))),
    ]);
    HttpHandler::new(endpoints).unwrap()
}

#[tokio::test]
async fn success_maps_the_answer_to_output_variables_and_sends_the_idempotency_key() {
    let (addr, _) = server().await;
    let input = json!({"order_id": "SO-1", "amount": "12.50"});
    let out = handler(addr).call(context("erp.ok", "i1:node:1", input.clone(), t0())).await.unwrap();
    assert_eq!(out, json!({"echo": input, "key": "i1:node:1", "status": "booked"}));
}

#[tokio::test]
async fn a_4xx_with_an_error_code_is_a_business_error_and_other_answers_are_failures() {
    let (addr, _) = server().await;
    let h = handler(addr);
    let refused = h.call(context("erp.refuse", "k", json!({}), t0())).await;
    assert_eq!(refused, Err(HandlerError::business("credit_refused", "no")));
    let plain = h.call(context("erp.plain", "k", json!({}), t0())).await;
    assert!(matches!(&plain, Err(HandlerError::Failure(m)) if m.contains("400")), "{plain:?}");
    let first = h.call(context("credit.check", "k", json!({}), t0())).await;
    assert!(matches!(&first, Err(HandlerError::Failure(m)) if m.contains("500")), "{first:?}");
    let second = h.call(context("credit.check", "k", json!({}), t0())).await.unwrap();
    assert_eq!(second["risk"], "A");
    let unknown = h.call(context("erp.unknown", "k", json!({}), t0())).await;
    assert!(matches!(unknown, Err(HandlerError::Failure(_))));
}

#[tokio::test]
async fn a_timeout_is_a_failure() {
    let (addr, _) = server().await;
    let hung = handler(addr).call(context("erp.hang", "k", json!({}), t0())).await;
    assert!(matches!(&hung, Err(HandlerError::Failure(m)) if m.contains("timed out")), "{hung:?}");
}

#[tokio::test]
async fn a_500_is_retried_by_the_engine_and_then_succeeds() {
    let Some(env) = Env::new().await else { return };
    let (addr, calls) = server().await;
    let mut handlers = Handlers::new();
    handler(addr).register(&mut handlers);
    let worker = env.worker(handlers, options());
    let id = env
        .engine
        .start(
            "order_approval",
            None,
            json!({"order_id": "SO-1", "customer_id": "C-001", "amount": "100.00", "requested_by": "rita"}),
        )
        .await
        .unwrap();
    worker.until(|s| s.failed >= 1).await;
    env.advance(TimeDelta::seconds(31));
    worker.handle.wake();
    worker.until(|s| s.completed >= 1).await;
    assert_eq!(env.status(&id).await, completed("approved"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
