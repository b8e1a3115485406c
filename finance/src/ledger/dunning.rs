//! Letters to customers about their invoices (the invoice notice, dunning letters), and writing off
//! what dunning could not collect.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::idempotency::once;
use super::records::{customer, invoice, outbox, set_invoice_open};
use super::{Entry, Error, JournalLine, Ledger, Scope, account, cents, post};

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
            // In the customer's language (see `wording`).
            let facts = facts(&c.name, &inv);
            let (subject, body) = match template {
                "invoice_issued" => super::wording::invoice_notice(c.language, &facts),
                other => super::wording::invoice_other(c.language, other, &facts),
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
        let today = self.book_date(now).await?;
        once!(self, key, "dunning.send", now, scoped: vec![Scope::Invoice(invoice_id.into())], |conn| {
            let c = customer(conn, customer_id).await?;
            let inv = invoice(conn, invoice_id).await?;
            let days_overdue = (today - inv.due_date).num_days();
            if inv.status != "open" || inv.amount_open <= Decimal::ZERO {
                DunningSent { letter_id: None, sent: false, amount_open: cents(inv.amount_open), days_overdue }
            } else {
                let (subject, body) = super::wording::dunning_letter(
                    c.language,
                    level,
                    &facts(&c.name, &inv),
                    days_overdue,
                    inv.amount_open,
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
        let today = self.book_date(now).await?;
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
                date: today,
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

/// The facts of an invoice a letter quotes.
fn facts<'a>(customer: &'a str, inv: &'a super::records::InvoiceRow) -> super::wording::InvoiceFacts<'a> {
    super::wording::InvoiceFacts {
        customer,
        number: &inv.number,
        id: &inv.id,
        net: inv.net,
        tax: inv.tax,
        total: inv.total,
        due: inv.due_date,
    }
}
