//! The page handlers: each checks who is asking, calls the engine the way `/v1` does, and
//! renders HTML in the reader's language. One module per area; this one holds the frame of every
//! page and the helpers several areas share.

mod away;
mod board;
mod budgets;
mod cases;
mod figures;
mod history;
mod letters;
mod operations;
mod sign_in;
mod tasks;

use std::fmt::Write as _;

use axum::http::{StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, Utc};
use cloverleaf_dsl::CompiledProcess;
use cloverleaf_dsl::expr::Value as DslValue;
use cloverleaf_dsl::model::{FormField, NodeKind};
use cloverleaf_engine::Instance;
use serde::Deserialize;
use serde_json::Value;

use super::i18n::{self, Lang, money_variables};
use super::{LANG_COOKIE, Viewer, esc, html};
use crate::server::access;
use crate::server::config::ADMIN;
use crate::server::error::ApiError;

pub use away::{away, set_away};
pub use board::{acknowledge_alert, board};
pub use budgets::set_budget;
pub use cases::{case, cases};
pub use figures::{orders, orders_csv, receivables, receivables_csv, report};
pub use letters::{letters, retry_letter};
pub use operations::{deploy, operations, retry_incident};
pub use sign_in::{login, login_form, logout};
pub use tasks::{inbox, task, task_action};

/// The frame of every page: navigation for what the reader may use, the language switch, sign-out.
fn page(viewer: &Viewer, title: &str, body: &str) -> String {
    let mut nav =
        format!("<a href=\"/inbox\">{}</a><a href=\"/cases\">{}</a>", viewer.t("inbox"), viewer.t("instances"));
    if access::may_read_reports(&viewer.caller).is_ok() {
        let _ = write!(nav, "<a href=\"/board\">{}</a>", viewer.t("board"));
    }
    if letters::may_read(viewer) {
        let _ = write!(nav, "<a href=\"/letters\">{}</a>", viewer.t("letters"));
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
         <div class=\"me\"><span>{signed} <b id=\"me\">{user}</b></span><a href=\"/away\">{away}</a>\
         <a href=\"{switch_href}\" hreflang=\"{other}\">{switch}</a>\
         <form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\">{signout}</button></form></div></header><main>{body}</main></body></html>",
        lang = viewer.lang.tag(),
        title = esc(title),
        app = viewer.t("app"),
        signed = viewer.t("signed_in_as"),
        user = esc(viewer.caller.name()),
        away = viewer.t("away"),
        switch = viewer.t("language"),
        switch_href = esc(&viewer.other_language_href()),
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

/// The 404 page of an address that is none of the pages.
pub fn no_such_page(viewer: &Viewer, path: &str) -> Response {
    let text = viewer.t("no_such_page").replace("{path}", path);
    message_page(viewer, StatusCode::NOT_FOUND, "not_found", &text)
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
        StatusCode::NOT_FOUND => {
            message_page(viewer, StatusCode::NOT_FOUND, "not_found", &error_text(viewer, error, None))
        }
        StatusCode::FORBIDDEN => {
            message_page(viewer, StatusCode::FORBIDDEN, "forbidden", &error_text(viewer, error, None))
        }
        StatusCode::GONE => message_page(viewer, StatusCode::GONE, "archived", &archived_text(viewer, error)),
        status if status.is_server_error() => message_page(viewer, status, "error", viewer.t("error_text")),
        status => message_page(viewer, status, "refused", &error_text(viewer, error, None)),
    }
}

/// An error as a sentence in the reader's language (plain text), built from its code and
/// details; roles are named by their titles, `process`'s where the refusal concerns one. A code
/// the pages do not word keeps the API's message.
fn error_text(viewer: &Viewer, error: &ApiError, process: Option<&CompiledProcess>) -> String {
    let details = error.details();
    let text = |key: &'static str| viewer.t(key).to_string();
    let roles = |value: &Value| {
        let names: Vec<String> = value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|role| role_title(viewer, process, role))
            .collect();
        i18n::or_list(viewer.lang, &names)
    };
    // The first name the API's message quotes: the user, task or thing it is about.
    let quoted = || error.message().split('`').nth(1).unwrap_or_default().to_string();
    match error.code() {
        "missing_role" => {
            let required = if details["required_role"].is_string() {
                Value::Array(vec![details["required_role"].clone()])
            } else if details["required_roles"].is_array() {
                details["required_roles"].clone()
            } else {
                details["start_by"].clone()
            };
            let count = required.as_array().map_or(0, Vec::len);
            if count == 0 {
                return error.message().to_string();
            }
            // `sam` may not read the finance reports: that needs ...
            let action = error
                .message()
                .split_once(" may not ")
                .and_then(|(_, rest)| rest.split_once(": "))
                .and_then(|(action, _)| i18n::action(viewer.lang, &action.replace('`', "")))
                .unwrap_or_else(|| text("do_this"));
            viewer
                .t(if count == 1 { "err_role_one" } else { "err_role_any" })
                .replace("{action}", &action)
                .replace("{roles}", &roles(&required))
        }
        "not_candidate" => match (details["assigned"].as_bool(), details["roles"].as_array()) {
            (Some(true), _) => text("err_not_yours_assigned"),
            (_, Some(list)) if !list.is_empty() => {
                viewer.t("err_not_yours_roles").replace("{roles}", &roles(&details["roles"]))
            }
            _ => text("not_candidate"),
        },
        "delegate_not_candidate" => viewer
            .t("err_delegate_roles")
            .replace("{user}", details["user"].as_str().unwrap_or_default())
            .replace("{roles}", &roles(&details["roles"])),
        "not_reader" => text("err_not_reader"),
        "separation_of_duties" => sod_text(viewer, error, process, None),
        "invalid_substitute" => {
            let unknown = details["fields"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|f| f["message"].as_str().is_some_and(|m| m.contains("not a user")));
            if unknown {
                viewer.t("away_unknown").replace("{name}", &quoted())
            } else if error.message().contains("for themselves") {
                text("away_self")
            } else if error.message().contains("name is empty") {
                text("err_no_user_name")
            } else {
                error.message().to_string()
            }
        }
        "delegation_loop" => viewer.t("err_delegation_loop").replace("{user}", &quoted()),
        "task_closed" => text("task_closed"),
        "task_claimed" => text("claimed_other"),
        "not_claimed" => text("err_not_claimed"),
        "not_dead" => text("not_dead"),
        "incident_closed" | "job_closed" => text("err_incident_closed"),
        "invalid_state" | "conflict" => text("err_changed"),
        "not_found" => not_found_text(viewer, error),
        "not_a_list" => text("err_not_a_list"),
        "unknown_bucket" => {
            viewer.t("err_unknown_bucket").replace("{bucket}", details["bucket"].as_str().unwrap_or_default())
        }
        _ => error.message().to_string(),
    }
}

/// What a reader calls `role`: its title as `process` carries it, else as the deployed
/// processes or the server know it.
fn role_title(viewer: &Viewer, process: Option<&CompiledProcess>, role: &str) -> String {
    match process {
        Some(p) if p.role_titles.contains_key(role) => i18n::role_title(viewer.lang, p, role).to_string(),
        _ => i18n::role_name(viewer.lang, role, &viewer.roles),
    }
}

/// A 404 in words: the kind of thing that is missing and its name, as the API's details give
/// them (`what`, `id`). A 404 without them keeps its message.
fn not_found_text(viewer: &Viewer, error: &ApiError) -> String {
    let details = error.details();
    let id = details["id"].as_str().unwrap_or_default();
    let thing = match details["what"].as_str().unwrap_or_default() {
        "instance" => "thing_case",
        "task" => "thing_task",
        "job" => "thing_job",
        "incident" => "thing_incident",
        "report" => "thing_report",
        "alert" => "thing_alert",
        "indicator" => "thing_indicator",
        "route" => "thing_page",
        "letter" => "thing_letter",
        "process" => return viewer.t("err_not_deployed").replace("{id}", id),
        "version" => {
            let version = details["version"].as_u64().map(|v| v.to_string()).unwrap_or_default();
            return viewer.t("err_no_version").replace("{id}", id).replace("{version}", &version);
        }
        "ledger" => return viewer.t("err_no_ledger").to_string(),
        _ => return error.message().to_string(),
    };
    viewer.t("err_not_found").replace("{what}", viewer.t(thing)).replace("{id}", id)
}

/// A separation-of-duties refusal in words: who may not act here, said as the rule means it
/// (`not by requested_by`: the requester and whoever entered the request for them; `not by
/// x.completed_by`: whoever decided step x), for the reader or for the person refused.
/// `process` is the task's process; `instance` (with the time now), where at hand, fills the
/// placeholders of a step's title.
fn sod_text(
    viewer: &Viewer,
    error: &ApiError,
    process: Option<&CompiledProcess>,
    instance: Option<(&Instance, DateTime<Utc>)>,
) -> String {
    let details = error.details();
    let rule = details["rule"].as_str().unwrap_or_default().trim_start_matches("not by").trim();
    let who = match rule.split_once('.') {
        Some((step, "completed_by")) => {
            let title = process
                .and_then(|p| {
                    let template = i18n::node_title(viewer.lang, p.node(step)?)?;
                    match instance {
                        Some((i, now)) => Some(i18n::render_title(viewer.lang, p, template, i.variables(), now)),
                        None => (!template.contains('{')).then(|| template.to_string()),
                    }
                })
                .unwrap_or_else(|| step.replace('_', " "));
            Some(viewer.t("sod_decided").replace("{step}", &title))
        }
        Some(_) => None,
        None if rule.is_empty() => None,
        None if process.and_then(|p| p.access.requester.as_deref()) == Some(rule) => {
            Some(viewer.t("sod_requester").to_string())
        }
        None => Some(viewer.t("sod_named").replace("{label}", &i18n::label(rule, viewer.lang))),
    };
    let Some(who) = who else {
        let stop = if viewer.lang == Lang::ZhCn { "。" } else { "." };
        return format!("{}{stop}", viewer.t("sod_refused"));
    };
    match details["user"].as_str().filter(|user| *user != viewer.caller.name()) {
        Some(user) => viewer.t("sod_not_by_other").replace("{user}", user).replace("{who}", &who),
        None => viewer.t("sod_not_by").replace("{who}", &who),
    }
}

/// Where an archived case went, in the reader's words: its order (or process), when in the
/// reader's time zone, and into which archive; the error's own message if its details lack them.
fn archived_text(viewer: &Viewer, error: &ApiError) -> String {
    let details = error.details();
    let at = details["archived_at"].as_str().and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok());
    let case = details["business_key"].as_str().or_else(|| details["process"].as_str());
    let (Some(at), Some(archive), Some(case)) = (at, details["archive"].as_str(), case) else {
        return error.message().to_string();
    };
    viewer
        .t("archived_text")
        .replace("{case}", case)
        .replace("{at}", &super::i18n::time(at, viewer.zone, viewer.lang))
        .replace("{archive}", archive)
}

/// Which rows of a long list a page shows, from its `page` parameter (from 1; a page past the
/// end shows the last one).
struct Shown {
    page: usize,
    pages: usize,
    first: usize,
    total: usize,
    per_page: usize,
    /// The list was cut at `total` before it was paged: older rows exist, and the catalogue key
    /// of the sentence that says so.
    cut: Option<&'static str>,
}

impl Shown {
    fn of(asked: Option<&str>, total: usize, per_page: usize) -> Shown {
        let pages = total.div_ceil(per_page).max(1);
        // A number past the end (however large) asks for the last page; anything else, the first.
        let page = match asked.map(str::trim) {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse::<usize>().unwrap_or(pages),
            _ => 1,
        };
        let page = page.clamp(1, pages);
        Shown { page, pages, first: (page - 1) * per_page, total, per_page, cut: None }
    }

    /// Marks the list as cut short at its total, said by `sentence` (a catalogue key with
    /// `{from}`, `{to}` and `{total}`).
    fn cut(mut self, cut: bool, sentence: &'static str) -> Shown {
        self.cut = cut.then_some(sentence);
        self
    }

    /// Where the reader is in the list and the links to the pages around, keeping the page's
    /// filters; nothing for a list that fits on one page and was not cut.
    fn pager(&self, viewer: &Viewer) -> String {
        if self.total == 0 || (self.pages <= 1 && self.cut.is_none()) {
            return String::new();
        }
        let last = (self.first + self.per_page).min(self.total);
        let range = viewer
            .t(self.cut.unwrap_or("shown_range"))
            .replace("{from}", &(self.first + 1).to_string())
            .replace("{to}", &last.to_string())
            .replace("{total}", &self.total.to_string());
        let here = crate::web::with_parameter(&viewer.here, "done", None);
        let link = |page: usize, key: &'static str, rel: &str| {
            let href = crate::web::with_parameter(&here, "page", Some(&page.to_string()));
            format!(" <a href=\"{}\" rel=\"{rel}\">{}</a>", esc(&href), viewer.t(key))
        };
        let mut out = format!(
            "<nav class=\"pager\" aria-label=\"{}\"><span data-range>{}</span>",
            viewer.t("pages"),
            esc(&range)
        );
        if self.page > 1 {
            out.push_str(&link(self.page - 1, "previous_page", "prev"));
        }
        if self.page < self.pages {
            out.push_str(&link(self.page + 1, "next_page", "next"));
        }
        out.push_str("</nav>");
        out
    }
}

/// The decision form of approval `node`.
fn form_of(definition: &cloverleaf_dsl::CompiledProcess, node: &str) -> Vec<FormField> {
    match definition.node(node).map(|n| &n.kind) {
        Some(NodeKind::Approval { form, .. }) => form.clone(),
        _ => Vec::new(),
    }
}

/// A variable's value for a reader: money with its currency, times in their zone; a dash while
/// it holds nothing.
fn show_value(viewer: &Viewer, instance: &Instance, name: &str, money: bool) -> String {
    let value = instance.variables().get(name);
    // A code the reference processes write (a match's result, a risk not rated yet) in words.
    if let Some(DslValue::Text(code)) = value
        && let Some(word) = i18n::value_word(viewer.lang, name, code)
    {
        return word.to_string();
    }
    value.map_or_else(|| "—".to_string(), |value| show(viewer, value, money))
}

/// A value for a reader: money with its currency, times in their zone; a dash for no value and
/// for empty text alike, which a reader cannot tell apart (a blank reads as a fault of the page).
fn show(viewer: &Viewer, value: &DslValue, money: bool) -> String {
    match value {
        DslValue::Null => "—".to_string(),
        DslValue::Text(text) if text.trim().is_empty() => "—".to_string(),
        DslValue::Number(n) if money => i18n::money(*n, viewer.lang),
        DslValue::DateTime(at) => i18n::time(*at, viewer.zone, viewer.lang),
        DslValue::Bool(b) => viewer.t(if *b { "yes" } else { "no" }).to_string(),
        other => plain_text(other),
    }
}

/// A form that carries nothing but its CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// A value as plain text: JSON's form without quotes around text.
fn plain_text(value: &DslValue) -> String {
    match value.to_json() {
        Value::String(s) => s,
        other => other.to_string(),
    }
}
