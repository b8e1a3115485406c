//! The pages through the router: sessions, sign-in with a token or a password (and the brake on
//! guessing one), CSRF, security headers, and bad input of every kind (a missing or forged CSRF
//! token, a forged or expired session, a stale form, a tampered form) answered with a clear page
//! and nothing half-written. `tests/browser.rs` drives them in Chromium.

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};

use chrono::TimeDelta;

use crate::harness::{Answer, Api, MIA_PASSWORD, token, visible};

/// The `name=value` of a `Set-Cookie` header named `name`.
fn set_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_string())
}

/// The value of hidden input `name` on a page.
pub fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker).unwrap_or_else(|| panic!("no `{name}` on the page:\n{page}")) + marker.len();
    page[start..].split('"').next().unwrap().to_string()
}

/// A page request with `cookies` and, for a POST, a form body.
pub async fn page(api: &Api, method: Method, path: &str, cookies: &str, form: Option<&str>) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    if !cookies.is_empty() {
        request = request.header(header::COOKIE, cookies);
    }
    if form.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    api.send(request.body(Body::from(form.unwrap_or_default().to_string())).unwrap()).await
}

/// The sign-in page's nonce: the cookie to send back, and the value its forms carry.
async fn login_nonce(api: &Api) -> (String, String) {
    let form = page(api, Method::GET, "/login", "", None).await;
    let nonce_cookie = set_cookie(&form.headers, "clv_login").expect("the form sets its nonce");
    (nonce_cookie, hidden(&form.text, "csrf"))
}

/// The session cookie a sign-in answered with, checked to be one: off to the inbox, HttpOnly,
/// SameSite=Strict, and the sign-in nonce spent.
#[track_caller]
fn session_of(signed: &Answer) -> String {
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.text);
    assert_eq!(signed.headers[header::LOCATION], "/inbox");
    let session = set_cookie(&signed.headers, "clv_session").expect("a session cookie");
    let raw =
        signed.headers.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_string()).collect::<Vec<_>>();
    let session_header = raw.iter().find(|v| v.starts_with("clv_session=")).unwrap();
    assert!(session_header.contains("HttpOnly") && session_header.contains("SameSite=Strict"), "{session_header}");
    assert!(raw.iter().any(|v| v.starts_with("clv_login=;") && v.contains("Max-Age=0")), "{raw:?}");
    session
}

/// Signs `user` in through the token form; the session cookie.
pub async fn sign_in(api: &Api, user: &str) -> String {
    let (nonce_cookie, nonce) = login_nonce(api).await;
    let body = format!("token={}&csrf={nonce}", token(user));
    session_of(&page(api, Method::POST, "/login", &nonce_cookie, Some(&body)).await)
}

/// Posts the password form as `user` with `password` (and `extra` fields); the answer.
async fn password_sign_in(api: &Api, user: &str, password: &str, extra: &str) -> Answer {
    let (nonce_cookie, nonce) = login_nonce(api).await;
    let body = format!("user={}&password={}&csrf={nonce}{extra}", form_value(user), form_value(password));
    page(api, Method::POST, "/login", &nonce_cookie, Some(&body)).await
}

/// The sentence a sign-in page shows at its top.
#[track_caller]
fn notice(answer: &Answer) -> &str {
    let marker = "<p class=\"notice\" role=\"alert\">";
    let start = answer.text.find(marker).unwrap_or_else(|| panic!("no notice:\n{}", answer.text)) + marker.len();
    answer.text[start..].split("</p>").next().unwrap()
}

#[tokio::test]
async fn pages_need_a_session_and_answer_with_a_strict_policy() {
    let Some(api) = Api::new().await else { return };
    let inbox = page(&api, Method::GET, "/inbox", "", None).await;
    assert_eq!(inbox.status, StatusCode::SEE_OTHER);
    assert_eq!(inbox.headers[header::LOCATION], "/login");
    let login = page(&api, Method::GET, "/login", "", None).await;
    assert_eq!(login.status, StatusCode::OK);
    let policy = login.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(policy.contains("default-src 'none'") && !policy.contains("unsafe"), "{policy}");
    assert!(!login.text.contains("<script"), "no script on the pages");
    // The API still wants its bearer token: a page's path is no way around it.
    api.call(Method::GET, "/v1/instances", None, None).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn a_wrong_token_or_a_forged_sign_in_gives_no_session() {
    let Some(api) = Api::new().await else { return };
    let form = page(&api, Method::GET, "/login", "", None).await;
    let nonce_cookie = set_cookie(&form.headers, "clv_login").unwrap();
    let nonce = hidden(&form.text, "csrf");
    let wrong = page(&api, Method::POST, "/login", &nonce_cookie, Some(&format!("token=nope&csrf={nonce}"))).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.text.contains("That token is not valid") && set_cookie(&wrong.headers, "clv_session").is_none());
    // A sign-in posted from elsewhere carries no nonce cookie.
    let forged = page(&api, Method::POST, "/login", "", Some(&format!("token={}&csrf={nonce}", token("mia")))).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(set_cookie(&forged.headers, "clv_session").is_none());
}

#[tokio::test]
async fn the_sign_in_page_offers_a_password_and_a_token_in_both_languages() {
    let Some(api) = Api::new().await else { return };
    let login = page(&api, Method::GET, "/login", "", None).await;
    for id in ["user", "password", "sign-in-password", "token", "sign-in"] {
        assert!(login.text.contains(&format!("id=\"{id}\"")), "#{id} on the page: {}", login.text);
    }
    assert_eq!(login.text.matches("<form method=\"post\" action=\"/login\">").count(), 2, "{}", login.text);
    assert_eq!(login.text.matches("name=\"csrf\"").count(), 2, "each form carries the nonce: {}", login.text);
    assert!(login.text.contains("User name") && login.text.contains("Access token"), "{}", login.text);
    assert!(!login.text.contains("<script"), "no script on the pages");
    let zh = page(&api, Method::GET, "/login?lang=zh-CN", "", None).await;
    assert!(zh.text.contains("用户名") && zh.text.contains("密码") && zh.text.contains("访问令牌"), "{}", zh.text);
}

#[tokio::test]
async fn a_password_signs_in_with_the_same_session_as_a_token() {
    let Some(api) = Api::new().await else { return };
    // The name in any spelling of it; the password exactly.
    let signed = password_sign_in(&api, " Mia ", MIA_PASSWORD, "").await;
    let session = session_of(&signed);
    assert!(session.starts_with("clv_session=mia:"), "{session}");
    let by_token = sign_in(&api, "mia").await;
    assert_eq!(session.split(':').count(), by_token.split(':').count(), "{session} / {by_token}");
    let inbox = page(&api, Method::GET, "/inbox", &session, None).await;
    assert_eq!(inbox.status, StatusCode::OK, "{}", inbox.text);
    assert!(inbox.text.contains("Signed in as") && inbox.text.contains("mia"), "{}", inbox.text);
}

#[tokio::test]
async fn a_wrong_password_an_unknown_user_or_a_forged_sign_in_gives_no_session() {
    let Some(api) = Api::new().await else { return };
    let wrong = password_sign_in(&api, "mia", "not her password", "").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.text);
    assert!(set_cookie(&wrong.headers, "clv_session").is_none());
    assert_eq!(notice(&wrong), "That user name and password do not match. Check them and try again.");
    assert!(wrong.text.contains("value=\"mia\""), "the name is kept for the next try: {}", wrong.text);
    assert!(!wrong.text.contains("not her password"), "the password is not: {}", wrong.text);
    // A name nobody has, and a user without a password, are told the very same thing.
    for (user, password) in [("nobody", MIA_PASSWORD), ("sam", "token-sam"), ("not a name!", MIA_PASSWORD)] {
        let refused = password_sign_in(&api, user, password, "").await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{user}: {}", refused.text);
        assert!(set_cookie(&refused.headers, "clv_session").is_none(), "{user}");
        assert_eq!(notice(&refused), notice(&wrong), "{user}");
    }
    // The right password posted from elsewhere: no nonce cookie, no nonce, or another nonce.
    let (nonce_cookie, nonce) = login_nonce(&api).await;
    let right = format!("user=mia&password={}", form_value(MIA_PASSWORD));
    for (cookies, body) in [
        ("", format!("{right}&csrf={nonce}")),
        (nonce_cookie.as_str(), right.clone()),
        (nonce_cookie.as_str(), format!("{right}&csrf=0123456789abcdef0123456789abcdef")),
    ] {
        let forged = page(&api, Method::POST, "/login", cookies, Some(&body)).await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN, "{cookies} {body}: {}", forged.text);
        assert!(set_cookie(&forged.headers, "clv_session").is_none());
        assert!(notice(&forged).contains("The form was too old or came from elsewhere"), "{}", forged.text);
    }
}

#[tokio::test]
async fn five_wrong_passwords_pause_the_name_until_the_window_is_over() {
    let Some(api) = Api::new().await else { return };
    for attempt in 1..=5 {
        let wrong = password_sign_in(&api, "mia", "guess", "").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "attempt {attempt}: {}", wrong.text);
    }
    // Now even the right password is not checked, and the page says why, in either language.
    let paused = password_sign_in(&api, "mia", MIA_PASSWORD, "").await;
    assert_eq!(paused.status, StatusCode::TOO_MANY_REQUESTS, "{}", paused.text);
    assert!(set_cookie(&paused.headers, "clv_session").is_none());
    assert!(notice(&paused).starts_with("Too many failed sign-ins for this user name."), "{}", paused.text);
    let zh = password_sign_in(&api, "MIA", MIA_PASSWORD, "&lang=zh-CN").await;
    assert_eq!(zh.status, StatusCode::TOO_MANY_REQUESTS, "{}", zh.text);
    assert!(notice(&zh).starts_with("该用户名登录失败次数过多"), "{}", zh.text);
    // Her token still lets her in meanwhile.
    sign_in(&api, "mia").await;
    // A name nobody has is paused alike: the brake tells nothing of who exists.
    for _ in 1..=5 {
        assert_eq!(password_sign_in(&api, "nobody", "guess", "").await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(password_sign_in(&api, "nobody", "guess", "").await.status, StatusCode::TOO_MANY_REQUESTS);
    // Fifteen minutes after the fifth failure, the name may try again.
    api.advance(TimeDelta::minutes(14));
    let still = password_sign_in(&api, "mia", MIA_PASSWORD, "").await;
    assert_eq!(still.status, StatusCode::TOO_MANY_REQUESTS, "{}", still.text);
    api.advance(TimeDelta::minutes(1));
    let session = session_of(&password_sign_in(&api, "mia", MIA_PASSWORD, "").await);
    assert_eq!(page(&api, Method::GET, "/inbox", &session, None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_forged_session_is_sent_back_to_sign_in() {
    let Some(api) = Api::new().await else { return };
    let session = sign_in(&api, "sam").await;
    // The same cookie with another name in it no longer matches its signature.
    let forged = session.replacen("clv_session=sam:", "clv_session=ada:", 1);
    let answer = page(&api, Method::GET, "/ops", &forged, None).await;
    assert_eq!((answer.status, answer.headers[header::LOCATION].to_str().unwrap()), (StatusCode::SEE_OTHER, "/login"));
    // The real one is sam's, and operations are not his.
    let ops = page(&api, Method::GET, "/ops", &session, None).await;
    assert_eq!(ops.status, StatusCode::FORBIDDEN);
    assert!(ops.text.contains("Not allowed"), "{}", ops.text);
}

#[tokio::test]
async fn a_decision_without_its_csrf_token_changes_nothing() {
    let Some(api) = Api::new().await else { return };
    let (id, task) = api.order_at_manager("20000.00", "sam").await;
    let session = sign_in(&api, "mia").await;
    let path = format!("/tasks/{task}/complete");
    let missing = page(&api, Method::POST, &path, &session, Some("f.approve=true")).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    assert!(missing.text.contains("The form was too old or came from elsewhere"), "{}", missing.text);
    let forged = page(&api, Method::POST, &path, &session, Some("f.approve=true&csrf=0000")).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(api.status(&id).await["status"], "running", "nothing was decided");
    // With the token from her own page the decision goes through.
    let task_page = page(&api, Method::GET, &format!("/tasks/{task}"), &session, None).await;
    let csrf = hidden(&task_page.text, "csrf");
    let done = page(&api, Method::POST, &path, &session, Some(&format!("f.approve=true&csrf={csrf}"))).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    // A form sent again after the task closed (a second tab, a double click) is a clear page.
    let stale = page(&api, Method::POST, &path, &session, Some(&format!("f.approve=false&csrf={csrf}"))).await;
    assert!(stale.status.is_client_error(), "{}", stale.status);
    assert!(stale.text.contains("completed or withdrawn") || stale.text.contains("Not found"), "{}", stale.text);
    assert!(!stale.text.contains("internal"), "{}", stale.text);
}

#[tokio::test]
async fn a_tampered_form_is_refused_field_by_field() {
    let Some(api) = Api::new().await else { return };
    let (id, task) = api.order_at_manager("20000.00", "sam").await;
    let session = sign_in(&api, "mia").await;
    let task_page = page(&api, Method::GET, &format!("/tasks/{task}"), &session, None).await;
    assert!(task_page.text.contains("CNY 20,000.00"), "the amount is on the task: {}", task_page.text);
    let csrf = hidden(&task_page.text, "csrf");
    // No decision at all: the form says which field is missing.
    let empty =
        page(&api, Method::POST, &format!("/tasks/{task}/complete"), &session, Some(&format!("csrf={csrf}"))).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        empty.text.contains("Please correct the form") && empty.text.contains("Approve: required"),
        "{}",
        empty.text
    );
    assert_eq!(api.status(&id).await["status"], "running");
    // A sales rep's own order: the page says so in words, the code is not shown.
    let rep = sign_in(&api, "sam").await;
    let not_his = page(&api, Method::GET, &format!("/tasks/{task}"), &rep, None).await;
    assert_eq!(not_his.status, StatusCode::FORBIDDEN);
    assert!(!not_his.text.contains("not_candidate"), "{}", not_his.text);
}

#[tokio::test]
async fn a_refused_task_page_does_not_name_its_assignee() {
    let Some(api) = Api::new().await else { return };
    let (_, task) = api.order_at_manager("20000.00", "sam").await;
    api.post(&format!("/v1/tasks/{task}/delegate"), "mia", serde_json::json!({"to": "max"}))
        .await
        .expect(StatusCode::OK);
    let cora = sign_in(&api, "cora").await;
    for (lang, words) in [("en", "it is assigned to someone else"), ("zh-CN", "它已指派给他人")] {
        let refused = page(&api, Method::GET, &format!("/tasks/{task}?lang={lang}"), &cora, None).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(refused.text.contains(words), "{}", refused.text);
        assert!(!refused.text.contains("max"), "the refusal names the assignee: {}", refused.text);
    }
    let max = sign_in(&api, "max").await;
    let his = page(&api, Method::GET, &format!("/tasks/{task}"), &max, None).await;
    assert_eq!(his.status, StatusCode::OK, "{}", his.text);
}

#[tokio::test]
async fn the_pages_speak_chinese_when_asked() {
    let Some(api) = Api::new().await else { return };
    api.order_at_manager("24500.00", "sam").await;
    let session = sign_in(&api, "mia").await;
    let inbox = page(&api, Method::GET, "/inbox?lang=zh-CN", &session, None).await;
    assert_eq!(inbox.status, StatusCode::OK);
    assert!(inbox.text.contains("<html lang=\"zh-CN\">") && inbox.text.contains("待办"), "{}", inbox.text);
    assert!(inbox.text.contains("¥24,500.00") && inbox.text.contains("金额"), "{}", inbox.text);
    assert!(inbox.text.contains("（北京时间）") && !inbox.text.contains("Asia/Shanghai"), "{}", inbox.text);
    // The due time may break after the day, never inside the hour and its zone.
    assert!(inbox.text.contains("（北京时间）</span></td>"), "{}", inbox.text);
    assert_eq!(set_cookie(&inbox.headers, "clv_lang").as_deref(), Some("clv_lang=zh-CN"));
    // The task is titled as the process words it in Chinese, on the order's own values; the
    // English title stays for English readers.
    assert!(inbox.text.contains(">审批订单 <span class=\"nowrap\">SO-1</span></a>"), "{}", inbox.text);
    assert!(!inbox.text.contains("Approve order"), "{}", inbox.text);
    let marker = "href=\"/tasks/";
    let start = inbox.text.find(marker).unwrap() + "href=\"".len();
    let task_path = inbox.text[start..].split('"').next().unwrap().to_string();
    let task = page(&api, Method::GET, &format!("{task_path}?lang=zh-CN"), &session, None).await;
    assert!(task.text.contains("<h1>审批订单 SO-1</h1>"), "{}", task.text);
    let english = page(&api, Method::GET, "/inbox?lang=en", &session, None).await;
    assert!(
        english.text.contains(">Approve order <span class=\"nowrap\">SO-1</span></a>")
            && !english.text.contains("审批订单"),
        "{}",
        english.text
    );
}

#[tokio::test]
async fn an_operator_retries_an_incident_from_the_operations_page() {
    let Some(api) = Api::new().await else { return };
    let id = crate::incidents::stuck_order(&api).await;
    let mia = sign_in(&api, "mia").await;
    assert_eq!(page(&api, Method::GET, "/ops", &mia, None).await.status, StatusCode::FORBIDDEN);
    let ada = sign_in(&api, "ada").await;
    let ops = page(&api, Method::GET, "/ops", &ada, None).await;
    assert_eq!(ops.status, StatusCode::OK);
    assert!(ops.text.contains(&id) && ops.text.contains("bureau down"), "{}", ops.text);
    // The incident names its case, its step and its cause in words, not keys.
    assert!(ops.text.contains("Order approval <span class=\"muted nowrap\">SO-1</span>"), "{}", ops.text);
    assert!(ops.text.contains(">Check credit and budget</td>"), "{}", ops.text);
    assert!(ops.text.contains("Job credit.check failed 4 times, no retries left: bureau down"), "{}", ops.text);
    assert!(ops.text.contains("(Asia/Shanghai)") && !ops.text.contains("time(s)"), "{}", ops.text);
    let zh = page(&api, Method::GET, "/ops?lang=zh-CN", &ada, None).await;
    assert!(zh.text.contains("订单审批 <span class=\"muted nowrap\">SO-1</span>"), "{}", zh.text);
    assert!(zh.text.contains(">检查信用额度与预算</td>"), "{}", zh.text);
    assert!(zh.text.contains("自动任务 credit.check 失败 4 次，重试次数已用完：bureau down"), "{}", zh.text);
    // The case's history says the same in the reader's words.
    let case = page(&api, Method::GET, &format!("/cases/{id}?lang=zh-CN"), &ada, None).await;
    assert!(case.text.contains("自动任务 credit.check 失败 4 次，重试次数已用完：bureau down"), "{}", case.text);
    let marker = "action=\"/ops/incidents/";
    let start = ops.text.find(marker).unwrap() + "action=\"".len();
    let action = ops.text[start..].split('"').next().unwrap().to_string();
    let csrf = hidden(&ops.text, "csrf");
    // Without its token the retry is refused and the incident stays.
    assert_eq!(page(&api, Method::POST, &action, &ada, Some("csrf=x")).await.status, StatusCode::FORBIDDEN);
    let retried = page(&api, Method::POST, &action, &ada, Some(&format!("csrf={csrf}"))).await;
    assert_eq!(retried.status, StatusCode::SEE_OTHER, "{}", retried.text);
    let after = page(&api, Method::GET, "/ops", &ada, None).await;
    assert!(!after.text.contains("bureau down"), "the incident is resolved: {}", after.text);
}

#[tokio::test]
async fn the_operations_page_lists_the_oldest_hundred_incidents_and_says_how_many_there_are() {
    let Some(api) = Api::empty().await else { return };
    let flaky = "process flaky \"Flaky\" {\n  start -> export\n  task export \"Export\" { job \"qa.export\"  retry 0 } -> done\n  end done \"Done\"\n}\n";
    api.engine.deploy(&[("flaky.flow", flaky)]).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..101 {
        let id = api.engine.start("flaky", None, serde_json::json!({})).await.unwrap();
        let jobs = api.engine.fetch_and_lock("w", &["qa.export"], 1, TimeDelta::minutes(1)).await.unwrap();
        assert_eq!(jobs[0].instance_id, id);
        api.engine.fail_job(&jobs[0].id, jobs[0].epoch, "share offline").await.unwrap();
        api.advance(TimeDelta::seconds(1));
        ids.push(id);
    }
    let ada = sign_in(&api, "ada").await;
    let ops = page(&api, Method::GET, "/ops", &ada, None).await;
    assert_eq!(ops.status, StatusCode::OK);
    assert_eq!(ops.text.matches("action=\"/ops/incidents/").count(), 100, "a page of them");
    // Every row names its case and its step, the cases read together.
    assert_eq!(ops.text.matches(">Flaky <span class=\"muted nowrap\">").count(), 100, "{}", ops.text);
    assert_eq!(ops.text.matches(">Export</td>").count(), 100, "{}", ops.text);
    assert!(ops.text.contains("The oldest 100 of 101 open incidents; GET /v1/incidents lists them all."));
    // The oldest first: the first raised is shown, the last is not.
    let link = |id: &cloverleaf_engine::InstanceId| format!("href=\"/cases/{}\"", id.as_str());
    assert!(ops.text.contains(&link(&ids[0])) && !ops.text.contains(&link(&ids[100])));
}

/// A process whose approval is due in business days on the Chinese calendar.
const SLA: &str = "process sla \"SLA\" {\n  calendar cn\n  start -> review\n  approval review \"Review\" {\n    \
role sales.manager\n    form { approve: bool }\n    due 3 business days\n  } -> done\n  end done \"Done\"\n}\n";

#[tokio::test]
async fn the_operations_page_names_a_calendar_that_lists_no_holidays_for_the_coming_year() {
    let Some(api) = Api::new().await else { return };
    let file = crate::harness::reference_file;
    let (roles, calendars) = (file("roles.flow"), file("calendars.flow"));
    api.engine
        .deploy(&[("roles.flow", roles.as_str()), ("calendars.flow", calendars.as_str()), ("sla.flow", SLA)])
        .await
        .unwrap();
    let ada = sign_in(&api, "ada").await;
    // 5 January 2026: the calendar lists 2026, and 2027 is not near yet.
    let january = page(&api, Method::GET, "/ops?lang=en", &ada, None).await;
    assert_eq!(january.status, StatusCode::OK);
    assert!(!january.text.contains("id=\"calendar-cn\""), "{}", january.text);
    // 6 December 2026: business days in January 2027 would count Spring Festival 2027 as work.
    api.advance(TimeDelta::days(335));
    let en = page(&api, Method::GET, "/ops?lang=en", &ada, None).await;
    assert!(
        en.text.contains(
            "<p class=\"notice\" id=\"calendar-cn\">Calendar “cn” lists no holidays or make-up working days for 2027: \
             business days there count as plain weeks"
        ),
        "{}",
        en.text
    );
    let zh = page(&api, Method::GET, "/ops?lang=zh-CN", &ada, None).await;
    assert!(zh.text.contains("营业日历“cn”未列出 2027 年的节假日和调休上班日"), "{}", zh.text);
    // The calendar no process names is not listed; the page stays the administrator's.
    assert!(!en.text.contains("calendar-weekdays"), "{}", en.text);
    let mia = sign_in(&api, "mia").await;
    assert_eq!(page(&api, Method::GET, "/ops", &mia, None).await.status, StatusCode::FORBIDDEN);
}

/// `text` as a form value.
fn form_value(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A process whose start leads to a step that does not exist (E0101 at 2:12).
const BROKEN: &str = "process broken \"Broken\" {\n  start -> nowhere\n  end done \"Done\"\n}\n";

/// `source` deployed from the operations page as `broken.flow` by `session`, in `lang`; and the
/// page's CSRF token.
async fn deploy_from_page(api: &Api, session: &str, lang: &str, source: &str) -> (Answer, String) {
    let ops = page(api, Method::GET, &format!("/ops?lang={lang}"), session, None).await;
    let csrf = hidden(&ops.text, "csrf");
    let body = format!("csrf={csrf}&filename=broken.flow&source={}", form_value(source));
    (page(api, Method::POST, &format!("/ops/deploy?lang={lang}"), session, Some(&body)).await, csrf)
}

#[tokio::test]
async fn an_administrator_deploys_from_the_page_and_sees_diagnostics_with_a_caret() {
    let Some(api) = Api::new().await else { return };
    let ada = sign_in(&api, "ada").await;
    let (refused, csrf) = deploy_from_page(&api, &ada, "en", BROKEN).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.text);
    assert!(refused.text.contains("broken.flow:2:") && refused.text.contains('^'), "{}", refused.text);
    assert!(refused.text.contains("start -&gt; nowhere"), "the source line, and the text kept: {}", refused.text);
    let fine = "process tiny \"Tiny\" {\n  start -> done\n  end done \"Done\"\n}\n";
    let body = format!("csrf={csrf}&source={}", form_value(fine));
    let deployed = page(&api, Method::POST, "/ops/deploy", &ada, Some(&body)).await;
    assert_eq!(deployed.status, StatusCode::OK, "{}", deployed.text);
    assert!(deployed.text.contains("Deployed: tiny v1"), "{}", deployed.text);
    // Nobody else deploys, with or without a token of their own.
    let mia = sign_in(&api, "mia").await;
    let inbox = page(&api, Method::GET, "/inbox", &mia, None).await;
    let her_csrf = hidden(&inbox.text, "csrf");
    let body = format!("csrf={her_csrf}&source={}", form_value(fine));
    assert_eq!(page(&api, Method::POST, "/ops/deploy", &mia, Some(&body)).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_chinese_administrator_reads_each_diagnostic_placed_and_explained_in_chinese() {
    let Some(api) = Api::new().await else { return };
    let ada = sign_in(&api, "ada").await;
    let (refused, csrf) = deploy_from_page(&api, &ada, "zh-CN", BROKEN).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.text);
    let shown = visible(&refused.text);
    assert!(shown.contains("流程源文件无法编译"), "{shown}");
    assert!(shown.contains("第 2 行第 12 列 错误 E0101：`-&gt;` 指向的节点不存在"), "{shown}");
    // The compiler's own text stays below, announced as such, with the caret.
    assert!(shown.contains("编译器原文（英文）") && shown.contains("broken.flow:2:12"), "{shown}");
    // A warning on a process that deploys is explained too.
    let no_sla = "process slow \"Slow\" {\n  start -> ok\n  approval ok \"OK\" {\n    role sales.manager\n  } -> done\n  end done \"Done\"\n}\n";
    let body = format!("csrf={csrf}&filename=slow.flow&source={}", form_value(no_sla));
    let deployed = page(&api, Method::POST, "/ops/deploy?lang=zh-CN", &ada, Some(&body)).await;
    assert_eq!(deployed.status, StatusCode::OK, "{}", deployed.text);
    let shown = visible(&deployed.text);
    assert!(
        shown.contains("已部署：slow v1") && shown.contains("警告 W0503：审批既没有到期时间，也没有升级"),
        "{shown}"
    );
    // An English reader reads the compiler's text alone, as before.
    let en = page(
        &api,
        Method::POST,
        "/ops/deploy?lang=en",
        &ada,
        Some(&format!("csrf={csrf}&source={}", form_value(BROKEN))),
    )
    .await;
    assert!(!en.text.contains("diagnostic-summary") && en.text.contains("error[E0101]"), "{}", en.text);
}

#[tokio::test]
async fn the_inbox_filters_by_amount_and_customer_and_puts_the_most_urgent_first() {
    let Some(api) = Api::new().await else { return };
    api.order_at_manager("20000.00", "sam").await;
    api.advance(chrono::TimeDelta::hours(1));
    api.order_at_manager("55000.00", "sam").await;
    let mia = sign_in(&api, "mia").await;
    let all = page(&api, Method::GET, "/inbox", &mia, None).await.text;
    let (first, second) = (all.find("CNY 20,000.00").unwrap(), all.find("CNY 55,000.00").unwrap());
    assert!(first < second, "the one due first comes first");
    let big = page(&api, Method::GET, "/inbox?min_amount=50,000&max_amount=", &mia, None).await.text;
    assert!(big.contains("CNY 55,000.00") && !big.contains("CNY 20,000.00"), "{big}");
    let small = page(&api, Method::GET, "/inbox?max_amount=20000", &mia, None).await.text;
    assert!(small.contains("CNY 20,000.00") && !small.contains("CNY 55,000.00"), "{small}");
    let nobody = page(&api, Method::GET, "/inbox?customer=C-999", &mia, None).await.text;
    assert!(nobody.contains("Nothing waits for you"), "{nobody}");
    let theirs = page(&api, Method::GET, "/inbox?customer=c-7", &mia, None).await.text;
    assert!(theirs.contains("CNY 55,000.00"), "customers match in any case: {theirs}");
    // Processes read by their titles in the reader's language, never by their keys.
    assert!(all.contains("<option value=\"order_approval\">Order approval</option>"), "{all}");
    assert!(all.contains("<div class=\"muted\">Order approval</div>"), "{all}");
    let zh = page(&api, Method::GET, "/inbox?lang=zh-CN", &mia, None).await.text;
    assert!(zh.contains("<option value=\"order_approval\">订单审批</option>"), "{zh}");
    assert!(zh.contains("<div class=\"muted\">订单审批</div>"), "{zh}");
    // Roles likewise: a task nobody has claimed is offered to the sales managers.
    assert!(all.contains("<td>Offered to Sales manager</td>") && !all.contains("sales.manager"), "{all}");
    assert!(zh.contains("<td>待销售经理认领</td>") && !zh.contains("sales.manager"), "{zh}");
    let chosen = page(&api, Method::GET, "/inbox?process=order_approval", &mia, None).await.text;
    assert!(chosen.contains("<option value=\"order_approval\" selected>Order approval</option>"), "{chosen}");
    assert!(chosen.contains("CNY 20,000.00") && chosen.contains("CNY 55,000.00"), "{chosen}");
}

#[tokio::test]
async fn the_documents_behind_the_board_are_for_finance_readers_only() {
    let Some(api) = Api::new().await else { return };
    let sam = sign_in(&api, "sam").await;
    let mia = sign_in(&api, "mia").await;
    for path in ["/board", "/board/receivables?bucket=90%2B", "/board/orders?customer=C-004"] {
        for (who, session) in [("sam", &sam), ("mia", &mia)] {
            let refused = page(&api, Method::GET, path, session, None).await;
            assert_eq!(refused.status, StatusCode::FORBIDDEN, "{who} on {path}: {}", refused.text);
            assert!(!refused.text.contains("CNY"), "no figure leaks to {who}: {}", refused.text);
        }
    }
    // Acknowledging an alert is for the controller, the CFO and admin, even with a valid form.
    let inbox = page(&api, Method::GET, "/inbox", &sam, None).await;
    let csrf = hidden(&inbox.text, "csrf");
    let refused = page(&api, Method::POST, "/board/alerts/1/acknowledge", &sam, Some(&format!("csrf={csrf}"))).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    let forged = page(&api, Method::POST, "/board/alerts/1/acknowledge", &sam, Some("csrf=forged")).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.text);
    // A finance reader on a server that keeps no sub-ledger gets a page saying so, not a 500.
    let carl = sign_in(&api, "carl").await;
    let none = page(&api, Method::GET, "/board/receivables", &carl, None).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND, "{}", none.text);
    assert!(none.text.contains("sub-ledger"), "{}", none.text);
}

#[tokio::test]
async fn the_case_list_narrows_by_state_and_process_with_its_own_controls() {
    let Some(api) = Api::new().await else { return };
    let (id, _) = api.order_at_manager("20000.00", "sam").await;
    let sam = sign_in(&api, "sam").await;
    let all = page(&api, Method::GET, "/cases", &sam, None).await;
    assert!(
        all.text.contains("<select name=\"status\"") && all.text.contains("<select name=\"process\""),
        "{}",
        all.text
    );
    assert!(all.text.contains(&id), "{}", all.text);
    let running = page(&api, Method::GET, "/cases?status=running&process=order_approval", &sam, None).await;
    assert!(running.text.contains(&id), "{}", running.text);
    assert!(
        running.text.contains("<option value=\"running\" selected>"),
        "the chosen state stays chosen: {}",
        running.text
    );
    assert!(!running.text.contains("data-status=\"completed\""), "{}", running.text);
    let completed = page(&api, Method::GET, "/cases?status=completed", &sam, None).await;
    assert!(!completed.text.contains(&id), "{}", completed.text);
    // An unknown state is no filter, not an error.
    let odd = page(&api, Method::GET, "/cases?status=exploded", &sam, None).await;
    assert_eq!(odd.status, StatusCode::OK);
    assert!(odd.text.contains(&id), "{}", odd.text);
}

#[tokio::test]
async fn the_board_shows_open_work_by_role_with_what_is_past_due() {
    let Some(api) = Api::new().await else { return };
    api.order_at_manager("20000.00", "sam").await;
    let carl = sign_in(&api, "carl").await;
    let board = page(&api, Method::GET, "/board", &carl, None).await;
    assert_eq!(board.status, StatusCode::OK, "{}", board.text);
    assert!(
        board.text.contains("<tr data-role=\"sales.manager\"><td>Sales manager</td><td>1</td><td>0</td></tr>"),
        "{}",
        board.text
    );
    // A day later the approval (due in a day) is past due.
    api.advance(chrono::TimeDelta::days(2));
    let later = page(&api, Method::GET, "/board", &carl, None).await;
    assert!(later.text.contains("<td>1</td><td class=\"overdue\">1</td>"), "{}", later.text);
}

#[tokio::test]
async fn signing_out_ends_the_session_on_the_server_and_leaves_the_users_other_sessions() {
    let Some(api) = Api::new().await else { return };
    let (laptop, phone) = (sign_in(&api, "ada").await, sign_in(&api, "ada").await);
    let inbox = page(&api, Method::GET, "/inbox", &laptop, None).await;
    assert_eq!(inbox.status, StatusCode::OK, "{}", inbox.text);
    let csrf = hidden(&inbox.text, "csrf");
    // Without the session's token the sign-out is refused and the session lives on.
    let forged = page(&api, Method::POST, "/logout", &laptop, Some("csrf=x")).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(page(&api, Method::GET, "/inbox", &laptop, None).await.status, StatusCode::OK);
    let out = page(&api, Method::POST, "/logout", &laptop, Some(&format!("csrf={csrf}"))).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.text);
    assert_eq!(out.headers[header::LOCATION], "/login");
    // A copy of the signed-out cookie (kept by another tab, a proxy, a thief) opens nothing.
    let copy = page(&api, Method::GET, "/inbox", &laptop, None).await;
    assert_eq!((copy.status, &copy.headers[header::LOCATION]), (StatusCode::SEE_OTHER, &"/login".parse().unwrap()));
    let post = page(&api, Method::POST, "/logout", &laptop, Some(&format!("csrf={csrf}"))).await;
    assert_eq!(post.status, StatusCode::SEE_OTHER);
    // The same user's session on another device is their own to end.
    assert_eq!(page(&api, Method::GET, "/inbox", &phone, None).await.status, StatusCode::OK);
}

/// `path` as a browser asks for it: HTML, with `cookies`, from page `referer` when given.
async fn browse(
    api: &Api,
    method: Method,
    path: &str,
    cookies: &str,
    referer: Option<&str>,
    form: Option<&str>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(path).header(header::ACCEPT, "text/html,*/*;q=0.8");
    if !cookies.is_empty() {
        request = request.header(header::COOKIE, cookies);
    }
    if let Some(referer) = referer {
        request = request.header(header::REFERER, referer);
    }
    if form.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    api.send(request.body(Body::from(form.unwrap_or_default().to_string())).unwrap()).await
}

/// The language switch's address on a page.
#[track_caller]
fn switch_href(html: &str) -> String {
    let link = html.split("hreflang=").next().unwrap();
    let href = link.rsplit("href=\"").next().unwrap();
    href.split('"').next().unwrap().replace("&amp;", "&")
}

#[tokio::test]
async fn the_language_switch_keeps_the_page_and_its_filters() {
    let Some(api) = Api::new().await else { return };
    let carl = sign_in(&api, "carl").await;
    let cases = browse(&api, Method::GET, "/cases?status=running&lang=zh-CN", &carl, None, None).await;
    assert_eq!(cases.status, StatusCode::OK, "{}", cases.text);
    assert_eq!(switch_href(&cases.text), "/cases?status=running&lang=en");
    let board = browse(&api, Method::GET, "/board/receivables?bucket=1-30", &carl, None, None).await;
    assert_eq!(switch_href(&board.text), "/board/receivables?bucket=1-30&lang=zh-CN");

    // After a form's answer, the switch reloads the page the form was on, not the form's address.
    let ada = sign_in(&api, "ada").await;
    let ops = browse(&api, Method::GET, "/ops?lang=zh-CN", &ada, None, None).await;
    let csrf = hidden(&ops.text, "csrf");
    let body = format!("csrf={csrf}&source={}", form_value("process broken {"));
    let from = Some("http://127.0.0.1:8080/ops?lang=zh-CN");
    // The browser keeps the language the page set in its cookie.
    let ada = format!("{ada}; clv_lang=zh-CN");
    let refused = browse(&api, Method::POST, "/ops/deploy", &ada, from, Some(&body)).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.text);
    assert_eq!(switch_href(&refused.text), "/ops?lang=en");
    // A referer from elsewhere, or none, leads to the inbox.
    for elsewhere in [Some("http://127.0.0.1:8080//evil.example/ops"), Some("http://127.0.0.1:8080/v1/instances"), None]
    {
        let refused = browse(&api, Method::POST, "/ops/deploy", &ada, elsewhere, Some(&body)).await;
        assert_eq!(switch_href(&refused.text), "/inbox?lang=en", "{elsewhere:?}");
    }

    // The form's address itself, reloaded or switched, goes back to its page and does nothing.
    for (address, page_of_form) in [
        ("/tasks/i-x.task.1/complete?lang=en", "/tasks/i-x.task.1?lang=en"),
        ("/ops/deploy?lang=en", "/ops?lang=en"),
        ("/board/budgets", "/board"),
        ("/letters/L-1/retry?lang=zh-CN", "/letters?lang=zh-CN"),
        ("/logout", "/inbox"),
    ] {
        let answer = browse(&api, Method::GET, address, &ada, None, None).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{address}: {}", answer.text);
        assert_eq!(answer.headers[header::LOCATION], page_of_form, "{address}");
    }
    // Still signed in: the `GET` of the sign-out form's address signed nobody out.
    assert_eq!(browse(&api, Method::GET, "/inbox", &ada, None, None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_browser_at_an_address_that_is_no_page_gets_a_page_in_its_language() {
    let Some(api) = Api::new().await else { return };
    let mia = sign_in(&api, "mia").await;
    let missing = browse(&api, Method::GET, "/nope?lang=zh-CN", &mia, None, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text);
    assert!(missing.text.contains("没有地址为 /nope 的页面。"), "{}", missing.text);
    assert!(missing.text.contains("<b id=\"me\">mia</b>"), "framed for the signed-in reader: {}", missing.text);
    // Signed out, the sign-in page; the API and its clients keep their JSON answers.
    let signed_out = browse(&api, Method::GET, "/nope", "", None, None).await;
    assert_eq!(signed_out.status, StatusCode::SEE_OTHER);
    assert_eq!(signed_out.headers[header::LOCATION], "/login");
    let api_client = page(&api, Method::GET, "/nope", &mia, None).await;
    assert_eq!(api_client.status, StatusCode::UNAUTHORIZED, "{}", api_client.text);
    let api_path = browse(&api, Method::GET, "/v1/nope", &mia, None, None).await;
    assert_eq!(api_path.status, StatusCode::UNAUTHORIZED, "{}", api_path.text);
}

#[tokio::test]
async fn no_open_incident_is_said_in_a_sentence() {
    let Some(api) = Api::new().await else { return };
    let ada = sign_in(&api, "ada").await;
    let ops = page(&api, Method::GET, "/ops?lang=zh-CN", &ada, None).await;
    assert!(ops.text.contains("id=\"no-incidents\">没有未处理的故障，自动任务均在正常运行。"), "{}", ops.text);
    let carl = sign_in(&api, "carl").await;
    let board = page(&api, Method::GET, "/board?lang=en", &carl, None).await;
    assert!(
        board.text.contains("id=\"no-incidents\">No incident is open: every automated step runs."),
        "{}",
        board.text
    );
    // With one open, the sentence gives way to the incident.
    crate::incidents::stuck_order(&api).await;
    let ops = page(&api, Method::GET, "/ops", &ada, None).await;
    assert!(!ops.text.contains("no-incidents") && ops.text.contains("table class=\"incidents\""), "{}", ops.text);
    // A deployment's answer keeps them on the page below it.
    let (refused, _) = deploy_from_page(&api, &ada, "en", BROKEN).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.text);
    assert!(
        refused.text.contains("table class=\"incidents\"") && refused.text.contains("error[E0101]"),
        "{}",
        refused.text
    );
}

#[tokio::test]
async fn an_uncaught_business_error_is_named_in_words_with_what_to_do() {
    let Some(api) = Api::new().await else { return };
    // The credit check catches only a blocked customer: an unknown one becomes an incident.
    api.order("100.00", "sam").await;
    let job = api.one_job("credit.check").await;
    let path = format!("/v1/jobs/{}/error", job["id"].as_str().unwrap());
    api.post(&path, "robot", serde_json::json!({"epoch": job["epoch"], "code": "customer_unknown"})).await;
    let ada = sign_in(&api, "ada").await;
    let zh = page(&api, Method::GET, "/ops?lang=zh-CN", &ada, None).await;
    assert!(
        zh.text.contains(
            "业务错误 “客户主数据中没有该客户”（customer_unknown） 没有对应的处理路径：请先修正相关数据，再重试"
        ),
        "{}",
        zh.text
    );
    let en = page(&api, Method::GET, "/ops?lang=en", &ada, None).await;
    assert!(
        en.text.contains("Business error “the customer is not in the master data” (customer_unknown) reached"),
        "{}",
        en.text
    );
}
