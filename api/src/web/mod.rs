//! The pages people use: sign-in, the inbox, a task with its decision form, a case with its
//! diagram and history, the finance board with the month's budgets, the customer letters and
//! operations, in English and Simplified Chinese.
//!
//! Server-rendered HTML that works without JavaScript, compiled into the binary with its
//! stylesheet. Pages call the same engine operations and the same permission checks as `/v1`
//! (`server::access`, the engine's candidate and separation-of-duties checks): there is no
//! second path to the data.
//!
//! Sessions: a bearer token (the same one the API takes), or a user name with the password whose
//! argon2id hash `cloverleaf.toml` holds, is exchanged at sign-in for a cookie holding the user
//! name and an expiry, signed with HMAC-SHA256 under a key drawn at start-up (HttpOnly,
//! SameSite=Strict, Secure behind HTTPS). Every form carries a CSRF token derived from the
//! session; the sign-in forms a double-submitted one. Password guessing is braked per user name
//! ([`throttle`]). Every page is served with a strict Content-Security-Policy (no script, no
//! inline style, nothing from elsewhere).

mod csv;
mod dates;
mod diagnostics;
mod diagram;
pub mod i18n;
mod journal;
mod pages;
pub mod throttle;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::server::AppState;
use crate::server::auth::Caller;
use i18n::Lang;

/// How long a session lasts.
const SESSION_SECONDS: u64 = 8 * 3600;
/// The session cookie.
const SESSION_COOKIE: &str = "clv_session";
/// The language cookie.
const LANG_COOKIE: &str = "clv_lang";
/// The sign-in form's double-submitted CSRF cookie.
const LOGIN_CSRF_COOKIE: &str = "clv_login";

/// The paths the pages answer; everything else is the API's (and needs a bearer token).
pub const PAGE_PREFIXES: &[&str] = &[
    "/login",
    "/logout",
    "/inbox",
    "/tasks/",
    "/cases",
    "/board",
    "/reports/",
    "/letters",
    "/ops",
    "/away",
    "/static/",
];

/// True when `path` is one of the pages (which authenticate by cookie, not bearer token).
pub fn is_page(path: &str) -> bool {
    path == "/"
        || PAGE_PREFIXES.iter().any(|p| {
            let p = p.trim_end_matches('/');
            path.strip_prefix(p).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
}

/// The pages, to be merged into the API's router.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/inbox") }))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", get(|uri: Uri| async move { form_page("/inbox", &uri) }).post(pages::logout))
        .route("/inbox", get(pages::inbox))
        .route("/tasks/{id}", get(pages::task))
        .route(
            "/tasks/{id}/{action}",
            get(|uri: Uri| async move {
                let task = uri.path().rsplit_once('/').map_or("/inbox", |(task, _)| task).to_string();
                form_page(&task, &uri)
            })
            .post(pages::task_action),
        )
        .route("/away", get(pages::away).post(pages::set_away))
        .route("/cases", get(pages::cases))
        .route("/cases/{id}", get(pages::case))
        .route("/board", get(pages::board))
        .route("/board/receivables", get(pages::receivables))
        .route("/board/receivables.csv", get(pages::receivables_csv))
        .route("/board/orders", get(pages::orders))
        .route("/board/orders.csv", get(pages::orders_csv))
        .route(
            "/board/alerts/{id}/acknowledge",
            get(|uri: Uri| async move { form_page("/board", &uri) }).post(pages::acknowledge_alert),
        )
        .route("/board/budgets", get(|uri: Uri| async move { form_page("/board", &uri) }).post(pages::set_budget))
        .route("/reports/{id}", get(pages::report))
        .route("/letters", get(pages::letters))
        .route(
            "/letters/{id}/retry",
            get(|uri: Uri| async move { form_page("/letters", &uri) }).post(pages::retry_letter),
        )
        .route("/ops", get(pages::operations))
        .route(
            "/ops/incidents/{id}/retry",
            get(|uri: Uri| async move { form_page("/ops", &uri) }).post(pages::retry_incident),
        )
        .route(
            "/ops/deploy",
            get(|uri: Uri| async move { form_page("/ops", &uri) })
                .post(pages::deploy)
                .layer(axum::extract::DefaultBodyLimit::max(6 * 1024 * 1024)),
        )
        .route("/static/app.css", get(stylesheet))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// True for a browser's `GET` of an address outside the API (`/v1/...`, `/metrics`): one that
/// asks for HTML and sends no token.
pub fn is_browser_visit(request: &Request) -> bool {
    let path = request.uri().path();
    let html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    request.method() == axum::http::Method::GET
        && html
        && !path.starts_with("/v1/")
        && path != "/v1"
        && path != "/metrics"
}

/// The answer to a browser at an address that is no page: a 404 page in the reader's language
/// when they are signed in, the sign-in page otherwise.
pub async fn no_such_page(state: &AppState, request: Request) -> Response {
    let (mut parts, _) = request.into_parts();
    match Viewer::from_request_parts(&mut parts, state).await {
        Ok(viewer) => pages::no_such_page(&viewer, parts.uri.path()),
        Err(refusal) => refusal.into_response(),
    }
}

/// A `GET` of an address only forms post to (a reload of the page a form answered, a bookmark, a
/// language switch): the page `to` the form is on, with the query (its language) kept. Nothing
/// is done again.
fn form_page(to: &str, uri: &Uri) -> Response {
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    Redirect::to(&format!("{to}{query}")).into_response()
}

async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("app.css")).into_response()
}

/// The headers of every page: nothing runs but what the page is, and nothing is cached.
async fn security_headers(request: Request, next: Next) -> Response {
    let secure = forwarded_https(request.headers());
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if secure {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    response
}

/// True behind a TLS-terminating proxy that says so: cookies then carry `Secure`.
fn forwarded_https(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// HTML-escapes text for element content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// HTML-escapes text for element content, keeping each hyphenated word (an order number
/// `SO-1001`, an invoice `2026-000042`) on one line: browsers otherwise break after the hyphen.
pub fn esc_keeping_ids(text: &str) -> String {
    let id_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(start) = rest.find(id_char) {
        out.push_str(&esc(&rest[..start]));
        let run = &rest[start..];
        let end = run.find(|c: char| !id_char(c)).unwrap_or(run.len());
        let word = &run[..end];
        // Hyphens at a run's edges are dashes or signs, not part of an id.
        let core = word.trim_matches('-');
        let lead = word.len() - word.trim_start_matches('-').len();
        if core.contains('-') {
            out.push_str(&word[..lead]);
            out.push_str("<span class=\"nowrap\">");
            out.push_str(core);
            out.push_str("</span>");
            out.push_str(&word[lead + core.len()..]);
        } else {
            out.push_str(word);
        }
        rest = &run[end..];
    }
    out.push_str(&esc(rest));
    out
}

/// Percent-encodes an id for a path segment. Ids the engine makes need nothing; an id from a
/// store written before ids were URL-safe holds `/`, which becomes `%2F`.
pub fn url_path(id: &str) -> String {
    let mut out = String::new();
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'@') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hmac(key: &[u8; 32], message: &str) -> String {
    // HMAC-SHA256 (RFC 2104) over the 64-byte block.
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let inner_key: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let outer_key: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new().chain_update(&inner_key).chain_update(message.as_bytes()).finalize();
    let outer = Sha256::new().chain_update(&outer_key).chain_update(inner).finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two strings in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, the whole site, Secure behind HTTPS.
fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"))
        .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// The signed session cookie value for `user`: `user:expires:nonce:signature`. The nonce makes
/// each sign-in a session of its own (two in one second included), which signing out ends alone.
fn session_value(state: &AppState, user: &str) -> String {
    let expires = now_secs() + SESSION_SECONDS;
    let mut nonce = [0u8; 12];
    let _ = getrandom::fill(&mut nonce);
    let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let payload = format!("{user}:{expires}:{nonce}");
    format!("{payload}:{}", hmac(state.session_key(), &payload))
}

/// The page's reader: the signed-in user, their language and time zone, and the CSRF token of
/// their forms.
pub struct Viewer {
    /// The user, as the API's handlers know a caller.
    pub caller: Caller,
    /// Their language.
    pub lang: Lang,
    /// Their time zone.
    pub zone: chrono_tz::Tz,
    /// The token every form of theirs carries.
    pub csrf: String,
    /// Their session: its id (derived from the cookie, never the cookie) and its expiry, so that
    /// signing out can end it.
    session: (String, chrono::DateTime<chrono::Utc>),
    /// The page the reader is on (path and query), which the language switch reloads: the one
    /// asked for, or after a form's `POST` the page the form was on.
    here: String,
    /// The titles of the deployed processes' roles, for a refusal that names a role.
    pub roles: std::sync::Arc<crate::server::RoleTitles>,
}

/// Why a page cannot be shown to this request.
pub enum Refusal {
    /// No session, or an expired one: sign in (again).
    SignIn { expired: bool, lang: Lang },
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::SignIn { expired, .. } => {
                let to = if expired { "/login?expired=1" } else { "/login" };
                Redirect::to(to).into_response()
            }
        }
    }
}

/// The language of a request: `?lang=`, then the cookie, then `Accept-Language`.
pub fn lang_of(headers: &HeaderMap, uri: &Uri) -> Lang {
    let asked = uri.query().and_then(|q| {
        q.split('&').filter_map(|p| p.split_once('=')).find(|(k, _)| *k == "lang").and_then(|(_, v)| Lang::parse(v))
    });
    asked.or_else(|| cookie(headers, LANG_COOKIE).and_then(Lang::parse)).unwrap_or_else(|| {
        Lang::from_accept(headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or(""))
    })
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let lang = lang_of(&parts.headers, &parts.uri);
        let Some(value) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(Refusal::SignIn { expired: false, lang });
        };
        let mut fields = value.rsplitn(4, ':');
        let (Some(signature), Some(nonce), Some(expires), Some(user)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(Refusal::SignIn { expired: false, lang });
        };
        let payload = format!("{user}:{expires}:{nonce}");
        if !same(signature, &hmac(state.session_key(), &payload)) {
            return Err(Refusal::SignIn { expired: false, lang });
        }
        let Some(expires) = expires.parse::<u64>().ok().filter(|e| *e >= now_secs()) else {
            return Err(Refusal::SignIn { expired: true, lang });
        };
        // A user removed from the configuration is signed out.
        let Some(user) = state.users().get(user) else { return Err(Refusal::SignIn { expired: true, lang }) };
        // A session signed out is over on every node, even where a copy of its cookie survives.
        let session = hmac(state.session_key(), &format!("session:{value}"))[..32].to_string();
        match state.engine().session_ended(&session).await {
            Ok(false) => {}
            Ok(true) => return Err(Refusal::SignIn { expired: false, lang }),
            Err(e) => {
                tracing::error!(user = user.name, "a session could not be checked: {e}");
                return Err(Refusal::SignIn { expired: false, lang });
            }
        }
        let until =
            i64::try_from(expires).ok().and_then(|e| chrono::DateTime::from_timestamp(e, 0)).unwrap_or_default();
        let zone = user.time_zone.unwrap_or(chrono_tz::UTC);
        let csrf = hmac(state.session_key(), &format!("csrf:{value}"))[..32].to_string();
        let here = page_here(parts);
        let roles = state.role_titles().await;
        Ok(Viewer { caller: Caller(user), lang, zone, csrf, session: (session, until), here, roles })
    }
}

/// The page a request is on, as a path and query: a `GET`'s own; for any other method the page
/// its form was sent from (the `Referer`, which the pages' referrer policy keeps to this origin),
/// and the inbox when there is none or it is not one of the pages.
fn page_here(parts: &Parts) -> String {
    if parts.method == axum::http::Method::GET {
        return parts.uri.path_and_query().map_or("/inbox", |p| p.as_str()).to_string();
    }
    let referer = parts.headers.get(header::REFERER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let after_scheme = referer.split_once("://").map_or("", |(_, rest)| rest);
    let path_and_query = after_scheme.find('/').map_or("", |at| &after_scheme[at..]);
    let path_and_query = path_and_query.split('#').next().unwrap_or_default();
    let path = path_and_query.split('?').next().unwrap_or_default();
    if path.starts_with("//") || !is_page(path) || path == "/login" {
        return "/inbox".to_string();
    }
    path_and_query.to_string()
}

/// `here` (a path and query) in language `lang`: its `lang` parameter replaced, every other
/// parameter kept as it was written.
pub fn in_language(here: &str, lang: Lang) -> String {
    with_parameter(here, "lang", Some(lang.tag()))
}

/// `here` (a path and query) with parameter `name` set to `value` (left out for `None`), every
/// other parameter kept as it was written. `value` is a plain word or number (not encoded).
pub fn with_parameter(here: &str, name: &str, value: Option<&str>) -> String {
    let (path, query) = here.split_once('?').unwrap_or((here, ""));
    let mut pairs: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && *p != name && p.split_once('=').is_none_or(|(n, _)| n != name))
        .collect();
    let asked = value.map(|v| format!("{name}={v}"));
    pairs.extend(asked.as_deref());
    if pairs.is_empty() { path.to_string() } else { format!("{path}?{}", pairs.join("&")) }
}

impl Viewer {
    /// The address of this page in the other language.
    pub fn other_language_href(&self) -> String {
        let other = match self.lang {
            Lang::En => Lang::ZhCn,
            Lang::ZhCn => Lang::En,
        };
        in_language(&self.here, other)
    }

    /// True when a submitted CSRF token is this session's.
    pub fn csrf_ok(&self, submitted: Option<&str>) -> bool {
        submitted.is_some_and(|s| same(s, &self.csrf))
    }

    /// The word for `key` in the reader's language.
    pub fn t(&self, key: &'static str) -> &'static str {
        self.lang.t(key)
    }

    /// Ends this session on every node: its cookie, even a copy of it, opens nothing any more.
    pub async fn end_session(&self, state: &AppState) -> Result<(), cloverleaf_engine::runtime::Error> {
        let now =
            chrono::DateTime::from_timestamp(i64::try_from(now_secs()).unwrap_or(i64::MAX), 0).unwrap_or_default();
        state.engine().end_session(&self.session.0, self.session.1, now).await
    }
}

/// A page response with its status.
pub fn html(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::{esc_keeping_ids, is_page, with_parameter};

    #[test]
    fn a_parameter_is_set_once_and_the_others_are_kept_as_written() {
        assert_eq!(with_parameter("/inbox", "page", Some("2")), "/inbox?page=2");
        assert_eq!(with_parameter("/inbox?page=1&customer=C-7", "page", Some("3")), "/inbox?customer=C-7&page=3");
        assert_eq!(with_parameter("/inbox?done=1&overdue=1", "done", None), "/inbox?overdue=1");
        assert_eq!(with_parameter("/inbox?done", "done", None), "/inbox");
        // A parameter whose name only begins the same is another one.
        assert_eq!(with_parameter("/cases?pages=9", "page", Some("2")), "/cases?pages=9&page=2");
    }

    #[test]
    fn hyphenated_words_stay_whole_and_the_rest_is_escaped_as_written() {
        assert_eq!(
            esc_keeping_ids("Approve order SO-1001 for <C-004>  now"),
            "Approve order <span class=\"nowrap\">SO-1001</span> for &lt;<span class=\"nowrap\">C-004</span>&gt;  now"
        );
        assert_eq!(
            esc_keeping_ids("审批订单 SO-00042 — 加急"),
            "审批订单 <span class=\"nowrap\">SO-00042</span> — 加急"
        );
        assert_eq!(esc_keeping_ids("- a list - item -5.00"), "- a list - item -5.00");
        assert_eq!(esc_keeping_ids("C-004（Delft BV）"), "<span class=\"nowrap\">C-004</span>（Delft BV）");
        assert_eq!(esc_keeping_ids(""), "");
    }

    #[test]
    fn a_page_is_its_path_or_below_it_never_a_longer_name() {
        for page in ["/", "/board", "/board/receivables", "/tasks/t-1", "/ops", "/ops/incidents/x/retry", "/cases"] {
            assert!(is_page(page), "{page}");
        }
        // Unknown paths beside a page's name are the API's: without a token they answer 401.
        for api in ["/boardroom", "/opsx", "/casesx", "/v1/instances", "/inboxes"] {
            assert!(!is_page(api), "{api}");
        }
    }
}
