//! `/healthz`, `/metrics`, `/openapi.json`.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use cloverleaf_engine::store::Queries as _;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};

/// The server's health.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// ok, or unavailable when the database does not answer.
    pub status: String,
    /// The engine's clock.
    pub time: DateTime<Utc>,
}

/// Liveness and database reachability; needs no token.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses(
        (status = 200, description = "Serving", body = Health),
        (status = 503, description = "The database does not answer", body = Health),
    )
)]
pub async fn healthz(State(state): State<AppState>) -> Response {
    let engine = state.engine();
    let (status, word) = match engine.store().ping().await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(error) => {
            tracing::error!(%error, "health check: the database does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
    };
    (status, axum::Json(Health { status: word.to_string(), time: engine.now() })).into_response()
}

/// Prometheus metrics: instances by state, steps, jobs, timers due and late, tasks by role,
/// incidents, request latencies.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition 0.0.4", body = String, content_type = "text/plain"),
        (status = 401, description = "No or an unknown token", body = ErrorBody),
        (status = 403, description = "Neither admin nor metrics", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn metrics(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    super::access::may_read_metrics(&caller)?;
    let text = super::metrics::render(&state).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response())
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", body = Object)),
    security(("bearer" = []))
)]
pub async fn openapi(_caller: Caller) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], super::openapi::json()).into_response()
}
