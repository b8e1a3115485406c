//! The page handlers: each checks who is asking, calls the engine the way `/v1` does, and
//! renders HTML in the reader's language.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use cloverleaf_dsl::expr::Value as DslValue;
use cloverleaf_dsl::model::{FormField, NodeKind};
use cloverleaf_engine::store::{Queries as _, TaskInfo};
use cloverleaf_engine::{IncidentId, Instance, InstanceId, TaskId};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};

use super::diagram::{self, Progress};
use super::i18n::{self, Lang};
use super::{
    LANG_COOKIE, LOGIN_CSRF_COOKIE, SESSION_COOKIE, SESSION_SECONDS, Viewer, cookie, esc, forwarded_https, html,
    lang_of, same, session_value, set_cookie, url_path,
};
use crate::server::AppState;
use crate::server::access::{self, Visibility};
use crate::server::config::{ADMIN, User, canonical_user};
use crate::server::error::ApiError;

/// The frame of every page: navigation for what the reader may use, the language switch, sign-out.
fn page(viewer: &Viewer, title: &str, body: &str) -> String {
    let mut nav =
        format!("<a href=\"/inbox\">{}</a><a href=\"/cases\">{}</a>", viewer.t("inbox"), viewer.t("instances"));
    if access::may_read_reports(&viewer.caller).is_ok() {
        let _ = write!(nav, "<a href=\"/board\">{}</a>", viewer.t("board"));
    }
    if viewer.caller.has(ADMIN) {
        let _ = write!(nav, "<a href=\"/ops\">{}</a>", viewer.t("operations"));
    }
    let other = match viewer.lang {
        Lang::En => "zh-CN",
        Lang::ZhCn => "en",
    };
    format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · {app}</title><link rel=\"stylesheet\" href=\"/static/app.css\"></head><body>\
         <header><strong class=\"brand\">{app}</strong><nav>{nav}</nav>\
         <div class=\"me\"><span>{signed} <b id=\"me\">{user}</b></span>\
         <a href=\"?lang={other}\" hreflang=\"{other}\">{switch}</a>\
         <form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\">{signout}</button></form></div></header><main>{body}</main></body></html>",
        lang = viewer.lang.tag(),
        title = esc(title),
        app = viewer.t("app"),
        signed = viewer.t("signed_in_as"),
        user = esc(viewer.caller.name()),
        switch = viewer.t("language"),
        csrf = viewer.csrf,
        signout = viewer.t("sign_out"),
    )
}

/// A page with a message and a way back; the status says what happened.
fn message_page(viewer: &Viewer, status: StatusCode, title: &'static str, text: &str) -> Response {
    let body = format!(
        "<h1>{}</h1><p class=\"notice\" role=\"alert\">{}</p><p><a href=\"/inbox\">{}</a></p>",
        viewer.t(title),
        esc(text),
        viewer.t("back")
    );
    with_lang(viewer, html(status, page(viewer, viewer.t(title), &body)))
}

/// Remembers a language chosen with `?lang=` in a cookie.
fn with_lang(viewer: &Viewer, mut response: Response) -> Response {
    let value = super::set_cookie(LANG_COOKIE, viewer.lang.tag(), 365 * 24 * 3600, false);
    response.headers_mut().append(header::SET_COOKIE, value);
    response
}

/// A page of the framed body titled `title`, or the error as a page.
fn answer(viewer: &Viewer, title: &'static str, body: Result<String, ApiError>) -> Response {
    match body {
        Ok(body) => with_lang(viewer, html(StatusCode::OK, page(viewer, viewer.t(title), &body))),
        Err(e) => error_page(viewer, &e),
    }
}

/// An engine or permission error as a page: words, not codes.
fn error_page(viewer: &Viewer, error: &ApiError) -> Response {
    match error.status() {
        StatusCode::NOT_FOUND => message_page(viewer, StatusCode::NOT_FOUND, "not_found", error.message()),
        StatusCode::FORBIDDEN => message_page(viewer, StatusCode::FORBIDDEN, "forbidden", error.message()),
        status if status.is_server_error() => message_page(viewer, status, "error", viewer.t("error_text")),
        status => message_page(viewer, status, "refused", error.message()),
    }
}

/// The decision form of approval `node`.
fn form_of(definition: &cloverleaf_dsl::CompiledProcess, node: &str) -> Vec<FormField> {
    match definition.node(node).map(|n| &n.kind) {
        Some(NodeKind::Approval { form, .. }) => form.clone(),
        _ => Vec::new(),
    }
}

/// The variables of a process that hold money (shown with their currency).
fn money_variables(definition: &cloverleaf_dsl::CompiledProcess) -> BTreeSet<&str> {
    definition
        .inputs
        .iter()
        .chain(&definition.vars)
        .filter(|v| v.ty == cloverleaf_dsl::expr::Type::Money)
        .map(|v| v.name.as_str())
        .collect()
}

/// A variable's value for a reader: money with its currency, times in their zone.
fn show_value(viewer: &Viewer, instance: &Instance, name: &str, money: bool) -> String {
    let Some(value) = instance.variables().get(name) else { return String::new() };
    match value {
        DslValue::Null => "—".to_string(),
        DslValue::Number(n) if money => i18n::money(*n, viewer.lang),
        DslValue::DateTime(at) => i18n::time(*at, viewer.zone),
        DslValue::Bool(b) => viewer.t(if *b { "yes" } else { "no" }).to_string(),
        other => plain_text(other),
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    expired: Option<String>,
    lang: Option<String>,
}

/// `GET /login`.
pub async fn login_form(headers: HeaderMap, uri: Uri, Query(query): Query<LoginQuery>) -> Response {
    let lang = query.lang.as_deref().and_then(Lang::parse).unwrap_or_else(|| lang_of(&headers, &uri));
    let note = if query.expired.is_some() { Some(lang.t("expired")) } else { None };
    login_page(lang, StatusCode::OK, note, "", forwarded_https(&headers))
}

/// The sign-in page: a user name with a password, or the personal token; `user` is filled in
/// again after a refusal.
fn login_page(lang: Lang, status: StatusCode, note: Option<&str>, user: &str, secure: bool) -> Response {
    let mut nonce = [0u8; 16];
    let _ = getrandom::fill(&mut nonce);
    let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let other = match lang {
        Lang::En => "zh-CN",
        Lang::ZhCn => "en",
    };
    let note = note.map(|n| format!("<p class=\"notice\" role=\"alert\">{}</p>", esc(n))).unwrap_or_default();
    let hidden = format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{nonce}\"><input type=\"hidden\" name=\"lang\" value=\"{}\">",
        lang.tag()
    );
    let body = format!(
        "<!doctype html><html lang=\"{tag}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{signin} · {app}</title><link rel=\"stylesheet\" href=\"/static/app.css\"></head><body class=\"login\">\
         <main><h1>{app}</h1>{note}<form method=\"post\" action=\"/login\">{hidden}\
         <label for=\"user\">{user_name}</label><input id=\"user\" name=\"user\" value=\"{user}\" autocomplete=\"username\" autocapitalize=\"none\" spellcheck=\"false\" required autofocus>\
         <label for=\"password\">{password}</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\" id=\"sign-in-password\">{signin}</button></form>\
         <p class=\"or\">{or_token}</p><form method=\"post\" action=\"/login\">{hidden}\
         <label for=\"token\">{token}</label><input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required>\
         <p class=\"help\">{help}</p><button type=\"submit\" id=\"sign-in\">{signin}</button></form>\
         <p><a href=\"/login?lang={other}\" hreflang=\"{other}\">{switch}</a></p></main></body></html>",
        tag = lang.tag(),
        app = lang.t("app"),
        signin = lang.t("sign_in"),
        user = esc(user),
        user_name = lang.t("user_name"),
        password = lang.t("password"),
        or_token = lang.t("or_token"),
        token = lang.t("token"),
        help = lang.t("token_help"),
        switch = lang.t("language"),
    );
    let mut response = html(status, body);
    response.headers_mut().append(header::SET_COOKIE, set_cookie(LOGIN_CSRF_COOKIE, &nonce, 600, secure));
    response.headers_mut().append(header::SET_COOKIE, set_cookie(LANG_COOKIE, lang.tag(), 365 * 24 * 3600, secure));
    response
}

/// Either sign-in form: `token`, or `user` with `password`.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    token: Option<String>,
    user: Option<String>,
    password: Option<String>,
    csrf: Option<String>,
    lang: Option<String>,
}

/// `POST /login`: a valid token, or a user name with its password, gives a session; either form
/// must carry its own CSRF nonce.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<LoginForm>,
) -> Response {
    let lang = form.lang.as_deref().and_then(Lang::parse).unwrap_or_else(|| lang_of(&headers, &uri));
    let secure = forwarded_https(&headers);
    let nonce_ok = cookie(&headers, LOGIN_CSRF_COOKIE).zip(form.csrf.as_deref()).is_some_and(|(c, f)| same(c, f));
    if !nonce_ok {
        return login_page(lang, StatusCode::FORBIDDEN, Some(lang.t("csrf")), "", secure);
    }
    let user = match (form.password, form.token) {
        (Some(password), _) => {
            let name = form.user.unwrap_or_default();
            match password_sign_in(&state, &name, password).await {
                Ok(user) => user,
                Err((status, key)) => return login_page(lang, status, Some(lang.t(key)), name.trim(), secure),
            }
        }
        (None, Some(token)) => match state.users().authenticate(token.trim()) {
            Some(user) => user,
            None => return login_page(lang, StatusCode::UNAUTHORIZED, Some(lang.t("bad_token")), "", secure),
        },
        (None, None) => return login_page(lang, StatusCode::UNAUTHORIZED, Some(lang.t("bad_token")), "", secure),
    };
    let mut response = Redirect::to("/inbox").into_response();
    let session = session_value(&state, &user.name);
    response.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, &session, SESSION_SECONDS, secure));
    response.headers_mut().append(header::SET_COOKIE, set_cookie(LOGIN_CSRF_COOKIE, "", 0, secure));
    response
}

/// Checks a user name and password off the async threads, braked per name; a refusal is its
/// status and the page's words for it. A wrong password, a name nobody has and a user without a
/// password are refused alike.
async fn password_sign_in(
    state: &AppState,
    name: &str,
    password: String,
) -> Result<Arc<User>, (StatusCode, &'static str)> {
    let now = state.engine().now();
    // A name no user can have is never counted (nobody can sign in with it), but is checked all
    // the same so that it takes as long as any other.
    let key = canonical_user(name);
    if let Some(key) = &key
        && state.sign_in_throttle().attempt(key, now).is_err()
    {
        return Err((StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"));
    }
    let Ok(_permit) = state.password_checks().acquire().await else {
        return Err((StatusCode::SERVICE_UNAVAILABLE, "error_text"));
    };
    let checking = state.clone();
    let name_owned = name.to_string();
    let checked = tokio::task::spawn_blocking(move || checking.users().verify_password(&name_owned, &password)).await;
    match checked {
        Ok(Some(user)) => {
            if let Some(key) = &key {
                state.sign_in_throttle().succeeded(key);
            }
            Ok(user)
        }
        Ok(None) => Err((StatusCode::UNAUTHORIZED, "bad_password")),
        Err(e) => {
            tracing::error!("a password check did not finish: {e}");
            Err((StatusCode::INTERNAL_SERVER_ERROR, "error_text"))
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /logout`.
pub async fn logout(viewer: Viewer, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    if !viewer.csrf_ok(form.csrf.as_deref()) {
        return message_page(&viewer, StatusCode::FORBIDDEN, "refused", viewer.t("csrf"));
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", 0, forwarded_https(&headers)));
    response
}

#[derive(Debug, Deserialize)]
pub struct InboxQuery {
    process: Option<String>,
    overdue: Option<String>,
    customer: Option<String>,
    min_amount: Option<String>,
    max_amount: Option<String>,
}

/// One row of the inbox: the task and the business context its approval shows.
struct Row {
    task: TaskInfo,
    process: String,
    context: Vec<(String, String)>,
    customer: Option<String>,
    amount: Option<Decimal>,
}

/// The business context of a task: its process, the variables its approval shows, and the
/// customer and amount the inbox filters by.
struct Context {
    process: String,
    shown: Vec<(String, String)>,
    customer: Option<String>,
    amount: Option<Decimal>,
}

async fn context_of(state: &AppState, viewer: &Viewer, task: &TaskInfo) -> Result<Context, ApiError> {
    let engine = state.engine();
    let instance = engine.instance(&task.instance_id).await?;
    let definition = engine.definition(instance.process(), instance.process_version()).await?;
    let shown = match definition.node(&task.node).map(|n| &n.kind) {
        Some(NodeKind::Approval { show, .. }) => show.clone(),
        _ => Vec::new(),
    };
    let money = money_variables(&definition);
    let context = shown
        .iter()
        .map(|name| (name.clone(), show_value(viewer, &instance, name, money.contains(name.as_str()))))
        .collect();
    let customer = match instance.variables().get("customer_id") {
        Some(DslValue::Text(c)) => Some(c.clone()),
        _ => None,
    };
    let amount = ["amount", "amount_due"].iter().find_map(|name| match instance.variables().get(*name) {
        Some(DslValue::Number(n)) => Some(*n),
        _ => None,
    });
    Ok(Context { process: instance.process().to_string(), shown: context, customer, amount })
}

/// A context value as HTML: a stored report's id links to the report.
fn context_html(name: &str, value: &str) -> String {
    if name.ends_with("_report") && !value.is_empty() && value != "—" {
        format!("<a href=\"/reports/{}\">{}</a>", url_path(value), esc(value))
    } else {
        esc(value)
    }
}

fn due_cell(viewer: &Viewer, due: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match due {
        None => format!("<span class=\"muted\">{}</span>", viewer.t("no_due")),
        Some(at) if at < now => {
            format!("<span class=\"overdue\">{} · {}</span>", viewer.t("overdue"), esc(&i18n::time(at, viewer.zone)))
        }
        Some(at) => esc(&i18n::time(at, viewer.zone)),
    }
}

/// `GET /inbox`: the reader's open tasks with their business context, filtered and sorted.
pub async fn inbox(State(state): State<AppState>, viewer: Viewer, Query(query): Query<InboxQuery>) -> Response {
    answer(&viewer, "inbox", inbox_page(&state, &viewer, &query).await)
}

async fn inbox_page(state: &AppState, viewer: &Viewer, query: &InboxQuery) -> Result<String, ApiError> {
    let engine = state.engine();
    let now = engine.now();
    let tasks = engine.inbox(viewer.caller.name(), &viewer.caller.0.role_refs()).await?;
    let mut rows = Vec::new();
    for task in tasks {
        let Context { process, shown, customer, amount } = context_of(state, viewer, &task).await?;
        rows.push(Row { task, process, context: shown, customer, amount });
    }
    let processes: BTreeSet<String> = rows.iter().map(|r| r.process.clone()).collect();
    let only_process = query.process.as_deref().filter(|p| !p.is_empty());
    let only_overdue = query.overdue.is_some();
    let customer = query.customer.as_deref().map(str::trim).filter(|c| !c.is_empty());
    let bound = |text: &Option<String>| text.as_deref().and_then(|t| t.trim().replace(',', "").parse::<Decimal>().ok());
    let (min, max) = (bound(&query.min_amount), bound(&query.max_amount));
    rows.retain(|r| {
        min.is_none_or(|m| r.amount.is_some_and(|a| a >= m))
            && max.is_none_or(|m| r.amount.is_some_and(|a| a <= m))
            && only_process.is_none_or(|p| r.process == p)
            && (!only_overdue || r.task.due_at.is_some_and(|d| d < now))
            && customer.is_none_or(|c| r.customer.as_deref().is_some_and(|rc| rc.eq_ignore_ascii_case(c)))
    });
    rows.sort_by_key(|r| (r.task.due_at.is_none(), r.task.due_at));
    let mut out = format!("<h1>{}</h1>", viewer.t("inbox"));
    let _ = write!(
        out,
        "<form method=\"get\" action=\"/inbox\" class=\"filters\"><label>{} <select name=\"process\"><option value=\"\">{}</option>",
        viewer.t("process"),
        viewer.t("all_processes")
    );
    for p in &processes {
        let selected = if only_process == Some(p.as_str()) { " selected" } else { "" };
        let _ = write!(out, "<option value=\"{p}\"{selected}>{p}</option>", p = esc(p));
    }
    let _ = write!(
        out,
        "</select></label><label>{} <input name=\"customer\" value=\"{}\" size=\"8\"></label>\
         <label>{} <input name=\"min_amount\" value=\"{}\" size=\"8\" inputmode=\"decimal\"></label>\
         <label>– <input name=\"max_amount\" value=\"{}\" size=\"8\" inputmode=\"decimal\"></label>\
         <label><input type=\"checkbox\" name=\"overdue\" value=\"1\"{}> {}</label><button type=\"submit\">{}</button></form>",
        viewer.t("customer"),
        esc(customer.unwrap_or("")),
        viewer.t("amount_range"),
        esc(query.min_amount.as_deref().unwrap_or("")),
        esc(query.max_amount.as_deref().unwrap_or("")),
        if only_overdue { " checked" } else { "" },
        viewer.t("only_overdue"),
        viewer.t("filter"),
    );
    if rows.is_empty() {
        let _ = write!(out, "<p class=\"empty\">{}</p>", viewer.t("no_tasks"));
        return Ok(out);
    }
    let _ = write!(
        out,
        "<table class=\"tasks\"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        viewer.t("task"),
        viewer.t("context"),
        viewer.t("due"),
        viewer.t("state")
    );
    for row in rows {
        let context: String = row
            .context
            .iter()
            .map(|(k, v)| {
                let label = i18n::label(k, viewer.lang);
                format!(
                    "<span class=\"kv\"><span class=\"k\">{}</span> <span class=\"v\" data-var=\"{}\">{}</span></span>",
                    esc(&label),
                    esc(k),
                    context_html(k, v)
                )
            })
            .collect();
        let holder = match (&row.task.claimed_by, &row.task.assignee) {
            (Some(c), _) => format!("{} {}", viewer.t("claimed_by"), esc(c)),
            (None, Some(a)) => format!("{} {}", viewer.t("assigned_to"), esc(a)),
            (None, None) => row.task.roles.iter().map(|r| esc(r)).collect::<Vec<_>>().join(", "),
        };
        let _ = write!(
            out,
            "<tr><td><a class=\"task-link\" href=\"/tasks/{}\">{}</a><div class=\"muted\">{}</div></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            url_path(&row.task.id.0),
            esc(&row.task.title),
            esc(&row.process),
            context,
            due_cell(viewer, row.task.due_at, now),
            holder
        );
    }
    out.push_str("</tbody></table>");
    Ok(out)
}

/// `GET /tasks/{id}`: the task, its context and its decision form.
pub async fn task(State(state): State<AppState>, viewer: Viewer, Path(id): Path<TaskId>) -> Response {
    match task_page(&state, &viewer, &id, None).await {
        Ok(body) => with_lang(&viewer, html(StatusCode::OK, body)),
        Err(e) => error_page(&viewer, &e),
    }
}

async fn task_page(
    state: &AppState,
    viewer: &Viewer,
    id: &TaskId,
    problem: Option<&ApiError>,
) -> Result<String, ApiError> {
    let task = crate::server::tasks::visible_task(state, &viewer.caller, id).await?;
    let engine = state.engine();
    let now = engine.now();
    let Context { process, shown: context, .. } = context_of(state, viewer, &task).await?;
    let instance = engine.instance(&task.instance_id).await?;
    let definition = engine.definition(instance.process(), instance.process_version()).await?;
    let fields = form_of(&definition, &task.node);
    let mut out = format!(
        "<h1>{}</h1><p class=\"muted\">{} · <a href=\"/cases/{}\">{}</a></p>",
        esc(&task.title),
        esc(&process),
        url_path(&task.instance_id.0),
        viewer.t("instance")
    );
    if let Some(problem) = problem {
        let _ = write!(
            out,
            "<div class=\"notice refusal\" role=\"alert\" id=\"problem\">{}</div>",
            problem_text(viewer, problem)
        );
    }
    out.push_str("<section><h2>");
    out.push_str(viewer.t("context"));
    out.push_str("</h2><dl class=\"context\">");
    for (k, v) in &context {
        let label = i18n::label(k, viewer.lang);
        let _ = write!(out, "<dt>{}</dt><dd data-var=\"{}\">{}</dd>", esc(&label), esc(k), context_html(k, v));
    }
    let _ = write!(out, "<dt>{}</dt><dd>{}</dd></dl></section>", viewer.t("due"), due_cell(viewer, task.due_at, now));
    if task.state != "open" {
        let _ = write!(out, "<p class=\"notice\">{}</p>", viewer.t("task_closed"));
        return Ok(page(viewer, &task.title, &out));
    }
    let action = format!("/tasks/{}", url_path(&task.id.0));
    let csrf = format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", viewer.csrf);
    // Claim or release.
    let mine = task.claimed_by.as_deref() == Some(viewer.caller.name());
    let (verb, label) = if mine { ("unclaim", viewer.t("unclaim")) } else { ("claim", viewer.t("claim")) };
    if task.claimed_by.is_none() || mine {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"{action}/{verb}\" class=\"inline\">{csrf}<button type=\"submit\" id=\"{verb}\">{label}</button></form>"
        );
    }
    // The decision.
    let _ = write!(
        out,
        "<section><h2>{}</h2><form method=\"post\" action=\"{action}/complete\" class=\"decision\">{csrf}",
        viewer.t("form")
    );
    for field in &fields {
        out.push_str(&form_field(viewer, field));
    }
    let _ = write!(out, "<button type=\"submit\" id=\"submit\">{}</button></form></section>", viewer.t("complete"));
    let _ = write!(
        out,
        "<section><form method=\"post\" action=\"{action}/delegate\" class=\"inline\">{csrf}<label>{} <input name=\"to\" size=\"10\" required></label> <button type=\"submit\">{}</button></form></section>",
        viewer.t("delegate"),
        viewer.t("delegate_button")
    );
    Ok(page(viewer, &task.title, &out))
}

/// One input of a decision form, typed as the process declares it.
fn form_field(viewer: &Viewer, field: &FormField) -> String {
    use cloverleaf_dsl::expr::Type;
    let name = esc(&field.name);
    let label = esc(&i18n::label(&field.name, viewer.lang));
    let optional = if field.optional {
        format!(" <span class=\"muted\">({})</span>", viewer.t("optional"))
    } else {
        String::new()
    };
    let required = if field.optional { "" } else { " required" };
    match field.ty {
        Type::Bool => {
            let (yes, no) = if field.name.starts_with("approve") {
                (viewer.t("approve"), viewer.t("reject"))
            } else {
                (viewer.t("yes"), viewer.t("no"))
            };
            format!(
                "<fieldset><legend>{label}{optional}</legend><label><input type=\"radio\" name=\"f.{name}\" value=\"true\" id=\"{name}-yes\"{required}> {yes}</label> \
                 <label><input type=\"radio\" name=\"f.{name}\" value=\"false\" id=\"{name}-no\"> {no}</label></fieldset>"
            )
        }
        Type::Text => format!(
            "<label for=\"{name}\">{label}{optional}</label><textarea id=\"{name}\" name=\"f.{name}\" rows=\"2\"{required}></textarea>"
        ),
        Type::Date => format!(
            "<label for=\"{name}\">{label}{optional}</label><input id=\"{name}\" type=\"date\" name=\"f.{name}\"{required}>"
        ),
        Type::Money | Type::Decimal | Type::Int => format!(
            "<label for=\"{name}\">{label}{optional}</label><input id=\"{name}\" name=\"f.{name}\" inputmode=\"decimal\"{required}>"
        ),
        _ => {
            format!("<label for=\"{name}\">{label}{optional}</label><input id=\"{name}\" name=\"f.{name}\"{required}>")
        }
    }
}

/// A refusal as a sentence for the reader.
fn problem_text(viewer: &Viewer, error: &ApiError) -> String {
    match error.code() {
        "separation_of_duties" => {
            let rule = error.details()["rule"].as_str().unwrap_or_default();
            format!("{} (<code>{}</code>).", viewer.t("sod_refused"), esc(rule))
        }
        "not_candidate" => viewer.t("not_candidate").to_string(),
        "task_closed" => viewer.t("task_closed").to_string(),
        "task_claimed" => viewer.t("claimed_other").to_string(),
        "invalid_form" => {
            let fields = error.details()["fields"].as_array().cloned().unwrap_or_default();
            let items: String = fields
                .iter()
                .map(|f| {
                    format!(
                        "<li>{}: {}</li>",
                        esc(f["field"].as_str().unwrap_or("")),
                        esc(f["message"].as_str().unwrap_or(""))
                    )
                })
                .collect();
            format!("{}<ul>{items}</ul>", viewer.t("invalid_form"))
        }
        _ => esc(error.message()),
    }
}

/// `POST /tasks/{id}/claim|unclaim|complete|delegate`.
pub async fn task_action(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((id, action)): Path<(TaskId, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let csrf = form.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str());
    if !viewer.csrf_ok(csrf) {
        return message_page(&viewer, StatusCode::FORBIDDEN, "refused", viewer.t("csrf"));
    }
    let engine = state.engine();
    let caller = &viewer.caller;
    let roles = caller.0.role_refs();
    let result: Result<(), ApiError> = match action.as_str() {
        "claim" => engine.claim(&id, caller.name(), &roles).await.map_err(ApiError::from),
        "unclaim" => engine.unclaim(&id, caller.name()).await.map_err(ApiError::from),
        "delegate" => {
            let to = form.iter().find(|(k, _)| k == "to").map(|(_, v)| v.clone()).unwrap_or_default();
            let body = json!({"to": to}).to_string();
            match crate::server::tasks::delegate_task(state.clone(), caller.clone(), id.clone(), body.as_bytes()).await
            {
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            }
        }
        "complete" => match submitted_form(&state, &id, &form).await {
            Ok(values) => engine.complete_task(&id, caller.name(), &roles, values).await.map_err(ApiError::from),
            Err(e) => Err(e),
        },
        _ => {
            return message_page(
                &viewer,
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("/tasks/{}/{action}", url_path(&id.0)),
            );
        }
    };
    match result {
        Ok(()) if action == "complete" || action == "delegate" => Redirect::to("/inbox?done=1").into_response(),
        Ok(()) => Redirect::to(&format!("/tasks/{}", url_path(&id.0))).into_response(),
        Err(problem) => {
            let status = problem.status();
            match task_page(&state, &viewer, &id, Some(&problem)).await {
                Ok(body) => html(status, body),
                Err(e) => error_page(&viewer, &e),
            }
        }
    }
}

/// The submitted `f.<field>` values as the form's JSON, typed by the process's declaration; an
/// empty optional field is left out.
async fn submitted_form(state: &AppState, id: &TaskId, form: &[(String, String)]) -> Result<Value, ApiError> {
    use cloverleaf_dsl::expr::Type;
    let task = state.engine().task(id).await?;
    let instance = state.engine().instance(&task.instance_id).await?;
    let definition = state.engine().definition(instance.process(), instance.process_version()).await?;
    let fields = form_of(&definition, &task.node);
    let mut values = serde_json::Map::new();
    for field in fields {
        let Some((_, raw)) = form.iter().find(|(k, _)| k.strip_prefix("f.") == Some(field.name.as_str())) else {
            continue;
        };
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let value = match field.ty {
            Type::Bool => Value::Bool(raw == "true"),
            _ => Value::String(raw.to_string()),
        };
        values.insert(field.name, value);
    }
    Ok(Value::Object(values))
}

#[derive(Debug, Deserialize)]
pub struct CasesQuery {
    business_key: Option<String>,
    status: Option<String>,
    process: Option<String>,
}

/// `GET /cases`: the instances the reader may see, newest first, searchable by order number.
pub async fn cases(State(state): State<AppState>, viewer: Viewer, Query(query): Query<CasesQuery>) -> Response {
    let result: Result<String, ApiError> = async {
        let key = query.business_key.as_deref().map(str::trim).filter(|k| !k.is_empty());
        let status = query.status.as_deref().filter(|s| STATUS_WORDS.iter().any(|(v, _)| v == s));
        let seen = Visibility::of(&state, &viewer.caller).await?;
        let process = query.process.as_deref().filter(|p| !p.is_empty());
        let rows = state.engine().store().instances(process, status, key, 5_000, 0).await?;
        let rows: Vec<_> = rows.into_iter().filter(|r| seen.admits(&r.id, &r.process_key, r.process_version)).take(200).collect();
        // Processes by the title their designer gave them, as the inbox names them.
        let mut titles = std::collections::BTreeMap::new();
        for d in state.engine().store().deployments().await? {
            let title = state.engine().definition(&d.key, d.version).await?.title.clone();
            titles.insert(d.key, title);
        }
        let mut process_options = format!("<option value=\"\">{}</option>", viewer.t("all_processes"));
        for (key, title) in &titles {
            let selected = if Some(key.as_str()) == process { " selected" } else { "" };
            let _ = write!(process_options, "<option value=\"{}\"{selected}>{}</option>", esc(key), esc(title));
        }
        let mut status_options = format!("<option value=\"\">{}</option>", viewer.t("all_states"));
        for (value, key) in STATUS_WORDS {
            let selected = if Some(value) == status { " selected" } else { "" };
            let _ = write!(status_options, "<option value=\"{value}\"{selected}>{}</option>", viewer.t(key));
        }
        let mut out = format!(
            "<h1>{}</h1><form method=\"get\" action=\"/cases\" class=\"filters\"><label>{} <input name=\"business_key\" value=\"{}\"></label>\
             <label>{} <select name=\"process\" id=\"process\">{process_options}</select></label>\
             <label>{} <select name=\"status\" id=\"status\">{status_options}</select></label>\
             <button type=\"submit\">{}</button></form><table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
            viewer.t("instances"),
            viewer.t("business_key"),
            esc(key.unwrap_or("")),
            viewer.t("process"),
            viewer.t("status"),
            viewer.t("search"),
            viewer.t("instance"),
            viewer.t("process"),
            viewer.t("status"),
            viewer.t("when"),
        );
        for r in rows {
            let status_word = STATUS_WORDS.iter().find(|(v, _)| *v == r.status).map_or(r.status.as_str(), |(_, k)| viewer.t(k));
            let _ = write!(
                out,
                "<tr data-status=\"{}\"><td><a href=\"/cases/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.status),
                url_path(&r.id),
                esc(r.business_key.as_deref().unwrap_or(&r.id)),
                esc(titles.get(&r.process_key).unwrap_or(&r.process_key)),
                esc(status_word),
                esc(&i18n::time(r.created_at, viewer.zone)),
            );
        }
        out.push_str("</tbody></table>");
        Ok(out)
    }
    .await;
    answer(&viewer, "instances", result)
}

/// The statuses an instance list can be narrowed to, with the catalogue key of their word.
const STATUS_WORDS: [(&str, &str); 4] =
    [("running", "running"), ("completed", "completed"), ("failed", "failed"), ("cancelled", "cancelled")];

/// `GET /cases/{id}`: the diagram with where the instance stands, its data and its history.
pub async fn case(State(state): State<AppState>, viewer: Viewer, Path(id): Path<InstanceId>) -> Response {
    let result: Result<String, ApiError> = async {
        access::may_read(&state, &viewer.caller, &id).await?;
        let engine = state.engine();
        let instance = engine.instance(&id).await?;
        let definition = engine.definition(instance.process(), instance.process_version()).await?;
        let history = engine.history(&id).await?;
        let mut progress = Progress::default();
        for h in &history {
            if let Some(node) = &h.node {
                progress.done.insert(node.clone());
            }
        }
        for node in definition.nodes.iter().filter(|n| matches!(n.kind, NodeKind::Start { .. })) {
            if !history.is_empty() {
                progress.done.insert(node.name.clone());
            }
        }
        for token in instance.tokens().values() {
            progress.current.insert(token.node.clone());
        }
        for incident in instance.incidents().values() {
            progress.incidents.insert(incident.node.clone());
        }
        let money = money_variables(&definition);
        let mut out = format!(
            "<h1>{} <span class=\"muted\">{}</span></h1><p>{}: <b id=\"status\">{}</b></p><section><h2>{}</h2><div class=\"diagram-wrap\">{}</div></section>",
            esc(&definition.title),
            esc(instance.business_key().unwrap_or(id.as_str())),
            viewer.t("status"),
            esc(&format!("{:?}", instance.status()).to_lowercase()),
            viewer.t("diagram"),
            diagram::svg(&definition, &progress, &definition.title),
        );
        let _ = write!(out, "<section><h2>{}</h2><dl class=\"context\">", viewer.t("variables"));
        for name in instance.variables().keys() {
            if definition.node(name).is_some() {
                continue;
            }
            let value = show_value(&viewer, &instance, name, money.contains(name.as_str()));
            let _ = write!(out, "<dt>{}</dt><dd data-var=\"{}\">{}</dd>", esc(&i18n::label(name, viewer.lang)), esc(name), esc(&value));
        }
        let _ = write!(
            out,
            "</dl></section><section><h2>{}</h2><table class=\"history\"><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
            viewer.t("history"),
            viewer.t("when"),
            viewer.t("what"),
            viewer.t("who")
        );
        for h in &history {
            let at = h.at.parse::<DateTime<Utc>>().map(|at| i18n::time(at, viewer.zone)).unwrap_or_else(|_| h.at.clone());
            let who = match (&h.who, &h.on_behalf_of) {
                (Some(w), Some(b)) => format!("{} ({} {})", esc(w), viewer.t("for_whom"), esc(b)),
                (Some(w), None) => esc(w),
                _ => String::new(),
            };
            let what = format!("{}{}", esc(&h.kind.replace('_', " ")), h.node.as_ref().map(|n| format!(" · {}", esc(n))).unwrap_or_default());
            let _ = write!(out, "<tr><td>{}</td><td>{what}</td><td>{who}</td></tr>", esc(&at));
        }
        out.push_str("</tbody></table></section>");
        out.push_str(&ledger_section(&state, &viewer, &instance).await?);
        Ok(page(&viewer, &definition.title, &out))
    }
    .await;
    match result {
        Ok(body) => with_lang(&viewer, html(StatusCode::OK, body)),
        Err(e) => error_page(&viewer, &e),
    }
}

/// The journal lines the case's order produced, for the roles that read finance figures.
async fn ledger_section(state: &AppState, viewer: &Viewer, instance: &Instance) -> Result<String, ApiError> {
    let (Some(ledger), Ok(())) = (state.ledger(), access::may_read_reports(&viewer.caller)) else {
        return Ok(String::new());
    };
    let Some(DslValue::Text(order)) = instance.variables().get("order_id") else { return Ok(String::new()) };
    let lines = ledger.entries_of_order(order).await.map_err(ApiError::internal)?;
    if lines.is_empty() {
        return Ok(String::new());
    }
    let money = |d: Decimal| if d.is_zero() { String::new() } else { i18n::money(d, viewer.lang) };
    let mut out = format!(
        "<section><h2>{}</h2><table class=\"ledger\"><thead><tr><th>#</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        viewer.t("ledger"),
        viewer.t("when"),
        viewer.t("what"),
        viewer.t("account"),
        viewer.t("debit"),
        viewer.t("credit"),
    );
    for l in lines {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td></tr>",
            l.entry,
            l.date,
            esc(&l.description),
            esc(&l.account),
            esc(&l.account_name),
            money(l.debit),
            money(l.credit)
        );
    }
    out.push_str("</tbody></table></section>");
    Ok(out)
}

/// `GET /board`: the figures business and finance share, for the roles that read reports.
pub async fn board(State(state): State<AppState>, viewer: Viewer) -> Response {
    let result: Result<String, ApiError> = async {
        access::may_read_reports(&viewer.caller)?;
        let report = crate::server::reports::report(&state, None).await?;
        let lang = viewer.lang;
        let mut out = format!("<h1>{}</h1>", viewer.t("board"));
        out.push_str(&alerts_section(&state, &viewer).await?);
        if let Some(ledger) = &report.ledger {
            let most = ledger.aging.iter().map(|b| b.amount).max().unwrap_or_default().max(Decimal::ONE);
            let _ = write!(out, "<section><h2>{}</h2><svg class=\"bars\" viewBox=\"0 0 420 {}\" role=\"img\" aria-label=\"{}\">", viewer.t("aging"), ledger.aging.len() * 30 + 10, viewer.t("aging"));
            for (i, bucket) in ledger.aging.iter().enumerate() {
                let width = (bucket.amount * Decimal::from(260) / most).round().to_string().parse::<u32>().unwrap_or(0);
                let y = i * 30 + 8;
                let _ = write!(
                    out,
                    "<a href=\"/board/receivables?bucket={}\"><text x=\"0\" y=\"{}\" font-size=\"12\">{}</text><rect x=\"60\" y=\"{y}\" width=\"{width}\" height=\"20\" fill=\"#3b6ea8\"/>\
                     <text x=\"{}\" y=\"{}\" font-size=\"11\" data-bucket=\"{}\">{}</text></a>",
                    url_path(&bucket.label),
                    y + 15,
                    esc(&bucket.label),
                    66 + width,
                    y + 15,
                    esc(&bucket.label),
                    esc(&i18n::money(bucket.amount, lang)),
                );
            }
            out.push_str("</svg></section>");
            out.push_str(&catalogue_table(&state, &viewer, ledger.as_of).await?);
            out.push_str(&weekly_flow(&state, &viewer, ledger.as_of).await?);
            out.push_str(&profit_by_customer(&state, &viewer, ledger.as_of).await?);
        }
        let _ = write!(
            out,
            "<section><h2>{}</h2><table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>p50 / p95</th><th>{}</th></tr></thead><tbody>",
            viewer.t("cycle_time"),
            viewer.t("process"),
            viewer.t("started"),
            viewer.t("completed"),
            viewer.t("running"),
            viewer.t("sla_breaches")
        );
        let hours = |s: Option<i64>| s.map_or("—".to_string(), |s| format!("{:.1} h", s as f64 / 3600.0));
        for p in &report.processes {
            let _ = write!(
                out,
                "<tr><td><a href=\"/cases?process={}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td></tr>",
                esc(&p.process),
                esc(&p.process),
                p.started,
                p.completed,
                p.running,
                hours(p.cycle_time_p50_seconds),
                hours(p.cycle_time_p95_seconds),
                p.sla_breaches
            );
        }
        out.push_str("</tbody></table></section>");
        out.push_str(&work_by_role(&state, &viewer).await?);
        Ok(out)
    }
    .await;
    answer(&viewer, "board", result)
}

/// `GET /reports/{id}`: a stored month-end report (AR aging by invoice, or gross profit by
/// customer), for the roles that read finance reports.
pub async fn report(State(state): State<AppState>, viewer: Viewer, Path(id): Path<String>) -> Response {
    let id = id.trim_matches('/').to_string();
    let result: Result<String, ApiError> = async {
        access::may_read_reports(&viewer.caller)?;
        let body = crate::server::reports::stored_report(&state, &id).await?;
        Ok(report_html(&viewer, &id, &body))
    }
    .await;
    answer(&viewer, "report", result)
}

/// A row of table cells.
fn row(cells: &[String], tag: &str) -> String {
    let cells: String = cells.iter().map(|c| format!("<{tag}>{c}</{tag}>")).collect();
    format!("<tr>{cells}</tr>")
}

fn report_html(viewer: &Viewer, id: &str, body: &Value) -> String {
    let money = |v: &Value| {
        v.as_str().and_then(|s| s.parse::<Decimal>().ok()).map_or_else(String::new, |d| i18n::money(d, viewer.lang))
    };
    let text = |v: &Value| esc(&v.as_str().map_or_else(|| v.to_string(), str::to_string));
    let heads = |keys: &[&'static str]| row(&keys.iter().map(|k| viewer.t(k).to_string()).collect::<Vec<_>>(), "th");
    let mut out = String::new();
    if let Some(invoices) = body["invoices"].as_array() {
        let _ =
            write!(out, "<h1>{} <span class=\"muted\">{}</span></h1>", viewer.t("aging_report"), text(&body["as_of"]));
        out.push_str("<table class=\"kpis\"><tbody>");
        for bucket in body["buckets"].as_array().into_iter().flatten() {
            out.push_str(&row(&[text(&bucket["label"]), money(&bucket["amount"])], "td"));
        }
        out.push_str(&row(&[viewer.t("total").to_string(), money(&body["total"])], "th"));
        out.push_str("</tbody></table><table><thead>");
        out.push_str(&heads(&["invoice", "customer", "due_date", "days_past_due", "amount_open", "bucket"]));
        out.push_str("</thead><tbody>");
        for line in invoices {
            let cells = [
                text(&line["invoice_id"]),
                text(&line["customer_id"]),
                text(&line["due_date"]),
                text(&line["days_past_due"]),
                money(&line["amount_open"]),
                text(&line["bucket"]),
            ];
            out.push_str(&row(&cells, "td"));
        }
        out.push_str("</tbody></table>");
    } else if let Some(customers) = body["customers"].as_array() {
        let _ = write!(
            out,
            "<h1>{} <span class=\"muted\">{} – {}</span></h1><table><thead>",
            viewer.t("profit_report"),
            text(&body["from"]),
            text(&body["to"])
        );
        out.push_str(&heads(&["customer", "revenue", "cost_of_goods", "gross_profit"]));
        out.push_str("</thead><tbody>");
        for line in customers {
            let cells = [
                text(&line["customer_id"]),
                money(&line["revenue"]),
                money(&line["cost_of_goods"]),
                money(&line["gross_profit"]),
            ];
            out.push_str(&row(&cells, "td"));
        }
        let totals = [
            viewer.t("total").to_string(),
            money(&body["revenue"]),
            money(&body["cost_of_goods"]),
            money(&body["gross_profit"]),
        ];
        out.push_str(&row(&totals, "th"));
        out.push_str("</tbody></table>");
    } else {
        let _ = write!(out, "<h1>{}</h1><pre>{}</pre>", esc(id), esc(&body.to_string()));
    }
    out
}

/// Gross profit by customer over the last 90 days, largest revenue first.
async fn profit_by_customer(state: &AppState, viewer: &Viewer, to: chrono::NaiveDate) -> Result<String, ApiError> {
    let Some(ledger) = state.ledger() else { return Ok(String::new()) };
    let from = to - chrono::TimeDelta::days(89);
    let report = ledger.gross_profit(from, to).await.map_err(ApiError::internal)?;
    let mut customers = report.customers;
    customers.sort_by_key(|c| std::cmp::Reverse(c.revenue));
    let money = |d: Decimal| i18n::money(d, viewer.lang);
    let mut out = format!(
        "<section><h2>{} <span class=\"muted\">{from} – {to}</span></h2><table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>%</th></tr></thead><tbody>",
        viewer.t("profit_report"),
        viewer.t("customer"),
        viewer.t("revenue"),
        viewer.t("cost_of_goods"),
        viewer.t("gross_profit"),
    );
    for line in customers.iter().take(15) {
        let margin = if line.revenue.is_zero() {
            "—".to_string()
        } else {
            format!("{}%", (line.gross_profit * Decimal::from(100) / line.revenue).round_dp(1))
        };
        let _ = write!(
            out,
            "<tr><td><a href=\"/board/orders?customer={c}\">{c}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{margin}</td></tr>",
            money(line.revenue),
            money(line.cost_of_goods),
            money(line.gross_profit),
            c = esc(&line.customer_id),
        );
    }
    let _ = write!(
        out,
        "<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th></th></tr></tbody></table></section>",
        viewer.t("total"),
        money(report.revenue),
        money(report.cost_of_goods),
        money(report.gross_profit)
    );
    Ok(out)
}

/// The indicator catalogue over the last 90 days, each figure with how it is computed and, where
/// one list holds them, a link to the documents behind it.
async fn catalogue_table(state: &AppState, viewer: &Viewer, as_of: chrono::NaiveDate) -> Result<String, ApiError> {
    use cloverleaf_finance::ledger::kpi::{CATALOGUE, Unit, Window};
    let Some(ledger) = state.ledger() else { return Ok(String::new()) };
    let window = Window::last_90_days(as_of);
    let figures = ledger.figures(window, None).await.map_err(ApiError::internal)?;
    let mut out = format!(
        "<section><h2>{} <span class=\"muted\">{} – {}</span></h2><table class=\"kpis\"><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        viewer.t("kpis"),
        window.from,
        window.as_of,
        viewer.t("kpi"),
        viewer.t("value"),
        viewer.t("definition")
    );
    for (definition, figure) in CATALOGUE.iter().zip(figures) {
        let value = match (definition.unit, figure.value) {
            (_, None) => "—".to_string(),
            (Unit::Money, Some(v)) => i18n::money(v, viewer.lang),
            (Unit::Days, Some(v)) => format!("{} {}", v.round_dp(1), viewer.t("days")),
            (Unit::Ratio, Some(v)) => format!("{}%", (v * Decimal::from(100)).round_dp(1)),
        };
        let behind = match definition.key {
            "open_receivables" | "days_sales_outstanding" => Some("/board/receivables"),
            "overdue_receivables" => Some("/board/receivables?overdue=1"),
            "revenue" | "gross_profit" | "gross_margin" => Some("/board/orders"),
            _ => None,
        };
        let value = match behind {
            Some(href) => format!("<a href=\"{href}\">{}</a>", esc(&value)),
            None => esc(&value),
        };
        let (name, formula) = i18n::kpi(viewer.lang, definition.key);
        let _ = write!(
            out,
            "<tr><td>{}</td><td data-kpi=\"{}\">{value}</td><td class=\"muted\">{}</td></tr>",
            esc(name),
            definition.key,
            esc(formula)
        );
    }
    out.push_str("</tbody></table></section>");
    Ok(out)
}

/// Open human tasks and those past their due time, by role (an SLA breach still open is work
/// someone can act on now), and open incidents by process.
async fn work_by_role(state: &AppState, viewer: &Viewer) -> Result<String, ApiError> {
    let store = state.engine().store();
    let now = state.engine().now();
    let mut by_role: std::collections::BTreeMap<String, (i64, i64)> = std::collections::BTreeMap::new();
    for (group, overdue) in store.open_tasks_by_role(None, now).await? {
        let role = group.labels.get(1).cloned().unwrap_or_default();
        let entry = by_role.entry(role).or_default();
        entry.0 += group.count;
        entry.1 += overdue;
    }
    let mut out = format!(
        "<section><h2>{}</h2><table class=\"compact\"><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        viewer.t("work_by_role"),
        viewer.t("role"),
        viewer.t("open_tasks"),
        viewer.t("overdue"),
    );
    for (role, (open, overdue)) in &by_role {
        let mark = if *overdue > 0 { " class=\"overdue\"" } else { "" };
        let _ = write!(
            out,
            "<tr data-role=\"{}\"><td>{}</td><td>{open}</td><td{mark}>{overdue}</td></tr>",
            esc(role),
            esc(role)
        );
    }
    out.push_str("</tbody></table>");
    let incidents = store.open_incident_counts().await?;
    let _ = write!(out, "<h2>{}</h2>", viewer.t("incidents"));
    if incidents.iter().all(|g| g.count == 0) {
        let _ = write!(out, "<p class=\"muted\">0</p>");
    } else {
        out.push_str("<ul>");
        for g in incidents.iter().filter(|g| g.count > 0) {
            let process = g.labels.first().cloned().unwrap_or_default();
            let _ = write!(
                out,
                "<li><a href=\"/cases?process={}&amp;status=running\">{}</a>: {}</li>",
                url_path(&process),
                esc(&process),
                g.count
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");
    Ok(out)
}

/// A figure in its indicator's unit, as a reader of the page writes it.
fn figure_text(viewer: &Viewer, indicator: &str, value: Decimal) -> String {
    use cloverleaf_finance::ledger::kpi::{Unit, definition};
    match definition(indicator).map(|d| d.unit) {
        Some(Unit::Money) => i18n::money(value, viewer.lang),
        Some(Unit::Days) => format!("{} {}", value.round_dp(1), viewer.t("days")),
        Some(Unit::Ratio) => format!("{}%", (value * Decimal::from(100)).round_dp(1)),
        None => value.to_string(),
    }
}

/// The open alerts, most recent first, each with what it judged and, for those who handle
/// alerts, a button to acknowledge it.
async fn alerts_section(state: &AppState, viewer: &Viewer) -> Result<String, ApiError> {
    let Some(ledger) = state.ledger() else { return Ok(String::new()) };
    let alerts = ledger.alerts(true).await.map_err(ApiError::internal)?;
    let handler = crate::server::alerts::ALERT_HANDLERS.iter().any(|r| viewer.caller.has(r));
    let mut out = format!("<section class=\"alerts\"><h2>{}</h2>", viewer.t("alerts"));
    if alerts.is_empty() {
        let _ = write!(out, "<p class=\"muted\">{}</p>", viewer.t("no_alerts"));
    }
    for alert in &alerts {
        let (name, _) = i18n::kpi(viewer.lang, &alert.indicator);
        let whom = if alert.subject.is_empty() {
            String::new()
        } else {
            format!(
                " · <a href=\"/board/receivables?customer={}\">{}</a>",
                url_path(&alert.subject),
                esc(&alert.subject)
            )
        };
        let seen = match &alert.acknowledged_by {
            Some(who) => format!("<span class=\"muted\">{} {}</span>", viewer.t("acknowledged_by"), esc(who)),
            None if handler => format!(
                "<form method=\"post\" action=\"/board/alerts/{}/acknowledge\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">{}</button></form>",
                alert.id,
                viewer.csrf,
                viewer.t("acknowledge")
            ),
            None => String::new(),
        };
        let _ = write!(
            out,
            "<div class=\"alert {}\" data-alert=\"{}\"><p><strong>{}</strong> {}{whom}</p><p>{}: {} ({} {}) · {} {}</p>{seen}</div>",
            esc(&alert.severity),
            alert.id,
            viewer.t(if alert.severity == "critical" { "critical" } else { "warning" }),
            esc(&alert.title),
            esc(name),
            esc(&figure_text(viewer, &alert.indicator, alert.last_value)),
            viewer.t("threshold"),
            esc(&figure_text(viewer, &alert.indicator, alert.threshold)),
            viewer.t("since"),
            esc(&i18n::time(alert.opened_at, viewer.zone)),
        );
    }
    out.push_str("</section>");
    Ok(out)
}

/// `POST /board/alerts/{id}/acknowledge`: the controller, the CFO or an administrator has seen
/// an alert.
pub async fn acknowledge_alert(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !viewer.csrf_ok(form.csrf.as_deref()) {
        return message_page(&viewer, StatusCode::FORBIDDEN, "refused", viewer.t("csrf"));
    }
    let result: Result<(), ApiError> = async {
        viewer.caller.require_any(crate::server::alerts::ALERT_HANDLERS, "acknowledge alerts")?;
        let ledger = state.ledger().ok_or_else(|| ApiError::not_found("this server keeps no sub-ledger"))?;
        let now = state.engine().now();
        match ledger.acknowledge_alert(id, viewer.caller.name(), now).await.map_err(ApiError::internal)? {
            Some(_) => Ok(()),
            None => Err(ApiError::not_found(format!("no alert {id}"))),
        }
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/board").into_response(),
        Err(e) => error_page(&viewer, &e),
    }
}

/// Weeks the board's chart of invoiced and received amounts covers.
const FLOW_WEEKS: i64 = 12;

/// Invoiced and received per week over the last [`FLOW_WEEKS`] weeks, as paired bars with the
/// figures in a table beneath (the chart for the eye, the table for the exact cents).
async fn weekly_flow(state: &AppState, viewer: &Viewer, to: chrono::NaiveDate) -> Result<String, ApiError> {
    let Some(ledger) = state.ledger() else { return Ok(String::new()) };
    let from = to - chrono::TimeDelta::days(7 * FLOW_WEEKS - 1);
    let weeks = ledger.weekly_flow(from, to).await.map_err(ApiError::internal)?;
    let most = weeks.iter().flat_map(|w| [w.invoiced, w.received]).max().unwrap_or_default().max(Decimal::ONE);
    let height = |amount: Decimal| (amount * Decimal::from(120) / most).round().to_string().parse::<u32>().unwrap_or(0);
    let (width, step) = (30 * weeks.len() + 20, 30);
    let mut out = format!(
        "<section><h2>{}</h2><p class=\"legend\"><span class=\"key invoiced\"></span>{} <span class=\"key received\"></span>{}</p>\
         <svg class=\"flow\" viewBox=\"0 0 {width} 160\" role=\"img\" aria-label=\"{}\">",
        viewer.t("weekly_flow"),
        viewer.t("invoiced"),
        viewer.t("received"),
        viewer.t("weekly_flow"),
    );
    for (i, week) in weeks.iter().enumerate() {
        let x = 10 + i * step;
        let (hi, hr) = (height(week.invoiced), height(week.received));
        let _ = write!(
            out,
            "<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"{hi}\" fill=\"#3b6ea8\"><title>{} {}</title></rect>\
             <rect x=\"{}\" y=\"{}\" width=\"12\" height=\"{hr}\" fill=\"#4f9a6b\"><title>{} {}</title></rect>\
             <text x=\"{x}\" y=\"155\" font-size=\"9\">{}</text>",
            140 - hi,
            viewer.t("invoiced"),
            esc(&i18n::money(week.invoiced, viewer.lang)),
            x + 13,
            140 - hr,
            viewer.t("received"),
            esc(&i18n::money(week.received, viewer.lang)),
            week.week_start.format("%m-%d"),
        );
    }
    let _ = write!(
        out,
        "</svg><table class=\"compact\"><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        viewer.t("week_of"),
        viewer.t("invoiced"),
        viewer.t("received"),
    );
    for week in weeks.iter().rev() {
        let _ = write!(
            out,
            "<tr data-week=\"{}\"><td>{}</td><td>{}</td><td>{}</td></tr>",
            week.week_start,
            week.week_start,
            esc(&i18n::money(week.invoiced, viewer.lang)),
            esc(&i18n::money(week.received, viewer.lang)),
        );
    }
    out.push_str("</tbody></table></section>");
    Ok(out)
}

/// What the figure pages may be narrowed to.
#[derive(Debug, Deserialize)]
pub struct FiguresQuery {
    /// An aging bucket's label (`0-30`, `31-60`, `61-90`, `90+`).
    bucket: Option<String>,
    /// A customer id.
    customer: Option<String>,
    /// Only invoices past their due date.
    overdue: Option<String>,
}

/// The order's case, found by its business key (a page the reader's own rights then filter).
fn order_link(order: &str) -> String {
    format!("<a href=\"/cases?business_key={}\">{}</a>", url_path(order), esc(order))
}

/// `GET /board/receivables`: the open invoices behind the aging, DSO and open receivables
/// figures, by bucket or customer, each linked to its order (finance readers).
pub async fn receivables(State(state): State<AppState>, viewer: Viewer, Query(query): Query<FiguresQuery>) -> Response {
    let result: Result<String, ApiError> = async {
        access::may_read_reports(&viewer.caller)?;
        let ledger = state.ledger().ok_or_else(|| ApiError::not_found("this server keeps no sub-ledger"))?;
        let today = state.engine().now().date_naive();
        let aging = ledger.aging(today).await.map_err(ApiError::internal)?;
        let bucket = query.bucket.as_deref().filter(|b| !b.is_empty());
        let customer = query.customer.as_deref().map(str::trim).filter(|c| !c.is_empty());
        let overdue = query.overdue.as_deref().is_some_and(|o| !o.is_empty() && o != "0");
        let lines: Vec<_> = aging
            .invoices
            .iter()
            .filter(|l| bucket.is_none_or(|b| l.bucket == b) && customer.is_none_or(|c| l.customer_id == c))
            .filter(|l| !overdue || l.days_past_due > 0)
            .collect();
        let total: Decimal = lines.iter().map(|l| l.amount_open).sum();
        let narrowed: Vec<String> = [
            bucket.map(|b| format!("{} {b}", viewer.t("bucket"))),
            customer.map(|c| format!("{} {c}", viewer.t("customer"))),
            overdue.then(|| viewer.t("overdue").to_string()),
        ]
            .into_iter()
            .flatten()
            .collect();
        let mut out = format!(
            "<h1>{} <span class=\"muted\">{today}{}</span></h1><p><a href=\"/board\">{}</a></p><table><thead>",
            viewer.t("open_receivables"),
            esc(&narrowed.iter().map(|n| format!(" · {n}")).collect::<String>()),
            viewer.t("back"),
        );
        let heads: Vec<String> =
            ["invoice", "business_key", "customer", "due_date", "days_past_due", "amount_open", "bucket"].iter().map(|k| viewer.t(k).to_string()).collect();
        out.push_str(&row(&heads, "th"));
        out.push_str("</thead><tbody>");
        for line in &lines {
            let cells = [
                esc(&line.invoice_id),
                line.order_id.as_deref().map_or_else(|| "—".to_string(), order_link),
                format!("<a href=\"/board/receivables?customer={}\">{}</a>", url_path(&line.customer_id), esc(&line.customer_id)),
                line.due_date.to_string(),
                line.days_past_due.to_string(),
                esc(&i18n::money(line.amount_open, viewer.lang)),
                esc(&line.bucket),
            ];
            out.push_str(&row(&cells, "td"));
        }
        let _ = write!(
            out,
            "</tbody><tfoot><tr><th>{}</th><th></th><th></th><th></th><th></th><th data-total=\"open\">{}</th><th>{}</th></tr></tfoot></table>",
            viewer.t("total"),
            esc(&i18n::money(total, viewer.lang)),
            lines.len(),
        );
        Ok(out)
    }
    .await;
    answer(&viewer, "open_receivables", result)
}

/// `GET /board/orders`: gross profit by order over the board's 90 days, optionally of one
/// customer: the orders behind the gross margin and the by-customer table (finance readers).
pub async fn orders(State(state): State<AppState>, viewer: Viewer, Query(query): Query<FiguresQuery>) -> Response {
    let result: Result<String, ApiError> = async {
        access::may_read_reports(&viewer.caller)?;
        let ledger = state.ledger().ok_or_else(|| ApiError::not_found("this server keeps no sub-ledger"))?;
        let to = state.engine().now().date_naive();
        let from = to - chrono::TimeDelta::days(89);
        let customer = query.customer.as_deref().map(str::trim).filter(|c| !c.is_empty());
        let orders: Vec<_> = ledger
            .gross_profit_by_order(from, to)
            .await
            .map_err(ApiError::internal)?
            .into_iter()
            .filter(|o| customer.is_none_or(|c| o.customer_id == c))
            .collect();
        let money = |d: Decimal| esc(&i18n::money(d, viewer.lang));
        let mut out = format!(
            "<h1>{} <span class=\"muted\">{from} – {to}{}</span></h1><p><a href=\"/board\">{}</a></p><table><thead>",
            viewer.t("profit_by_order"),
            customer.map_or_else(String::new, |c| format!(" · {} {}", viewer.t("customer"), esc(c))),
            viewer.t("back"),
        );
        let heads: Vec<String> = ["business_key", "customer", "revenue", "cost_of_goods", "gross_profit"]
            .iter()
            .map(|k| viewer.t(k).to_string())
            .chain(["%".to_string()])
            .collect();
        out.push_str(&row(&heads, "th"));
        out.push_str("</thead><tbody>");
        let (mut revenue, mut cost) = (Decimal::ZERO, Decimal::ZERO);
        for o in &orders {
            revenue += o.revenue;
            cost += o.cost_of_goods;
            let margin = if o.revenue.is_zero() {
                "—".to_string()
            } else {
                format!("{}%", (o.gross_profit * Decimal::from(100) / o.revenue).round_dp(1))
            };
            let cells = [
                order_link(&o.order_id),
                format!("<a href=\"/board/orders?customer={}\">{}</a>", url_path(&o.customer_id), esc(&o.customer_id)),
                money(o.revenue),
                money(o.cost_of_goods),
                money(o.gross_profit),
                margin,
            ];
            out.push_str(&row(&cells, "td"));
        }
        let _ = write!(
            out,
            "</tbody><tfoot><tr><th>{}</th><th></th><th>{}</th><th>{}</th><th data-total=\"gross_profit\">{}</th><th></th></tr></tfoot></table>",
            viewer.t("total"),
            money(revenue),
            money(cost),
            money(revenue - cost),
        );
        Ok(out)
    }
    .await;
    answer(&viewer, "profit_by_order", result)
}

/// `GET /ops`: open incidents with a retry button (administrators).
pub async fn operations(State(state): State<AppState>, viewer: Viewer) -> Response {
    let result: Result<String, ApiError> = async {
        viewer.caller.require(ADMIN, "operate")?;
        let incidents = state.engine().store().incidents(false, None).await?;
        let mut out = format!("<h1>{}</h1>{}<h2>{}</h2>", viewer.t("operations"), deploy_form(&viewer, ""), viewer.t("incidents"));
        if incidents.is_empty() {
            out.push_str("<p class=\"empty\">—</p>");
        }
        for i in incidents {
            let _ = write!(
                out,
                "<div class=\"incident\"><p><a href=\"/cases/{}\">{}</a> · {} · {}</p>\
                 <form method=\"post\" action=\"/ops/incidents/{}/retry\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">{}</button></form></div>",
                url_path(&i.instance_id),
                esc(&i.instance_id),
                esc(&i.node),
                esc(&i.message),
                url_path(&i.id),
                viewer.csrf,
                viewer.t("retry"),
            );
        }
        Ok(out)
    }
    .await;
    answer(&viewer, "operations", result)
}

/// The form that deploys a `.flow` source, holding `source`.
fn deploy_form(viewer: &Viewer, source: &str) -> String {
    format!(
        "<section><h2>{}</h2><form method=\"post\" action=\"/ops/deploy\" class=\"decision\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><label for=\"filename\">file</label>\
         <input id=\"filename\" name=\"filename\" value=\"definition.flow\"><label for=\"source\">.flow</label>\
         <textarea id=\"source\" name=\"source\" rows=\"12\" spellcheck=\"false\" required>{}</textarea>\
         <button type=\"submit\" id=\"deploy\">{}</button></form></section>",
        viewer.t("deploy"),
        viewer.csrf,
        esc(source),
        viewer.t("deploy_button")
    )
}

#[derive(Debug, Deserialize)]
pub struct DeployForm {
    csrf: Option<String>,
    filename: Option<String>,
    source: String,
}

/// `POST /ops/deploy`: compiles and deploys a `.flow` source (administrators); diagnostics are
/// shown as the compiler prints them, with the source line and a caret, and the form keeps the text.
pub async fn deploy(State(state): State<AppState>, viewer: Viewer, Form(form): Form<DeployForm>) -> Response {
    if !viewer.csrf_ok(form.csrf.as_deref()) {
        return message_page(&viewer, StatusCode::FORBIDDEN, "refused", viewer.t("csrf"));
    }
    if let Err(e) = viewer.caller.require(ADMIN, "deploy processes") {
        return error_page(&viewer, &e);
    }
    let name = form.filename.filter(|n| !n.trim().is_empty() && !n.chars().any(char::is_control));
    let name = name.unwrap_or_else(|| "definition.flow".to_string());
    let source = form.source.replace("\r\n", "\n");
    let (status, outcome) = match crate::server::definitions::deploy_source(&state, name, source.clone()).await {
        Ok(done) => {
            let versions: Vec<String> =
                done.processes.iter().map(|p| format!("{} v{}", esc(&p.key), p.version)).collect();
            let mut out = format!(
                "<p class=\"notice\" role=\"status\" id=\"outcome\">{}: {}</p>",
                viewer.t("deployed"),
                versions.join(", ")
            );
            if !done.warnings.is_empty() {
                let rendered: String = done.warnings.iter().map(|w| esc(&w.rendered)).collect::<Vec<_>>().join("\n");
                let _ = write!(out, "<h3>{}</h3><pre class=\"diagnostics\">{rendered}</pre>", viewer.t("warnings"));
            }
            (StatusCode::OK, out)
        }
        Err(e) => {
            let rendered: Vec<String> = e.details()["diagnostics"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d["rendered"].as_str().map(esc))
                .collect();
            let body = if rendered.is_empty() { esc(e.message()) } else { rendered.join("\n") };
            let out = format!(
                "<div class=\"notice refusal\" role=\"alert\" id=\"outcome\"><p>{}</p><pre class=\"diagnostics\">{body}</pre></div>",
                viewer.t("diagnostics")
            );
            (e.status(), out)
        }
    };
    let body = format!("<h1>{}</h1>{outcome}{}", viewer.t("operations"), deploy_form(&viewer, &source));
    with_lang(&viewer, html(status, page(&viewer, viewer.t("deploy"), &body)))
}

/// `POST /ops/incidents/{id}/retry`.
pub async fn retry_incident(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<IncidentId>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !viewer.csrf_ok(form.csrf.as_deref()) {
        return message_page(&viewer, StatusCode::FORBIDDEN, "refused", viewer.t("csrf"));
    }
    if let Err(e) = viewer.caller.require(ADMIN, "retry incidents") {
        return error_page(&viewer, &e);
    }
    match state.engine().retry_incident(&id).await {
        Ok(()) => Redirect::to("/ops").into_response(),
        Err(e) => error_page(&viewer, &ApiError::from(e)),
    }
}

/// A value as plain text: JSON's form without quotes around text.
fn plain_text(value: &DslValue) -> String {
    match value.to_json() {
        Value::String(s) => s,
        other => other.to_string(),
    }
}
