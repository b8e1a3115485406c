//! What each built-in job does to the sub-ledger. Every operation that changes the ledger runs in
//! one transaction that also records its output under the job's idempotency key: a second run
//! with the same key changes nothing and returns the first run's output.

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

use super::{
    Entry, Error, JournalLine, Ledger, account, cents, date_text, decimal_setting, money_text, parse_date, parse_money,
    period_of, post, ts_text,
};

/// The customer's credit position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreditCheck {
    /// The credit limit.
    pub credit_limit: Decimal,
    /// Open receivables (invoices not yet paid or written off).
    pub open_ar: Decimal,
    /// Risk rating A (best) to D.
    pub risk: String,
    /// What is left of the limit before this order.
    pub available: Decimal,
    /// Payment terms in days.
    pub payment_terms_days: i64,
}

/// An issued invoice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvoiceIssued {
    /// The invoice's document id (`INV-2026-000042`), used as the payment correlation key.
    pub invoice_id: String,
    /// The gapless legal number (`2026-000042`).
    pub invoice_number: String,
    /// Net amount.
    pub net: Decimal,
    /// Tax, rounded to the cent on the net total.
    pub tax: Decimal,
    /// Net plus tax.
    pub total: Decimal,
    /// Issue date.
    pub issue_date: NaiveDate,
    /// Due date: issue date plus the customer's payment terms.
    pub due_date: NaiveDate,
}

/// Cost of goods posted for an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostPosted {
    /// The cost of the order's goods.
    pub cost_of_goods: Decimal,
}

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

/// A receivable written off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WrittenOff {
    /// The amount written off.
    pub written_off: Decimal,
    /// What is still open.
    pub amount_open: Decimal,
}

/// A stored report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportMade {
    /// The report's id.
    pub report_id: String,
    /// The report's totals, as the job outputs them.
    #[serde(flatten)]
    pub totals: serde_json::Map<String, serde_json::Value>,
}

/// A closed period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeriodClosed {
    /// The period (`YYYY-MM`).
    pub period: String,
    /// When it was closed.
    pub closed_at: DateTime<Utc>,
}

struct InvoiceRow {
    id: String,
    number: String,
    customer_id: String,
    issue_date: NaiveDate,
    due_date: NaiveDate,
    net: Decimal,
    tax: Decimal,
    total: Decimal,
    amount_open: Decimal,
    status: String,
}

impl InvoiceRow {
    fn issued(&self) -> InvoiceIssued {
        InvoiceIssued {
            invoice_id: self.id.clone(),
            invoice_number: self.number.clone(),
            net: self.net,
            tax: self.tax,
            total: self.total,
            issue_date: self.issue_date,
            due_date: self.due_date,
        }
    }
}

async fn invoice_row(conn: &mut AnyConnection, by: &str, value: &str) -> Result<Option<InvoiceRow>, Error> {
    let sql = format!(
        "SELECT id, number, customer_id, issue_date, due_date, net, tax, total, amount_open, status \
         FROM invoices WHERE {by} = $1"
    );
    let Some(r) = sqlx::query(&sql).bind(value).fetch_optional(conn).await? else { return Ok(None) };
    Ok(Some(InvoiceRow {
        id: r.try_get(0)?,
        number: r.try_get(1)?,
        customer_id: r.try_get(2)?,
        issue_date: parse_date(r.try_get(3)?)?,
        due_date: parse_date(r.try_get(4)?)?,
        net: parse_money(r.try_get(5)?)?,
        tax: parse_money(r.try_get(6)?)?,
        total: parse_money(r.try_get(7)?)?,
        amount_open: parse_money(r.try_get(8)?)?,
        status: r.try_get(9)?,
    }))
}

async fn invoice(conn: &mut AnyConnection, id: &str) -> Result<InvoiceRow, Error> {
    invoice_row(conn, "id", id).await?.ok_or_else(|| Error::UnknownInvoice(id.to_string()))
}

async fn set_invoice_open(conn: &mut AnyConnection, id: &str, open: Decimal, status: &str) -> Result<(), Error> {
    sqlx::query("UPDATE invoices SET amount_open = $2, status = $3 WHERE id = $1")
        .bind(id)
        .bind(money_text(open))
        .bind(status)
        .execute(conn)
        .await?;
    Ok(())
}

struct CustomerRow {
    name: String,
    email: Option<String>,
    credit_limit: Decimal,
    risk: String,
    blocked: bool,
    terms: i64,
    tax_rate: Decimal,
}

async fn customer(conn: &mut AnyConnection, id: &str) -> Result<CustomerRow, Error> {
    let r = sqlx::query(
        "SELECT name, email, credit_limit, risk_rating, blocked, payment_terms_days, tax_rate \
         FROM customers WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| Error::UnknownCustomer(id.to_string()))?;
    Ok(CustomerRow {
        name: r.try_get(0)?,
        email: r.try_get(1)?,
        credit_limit: parse_money(r.try_get(2)?)?,
        risk: r.try_get(3)?,
        blocked: r.try_get::<i64, _>(4)? != 0,
        terms: r.try_get(5)?,
        tax_rate: parse_money(r.try_get(6)?)?,
    })
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

async fn replayed<T: DeserializeOwned>(conn: &mut AnyConnection, key: &str) -> Result<Option<T>, Error> {
    let row = sqlx::query("SELECT output FROM idempotency_keys WHERE key = $1").bind(key).fetch_optional(conn).await?;
    match row {
        Some(r) => {
            let text: String = r.try_get(0)?;
            serde_json::from_str(&text).map(Some).map_err(|e| Error::Corrupt(format!("stored output of {key}: {e}")))
        }
        None => Ok(None),
    }
}

async fn remember<T: Serialize>(
    conn: &mut AnyConnection,
    key: &str,
    job_type: &str,
    output: &T,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let text = serde_json::to_string(output).map_err(|e| Error::Corrupt(e.to_string()))?;
    sqlx::query("INSERT INTO idempotency_keys (key, job_type, output, created_at) VALUES ($1, $2, $3, $4)")
        .bind(key)
        .bind(job_type)
        .bind(text)
        .bind(ts_text(now))
        .execute(conn)
        .await?;
    Ok(())
}

/// Runs `$body` (an expression using `$conn`) once per idempotency key, in one transaction.
macro_rules! once {
    ($self:ident, $key:expr, $job_type:expr, $now:expr, |$conn:ident| $body:expr) => {{
        let mut tx = $self.begin().await?;
        let $conn: &mut AnyConnection = &mut tx;
        if let Some(output) = replayed($conn, $key).await? {
            return Ok(output);
        }
        let output = $body;
        remember(&mut tx, $key, $job_type, &output, $now).await?;
        tx.commit().await?;
        Ok(output)
    }};
}

impl Ledger {
    /// The customer's credit position; a blocked customer is refused. The answer is recorded
    /// under `key`, so a redelivered job sees the position its first run decided on.
    pub async fn credit_check(&self, key: &str, now: DateTime<Utc>, customer_id: &str) -> Result<CreditCheck, Error> {
        once!(self, key, "credit.check", now, |conn| {
            let c = customer(conn, customer_id).await?;
            if c.blocked {
                return Err(Error::CustomerBlocked(customer_id.to_string()));
            }
            let open_ar = open_receivables(conn, Some(customer_id)).await?;
            CreditCheck {
                credit_limit: cents(c.credit_limit),
                open_ar: cents(open_ar),
                risk: c.risk,
                available: cents(c.credit_limit - open_ar),
                payment_terms_days: c.terms,
            }
        })
    }

    /// Issues the invoice of an order: lines from the recorded order (or one line for `amount`
    /// when the order is not recorded), tax at the customer's rate on the net total, a gapless
    /// number, due date from the payment terms, posted to receivables, revenue and VAT. An order
    /// already invoiced returns its invoice.
    pub async fn issue_invoice(
        &self,
        key: &str,
        now: DateTime<Utc>,
        order_id: &str,
        customer_id: &str,
        amount: Decimal,
    ) -> Result<InvoiceIssued, Error> {
        once!(self, key, "invoice.issue", now, |conn| {
            if let Some(existing) = invoice_row(conn, "order_id", order_id).await? {
                if existing.customer_id != customer_id {
                    return Err(Error::InvoiceData(format!(
                        "order {order_id} was invoiced to {}, not {customer_id}",
                        existing.customer_id
                    )));
                }
                existing.issued()
            } else {
                issue(conn, now, order_id, customer_id, amount).await?
            }
        })
    }

    /// Posts the cost of an order's goods (cost of goods sold against inventory), once per order.
    ///
    /// Costing runs beside invoicing: given the order's `amount`, an order not recorded yet is
    /// recorded here as invoicing would record it (one line at the standard cost rate), so the
    /// cost never waits for the invoice. Without an amount, an unrecorded order is a failure
    /// to retry.
    pub async fn post_cost(
        &self,
        key: &str,
        now: DateTime<Utc>,
        order_id: &str,
        customer_id: &str,
        shipment_id: &str,
        amount: Option<Decimal>,
    ) -> Result<CostPosted, Error> {
        once!(self, key, "ledger.post_cost", now, |conn| {
            let posted = sqlx::query(
                "SELECT l.debit FROM journal_entries e JOIN journal_lines l ON l.entry_id = e.id \
                 WHERE e.kind = 'cost_of_goods' AND e.document = $1 AND l.account = $2",
            )
            .bind(order_id)
            .bind(account::COST_OF_GOODS)
            .fetch_all(&mut *conn)
            .await?;
            if !posted.is_empty() {
                let mut cost = Decimal::ZERO;
                for r in posted {
                    cost += parse_money(r.try_get(0)?)?;
                }
                CostPosted { cost_of_goods: cents(cost) }
            } else {
                let recorded = sqlx::query("SELECT customer_id FROM orders WHERE id = $1")
                    .bind(order_id)
                    .fetch_optional(&mut *conn)
                    .await?
                    .map(|r| r.try_get::<String, _>(0))
                    .transpose()?;
                let owner = match (recorded, amount) {
                    (Some(owner), _) => owner,
                    (None, Some(amount)) => {
                        customer(conn, customer_id).await?;
                        record_standard_order(conn, now, order_id, customer_id, amount).await?;
                        customer_id.to_string()
                    }
                    (None, None) => return Err(Error::UnknownOrder(order_id.to_string())),
                };
                if owner != customer_id {
                    return Err(Error::Input {
                        field: "customer_id".into(),
                        problem: format!("order {order_id} belongs to {owner}"),
                    });
                }
                let mut cost = Decimal::ZERO;
                for (quantity, _, unit_cost) in order_lines(conn, order_id).await? {
                    cost += cents(quantity * unit_cost);
                }
                let entry = Entry {
                    date: now.date_naive(),
                    kind: "cost_of_goods",
                    description: format!("cost of goods of order {order_id}, shipment {shipment_id}"),
                    document: Some(order_id),
                    lines: vec![
                        JournalLine::debit(account::COST_OF_GOODS, cost).customer(customer_id),
                        JournalLine::credit(account::INVENTORY, cost),
                    ],
                };
                if cost > Decimal::ZERO {
                    post(conn, entry, now).await?;
                }
                CostPosted { cost_of_goods: cents(cost) }
            }
        })
    }

    /// Puts a customer notification about an invoice in the outbox.
    pub async fn notify(
        &self,
        key: &str,
        now: DateTime<Utc>,
        customer_id: &str,
        invoice_id: &str,
        template: &str,
    ) -> Result<Notified, Error> {
        once!(self, key, "outbox.notify", now, |conn| {
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
        once!(self, key, "dunning.send", now, |conn| {
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

    /// Matches a payment to an invoice. The cash is received (bank against unapplied cash) the
    /// first time a payment id is seen; a partial payment is applied at once; an exact one is
    /// applied by [`Ledger::post_receipt`]; an over-payment waits for finance.
    pub async fn match_payment(
        &self,
        key: &str,
        now: DateTime<Utc>,
        m: &PaymentMatch,
    ) -> Result<PaymentMatched, Error> {
        once!(self, key, "payment.match", now, |conn| {
            let today = now.date_naive();
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
        once!(self, key, "receipt.post", now, |conn| {
            let today = now.date_naive();
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
        once!(self, key, "payment.refund", now, |conn| {
            let mut payment =
                payment_row(conn, payment_id).await?.ok_or_else(|| Error::UnknownPayment(payment_id.to_string()))?;
            if amount <= Decimal::ZERO || amount > payment.available() {
                return Err(Error::InvalidAmount(format!(
                    "refund of {amount} from payment {payment_id}, which has {} unapplied",
                    money_text(payment.available())
                )));
            }
            pay_out(conn, payment_id, customer_id, amount, "refund", now).await?;
            payment.refunded += amount;
            save_payment(conn, payment_id, &payment).await?;
            let c = customer(conn, customer_id).await?;
            let body = format!("Dear {},\n\nwe refunded {} of your payment {payment_id}.", c.name, money_text(amount));
            outbox(
                conn,
                "refund_notice",
                customer_id,
                c.email.as_deref(),
                None,
                "Refund of an over-payment",
                &body,
                now,
            )
            .await?;
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
        once!(self, key, "payment.return", now, |conn| {
            let mut payment =
                payment_row(conn, payment_id).await?.ok_or_else(|| Error::UnknownPayment(payment_id.to_string()))?;
            let amount = payment.available();
            if amount > Decimal::ZERO {
                pay_out(conn, payment_id, customer_id, amount, "payment_return", now).await?;
                payment.returned += amount;
                save_payment(conn, payment_id, &payment).await?;
            }
            PaymentReturned { returned: cents(amount) }
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
        once!(self, key, "ledger.write_off", now, |conn| {
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

    /// Stores the AR aging as of a date; outputs its id and total.
    pub async fn aging_report(&self, key: &str, now: DateTime<Utc>, as_of: NaiveDate) -> Result<ReportMade, Error> {
        let report = self.aging(as_of).await?;
        let mut totals = serde_json::Map::new();
        totals.insert("total".into(), serde_json::json!(money_text(report.total)));
        for bucket in &report.buckets {
            totals
                .insert(format!("bucket_{}", bucket.label.replace(['-', '+'], "_")), serde_json::json!(bucket.amount));
        }
        let body = serde_json::to_string(&report).map_err(|e| Error::Corrupt(e.to_string()))?;
        self.store_report(key, "report.ar_aging", "aging", as_of, body, totals, now).await
    }

    /// Stores gross profit by customer for the month of `as_of` up to that date.
    pub async fn gross_profit_report(
        &self,
        key: &str,
        now: DateTime<Utc>,
        as_of: NaiveDate,
    ) -> Result<ReportMade, Error> {
        let from = as_of.with_day(1).unwrap_or(as_of);
        let report = self.gross_profit(from, as_of).await?;
        let mut totals = serde_json::Map::new();
        totals.insert("revenue".into(), serde_json::json!(money_text(report.revenue)));
        totals.insert("cost_of_goods".into(), serde_json::json!(money_text(report.cost_of_goods)));
        totals.insert("gross_profit".into(), serde_json::json!(money_text(report.gross_profit)));
        let body = serde_json::to_string(&report).map_err(|e| Error::Corrupt(e.to_string()))?;
        self.store_report(key, "report.gross_profit", "gross_profit", as_of, body, totals, now).await
    }

    #[allow(clippy::too_many_arguments)] // one private helper shared by the two reports
    async fn store_report(
        &self,
        key: &str,
        job_type: &str,
        kind: &str,
        as_of: NaiveDate,
        body: String,
        totals: serde_json::Map<String, serde_json::Value>,
        now: DateTime<Utc>,
    ) -> Result<ReportMade, Error> {
        once!(self, key, job_type, now, |conn| {
            let n: i64 = sqlx::query("SELECT count(*) FROM reports WHERE kind = $1 AND as_of = $2")
                .bind(kind)
                .bind(date_text(as_of))
                .fetch_one(&mut *conn)
                .await?
                .try_get(0)?;
            let report_id = format!("{kind}-{}-{}", date_text(as_of), n + 1);
            sqlx::query("INSERT INTO reports (id, kind, as_of, body, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&report_id)
                .bind(kind)
                .bind(date_text(as_of))
                .bind(&body)
                .bind(ts_text(now))
                .execute(&mut *conn)
                .await?;
            ReportMade { report_id, totals }
        })
    }

    /// A stored report's body (JSON), by id.
    pub async fn report(&self, report_id: &str) -> Result<Option<serde_json::Value>, Error> {
        let row =
            sqlx::query("SELECT body FROM reports WHERE id = $1").bind(report_id).fetch_optional(&self.read).await?;
        match row {
            Some(r) => {
                let body: String = r.try_get(0)?;
                serde_json::from_str(&body).map(Some).map_err(|e| Error::Corrupt(format!("report {report_id}: {e}")))
            }
            None => Ok(None),
        }
    }

    /// Closes the period (month) of `as_of`: later postings dated in it are refused.
    pub async fn close_period(&self, key: &str, now: DateTime<Utc>, as_of: NaiveDate) -> Result<PeriodClosed, Error> {
        once!(self, key, "ledger.close_period", now, |conn| {
            let period = period_of(as_of);
            sqlx::query(
                "INSERT INTO periods (period, status, closed_at) VALUES ($1, 'closed', $2) \
                 ON CONFLICT (period) DO UPDATE SET status = 'closed', closed_at = coalesce(periods.closed_at, $2)",
            )
            .bind(&period)
            .bind(ts_text(now))
            .execute(&mut *conn)
            .await?;
            PeriodClosed { period, closed_at: now }
        })
    }

    /// True if the period (`YYYY-MM`) is closed.
    pub async fn is_closed(&self, period: &str) -> Result<bool, Error> {
        let row =
            sqlx::query("SELECT status FROM periods WHERE period = $1").bind(period).fetch_optional(&self.read).await?;
        Ok(row.map(|r| r.try_get::<String, _>(0)).transpose()?.is_some_and(|s| s == "closed"))
    }

    /// Records a sales order priced from the product catalogue: `(sku, quantity)` lines. Returns
    /// the order's net amount (what `order_to_cash` takes as `amount`). Recording the same order
    /// again changes nothing.
    pub async fn record_order(
        &self,
        order_id: &str,
        customer_id: &str,
        order_date: NaiveDate,
        lines: &[(&str, Decimal)],
    ) -> Result<Decimal, Error> {
        let mut tx = self.begin().await?;
        customer(&mut tx, customer_id).await?;
        let exists = sqlx::query("SELECT customer_id FROM orders WHERE id = $1")
            .bind(order_id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get::<String, _>(0))
            .transpose()?;
        if let Some(owner) = exists {
            if owner != customer_id {
                return Err(Error::Input {
                    field: "order_id".into(),
                    problem: format!("order {order_id} is recorded for {owner}"),
                });
            }
            let net = order_net(&mut tx, order_id).await?;
            return Ok(net);
        }
        if lines.is_empty() {
            return Err(Error::Input { field: "lines".into(), problem: "an order needs a line".into() });
        }
        sqlx::query("INSERT INTO orders (id, customer_id, order_date) VALUES ($1, $2, $3)")
            .bind(order_id)
            .bind(customer_id)
            .bind(date_text(order_date))
            .execute(&mut *tx)
            .await?;
        for (n, (sku, quantity)) in lines.iter().enumerate() {
            if *quantity <= Decimal::ZERO {
                return Err(Error::InvalidAmount(format!("quantity {quantity} of {sku}")));
            }
            let product = sqlx::query("SELECT name, unit_price, unit_cost FROM products WHERE sku = $1")
                .bind(sku)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| Error::UnknownProduct(sku.to_string()))?;
            insert_order_line(
                &mut tx,
                order_id,
                n + 1,
                Some(sku),
                product.try_get::<String, _>(0)?.as_str(),
                *quantity,
                parse_money(product.try_get(1)?)?,
                parse_money(product.try_get(2)?)?,
            )
            .await?;
        }
        let net = order_net(&mut tx, order_id).await?;
        tx.commit().await?;
        Ok(net)
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
        let mut tx = self.begin().await?;
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

    /// An invoice's document id for an order, once issued.
    pub async fn invoice_of_order(&self, order_id: &str) -> Result<Option<InvoiceIssued>, Error> {
        let mut conn = self.read.acquire().await?;
        Ok(invoice_row(&mut conn, "order_id", order_id).await?.map(|i| i.issued()))
    }

    /// What is open on an invoice, and its status.
    pub async fn invoice_open(&self, invoice_id: &str) -> Result<(Decimal, String), Error> {
        let mut conn = self.read.acquire().await?;
        let inv = invoice(&mut conn, invoice_id).await?;
        Ok((inv.amount_open, inv.status))
    }
}

/// Records an order that reached the ledger without its lines: one line for the amount, costed
/// at the standard cost rate. Invoicing and costing each record it when they come first, so
/// neither waits for the other.
async fn record_standard_order(
    conn: &mut AnyConnection,
    now: DateTime<Utc>,
    order_id: &str,
    customer_id: &str,
    amount: Decimal,
) -> Result<(), Error> {
    if amount <= Decimal::ZERO || amount != cents(amount) {
        return Err(Error::InvoiceData(format!(
            "order {order_id} has amount {amount}, not a positive amount in cents"
        )));
    }
    let rate = decimal_setting(&Ledger::setting(conn, "standard_cost_rate").await?)?;
    sqlx::query("INSERT INTO orders (id, customer_id, order_date) VALUES ($1, $2, $3)")
        .bind(order_id)
        .bind(customer_id)
        .bind(date_text(now.date_naive()))
        .execute(&mut *conn)
        .await?;
    let description = format!("Order {order_id}");
    insert_order_line(conn, order_id, 1, None, &description, Decimal::ONE, amount, cents(amount * rate)).await
}

async fn issue(
    conn: &mut AnyConnection,
    now: DateTime<Utc>,
    order_id: &str,
    customer_id: &str,
    amount: Decimal,
) -> Result<InvoiceIssued, Error> {
    let c = match customer(conn, customer_id).await {
        Err(Error::UnknownCustomer(id)) => return Err(Error::InvoiceData(format!("customer {id} is not on file"))),
        other => other?,
    };
    if amount <= Decimal::ZERO {
        return Err(Error::InvoiceData(format!("order {order_id} has amount {amount}")));
    }
    if amount != cents(amount) {
        return Err(Error::InvoiceData(format!("order {order_id} has amount {amount}, finer than a cent")));
    }
    if c.tax_rate < Decimal::ZERO || c.tax_rate >= Decimal::ONE {
        return Err(Error::InvoiceData(format!("customer {customer_id} has tax rate {}", c.tax_rate)));
    }
    let owner = sqlx::query("SELECT customer_id FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.try_get::<String, _>(0))
        .transpose()?;
    match owner {
        Some(owner) if owner != customer_id => {
            return Err(Error::InvoiceData(format!("order {order_id} was placed by {owner}, not {customer_id}")));
        }
        Some(_) => {
            let net = order_net(conn, order_id).await?;
            if net != amount {
                return Err(Error::InvoiceData(format!(
                    "order {order_id} lines come to {}, the order says {}",
                    money_text(net),
                    money_text(amount)
                )));
            }
        }
        None => record_standard_order(conn, now, order_id, customer_id, amount).await?,
    }
    let lines = order_lines(conn, order_id).await?;
    let issue_date = now.date_naive();
    let due_date = issue_date + TimeDelta::days(c.terms);
    let year = issue_date.year();
    let sequence = format!("invoice-{year}");
    let n: i64 = sqlx::query(
        "INSERT INTO number_sequences (name, next_value) VALUES ($1, 2) \
         ON CONFLICT (name) DO UPDATE SET next_value = number_sequences.next_value + 1 \
         RETURNING next_value - 1",
    )
    .bind(&sequence)
    .fetch_one(&mut *conn)
    .await?
    .try_get(0)?;
    let number = format!("{year}-{n:06}");
    let id = format!("INV-{number}");
    let net = cents(amount);
    let tax = cents(net * c.tax_rate);
    let total = net + tax;
    sqlx::query(
        "INSERT INTO invoices (id, number, order_id, customer_id, issue_date, due_date, net, tax, total, \
         amount_open, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, 'open')",
    )
    .bind(&id)
    .bind(&number)
    .bind(order_id)
    .bind(customer_id)
    .bind(date_text(issue_date))
    .bind(date_text(due_date))
    .bind(money_text(net))
    .bind(money_text(tax))
    .bind(money_text(total))
    .execute(&mut *conn)
    .await?;
    let descriptions = sqlx::query("SELECT description FROM order_lines WHERE order_id = $1 ORDER BY line_no")
        .bind(order_id)
        .fetch_all(&mut *conn)
        .await?;
    for (n, ((quantity, unit_price, _), d)) in lines.iter().zip(descriptions).enumerate() {
        sqlx::query(
            "INSERT INTO invoice_lines (invoice_id, line_no, description, quantity, unit_price, net, tax_rate) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(i64::try_from(n + 1).unwrap_or(i64::MAX))
        .bind(d.try_get::<String, _>(0)?)
        .bind(quantity.to_string())
        .bind(unit_price.to_string())
        .bind(money_text(*quantity * *unit_price))
        .bind(c.tax_rate.to_string())
        .execute(&mut *conn)
        .await?;
    }
    let entry = Entry {
        date: issue_date,
        kind: "invoice",
        description: format!("invoice {number} to {}", c.name),
        document: Some(&id),
        lines: vec![
            JournalLine::debit(account::RECEIVABLES, total).customer(customer_id).invoice(&id),
            JournalLine::credit(account::REVENUE, net).customer(customer_id),
            JournalLine::credit(account::VAT, tax),
        ],
    };
    post(conn, entry, now).await?;
    Ok(InvoiceIssued { invoice_id: id, invoice_number: number, net, tax, total, issue_date, due_date })
}

#[allow(clippy::too_many_arguments)] // a row of the order_lines table
async fn insert_order_line(
    conn: &mut AnyConnection,
    order_id: &str,
    line_no: usize,
    sku: Option<&str>,
    description: &str,
    quantity: Decimal,
    unit_price: Decimal,
    unit_cost: Decimal,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO order_lines (order_id, line_no, sku, description, quantity, unit_price, unit_cost) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(order_id)
    .bind(i64::try_from(line_no).unwrap_or(i64::MAX))
    .bind(sku)
    .bind(description)
    .bind(quantity.to_string())
    .bind(unit_price.to_string())
    .bind(unit_cost.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// (quantity, unit price, unit cost) of each line, in order.
async fn order_lines(conn: &mut AnyConnection, order_id: &str) -> Result<Vec<(Decimal, Decimal, Decimal)>, Error> {
    let rows =
        sqlx::query("SELECT quantity, unit_price, unit_cost FROM order_lines WHERE order_id = $1 ORDER BY line_no")
            .bind(order_id)
            .fetch_all(conn)
            .await?;
    rows.iter()
        .map(|r| Ok((parse_money(r.try_get(0)?)?, parse_money(r.try_get(1)?)?, parse_money(r.try_get(2)?)?)))
        .collect()
}

/// The order's net: each line's quantity times price, rounded to the cent, summed.
async fn order_net(conn: &mut AnyConnection, order_id: &str) -> Result<Decimal, Error> {
    Ok(order_lines(conn, order_id).await?.iter().map(|(q, p, _)| cents(*q * *p)).sum())
}

/// Money leaves the unapplied-cash account for the customer's bank account.
async fn pay_out(
    conn: &mut AnyConnection,
    payment_id: &str,
    customer_id: &str,
    amount: Decimal,
    kind: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let entry = Entry {
        date: now.date_naive(),
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

#[allow(clippy::too_many_arguments)] // a row of the outbox table
async fn outbox(
    conn: &mut AnyConnection,
    kind: &str,
    customer_id: &str,
    recipient: Option<&str>,
    invoice_id: Option<&str>,
    subject: &str,
    body: &str,
    now: DateTime<Utc>,
) -> Result<i64, Error> {
    Ok(sqlx::query(
        "INSERT INTO outbox (kind, customer_id, recipient, invoice_id, subject, body, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(kind)
    .bind(customer_id)
    .bind(recipient)
    .bind(invoice_id)
    .bind(subject)
    .bind(body)
    .bind(ts_text(now))
    .fetch_one(conn)
    .await?
    .try_get(0)?)
}

/// Open receivables (of one customer, or all) from the invoices.
pub(crate) async fn open_receivables(conn: &mut AnyConnection, customer_id: Option<&str>) -> Result<Decimal, Error> {
    let rows =
        sqlx::query("SELECT amount_open FROM invoices WHERE status = 'open' AND ($1 IS NULL OR customer_id = $1)")
            .bind(customer_id)
            .fetch_all(conn)
            .await?;
    rows.iter().map(|r| parse_money(r.try_get(0)?)).sum()
}
