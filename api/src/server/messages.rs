//! `POST /v1/messages`: correlate a message with the instance waiting for it, or buffer it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::TimeDelta;
use cloverleaf_dsl::expr::{Type, Value as DslValue};
use cloverleaf_engine::runtime::{Correlation, Message};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::access;
use super::auth::Caller;
use super::config::{ADMIN, WORKER};
use super::error::{ApiError, ErrorBody};
use super::extract::Json;

/// How long a message nobody waits for yet stays buffered, unless the sender says otherwise.
const DEFAULT_TTL_HOURS: i64 = 24;

/// A message from outside (an ERP, a bank feed, a carrier).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageRequest {
    /// The message name (`payment.received`).
    pub name: String,
    /// The key an instance's `receive ... key` must equal.
    pub correlation_key: String,
    /// Makes delivery idempotent: the same id twice is delivered once.
    pub message_id: Option<String>,
    /// How long to buffer it if nobody waits yet: ISO 8601 (`PT1H`, `P7D`) or `7d`, `24h`;
    /// default 24 hours.
    pub ttl: Option<String>,
    /// The payload (money as decimal strings).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: serde_json::Map<String, Value>,
}

/// What became of a message.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageResponse {
    /// delivered, buffered, or duplicate (its id was seen before: nothing happened).
    pub outcome: String,
    /// The instances it reached.
    pub instances: Vec<String>,
}

/// Delivers a message (admin or worker): 200 when it reached an instance or was a duplicate,
/// 202 when it was buffered for an instance that does not wait yet.
#[utoipa::path(
    post, path = "/v1/messages", tag = "messages",
    request_body = MessageRequest,
    responses(
        (status = 200, description = "Delivered (or a duplicate)", body = MessageResponse),
        (status = 202, description = "Buffered until an instance waits for it, or its time-to-live ends", body = MessageResponse),
        (status = 400, description = "Malformed JSON, an unknown field or a bad ttl", body = ErrorBody),
        (status = 403, description = "Neither admin nor worker, or a message that starts a process the sender may not start", body = ErrorBody),
        (status = 422, description = "A payload the receiving node cannot read", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn correlate(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<MessageRequest>,
) -> Result<Response, ApiError> {
    caller.require_any(&[ADMIN, WORKER], "send messages")?;
    if request.name.trim().is_empty() {
        return Err(ApiError::bad_request("invalid_message", "the message name is empty"));
    }
    let ttl = match request.ttl.as_deref() {
        None => TimeDelta::hours(DEFAULT_TTL_HOURS),
        Some(text) => parse_ttl(text)?,
    };
    // A message that starts a process is a start like any other: the sender must be allowed to
    // start it, and its requester is the sender unless their role may start on someone's behalf.
    let mut payload = request.variables;
    for definition in state.engine().started_by_message(&request.name).await? {
        access::may_start(&caller, &definition)?;
        access::starter(&caller, state.users(), &definition, &mut payload)?;
    }
    let message = Message {
        name: request.name,
        correlation_key: request.correlation_key,
        payload: Value::Object(payload),
        message_id: request.message_id,
        ttl,
    };
    let correlation = state.engine().correlate_from(message, Some(caller.name())).await?;
    let (status, outcome, instances) = match correlation {
        Correlation::Delivered { instance } => (StatusCode::OK, "delivered", vec![instance.0]),
        Correlation::Buffered => (StatusCode::ACCEPTED, "buffered", vec![]),
        Correlation::Duplicate => (StatusCode::OK, "duplicate", vec![]),
    };
    Ok((status, axum::Json(MessageResponse { outcome: outcome.to_string(), instances })).into_response())
}

fn parse_ttl(text: &str) -> Result<TimeDelta, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_message",
            format!("ttl `{text}` is not a duration: write ISO 8601 such as PT1H or P7D, or 24h, 7d"),
        )
    };
    match DslValue::from_json(&Value::String(text.to_string()), &Type::Duration) {
        Ok(DslValue::Duration(secs)) if secs > 0 => TimeDelta::try_seconds(secs).ok_or_else(bad),
        _ => Err(bad()),
    }
}
