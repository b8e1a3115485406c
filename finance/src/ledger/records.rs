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
    invoice_from(&r).map(Some)
}

/// The invoices of the orders `order_ids`, by order.
pub(super) async fn invoice_rows_of_orders(
    conn: &mut AnyConnection,
    order_ids: &[&str],
) -> Result<HashMap<String, InvoiceRow>, Error> {
    if order_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        "SELECT {INVOICE_COLUMNS}, order_id FROM invoices WHERE order_id IN ({})",
        super::series::marks(order_ids.len())
    );
    let mut query = super::series::read_in(&sql);
    for id in order_ids {
        query = query.bind(*id);
    }
    let mut found = HashMap::new();
    for r in query.fetch_all(conn).await? {
        found.insert(r.try_get::<String, _>(10)?, invoice_from(&r)?);
    }
    Ok(found)
}

fn invoice_from(r: &AnyRow) -> Result<InvoiceRow, Error> {
    Ok(InvoiceRow {
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
    customer_from(&r)
}

/// The customers of `ids` on file, by id.
pub(super) async fn customers(conn: &mut AnyConnection, ids: &[&str]) -> Result<HashMap<String, CustomerRow>, Error> {
    let mut distinct = ids.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.is_empty() {
        return Ok(HashMap::new());
    }
    let sql =
        format!("SELECT {CUSTOMER_COLUMNS}, id FROM customers WHERE id IN ({})", super::series::marks(distinct.len()));
    let mut query = super::series::read_in(&sql);
    for id in distinct {
        query = query.bind(id);
    }
    let mut found = HashMap::new();
    for r in query.fetch_all(conn).await? {
        found.insert(r.try_get::<String, _>(9)?, customer_from(&r)?);
    }
    Ok(found)
}

fn customer_from(r: &AnyRow) -> Result<CustomerRow, Error> {
    Ok(CustomerRow {
        name: r.try_get(0)?,
        email: r.try_get(1)?,
        credit_limit: parse_money(r.try_get(2)?)?,
        risk: r.try_get(3)?,
        blocked: r.try_get::<i64, _>(4)? != 0,
        terms: r.try_get(5)?,
        tax_rate: parse_money(r.try_get(6)?)?,
        language: r.try_get::<Option<String>, _>(7)?.as_deref().and_then(Language::parse).unwrap_or(Language::En),
        cost_centre: r.try_get(8)?,
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
