//! Starting, listing, reading, history and cancelling instances.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;

use crate::harness::{Api, token};

#[tokio::test]
async fn an_instance_starts_and_shows_its_variables_with_exact_money() {
    let Some(api) = Api::new().await else { return };
    // A JSON number is read from its text, exactly, scale kept.
    let body = r#"{"process": "order_approval", "business_key": "SO-9", "variables": {
        "order_id": "SO-9", "customer_id": "C-1", "amount": 12345.50, "requested_by": "sam"}}"#;
    let answer = api.raw(Method::POST, "/v1/instances", Some("sam"), Some(body), "application/json").await;
    let body = answer.expect(StatusCode::CREATED);
    assert_eq!(body["status"], "running");
    assert_eq!(body["version"], 1);
    assert_eq!(body["business_key"], "SO-9");
    assert_eq!(body["variables"]["amount"], "12345.50", "money travels as a decimal string");
    assert_eq!(body["waiting"]["jobs"][0]["detail"], "credit.check");
    assert!(body["created_at"].as_str().unwrap().starts_with("2026-01-05T09:00:00"));
    let id = body["id"].as_str().unwrap();
    let read = api.get(&format!("/v1/instances/{id}"), "sam").await;
    assert_eq!(read.expect(StatusCode::OK)["variables"]["amount"], "12345.50");
}

/// POSTs a start of an order for `business_key` with the `Idempotency-Key` header.
async fn start_with_key(api: &Api, key: &str, business_key: &str) -> crate::harness::Answer {
    let body = json!({"process": "order_approval", "business_key": business_key, "variables": {
        "order_id": business_key, "customer_id": "C-1", "amount": "500.00", "requested_by": "sam"}});
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/instances")
        .header(header::AUTHORIZATION, format!("Bearer {}", token("sam")))
        .header(header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", key)
        .body(Body::from(body.to_string()))
        .unwrap();
    api.send(request).await
}

#[tokio::test]
async fn a_start_retried_with_its_idempotency_key_starts_one_instance() {
    let Some(api) = Api::new().await else { return };
    let first = start_with_key(&api, "order-SO-41:try", "SO-41").await;
    let id = first.expect(StatusCode::CREATED)["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("req-") && !id.contains("SO-41"), "the id derives from the caller and the key: {id}");
    // The answer was lost: the client sends the same request again.
    let again = start_with_key(&api, "order-SO-41:try", "SO-41").await;
    assert_eq!(again.expect(StatusCode::OK)["id"], id.as_str());
    let listed = api.get("/v1/instances?business_key=SO-41", "ada").await;
    assert_eq!(listed.expect(StatusCode::OK).as_array().map(Vec::len), Some(1), "one instance for two requests");
    // The key already names another start.
    let reused = start_with_key(&api, "order-SO-41:try", "SO-42").await;
    let error = reused.expect_error(StatusCode::CONFLICT, "idempotency_key_reused");
    assert_eq!(error["details"]["instance"], id.as_str(), "{error}");
    // Two nodes get the same retried request at the same moment: one starts it.
    let (a, b) = tokio::join!(start_with_key(&api, "race-1", "SO-44"), start_with_key(&api, "race-1", "SO-44"));
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CREATED]);
    assert_eq!(a.body["id"], b.body["id"]);
    // A key that cannot be part of an id is refused before anything starts.
    for bad in ["", "has space", "a/b", &"k".repeat(101)] {
        let answer = start_with_key(&api, bad, "SO-43").await;
        answer.expect_error(StatusCode::BAD_REQUEST, "invalid_idempotency_key");
    }
    let none = api.get("/v1/instances?business_key=SO-43", "ada").await;
    assert_eq!(none.expect(StatusCode::OK).as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn a_start_that_breaks_the_process_inputs_is_422_with_the_fields() {
    let Some(api) = Api::new().await else { return };
    let answer = api
        .post(
            "/v1/instances",
            "sam",
            json!({"process": "order_approval", "variables": {"order_id": "SO-1", "customer_id": "C-1",
                "amount": "lots", "requested_by": "sam"}}),
        )
        .await;
    let error = answer.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");
    assert_eq!(error["details"]["fields"][0]["field"], "amount", "{}", answer.text);
    let missing = api.post("/v1/instances", "sam", json!({"process": "order_approval", "variables": {}})).await;
    let error = missing.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");
    assert!(error["details"]["fields"].as_array().unwrap().len() >= 3, "{}", missing.text);
}

#[tokio::test]
async fn malformed_json_and_unknown_fields_are_400_with_a_clear_message() {
    let Some(api) = Api::new().await else { return };
    let malformed = api
        .raw(Method::POST, "/v1/instances", Some("sam"), Some("{\"process\": \"order_approval\""), "application/json")
        .await;
    let error = malformed.expect_error(StatusCode::BAD_REQUEST, "invalid_json");
    assert!(error["message"].as_str().unwrap().contains("not valid JSON"), "{}", malformed.text);
    let unknown = api.post("/v1/instances", "sam", json!({"process": "order_approval", "variabels": {}})).await;
    let error = unknown.expect_error(StatusCode::BAD_REQUEST, "invalid_json");
    assert!(error["message"].as_str().unwrap().contains("unknown field `variabels`"), "{}", unknown.text);
    let wrong_type = api.post("/v1/instances", "sam", json!({"process": 7})).await;
    wrong_type.expect_error(StatusCode::BAD_REQUEST, "invalid_json");
    let empty = api.raw(Method::POST, "/v1/instances", Some("sam"), Some(""), "application/json").await;
    empty.expect_error(StatusCode::BAD_REQUEST, "invalid_json");
}

#[tokio::test]
async fn unknown_processes_versions_and_instances_are_404() {
    let Some(api) = Api::new().await else { return };
    // The details name what is missing, so that a client (the pages, in the reader's language)
    // need not read the message.
    let process = api.post("/v1/instances", "sam", json!({"process": "nope", "variables": {}})).await;
    let details = &process.expect_error(StatusCode::NOT_FOUND, "not_found")["details"];
    assert_eq!((&details["what"], &details["id"]), (&json!("process"), &json!("nope")));
    let version =
        api.post("/v1/instances", "sam", json!({"process": "order_approval", "version": 4, "variables": {}})).await;
    let details = &version.expect_error(StatusCode::NOT_FOUND, "not_found")["details"];
    assert_eq!(details, &json!({"what": "version", "id": "order_approval", "version": 4}));
    let instance = api.get("/v1/instances/i-nope-1", "sam").await;
    let details = &instance.expect_error(StatusCode::NOT_FOUND, "not_found")["details"];
    assert_eq!(details, &json!({"what": "instance", "id": "i-nope-1"}));
    api.get("/v1/instances/i-nope-1/history", "sam").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    api.post_empty("/v1/instances/i-nope-1/cancel", "ada").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    api.post_empty("/v1/instances/i-nope-1/frobnicate", "ada").await.expect_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn instances_are_listed_by_process_status_and_business_key() {
    let Some(api) = Api::new().await else { return };
    let a = api.order("500.00", "sam").await;
    let b = api.order("900.00", "sam").await;
    api.post_empty(&format!("/v1/instances/{b}/cancel"), "ada").await.expect(StatusCode::OK);
    let all = api.get("/v1/instances?process=order_approval", "sam").await;
    assert_eq!(all.expect(StatusCode::OK).as_array().unwrap().len(), 2);
    let running = api.get("/v1/instances?status=running", "sam").await;
    let ids: Vec<&str> =
        running.expect(StatusCode::OK).as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [a.as_str()]);
    let by_key = api.get("/v1/instances?business_key=SO-1&limit=1", "sam").await;
    assert_eq!(by_key.expect(StatusCode::OK).as_array().unwrap().len(), 1);
    let none = api.get("/v1/instances?business_key=SO-404", "sam").await;
    assert_eq!(none.expect(StatusCode::OK), &json!([]));
    api.get("/v1/instances?status=sleeping", "sam").await.expect_error(StatusCode::BAD_REQUEST, "invalid_query");
    api.get("/v1/instances?limit=0", "sam").await.expect_error(StatusCode::BAD_REQUEST, "invalid_query");
    api.get("/v1/instances?color=red", "sam").await.expect_error(StatusCode::BAD_REQUEST, "invalid_query");
}

#[tokio::test]
async fn history_is_chained_and_verified() {
    let Some(api) = Api::new().await else { return };
    let (id, task) = api.order_at_manager("20000.00", "sam").await;
    api.post(&format!("/v1/tasks/{task}/complete"), "mia", json!({"variables": {"approve": true}}))
        .await
        .expect(StatusCode::OK);
    let answer = api.get(&format!("/v1/instances/{id}/history"), "carl").await;
    let body = answer.expect(StatusCode::OK);
    assert_eq!(body["intact"], true);
    let entries = body["entries"].as_array().unwrap();
    assert_eq!(entries[0]["kind"], "started");
    assert_eq!(entries[0]["prev_hash"], "0".repeat(64));
    for pair in entries.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
    }
    let completed = entries.iter().find(|e| e["kind"] == "task_completed").unwrap();
    assert_eq!(completed["who"], "mia");
}

#[tokio::test]
async fn only_an_admin_cancels_and_a_cancelled_instance_cannot_be_cancelled_again() {
    let Some(api) = Api::new().await else { return };
    let id = api.order("500.00", "sam").await;
    let refused = api.post_empty(&format!("/v1/instances/{id}/cancel"), "sam").await;
    assert_eq!(refused.expect_error(StatusCode::FORBIDDEN, "missing_role")["details"]["required_role"], "admin");
    let cancelled = api.post_empty(&format!("/v1/instances/{id}/cancel"), "ada").await;
    let body = cancelled.expect(StatusCode::OK);
    assert_eq!((body["status"].as_str(), body["cancelled_by"].as_str()), (Some("cancelled"), Some("ada")));
    api.post_empty(&format!("/v1/instances/{id}/cancel"), "ada")
        .await
        .expect_error(StatusCode::CONFLICT, "invalid_state");
}
