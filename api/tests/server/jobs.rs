//! The external-job API: fetch-and-lock with long polling, fenced completion, failures,
//! business errors, lease extension.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use chrono::TimeDelta;
use cloverleaf_testkit::eventually;
use serde_json::json;

use crate::harness::Api;

fn fetch(topics: &[&str]) -> serde_json::Value {
    json!({"worker_id": "w1", "topics": topics, "max_jobs": 10, "lock_ms": 60000})
}

#[tokio::test]
async fn a_job_is_locked_once_and_completed_with_its_epoch() {
    let Some(api) = Api::new().await else { return };
    let id = api.order("20000.00", "sam").await;
    let answer = api.post("/v1/jobs/fetch-and-lock", "robot", fetch(&["credit.*"])).await;
    let jobs = answer.expect(StatusCode::OK).as_array().unwrap().clone();
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!((job["instance_id"].as_str(), job["job_type"].as_str()), (Some(id.as_str()), Some("credit.check")));
    assert_eq!(job["input"]["amount"], "20000.00");
    assert_eq!(job["epoch"], 1);
    assert_eq!(job["lock_expires_at"], "2026-01-05T09:01:00Z");
    // Locked: a second fetch gets nothing.
    let again = api.post("/v1/jobs/fetch-and-lock", "robot", fetch(&["credit.check"])).await;
    assert_eq!(again.expect(StatusCode::OK), &json!([]));
    let path = format!("/v1/jobs/{}/complete", job["id"].as_str().unwrap());
    let result = json!({"credit_limit": "50000", "open_ar": "0", "risk": "A"});
    api.post(&path, "robot", json!({"epoch": 2, "variables": result}))
        .await
        .expect_error(StatusCode::CONFLICT, "stale_lock");
    api.post(&path, "robot", json!({"epoch": 1, "variables": result})).await.expect(StatusCode::NO_CONTENT);
    api.post(&path, "robot", json!({"epoch": 1, "variables": result}))
        .await
        .expect_error(StatusCode::CONFLICT, "stale_lock");
    assert_eq!(api.engine.tasks(None).await.unwrap()[0].node, "manager_approval");
}

#[tokio::test]
async fn the_job_api_is_for_workers_and_checks_its_input() {
    let Some(api) = Api::new().await else { return };
    api.post("/v1/jobs/fetch-and-lock", "ada", fetch(&["credit.check"]))
        .await
        .expect_error(StatusCode::FORBIDDEN, "missing_role");
    for (field, value) in
        [("max_jobs", json!(0)), ("lock_ms", json!(0)), ("wait_ms", json!(600_000)), ("topics", json!([]))]
    {
        let mut body = fetch(&["credit.check"]);
        body[field] = value;
        let answer = api.post("/v1/jobs/fetch-and-lock", "robot", body).await;
        assert_eq!(
            answer.expect_error(StatusCode::BAD_REQUEST, "invalid_request")["details"]["fields"][0]["field"],
            field
        );
    }
    api.post("/v1/jobs/fetch-and-lock", "robot", json!({"worker_id": "w1", "topics": ["x"]}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_json");
    api.post("/v1/jobs/i-x-1.job.1/complete", "robot", json!({"epoch": 1}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    api.post("/v1/jobs/i-x-1.job.1/complete", "mia", json!({"epoch": 1}))
        .await
        .expect_error(StatusCode::FORBIDDEN, "missing_role");
    api.post("/v1/jobs/i-x-1.job.1/finish", "robot", json!({"epoch": 1}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_result_that_does_not_fit_the_output_mappings_is_422() {
    let Some(api) = Api::new().await else { return };
    api.order("20000.00", "sam").await;
    let job = api.one_job("credit.check").await;
    let answer = api
        .post(
            &format!("/v1/jobs/{}/complete", job["id"].as_str().unwrap()),
            "robot",
            json!({"epoch": job["epoch"], "variables": {"credit_limit": "plenty", "open_ar": "0", "risk": "A"}}),
        )
        .await;
    answer.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_output");
}

#[tokio::test]
async fn a_business_error_takes_the_tasks_on_error_path() {
    let Some(api) = Api::new().await else { return };
    let id = api.order("20000.00", "sam").await;
    let job = api.one_job("credit.check").await;
    let path = format!("/v1/jobs/{}/error", job["id"].as_str().unwrap());
    api.post(&path, "robot", json!({"epoch": job["epoch"], "code": " "}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    api.post(&path, "robot", json!({"epoch": job["epoch"], "code": "customer_blocked", "message": "on hold"}))
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(api.status(&id).await, json!({"status": "completed", "outcome": "rejected"}));
}

#[tokio::test]
async fn an_expired_lease_refuses_completion_and_extension_keeps_it() {
    let Some(api) = Api::new().await else { return };
    api.order("20000.00", "sam").await;
    let job = api.one_job("credit.check").await;
    let id = job["id"].as_str().unwrap();
    let extend = api.post(&format!("/v1/jobs/{id}/extend-lock"), "robot", json!({"epoch": 1, "lock_ms": 600000})).await;
    assert_eq!(extend.expect(StatusCode::OK)["lock_expires_at"], "2026-01-05T09:10:00Z");
    api.post(&format!("/v1/jobs/{id}/extend-lock"), "robot", json!({"epoch": 3, "lock_ms": 1000}))
        .await
        .expect_error(StatusCode::CONFLICT, "stale_lock");
    api.post(&format!("/v1/jobs/{id}/extend-lock"), "robot", json!({"epoch": 1, "lock_ms": 0}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    api.advance(TimeDelta::minutes(11));
    api.post(&format!("/v1/jobs/{id}/complete"), "robot", json!({"epoch": 1, "variables": {}}))
        .await
        .expect_error(StatusCode::CONFLICT, "lease_expired");
    // The lease ran out: the job is handed out again with a new epoch.
    let again = api.one_job("credit.check").await;
    assert_eq!((again["id"].as_str(), again["epoch"].as_i64()), (Some(id), Some(2)));
}

#[tokio::test]
async fn a_failed_attempt_is_retried_after_its_backoff() {
    let Some(api) = Api::new().await else { return };
    api.order("20000.00", "sam").await;
    let job = api.one_job("credit.check").await;
    api.post(
        &format!("/v1/jobs/{}/fail", job["id"].as_str().unwrap()),
        "robot",
        json!({"epoch": job["epoch"], "message": "the credit bureau timed out"}),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    let early = api.post("/v1/jobs/fetch-and-lock", "robot", fetch(&["credit.check"])).await;
    assert_eq!(early.expect(StatusCode::OK), &json!([]));
    api.advance(TimeDelta::seconds(30));
    let retry = api.one_job("credit.check").await;
    assert_eq!(retry["attempt"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_returns_as_soon_as_a_job_is_created() {
    let Some(api) = Api::new().await else { return };
    let body =
        json!({"worker_id": "w1", "topics": ["credit.check"], "max_jobs": 1, "lock_ms": 60000, "wait_ms": 60000});
    let app = api.app.clone();
    let request = axum::http::Request::builder()
        .method("POST")
        .uri("/v1/jobs/fetch-and-lock")
        .header("authorization", "Bearer token-robot")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    let started = std::time::Instant::now();
    let poll = tokio::spawn(async move { tower::ServiceExt::oneshot(app, request).await.unwrap() });
    // The order is entered only once the poll has found nothing and waits.
    let state = api.state.clone();
    eventually("the poll to wait for a job", || async { (state.long_polls_waiting() == 1).then_some(()) }).await;
    assert!(!poll.is_finished(), "the poll waits while nothing is due");
    let id = api.order("20000.00", "sam").await;
    let response = poll.await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    let jobs: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(jobs[0]["instance_id"], id.as_str());
    assert!(started.elapsed() < Duration::from_secs(50), "answered before wait_ms");
}

#[tokio::test]
async fn a_long_poll_with_nothing_due_answers_empty_after_its_wait_and_writes_once() {
    let Some(api) = Api::new().await else { return };
    let started = std::time::Instant::now();
    let writes = api.engine.writer_stats().writes;
    // Several naps of the poll: only its first look fetches (a write); later ones read.
    let body = json!({"worker_id": "w1", "topics": ["nothing.*"], "max_jobs": 1, "lock_ms": 1000, "wait_ms": 800});
    let answer = api.post("/v1/jobs/fetch-and-lock", "robot", body).await;
    assert_eq!(answer.expect(StatusCode::OK), &json!([]));
    assert!(started.elapsed() >= Duration::from_millis(800));
    assert_eq!(api.engine.writer_stats().writes - writes, 1, "one fetch, at the poll's first look");
}

#[tokio::test]
async fn a_non_worker_is_refused_before_the_body_is_read() {
    let Some(api) = Api::new().await else { return };
    for action in ["complete", "fail", "error", "extend-lock"] {
        let answer = api
            .raw(Method::POST, &format!("/v1/jobs/i-x-1.job.1/{action}"), Some("mia"), Some("{"), "application/json")
            .await;
        answer.expect_error(StatusCode::FORBIDDEN, "missing_role");
    }
    api.raw(Method::POST, "/v1/jobs/i-x-1.job.1/fail", Some("robot"), Some("{"), "application/json")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_json");
}
