//! The invoice, customer and outbox rows that several of the job operations read and write.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::wording::Language;
use super::{Error, InvoiceIssued, money_text, parse_date, parse_money, ts_text};

/// An invoice as the operations read it.
pub(super) struct InvoiceRow {
    pub(super) id: String,
    pub(super) number: String,
    pub(super) customer_id: String,
    pub(super) issue_date: NaiveDate,
    pub(super) due_date: NaiveDate,
    pub(super) net: Decimal,
    pub(super) tax: Decimal,
    pub(super) total: Decimal,
    pub(super) amount_open: Decimal,
    pub(super) status: String,
}

impl InvoiceRow {
    /// The invoice as the invoicing job outputs it.
    pub(super) fn issued(&self) -> InvoiceIssued {
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

/// The columns [`invoice_from`] reads, in its order.
const INVOICE_COLUMNS: &str = "id, number, customer_id, issue_date, due_date, net, tax, total, amount_open, status";

/// The invoice whose column `by` (`id` or `order_id`) holds `value`.
pub(super) async fn invoice_row(conn: &mut AnyConnection, by: &str, value: &str) -> Result<Option<InvoiceRow>, Error> {
    let sql = format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE {by} = $1");
    let Some(r) = sqlx::query(&sql).bind(value).fetch_optional(conn).await? else { return Ok(None) };
    invoice_from(&r, 0).map(Some)
}

/// What a read of invoices by their orders selects, up to its `WHERE`: the columns
/// [`invoices_by_order`] reads.
pub(super) fn invoices_of_orders_select() -> String {
    format!("{INVOICE_COLUMNS}, order_id FROM invoices")
}

/// The invoices of rows read by [`invoices_of_orders_select`] (its columns from column `from`),
/// by order.
pub(super) fn invoices_by_order<'a, I>(rows: I, from: usize) -> Result<HashMap<String, InvoiceRow>, Error>
where
    I: IntoIterator<Item = &'a AnyRow>,
{
    let mut found = HashMap::new();
    for r in rows {
        found.insert(r.try_get::<String, _>(from + 10)?, invoice_from(r, from)?);
    }
    Ok(found)
}

/// The invoice in [`INVOICE_COLUMNS`] from column `from` of `r`.
fn invoice_from(r: &AnyRow, from: usize) -> Result<InvoiceRow, Error> {
    Ok(InvoiceRow {
        id: r.try_get(from)?,
        number: r.try_get(from + 1)?,
        customer_id: r.try_get(from + 2)?,
        issue_date: parse_date(r.try_get(from + 3)?)?,
        due_date: parse_date(r.try_get(from + 4)?)?,
        net: parse_money(r.try_get(from + 5)?)?,
        tax: parse_money(r.try_get(from + 6)?)?,
        total: parse_money(r.try_get(from + 7)?)?,
        amount_open: parse_money(r.try_get(from + 8)?)?,
        status: r.try_get(from + 9)?,
    })
}

/// Invoice `id`; an unknown one is an error.
pub(super) async fn invoice(conn: &mut AnyConnection, id: &str) -> Result<InvoiceRow, Error> {
    invoice_row(conn, "id", id).await?.ok_or_else(|| Error::UnknownInvoice(id.to_string()))
}

/// Sets what is open on an invoice, and its status.
pub(super) async fn set_invoice_open(
    conn: &mut AnyConnection,
    id: &str,
    open: Decimal,
    status: &str,
) -> Result<(), Error> {
    sqlx::query("UPDATE invoices SET amount_open = $2, status = $3 WHERE id = $1")
        .bind(id)
        .bind(money_text(open))
        .bind(status)
        .execute(conn)
        .await?;
    Ok(())
}

/// A customer as the operations read it.
pub(super) struct CustomerRow {
    pub(super) name: String,
    pub(super) email: Option<String>,
    pub(super) credit_limit: Decimal,
    pub(super) risk: String,
    pub(super) blocked: bool,
    pub(super) terms: i64,
    pub(super) tax_rate: Decimal,
    /// The language of its letters (English when none is set).
    pub(super) language: Language,
    /// The cost centre whose budget its orders draw on, if any.
    pub(super) cost_centre: Option<String>,
}

/// The columns [`customer_from`] reads, in its order.
const CUSTOMER_COLUMNS: &str =
    "name, email, credit_limit, risk_rating, blocked, payment_terms_days, tax_rate, language, cost_centre";

/// Customer `id`; an unknown one is an error.
pub(super) async fn customer(conn: &mut AnyConnection, id: &str) -> Result<CustomerRow, Error> {
    let sql = format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1");
    let r =
        sqlx::query(&sql).bind(id).fetch_optional(conn).await?.ok_or_else(|| Error::UnknownCustomer(id.to_string()))?;
    customer_from(&r, 0)
}

/// What a read of customers by their ids selects, up to its `WHERE`: the columns
/// [`customers_by_id`] reads.
pub(super) fn customers_select() -> String {
    format!("{CUSTOMER_COLUMNS}, id FROM customers")
}

/// The customers of rows read by [`customers_select`] (its columns from column `from`), by id.
pub(super) fn customers_by_id<'a, I>(rows: I, from: usize) -> Result<HashMap<String, CustomerRow>, Error>
where
    I: IntoIterator<Item = &'a AnyRow>,
{
    let mut found = HashMap::new();
    for r in rows {
        found.insert(r.try_get::<String, _>(from + 9)?, customer_from(r, from)?);
    }
    Ok(found)
}

/// The customer in [`CUSTOMER_COLUMNS`] from column `from` of `r`.
fn customer_from(r: &AnyRow, from: usize) -> Result<CustomerRow, Error> {
    Ok(CustomerRow {
        name: r.try_get(from)?,
        email: r.try_get(from + 1)?,
        credit_limit: parse_money(r.try_get(from + 2)?)?,
        risk: r.try_get(from + 3)?,
        blocked: r.try_get::<i64, _>(from + 4)? != 0,
        terms: r.try_get(from + 5)?,
        tax_rate: parse_money(r.try_get(from + 6)?)?,
        language: r
            .try_get::<Option<String>, _>(from + 7)?
            .as_deref()
            .and_then(Language::parse)
            .unwrap_or(Language::En),
        cost_centre: r.try_get(from + 8)?,
    })
}

/// Puts a letter in the outbox; returns its row id.
#[allow(clippy::too_many_arguments)] // a row of the outbox table
pub(super) async fn outbox(
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

impl super::Ledger {
    /// Every customer's name by id: what the pages show beside a customer's id.
    pub async fn customer_names(&self) -> Result<HashMap<String, String>, Error> {
        let rows = sqlx::query("SELECT id, name FROM customers").fetch_all(&self.read).await?;
        rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect()
    }
}
