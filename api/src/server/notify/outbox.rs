//! Customer letters: the sub-ledger's outbox (invoice notices, dunning letters, refund notices)
//! delivered through the notification channels, and the finance routes that show and retry them.
//!
//! Each pass of the notifier first queues the letters not yet queued, of the kinds some channel
//! carries, as notifications `outbox.{row}` (kinds `invoice_notice`, `dunning_letter`,
//! `refund_notice`), then marks them queued in the ledger. A crash between the two queues them
//! again under the same ids, which the notifications table takes once. From there a letter is
//! delivered, retried and dead-lettered like any notification: by email to the customer's billing
//! address, and to the webhooks that ask for its kind. A letter no channel carries stays in the
//! outbox, unqueued, until one does.
//!
//! Who may see them: the finance people who answer for them (AR clerk, controller, CFO), the
//! auditor and operators ([`LETTER_READERS`]); who may send a dead one again: the AR clerk, the
//! controller and operators ([`LETTER_HANDLERS`]).

use axum::extract::{Path, Query, State};
use cloverleaf_engine::runtime::Engine;
use cloverleaf_engine::store::{Notification, NotificationRow, Queries, Store};
use cloverleaf_finance::Ledger;
use serde::Serialize;
use utoipa::ToSchema;

use super::{NotificationQuery, RetryView};
use crate::server::AppState;
use crate::server::access::AUDITOR;
use crate::server::auth::Caller;
use crate::server::config::{ADMIN, LETTER_KINDS};
use crate::server::error::{ApiError, ErrorBody};

/// Who reads the customer letters and what became of them.
pub const LETTER_READERS: &[&str] = &[ADMIN, AUDITOR, "finance.ar_clerk", "finance.controller", "finance.cfo"];

/// Who sends a dead customer letter again.
pub const LETTER_HANDLERS: &[&str] = &[ADMIN, "finance.ar_clerk", "finance.controller"];

/// The most letters queued in one pass.
const QUEUE_BATCH: i64 = 200;

/// Queues the outbox's unqueued letters of `kinds` as notifications; how many.
pub async fn queue_letters<S: Store>(engine: &Engine<S>, ledger: &Ledger, kinds: &[&str]) -> Result<usize, String> {
    let kinds: Vec<&str> = kinds.iter().copied().filter(|k| LETTER_KINDS.contains(k)).collect();
    let letters = ledger.letters_to_queue(&kinds, QUEUE_BATCH).await.map_err(|e| e.to_string())?;
    if letters.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = letters.iter().map(|l| l.id).collect();
    let rows: Vec<NotificationRow> = letters
        .into_iter()
        .map(|l| {
            let id = l.notification_id();
            let payload = serde_json::json!({
                "id": id, "kind": l.kind, "letter": l.id, "customer": l.customer_id, "to": l.to,
                "invoice": l.invoice_id, "subject": l.subject, "body": l.body, "at": l.created_at.to_rfc3339(),
            });
            NotificationRow {
                id,
                instance_id: None,
                subject: l.invoice_id.unwrap_or(l.customer_id),
                kind: l.kind,
                payload: payload.to_string(),
                created_at: l.created_at,
            }
        })
        .collect();
    engine.notify(rows).await.map_err(|e| e.to_string())?;
    ledger.mark_queued(&ids, engine.now()).await.map_err(|e| e.to_string())?;
    Ok(ids.len())
}

/// A customer letter and what became of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LetterView {
    /// The id it is delivered under (`outbox.{row}`): the `Message-ID` of its email and the
    /// `X-Cloverleaf-Id` of its webhook calls.
    pub id: String,
    /// `invoice_notice`, `dunning_letter` or `refund_notice`.
    pub kind: String,
    /// The customer.
    pub customer: String,
    /// The address it is mailed to.
    pub to: Option<String>,
    /// The invoice it is about.
    pub invoice: Option<String>,
    /// The subject.
    pub subject: String,
    /// The text.
    pub body: String,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    /// Delivery attempts made.
    pub attempts: i64,
    /// The last failure.
    pub last_error: Option<String>,
    /// When the letter was written.
    pub created_at: String,
}

impl From<Notification> for LetterView {
    fn from(n: Notification) -> LetterView {
        let payload: serde_json::Value = serde_json::from_str(&n.row.payload).unwrap_or_default();
        let text = |key: &str| payload[key].as_str().map(str::to_string);
        LetterView {
            customer: text("customer").unwrap_or_default(),
            to: text("to"),
            invoice: text("invoice"),
            subject: text("subject").unwrap_or_default(),
            body: text("body").unwrap_or_default(),
            id: n.row.id,
            kind: n.row.kind,
            state: n.state,
            attempts: n.attempts,
            last_error: n.last_error,
            created_at: n.row.created_at.to_rfc3339(),
        }
    }
}

/// The customer letters handed to delivery, newest first, with what became of each.
#[utoipa::path(
    get, path = "/v1/outbox", tag = "reports",
    params(NotificationQuery),
    responses(
        (status = 200, description = "The letters", body = Vec<LetterView>),
        (status = 400, description = "An unknown state", body = ErrorBody),
        (status = 403, description = "Not AR clerk, controller, CFO, auditor or admin", body = ErrorBody),
        (status = 404, description = "No sub-ledger on this server", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<NotificationQuery>,
) -> Result<axum::Json<Vec<LetterView>>, ApiError> {
    caller.require_any(LETTER_READERS, "read the customer letters")?;
    if state.ledger().is_none() {
        return Err(ApiError::no_ledger());
    }
    super::check_state(query.state.as_deref())?;
    let limit = query.limit();
    let kinds: Vec<String> = LETTER_KINDS.iter().map(|k| (*k).to_string()).collect();
    let found = state
        .engine()
        .store()
        .notifications_of(&kinds, query.state.as_deref(), limit)
        .await
        .map_err(ApiError::internal)?;
    Ok(axum::Json(found.into_iter().map(LetterView::from).collect()))
}

/// Sends a dead customer letter again (after its address was put right, say).
#[utoipa::path(
    post, path = "/v1/outbox/{id}/retry", tag = "reports",
    params(("id" = String, Path, description = "The letter's id, `outbox.{row}`")),
    responses(
        (status = 200, description = "Pending again", body = RetryView),
        (status = 403, description = "Not AR clerk, controller or admin", body = ErrorBody),
        (status = 404, description = "Not a customer letter", body = ErrorBody),
        (status = 409, description = "Not dead (pending or delivered), or no such letter", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<RetryView>, ApiError> {
    caller.require_any(LETTER_HANDLERS, "send customer letters again")?;
    // Only letters: the other notifications are the operators' to retry.
    let row = id.strip_prefix("outbox.").filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if row.is_none() {
        return Err(ApiError::missing(
            "letter",
            id.as_str(),
            format!("`{id}` is not a customer letter (their ids are `outbox.N`)"),
        ));
    }
    if state.engine().retry_notification(&id).await.map_err(ApiError::internal)? {
        Ok(axum::Json(RetryView { id, retried: true }))
    } else {
        Err(ApiError::conflict("not_dead", format!("letter `{id}` is not dead (or does not exist): nothing to retry")))
    }
}
