//! Who may do what: every route for every role of the test organisation (and no token), and a
//! regression test for each way a caller once acted or read beyond their role.

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Api, USERS};

/// Every caller of the matrix: the test users, and `None` for no token.
fn callers() -> Vec<Option<&'static str>> {
    std::iter::once(None).chain(USERS.iter().map(|(name, _)| Some(*name))).collect()
}

/// Asserts the status each caller gets for `method path` (body `body`); callers not named get
/// `otherwise`, and no token always gets 401 (except on `/healthz`).
async fn expect_matrix(
    api: &Api,
    method: Method,
    path: &str,
    body: Option<Value>,
    allowed: &[(&str, StatusCode)],
    otherwise: StatusCode,
) {
    let allowed: BTreeMap<&str, StatusCode> = allowed.iter().copied().collect();
    let mut wrong = Vec::new();
    for caller in callers() {
        let expected = match caller {
            None if path == "/healthz" => StatusCode::OK,
            None => StatusCode::UNAUTHORIZED,
            Some(user) => allowed.get(user).copied().unwrap_or(otherwise),
        };
        let answer = api.call(method.clone(), path, caller, body.clone()).await;
        if answer.status != expected {
            wrong.push(format!("{caller:?}: {} (expected {expected}): {}", answer.status, answer.text));
        }
    }
    assert!(wrong.is_empty(), "{method} {path}:\n{}", wrong.join("\n"));
}

/// An order to cash of `amount` entered by `user`; its id.
async fn order_to_cash(api: &Api, user: &str, order: &str, amount: &str) -> String {
    let body = json!({"process": "order_to_cash", "business_key": order, "variables": {
        "order_id": order, "customer_id": "C-7", "amount": amount}});
    api.post("/v1/instances", user, body).await.expect(StatusCode::CREATED)["id"].as_str().unwrap().to_string()
}

/// The ids a list answer holds.
fn ids(answer: &Value) -> Vec<String> {
    answer.as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect()
}

const OK: StatusCode = StatusCode::OK;
const FORBIDDEN: StatusCode = StatusCode::FORBIDDEN;

#[tokio::test]
async fn every_read_route_answers_each_role_as_the_readme_says() {
    let Some(api) = Api::new().await else { return };
    let (order, task) = api.order_at_manager("20000.00", "sam").await;
    let everyone: Vec<(&str, StatusCode)> = USERS.iter().map(|(u, _)| (*u, OK)).collect();
    for path in ["/healthz", "/openapi.json", "/v1/definitions", "/v1/definitions/order_approval", "/v1/tasks"] {
        expect_matrix(&api, Method::GET, path, None, &everyone, OK).await;
    }
    expect_matrix(&api, Method::GET, "/metrics", None, &[("ada", OK), ("prom", OK)], FORBIDDEN).await;
    let reports = [("ada", OK), ("vera", OK), ("carl", OK)];
    expect_matrix(&api, Method::GET, "/v1/reports/kpis", None, &reports, FORBIDDEN).await;
    expect_matrix(&api, Method::GET, "/v1/incidents", None, &[("ada", OK)], FORBIDDEN).await;
    // The order: its requester, the managers its approval is offered to, the process's readers
    // (credit control, controller and CFO), the admin and the auditor.
    let readers = [("sam", OK), ("mia", OK), ("max", OK), ("cora", OK), ("carl", OK), ("ada", OK), ("vera", OK)];
    for path in [format!("/v1/instances/{order}"), format!("/v1/instances/{order}/history")] {
        expect_matrix(&api, Method::GET, &path, None, &readers, FORBIDDEN).await;
    }
    let candidates = [("mia", OK), ("max", OK), ("ada", OK)];
    expect_matrix(&api, Method::GET, &format!("/v1/tasks/{task}"), None, &candidates, FORBIDDEN).await;
    // The job API is the worker's.
    let fetch = json!({"worker_id": "w", "topics": ["nothing"], "max_jobs": 1, "lock_ms": 1000});
    expect_matrix(&api, Method::POST, "/v1/jobs/fetch-and-lock", Some(fetch), &[("robot", OK)], FORBIDDEN).await;
}

#[tokio::test]
async fn every_start_answers_each_role_as_the_processes_declare() {
    let Some(api) = Api::new().await else { return };
    let created = StatusCode::CREATED;
    let order = |n: usize| {
        json!({"process": "order_to_cash", "business_key": format!("SO-{n}"), "variables": {
            "order_id": format!("SO-{n}"), "customer_id": "C-7", "amount": "100.00"}})
    };
    let sellers = [("sam", created), ("mia", created), ("max", created), ("ada", created)];
    expect_matrix(&api, Method::POST, "/v1/instances", Some(order(1)), &sellers, FORBIDDEN).await;
    // Invoicing and collection follow an approved order: nobody starts them directly, not even
    // an administrator.
    let invoice = json!({"process": "ship_then_invoice", "variables": {
        "order_id": "SO-X", "customer_id": "C-7", "amount": "999999.00"}});
    expect_matrix(&api, Method::POST, "/v1/instances", Some(invoice), &[], FORBIDDEN).await;
    let collect = json!({"process": "collect_then_reconcile", "variables": {
        "invoice_id": "INV-X", "customer_id": "C-7", "amount_due": "49999.00", "due_date": "2020-01-01"}});
    expect_matrix(&api, Method::POST, "/v1/instances", Some(collect), &[], FORBIDDEN).await;
    let close = json!({"process": "month_end_close", "variables": {}});
    expect_matrix(&api, Method::POST, "/v1/instances", Some(close), &[("carl", created), ("ada", created)], FORBIDDEN)
        .await;
    // None of the refused starts left anything behind.
    let all = api.get("/v1/instances", "ada").await;
    let processes: Vec<&str> = all.body.as_array().unwrap().iter().filter_map(|i| i["process"].as_str()).collect();
    assert!(
        !processes.contains(&"ship_then_invoice") && !processes.contains(&"collect_then_reconcile"),
        "{processes:?}"
    );
}

#[tokio::test]
async fn a_called_only_process_is_refused_with_the_reason() {
    let Some(api) = Api::new().await else { return };
    let body = json!({"process": "ship_then_invoice", "variables": {
        "order_id": "SO-X", "customer_id": "C-7", "amount": "999999.00"}});
    let error = api.post("/v1/instances", "sam", body).await.expect_error(FORBIDDEN, "called_only").clone();
    assert!(error["message"].as_str().unwrap().contains("only by another process"), "{error}");
}

#[tokio::test]
async fn the_requester_is_the_signed_in_user_not_what_the_client_says() {
    let Some(api) = Api::new().await else { return };
    // Left out: the server fills it in.
    let id = order_to_cash(&api, "sam", "SO-1", "100.00").await;
    let read = api.get(&format!("/v1/instances/{id}"), "sam").await;
    assert_eq!(read.expect(OK)["variables"]["requested_by"], "sam");
    // A sales rep may not name someone else.
    let body = json!({"process": "order_to_cash", "variables": {
        "order_id": "SO-2", "customer_id": "C-7", "amount": "100.00", "requested_by": "mia"}});
    api.post("/v1/instances", "sam", body).await.expect_error(FORBIDDEN, "not_on_behalf");
    // Another spelling of oneself is oneself.
    let body = json!({"process": "order_to_cash", "variables": {
        "order_id": "SO-3", "customer_id": "C-7", "amount": "100.00", "requested_by": " Sam"}});
    let started = api.post("/v1/instances", "sam", body).await;
    assert_eq!(started.expect(StatusCode::CREATED)["variables"]["requested_by"], "sam");
    // Someone the server does not know is nobody's requester.
    let body = json!({"process": "order_to_cash", "variables": {
        "order_id": "SO-4", "customer_id": "C-7", "amount": "100.00", "requested_by": "ghost"}});
    api.post("/v1/instances", "mia", body).await.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");
}

#[tokio::test]
async fn a_manager_entering_an_order_for_a_rep_cannot_approve_it_and_both_names_are_recorded() {
    let Some(api) = Api::new().await else { return };
    let body = json!({"process": "order_approval", "variables": {
        "order_id": "SO-1", "customer_id": "C-7", "amount": "20000.00", "requested_by": "sam"}});
    let id =
        api.post("/v1/instances", "mia", body).await.expect(StatusCode::CREATED)["id"].as_str().unwrap().to_string();
    let history = api.get(&format!("/v1/instances/{id}/history"), "ada").await;
    let started = history.expect(OK)["entries"][0].clone();
    assert_eq!((started["who"].as_str(), started["on_behalf_of"].as_str()), (Some("mia"), Some("sam")), "{started}");
    // Credit is fine: the order waits for a sales manager, and mia entered it.
    api.pass_credit_check().await;
    let task = api.engine.tasks(Some(&id.as_str().into())).await.unwrap().remove(0).id.0;
    // `not by requested_by` bars the rep, and with him whoever entered the order for him.
    let refused = api.post(&format!("/v1/tasks/{task}/complete"), "mia", json!({"variables": {"approve": true}})).await;
    assert_eq!(refused.expect_error(FORBIDDEN, "separation_of_duties")["details"]["user"], "mia");
    api.post(&format!("/v1/tasks/{task}/complete"), "max", json!({"variables": {"approve": true}})).await.expect(OK);
}

#[tokio::test]
async fn lists_and_reads_show_each_user_only_their_cases() {
    let Some(api) = Api::new().await else { return };
    let (managed, _) = api.order_at_manager("20000.00", "sam").await;
    let small = order_to_cash(&api, "max", "SO-9", "100.00").await;
    let listed = |user: &'static str| {
        let api = &api;
        async move { ids(api.get("/v1/instances", user).await.expect(OK)) }
    };
    let everything = listed("ada").await;
    assert!(everything.contains(&managed) && everything.contains(&small), "{everything:?}");
    assert_eq!(listed("vera").await, everything, "the auditor reads everything");
    // The rep sees his order, not the one max entered.
    assert_eq!(listed("sam").await, std::slice::from_ref(&managed));
    // Logistics, the worker account and the metrics scraper see no order at all.
    for user in ["lou", "robot", "prom"] {
        assert!(listed(user).await.is_empty(), "{user}");
        api.get(&format!("/v1/instances/{managed}"), user).await.expect_error(FORBIDDEN, "not_reader");
        api.get(&format!("/v1/instances/{managed}/history"), user).await.expect_error(FORBIDDEN, "not_reader");
    }
    // Paging counts only what the caller may read.
    let page = ids(api.get("/v1/instances?limit=1&offset=0", "sam").await.expect(OK));
    assert_eq!(page, std::slice::from_ref(&managed));
    // Finance figures are for finance.
    for user in ["sam", "mia", "lou", "robot"] {
        api.get("/v1/reports/kpis", user).await.expect_error(FORBIDDEN, "missing_role");
        api.get("/metrics", user).await.expect_error(FORBIDDEN, "missing_role");
    }
}

#[tokio::test]
async fn money_from_outside_must_be_whole_cents_and_within_its_limits() {
    let Some(api) = Api::new().await else { return };
    for (amount, rule) in [
        (json!("-500.00"), "greater than 0"),
        (json!("0"), "greater than 0"),
        (json!("100.005"), "at most 2 decimals"),
        (json!(1e27), "less than"),
        (serde_json::from_str::<Value>("0.30000000000000004").unwrap(), "at most 2 decimals"),
    ] {
        let body = json!({"process": "order_to_cash", "variables": {
            "order_id": "SO-1", "customer_id": "C-7", "amount": amount}});
        let answer = api.post("/v1/instances", "sam", body).await;
        let error = answer.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").clone();
        let fields = error["details"]["fields"].to_string();
        assert!(fields.contains("amount") && fields.contains(rule), "{amount}: {error}");
    }
    let none = api.get("/v1/instances", "ada").await;
    assert_eq!(none.expect(OK).as_array().map(Vec::len), Some(0), "nothing started");
}

#[tokio::test]
async fn a_two_hop_delegation_keeps_the_first_holder_barred() {
    let Some(api) = Api::new().await else { return };
    // Above 100,000: the manager approves, then the CFO, who must not be the first approver.
    let (id, task) = api.order_at_manager("150000.00", "sam").await;
    api.post(&format!("/v1/tasks/{task}/delegate"), "mia", json!({"to": "max"})).await.expect(OK);
    // The chain may not go back to someone who held the task.
    api.post(&format!("/v1/tasks/{task}/delegate"), "max", json!({"to": "mia"}))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "delegation_loop");
    api.post(&format!("/v1/tasks/{task}/complete"), "max", json!({"variables": {"approve": true}})).await.expect(OK);
    let history = api.get(&format!("/v1/instances/{id}/history"), "ada").await;
    let entries = history.expect(OK)["entries"].as_array().unwrap().clone();
    let done = entries.iter().find(|e| e["kind"] == "task_completed").unwrap();
    assert_eq!((done["who"].as_str(), done["on_behalf_of"].as_str()), (Some("max"), Some("mia")));
}

#[tokio::test]
async fn an_idempotency_key_is_the_callers_own_and_bound_to_its_body() {
    let Some(api) = Api::new().await else { return };
    let start = |user: &'static str, amount: &'static str| {
        let api = &api;
        async move {
            let body = json!({"process": "order_to_cash", "business_key": "SO-1", "variables": {
                "order_id": "SO-1", "customer_id": "C-7", "amount": amount}});
            let request = axum::http::Request::builder()
                .method(Method::POST)
                .uri("/v1/instances")
                .header("authorization", format!("Bearer {}", crate::harness::token(user)))
                .header("idempotency-key", "k-1")
                .body(axum::body::Body::from(body.to_string()))
                .unwrap();
            api.send(request).await
        }
    };
    let first = start("sam", "100.00").await;
    let id = first.expect(StatusCode::CREATED)["id"].as_str().unwrap().to_string();
    // Another user with the same key starts their own instance.
    let other = start("max", "100.00").await;
    assert_ne!(other.expect(StatusCode::CREATED)["id"].as_str().unwrap(), id);
    // The same key with another amount is a conflict, not the first instance.
    start("sam", "900.00").await.expect_error(StatusCode::CONFLICT, "idempotency_key_reused");
    assert_eq!(start("sam", "100.00").await.expect(OK)["id"], id.as_str());
}

#[tokio::test]
async fn nul_characters_are_refused_before_they_reach_a_database() {
    let Some(api) = Api::new().await else { return };
    let body = json!({"process": "order_to_cash", "business_key": "SO-\u{0}1", "variables": {
        "order_id": "SO-1", "customer_id": "C-7", "amount": "100.00"}});
    api.post("/v1/instances", "sam", body).await.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    api.get("/v1/instances?business_key=SO%001", "ada").await.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    let message = json!({"name": "pay\u{0}ment", "correlation_key": "k", "variables": {}});
    api.post("/v1/messages", "ada", message).await.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn invented_methods_do_not_grow_the_metrics() {
    let Some(api) = Api::new().await else { return };
    for n in 0..50 {
        let method = Method::from_bytes(format!("FROB{n}").as_bytes()).unwrap();
        api.call(method, &format!("/nowhere/{n}"), None, None).await;
    }
    let text = api.get("/metrics", "prom").await.text;
    let series = text.lines().filter(|l| l.starts_with("cloverleaf_http_request_duration_seconds_count")).count();
    assert!(series <= 3, "{series} series:\n{text}");
    assert!(!text.contains("FROB"), "{text}");
}

#[tokio::test]
async fn stored_month_end_reports_are_for_finance_only() {
    let Some(api) = Api::new().await else { return };
    for user in ["sam", "mia", "lou", "robot", "prom"] {
        api.get("/v1/reports/stored/ar_aging-2026-01-31-1", user).await.expect_error(FORBIDDEN, "missing_role");
    }
    // This server has no sub-ledger: the controller is told so rather than shown nothing.
    let missing = api.get("/v1/reports/stored/ar_aging-2026-01-31-1", "carl").await;
    missing.expect_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn an_older_version_is_started_only_by_whom_the_latest_still_lets_start() {
    let Some(api) = Api::empty().await else { return };
    let flow = |start_by: &str| {
        format!(
            "roles {{\n  sales.rep \"Sales rep\"\n  sales.manager \"Sales manager\"\n}}\n\
             process quote \"Quote\" {{\n  access {{ {start_by} }}\n  start -> done\n  end done \"Done\"\n}}\n"
        )
    };
    api.engine.deploy(&[("quote.flow", &flow("start by sales.rep, sales.manager"))]).await.unwrap();
    // Version 2 takes the reps' right away.
    api.engine.deploy(&[("quote.flow", &flow("start by sales.manager"))]).await.unwrap();
    let start = |user: &'static str, version: u32| {
        api.post("/v1/instances", user, json!({"process": "quote", "version": version, "variables": {}}))
    };
    start("sam", 1).await.expect_error(StatusCode::FORBIDDEN, "missing_role");
    start("sam", 2).await.expect_error(StatusCode::FORBIDDEN, "missing_role");
    start("mia", 1).await.expect(StatusCode::CREATED);
    start("ada", 1).await.expect(StatusCode::CREATED);
    // Version 3 is only ever called: no version of it is started directly any more.
    api.engine.deploy(&[("quote.flow", &flow("called only"))]).await.unwrap();
    start("mia", 1).await.expect_error(StatusCode::FORBIDDEN, "called_only");
    start("ada", 2).await.expect_error(StatusCode::FORBIDDEN, "called_only");
}
