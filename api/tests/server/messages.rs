//! Messages: delivered to the instance waiting, buffered, idempotent by id.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::harness::Api;

const WAITER: &str = r#"process wait_for_payment "Wait for payment" {
  input { invoice_id: text }
  var received: money = 0
  start -> wait
  receive wait "Wait for the payment" {
    message "payment.received" key invoice_id
    out { received: amount }
  } -> done
  end done "Paid"
}
"#;

async fn api_with_waiter() -> Option<Api> {
    let api = Api::new().await?;
    api.raw(Method::POST, "/v1/definitions", Some("ada"), Some(WAITER), "text/plain").await.expect(StatusCode::CREATED);
    Some(api)
}

async fn start(api: &Api, invoice: &str) -> String {
    let answer = api
        .post("/v1/instances", "ada", json!({"process": "wait_for_payment", "variables": {"invoice_id": invoice}}))
        .await;
    answer.expect(StatusCode::CREATED)["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_message_reaches_the_instance_waiting_for_its_key_once() {
    let Some(api) = api_with_waiter().await else { return };
    let id = start(&api, "INV-1").await;
    let message = json!({"name": "payment.received", "correlation_key": "INV-1", "message_id": "bank-77",
        "variables": {"amount": "1234.50"}});
    let answer = api.post("/v1/messages", "robot", message.clone()).await;
    assert_eq!(answer.expect(StatusCode::OK), &json!({"outcome": "delivered", "instances": [id]}));
    let instance = api.get(&format!("/v1/instances/{id}"), "ada").await;
    let body = instance.expect(StatusCode::OK);
    assert_eq!((body["status"].as_str(), body["variables"]["received"].as_str()), (Some("completed"), Some("1234.50")));
    let again = api.post("/v1/messages", "ada", message).await;
    assert_eq!(again.expect(StatusCode::OK), &json!({"outcome": "duplicate", "instances": []}));
}

#[tokio::test]
async fn a_message_nobody_waits_for_is_buffered_until_someone_does() {
    let Some(api) = api_with_waiter().await else { return };
    let message =
        json!({"name": "payment.received", "correlation_key": "INV-2", "ttl": "P2D", "variables": {"amount": "10.00"}});
    let answer = api.post("/v1/messages", "robot", message).await;
    assert_eq!(answer.expect(StatusCode::ACCEPTED), &json!({"outcome": "buffered", "instances": []}));
    let id = start(&api, "INV-2").await;
    assert_eq!(api.status(&id).await, json!({"status": "completed", "outcome": "done"}));
}

#[tokio::test]
async fn messages_need_a_system_role_and_a_valid_ttl() {
    let Some(api) = api_with_waiter().await else { return };
    let message = json!({"name": "payment.received", "correlation_key": "INV-3", "variables": {}});
    api.post("/v1/messages", "sam", message.clone()).await.expect_error(StatusCode::FORBIDDEN, "missing_role");
    let mut bad = message.clone();
    bad["ttl"] = json!("a while");
    api.post("/v1/messages", "robot", bad).await.expect_error(StatusCode::BAD_REQUEST, "invalid_message");
    let mut unknown = message;
    unknown["payload"] = json!({});
    api.post("/v1/messages", "robot", unknown).await.expect_error(StatusCode::BAD_REQUEST, "invalid_json");
}

#[tokio::test]
async fn a_payload_the_receive_cannot_read_is_422() {
    let Some(api) = api_with_waiter().await else { return };
    start(&api, "INV-4").await;
    let answer = api
        .post(
            "/v1/messages",
            "robot",
            json!({"name": "payment.received", "correlation_key": "INV-4", "variables": {"amount": "ten"}}),
        )
        .await;
    answer.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_output");
}
