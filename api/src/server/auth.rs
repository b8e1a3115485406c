//! Bearer-token authentication: every path but `/healthz` needs `Authorization: Bearer <token>`.
//!
//! The middleware runs before routing, so an unknown path answers 401 to a caller without a
//! token rather than telling them what exists.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::config::User;
use super::error::ApiError;

/// The paths anyone may call.
const OPEN_PATHS: &[&str] = &["/healthz"];

/// The authenticated caller, put in the request's extensions by [`authenticate`].
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<User>);

impl Caller {
    /// The user's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// True when the caller holds `role`.
    pub fn has(&self, role: &str) -> bool {
        self.0.has(role)
    }

    /// 403 unless the caller holds `role`.
    pub fn require(&self, role: &str, to: &str) -> Result<(), ApiError> {
        if self.has(role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "missing_role",
                format!("`{}` may not {to}: that needs the `{role}` role", self.0.name),
            )
            .with_details(serde_json::json!({"required_role": role, "user": self.0.name})))
        }
    }

    /// 403 unless the caller holds one of `roles`.
    pub fn require_any(&self, roles: &[&str], to: &str) -> Result<(), ApiError> {
        if roles.iter().any(|r| self.has(r)) {
            Ok(())
        } else {
            let list = roles.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(" or ");
            Err(ApiError::forbidden(
                "missing_role",
                format!("`{}` may not {to}: that needs the {list} role", self.0.name),
            )
            .with_details(serde_json::json!({"required_roles": roles, "user": self.0.name})))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("send `Authorization: Bearer <token>`"))
    }
}

/// Checks the bearer token and records the caller; 401 when it is missing or unknown.
pub async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    // The pages sign people in with a session cookie of their own (`crate::web`).
    if OPEN_PATHS.contains(&request.uri().path()) || crate::web::is_page(request.uri().path()) {
        return next.run(request).await;
    }
    let Some(header) = request.headers().get(AUTHORIZATION) else {
        // A person's browser at an address that is neither a page nor the API gets a page.
        if crate::web::is_browser_visit(&request) {
            return crate::web::no_such_page(&state, request).await;
        }
        return ApiError::unauthorized("send `Authorization: Bearer <token>`").into_response();
    };
    let token = header.to_str().ok().and_then(|h| {
        let (scheme, token) = h.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return ApiError::unauthorized("the Authorization header must be `Bearer <token>`").into_response();
    };
    let Some(user) = state.users().authenticate(token) else {
        return ApiError::unauthorized("unknown token").into_response();
    };
    request.extensions_mut().insert(Caller(user));
    next.run(request).await
}
