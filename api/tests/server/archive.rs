//! Reads of an archived instance: 410 with where and when it went, to whoever could read it;
//! the same 403 as before to anyone else; the case page says so in words.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use chrono::TimeDelta;
use cloverleaf_engine::runtime::ArchiveOptions;
use cloverleaf_engine::store::AnyStore;
use cloverleaf_testkit::testdb::ScratchDb;
use serde_json::json;

use crate::harness::{Api, token};
use crate::web::{page, sign_in};

const GONE: StatusCode = StatusCode::GONE;
const FORBIDDEN: StatusCode = StatusCode::FORBIDDEN;

/// A small order sam requested, approved straight through, then archived two days later.
async fn archived_order(api: &Api) -> (String, ScratchDb) {
    let id = api.order("100.00", "sam").await;
    let db = approve_and_archive(api, &id).await;
    (id, db)
}

/// Approves the small order `id` straight through (its credit check done), lets two days pass
/// and archives it; the archive database.
async fn approve_and_archive(api: &Api, id: &str) -> ScratchDb {
    api.pass_credit_check().await;
    assert_eq!(api.status(id).await["status"], "completed");
    api.advance(TimeDelta::days(2));
    let db = ScratchDb::new().await.expect("a second scratch database");
    let into = AnyStore::connect(&db.url()).await.unwrap();
    let options = ArchiveOptions {
        ended_before: api.engine.now() - TimeDelta::days(1),
        into: Some(into),
        label: "archive-2026".into(),
        by: "olga".into(),
        batch: 100,
        dry_run: false,
    };
    let report = api.engine.archive(&options).await.unwrap();
    assert_eq!(report.archived, 1, "{report:?}");
    db
}

#[tokio::test]
async fn an_archived_instance_answers_gone_to_its_readers_and_forbidden_to_others() {
    let Some(api) = Api::new().await else { return };
    let (id, _archive) = archived_order(&api).await;
    // Its requester (from the tombstone: the live rows are gone), the process's readers, the
    // admin and the auditor learn where it went.
    for user in ["sam", "cora", "carl", "ada", "vera"] {
        for path in [format!("/v1/instances/{id}"), format!("/v1/instances/{id}/history")] {
            let error = api.get(&path, user).await.expect_error(GONE, "archived").clone();
            let message = error["message"].as_str().unwrap();
            assert!(message.contains(&format!("instance `{id}` was archived on")), "{message}");
            assert!(message.ends_with("into archive-2026"), "{message}");
            assert_eq!(error["details"]["archive"], "archive-2026");
            assert_eq!(error["details"]["status"], "completed");
            assert_eq!(error["details"]["process"], "order_approval");
        }
    }
    // Anyone else gets the refusal they got before, which says nothing of the archive.
    for user in ["lou", "robot", "prom", "mia"] {
        for path in [format!("/v1/instances/{id}"), format!("/v1/instances/{id}/history")] {
            let answer = api.get(&path, user).await;
            answer.expect_error(FORBIDDEN, "not_reader");
            assert!(!answer.text.contains("archive"), "{}", answer.text);
        }
    }
    api.get("/v1/instances/i-never-was", "ada").await.expect_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn the_case_page_of_an_archived_instance_says_where_it_went() {
    let Some(api) = Api::new().await else { return };
    let (id, _archive) = archived_order(&api).await;
    let sam = sign_in(&api, "sam").await;
    let answer = page(&api, Method::GET, &format!("/cases/{id}"), &sam, None).await;
    assert_eq!(answer.status, GONE, "{}", answer.text);
    assert!(answer.text.contains("Archived") && answer.text.contains("archive-2026"), "{}", answer.text);
    let lou = sign_in(&api, "lou").await;
    let answer = page(&api, Method::GET, &format!("/cases/{id}"), &lou, None).await;
    assert_eq!(answer.status, FORBIDDEN, "{}", answer.text);
    assert!(!answer.text.contains("archive-2026"));
}

#[tokio::test]
async fn a_start_retried_after_its_instance_was_archived_answers_gone_and_starts_nothing() {
    let Some(api) = Api::new().await else { return };
    let start = |user: &'static str| {
        let body = json!({"process": "order_approval", "business_key": "SO-7", "variables": {
            "order_id": "SO-7", "customer_id": "C-7", "amount": "100.00", "requested_by": user}});
        Request::builder()
            .method(Method::POST)
            .uri("/v1/instances")
            .header(header::AUTHORIZATION, format!("Bearer {}", token(user)))
            .header(header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", "order-SO-7")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let first = api.send(start("sam")).await;
    let id = first.expect(StatusCode::CREATED)["id"].as_str().unwrap().to_string();
    let _archive = approve_and_archive(&api, &id).await;

    // The client retries the start whose answer it lost: it learns where its order went, and
    // no second instance starts under the archived id.
    let again = api.send(start("sam")).await;
    let error = again.expect_error(GONE, "archived");
    assert!(error["message"].as_str().unwrap().contains(&format!("instance `{id}` was archived on")), "{error}");
    let listed = api.get("/v1/instances?business_key=SO-7", "ada").await;
    assert_eq!(listed.expect(StatusCode::OK).as_array().map(Vec::len), Some(0), "nothing started again");
    // The same key is another caller's own: it starts their order, unrelated to the archived one.
    let other = api.send(start("mia")).await;
    assert_ne!(other.expect(StatusCode::CREATED)["id"].as_str().unwrap(), id);
}
