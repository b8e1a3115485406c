//! Payments: received from the bank, matched to invoices by their reference, applied, refunded
//! or sent back.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

use super::idempotency::once;
use super::records::{InvoiceRow, customer, invoice, outbox, set_invoice_open};
use super::{
    Entry, Error, JournalLine, Ledger, Scope, account, cents, date_text, decimal_setting, money_text, parse_money, post,
};

/// A payment to match against an invoice.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentMatch {
    /// The invoice.
    pub invoice_id: String,
    /// The bank's payment id.
    pub payment_id: String,
    /// What the payment brings to this invoice.
    pub received: Decimal,
    /// The remittance reference.
    pub reference: String,
    /// What the process expects to be due.
    pub amount_due: Decimal,
    /// The largest difference still counted as an exact payment.
    pub tolerance: Decimal,
}

/// How a payment matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentMatched {
    /// `exact` (within tolerance), `partial` (applied at once), `overpayment`, or `mismatch`
    /// (the reference names another invoice, another customer paid, or the money is not there).
    pub result: String,
    /// What is open on the invoice after this match.
    pub amount_open: Decimal,
    /// Received minus due.
    pub difference: Decimal,
    /// Why a mismatch is one.
    pub reason: Option<String>,
}

/// A receipt applied to an invoice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiptPosted {
    /// Applied from the payment.
    pub applied: Decimal,
    /// A short payment within the allowed difference, booked as a payment difference.
    pub difference: Decimal,
    /// What is still open on the invoice.
    pub amount_open: Decimal,
    /// The invoice's status (`paid` or `open`).
    pub status: String,
}

/// Money returned to the customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refunded {
    /// The amount refunded.
    pub refunded: Decimal,
}

/// An unmatched payment sent back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentReturned {
    /// The amount sent back.
    pub returned: Decimal,
}

struct PaymentRow {
    customer_id: Option<String>,
    amount: Decimal,
    applied: Decimal,
    refunded: Decimal,
    returned: Decimal,
}

impl PaymentRow {
    /// What is still on the unapplied-cash account for this payment.
    fn available(&self) -> Decimal {
        self.amount - self.applied - self.refunded - self.returned
    }
}

async fn payment_row(conn: &mut AnyConnection, id: &str) -> Result<Option<PaymentRow>, Error> {
    let Some(r) = sqlx::query("SELECT customer_id, amount, applied, refunded, returned FROM payments WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(PaymentRow {
        customer_id: r.try_get(0)?,
        amount: parse_money(r.try_get(1)?)?,
        applied: parse_money(r.try_get(2)?)?,
        refunded: parse_money(r.try_get(3)?)?,
        returned: parse_money(r.try_get(4)?)?,
    }))
}

async fn save_payment(conn: &mut AnyConnection, id: &str, p: &PaymentRow) -> Result<(), Error> {
    let status = if p.returned > Decimal::ZERO && p.available().is_zero() {
        "returned"
    } else if p.available().is_zero() {
        "applied"
    } else if p.applied > Decimal::ZERO {
        "partly_applied"
    } else {
        "unapplied"
    };
    sqlx::query("UPDATE payments SET applied = $2, refunded = $3, returned = $4, status = $5 WHERE id = $1")
        .bind(id)
        .bind(money_text(p.applied))
        .bind(money_text(p.refunded))
        .bind(money_text(p.returned))
        .bind(status)
        .execute(conn)
        .await?;
    Ok(())
}

/// Receives a payment into the bank and onto the unapplied-cash account.
async fn receive_payment(
    conn: &mut AnyConnection,
    id: &str,
    customer_id: Option<&str>,
    amount: Decimal,
    reference: &str,
    date: NaiveDate,
    now: DateTime<Utc>,
) -> Result<PaymentRow, Error> {
    if amount <= Decimal::ZERO {
        return Err(Error::InvalidAmount(format!("payment {id} of {amount}")));
    }
    sqlx::query(
        "INSERT INTO payments (id, customer_id, received_on, amount, reference, status) \
         VALUES ($1, $2, $3, $4, $5, 'unapplied')",
    )
    .bind(id)
    .bind(customer_id)
    .bind(date_text(date))
    .bind(money_text(amount))
    .bind(reference)
    .execute(&mut *conn)
    .await?;
    let mut cash = JournalLine::credit(account::UNAPPLIED_CASH, amount);
    if let Some(c) = customer_id {
        cash = cash.customer(c);
    }
    let entry = Entry {
        date,
        kind: "payment_received",
        description: format!("payment {id} received ({reference})"),
        document: Some(id),
        lines: vec![JournalLine::debit(account::BANK, amount), cash],
    };
    post(conn, entry, now).await?;
    Ok(PaymentRow {
        customer_id: customer_id.map(str::to_string),
        amount: cents(amount),
        applied: Decimal::ZERO,
        refunded: Decimal::ZERO,
        returned: Decimal::ZERO,
    })
}

/// Moves `amount` of a payment from unapplied cash to the invoice.
async fn apply(
    conn: &mut AnyConnection,
    payment_id: &str,
    payment: &mut PaymentRow,
    inv: &mut InvoiceRow,
    amount: Decimal,
    (date, now, key): (NaiveDate, DateTime<Utc>, &str),
) -> Result<(), Error> {
    if amount.is_zero() {
        return Ok(());
    }
    let entry = Entry {
        date,
        kind: "receipt",
        description: format!("payment {payment_id} applied to invoice {}", inv.number),
        document: Some(&inv.id),
        lines: vec![
            JournalLine::debit(account::UNAPPLIED_CASH, amount).customer(&inv.customer_id),
            JournalLine::credit(account::RECEIVABLES, amount).customer(&inv.customer_id).invoice(&inv.id),
        ],
    };
    post(conn, entry, now).await?;
    sqlx::query(
        "INSERT INTO payment_allocations (payment_id, invoice_id, amount, allocated_on, idempotency_key) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(payment_id)
    .bind(&inv.id)
    .bind(money_text(amount))
    .bind(date_text(date))
    .bind(key)
    .execute(&mut *conn)
    .await?;
    payment.applied += amount;
    inv.amount_open -= amount;
    save_payment(conn, payment_id, payment).await?;
    let status = if inv.amount_open.is_zero() { "paid" } else { "open" };
    inv.status = status.to_string();
    set_invoice_open(conn, &inv.id, inv.amount_open, status).await
}

/// Alphanumerics only, upper case: `inv 2026/000042` and `INV-2026-000042` compare equal.
fn normalized(text: &str) -> String {
    text.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_uppercase()).collect()
}

impl Ledger {
    /// Matches a payment to an invoice. The cash is received (bank against unapplied cash) the
    /// first time a payment id is seen; a partial payment is applied at once; an exact one is
    /// applied by [`Ledger::post_receipt`]; an over-payment waits for finance.
    pub async fn match_payment(
        &self,
        key: &str,
        now: DateTime<Utc>,
        m: &PaymentMatch,
    ) -> Result<PaymentMatched, Error> {
        let today = self.book_date(now).await?;
        once!(self, key, "payment.match", now, scoped: vec![Scope::Invoice(m.invoice_id.clone()), Scope::Payment(m.payment_id.clone())], |conn| {
            let mut inv = invoice(conn, &m.invoice_id).await?;
            let mut payment = match payment_row(conn, &m.payment_id).await? {
                Some(p) => p,
                None => {
                    receive_payment(conn, &m.payment_id, Some(&inv.customer_id), m.received, &m.reference, today, now)
                        .await?
                }
            };
            let reference = normalized(&m.reference);
            let names_invoice = !reference.is_empty()
                && (reference.contains(&normalized(&inv.id)) || reference.contains(&normalized(&inv.number)));
            let reason = if !names_invoice {
                Some(format!("the reference {:?} does not name invoice {}", m.reference, inv.number))
            } else if payment.customer_id.as_deref().is_some_and(|c| c != inv.customer_id) {
                Some(format!("payment {} came from another customer", m.payment_id))
            } else if m.received > payment.available() {
                Some(format!("payment {} has only {} left to apply", m.payment_id, money_text(payment.available())))
            } else if inv.status != "open" {
                Some(format!("invoice {} is {}", inv.number, inv.status))
            } else {
                None
            };
            let difference = m.received - m.amount_due;
            let result = if reason.is_some() {
                "mismatch"
            } else if difference.abs() <= m.tolerance {
                "exact"
            } else if m.received < m.amount_due {
                "partial"
            } else {
                "overpayment"
            };
            if result == "partial" {
                apply(conn, &m.payment_id, &mut payment, &mut inv, m.received, (today, now, key)).await?;
            }
            sqlx::query(
                "UPDATE payments SET matched_automatically = $2 WHERE id = $1 AND matched_automatically IS NULL",
            )
            .bind(&m.payment_id)
            .bind(i64::from(matches!(result, "exact" | "partial")))
            .execute(&mut *conn)
            .await?;
            PaymentMatched {
                result: result.to_string(),
                amount_open: cents(inv.amount_open),
                difference: cents(difference),
                reason,
            }
        })
    }

    /// Settles an invoice with a matched payment: applies what the payment brings (at most what
    /// is open), books a short payment within the allowed difference as a payment difference,
    /// and leaves any excess on unapplied cash (the customer's credit).
    pub async fn post_receipt(
        &self,
        key: &str,
        now: DateTime<Utc>,
        invoice_id: &str,
        payment_id: &str,
        received: Decimal,
    ) -> Result<ReceiptPosted, Error> {
        let today = self.book_date(now).await?;
        once!(self, key, "receipt.post", now, scoped: vec![Scope::Invoice(invoice_id.into()), Scope::Payment(payment_id.into())], |conn| {
            let mut inv = invoice(conn, invoice_id).await?;
            let mut payment =
                payment_row(conn, payment_id).await?.ok_or_else(|| Error::UnknownPayment(payment_id.to_string()))?;
            let applied = received.min(inv.amount_open).min(payment.available()).max(Decimal::ZERO);
            apply(conn, payment_id, &mut payment, &mut inv, applied, (today, now, key)).await?;
            let max_difference = decimal_setting(&Ledger::setting(conn, "max_payment_difference").await?)?;
            let mut difference = Decimal::ZERO;
            if inv.amount_open > Decimal::ZERO && inv.amount_open <= max_difference {
                difference = inv.amount_open;
                let entry = Entry {
                    date: today,
                    kind: "payment_difference",
                    description: format!("short payment on invoice {}", inv.number),
                    document: Some(&inv.id),
                    lines: vec![
                        JournalLine::debit(account::PAYMENT_DIFFERENCES, difference).customer(&inv.customer_id),
                        JournalLine::credit(account::RECEIVABLES, difference)
                            .customer(&inv.customer_id)
                            .invoice(&inv.id),
                    ],
                };
                post(conn, entry, now).await?;
                set_invoice_open(conn, &inv.id, Decimal::ZERO, "paid").await?;
                inv.amount_open = Decimal::ZERO;
                inv.status = "paid".into();
            }
            ReceiptPosted {
                applied: cents(applied),
                difference: cents(difference),
                amount_open: cents(inv.amount_open),
                status: inv.status.clone(),
            }
        })
    }

    /// Refunds `amount` of a payment's unapplied cash to the customer.
    pub async fn refund(
        &self,
        key: &str,
        now: DateTime<Utc>,
        payment_id: &str,
        customer_id: &str,
        amount: Decimal,
    ) -> Result<Refunded, Error> {
        let today = self.book_date(now).await?;
        once!(self, key, "payment.refund", now, scoped: vec![Scope::Payment(payment_id.into())], |conn| {
            let mut payment =
                payment_row(conn, payment_id).await?.ok_or_else(|| Error::UnknownPayment(payment_id.to_string()))?;
            if amount <= Decimal::ZERO || amount > payment.available() {
                return Err(Error::InvalidAmount(format!(
                    "refund of {amount} from payment {payment_id}, which has {} unapplied",
                    money_text(payment.available())
                )));
            }
            pay_out(conn, payment_id, customer_id, amount, "refund", (today, now)).await?;
            payment.refunded += amount;
            save_payment(conn, payment_id, &payment).await?;
            let c = customer(conn, customer_id).await?;
            let (subject, body) = super::wording::refund_notice(c.language, &c.name, amount, payment_id);
            outbox(conn, "refund_notice", customer_id, c.email.as_deref(), None, &subject, &body, now).await?;
            Refunded { refunded: cents(amount) }
        })
    }

    /// Sends a payment that belongs to no invoice back to the payer (what is left unapplied).
    pub async fn return_payment(
        &self,
        key: &str,
        now: DateTime<Utc>,
        payment_id: &str,
        customer_id: &str,
    ) -> Result<PaymentReturned, Error> {
        let today = self.book_date(now).await?;
        once!(self, key, "payment.return", now, scoped: vec![Scope::Payment(payment_id.into())], |conn| {
            let mut payment =
                payment_row(conn, payment_id).await?.ok_or_else(|| Error::UnknownPayment(payment_id.to_string()))?;
            let amount = payment.available();
            if amount > Decimal::ZERO {
                pay_out(conn, payment_id, customer_id, amount, "payment_return", (today, now)).await?;
                payment.returned += amount;
                save_payment(conn, payment_id, &payment).await?;
            }
            PaymentReturned { returned: cents(amount) }
        })
    }

    /// Records a payment as the bank reported it (before any invoice is matched): the cash goes
    /// to the bank and onto unapplied cash.
    pub async fn record_bank_payment(
        &self,
        payment_id: &str,
        customer_id: Option<&str>,
        amount: Decimal,
        reference: &str,
        received_on: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let mut tx = self.begin_scoped(&[Scope::Payment(payment_id.into())]).await?;
        if payment_row(&mut tx, payment_id).await?.is_some() {
            return Ok(());
        }
        receive_payment(&mut tx, payment_id, customer_id, amount, reference, received_on, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Splits a recorded payment over the open invoices its reference names, oldest due first,
    /// each up to its open amount: `(invoice_id, amount)` pairs, one `payment.received` message
    /// each. What no named invoice takes is left out (it stays unapplied).
    pub async fn split_payment(&self, payment_id: &str) -> Result<Vec<(String, Decimal)>, Error> {
        let mut conn = self.read.acquire().await?;
        let payment =
            payment_row(&mut conn, payment_id).await?.ok_or_else(|| Error::UnknownPayment(payment_id.to_string()))?;
        let reference: String = sqlx::query("SELECT reference FROM payments WHERE id = $1")
            .bind(payment_id)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        let reference = normalized(&reference);
        let rows =
            sqlx::query("SELECT id, number, amount_open FROM invoices WHERE status = 'open' ORDER BY due_date, id")
                .fetch_all(&mut *conn)
                .await?;
        let mut left = payment.available();
        let mut split = Vec::new();
        for r in rows {
            let (id, number): (String, String) = (r.try_get(0)?, r.try_get(1)?);
            if left <= Decimal::ZERO {
                break;
            }
            if reference.contains(&normalized(&id)) || reference.contains(&normalized(&number)) {
                let take = parse_money(r.try_get(2)?)?.min(left);
                left -= take;
                split.push((id, cents(take)));
            }
        }
        Ok(split)
    }
}

/// Money leaves the unapplied-cash account for the customer's bank account.
async fn pay_out(
    conn: &mut AnyConnection,
    payment_id: &str,
    customer_id: &str,
    amount: Decimal,
    kind: &str,
    (today, now): (NaiveDate, DateTime<Utc>),
) -> Result<(), Error> {
    let entry = Entry {
        date: today,
        kind,
        description: format!("{} of payment {payment_id}", kind.replace('_', " ")),
        document: Some(payment_id),
        lines: vec![
            JournalLine::debit(account::UNAPPLIED_CASH, amount).customer(customer_id),
            JournalLine::credit(account::BANK, amount),
        ],
    };
    post(conn, entry, now).await?;
    Ok(())
}
