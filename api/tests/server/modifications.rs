//! Modification of a running instance by an admin (a variable set, a token started and one
//! cancelled, each in the history chain), and every refusal: not an admin, a node that does not
//! exist, a variable of the wrong type, an instance that is not running.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Answer, Api};

async fn modify(api: &Api, id: &str, user: &str, body: Value) -> Answer {
    api.post(&format!("/v1/instances/{id}/modifications"), user, body).await
}

#[tokio::test]
async fn an_admin_repairs_a_running_order_and_the_history_says_so() {
    let Some(api) = Api::new().await else { return };
    let (id, task) = api.order_at_manager("50000.00", "sam").await;
    let set = json!({"action": "set_variable", "name": "risk", "value": "B", "reason": "bureau corrected"});
    modify(&api, &id, "ada", set).await.expect(StatusCode::OK);
    let started = json!({"action": "start_before", "node": "cfo_approval", "reason": "CFO signs too"});
    modify(&api, &id, "ada", started).await.expect(StatusCode::OK);
    let instance = api.engine.instance(&id.as_str().into()).await.unwrap();
    assert_eq!(instance.variable("risk").unwrap().to_json(), json!("B"));
    let manager = instance.tokens().iter().find(|(_, t)| t.node == "manager_approval").map(|(k, _)| k.0).unwrap();
    let cancel = json!({"action": "cancel_token", "token": manager, "reason": "the CFO decides alone"});
    modify(&api, &id, "ada", cancel).await.expect(StatusCode::OK);
    let tasks = api.engine.tasks(Some(&id.as_str().into())).await.unwrap();
    assert_eq!(tasks.iter().map(|t| t.node.as_str()).collect::<Vec<_>>(), ["cfo_approval"]);
    assert!(tasks.iter().all(|t| t.id.0 != task));

    let history = api.get(&format!("/v1/instances/{id}/history"), "ada").await;
    let history = history.expect(StatusCode::OK);
    assert_eq!(history["intact"], true);
    let modified: Vec<&Value> =
        history["entries"].as_array().unwrap().iter().filter(|e| e["kind"] == "modified").collect();
    assert_eq!(modified.len(), 3, "{history}");
    assert!(modified.iter().all(|e| e["who"] == "ada"));
    assert!(modified[2].to_string().contains("the CFO decides alone"), "{}", modified[2]);
}

#[tokio::test]
async fn a_modification_is_refused_with_its_reason() {
    let Some(api) = Api::new().await else { return };
    let (id, _) = api.order_at_manager("50000.00", "sam").await;
    let start = json!({"action": "start_before", "node": "cfo_approval", "reason": "r"});
    for user in ["mia", "carl", "vera", "robot"] {
        modify(&api, &id, user, start.clone()).await.expect_error(StatusCode::FORBIDDEN, "missing_role");
    }
    let nowhere = json!({"action": "start_before", "node": "nowhere", "reason": "r"});
    let error = modify(&api, &id, "ada", nowhere).await;
    let error = error.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_modification");
    assert_eq!(error["details"]["fields"][0]["field"], "node nowhere");
    let wrong = json!({"action": "set_variable", "name": "amount", "value": "lots", "reason": "r"});
    modify(&api, &id, "ada", wrong).await.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_modification");
    let unknown = json!({"action": "teleport", "reason": "r"});
    modify(&api, &id, "ada", unknown).await.expect_error(StatusCode::BAD_REQUEST, "invalid_modification");
    let no_node = json!({"action": "start_before", "reason": "r"});
    modify(&api, &id, "ada", no_node).await.expect_error(StatusCode::BAD_REQUEST, "invalid_modification");
    let no_reason = json!({"action": "start_before", "node": "cfo_approval", "reason": " "});
    modify(&api, &id, "ada", no_reason).await.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_modification");
    modify(&api, "no-such-instance", "ada", start.clone()).await.expect_error(StatusCode::NOT_FOUND, "not_found");
    let history = api.engine.history(&id.as_str().into()).await.unwrap();
    assert!(history.iter().all(|h| h.kind != "modified"));

    api.post_empty(&format!("/v1/instances/{id}/cancel"), "ada").await.expect(StatusCode::OK);
    modify(&api, &id, "ada", start).await.expect_error(StatusCode::CONFLICT, "invalid_state");
}
