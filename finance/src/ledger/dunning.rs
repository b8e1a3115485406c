//! Letters to customers about their invoices (the invoice notice, dunning letters), and writing off
//! what dunning could not collect.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::idempotency::once;
use super::records::{customer, invoice, outbox, set_invoice_open};
use super::{Entry, Error, JournalLine, Ledger, Scope, account, cents, date_text, money_text, post};

/// A message put in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notified {
    /// The outbox row.
    pub outbox_id: i64,
}

/// A dunning letter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DunningSent {
    /// The outbox row, if a letter was written (none for a settled invoice).
    pub letter_id: Option<i64>,
    /// False when the invoice was settled already.
    pub sent: bool,
    /// What the customer still owes on the invoice.
    pub amount_open: Decimal,
    /// Days past the due date.
    pub days_overdue: i64,
}

/// A receivable written off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WrittenOff {
    /// The amount written off.
    pub written_off: Decimal,
    /// What is still open.
    pub amount_open: Decimal,
}

impl Ledger {
    /// Puts a customer notification about an invoice in the outbox.
    pub async fn notify(
        &self,
        key: &str,
        now: DateTime<Utc>,
        customer_id: &str,
        invoice_id: &str,
        template: &str,
    ) -> Result<Notified, Error> {
        once!(self, key, "outbox.notify", now, scoped: Vec::new(), |conn| {
            let c = customer(conn, customer_id).await?;
            let inv = invoice(conn, invoice_id).await?;
            let (subject, body) = match template {
                "invoice_issued" => (
                    format!("Invoice {} from us", inv.number),
                    format!(
                        "Dear {},\n\nplease find invoice {} of {} (net {}, tax {}), due on {}. Please quote {} \
                         with your payment.",
                        c.name,
                        inv.number,
                        money_text(inv.total),
                        money_text(inv.net),
                        money_text(inv.tax),
                        date_text(inv.due_date),
                        inv.id
                    ),
                ),
                other => (
                    format!("About invoice {}", inv.number),
                    format!("Dear {},\n\n{other}: invoice {} of {}.", c.name, inv.number, money_text(inv.total)),
                ),
            };
            let id =
                outbox(conn, "notification", customer_id, c.email.as_deref(), Some(invoice_id), &subject, &body, now)
                    .await?;
            Notified { outbox_id: id }
        })
    }

    /// Writes a dunning letter of `level` for an overdue invoice; a settled invoice gets none.
    pub async fn send_dunning(
        &self,
        key: &str,
        now: DateTime<Utc>,
        invoice_id: &str,
        customer_id: &str,
        level: i64,
    ) -> Result<DunningSent, Error> {
        once!(self, key, "dunning.send", now, scoped: vec![Scope::Invoice(invoice_id.into())], |conn| {
            let c = customer(conn, customer_id).await?;
            let inv = invoice(conn, invoice_id).await?;
            let days_overdue = (now.date_naive() - inv.due_date).num_days();
            if inv.status != "open" || inv.amount_open <= Decimal::ZERO {
                DunningSent { letter_id: None, sent: false, amount_open: cents(inv.amount_open), days_overdue }
            } else {
                let subject = match level {
                    1 => format!("Reminder: invoice {} is overdue", inv.number),
                    _ => format!("Second reminder {level}: invoice {} is overdue", inv.number),
                };
                let body = format!(
                    "Dear {},\n\ninvoice {} of {} was due on {} ({days_overdue} days ago). {} is still open. \
                     Please pay quoting {}.",
                    c.name,
                    inv.number,
                    money_text(inv.total),
                    date_text(inv.due_date),
                    money_text(inv.amount_open),
                    inv.id
                );
                let id = outbox(
                    conn,
                    "dunning_letter",
                    customer_id,
                    c.email.as_deref(),
                    Some(invoice_id),
                    &subject,
                    &body,
                    now,
                )
                .await?;
                sqlx::query(
                    "UPDATE invoices SET dunning_level = CASE WHEN dunning_level < $2 THEN $2 ELSE dunning_level END \
                     WHERE id = $1",
                )
                .bind(invoice_id)
                .bind(level)
                .execute(&mut *conn)
                .await?;
                DunningSent { letter_id: Some(id), sent: true, amount_open: cents(inv.amount_open), days_overdue }
            }
        })
    }

    /// Writes off up to `amount` of an invoice's open receivable as bad debt.
    pub async fn write_off(
        &self,
        key: &str,
        now: DateTime<Utc>,
        invoice_id: &str,
        customer_id: &str,
        amount: Decimal,
    ) -> Result<WrittenOff, Error> {
        once!(self, key, "ledger.write_off", now, scoped: vec![Scope::Invoice(invoice_id.into())], |conn| {
            let inv = invoice(conn, invoice_id).await?;
            if inv.customer_id != customer_id {
                return Err(Error::Input {
                    field: "customer_id".into(),
                    problem: format!("invoice {invoice_id} belongs to {}", inv.customer_id),
                });
            }
            if amount < Decimal::ZERO {
                return Err(Error::InvalidAmount(format!("write-off of {amount}")));
            }
            let written = amount.min(inv.amount_open);
            let entry = Entry {
                date: now.date_naive(),
                kind: "write_off",
                description: format!("write-off of invoice {}", inv.number),
                document: Some(invoice_id),
                lines: vec![
                    JournalLine::debit(account::BAD_DEBT, written).customer(customer_id),
                    JournalLine::credit(account::RECEIVABLES, written).customer(customer_id).invoice(invoice_id),
                ],
            };
            if written > Decimal::ZERO {
                post(conn, entry, now).await?;
            }
            let open = inv.amount_open - written;
            set_invoice_open(conn, invoice_id, open, if open.is_zero() { "written_off" } else { "open" }).await?;
            WrittenOff { written_off: cents(written), amount_open: cents(open) }
        })
    }
}
