//! A case's history on its page in words: an operator's move to another version and repairs by
//! hand as sentences with their reasons, every other kind and the status in the reader's
//! language, in English and Chinese.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::harness::{Api, reference_file, visible};
use crate::web::{page, sign_in};

/// `order_approval` with the manager reminded after 4 hours instead of 8.
fn version_2() -> String {
    let v1 = reference_file("order_approval.flow");
    assert!(v1.contains("remind after 8h"), "the fixture changed");
    v1.replace("remind after 8h", "remind after 4h")
}

/// The history table of a case page.
fn history(text: &str) -> &str {
    let start = text.find("<table class=\"history\">").unwrap_or_else(|| panic!("no history:\n{text}"));
    text[start..].split("</table>").next().unwrap()
}

#[tokio::test]
async fn a_moved_and_repaired_order_tells_its_history_in_words() {
    let Some(api) = Api::new().await else { return };
    let (id, _) = api.order_at_manager("50000.00", "sam").await;
    let deployed = api
        .raw(
            Method::POST,
            "/v1/definitions?filename=order_approval.flow",
            Some("ada"),
            Some(&version_2()),
            "text/plain",
        )
        .await;
    deployed.expect(StatusCode::CREATED);
    let migration = json!({"from_version": 1, "to_version": 2, "reason": "shorter reminders"});
    api.post("/v1/definitions/order_approval/migrations", "ada", migration).await.expect(StatusCode::OK);
    let path = format!("/v1/instances/{id}/modifications");
    let modify = |body| api.post(&path, "ada", body);
    modify(json!({"action": "set_variable", "name": "amount", "value": "60000.00", "reason": "order amended"}))
        .await
        .expect(StatusCode::OK);
    modify(json!({"action": "start_before", "node": "cfo_approval", "reason": "CFO signs too"}))
        .await
        .expect(StatusCode::OK);
    let instance = api.engine.instance(&id.as_str().into()).await.unwrap();
    let manager = instance.tokens().iter().find(|(_, t)| t.node == "manager_approval").map(|(k, _)| k.0).unwrap();
    modify(json!({"action": "cancel_token", "token": manager, "reason": "the CFO decides alone"}))
        .await
        .expect(StatusCode::OK);

    // The requester reads his case's history like everyone who may read the case.
    let sam = sign_in(&api, "sam").await;
    let en = page(&api, Method::GET, &format!("/cases/{id}"), &sam, None).await;
    assert_eq!(en.status, StatusCode::OK, "{}", en.text);
    let table = history(&en.text);
    for sentence in [
        "Moved from version 1 to 2: shorter reminders",
        "Set amount to CNY 60,000.00 by hand: order amended",
        "Started again before CFO approval of order SO-1 by hand: CFO signs too",
        "Withdrew the step at Approve order SO-1 by hand: the CFO decides alone",
        "Started",
        "Automatic step done",
        "Reached</span> · Approve order SO-1",
    ] {
        assert!(table.contains(sentence), "`{sentence}` in the history:\n{table}");
    }
    let shown = visible(table);
    for raw in ["migrated", "modified", "job completed", "job_completed", "entered", "token"] {
        assert!(!shown.contains(raw), "`{raw}` is the machine's word:\n{shown}");
    }
    assert!(en.text.contains("<b id=\"status\">Running</b>"), "{}", en.text);

    let zh = page(&api, Method::GET, &format!("/cases/{id}?lang=zh-CN"), &sam, None).await;
    let table = history(&zh.text);
    for sentence in [
        "由第 1 版迁移到第 2 版：shorter reminders",
        "手工将金额改为 ¥60,000.00：order amended",
        "手工在 财务总监审批订单 SO-1 之前重新开始：CFO signs too",
        "手工撤下 审批订单 SO-1 处的步骤：the CFO decides alone",
        "进入</span> · 审批订单 SO-1",
        "发起",
        "自动步骤完成",
    ] {
        assert!(table.contains(sentence), "`{sentence}` in the history:\n{table}");
    }
    assert!(zh.text.contains("<b id=\"status\">进行中</b>"), "{}", zh.text);

    // Someone who may not read the case sees none of it.
    let lou = sign_in(&api, "lou").await;
    let refused = page(&api, Method::GET, &format!("/cases/{id}"), &lou, None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert!(!refused.text.contains("shorter reminders"), "{}", refused.text);
}

#[tokio::test]
async fn a_called_process_outcome_and_a_decision_read_as_steps_not_as_code() {
    let Some(api) = Api::new().await else { return };
    let body = json!({"process": "order_to_cash", "business_key": "SO-1", "variables": {
        "order_id": "SO-1", "customer_id": "C-7", "amount": "100.00", "requested_by": "sam"}});
    let id =
        api.post("/v1/instances", "sam", body).await.expect(StatusCode::CREATED)["id"].as_str().unwrap().to_string();
    // A small order of a good customer is approved without a person.
    api.pass_credit_check().await;
    cloverleaf_testkit::eventually("the order to be approved", || async {
        let instance = api.engine.instance(&id.as_str().into()).await.unwrap();
        (instance.variables().get("approval_outcome").map(|v| v.to_json()) == Some(json!("approved"))).then_some(())
    })
    .await;

    let sam = sign_in(&api, "sam").await;
    let en = page(&api, Method::GET, &format!("/cases/{id}"), &sam, None).await;
    assert_eq!(en.status, StatusCode::OK, "{}", en.text);
    assert!(en.text.contains("data-var=\"approval_outcome\">Order approved</dd>"), "{}", en.text);
    // Text not set yet reads as a dash, as a missing date does, not as a blank.
    // So does a sum not worked out yet, where its default would read as an amount of zero.
    for name in ["collection_outcome", "invoice_id", "due_date", "invoice_total"] {
        assert!(en.text.contains(&format!("data-var=\"{name}\">—</dd>")), "{name}: {}", en.text);
    }
    let table = visible(history(&en.text));
    for line in [
        "Sub-process completed · Approve the order Order approved",
        "Decided · Outcome of Approve the order → Ship and invoice",
    ] {
        assert!(table.contains(line), "`{line}` in the history:\n{table}");
    }
    assert!(!table.contains("approval_outcome ="), "a condition is the process's code:\n{table}");

    let zh = page(&api, Method::GET, &format!("/cases/{id}?lang=zh-CN"), &sam, None).await;
    assert!(zh.text.contains("data-var=\"approval_outcome\">订单已批准</dd>"), "{}", zh.text);
    let table = visible(history(&zh.text));
    for line in ["子流程完成 · 审批订单 订单已批准", "判断 · 审批订单的结果 → 发货并开票"]
    {
        assert!(table.contains(line), "`{line}` in the history:\n{table}");
    }
    assert!(!table.contains("approved"), "an outcome in English to a Chinese reader:\n{table}");
}
