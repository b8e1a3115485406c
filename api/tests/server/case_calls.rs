//! What a finance review of the pages found missing, as a reader sees it in English and Chinese:
//! an order's case shows the cases its call steps started (linked, with their status, and an
//! open incident or task inside one), to a reader who may read them and to nobody else; untitled
//! joins read as what they do; and the inbox's substitution notice agrees with the list and with
//! the away page on the last day away.

use axum::http::{Method, StatusCode};
use chrono::TimeDelta;
use cloverleaf_engine::store::Queries as _;
use serde_json::json;

use crate::harness::{Api, visible};
use crate::web::{hidden, page, sign_in};

/// Starts order to cash for SO-1 of `amount`, entered by sam; its id.
async fn order_to_cash(api: &Api, amount: &str) -> String {
    let body = json!({"process": "order_to_cash", "business_key": "SO-1", "variables": {
        "order_id": "SO-1", "customer_id": "C-7", "amount": amount, "requested_by": "sam"}});
    api.post("/v1/instances", "sam", body).await.expect(StatusCode::CREATED)["id"].as_str().unwrap().to_string()
}

/// The id of the instance of `process` that order `id` called.
async fn called(api: &Api, id: &str, process: &str) -> String {
    let rows = api.engine.store().instances(Some(process), None, Some("SO-1"), 10, 0).await.unwrap();
    let child = rows.iter().find(|r| r.parent_id.as_ref().map(|p| p.as_str()) == Some(id));
    child.unwrap_or_else(|| panic!("no {process} called by {id}: {rows:?}")).id.as_str().to_string()
}

/// Completes the one due job of `job_type` with `variables`.
async fn complete_job(api: &Api, job_type: &str, variables: serde_json::Value) {
    let job = api.one_job(job_type).await;
    let path = format!("/v1/jobs/{}/complete", job["id"].as_str().unwrap());
    api.post(&path, "robot", json!({"epoch": job["epoch"], "variables": variables}))
        .await
        .expect(StatusCode::NO_CONTENT);
}

/// The row of the called-processes table for call step `node`, or `None`.
fn call_row<'a>(text: &'a str, node: &str) -> Option<&'a str> {
    let start = text.find(&format!("<tr data-call=\"{node}\">"))?;
    text[start..].split("</tr>").next()
}

#[tokio::test]
async fn an_order_links_the_approval_it_waits_for_with_its_open_task_to_whoever_may_read_it() {
    let Some(api) = Api::new().await else { return };
    let id = order_to_cash(&api, "50000.00").await;
    api.pass_credit_check().await;
    let approval = called(&api, &id, "order_approval").await;
    let link = format!("<a href=\"/cases/{approval}\">");

    let sam = sign_in(&api, "sam").await;
    let en = page(&api, Method::GET, &format!("/cases/{id}"), &sam, None).await;
    assert_eq!(en.status, StatusCode::OK, "{}", en.text);
    assert!(en.text.contains("<b id=\"status\">Running</b>"), "{}", en.text);
    let row = call_row(&en.text, "approve").unwrap_or_else(|| panic!("no call row:\n{}", en.text));
    assert!(row.contains(&link), "{row}");
    assert_eq!(visible(row), "Approve the orderOrder approvalRunning");
    assert!(
        en.text.contains(&format!("{link}Open task in Approve the order: Approve order SO-1</a>")),
        "the task waiting inside the approval: {}",
        en.text
    );
    // The diagram's call step leads there too.
    assert!(
        en.text.contains(&format!("<a href=\"/cases/{approval}\"><g class=\"node current\" data-node=\"approve\""))
    );
    // A call step not reached yet has no case.
    assert!(call_row(&en.text, "fulfil").is_none(), "{}", en.text);

    let zh = page(&api, Method::GET, &format!("/cases/{id}?lang=zh-CN"), &sam, None).await;
    assert!(zh.text.contains("<h2>调用的流程</h2>"), "{}", zh.text);
    assert_eq!(visible(call_row(&zh.text, "approve").unwrap()), "审批订单订单审批进行中");
    assert!(zh.text.contains(&format!("{link}审批订单中有待办任务：审批订单 SO-1</a>")), "{}", zh.text);

    // The AR clerk reads every order to cash but not its approval, whose case she takes no
    // part in: she learns the step exists, not its case, status or task.
    let arlo = sign_in(&api, "arlo").await;
    assert_eq!(page(&api, Method::GET, &format!("/cases/{approval}"), &arlo, None).await.status, StatusCode::FORBIDDEN);
    let hers = page(&api, Method::GET, &format!("/cases/{id}"), &arlo, None).await;
    assert_eq!(hers.status, StatusCode::OK, "{}", hers.text);
    let row = call_row(&hers.text, "approve").unwrap_or_else(|| panic!("no call row:\n{}", hers.text));
    assert_eq!(visible(row), "Approve the orderOrder approvalnot yours to read");
    assert!(!hers.text.contains(&approval), "no link to the approval: {}", hers.text);
    assert!(!hers.text.contains("Open task in"), "{}", hers.text);
    let zh = page(&api, Method::GET, &format!("/cases/{id}?lang=zh-CN"), &arlo, None).await;
    assert_eq!(visible(call_row(&zh.text, "approve").unwrap()), "审批订单订单审批您无权查看");
    assert!(!zh.text.contains(&approval) && !zh.text.contains("待办任务："), "{}", zh.text);
}

#[tokio::test]
async fn an_incident_inside_the_approval_shows_on_the_order_only_to_its_readers() {
    let Some(api) = Api::new().await else { return };
    let id = order_to_cash(&api, "20000.00").await;
    // The credit bureau is down until the check runs out of retries.
    for _ in 0..10 {
        let fetch = json!({"worker_id": "w1", "topics": ["credit.check"], "max_jobs": 1, "lock_ms": 60000});
        let answer = api.post("/v1/jobs/fetch-and-lock", "robot", fetch).await;
        let Some(job) = answer.expect(StatusCode::OK).as_array().unwrap().first().cloned() else { break };
        let path = format!("/v1/jobs/{}/fail", job["id"].as_str().unwrap());
        api.post(&path, "robot", json!({"epoch": job["epoch"], "message": "bureau down"}))
            .await
            .expect(StatusCode::NO_CONTENT);
        api.advance(TimeDelta::hours(1));
    }
    let approval = called(&api, &id, "order_approval").await;
    let inside = api.engine.instance(&approval.as_str().into()).await.unwrap();
    assert_eq!(inside.incidents().len(), 1, "the approval is stuck");
    let order = api.engine.instance(&id.as_str().into()).await.unwrap();
    assert!(order.incidents().is_empty(), "the order itself only waits");
    let link = format!("<a href=\"/cases/{approval}\">");

    let sam = sign_in(&api, "sam").await;
    let en = page(&api, Method::GET, &format!("/cases/{id}"), &sam, None).await;
    assert!(en.text.contains(&format!("{link}Open incident in Approve the order</a>")), "{}", en.text);
    assert!(en.text.contains("<g class=\"node incident\" data-node=\"approve\""), "{}", en.text);
    let zh = page(&api, Method::GET, &format!("/cases/{id}?lang=zh-CN"), &sam, None).await;
    assert!(zh.text.contains("<b id=\"status\">进行中</b>"), "{}", zh.text);
    assert!(zh.text.contains(&format!("{link}审批订单中有未处理故障</a>")), "{}", zh.text);

    let arlo = sign_in(&api, "arlo").await;
    for lang in ["en", "zh-CN"] {
        let hers = page(&api, Method::GET, &format!("/cases/{id}?lang={lang}"), &arlo, None).await;
        assert_eq!(hers.status, StatusCode::OK, "{}", hers.text);
        assert!(!hers.text.contains(&approval), "{}", hers.text);
        assert!(!hers.text.contains("Open incident") && !hers.text.contains("未处理故障"), "{}", hers.text);
        assert!(!hers.text.contains("node incident"), "{}", hers.text);
    }
}

#[tokio::test]
async fn a_finished_call_keeps_its_link_and_an_untitled_join_reads_as_what_it_does() {
    let Some(api) = Api::new().await else { return };
    let id = order_to_cash(&api, "100.00").await;
    // A small order of a good customer is approved without a person, then dispatched, invoiced
    // and costed in parallel, the two joining before the customer is notified.
    api.pass_credit_check().await;
    let dispatch =
        json!({"name": "shipment.dispatched", "correlation_key": "SO-1", "variables": {"shipment_id": "SH-1"}});
    api.post("/v1/messages", "robot", dispatch).await.expect(StatusCode::OK);
    let invoice = json!({"invoice_id": "INV-1", "invoice_number": "INV-1", "net": "88.50", "tax": "11.50",
        "total": "100.00", "due_date": "2026-02-04"});
    complete_job(&api, "invoice.issue", invoice).await;
    complete_job(&api, "ledger.post_cost", json!({"cost_of_goods": "60.00"})).await;
    let approval = called(&api, &id, "order_approval").await;
    let shipping = called(&api, &id, "ship_then_invoice").await;

    let sam = sign_in(&api, "sam").await;
    let en = page(&api, Method::GET, &format!("/cases/{id}"), &sam, None).await;
    let row = call_row(&en.text, "approve").unwrap_or_else(|| panic!("no call row:\n{}", en.text));
    assert!(row.contains(&format!("<a href=\"/cases/{approval}\">")), "{row}");
    assert_eq!(visible(row), "Approve the orderOrder approvalCompleted (Order approved)");
    let row = call_row(&en.text, "fulfil").unwrap();
    assert!(row.contains(&format!("<a href=\"/cases/{shipping}\">")), "{row}");
    assert_eq!(visible(row), "Ship and invoiceShip, then invoiceRunning");

    // The called case names its join in words, in the diagram once and not in the history.
    let en = page(&api, Method::GET, &format!("/cases/{shipping}"), &sam, None).await;
    assert_eq!(en.status, StatusCode::OK, "{}", en.text);
    assert!(en.text.contains(">Join</text>"), "{}", en.text);
    assert!(!en.text.contains(">billed</text>") && !en.text.contains(">join</text>"), "{}", en.text);
    let history = visible(en.text.split("id=\"history\"").nth(1).unwrap());
    assert!(!history.contains("billed") && !history.contains("Join"), "{history}");
    assert!(history.contains("Automatic step done · Post cost of goods"), "{history}");
    // The sums the jobs worked out read as money, a tax of zero too; none is left unknown.
    assert!(en.text.contains("data-var=\"invoice_total\">CNY 100.00</dd>"), "{}", en.text);
    assert!(en.text.contains("data-var=\"cost_of_goods\">CNY 60.00</dd>"), "{}", en.text);

    // Once the customer is told, collection starts: a sum no step has set yet reads as a dash,
    // an amount the process declares (the matching tolerance) as money.
    complete_job(&api, "outbox.notify", json!({})).await;
    let collection = called(&api, &id, "collect_then_reconcile").await;
    let carl = sign_in(&api, "carl").await;
    let en = page(&api, Method::GET, &format!("/cases/{collection}"), &carl, None).await;
    assert_eq!(en.status, StatusCode::OK, "{}", en.text);
    assert!(en.text.contains("data-var=\"received\">—</dd>"), "{}", en.text);
    assert!(en.text.contains("data-var=\"tolerance\">CNY 0.01</dd>"), "{}", en.text);
    assert!(en.text.contains("data-var=\"amount_due\">CNY 100.00</dd>"), "{}", en.text);
    let zh = page(&api, Method::GET, &format!("/cases/{shipping}?lang=zh-CN"), &sam, None).await;
    assert_eq!(zh.text.matches(">汇合</text>").count(), 1, "{}", zh.text);
    let history = visible(zh.text.split("id=\"history\"").nth(1).unwrap());
    assert!(!history.contains("billed") && !history.contains("汇合"), "{history}");
    assert!(history.contains("进入 · 将发票寄送客户"), "{history}");
}

#[tokio::test]
async fn the_inbox_says_when_a_principal_has_nothing_open_and_names_the_last_day_away() {
    let Some(api) = Api::new().await else { return };
    let mia = sign_in(&api, "mia").await;
    let dora = sign_in(&api, "dora").await;
    let away = page(&api, Method::GET, "/away", &mia, None).await;
    let csrf = hidden(&away.text, "csrf");
    let body = format!("csrf={csrf}&substitute=dora&first_day=2026-01-05&last_day=2026-01-09");
    assert_eq!(page(&api, Method::POST, "/away", &mia, Some(&body)).await.status, StatusCode::SEE_OTHER);

    // mia holds no task: dora's inbox is empty, and the notice says so rather than promising.
    let inbox = page(&api, Method::GET, "/inbox", &dora, None).await;
    assert!(
        inbox.text.contains("Today you stand in for mia: no task assigned to them or claimed by them is open now."),
        "{}",
        inbox.text
    );
    assert!(!inbox.text.contains("their tasks are in your inbox"), "{}", inbox.text);
    let zh = page(&api, Method::GET, "/inbox?lang=zh-CN", &dora, None).await;
    assert!(zh.text.contains("今天您代理 mia：目前没有指派给其本人或由其认领的待办。"), "{}", zh.text);
    assert!(!zh.text.contains("其任务已在您的待办中"), "{}", zh.text);
    let hers = page(&api, Method::GET, "/away?lang=zh-CN", &dora, None).await;
    assert!(hers.text.contains("今天您代理 mia：目前没有指派给其本人或由其认领的待办。"), "{}", hers.text);

    // Once she holds one, it is in dora's inbox and the notice says that.
    let (_, task) = api.order_at_manager("20000.00", "sam").await;
    api.post_empty(&format!("/v1/tasks/{task}/claim"), "mia").await.expect(StatusCode::OK);
    let inbox = page(&api, Method::GET, "/inbox", &dora, None).await;
    assert!(inbox.text.contains(&task), "{}", inbox.text);
    assert!(inbox.text.contains("Today you stand in for mia: their tasks are in your inbox."), "{}", inbox.text);
    let zh = page(&api, Method::GET, "/inbox?lang=zh-CN", &dora, None).await;
    assert!(zh.text.contains("今天您代理 mia：其任务已在您的待办中。"), "{}", zh.text);

    // mia's inbox and her away page name the same last day away, 9 January.
    let inbox = page(&api, Method::GET, "/inbox", &mia, None).await;
    assert!(
        inbox.text.contains("You are away to 2026-01-09, your last day away: dora decides the tasks assigned to you."),
        "{}",
        inbox.text
    );
    let away = page(&api, Method::GET, "/away", &mia, None).await;
    assert!(away.text.contains("From 2026-01-05 to 2026-01-09 (Asia/Shanghai)"), "{}", away.text);
    let zh = page(&api, Method::GET, "/inbox?lang=zh-CN", &mia, None).await;
    assert!(zh.text.contains("您正在外出，至 2026-01-09（外出末日）：指派给您的任务由 dora 代为办理。"), "{}", zh.text);
    let away = page(&api, Method::GET, "/away?lang=zh-CN", &mia, None).await;
    assert!(away.text.contains("2026-01-05 至 2026-01-09（北京时间）"), "{}", away.text);
}

#[tokio::test]
async fn the_case_list_shows_an_order_once_and_its_called_processes_under_it() {
    let Some(api) = Api::new().await else { return };
    let id = order_to_cash(&api, "50000.00").await;
    api.pass_credit_check().await;
    let approval = called(&api, &id, "order_approval").await;
    let sam = sign_in(&api, "sam").await;
    let list = page(&api, Method::GET, "/cases?lang=en", &sam, None).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert!(list.text.contains(&format!("<a href=\"/cases/{id}\">SO-1</a>")), "{}", list.text);
    assert!(!list.text.contains(&format!("/cases/{approval}\"")), "the approval is on its order's page: {}", list.text);
    assert!(list.text.contains("<th>Started</th>"), "{}", list.text);
    // Narrowed to the approvals, it is listed.
    let approvals = page(&api, Method::GET, "/cases?process=order_approval", &sam, None).await;
    assert!(approvals.text.contains(&format!("/cases/{approval}\"")), "{}", approvals.text);
    // A credit controller, who may read the approval but not the order, finds the approval.
    let cora = sign_in(&api, "cora").await;
    let hers = page(&api, Method::GET, "/cases", &cora, None).await;
    assert!(hers.text.contains(&format!("/cases/{approval}\"")), "{}", hers.text);
    assert!(!hers.text.contains(&format!("/cases/{id}\"")), "{}", hers.text);
}

#[tokio::test]
async fn a_message_received_reads_as_the_step_that_waited_for_it() {
    let Some(api) = Api::new().await else { return };
    let id = order_to_cash(&api, "500.00").await;
    api.pass_credit_check().await;
    let ship = called(&api, &id, "ship_then_invoice").await;
    let body = json!({"name": "shipment.dispatched", "correlation_key": "SO-1", "variables": {"shipment_id": "SH-1"}});
    let sent = api.post("/v1/messages", "ada", body).await;
    assert!(sent.status.is_success(), "{}", sent.text);
    let sam = sign_in(&api, "sam").await;
    let zh = page(&api, Method::GET, &format!("/cases/{ship}?lang=zh-CN"), &sam, None).await;
    let history = zh.text.split("id=\"history\"").nth(1).unwrap_or_else(|| panic!("no history: {}", zh.text));
    assert!(history.contains("收到消息"), "{history}");
    assert!(!history.contains("shipment.dispatched"), "the message's technical name: {history}");
}
