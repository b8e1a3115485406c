//! The task inbox: roles, claims, forms, separation of duties, delegation, substitutes.

use axum::http::StatusCode;
use serde_json::json;

use crate::harness::Api;

fn ids(body: &serde_json::Value) -> Vec<String> {
    body.as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn the_inbox_is_paged_by_limit_and_offset_oldest_first() {
    let Some(api) = Api::new().await else { return };
    let mut tasks = Vec::new();
    for _ in 0..3 {
        tasks.push(api.order_at_manager("20000.00", "sam").await.1);
    }
    assert_eq!(ids(api.get("/v1/tasks", "mia").await.expect(StatusCode::OK)), tasks);
    assert_eq!(ids(api.get("/v1/tasks?limit=2", "mia").await.expect(StatusCode::OK)), tasks[..2]);
    assert_eq!(ids(api.get("/v1/tasks?limit=2&offset=2", "mia").await.expect(StatusCode::OK)), tasks[2..]);
    assert_eq!(ids(api.get("/v1/tasks?offset=5", "mia").await.expect(StatusCode::OK)), Vec::<String>::new());
    for bad in ["limit=0", "limit=1001", "offset=-1", "page=2"] {
        api.get(&format!("/v1/tasks?{bad}"), "mia").await.expect_error(StatusCode::BAD_REQUEST, "invalid_query");
    }
    // Paging shows nobody more than their own inbox.
    assert_eq!(ids(api.get("/v1/tasks?limit=10", "sam").await.expect(StatusCode::OK)), Vec::<String>::new());
}

#[tokio::test]
async fn a_user_sees_the_tasks_of_their_roles_only() {
    let Some(api) = Api::new().await else { return };
    let (_, task) = api.order_at_manager("20000.00", "sam").await;
    assert_eq!(ids(api.get("/v1/tasks", "mia").await.expect(StatusCode::OK)), [task.as_str()]);
    assert_eq!(ids(api.get("/v1/tasks", "sam").await.expect(StatusCode::OK)), Vec::<String>::new());
    let read = api.get(&format!("/v1/tasks/{task}"), "mia").await;
    let body = read.expect(StatusCode::OK);
    assert_eq!(body["node"], "manager_approval");
    assert_eq!(body["title"], "Approve order SO-1");
    assert_eq!(body["form"][0]["name"], "approve");
    // Ids are safe in a path as they are; percent-encoding them changes nothing.
    assert!(task.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)), "{task}");
    let encoded = task.replace('.', "%2E");
    api.get(&format!("/v1/tasks/{encoded}"), "mia").await.expect(StatusCode::OK);
    // An id from a store written before ids were URL-safe holds `/`: sent as `%2F`, it reaches
    // the task route (and is looked up as it is).
    let old = api.get("/v1/tasks/i-x-1%2Ftask%2F9", "mia").await;
    let error = old.expect_error(StatusCode::NOT_FOUND, "not_found");
    assert!(error["message"].as_str().unwrap().contains("i-x-1/task/9"), "{}", old.text);
    let refused = api.get(&format!("/v1/tasks/{task}"), "cora").await;
    let error = refused.expect_error(StatusCode::FORBIDDEN, "not_candidate");
    assert!(error["details"]["reason"].as_str().unwrap().contains("sales.manager"), "{}", refused.text);
    api.get("/v1/tasks/i-x-1.task.9", "mia").await.expect_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn completing_checks_role_form_and_separation_of_duties() {
    let Some(api) = Api::new().await else { return };
    let (id, task) = api.order_at_manager("20000.00", "mia").await;
    let path = format!("/v1/tasks/{task}/complete");
    let approve = json!({"variables": {"approve": true}});
    api.post(&path, "cora", approve.clone()).await.expect_error(StatusCode::FORBIDDEN, "not_candidate");
    let own = api.post(&path, "mia", approve.clone()).await;
    let error = own.expect_error(StatusCode::FORBIDDEN, "separation_of_duties");
    assert_eq!(error["details"]["rule"], "not by requested_by");
    let bad_form = api.post(&path, "max", json!({"variables": {"approve": "yes"}})).await;
    let error = bad_form.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_form");
    assert_eq!(error["details"]["fields"][0]["field"], "approve");
    api.post(&path, "max", json!({"variabels": {}})).await.expect_error(StatusCode::BAD_REQUEST, "invalid_json");
    let done = api.post(&path, "max", approve.clone()).await;
    let body = done.expect(StatusCode::OK);
    assert_eq!((body["state"].as_str(), body["completed_by"].as_str()), (Some("completed"), Some("max")));
    assert_eq!(api.status(&id).await, json!({"status": "completed", "outcome": "approved"}));
    api.post(&path, "max", approve).await.expect_error(StatusCode::CONFLICT, "task_closed");
}

#[tokio::test]
async fn a_claimed_task_belongs_to_its_claimant_until_released() {
    let Some(api) = Api::new().await else { return };
    let (id, task) = api.order_at_manager("20000.00", "sam").await;
    let claimed = api.post_empty(&format!("/v1/tasks/{task}/claim"), "mia").await;
    assert_eq!(claimed.expect(StatusCode::OK)["claimed_by"], "mia");
    api.post_empty(&format!("/v1/tasks/{task}/claim"), "max").await.expect_error(StatusCode::CONFLICT, "task_claimed");
    api.post(&format!("/v1/tasks/{task}/complete"), "max", json!({"variables": {"approve": true}}))
        .await
        .expect_error(StatusCode::CONFLICT, "task_claimed");
    api.post_empty(&format!("/v1/tasks/{task}/unclaim"), "max")
        .await
        .expect_error(StatusCode::CONFLICT, "task_claimed");
    let released = api.post_empty(&format!("/v1/tasks/{task}/unclaim"), "mia").await;
    assert_eq!(released.expect(StatusCode::OK)["claimed_by"], serde_json::Value::Null);
    api.post_empty(&format!("/v1/tasks/{task}/unclaim"), "mia").await.expect_error(StatusCode::CONFLICT, "not_claimed");
    api.post_empty(&format!("/v1/tasks/{task}/claim"), "cora")
        .await
        .expect_error(StatusCode::FORBIDDEN, "not_candidate");
    api.post(&format!("/v1/tasks/{task}/complete"), "max", json!({"variables": {"approve": false}}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(api.status(&id).await, json!({"status": "completed", "outcome": "rejected"}));
    api.post_empty(&format!("/v1/tasks/{task}/claim"), "mia").await.expect_error(StatusCode::CONFLICT, "task_closed");
    api.post_empty(&format!("/v1/tasks/{task}/approve"), "mia").await.expect_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_delegated_task_is_completed_on_the_delegators_behalf() {
    let Some(api) = Api::new().await else { return };
    let (id, task) = api.order_at_manager("20000.00", "sam").await;
    api.post(&format!("/v1/tasks/{task}/delegate"), "cora", json!({"to": "dora"}))
        .await
        .expect_error(StatusCode::FORBIDDEN, "not_candidate");
    api.post(&format!("/v1/tasks/{task}/delegate"), "mia", json!({"to": " "}))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_substitute");
    // A delegate must be able to act on the task: the director holds no role it is offered to.
    api.post(&format!("/v1/tasks/{task}/delegate"), "mia", json!({"to": "dora"}))
        .await
        .expect_error(StatusCode::FORBIDDEN, "delegate_not_candidate");
    // Names are compared in one spelling.
    let delegated = api.post(&format!("/v1/tasks/{task}/delegate"), "mia", json!({"to": " Max"})).await;
    assert_eq!(delegated.expect(StatusCode::OK)["assignee"], "max");
    let inbox = ids(api.get("/v1/tasks", "max").await.expect(StatusCode::OK));
    assert!(inbox.contains(&task), "{inbox:?}");
    // Someone else is told the task is assigned, not to whom.
    let refused = api.get(&format!("/v1/tasks/{task}"), "cora").await;
    let error = refused.expect_error(StatusCode::FORBIDDEN, "not_candidate");
    assert_eq!(error["details"]["assigned"], true, "{error}");
    assert!(!error.to_string().contains("max"), "the refusal names the assignee: {error}");
    api.post(&format!("/v1/tasks/{task}/complete"), "max", json!({"variables": {"approve": true}}))
        .await
        .expect(StatusCode::OK);
    let history = api.get(&format!("/v1/instances/{id}/history"), "ada").await;
    let entries = history.expect(StatusCode::OK)["entries"].as_array().unwrap().clone();
    let done = entries.iter().find(|e| e["kind"] == "task_completed").unwrap();
    assert_eq!((done["who"].as_str(), done["on_behalf_of"].as_str()), (Some("max"), Some("mia")));
}

#[tokio::test]
async fn a_substitute_acts_for_the_user_who_named_them() {
    let Some(api) = Api::new().await else { return };
    let (id, task) = api.order_at_manager("20000.00", "sam").await;
    api.post_empty(&format!("/v1/tasks/{task}/claim"), "mia").await.expect(StatusCode::OK);
    let from = crate::harness::t0().to_rfc3339();
    let until = (crate::harness::t0() + chrono::TimeDelta::days(7)).to_rfc3339();
    let named = api
        .call(
            axum::http::Method::PUT,
            "/v1/users/me/substitute",
            Some("mia"),
            Some(json!({"user": "carl", "from": from, "until": until})),
        )
        .await;
    let body = named.expect(StatusCode::OK);
    assert_eq!((body["user"].as_str(), body["substitute"].as_str()), (Some("mia"), Some("carl")));
    assert_eq!(ids(api.get("/v1/tasks", "carl").await.expect(StatusCode::OK)), [task.as_str()]);
    api.get(&format!("/v1/tasks/{task}"), "carl").await.expect(StatusCode::OK);
    api.post(&format!("/v1/tasks/{task}/complete"), "carl", json!({"variables": {"approve": true}}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(api.status(&id).await["outcome"], "approved");
    let history = api.get(&format!("/v1/instances/{id}/history"), "ada").await;
    let entries = history.expect(StatusCode::OK)["entries"].as_array().unwrap().clone();
    let done = entries.iter().find(|e| e["kind"] == "task_completed").unwrap();
    assert_eq!((done["who"].as_str(), done["on_behalf_of"].as_str()), (Some("carl"), Some("mia")));
}

#[tokio::test]
async fn a_substitute_must_be_someone_else_for_a_real_period() {
    let Some(api) = Api::new().await else { return };
    let put = |body| api.call(axum::http::Method::PUT, "/v1/users/me/substitute", Some("mia"), Some(body));
    let until = (crate::harness::t0() + chrono::TimeDelta::days(1)).to_rfc3339();
    put(json!({"user": "mia", "until": until}))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_substitute");
    put(json!({"user": "carl"})).await.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_substitute");
    put(json!({"user": "carl", "until": "next tuesday"})).await.expect_error(StatusCode::BAD_REQUEST, "invalid_json");
    let named = put(json!({"user": "carl", "until": until})).await;
    assert_eq!(named.expect(StatusCode::OK)["substitute"], "carl");
    let withdrawn = put(json!({"user": null})).await;
    assert_eq!(withdrawn.expect(StatusCode::OK)["substitute"], serde_json::Value::Null);
}

#[tokio::test]
async fn each_user_reads_their_own_substitute_and_whom_they_stand_in_for() {
    let Some(api) = Api::new().await else { return };
    let mine = api.get("/v1/users/me/substitute", "mia").await;
    let body = mine.expect(StatusCode::OK);
    assert_eq!((body["user"].as_str(), &body["substitute"]), (Some("mia"), &serde_json::Value::Null));
    assert_eq!(body["standing_in_for"], json!([]));
    let until = (crate::harness::t0() + chrono::TimeDelta::days(3)).to_rfc3339();
    api.call(
        axum::http::Method::PUT,
        "/v1/users/me/substitute",
        Some("mia"),
        Some(json!({"user": "carl", "until": until})),
    )
    .await
    .expect(StatusCode::OK);
    let answer = api.get("/v1/users/me/substitute", "mia").await;
    let mine = answer.expect(StatusCode::OK);
    assert_eq!((mine["substitute"].as_str(), mine["until"].as_str()), (Some("carl"), Some("2026-01-08T09:00:00Z")));
    let answer = api.get("/v1/users/me/substitute", "carl").await;
    let his = answer.expect(StatusCode::OK);
    assert_eq!((his["substitute"].clone(), his["standing_in_for"].clone()), (serde_json::Value::Null, json!(["mia"])));
    // Once the period is over, carl stands in for nobody; mia's last naming is still hers to read.
    api.advance(chrono::TimeDelta::days(4));
    let answer = api.get("/v1/users/me/substitute", "carl").await;
    assert_eq!(answer.expect(StatusCode::OK)["standing_in_for"], json!([]));
    // Without a token, nothing.
    let anonymous = api.call(axum::http::Method::GET, "/v1/users/me/substitute", None, None).await;
    anonymous.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn a_task_is_not_handed_to_someone_who_cannot_sign_in() {
    let Some(api) = Api::new().await else { return };
    let (_, task) = api.order_at_manager("20000.00", "sam").await;
    // Delegated to a name nobody signs in with, the task could never be completed.
    let answer = api.post(&format!("/v1/tasks/{task}/delegate"), "mia", json!({"to": "dorra"})).await;
    let error = answer.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_substitute");
    assert_eq!(error["details"]["fields"][0]["field"], "to");
    let still = api.get(&format!("/v1/tasks/{task}"), "mia").await;
    assert_eq!(still.expect(StatusCode::OK)["assignee"], serde_json::Value::Null);
    // Someone who may not see the task learns nothing about the name.
    api.post(&format!("/v1/tasks/{task}/delegate"), "cora", json!({"to": "dorra"}))
        .await
        .expect_error(StatusCode::FORBIDDEN, "not_candidate");
    let until = (crate::harness::t0() + chrono::TimeDelta::days(1)).to_rfc3339();
    let named = api
        .call(
            axum::http::Method::PUT,
            "/v1/users/me/substitute",
            Some("mia"),
            Some(json!({"user": "karl", "until": until})),
        )
        .await;
    let error = named.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_substitute");
    assert_eq!(error["details"]["fields"][0]["field"], "user");
}
