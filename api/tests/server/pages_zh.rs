//! The pages in Simplified Chinese: process, role and step titles instead of keys; labels, statuses and empty states.

use axum::http::{Method, StatusCode};
use cloverleaf::web::i18n::{Lang, label};
use cloverleaf_dsl::model::NodeKind;
use cloverleaf_engine::store::Queries as _;
use serde_json::json;

use crate::harness::{Api, visible};
use crate::web::{page, sign_in};

/// The element that opens with `opening` (`<tr data-role="sales.manager">`), up to `close`.
#[track_caller]
fn element<'a>(html: &'a str, opening: &str, close: &str) -> &'a str {
    let start = html.find(opening).unwrap_or_else(|| panic!("no `{opening}` on the page:\n{html}"));
    html[start..].split(close).next().unwrap()
}

/// Case `id`'s page as `session` reads it in `lang`.
async fn case_page(api: &Api, session: &str, id: &str, lang: &str) -> String {
    let answer = page(api, Method::GET, &format!("/cases/{id}?lang={lang}"), session, None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    answer.text
}

/// Starts a small order of a good customer and answers its credit check: it is approved
/// straight through, and its case has ended.
async fn approved_order(api: &Api) -> String {
    let id = api.order("100.00", "sam").await;
    api.pass_credit_check().await;
    assert_eq!(api.status(&id).await, json!({"status": "completed", "outcome": "approved"}));
    id
}

#[tokio::test]
async fn the_board_names_processes_and_roles_by_their_titles_with_hours_in_the_readers_words() {
    let Some(api) = Api::new().await else { return };
    approved_order(&api).await;
    api.order_at_manager("20000.00", "sam").await;
    crate::incidents::stuck_order(&api).await;
    let carl = sign_in(&api, "carl").await;

    let zh = page(&api, Method::GET, "/board?lang=zh-CN", &carl, None).await;
    assert_eq!(zh.status, StatusCode::OK, "{}", zh.text);
    let cycle = element(&zh.text, "<tr data-process=\"order_approval\">", "</tr>");
    assert!(cycle.contains(">订单审批</a>") && cycle.contains("0.0 小时 / 0.0 小时"), "{cycle}");
    let collect = element(&zh.text, "<tr data-process=\"collect_then_reconcile\">", "</tr>");
    assert!(collect.contains(">收款与对账</a>"), "{collect}");
    assert!(zh.text.contains("<h2>各流程办理周期</h2>"), "{}", zh.text);
    let role = element(&zh.text, "<tr data-role=\"sales.manager\">", "</tr>");
    assert!(role.contains("<td>销售经理</td>"), "{role}");
    let incidents = element(&zh.text, "<li data-process=\"order_approval\">", "</li>");
    assert!(incidents.contains(">订单审批</a>: 1"), "{incidents}");
    let shown = visible(&zh.text);
    for key in ["order_approval", "collect_then_reconcile", "month_end_close", "sales.manager", " h "] {
        assert!(!shown.contains(key), "`{key}` on the board:\n{shown}");
    }

    let en = page(&api, Method::GET, "/board?lang=en", &carl, None).await;
    let cycle = element(&en.text, "<tr data-process=\"order_approval\">", "</tr>");
    assert!(cycle.contains(">Order approval</a>") && cycle.contains("0.0 h / 0.0 h"), "{cycle}");
    assert!(en.text.contains("<h2>Cycle time by process</h2>"), "{}", en.text);
    assert!(element(&en.text, "<tr data-role=\"sales.manager\">", "</tr>").contains("<td>Sales manager</td>"));
    assert!(element(&en.text, "<li data-process=\"order_approval\">", "</li>").contains(">Order approval</a>: 1"));
    let shown = visible(&en.text);
    for key in ["order_approval", "collect_then_reconcile", "sales.manager"] {
        assert!(!shown.contains(key), "`{key}` on the board:\n{shown}");
    }
}

#[tokio::test]
async fn an_ended_case_says_which_end_it_reached_by_its_title() {
    let Some(api) = Api::new().await else { return };
    let id = approved_order(&api).await;
    let sam = sign_in(&api, "sam").await;
    let zh = page(&api, Method::GET, &format!("/cases/{id}?lang=zh-CN"), &sam, None).await;
    assert!(zh.text.contains("<b id=\"status\">已完成（订单已批准）</b>"), "{}", zh.text);
    let en = page(&api, Method::GET, &format!("/cases/{id}?lang=en"), &sam, None).await;
    assert!(en.text.contains("<b id=\"status\">Completed (Order approved)</b>"), "{}", en.text);
    assert!(!en.text.contains("(approved)"), "{}", en.text);
}

#[tokio::test]
async fn a_case_search_without_a_match_says_so() {
    let Some(api) = Api::new().await else { return };
    let id = approved_order(&api).await;
    let sam = sign_in(&api, "sam").await;
    let zh = page(&api, Method::GET, "/cases?business_key=SO-404&lang=zh-CN", &sam, None).await;
    assert_eq!(zh.status, StatusCode::OK, "{}", zh.text);
    assert!(zh.text.contains("<p class=\"empty\">没有符合搜索条件的订单或案例。</p>"), "{}", zh.text);
    let en = page(&api, Method::GET, "/cases?business_key=SO-404&lang=en", &sam, None).await;
    assert!(en.text.contains("<p class=\"empty\">No order or case matches this search.</p>"), "{}", en.text);
    // A search that finds the order lists it and nothing else.
    let found = page(&api, Method::GET, "/cases?business_key=SO-1&lang=en", &sam, None).await;
    assert!(found.text.contains(&id) && !found.text.contains("class=\"empty\""), "{}", found.text);
}

#[tokio::test]
async fn every_variable_of_the_reference_processes_has_a_chinese_label() {
    let Some(api) = Api::new().await else { return };
    let mut missing = Vec::new();
    for d in api.engine.store().deployments().await.unwrap() {
        let definition = api.engine.definition(&d.key, d.version).await.unwrap();
        let mut names: Vec<&str> = definition.inputs.iter().chain(&definition.vars).map(|v| v.name.as_str()).collect();
        for node in &definition.nodes {
            if let NodeKind::Approval { form, .. } = &node.kind {
                names.extend(form.iter().map(|f| f.name.as_str()));
            }
        }
        for name in names {
            let zh = label(name, Lang::ZhCn);
            if zh.chars().any(|c| c.is_ascii_alphabetic()) {
                missing.push(format!("{}.{name}: {zh}", d.key));
            }
        }
    }
    assert!(missing.is_empty(), "no Chinese label: {missing:#?}");
}

#[tokio::test]
async fn a_cases_data_is_labelled_in_the_readers_language() {
    let Some(api) = Api::new().await else { return };
    let (id, _) = api.order_at_manager("20000.00", "sam").await;
    let sam = sign_in(&api, "sam").await;
    let zh = page(&api, Method::GET, &format!("/cases/{id}?lang=zh-CN"), &sam, None).await;
    for (name, zh_label) in [
        ("cost_centre", "成本中心"),
        ("budget_left", "剩余预算"),
        ("budget_reserved", "是否已占用预算"),
        ("customer_id", "客户"),
    ] {
        assert!(zh.text.contains(&format!("<dt>{zh_label}</dt><dd data-var=\"{name}\">")), "{name}: {}", zh.text);
    }
    let en = page(&api, Method::GET, &format!("/cases/{id}?lang=en"), &sam, None).await;
    for (name, en_label) in [("cost_centre", "Cost centre"), ("customer_id", "Customer ID"), ("open_ar", "Open AR")] {
        assert!(en.text.contains(&format!("<dt>{en_label}</dt><dd data-var=\"{name}\">")), "{name}: {}", en.text);
    }
    assert!(!en.text.contains("<dt>customer id</dt>"), "{}", en.text);
}

#[tokio::test]
async fn a_yes_or_no_nobody_has_answered_yet_reads_as_not_decided() {
    let Some(api) = Api::new().await else { return };
    let (id, task) = api.order_at_manager("20000.00", "sam").await;
    let sam = sign_in(&api, "sam").await;
    // The manager has not decided: the default `false` is no refusal.
    let zh = case_page(&api, &sam, &id, "zh-CN").await;
    assert!(zh.contains("<dt>是否批准</dt><dd data-var=\"approve\">—</dd>"), "{zh}");
    let en = case_page(&api, &sam, &id, "en").await;
    assert!(en.contains("<dt>Approve</dt><dd data-var=\"approve\">—</dd>"), "{en}");
    // Once she refuses, the case says so.
    api.post(&format!("/v1/tasks/{task}/complete"), "mia", json!({"variables": {"approve": false}}))
        .await
        .expect(StatusCode::OK);
    let zh = case_page(&api, &sam, &id, "zh-CN").await;
    assert!(zh.contains("<dd data-var=\"approve\">否</dd>"), "{zh}");
    assert!(zh.contains("<b id=\"status\">已完成（订单已驳回）</b>"), "{zh}");
    let en = case_page(&api, &sam, &id, "en").await;
    assert!(en.contains("<dd data-var=\"approve\">No</dd>"), "{en}");
}

#[tokio::test]
async fn a_decision_taken_earlier_reads_as_not_decided_while_the_next_one_is_open() {
    let Some(api) = Api::new().await else { return };
    // A large order: the manager approves, then the CFO's approval of the same field is open.
    let (id, task) = api.order_at_manager("150000.00", "sam").await;
    api.post(&format!("/v1/tasks/{task}/complete"), "mia", json!({"variables": {"approve": true}}))
        .await
        .expect(StatusCode::OK);
    let tasks = api.engine.tasks(Some(&id.as_str().into())).await.unwrap();
    assert_eq!(tasks.iter().map(|t| t.node.as_str()).collect::<Vec<_>>(), ["cfo_approval"]);
    let sam = sign_in(&api, "sam").await;
    let zh = case_page(&api, &sam, &id, "zh-CN").await;
    assert!(zh.contains("<dd data-var=\"approve\">—</dd>"), "{zh}");
    api.post(&format!("/v1/tasks/{}/complete", tasks[0].id.0), "carl", json!({"variables": {"approve": true}}))
        .await
        .expect(StatusCode::OK);
    let zh = case_page(&api, &sam, &id, "zh-CN").await;
    assert!(zh.contains("<dd data-var=\"approve\">是</dd>"), "{zh}");
    assert!(zh.contains("<b id=\"status\">已完成（订单已批准）</b>"), "{zh}");
}

#[tokio::test]
async fn an_alert_on_the_board_is_punctuated_as_each_reader_writes() {
    let Some(mut api) = Api::new().await else { return };
    let ledger = cloverleaf_finance::Ledger::connect(&api.db.url()).await.unwrap();
    ledger.seed_demo_company(crate::harness::t0().date_naive()).await.unwrap();
    let state = cloverleaf::server::AppState::with_ledger(api.engine.clone(), crate::harness::users(), ledger);
    let rules = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../processes/alerts.rules")).unwrap();
    state.set_rules(cloverleaf::server::alerts::check_rules(&[("alerts.rules".into(), rules)], None).unwrap());
    api.app = cloverleaf::server::app(state);
    api.post_empty("/v1/alerts/evaluate", "carl").await.expect(StatusCode::OK);
    let carl = sign_in(&api, "carl").await;
    let zh = visible(&page(&api, Method::GET, "/board?lang=zh-CN", &carl, None).await.text);
    let alerts = zh.split("各成本中心预算").next().unwrap();
    assert!(alerts.contains("应收账款周转天数：98.4 天（阈值 60 天）"), "{alerts}");
    assert!(!alerts.contains(": ") && !alerts.contains(" ("), "no half-width punctuation: {alerts}");
    let en = visible(&page(&api, Method::GET, "/board?lang=en", &carl, None).await.text);
    assert!(en.contains(" (threshold 60 days) · since "), "{en}");
    // The critical alerts come first, each customer named beside its id.
    let board = page(&api, Method::GET, "/board?lang=zh-CN", &carl, None).await.text;
    let severities: Vec<&str> =
        board.split("<div class=\"alert ").skip(1).map(|a| a.split('"').next().unwrap()).collect();
    assert!(severities.len() > 1 && severities.contains(&"warning"), "{severities:?}");
    assert!(severities.windows(2).all(|w| !(w[0] == "warning" && w[1] == "critical")), "{severities:?}");
    assert!(zh.contains("C-004（Delft Instruments BV）"), "{zh}");
}

#[tokio::test]
async fn the_history_keeps_what_each_approver_answered() {
    let Some(api) = Api::new().await else { return };
    // A large order: the manager approves with a comment, then the CFO with another one, which
    // the `comment` variable keeps alone.
    let (id, task) = api.order_at_manager("150000.00", "sam").await;
    api.post(
        &format!("/v1/tasks/{task}/complete"),
        "mia",
        json!({"variables": {"approve": true, "comment": "大客户，同意"}}),
    )
    .await
    .expect(StatusCode::OK);
    let tasks = api.engine.tasks(Some(&id.as_str().into())).await.unwrap();
    api.post(
        &format!("/v1/tasks/{}/complete", tasks[0].id.0),
        "carl",
        json!({"variables": {"approve": true, "comment": "Watch the collection"}}),
    )
    .await
    .expect(StatusCode::OK);
    let sam = sign_in(&api, "sam").await;
    let zh = case_page(&api, &sam, &id, "zh-CN").await;
    assert!(zh.contains("<span class=\"decided\">是否批准：是 · 备注：大客户，同意</span>"), "{zh}");
    assert!(zh.contains("<span class=\"decided\">是否批准：是 · 备注：Watch the collection</span>"), "{zh}");
    let en = case_page(&api, &sam, &id, "en").await;
    assert!(en.contains("<span class=\"decided\">Approve: Yes · Comment: 大客户，同意</span>"), "{en}");
}

#[tokio::test]
async fn a_code_a_process_writes_reads_in_words() {
    let Some(api) = Api::new().await else { return };
    // Before its credit check, an order's risk is the process's `unknown`: not yet rated.
    let id = api.order("100.00", "sam").await;
    let sam = sign_in(&api, "sam").await;
    let zh = case_page(&api, &sam, &id, "zh-CN").await;
    assert!(zh.contains("<dd data-var=\"risk\">尚未评级</dd>"), "{zh}");
    let en = case_page(&api, &sam, &id, "en").await;
    assert!(en.contains("<dd data-var=\"risk\">Not rated yet</dd>"), "{en}");
    // Rated, the rating is shown as the check gave it.
    api.pass_credit_check().await;
    let en = case_page(&api, &sam, &id, "en").await;
    assert!(!en.contains("Not rated yet") && !en.contains(">unknown<"), "{en}");
}

#[tokio::test]
async fn a_cases_data_follows_the_order_the_process_declares_it() {
    let Some(api) = Api::new().await else { return };
    let id = approved_order(&api).await;
    let sam = sign_in(&api, "sam").await;
    let zh = case_page(&api, &sam, &id, "zh-CN").await;
    // order_approval declares its inputs (order_id, customer_id, amount, requested_by), then
    // its variables (credit_limit, open_ar, risk, ...).
    let at = |name: &str| zh.find(&format!("data-var=\"{name}\"")).unwrap_or_else(|| panic!("no {name}: {zh}"));
    assert!(at("order_id") < at("customer_id") && at("customer_id") < at("amount"), "{zh}");
    assert!(at("requested_by") < at("credit_limit") && at("credit_limit") < at("risk"), "{zh}");
}

#[tokio::test]
async fn a_customer_is_shown_with_its_name_beside_its_id() {
    let Some(mut api) = Api::new().await else { return };
    crate::harness::with_ledger(&mut api).await;
    let body = json!({"process": "order_approval", "business_key": "SO-9", "variables": {
        "order_id": "SO-9", "customer_id": "C-004", "amount": "20000.00", "requested_by": "sam"}});
    let id =
        api.post("/v1/instances", "sam", body).await.expect(StatusCode::CREATED)["id"].as_str().unwrap().to_string();
    api.pass_credit_check().await;
    let mia = sign_in(&api, "mia").await;
    // The case names it in its data.
    let case = page(&api, Method::GET, &format!("/cases/{id}?lang=zh-CN"), &mia, None).await;
    assert!(case.text.contains("data-var=\"customer_id\">C-004（Delft Instruments BV）</dd>"), "{}", case.text);
    let zh = page(&api, Method::GET, "/inbox?lang=zh-CN", &mia, None).await;
    assert!(zh.text.contains("<span class=\"nowrap\">C-004</span>（Delft Instruments BV）"), "{}", zh.text);
    let en = page(&api, Method::GET, "/inbox?lang=en", &mia, None).await;
    assert!(en.text.contains("<span class=\"nowrap\">C-004</span> (Delft Instruments BV)"), "{}", en.text);
    // The customer filter still takes the id.
    let filtered = page(&api, Method::GET, "/inbox?customer=C-004", &mia, None).await;
    assert!(filtered.text.contains("SO-9"), "{}", filtered.text);
    // Or a part of its name, in any case; a name it does not have finds nothing.
    let by_name = page(&api, Method::GET, "/inbox?customer=delft", &mia, None).await;
    assert!(by_name.text.contains("SO-9"), "{}", by_name.text);
    let other = page(&api, Method::GET, "/inbox?customer=Alpenrose", &mia, None).await;
    assert!(!other.text.contains("SO-9") && other.text.contains("class=\"empty\""), "{}", other.text);
    // The receivables name them too.
    let carl = sign_in(&api, "carl").await;
    let open = page(&api, Method::GET, "/board/receivables?lang=zh-CN", &carl, None).await;
    assert!(open.text.contains(">C-004（Delft Instruments BV）</a>"), "{}", open.text);
}
