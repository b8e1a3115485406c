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

use std::collections::BTreeSet;
use std::fmt::Write as _;

use axum::http::{StatusCode, header};
use axum::response::Response;
use cloverleaf_dsl::expr::Value as DslValue;
use cloverleaf_dsl::model::{FormField, NodeKind};
use cloverleaf_engine::Instance;
use serde::Deserialize;
use serde_json::Value;

use super::i18n::{self, Lang};
use super::{LANG_COOKIE, Viewer, esc, html};
use crate::server::access;
use crate::server::config::ADMIN;
use crate::server::error::ApiError;

pub use away::{away, set_away};
pub use board::{acknowledge_alert, board};
pub use budgets::set_budget;
pub use cases::{case, cases};
pub use figures::{orders, receivables, report};
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
         <a href=\"?lang={other}\" hreflang=\"{other}\">{switch}</a>\
         <form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\">{signout}</button></form></div></header><main>{body}</main></body></html>",
        lang = viewer.lang.tag(),
        title = esc(title),
        app = viewer.t("app"),
        signed = viewer.t("signed_in_as"),
        user = esc(viewer.caller.name()),
        away = viewer.t("away"),
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
        StatusCode::GONE => message_page(viewer, StatusCode::GONE, "archived", &archived_text(viewer, error)),
        status if status.is_server_error() => message_page(viewer, status, "error", viewer.t("error_text")),
        status => message_page(viewer, status, "refused", error.message()),
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
        .replace("{at}", &super::i18n::time(at, viewer.zone))
        .replace("{archive}", archive)
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

/// A variable's value for a reader: money with its currency, times in their zone; a dash while
/// it holds nothing.
fn show_value(viewer: &Viewer, instance: &Instance, name: &str, money: bool) -> String {
    instance.variables().get(name).map_or_else(|| "—".to_string(), |value| show(viewer, value, money))
}

/// A value for a reader: money with its currency, times in their zone; a dash for no value and
/// for empty text alike, which a reader cannot tell apart (a blank reads as a fault of the page).
fn show(viewer: &Viewer, value: &DslValue, money: bool) -> String {
    match value {
        DslValue::Null => "—".to_string(),
        DslValue::Text(text) if text.trim().is_empty() => "—".to_string(),
        DslValue::Number(n) if money => i18n::money(*n, viewer.lang),
        DslValue::DateTime(at) => i18n::time(*at, viewer.zone),
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
