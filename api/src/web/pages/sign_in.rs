//! Signing in (by personal token, or by user name and password, braked per name) and out.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{CsrfForm, error_page, message_page};
use crate::server::AppState;
use crate::server::config::{User, canonical_user};
use crate::web::i18n::Lang;
use crate::web::{
    LANG_COOKIE, LOGIN_CSRF_COOKIE, SESSION_COOKIE, SESSION_SECONDS, Viewer, cookie, esc, forwarded_https, html,
    lang_of, same, session_value, set_cookie,
};

/// What `GET /login` may be asked: after an expired session, in a language.
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

/// `POST /logout`.
pub async fn logout(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !viewer.csrf_ok(form.csrf.as_deref()) {
        return message_page(&viewer, StatusCode::FORBIDDEN, "refused", viewer.t("csrf"));
    }
    // Ended on the server first: the cookie removed below is only this browser's copy.
    if let Err(e) = viewer.end_session(&state).await {
        tracing::error!(user = viewer.caller.name(), "a session could not be ended: {e}");
        return error_page(&viewer, &e.into());
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", 0, forwarded_https(&headers)));
    response
}
