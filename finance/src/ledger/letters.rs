//! The outbox read for delivery: the letters to customers (invoice notices, dunning letters,
//! refund notices) that the jobs wrote, handed to the server's notifier once each.
//!
//! The notifier reads the letters not yet queued, raises each as a notification under a stable
//! id ([`Letter::notification_id`]) and then marks them queued. A crash between the two queues
//! them again under the same ids, which the notifications table takes once: at least once, never
//! twice.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Error, Ledger, ts_text};

/// A letter to a customer, as the outbox holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Letter {
    /// The outbox row.
    pub id: i64,
    /// `invoice_notice`, `dunning_letter` or `refund_notice`.
    pub kind: String,
    /// The customer.
    pub customer_id: String,
    /// Where it goes: the address it was written for, else the customer's billing address now.
    pub to: Option<String>,
    /// The invoice it is about.
    pub invoice_id: Option<String>,
    /// The subject.
    pub subject: String,
    /// The text.
    pub body: String,
    /// When the job wrote it.
    pub created_at: DateTime<Utc>,
}

impl Letter {
    /// The id it is delivered under: `outbox.{id}`, the receivers' idempotency key.
    pub fn notification_id(&self) -> String {
        format!("outbox.{}", self.id)
    }
}

/// The outbox's own names for the letter kinds: (as stored, as delivered). Invoice notices are
/// stored as `notification`.
const KINDS: &[(&str, &str)] =
    &[("notification", "invoice_notice"), ("dunning_letter", "dunning_letter"), ("refund_notice", "refund_notice")];

impl Ledger {
    /// Up to `max` letters of `kinds` (as delivered) not yet queued for delivery, oldest first.
    pub async fn letters_to_queue(&self, kinds: &[&str], max: i64) -> Result<Vec<Letter>, Error> {
        let stored: Vec<&str> =
            KINDS.iter().filter(|(_, delivered)| kinds.contains(delivered)).map(|(stored, _)| *stored).collect();
        if stored.is_empty() {
            return Ok(Vec::new());
        }
        // The `Any` driver binds no lists: one placeholder per kind.
        let marks: Vec<String> = (0..stored.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT o.id, o.kind, o.customer_id, COALESCE(o.recipient, c.email), o.invoice_id, o.subject, o.body, \
             o.created_at FROM outbox o LEFT JOIN customers c ON c.id = o.customer_id \
             WHERE o.queued_at IS NULL AND o.kind IN ({}) ORDER BY o.id LIMIT $1",
            marks.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(max.max(0));
        for kind in stored {
            query = query.bind(kind);
        }
        query.fetch_all(&self.read).await?.iter().map(letter).collect()
    }

    /// A customer's billing address now (`None` for a customer without one, or no such customer).
    pub async fn billing_address(&self, customer_id: &str) -> Result<Option<String>, Error> {
        let row = sqlx::query("SELECT email FROM customers WHERE id = $1")
            .bind(customer_id)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(|r| r.try_get::<Option<String>, _>(0)).transpose()?.flatten())
    }

    /// Marks the letters `ids` queued for delivery at `now` (a letter queued already keeps its
    /// first time).
    ///
    /// Under the ledger lock shared, with no scope: each update rechecks `queued_at` under the
    /// row's lock, so two nodes marking one letter set it once, and the rows are taken in
    /// ascending order, so two such passes cannot deadlock. Nothing else writes the column.
    pub async fn mark_queued(&self, ids: &[i64], now: DateTime<Utc>) -> Result<(), Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let mut tx = self.begin_scoped(&[]).await?;
        for id in &ids {
            sqlx::query("UPDATE outbox SET queued_at = $1 WHERE id = $2 AND queued_at IS NULL")
                .bind(ts_text(now))
                .bind(*id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn letter(row: &AnyRow) -> Result<Letter, Error> {
    let stored: String = row.try_get(1)?;
    let kind = KINDS.iter().find(|(s, _)| *s == stored).map_or(stored.clone(), |(_, d)| (*d).to_string());
    let created: String = row.try_get(7)?;
    let created_at = DateTime::parse_from_rfc3339(&created)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| Error::Corrupt(format!("time {created:?}")))?;
    Ok(Letter {
        id: row.try_get(0)?,
        kind,
        customer_id: row.try_get(2)?,
        to: row.try_get(3)?,
        invoice_id: row.try_get(4)?,
        subject: row.try_get(5)?,
        body: row.try_get(6)?,
        created_at,
    })
}
