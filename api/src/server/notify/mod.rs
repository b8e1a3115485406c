//! Delivery of notifications to the configured channels, and their API.
//!
//! The engine writes a notification in the transaction of the step that raised it (a task
//! offered, handed to someone, reminded of, past its due time); the alerts and the sub-ledger's
//! customer letters ([`outbox`]) are raised as notifications too. The [`Notifier`] takes the due
//! ones under a lease and hands each to every channel that carries its kind: signed webhooks, and
//! email through an SMTP relay ([`mail`], [`smtp`]). It records what became of it: delivered,
//! tried again later (with a doubling wait), or dead (after the last attempt, or at once when a
//! mail relay refuses for good) until an operator retries it
//! (`POST /v1/notifications/{id}/retry`).
//!
//! Delivery is at least once: a node that dies between a receiver's answer and the record of it
//! leaves the notification to be taken again once its lease ran out, and it is sent again under
//! the same id (`X-Cloverleaf-Id`, also the body's `id`; in mail, a `Message-ID` derived from it),
//! which is what a receiver deduplicates on. A failed attempt sends again to every channel, so a
//! receiver that had it already gets one more copy under the same id. Each webhook request is
//! signed: `X-Cloverleaf-Signature: t=UNIX,v1=HEX`, the HMAC-SHA256 of `"{t}.{body}"` with the
//! webhook's secret, so a receiver can check who sent it and how fresh.

pub mod mail;
pub mod outbox;
pub mod smtp;

use std::future::Future;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use chrono::TimeDelta;
use cloverleaf_engine::runtime::Engine;
use cloverleaf_engine::store::{DeliveryOutcome, Notification, Queries, Store};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::{IntoParams, ToSchema};

use self::mail::Mailer;
use self::smtp::Failure;
use super::AppState;
use super::auth::Caller;
use super::config::{ADMIN, LETTER_KINDS, NOTIFICATION_KINDS, WebhookEntry};
use super::error::{ApiError, ErrorBody};

/// Who reads and retries notifications: operators.
pub const NOTIFICATION_OPERATORS: &[&str] = &[ADMIN];

/// How the notifier paces itself.
#[derive(Debug, Clone)]
pub struct NotifierOptions {
    /// Attempts before a notification is dead-lettered.
    pub max_attempts: i64,
    /// The wait after the first failed attempt; it doubles with each further one.
    pub first_retry: TimeDelta,
    /// The longest wait between attempts.
    pub max_retry: TimeDelta,
    /// Most notifications taken at once.
    pub batch: usize,
    /// How long a taken notification is left to this notifier before another may take it.
    pub lease: TimeDelta,
    /// How often it looks for due notifications.
    pub poll: Duration,
    /// How long a receiver may take to answer.
    pub timeout: Duration,
}

impl Default for NotifierOptions {
    fn default() -> NotifierOptions {
        NotifierOptions {
            max_attempts: 8,
            first_retry: TimeDelta::seconds(30),
            max_retry: TimeDelta::hours(1),
            batch: 50,
            lease: TimeDelta::minutes(2),
            poll: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryPass {
    /// Delivered to every webhook that wanted them.
    pub delivered: usize,
    /// Failed, to be tried again.
    pub retrying: usize,
    /// Failed for the last time.
    pub dead: usize,
}

/// Delivers notifications to webhooks and by email: see the module documentation.
pub struct Notifier<S: Store> {
    engine: Engine<S>,
    hooks: Vec<WebhookEntry>,
    mailer: Option<Mailer>,
    letters: Option<cloverleaf_finance::Ledger>,
    client: reqwest::Client,
    options: NotifierOptions,
}

impl<S: Store> Notifier<S> {
    /// A notifier for `hooks` on `engine`'s notifications.
    pub fn new(engine: Engine<S>, hooks: Vec<WebhookEntry>, options: NotifierOptions) -> Result<Notifier<S>, String> {
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .build()
            .map_err(|e| format!("cannot build the webhook client: {e}"))?;
        Ok(Notifier { engine, hooks, mailer: None, letters: None, client, options })
    }

    /// Also mails the kinds `mailer`'s routes carry.
    pub fn with_email(mut self, mailer: Mailer) -> Notifier<S> {
        self.mailer = Some(mailer);
        self
    }

    /// Also delivers the customer letters of `ledger`'s outbox, of the kinds some channel
    /// carries (see [`outbox`]).
    pub fn with_letters(mut self, ledger: cloverleaf_finance::Ledger) -> Notifier<S> {
        self.letters = Some(ledger);
        self
    }

    /// The kinds some channel carries.
    pub fn carried_kinds(&self) -> Vec<&'static str> {
        NOTIFICATION_KINDS.iter().copied().filter(|k| self.carries(k)).collect()
    }

    fn carries(&self, kind: &str) -> bool {
        self.hooks.iter().any(|h| h.kinds.is_empty() || h.kinds.iter().any(|k| k == kind))
            || self.mailer.as_ref().is_some_and(|m| m.carries(kind))
    }

    /// Queues the outbox's new letters, then takes what is due now and tries to deliver each
    /// once.
    pub async fn deliver_due(&self) -> Result<DeliveryPass, cloverleaf_engine::runtime::Error> {
        if let Some(ledger) = &self.letters {
            // A sub-ledger that does not answer holds up its letters, not the other notifications.
            if let Err(error) = outbox::queue_letters(&self.engine, ledger, &self.carried_kinds()).await {
                tracing::error!(%error, "customer letters could not be queued for delivery");
            }
        }
        let mut pass = DeliveryPass::default();
        for notice in self.engine.take_notifications(self.options.batch, self.options.lease).await? {
            let outcome = match self.send(&notice).await {
                Ok(()) => {
                    pass.delivered += 1;
                    DeliveryOutcome::Delivered
                }
                Err(Failure::Permanent(error)) => {
                    tracing::warn!(id = %notice.row.id, %error, "notification refused for good: dead");
                    pass.dead += 1;
                    DeliveryOutcome::Dead { error }
                }
                Err(Failure::Transient(error)) if notice.attempts + 1 >= self.options.max_attempts => {
                    tracing::warn!(id = %notice.row.id, %error, "notification dead after its last attempt");
                    pass.dead += 1;
                    DeliveryOutcome::Dead { error }
                }
                Err(Failure::Transient(error)) => {
                    pass.retrying += 1;
                    let at = self.engine.now() + self.wait_after(notice.attempts + 1);
                    DeliveryOutcome::Retry { error, at }
                }
            };
            self.engine.record_delivery(&notice.row.id, outcome).await?;
        }
        Ok(pass)
    }

    /// The wait after the `attempts`-th failed attempt.
    fn wait_after(&self, attempts: i64) -> TimeDelta {
        let doublings = u32::try_from((attempts - 1).clamp(0, 20)).unwrap_or(20);
        let wait = self.options.first_retry.checked_mul(1 << doublings).unwrap_or(self.options.max_retry);
        wait.min(self.options.max_retry)
    }

    /// Hands `notice` to every channel that carries its kind; the first failure.
    async fn send(&self, notice: &Notification) -> Result<(), Failure> {
        self.post(notice).await.map_err(Failure::Transient)?;
        if let Some(mailer) = self.mailer.as_ref().filter(|m| m.carries(&notice.row.kind)) {
            let date = self.engine.now();
            let billing = self.billing_address(notice).await?;
            for message in mailer.outgoing(&self.engine, notice, billing.as_deref()).await? {
                let mail = smtp::Mail {
                    id: &notice.row.id,
                    kind: &notice.row.kind,
                    to: &message.to,
                    subject: &message.subject,
                    body: &message.body,
                    language: message.lang.tag(),
                    date,
                };
                let text = smtp::compose(&mail, mailer.smtp());
                smtp::send(mailer.smtp(), self.options.timeout, &message.to, &text).await?;
            }
        }
        Ok(())
    }

    /// The billing address now of the customer a letter is for, when the letters come from a
    /// sub-ledger: an address put right after the letter was written is the one it goes to.
    async fn billing_address(&self, notice: &Notification) -> Result<Option<String>, Failure> {
        let Some(ledger) = self.letters.as_ref().filter(|_| LETTER_KINDS.contains(&notice.row.kind.as_str())) else {
            return Ok(None);
        };
        let payload: serde_json::Value = serde_json::from_str(&notice.row.payload).unwrap_or_default();
        let Some(customer) = payload["customer"].as_str() else { return Ok(None) };
        ledger
            .billing_address(customer)
            .await
            .map_err(|e| Failure::Transient(format!("cannot read the billing address of `{customer}`: {e}")))
    }

    /// Posts `notice` to every webhook that wants its kind; the first failure, in words.
    async fn post(&self, notice: &Notification) -> Result<(), String> {
        let body = notice.row.payload.clone();
        let timestamp = self.engine.now().timestamp();
        for hook in self.hooks.iter().filter(|h| h.kinds.is_empty() || h.kinds.contains(&notice.row.kind)) {
            let response = self
                .client
                .post(&hook.url)
                .header("content-type", "application/json")
                .header("x-cloverleaf-id", &notice.row.id)
                .header("x-cloverleaf-kind", &notice.row.kind)
                .header("x-cloverleaf-signature", signature(&hook.secret, timestamp, &body))
                .body(body.clone())
                .send()
                .await
                .map_err(|e| format!("{}: {e}", hook.url))?;
            if !response.status().is_success() {
                return Err(format!("{} answered {}", hook.url, response.status()));
            }
        }
        Ok(())
    }

    /// Delivers until `shutdown` completes, looking every `poll` (at once again after a full
    /// batch).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let full = match self.deliver_due().await {
                Ok(pass) => pass.delivered + pass.retrying + pass.dead >= self.options.batch,
                Err(error) => {
                    tracing::error!(%error, "notifications could not be delivered");
                    false
                }
            };
            if full {
                continue;
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(self.options.poll) => {}
            }
        }
    }
}

/// The `X-Cloverleaf-Signature` of `body` sent at `timestamp` (Unix seconds): `t=...,v1=...`,
/// the HMAC-SHA256 of `"{timestamp}.{body}"` in lowercase hex.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    // HMAC accepts keys of any length; the error case of `new_from_slice` cannot happen.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let digest = mac.finalize().into_bytes();
    format!("t={timestamp},v1={}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// A notification as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationView {
    /// Its id (the receivers' idempotency key).
    pub id: String,
    /// `task_created`, `task_assigned`, `task_reminder`, `task_overdue`, `alert_opened`,
    /// `alert_cleared`.
    pub kind: String,
    /// The instance it is about (none for an alert).
    pub instance_id: Option<String>,
    /// The task or alert it is about.
    pub subject: String,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    /// Delivery attempts made.
    pub attempts: i64,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it was raised.
    pub created_at: String,
    /// The body receivers get.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

impl From<Notification> for NotificationView {
    fn from(n: Notification) -> NotificationView {
        NotificationView {
            payload: serde_json::from_str(&n.row.payload).unwrap_or(serde_json::Value::Null),
            id: n.row.id,
            kind: n.row.kind,
            instance_id: n.row.instance_id,
            subject: n.row.subject,
            state: n.state,
            attempts: n.attempts,
            last_error: n.last_error,
            created_at: n.row.created_at.to_rfc3339(),
        }
    }
}

/// Which notifications to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct NotificationQuery {
    /// `pending`, `delivered` or `dead`; all when absent.
    pub state: Option<String>,
    /// At most this many, newest first (default 100, at most 1,000).
    pub limit: Option<i64>,
}

impl NotificationQuery {
    /// The page size asked for, within 1..=1,000 (100 when not given).
    pub fn limit(&self) -> i64 {
        self.limit.unwrap_or(100).clamp(1, 1_000)
    }
}

/// The notifications, newest first: what was raised for people and whether it reached them.
#[utoipa::path(
    get, path = "/v1/notifications", tag = "operations",
    params(NotificationQuery),
    responses(
        (status = 200, description = "The notifications", body = Vec<NotificationView>),
        (status = 400, description = "An unknown state", body = ErrorBody),
        (status = 403, description = "Not admin", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<NotificationQuery>,
) -> Result<axum::Json<Vec<NotificationView>>, ApiError> {
    caller.require_any(NOTIFICATION_OPERATORS, "read the notifications")?;
    check_state(query.state.as_deref())?;
    let limit = query.limit();
    let found =
        state.engine().store().notifications(query.state.as_deref(), limit).await.map_err(ApiError::internal)?;
    Ok(axum::Json(found.into_iter().map(NotificationView::from).collect()))
}

/// 400 unless `state` is absent or a delivery state.
fn check_state(state: Option<&str>) -> Result<(), ApiError> {
    match state {
        Some(s) if !["pending", "delivered", "dead"].contains(&s) => {
            Err(ApiError::bad_request("invalid_query", format!("unknown state `{s}`: use pending, delivered or dead")))
        }
        _ => Ok(()),
    }
}

/// Whether a retry was taken.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetryView {
    /// The notification.
    pub id: String,
    /// True: it is pending again and goes out on the notifier's next pass.
    pub retried: bool,
}

/// Gives a dead notification another round of attempts.
#[utoipa::path(
    post, path = "/v1/notifications/{id}/retry", tag = "operations",
    params(("id" = String, Path, description = "The notification's id")),
    responses(
        (status = 200, description = "Pending again", body = RetryView),
        (status = 403, description = "Not admin", body = ErrorBody),
        (status = 409, description = "Not dead (pending or delivered), or no such notification", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<RetryView>, ApiError> {
    caller.require_any(NOTIFICATION_OPERATORS, "retry notifications")?;
    if state.engine().retry_notification(&id).await.map_err(ApiError::internal)? {
        Ok(axum::Json(RetryView { id, retried: true }))
    } else {
        Err(ApiError::conflict(
            "not_dead",
            format!("notification `{id}` is not dead (or does not exist): nothing to retry"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_the_timestamp_and_body() {
        // The key and data of RFC 4231's test case 2, framed as "{t}.{body}"; the expected value
        // was computed independently (Python's hmac module).
        let sig = signature("Jefe", 0, "what do ya want for nothing?");
        assert_eq!(sig, "t=0,v1=37f471929915ccd2cbbe79feb84ffcff4f2bb25e15fc41c2506687331ae179cc");
        assert_ne!(signature("Jefe", 1, "what do ya want for nothing?"), sig, "the time is signed too");
        assert_ne!(signature("Jeff", 0, "what do ya want for nothing?"), sig);
    }
}
