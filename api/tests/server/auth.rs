//! Bearer tokens, the error shape of refusals, unknown routes and methods.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};

use crate::harness::Api;

#[tokio::test]
async fn healthz_needs_no_token() {
    let Some(api) = Api::new().await else { return };
    let answer = api.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(answer.expect(StatusCode::OK)["status"], "ok");
}

#[tokio::test]
async fn every_other_path_needs_a_known_bearer_token() {
    let Some(api) = Api::new().await else { return };
    for path in ["/v1/definitions", "/v1/tasks", "/metrics", "/openapi.json", "/v1/no-such-thing"] {
        let answer = api.call(Method::GET, path, None, None).await;
        answer.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(answer.headers.get(header::WWW_AUTHENTICATE).unwrap(), "Bearer");
    }
    for value in ["Bearer", "Basic dXNlcjpwYXNz", "Bearer not-a-token", "token-mia"] {
        let request =
            Request::builder().uri("/v1/tasks").header(header::AUTHORIZATION, value).body(Body::empty()).unwrap();
        api.send(request).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let request = Request::builder()
        .uri("/v1/tasks")
        .header(header::AUTHORIZATION, "bearer token-mia")
        .body(Body::empty())
        .unwrap();
    api.send(request).await.expect(StatusCode::OK);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_shape() {
    let Some(api) = Api::new().await else { return };
    let nothing = api.get("/v1/nothing-here", "mia").await;
    let details = &nothing.expect_error(StatusCode::NOT_FOUND, "not_found")["details"];
    assert_eq!(details, &serde_json::json!({"what": "route", "id": "/v1/nothing-here"}));
    api.call(Method::DELETE, "/v1/definitions", Some("ada"), None)
        .await
        .expect_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn oversized_bodies_and_broken_paths_answer_in_the_error_shape() {
    let Some(api) = Api::new().await else { return };
    let huge = format!("# {}\n", "x".repeat(5 * 1024 * 1024));
    api.raw(Method::POST, "/v1/definitions", Some("ada"), Some(&huge), "text/plain")
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    let big_json = format!("{{\"process\": \"{}\"}}", "x".repeat(3 * 1024 * 1024));
    api.raw(Method::POST, "/v1/tasks/i-x-1.task.2/complete", Some("mia"), Some(&big_json), "application/json")
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    api.get("/v1/tasks/i-x-1%FF", "mia").await.expect_error(StatusCode::BAD_REQUEST, "invalid_path");
}
