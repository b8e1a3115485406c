//! The pages' refusals and form errors in the reader's language.

use axum::http::{Method, StatusCode, header};

use crate::harness::{Answer, Api};
use crate::web::{hidden, page, sign_in};

/// The sentence an error page shows.
#[track_caller]
fn notice(answer: &Answer) -> &str {
    let marker = "<p class=\"notice\" role=\"alert\">";
    let start = answer.text.find(marker).unwrap_or_else(|| panic!("no notice:\n{}", answer.text)) + marker.len();
    answer.text[start..].split("</p>").next().unwrap()
}

/// The refusal a task page shows above its form.
#[track_caller]
fn problem(answer: &Answer) -> &str {
    let marker = "id=\"problem\">";
    let start = answer.text.find(marker).unwrap_or_else(|| panic!("no problem:\n{}", answer.text)) + marker.len();
    answer.text[start..].split("</div>").next().unwrap()
}

/// `path` in `lang`.
fn with_lang(path: &str, lang: &str) -> String {
    let joint = if path.contains('?') { '&' } else { '?' };
    format!("{path}{joint}lang={lang}")
}

/// Posts `form` (the CSRF token added) to a task's `action` as the holder of `session`.
async fn act(api: &Api, session: &str, task: &str, action: &str, form: &str, lang: &str) -> Answer {
    let page_now = page(api, Method::GET, &format!("/tasks/{task}"), session, None).await;
    let csrf = hidden(&page_now.text, "csrf");
    let body = format!("csrf={csrf}{form}");
    page(api, Method::POST, &with_lang(&format!("/tasks/{task}/{action}"), lang), session, Some(&body)).await
}

/// An order `entered_by` enters for `requester`, past its credit check: the task at the manager.
async fn order_for(api: &Api, entered_by: &str, requester: &str, amount: &str) -> String {
    let id = api.order_entered_by(entered_by, requester, amount).await;
    api.pass_credit_check().await;
    let tasks = api.engine.tasks(Some(&id.as_str().into())).await.unwrap();
    tasks[0].id.0.clone()
}

#[tokio::test]
async fn a_page_refused_for_want_of_a_role_names_the_roles_by_title() {
    let Some(api) = Api::new().await else { return };
    let sam = sign_in(&api, "sam").await;
    let zh = page(&api, Method::GET, "/board?lang=zh-CN", &sam, None).await;
    assert_eq!(zh.status, StatusCode::FORBIDDEN);
    assert!(zh.text.contains("<h1>无权访问</h1>"), "{}", zh.text);
    assert_eq!(notice(&zh), "您无权查看财务报表：仅限管理员、审计员、财务主管或财务总监。");
    let en = page(&api, Method::GET, "/board?lang=en", &sam, None).await;
    assert_eq!(
        notice(&en),
        "You may not read the finance reports: that needs one of the roles Administrator, Auditor, \
         Finance controller or Chief financial officer."
    );
    for answer in [&zh, &en] {
        assert!(!answer.text.contains("finance.cfo") && !answer.text.contains('`'), "{}", answer.text);
    }
}

#[tokio::test]
async fn a_task_or_case_out_of_reach_or_missing_is_a_sentence_in_the_readers_language() {
    let Some(api) = Api::new().await else { return };
    let (id, task) = api.order_at_manager("20000.00", "sam").await;
    // Not offered to the rep: the role it is offered to, by its title.
    let sam = sign_in(&api, "sam").await;
    let zh = page(&api, Method::GET, &format!("/tasks/{task}?lang=zh-CN"), &sam, None).await;
    assert_eq!(zh.status, StatusCode::FORBIDDEN);
    assert_eq!(notice(&zh), "此任务未分配给您：它只交由销售经理办理，而您不具备该角色。");
    let en = page(&api, Method::GET, &format!("/tasks/{task}?lang=en"), &sam, None).await;
    assert_eq!(
        notice(&en),
        "This task is not offered to you: it waits for the role Sales manager, which you do not hold."
    );
    // A case the logistics coordinator takes no part in.
    let lou = sign_in(&api, "lou").await;
    let zh = page(&api, Method::GET, &format!("/cases/{id}?lang=zh-CN"), &lou, None).await;
    assert_eq!(zh.status, StatusCode::FORBIDDEN);
    assert!(notice(&zh).starts_with("您无权查看此案例："), "{}", zh.text);
    let en = page(&api, Method::GET, &format!("/cases/{id}?lang=en"), &lou, None).await;
    assert!(notice(&en).starts_with("You may not see this case:"), "{}", en.text);
    // Nothing under that name: which kind of thing is missing.
    let ada = sign_in(&api, "ada").await;
    for (path, zh_text, en_text) in [
        ("/cases/i-nope", "找不到案例 i-nope。", "There is no case i-nope."),
        ("/tasks/t-nope", "找不到任务 t-nope。", "There is no task t-nope."),
    ] {
        let zh = page(&api, Method::GET, &with_lang(path, "zh-CN"), &ada, None).await;
        assert_eq!(zh.status, StatusCode::NOT_FOUND, "{path}: {}", zh.text);
        assert!(zh.text.contains("<h1>未找到</h1>"), "{}", zh.text);
        assert_eq!(notice(&zh), zh_text, "{path}");
        let en = page(&api, Method::GET, &with_lang(path, "en"), &ada, None).await;
        assert_eq!(notice(&en), en_text, "{path}");
    }
    // A finance reader on a server without the sub-ledger.
    let carl = sign_in(&api, "carl").await;
    let zh = page(&api, Method::GET, "/board/receivables?lang=zh-CN", &carl, None).await;
    assert_eq!(zh.status, StatusCode::NOT_FOUND, "{}", zh.text);
    assert_eq!(notice(&zh), "本服务器未启用财务子账，没有财务数据和客户函件。");
}

#[tokio::test]
async fn a_form_that_does_not_fit_is_told_by_its_labels() {
    let Some(api) = Api::new().await else { return };
    let (_, task) = api.order_at_manager("20000.00", "sam").await;
    let mia = sign_in(&api, "mia").await;
    let zh = act(&api, &mia, &task, "complete", "", "zh-CN").await;
    assert_eq!(zh.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem(&zh), "请修改表单<ul><li data-field=\"approve\">是否批准：必填</li></ul>");
    // In English too, the field is named as the form above it labels it.
    let form = page(&api, Method::GET, &format!("/tasks/{task}?lang=en"), &mia, None).await;
    let start = form.text.find("<legend>").unwrap() + "<legend>".len();
    let legend = form.text[start..].split('<').next().unwrap().to_string();
    // The yes/no field is asked as a question above its options, and named without its mark.
    assert_eq!(legend, "Approve?");
    assert!(form.text.contains("> Approve</label>") && form.text.contains("> Reject</label>"), "{}", form.text);
    let label = legend.trim_end_matches('?');
    let en = act(&api, &mia, &task, "complete", "", "en").await;
    assert_eq!(
        problem(&en),
        format!("Please correct the form<ul><li data-field=\"approve\">{label}: required</li></ul>")
    );
}

#[tokio::test]
async fn separation_of_duties_says_who_may_not_decide() {
    let Some(api) = Api::new().await else { return };
    // mia enters the order for sam: she may not approve it either.
    let task = order_for(&api, "mia", "sam", "24500.00").await;
    let mia = sign_in(&api, "mia").await;
    let zh = act(&api, &mia, &task, "complete", "&f.approve=true", "zh-CN").await;
    assert_eq!(zh.status, StatusCode::FORBIDDEN, "{}", zh.text);
    assert_eq!(problem(&zh), "您不能处理此任务：按流程规定，申请人本人及代其提交申请的人不得审批此任务。");
    let en = act(&api, &mia, &task, "complete", "&f.approve=true", "en").await;
    assert_eq!(
        problem(&en),
        "You may not decide this task: here the process requires someone other than the requester or \
         whoever entered the request for them."
    );
    for answer in [&zh, &en] {
        assert!(!problem(answer).contains("not by") && !problem(answer).contains("requested_by"), "{}", answer.text);
    }
    // Handed to the requester's own manager colleague: the refusal names the one refused.
    let task = order_for(&api, "max", "max", "24500.00").await;
    let zh = act(&api, &mia, &task, "delegate", "&to=max", "zh-CN").await;
    assert_eq!(zh.status, StatusCode::FORBIDDEN, "{}", zh.text);
    assert_eq!(problem(&zh), "max 不能处理此任务：按流程规定，申请人本人及代其提交申请的人不得审批此任务。");
}

#[tokio::test]
async fn a_task_page_tells_someone_barred_at_once_and_offers_no_form() {
    let Some(api) = Api::new().await else { return };
    // mia enters the order for sam: the task is offered to her role, but she may not decide it.
    let task = order_for(&api, "mia", "sam", "24500.00").await;
    let mia = sign_in(&api, "mia").await;
    let zh = page(&api, Method::GET, &format!("/tasks/{task}?lang=zh-CN"), &mia, None).await;
    assert_eq!(zh.status, StatusCode::OK, "{}", zh.text);
    assert_eq!(problem(&zh), "您不能处理此任务：按流程规定，申请人本人及代其提交申请的人不得审批此任务。");
    for form in ["/complete\"", "/claim\"", "/delegate\""] {
        assert!(!zh.text.contains(form), "no `{form}` form for her: {}", zh.text);
    }
    // Her inbox says so beside the task, and lists it after the tasks she may decide.
    let (_, hers) = api.order_at_manager("20000.00", "sam").await;
    let inbox = page(&api, Method::GET, "/inbox?lang=zh-CN", &mia, None).await;
    let barred_row = inbox.text.find(&format!("href=\"/tasks/{task}\"")).unwrap();
    let her_row = inbox.text.find(&format!("href=\"/tasks/{hers}\"")).unwrap();
    assert!(her_row < barred_row, "the task she may decide first: {}", inbox.text);
    assert_eq!(inbox.text.matches("data-barred").count(), 1, "{}", inbox.text);
    assert!(inbox.text[barred_row..].contains("按职责分离规定，您不能审批此任务"), "{}", inbox.text);
    // Another manager gets the form, with no refusal.
    let max = sign_in(&api, "max").await;
    let en = page(&api, Method::GET, &format!("/tasks/{task}?lang=en"), &max, None).await;
    assert!(en.text.contains("/complete\"") && !en.text.contains("id=\"problem\""), "{}", en.text);
    let inbox = page(&api, Method::GET, "/inbox?lang=en", &max, None).await;
    assert!(!inbox.text.contains("data-barred"), "{}", inbox.text);
}

#[tokio::test]
async fn a_refused_delegation_reads_as_a_sentence() {
    let Some(api) = Api::new().await else { return };
    let (_, task) = api.order_at_manager("20000.00", "sam").await;
    let mia = sign_in(&api, "mia").await;
    // Nobody of that name.
    let zh = act(&api, &mia, &task, "delegate", "&to=bob", "zh-CN").await;
    assert_eq!(zh.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", zh.text);
    assert_eq!(problem(&zh), "“bob”不是本系统的用户：请填写同事的用户名。");
    let en = act(&api, &mia, &task, "delegate", "&to=bob", "en").await;
    assert_eq!(problem(&en), "“bob” is not a user of this server: give a colleague&#39;s user name.");
    // Someone without the task's role.
    let zh = act(&api, &mia, &task, "delegate", "&to=dora", "zh-CN").await;
    assert_eq!(zh.status, StatusCode::FORBIDDEN, "{}", zh.text);
    assert_eq!(problem(&zh), "不能将此任务转交给 dora：它只交由销售经理办理，而 dora 不具备该角色。");
    let en = act(&api, &mia, &task, "delegate", "&to=dora", "en").await;
    assert_eq!(
        problem(&en),
        "The task cannot be delegated to dora: it is offered to Sales manager, which they do not hold."
    );
}

#[tokio::test]
async fn the_task_page_names_its_process_by_title() {
    let Some(api) = Api::new().await else { return };
    let (_, task) = api.order_at_manager("20000.00", "sam").await;
    let mia = sign_in(&api, "mia").await;
    let zh = page(&api, Method::GET, &format!("/tasks/{task}?lang=zh-CN"), &mia, None).await;
    assert!(zh.text.contains("<p class=\"muted\">订单审批 · <a href=\"/cases/"), "{}", zh.text);
    let en = page(&api, Method::GET, &format!("/tasks/{task}?lang=en"), &mia, None).await;
    assert!(en.text.contains("<p class=\"muted\">Order approval · <a href=\"/cases/"), "{}", en.text);
    assert!(!en.text.contains("order_approval ·") && !zh.text.contains("order_approval ·"));
}

#[tokio::test]
async fn the_inbox_confirms_a_decision_and_a_delegation() {
    let Some(api) = Api::new().await else { return };
    let (_, first) = api.order_at_manager("20000.00", "sam").await;
    let (_, second) = api.order_at_manager("30000.00", "sam").await;
    let mia = sign_in(&api, "mia").await;
    let decided = act(&api, &mia, &first, "complete", "&f.approve=true", "en").await;
    assert_eq!(decided.status, StatusCode::SEE_OTHER, "{}", decided.text);
    let to = decided.headers[header::LOCATION].to_str().unwrap().to_string();
    let zh = page(&api, Method::GET, &with_lang(&to, "zh-CN"), &mia, None).await;
    assert!(
        zh.text.contains("<p class=\"notice\" role=\"status\" id=\"done\">已完成：任务已提交。</p>"),
        "{}",
        zh.text
    );
    let en = page(&api, Method::GET, &with_lang(&to, "en"), &mia, None).await;
    assert!(en.text.contains("id=\"done\">Done: the task is completed.</p>"), "{}", en.text);
    let delegated = act(&api, &mia, &second, "delegate", "&to=max", "en").await;
    assert_eq!(delegated.status, StatusCode::SEE_OTHER, "{}", delegated.text);
    let to = delegated.headers[header::LOCATION].to_str().unwrap().to_string();
    let zh = page(&api, Method::GET, &with_lang(&to, "zh-CN"), &mia, None).await;
    assert!(zh.text.contains("id=\"done\">已转交：任务已交由他人办理。</p>"), "{}", zh.text);
    let en = page(&api, Method::GET, &with_lang(&to, "en"), &mia, None).await;
    assert!(en.text.contains("id=\"done\">Done: the task was handed on.</p>"), "{}", en.text);
    // Without the parameter, no notice.
    let plain = page(&api, Method::GET, "/inbox", &mia, None).await;
    assert!(!plain.text.contains("id=\"done\""), "{}", plain.text);
}

#[tokio::test]
async fn a_refusal_names_a_role_by_the_title_its_deployed_roles_block_gives() {
    let Some(api) = Api::new().await else { return };
    let source = "roles {\n  qa.tester \"Quality tester\" zh \"质检员\"\n}\n\
        process qa_check \"QA check\" {\n  access {\n    start by sales.rep\n  }\n  input {\n    order_id: text\n  }\n\
        \x20 start -> inspect\n  approval inspect \"Inspect {order_id}\" {\n    role qa.tester\n    form { ok: bool }\n  } -> done\n\
        \x20 end done \"Done\"\n}\n";
    let deployed =
        api.raw(Method::POST, "/v1/definitions?filename=qa.flow", Some("ada"), Some(source), "text/plain").await;
    assert_eq!(deployed.status, StatusCode::CREATED, "{}", deployed.text);
    let body = serde_json::json!({"process": "qa_check", "variables": {"order_id": "SO-7"}});
    let id =
        api.post("/v1/instances", "sam", body).await.expect(StatusCode::CREATED)["id"].as_str().unwrap().to_string();
    let task = api.engine.tasks(Some(&id.as_str().into())).await.unwrap()[0].id.0.clone();
    let sam = sign_in(&api, "sam").await;
    let zh = page(&api, Method::GET, &format!("/tasks/{task}?lang=zh-CN"), &sam, None).await;
    assert_eq!(zh.status, StatusCode::FORBIDDEN);
    assert_eq!(notice(&zh), "此任务未分配给您：它只交由质检员办理，而您不具备该角色。");
    let en = page(&api, Method::GET, &format!("/tasks/{task}?lang=en"), &sam, None).await;
    assert_eq!(
        notice(&en),
        "This task is not offered to you: it waits for the role Quality tester, which you do not hold."
    );
    assert!(!en.text.contains("qa.tester") && !zh.text.contains("qa.tester"), "{}", en.text);
}

/// A process whose approval asks the manager for a day.
const PROMISE: &str = "process promise \"Promise\" {\n  input { order_id: text }\n  start -> agree\n  \
approval agree \"Agree a delivery day for {order_id}\" {\n    role sales.manager\n    form { delivery: date }\n  } -> done\n  \
end done \"Done\"\n}\n";

#[tokio::test]
async fn a_day_is_asked_for_in_one_written_form_and_read_as_people_type_it() {
    let Some(api) = Api::new().await else { return };
    let roles = crate::harness::reference_file("roles.flow");
    api.engine.deploy(&[("roles.flow", roles.as_str()), ("promise.flow", PROMISE)]).await.unwrap();
    let engine = &api.engine;
    let start = |order: &'static str| async move {
        let id = engine.start("promise", None, serde_json::json!({"order_id": order})).await.unwrap();
        (id.clone(), engine.tasks(Some(&id)).await.unwrap()[0].id.0.clone())
    };
    let mia = sign_in(&api, "mia").await;
    let (first, task) = start("SO-1").await;
    // A text field with the form it wants as its hint, in either language: a browser's own date
    // field would show the day in the browser's locale (12/06/2026) on a Chinese page.
    let zh = page(&api, Method::GET, &format!("/tasks/{task}?lang=zh-CN"), &mia, None).await;
    assert!(
        zh.text.contains("<input id=\"delivery\" name=\"f.delivery\" value=\"\" placeholder=\"年-月-日\""),
        "{}",
        zh.text
    );
    assert!(!zh.text.contains("type=\"date\""), "{}", zh.text);
    let en = page(&api, Method::GET, &format!("/tasks/{task}?lang=en"), &mia, None).await;
    assert!(en.text.contains("placeholder=\"YYYY-MM-DD\" size=\"12\" maxlength=\"20\" autocomplete=\"off\" spellcheck=\"false\" required>"), "{}", en.text);

    // Refused: a day written day-first, which could be read two ways; nothing decided.
    let refused = act(&api, &mia, &task, "complete", "&f.delivery=06%2F12%2F2026", "en").await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.text);
    assert!(problem(&refused).contains("Delivery"), "{}", problem(&refused));
    assert_eq!(api.status(first.as_str()).await["status"], "running");

    // Read: 2026年12月6日 is the 6th of December, as is ２０２６/12/6 in full-width digits.
    let decided = act(&api, &mia, &task, "complete", "&f.delivery=2026%E5%B9%B412%E6%9C%886%E6%97%A5", "zh-CN").await;
    assert_eq!(decided.status, StatusCode::SEE_OTHER, "{}", decided.text);
    let (second, other) = start("SO-2").await;
    let full_width = "%EF%BC%92%EF%BC%90%EF%BC%92%EF%BC%96%2F12%2F6";
    let decided = act(&api, &mia, &other, "complete", &format!("&f.delivery={full_width}"), "en").await;
    assert_eq!(decided.status, StatusCode::SEE_OTHER, "{}", decided.text);
    for id in [first, second] {
        let answer = api.get(&format!("/v1/instances/{}", id.as_str()), "ada").await;
        let instance = answer.expect(StatusCode::OK);
        assert_eq!(instance["status"], "completed", "{instance}");
        assert_eq!(instance["variables"]["delivery"], "2026-12-06", "{instance}");
    }
}
