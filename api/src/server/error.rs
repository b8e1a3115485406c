//! The one error shape of the API, `{"error": {"code", "message", "details"}}`, and how engine
//! errors map onto HTTP status codes.
//!
//! 5xx bodies stay generic ("internal error"); what went wrong is logged with `tracing`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cloverleaf_engine::Rejection;
use cloverleaf_engine::runtime::Error as EngineError;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

/// An error answer: a status, a stable machine-readable code, words for people, and details.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Value,
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorInfo,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorInfo {
    /// Stable, machine-readable: `invalid_json`, `unauthorized`, `not_candidate`,
    /// `separation_of_duties`, `not_found`, `task_claimed`, `stale_lock`, `invalid_form`,
    /// `compile_error`, `internal`...
    pub code: String,
    /// For people.
    pub message: String,
    /// Structured detail: the fields at fault, the rule that refused, the diagnostics. A 404
    /// names what is missing: `what` (`instance`, `task`, `job`, `incident`, `process`,
    /// `version`, `report`, `alert`, `indicator`, `letter`, `route`, `ledger`) and `id`.
    #[schema(value_type = Object)]
    pub details: Value,
}

impl ApiError {
    /// An error with no details.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), details: json!({}) }
    }

    /// Adds structured details.
    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = details;
        self
    }

    /// 400: the request is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no token, or one the server does not know.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: the caller may not do this.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 404: no such thing.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 404 for a thing of kind `what` (`instance`, `task`, `job`, `incident`, `process`,
    /// `report`, `alert`, `indicator`, `letter`, `route`) named `id`, both in the details, so
    /// that a client tells what is missing without reading the message.
    pub fn missing(what: &'static str, id: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::not_found(message).with_details(json!({"what": what, "id": id.into()}))
    }

    /// 404: this server runs without the finance sub-ledger (`details.what` is `ledger`).
    pub fn no_ledger() -> ApiError {
        ApiError::not_found("this server runs without the finance sub-ledger").with_details(json!({"what": "ledger"}))
    }

    /// 409: the state changed under the caller.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    /// 422: well-formed, but breaks the process's types or rules.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 500: logs `detail` and answers a generic body.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The words for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The structured details.
    pub fn details(&self) -> &Value {
        &self.details
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorInfo { code: self.code.to_string(), message: self.message, details: self.details },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

fn fields(fields: &[(String, String)]) -> Value {
    json!({ "fields": fields.iter().map(|(f, m)| json!({"field": f, "message": m})).collect::<Vec<_>>() })
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> ApiError {
        let message = rejection.to_string();
        match &rejection {
            Rejection::InvalidInput { fields: f } => {
                ApiError::unprocessable("invalid_input", message).with_details(fields(f))
            }
            Rejection::InvalidForm { fields: f } => {
                ApiError::unprocessable("invalid_form", message).with_details(fields(f))
            }
            Rejection::InvalidOutput { fields: f } => {
                ApiError::unprocessable("invalid_output", message).with_details(fields(f))
            }
            Rejection::SeparationOfDuties { rule, user } => ApiError::forbidden("separation_of_duties", message)
                .with_details(json!({"rule": format!("not by {rule}"), "user": user})),
            Rejection::UnknownTask { .. } => ApiError::conflict("task_closed", message),
            Rejection::UnknownJob { .. } => ApiError::conflict("job_closed", message),
            Rejection::JobInIncident { .. } => ApiError::conflict("job_in_incident", message),
            Rejection::JobNotInIncident { .. } | Rejection::UnknownIncident { .. } => {
                ApiError::conflict("incident_closed", message)
            }
            Rejection::InvalidState { .. } => ApiError::conflict("invalid_state", message),
            Rejection::UnknownStart { .. } => ApiError::unprocessable("unknown_start", message),
            Rejection::DelegationLoop { .. } => ApiError::unprocessable("delegation_loop", message),
            Rejection::StepLimit { .. } => ApiError::unprocessable("step_limit", message),
            Rejection::UnknownTimer { .. }
            | Rejection::TimerNotDue { .. }
            | Rejection::UnknownSubscription { .. }
            | Rejection::UnknownCall { .. } => ApiError::conflict("conflict", message),
            Rejection::CannotMigrate { problems } => ApiError::conflict("migration_refused", message).with_details(
                json!({ "problems": problems.iter().map(|(a, r)| json!({"at": a, "reason": r})).collect::<Vec<_>>() }),
            ),
            Rejection::UnknownVersion { process, version } => {
                ApiError::not_found(message).with_details(json!({"what": "version", "id": process, "version": version}))
            }
            Rejection::CannotModify { problems: f } => {
                ApiError::unprocessable("invalid_modification", message).with_details(fields(f))
            }
            Rejection::WrongDefinition { .. } | Rejection::UnknownNode { .. } => ApiError::internal(message),
        }
    }
}

impl From<cloverleaf_engine::store::Error> for ApiError {
    fn from(error: cloverleaf_engine::store::Error) -> ApiError {
        ApiError::internal(error)
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> ApiError {
        let message = error.to_string();
        match error {
            EngineError::Rejected(rejection) => rejection.into(),
            EngineError::UnknownProcess(id) => ApiError::missing("process", id, message),
            EngineError::UnknownVersion { process, version } => ApiError::not_found(message)
                .with_details(json!({"what": "version", "id": process, "version": version})),
            EngineError::UnknownInstance(id) => ApiError::missing("instance", id, message),
            EngineError::UnknownJob(id) => ApiError::missing("job", id, message),
            EngineError::UnknownTask(id) => ApiError::missing("task", id, message),
            EngineError::UnknownIncident(id) => ApiError::missing("incident", id, message),
            EngineError::StaleLock { job, epoch } => ApiError::conflict("stale_lock", message)
                .with_details(json!({"job": job, "epoch": epoch})),
            EngineError::LeaseExpired { job } => {
                ApiError::conflict("lease_expired", message).with_details(json!({"job": job}))
            }
            EngineError::NotCandidate { user, task } => ApiError::forbidden("not_candidate", message)
                .with_details(json!({"user": user, "task": task, "reason": "not one of the task's roles, its assignee, or a substitute for its assignee"})),
            EngineError::TaskClaimed { task } => {
                ApiError::conflict("task_claimed", message).with_details(json!({"task": task}))
            }
            EngineError::TaskClosed { task } => {
                ApiError::conflict("task_closed", message).with_details(json!({"task": task}))
            }
            EngineError::InvalidMigration(problems) => ApiError::bad_request("invalid_migration", message)
                .with_details(json!({ "problems": problems.iter().map(|(a, r)| json!({"at": a, "reason": r})).collect::<Vec<_>>() })),
            EngineError::InvalidSubstitute(_) => ApiError::unprocessable("invalid_substitute", message),
            EngineError::DuplicateMessage(_) => ApiError::conflict("duplicate_message", message),
            EngineError::AlreadyApplied => ApiError::conflict("conflict", message),
            EngineError::Compile(rendered) => ApiError::unprocessable("compile_error", "the processes do not compile")
                .with_details(json!({"rendered": rendered})),
            EngineError::Contention(_) => {
                tracing::warn!(error = %message, "contention");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "the instance is busy: try again")
            }
            // Storage failures, a stopped writer, unreadable stored JSON: nothing the caller can fix.
            other => ApiError::internal(other),
        }
    }
}
