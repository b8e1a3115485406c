//! Reads of an archived instance: 410 with where and when it went, to whoever could read it;
//! the same 403 as before to anyone else; the case page says so in words.

use axum::http::{Method, StatusCode};
use chrono::TimeDelta;
use cloverleaf_engine::runtime::ArchiveOptions;
use cloverleaf_engine::store::AnyStore;
use cloverleaf_testkit::testdb::ScratchDb;
use serde_json::json;

use crate::harness::Api;
use crate::web::{page, sign_in};

const GONE: StatusCode = StatusCode::GONE;
const FORBIDDEN: StatusCode = StatusCode::FORBIDDEN;

/// A small order sam requested, approved straight through, then archived two days later.
async fn archived_order(api: &Api) -> (String, ScratchDb) {
    let id = api.order("100.00", "sam").await;
    let job = api.one_job("credit.check").await;
    api.post(
        &format!("/v1/jobs/{}/complete", job["id"].as_str().unwrap()),
        "robot",
        json!({"epoch": job["epoch"], "variables": {"credit_limit": "500000", "open_ar": "0", "risk": "A"}}),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    assert_eq!(api.status(&id).await["status"], "completed");
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
    (id, db)
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
