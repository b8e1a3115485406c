//! `/v1/incidents` (admin): what is stuck, and the operator's retry.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use cloverleaf_engine::IncidentId;
use cloverleaf_engine::store::Queries as _;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Caller;
use super::config::ADMIN;
use super::error::{ApiError, ErrorBody};
use super::extract::{Path, Query};

/// An incident: a job out of retries, or an error nobody catches.
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentView {
    /// The id.
    pub id: String,
    /// The instance.
    pub instance_id: String,
    /// The instance's process.
    pub process: String,
    /// The node it is stuck at.
    pub node: String,
    /// The job, if a job ran out of retries.
    pub job_id: Option<String>,
    /// What went wrong.
    pub message: String,
    /// open or resolved.
    pub state: String,
    /// When it was raised.
    pub raised_at: DateTime<Utc>,
}

/// Filters of the incident list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct IncidentParams {
    /// Only this instance.
    pub instance: Option<String>,
    /// Resolved ones too (default: open only).
    pub all: Option<bool>,
}

/// Lists incidents, oldest first (admin).
#[utoipa::path(
    get, path = "/v1/incidents", tag = "incidents",
    params(IncidentParams),
    responses(
        (status = 200, description = "Incidents", body = Vec<IncidentView>),
        (status = 403, description = "Not an admin", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<IncidentParams>,
) -> Result<axum::Json<Vec<IncidentView>>, ApiError> {
    caller.require(ADMIN, "list incidents")?;
    let rows = state.engine().store().incidents(params.all.unwrap_or(false), params.instance.as_deref()).await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|i| IncidentView {
                id: i.id.to_string(),
                instance_id: i.instance_id.to_string(),
                process: i.process_key,
                node: i.node,
                job_id: i.job_id.map(|j| j.to_string()),
                message: i.message,
                state: i.state.to_string(),
                raised_at: i.raised_at,
            })
            .collect(),
    ))
}

/// The incident after a retry.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetryView {
    /// The incident.
    pub id: String,
    /// resolved: its job runs again, or its node is re-entered.
    pub state: String,
}

/// Retries an incident (admin): its job runs again with fresh retries, or its node is re-entered.
#[utoipa::path(
    post, path = "/v1/incidents/{id}/retry", tag = "incidents",
    params(("id" = String, Path, description = "The incident id")),
    responses(
        (status = 200, description = "Retried", body = RetryView),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No open incident with this id", body = ErrorBody),
        (status = 409, description = "Resolved meanwhile", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<IncidentId>,
) -> Result<Response, ApiError> {
    caller.require(ADMIN, "retry incidents")?;
    state.engine().retry_incident(&id).await?;
    Ok(axum::Json(RetryView { id: id.0, state: "resolved".to_string() }).into_response())
}
