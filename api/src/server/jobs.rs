//! The external-job API (`worker` role): fetch-and-lock with long polling, then complete, fail,
//! raise a business error or extend the lease, each fenced by the lock's epoch.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use cloverleaf_engine::JobId;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;
use utoipa::ToSchema;

use super::AppState;
use super::auth::Caller;
use super::config::WORKER;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, RawBody, parse_json};
use super::views::JobView;

/// Longest long poll.
const MAX_WAIT_MS: u64 = 60_000;
/// Longest lease.
const MAX_LOCK_MS: u64 = 24 * 3600 * 1000;
/// Most jobs in one fetch.
const MAX_JOBS: usize = 1000;
/// How often a long poll looks again without a signal (retries coming due, leases running out).
const POLL: Duration = Duration::from_millis(250);

/// Lock jobs for a worker.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FetchRequest {
    /// The worker's name (recorded as the lock owner).
    pub worker_id: String,
    /// Job types; `*` matches any run of characters (`finance.*`, `*`).
    pub topics: Vec<String>,
    /// At most this many jobs (1 to 1000).
    pub max_jobs: usize,
    /// The lease in milliseconds (1 ms to 24 h); complete or extend before it runs out.
    pub lock_ms: u64,
    /// Wait up to this long (at most 60,000 ms) for a job when none is due; default 0.
    pub wait_ms: Option<u64>,
}

fn bad(field: &str, message: &str) -> ApiError {
    ApiError::bad_request("invalid_request", format!("{field}: {message}"))
        .with_details(json!({"fields": [{"field": field, "message": message}]}))
}

/// Locks due jobs of the topics; with `wait_ms`, waits for one to come due.
#[utoipa::path(
    post, path = "/v1/jobs/fetch-and-lock", tag = "jobs",
    request_body = FetchRequest,
    responses(
        (status = 200, description = "The jobs locked (possibly none)", body = Vec<JobView>),
        (status = 400, description = "Malformed JSON, an unknown field, or a value out of range", body = ErrorBody),
        (status = 403, description = "Not a worker", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn fetch_and_lock(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<FetchRequest>,
) -> Result<axum::Json<Vec<JobView>>, ApiError> {
    caller.require(WORKER, "fetch jobs")?;
    let worker = request.worker_id.trim();
    if worker.is_empty() {
        return Err(bad("worker_id", "must not be empty"));
    }
    if request.topics.is_empty() || request.topics.iter().any(|t| t.trim().is_empty()) {
        return Err(bad("topics", "name at least one job type, none empty"));
    }
    if !(1..=MAX_JOBS).contains(&request.max_jobs) {
        return Err(bad("max_jobs", "must be between 1 and 1000"));
    }
    if !(1..=MAX_LOCK_MS).contains(&request.lock_ms) {
        return Err(bad("lock_ms", "must be between 1 and 86400000 (24 hours)"));
    }
    let wait_ms = request.wait_ms.unwrap_or(0);
    if wait_ms > MAX_WAIT_MS {
        return Err(bad("wait_ms", "must be at most 60000"));
    }
    let lease = TimeDelta::milliseconds(i64::try_from(request.lock_ms).unwrap_or(i64::MAX));
    let engine = state.engine();
    let topics: Vec<&str> = request.topics.iter().map(|t| t.trim()).collect();
    let owned: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    // Subscribed before the first look, so a job created in between is not missed.
    let mut signal = Some(engine.job_signal());
    let mut waiting = None;
    // A request's first look fetches at once: a busy worker's next request mostly finds a job
    // due, and a read first cost it one more round trip (on PostgreSQL a read of the queue's index
    // about as dear as the fetch). Later looks read first, which keeps idle long polls and wake-ups
    // for other job types off the writer: a fetch is a write transaction.
    let mut first_look = true;
    loop {
        if std::mem::take(&mut first_look) || engine.has_due_jobs(&owned).await? {
            let jobs = engine.fetch_and_lock(worker, &topics, request.max_jobs, lease).await?;
            if !jobs.is_empty() {
                return Ok(axum::Json(jobs.into_iter().map(|job| JobView::locked(job, lease)).collect()));
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(axum::Json(Vec::new()));
        }
        let (_, stopping) = waiting.get_or_insert_with(|| state.wait_for_jobs());
        if *stopping.borrow() {
            return Ok(axum::Json(Vec::new()));
        }
        let nap = POLL.min(deadline - now);
        let woken = async {
            match signal.as_mut() {
                Some(rx) => rx.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            alive = woken => {
                if !alive {
                    signal = None;
                }
            }
            _ = stopping.changed() => {}
            () = tokio::time::sleep(nap) => {}
        }
    }
}

/// A job's result.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteJobRequest {
    /// The lock epoch the job was fetched with.
    pub epoch: i64,
    /// The result the task's `out` mappings read (money as decimal strings).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: serde_json::Map<String, Value>,
}

/// Completes a job the worker holds.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/complete", tag = "jobs",
    params(("id" = String, Path, description = "The job id (it contains `/`: send it as is or percent-encoded)")),
    request_body = CompleteJobRequest,
    responses(
        (status = 204, description = "Completed"),
        (status = 400, description = "Malformed JSON or an unknown field", body = ErrorBody),
        (status = 403, description = "Not a worker", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "A stale epoch or an expired lease", body = ErrorBody),
        (status = 422, description = "A result the task's output mappings cannot read", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<JobId>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(WORKER, "complete jobs")?;
    let request: CompleteJobRequest = parse_json(&body)?;
    state.engine().complete_job(&id, request.epoch, Value::Object(request.variables)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A failed attempt (technical).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailJobRequest {
    /// The lock epoch.
    pub epoch: i64,
    /// What went wrong (shown on the incident when retries run out).
    pub message: String,
}

/// Reports a failed attempt: retried with the task's backoff, then an incident.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/fail", tag = "jobs",
    params(("id" = String, Path, description = "The job id")),
    request_body = FailJobRequest,
    responses(
        (status = 204, description = "Recorded"),
        (status = 400, description = "Malformed JSON or an unknown field", body = ErrorBody),
        (status = 403, description = "Not a worker", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "A stale epoch or an expired lease", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn fail(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<JobId>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(WORKER, "fail jobs")?;
    let request: FailJobRequest = parse_json(&body)?;
    state.engine().fail_job(&id, request.epoch, &request.message).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A business error.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorJobRequest {
    /// The lock epoch.
    pub epoch: i64,
    /// The error code the task's `on error` catches (`customer_blocked`).
    pub code: String,
    /// Words for the log.
    pub message: Option<String>,
}

/// Raises a business error: the task's `on error` takes it, else an incident.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/error", tag = "jobs",
    params(("id" = String, Path, description = "The job id")),
    request_body = ErrorJobRequest,
    responses(
        (status = 204, description = "Recorded"),
        (status = 400, description = "Malformed JSON or an unknown field", body = ErrorBody),
        (status = 403, description = "Not a worker", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "A stale epoch or an expired lease", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn error(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<JobId>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(WORKER, "raise job errors")?;
    let request: ErrorJobRequest = parse_json(&body)?;
    if request.code.trim().is_empty() {
        return Err(bad("code", "must not be empty"));
    }
    if let Some(message) = &request.message {
        tracing::info!(job = %id, code = %request.code, %message, "business error");
    }
    state.engine().business_error(&id, request.epoch, request.code.trim()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A longer lease.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendLockRequest {
    /// The lock epoch.
    pub epoch: i64,
    /// The new lease from now, in milliseconds (1 ms to 24 h).
    pub lock_ms: u64,
}

/// The lease now in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct LockView {
    /// The job.
    pub id: String,
    /// The epoch (unchanged).
    pub epoch: i64,
    /// The lease's new end.
    pub lock_expires_at: DateTime<Utc>,
}

/// Extends a lease the worker still holds.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/extend-lock", tag = "jobs",
    params(("id" = String, Path, description = "The job id")),
    request_body = ExtendLockRequest,
    responses(
        (status = 200, description = "Extended", body = LockView),
        (status = 400, description = "Malformed JSON, an unknown field, or a lease out of range", body = ErrorBody),
        (status = 403, description = "Not a worker", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "A stale epoch or an expired lease", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn extend_lock(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<JobId>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(WORKER, "extend job locks")?;
    let request: ExtendLockRequest = parse_json(&body)?;
    if !(1..=MAX_LOCK_MS).contains(&request.lock_ms) {
        return Err(bad("lock_ms", "must be between 1 and 86400000 (24 hours)"));
    }
    let lease = TimeDelta::milliseconds(i64::try_from(request.lock_ms).unwrap_or(i64::MAX));
    let until = state.engine().extend_lock(&id, request.epoch, lease).await?;
    Ok(axum::Json(LockView { id: id.0, epoch: request.epoch, lock_expires_at: until }).into_response())
}
