//! Migrations between deployed versions: an admin moves a running order from version 1 to
//! version 2 of `order_approval` (dry run first); everyone else is refused, and so are bad or
//! unsafe migrations, with their reasons.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Answer, Api, reference_file};

const PATH: &str = "/v1/definitions/order_approval/migrations";

fn v1() -> String {
    reference_file("order_approval.flow")
}

fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the fixture no longer holds {from:?}");
    text.replace(from, to)
}

/// Version 2: the manager's reminder after 4 hours instead of 8, a new `priority` variable.
fn v2() -> String {
    let text = edit(
        &v1(),
        "    remind after 8h\n    escalate after 24h -> director_approval",
        "    remind after 4h\n    escalate after 24h -> director_approval",
    );
    edit(&text, "  var comment: text?\n", "  var comment: text?\n  var priority: text = \"normal\"\n")
}

async fn deploy(api: &Api, source: &str) -> u64 {
    let answer = api
        .raw(Method::POST, "/v1/definitions?filename=order_approval.flow", Some("ada"), Some(source), "text/plain")
        .await;
    answer.expect(StatusCode::CREATED)["version"].as_u64().unwrap()
}

async fn migrate(api: &Api, user: &str, body: Value) -> Answer {
    api.post(PATH, user, body).await
}

async fn version_of(api: &Api, id: &str) -> u32 {
    api.engine.instance(&id.into()).await.unwrap().process_version()
}

#[tokio::test]
async fn an_admin_migrates_a_running_order_to_version_2_after_a_dry_run() {
    let Some(api) = Api::new().await else { return };
    let (id, task) = api.order_at_manager("50000.00", "sam").await;
    assert_eq!(deploy(&api, &v2()).await, 2);
    let body = json!({"from_version": 1, "to_version": 2, "dry_run": true, "reason": "shorter reminders"});

    let dry = migrate(&api, "ada", body.clone()).await;
    let view = dry.expect(StatusCode::OK);
    assert_eq!((view["dry_run"].as_bool(), view["migrated"].as_u64()), (Some(true), Some(1)), "{}", dry.text);
    let instance = &view["instances"][0];
    assert_eq!(
        (instance["instance_id"].as_str(), instance["outcome"].as_str()),
        (Some(id.as_str()), Some("would_migrate"))
    );
    let waits = instance["plan"]["waits"].as_array().unwrap();
    let task_wait = waits.iter().find(|w| w["id"] == task.as_str()).expect("the task in the plan");
    assert_eq!(task_wait["action"], "kept");
    assert!(waits.iter().any(|w| w["kind"] == "timer" && w["action"] == "opened"), "{}", dry.text);
    assert_eq!(instance["plan"]["added"], json!(["priority"]));
    assert_eq!(version_of(&api, &id).await, 1);

    let mut real = body;
    real["dry_run"] = json!(false);
    let done = migrate(&api, "ada", real.clone()).await;
    assert_eq!(done.expect(StatusCode::OK)["instances"][0]["outcome"], "migrated", "{}", done.text);
    assert_eq!(version_of(&api, &id).await, 2);
    let history = api.get(&format!("/v1/instances/{id}/history"), "ada").await;
    let history = history.expect(StatusCode::OK);
    assert_eq!(history["intact"], true);
    let last = history["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["kind"].as_str(), last["who"].as_str()), (Some("migrated"), Some("ada")), "{last}");
    assert!(last.to_string().contains("migrated from v1 to v2: shorter reminders"), "{last}");

    // Nothing is left at version 1; the task kept its id, and the order ends on version 2.
    let again = migrate(&api, "ada", real).await;
    assert_eq!(again.expect(StatusCode::OK)["instances"], json!([]));
    api.post(&format!("/v1/tasks/{task}/complete"), "mia", json!({"variables": {"approve": true}}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(api.status(&id).await["status"], "completed");
}

#[tokio::test]
async fn only_an_admin_migrates_instances() {
    let Some(api) = Api::new().await else { return };
    let (id, _) = api.order_at_manager("50000.00", "sam").await;
    deploy(&api, &v2()).await;
    let body = json!({"from_version": 1, "to_version": 2, "reason": "shorter reminders"});
    for user in ["mia", "carl", "vera", "robot"] {
        migrate(&api, user, body.clone()).await.expect_error(StatusCode::FORBIDDEN, "missing_role");
    }
    let anonymous = api.call(Method::POST, PATH, None, Some(body)).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(version_of(&api, &id).await, 1);
}

#[tokio::test]
async fn a_bad_or_unsafe_migration_is_refused_with_its_reasons() {
    let Some(api) = Api::new().await else { return };
    let (id, _) = api.order_at_manager("50000.00", "sam").await;
    deploy(&api, &v2()).await;

    let same = migrate(&api, "ada", json!({"from_version": 1, "to_version": 1, "reason": " "})).await;
    let error = same.expect_error(StatusCode::BAD_REQUEST, "invalid_migration");
    let at: Vec<&str> =
        error["details"]["problems"].as_array().unwrap().iter().filter_map(|p| p["at"].as_str()).collect();
    assert_eq!(at, ["to_version", "reason"], "{}", same.text);
    let mapping =
        json!({"from_version": 1, "to_version": 2, "reason": "r", "mapping": {"nowhere": "manager_approval"}});
    let bad = migrate(&api, "ada", mapping).await;
    assert!(
        bad.expect_error(StatusCode::BAD_REQUEST, "invalid_migration")["message"]
            .as_str()
            .unwrap()
            .contains("`nowhere` is not a node of the version migrated from")
    );
    migrate(&api, "ada", json!({"from_version": 1, "to_version": 2, "reason": "r", "force": true}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_json");
    migrate(&api, "ada", json!({"from_version": 1, "to_version": 2, "reason": "r", "limit": 0}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_migration");
    migrate(&api, "ada", json!({"from_version": 1, "to_version": 9, "reason": "r"}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");

    // Version 3 renames the manager's approval: without a mapping the waiting order cannot move.
    let v3 = v1().replace("manager_approval", "sales_approval");
    assert_eq!(deploy(&api, &v3).await, 3);
    let unsafe_move = migrate(&api, "ada", json!({"from_version": 1, "to_version": 3, "reason": "rename"})).await;
    let error = unsafe_move.expect_error(StatusCode::CONFLICT, "migration_refused");
    let refused = &error["details"]["instances"][0];
    assert_eq!((refused["instance_id"].as_str(), refused["outcome"].as_str()), (Some(id.as_str()), Some("refused")));
    let reason = refused["problems"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("`manager_approval`, which the new version does not have"), "{reason}");
    assert_eq!(version_of(&api, &id).await, 1);

    // With the mapping it moves, its task created again at the renamed node.
    let mapped = json!({"from_version": 1, "to_version": 3, "reason": "rename",
                        "mapping": {"manager_approval": "sales_approval"}});
    migrate(&api, "ada", mapped).await.expect(StatusCode::OK);
    assert_eq!(version_of(&api, &id).await, 3);
    let tasks = api.engine.tasks(Some(&id.as_str().into())).await.unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].node, "sales_approval");
}
