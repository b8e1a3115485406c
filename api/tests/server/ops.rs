//! Metrics, KPIs, the OpenAPI document and its checked-in copy, the audit.

use axum::http::{StatusCode, header};
use chrono::TimeDelta;
use cloverleaf_engine::store::AnyStore;
use serde_json::json;

use crate::harness::Api;

#[tokio::test]
async fn metrics_are_prometheus_text_with_every_family() {
    let Some(api) = Api::new().await else { return };
    api.order_at_manager("20000.00", "sam").await;
    api.order("500.00", "sam").await;
    api.advance(TimeDelta::hours(30));
    api.get("/metrics", "mia").await.expect_error(StatusCode::FORBIDDEN, "missing_role");
    let answer = api.get("/metrics", "prom").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = &answer.text;
    for line in [
        "cloverleaf_instances{process=\"order_approval\",status=\"running\"} 2",
        "cloverleaf_jobs{job_type=\"credit.check\",state=\"ready\"} 1",
        "cloverleaf_jobs{job_type=\"credit.check\",state=\"done\"} 1",
        "cloverleaf_tasks_open{process=\"order_approval\",role=\"sales.manager\"} 1",
        "cloverleaf_tasks_overdue{process=\"order_approval\",role=\"sales.manager\"} 1",
        // One instance, whose reminder, due date and escalation are all late (no scheduler runs).
        "cloverleaf_timers_late 1",
        "# TYPE cloverleaf_http_request_duration_seconds histogram",
        "cloverleaf_steps_total 3",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
    }
    assert!(
        text.contains("cloverleaf_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/jobs/{id}/complete\",status=\"204\"} 1"),
        "{text}"
    );
    assert!(text.contains("cloverleaf_timer_lag_seconds "), "{text}");
    // The writer's linger: 6 ms on PostgreSQL, none on SQLite, unless set.
    let linger = match cloverleaf_testkit::testdb::Backend::from_env() {
        cloverleaf_testkit::testdb::Backend::Postgres => "cloverleaf_writer_linger_seconds 0.006",
        cloverleaf_testkit::testdb::Backend::Sqlite => "cloverleaf_writer_linger_seconds 0",
    };
    assert!(
        text.lines().any(|l| l == linger),
        "missing `{linger}` in
{text}"
    );
}

#[tokio::test]
async fn kpis_count_instances_cycle_times_breaches_and_open_tasks() {
    let Some(api) = Api::new().await else { return };
    let (_, first) = api.order_at_manager("20000.00", "sam").await;
    api.advance(TimeDelta::hours(2));
    api.post(&format!("/v1/tasks/{first}/complete"), "mia", json!({"variables": {"approve": true}}))
        .await
        .expect(StatusCode::OK);
    let (_, late) = api.order_at_manager("30000.00", "sam").await;
    api.advance(TimeDelta::hours(23));
    api.order_at_manager("40000.00", "sam").await;
    api.advance(TimeDelta::hours(2));
    // The second order's approval is now 25 hours old: past its 24-hour due time.
    let _ = late;
    let answer = api.get("/v1/reports/kpis?process=order_approval", "carl").await;
    let body = answer.expect(StatusCode::OK);
    let p = &body["processes"][0];
    assert_eq!(body["processes"].as_array().unwrap().len(), 1);
    assert_eq!(p["process"], "order_approval");
    assert_eq!((p["started"].as_i64(), p["completed"].as_i64(), p["running"].as_i64()), (Some(3), Some(1), Some(2)));
    assert_eq!((p["cycle_time_p50_seconds"].as_i64(), p["cycle_time_p95_seconds"].as_i64()), (Some(7200), Some(7200)));
    assert_eq!(p["sla_breaches"], 1, "{}", answer.text);
    assert_eq!(p["open_tasks_by_role"], json!({"sales.manager": 2}));
    let all = api.get("/v1/reports/kpis", "carl").await;
    assert_eq!(all.expect(StatusCode::OK)["processes"].as_array().unwrap().len(), 5);
    api.get("/v1/reports/kpis?process=nope", "carl").await.expect_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn the_server_serves_the_openapi_document_of_its_code() {
    let Some(api) = Api::new().await else { return };
    let answer = api.get("/openapi.json", "sam").await;
    let body = answer.expect(StatusCode::OK);
    assert_eq!(answer.text, cloverleaf::server::openapi::json());
    assert!(body["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/v1/tasks/{id}/complete", "/v1/jobs/fetch-and-lock", "/v1/definitions", "/v1/reports/kpis"] {
        assert!(body["paths"].get(path).is_some(), "{path} is not documented");
    }
    assert!(body["components"]["securitySchemes"]["bearer"].is_object());
}

#[test]
fn the_checked_in_openapi_copy_matches_the_server() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    let generated = cloverleaf::server::openapi::json();
    if std::env::var_os("CLOVERLEAF_UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &generated).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "api/openapi.json is out of date with the server's code; regenerate it with\n\
         CLOVERLEAF_UPDATE_OPENAPI=1 cargo test -p cloverleaf --test server openapi"
    );
}

#[tokio::test]
async fn the_audit_finds_an_altered_history_row() {
    let Some(api) = Api::new().await else { return };
    let (id, task) = api.order_at_manager("20000.00", "sam").await;
    api.post(&format!("/v1/tasks/{task}/complete"), "mia", json!({"variables": {"approve": true}}))
        .await
        .expect(StatusCode::OK);
    api.order("500.00", "sam").await;
    let clean = cloverleaf::audit::verify(&api.db.url()).await.unwrap();
    assert_eq!((clean.instances, clean.altered.len()), (2, 0));
    assert!(clean.rows > 5);
    // Who completed the task, in the stored entries (the detail's own copy is escaped and left).
    let tamper = "UPDATE events SET entries = replace(entries, '\"mia\"', '\"max\"') WHERE instance_id = $1";
    match api.engine.store() {
        AnyStore::Sqlite(store) => sqlx::query(tamper).bind(&id).execute(store.pool()).await.map(|_| ()).unwrap(),
        AnyStore::Postgres(store) => sqlx::query(tamper).bind(&id).execute(store.pool()).await.map(|_| ()).unwrap(),
    };
    let tampered = cloverleaf::audit::verify(&api.db.url()).await.unwrap();
    assert_eq!(tampered.altered.len(), 1);
    assert_eq!(tampered.altered[0].instance, id);
    let history = api.get(&format!("/v1/instances/{id}/history"), "ada").await;
    assert_eq!(history.expect(StatusCode::OK)["intact"], false);
}

#[tokio::test]
async fn kpis_carry_the_sub_ledgers_finance_figures() {
    let Some(mut api) = Api::new().await else { return };
    let without = api.get("/v1/reports/kpis", "carl").await;
    assert_eq!(without.expect(StatusCode::OK)["ledger"], serde_json::Value::Null);
    with_demo_ledger(&mut api).await;
    let answer = api.get("/v1/reports/kpis", "carl").await;
    let ledger = &answer.expect(StatusCode::OK)["ledger"];
    assert_eq!(ledger["as_of"], "2026-01-05");
    let labels: Vec<&str> = ledger["aging"].as_array().unwrap().iter().map(|b| b["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["not_due", "1-30", "31-60", "61-90", "90+"]);
    let open: rust_decimal::Decimal = ledger["open_receivables"].as_str().unwrap().parse().unwrap();
    let buckets: rust_decimal::Decimal = ledger["aging"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["amount"].as_str().unwrap().parse::<rust_decimal::Decimal>().unwrap())
        .sum();
    assert!(open > rust_decimal::Decimal::ZERO);
    assert_eq!(open, buckets, "the buckets add up to the open receivables, exactly");
}

#[tokio::test]
async fn the_indicator_catalogue_gives_definitions_values_and_splits_to_finance_readers_only() {
    let Some(mut api) = Api::new().await else { return };
    // Without a sub-ledger: a clear 404 for a finance reader, still a 403 for anyone else.
    api.get("/v1/kpis", "carl").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    api.get("/v1/kpis", "sam").await.expect_error(StatusCode::FORBIDDEN, "missing_role");
    let ledger = with_demo_ledger(&mut api).await;
    for user in ["sam", "mia", "robot"] {
        let refused = api.get("/v1/kpis/open_receivables?by=customer", user).await;
        refused.expect_error(StatusCode::FORBIDDEN, "missing_role");
        assert!(!refused.text.contains("175642.85"), "no figure leaks to {user}: {}", refused.text);
    }
    let answer = api.get("/v1/kpis", "carl").await;
    let body = answer.expect(StatusCode::OK);
    assert_eq!(
        (body["as_of"].as_str(), body["from"].as_str(), body["currency"].as_str()),
        (Some("2026-01-05"), Some("2025-10-08"), Some("CNY"))
    );
    let kpis = body["kpis"].as_array().unwrap();
    let open = kpis.iter().find(|k| k["key"] == "open_receivables").unwrap();
    assert_eq!(open["value"], "175642.85", "the opening receivables of the demo company");
    assert_eq!((open["unit"].as_str(), open["owner"].as_str()), (Some("money"), Some("finance.controller")));
    assert!(open["formula"].as_str().unwrap().contains("open balances"), "{open}");
    assert!(kpis.iter().all(|k| k["parts"].as_array().unwrap().is_empty()), "no split asked");

    let by_customer = api.get("/v1/kpis/open_receivables?by=customer", "ada").await;
    let split = by_customer.expect(StatusCode::OK);
    let parts = split["parts"].as_array().unwrap();
    assert!(parts.len() > 1, "{split}");
    let sum: rust_decimal::Decimal =
        parts.iter().map(|p| p["value"].as_str().unwrap().parse::<rust_decimal::Decimal>().unwrap()).sum();
    assert_eq!(sum.to_string(), "175642.85", "the customers' parts add up to the whole");

    let refused = api.get("/v1/kpis/open_receivables?by=month", "carl").await;
    let error = refused.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_breakdown");
    assert!(error["message"].as_str().unwrap().contains("it offers customer"), "{}", refused.text);
    api.get("/v1/kpis?by=process", "carl").await.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_breakdown");
    // By sales rep: the opening receivables were sold before reps were recorded.
    let answer = api.get("/v1/kpis/open_receivables?by=sales_rep", "carl").await;
    let by_rep = answer.expect(StatusCode::OK);
    assert_eq!(by_rep["parts"], serde_json::json!([{"label": "(none)", "value": "175642.85"}]));

    // The daily snapshots, for the same readers only: none taken yet, then the evaluation's.
    for user in ["sam", "mia", "robot"] {
        let refused = api.get("/v1/kpis/open_receivables/history", user).await;
        refused.expect_error(StatusCode::FORBIDDEN, "missing_role");
        assert!(!refused.text.contains("175642.85"), "no figure leaks to {user}: {}", refused.text);
    }
    let answer = api.get("/v1/kpis/open_receivables/history", "ada").await;
    let empty = answer.expect(StatusCode::OK);
    assert_eq!((empty["from"].as_str(), empty["to"].as_str()), (Some("2025-10-08"), Some("2026-01-05")));
    assert_eq!(empty["points"], serde_json::json!([]));
    let now = api.engine.now();
    let catalogue = cloverleaf_finance::ledger::kpi::CATALOGUE.len();
    assert_eq!(ledger.snapshot_kpis(now.date_naive(), now).await.unwrap(), catalogue);
    assert_eq!(ledger.snapshot_kpis(now.date_naive(), now).await.unwrap(), 0, "once per day");
    let answer = api.get("/v1/kpis/open_receivables/history?from=2026-01-01", "carl").await;
    let series = answer.expect(StatusCode::OK);
    assert_eq!(series["points"], serde_json::json!([{"day": "2026-01-05", "value": "175642.85"}]));
    assert_eq!((series["unit"].as_str(), series["currency"].as_str()), (Some("money"), Some("CNY")));
    api.get("/v1/kpis/ebitda/history", "carl").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    api.get("/v1/kpis/revenue/history?from=2026-02-01&to=2026-01-31", "carl")
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_window");
    api.get("/v1/kpis?from=2026-02-01&as_of=2026-01-31", "carl")
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_window");
    let unknown = api.get("/v1/kpis/ebitda", "carl").await;
    let error = unknown.expect_error(StatusCode::NOT_FOUND, "not_found");
    assert!(error["message"].as_str().unwrap().contains("gross_margin"), "the known keys are listed: {}", unknown.text);
    api.get("/v1/kpis?as_of=yesterday", "carl").await.expect_error(StatusCode::BAD_REQUEST, "invalid_query");
}

const RULES: &str = r#"alert customer_overdue "A customer owes more than CNY 5,000.00 past due" {
  when overdue_receivables by customer > 5000.00
  severity critical
}
alert slow_collection "DSO above 1 day" { when days_sales_outstanding > 1 days }
"#;

#[tokio::test]
async fn alert_rules_open_once_are_acknowledged_and_close_when_their_condition_clears() {
    let Some(mut api) = Api::new().await else { return };
    let ledger = cloverleaf_finance::Ledger::connect(&api.db.url()).await.unwrap();
    ledger.seed_demo_company(crate::harness::t0().date_naive()).await.unwrap();
    let state = cloverleaf::server::AppState::with_ledger(api.engine.clone(), crate::harness::users(), ledger.clone());
    let rules = cloverleaf::server::alerts::check_rules(&[("alerts.rules".into(), RULES.into())], None).unwrap();
    state.set_rules(rules);
    api.app = cloverleaf::server::app(state);

    // Only the controller, the CFO and admin judge and acknowledge; the auditor reads.
    for user in ["sam", "mia", "vera"] {
        api.post_empty("/v1/alerts/evaluate", user).await.expect_error(StatusCode::FORBIDDEN, "missing_role");
    }
    api.get("/v1/alerts", "sam").await.expect_error(StatusCode::FORBIDDEN, "missing_role");

    let first = api.post_empty("/v1/alerts/evaluate", "ada").await;
    let first = first.expect(StatusCode::OK);
    let opened = first["opened"].as_array().unwrap().len();
    assert!(opened >= 2, "C-007's 6,180.00 past due and the company's DSO at least: {first}");
    let again = api.post_empty("/v1/alerts/evaluate", "carl").await;
    assert_eq!(again.expect(StatusCode::OK)["opened"], serde_json::json!([]), "an alert opens once");

    let listed = api.get("/v1/alerts", "vera").await;
    let alerts = listed.expect(StatusCode::OK).as_array().unwrap().clone();
    assert_eq!(alerts.len(), opened);
    let c007 = alerts.iter().find(|a| a["customer"] == "C-007").unwrap_or_else(|| panic!("{alerts:?}"));
    assert_eq!((c007["rule"].as_str(), c007["severity"].as_str()), (Some("customer_overdue"), Some("critical")));
    assert_eq!(c007["threshold"], "5000.00");
    let dso = alerts.iter().find(|a| a["rule"] == "slow_collection").unwrap();
    assert!(dso["customer"].is_null(), "judged on the whole company: {dso}");

    let id = c007["id"].as_i64().unwrap();
    api.post_empty(&format!("/v1/alerts/{id}/acknowledge"), "vera")
        .await
        .expect_error(StatusCode::FORBIDDEN, "missing_role");
    let seen = api.post_empty(&format!("/v1/alerts/{id}/acknowledge"), "ada").await;
    assert_eq!(seen.expect(StatusCode::OK)["acknowledged_by"], "ada");
    let later = api.post_empty(&format!("/v1/alerts/{id}/acknowledge"), "carl").await;
    assert_eq!(later.expect(StatusCode::OK)["acknowledged_by"], "ada", "the first acknowledgement stands");
    api.post_empty("/v1/alerts/999999/acknowledge", "carl").await.expect_error(StatusCode::NOT_FOUND, "not_found");

    // C-007's overdue invoice is written off: its alert closes and stays in the history.
    let now = api.engine.now();
    ledger.write_off("w-test", now, "INV-OB-0005", "C-007", "6180.00".parse().unwrap()).await.unwrap();
    let cleared = api.post_empty("/v1/alerts/evaluate", "carl").await;
    assert_eq!(cleared.expect(StatusCode::OK)["closed"], serde_json::json!([id]));
    let open = api.get("/v1/alerts", "carl").await;
    assert!(open.expect(StatusCode::OK).as_array().unwrap().iter().all(|a| a["id"] != id));
    let history = api.get("/v1/alerts?all=true", "carl").await;
    let closed = history.expect(StatusCode::OK).as_array().unwrap().iter().find(|a| a["id"] == id).cloned().unwrap();
    assert!(closed["closed_at"].is_string() && closed["acknowledged_by"] == "ada", "{closed}");

    // Each alert raised a notification when it opened, and C-007's another when it cleared, once
    // each however often the rules were judged.
    let notices = api.get("/v1/notifications", "ada").await;
    let notices = notices.expect(StatusCode::OK).as_array().unwrap().clone();
    let of = |kind: &str| notices.iter().filter(|n| n["kind"] == kind).cloned().collect::<Vec<_>>();
    assert_eq!(of("alert_opened").len(), opened, "{notices:?}");
    let cleared = of("alert_cleared");
    assert_eq!(cleared.len(), 1, "{notices:?}");
    assert_eq!(cleared[0]["subject"], id.to_string());
    assert_eq!(cleared[0]["payload"]["rule"], "customer_overdue");
    assert_eq!(cleared[0]["payload"]["severity"], "critical");
    assert!(cleared[0]["instance_id"].is_null());
}

#[tokio::test]
async fn live_finance_reports_give_aging_profit_and_the_trial_balance_to_finance_readers_only() {
    let Some(mut api) = Api::new().await else { return };
    with_demo_ledger(&mut api).await;
    for path in ["/v1/reports/aging", "/v1/reports/gross-profit?by=order", "/v1/reports/trial-balance"] {
        for user in ["sam", "mia", "robot"] {
            let refused = api.get(path, user).await;
            refused.expect_error(StatusCode::FORBIDDEN, "missing_role");
            assert!(!refused.text.contains("175642.85"), "no figure leaks to {user}: {}", refused.text);
        }
    }
    let aging = api.get("/v1/reports/aging", "vera").await;
    let aging = aging.expect(StatusCode::OK);
    assert_eq!((aging["total"].as_str(), aging["currency"].as_str()), (Some("175642.85"), Some("CNY")));
    let by_customer: rust_decimal::Decimal = aging["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["amount_open"].as_str().unwrap().parse::<rust_decimal::Decimal>().unwrap())
        .sum();
    assert_eq!(by_customer.to_string(), "175642.85", "the customers' open amounts add up to the total");
    assert!(
        aging["invoices"].as_array().unwrap().iter().all(|i| i["order_id"].is_null()),
        "taken-over invoices bill no order"
    );

    let profit = api.get("/v1/reports/gross-profit?by=order&from=2026-01-01&as_of=2026-01-31", "carl").await;
    let profit = profit.expect(StatusCode::OK);
    assert_eq!((profit["by"].as_str(), profit["from"].as_str()), (Some("order"), Some("2026-01-01")));
    api.get("/v1/reports/gross-profit?by=region", "carl")
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_breakdown");
    api.get("/v1/reports/gross-profit?from=2026-02-01&as_of=2026-01-01", "carl")
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_window");

    let tb = api.get("/v1/reports/trial-balance", "carl").await;
    let tb = tb.expect(StatusCode::OK);
    assert_eq!(tb["balanced"], true);
    let account =
        |code: &str| tb["accounts"].as_array().unwrap().iter().find(|a| a["account"] == code).cloned().unwrap();
    assert_eq!(account("1200")["debit_balance"], "175642.85", "receivables in the debit column");
    assert!(account("1200")["credit_balance"].is_null());
    assert_eq!(account("1300")["debit_balance"], "130514.00", "the opening stock, at cost");
    assert_eq!(account("3000")["credit_balance"], "306156.85", "opening equity (receivables and stock), a credit");
}

#[tokio::test]
async fn budgets_are_read_by_finance_readers_and_set_by_the_controller_the_cfo_or_an_admin() {
    let Some(mut api) = Api::new().await else { return };
    let ledger = with_demo_ledger(&mut api).await;
    // Nobody outside finance sets or reads a budget; an auditor reads but never sets.
    for user in ["sam", "mia", "robot", "vera"] {
        let refused = api.put("/v1/budgets/EAST/2026-01", user, json!({"amount": "50000.00"})).await;
        refused.expect_error(StatusCode::FORBIDDEN, "missing_role");
    }
    for user in ["sam", "mia", "robot"] {
        api.get("/v1/budgets", user).await.expect_error(StatusCode::FORBIDDEN, "missing_role");
    }
    assert!(ledger.budgets(None).await.unwrap().is_empty(), "a refused call changed nothing");
    let set = api.put("/v1/budgets/EAST/2026-01", "carl", json!({"amount": "50000.00"})).await;
    let set = set.expect(StatusCode::OK);
    assert_eq!((set["amount"].as_str(), set["left"].as_str()), (Some("50000.00"), Some("50000.00")));
    // An order reserves against it; the list shows what is left, in the ledger's currency.
    ledger.assign_cost_centre("C-001", Some("EAST")).await.unwrap();
    let amount: rust_decimal::Decimal = "12000.00".parse().unwrap();
    let check = ledger.credit_check("k1", api.engine.now(), "C-001", Some(("SO-9", amount))).await.unwrap();
    assert!(check.budget.budget_reserved);
    let list = api.get("/v1/budgets?period=2026-01", "vera").await;
    let list = list.expect(StatusCode::OK);
    assert_eq!(list["currency"], "CNY");
    let line = &list["budgets"][0];
    assert_eq!(
        (line["cost_centre"].as_str(), line["reserved"].as_str(), line["left"].as_str()),
        (Some("EAST"), Some("12000.00"), Some("38000.00"))
    );
    // SO-9 is cancelled by an operator after its approval: the next evaluation pass gives its
    // budget back, once; SO-10, still running, keeps its reservation.
    let amount: rust_decimal::Decimal = "5000.00".parse().unwrap();
    ledger.credit_check("k2", api.engine.now(), "C-001", Some(("SO-10", amount))).await.unwrap();
    let mut ids = Vec::new();
    for order in ["SO-9", "SO-10"] {
        let variables = json!({"order_id": order, "customer_id": "C-001", "amount": "12000.00", "requested_by": "sam"});
        ids.push(api.engine.start("order_to_cash", Some(order), variables).await.unwrap());
    }
    api.post(&format!("/v1/instances/{}/cancel", ids[0]), "ada", json!({})).await.expect(StatusCode::OK);
    for pass in 0..2 {
        api.post("/v1/alerts/evaluate", "carl", json!({})).await.expect(StatusCode::OK);
        let line = &ledger.budgets(Some("2026-01")).await.unwrap()[0];
        assert_eq!((line.reserved, line.orders), (amount, 1), "pass {pass}: only SO-10 still holds budget");
    }
    // Bad input: what is wrong and where.
    api.put("/v1/budgets/EAST/2026-13", "carl", json!({"amount": "1.00"}))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_budget");
    api.put("/v1/budgets/EAST/2026-02", "ada", json!({"amount": "-1.00"}))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_budget");
    // Fractions of a cent and sums past a quadrillion are refused, as on the budgets page, not
    // rounded or stored; the budget set before stands.
    for amount in ["100.005", "1000000000000000.00"] {
        api.put("/v1/budgets/EAST/2026-01", "carl", json!({"amount": amount}))
            .await
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_budget");
    }
    assert_eq!(ledger.budgets(Some("2026-01")).await.unwrap()[0].amount, rust_decimal::Decimal::from(50_000));
    api.put("/v1/budgets/EAST/2026-01", "carl", json!({"amount": "50000.000"})).await.expect(StatusCode::OK);
    api.get("/v1/budgets?period=March", "carl").await.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_budget");
}

/// Seeds the demo company into a sub-ledger on the test's database and routes through it.
async fn with_demo_ledger(api: &mut Api) -> cloverleaf_finance::Ledger {
    let ledger = cloverleaf_finance::Ledger::connect(&api.db.url()).await.unwrap();
    ledger.seed_demo_company(crate::harness::t0().date_naive()).await.unwrap();
    api.app = cloverleaf::server::app(cloverleaf::server::AppState::with_ledger(
        api.engine.clone(),
        crate::harness::users(),
        ledger.clone(),
    ));
    ledger
}

const PROCESS_RULES: &str = r#"alert approvals_late "Approvals past their due time" {
  when approvals_past_due > 0
  severity critical
  notify sales.director
}
alert incidents_waiting "Incidents wait for an operator" { when open_incidents >= 3 }
"#;

#[tokio::test]
async fn rules_on_process_figures_open_when_an_approval_is_past_due_and_close_when_it_is_decided() {
    let Some(mut api) = Api::new().await else { return };
    let ledger = cloverleaf_finance::Ledger::connect(&api.db.url()).await.unwrap();
    let state = cloverleaf::server::AppState::with_ledger(api.engine.clone(), crate::harness::users(), ledger);
    let rules =
        cloverleaf::server::alerts::check_rules(&[("process.rules".into(), PROCESS_RULES.into())], None).unwrap();
    state.set_rules(rules);
    api.app = cloverleaf::server::app(state);

    api.order_at_manager("25000.00", "sam").await;
    let fresh = api.post_empty("/v1/alerts/evaluate", "carl").await;
    assert_eq!(fresh.expect(StatusCode::OK)["opened"], serde_json::json!([]), "due in 24 h: not late yet");

    api.advance(TimeDelta::hours(25));
    let late = api.post_empty("/v1/alerts/evaluate", "carl").await;
    let opened = late.expect(StatusCode::OK)["opened"].as_array().unwrap().clone();
    assert_eq!(opened.len(), 1, "the approval is late; no incident is open");
    let alerts = api.get("/v1/alerts", "vera").await;
    let alerts = alerts.expect(StatusCode::OK).as_array().unwrap().clone();
    assert_eq!((alerts[0]["rule"].as_str(), alerts[0]["last_value"].as_str()), (Some("approvals_late"), Some("1")));
    let notices = api.get("/v1/notifications", "ada").await;
    let notices = notices.expect(StatusCode::OK).as_array().unwrap().clone();
    let opened_notice = notices.iter().find(|n| n["kind"] == "alert_opened").unwrap_or_else(|| panic!("{notices:?}"));
    assert_eq!(opened_notice["payload"]["notify"], serde_json::json!(["sales.director"]));

    // Whoever holds the open work decides it (the director, once escalated): nothing is late.
    let alert = alerts[0]["id"].clone();
    for open in api.engine.tasks(None).await.unwrap() {
        let user = if open.roles.iter().any(|r| r == "sales.director") { "dora" } else { "mia" };
        let path = format!("/v1/tasks/{}/complete", open.id);
        api.post(&path, user, serde_json::json!({"variables": {"approve": true}})).await.expect(StatusCode::OK);
    }
    let decided = api.post_empty("/v1/alerts/evaluate", "carl").await;
    assert_eq!(decided.expect(StatusCode::OK)["closed"], serde_json::json!([alert]));
}
