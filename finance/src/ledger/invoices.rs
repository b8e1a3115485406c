//! Orders, their invoices and the cost of their goods: recording an order, issuing its invoice
//! with a gapless number, and posting its cost of goods sold.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

use super::idempotency::once;
use super::records::{customer, invoice, invoice_row};
use super::series::InvoiceQueue;
use super::{Entry, Error, Ledger, Scope, account, cents, date_text, decimal_setting, parse_money, post};

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

impl Ledger {
    /// Issues the invoice of an order: lines from the recorded order (or one line for `amount`
    /// when the order is not recorded), tax at the customer's rate on the net total, a gapless
    /// number, due date from the payment terms, posted to receivables, revenue and VAT. An order
    /// already invoiced returns its invoice.
    ///
    /// Invoices asked of one handle at once are issued together, in one transaction per batch
    /// (see `ledger/series.rs`); each gets its own result, or its own refusal, once the
    /// batch has committed. A failed batch answers [`Error::Retry`]: nothing of it was written.
    pub async fn issue_invoice(
        &self,
        key: &str,
        now: DateTime<Utc>,
        order_id: &str,
        customer_id: &str,
        amount: Decimal,
    ) -> Result<InvoiceIssued, Error> {
        self.invoices.issue(self, key, now, order_id, customer_id, amount).await
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
        let today = self.book_date(now).await?;
        // The customer shared: costing adds to its business without reading what others add, so
        // the costs of one customer's orders post side by side (each order still exclusive).
        let scopes = vec![Scope::Order(order_id.into()), Scope::CustomerShared(customer_id.into())];
        once!(self, key, "ledger.post_cost", now, scoped: scopes, |conn| {
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
                        record_standard_order(conn, today, order_id, customer_id, amount).await?;
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
                // Relieved from what was booked into stock (see `stock`), or bought in, under the
                // lock of each product taken (ascending, after the order's and customer's), so two
                // orders costing one product queue rather than one failing on the other's update.
                let rows = sqlx::query("SELECT DISTINCT sku FROM order_lines WHERE order_id = $1 AND sku IS NOT NULL")
                    .bind(order_id)
                    .fetch_all(&mut *conn)
                    .await?;
                let mut products = rows.iter().map(|r| r.try_get(0).map(Scope::Product)).collect::<Result<Vec<_>, _>>()?;
                products.sort_by_key(Scope::keys);
                for product in &products {
                    self.lock_late(conn, product).await?;
                }
                let relieved = super::stock::relieve(conn, order_id).await?;
                let cost = relieved.total();
                let entry = Entry {
                    date: today,
                    kind: "cost_of_goods",
                    description: format!("cost of goods of order {order_id}, shipment {shipment_id}"),
                    document: Some(order_id),
                    lines: relieved.lines(customer_id),
                };
                if cost > Decimal::ZERO {
                    post(conn, entry, now).await?;
                }
                CostPosted { cost_of_goods: cents(cost) }
            }
        })
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
        let mut tx = self.begin_scoped(&order_scopes(order_id, customer_id)).await?;
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

    /// The invoices asked of this handle and not yet answered: waiting for a batch, or in the
    /// one being issued.
    pub fn invoice_queue(&self) -> InvoiceQueue {
        self.invoices.queue()
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

/// What recording an order locks: the order (one invoice, one cost posting, one set of lines)
/// and its customer's business.
fn order_scopes(order_id: &str, customer_id: &str) -> Vec<Scope> {
    vec![Scope::Order(order_id.into()), Scope::Customer(customer_id.into())]
}

/// Records an order that reached the ledger without its lines: one line for the amount, costed
/// at the standard cost rate. Invoicing and costing each record it when they come first, so
/// neither waits for the other.
async fn record_standard_order(
    conn: &mut AnyConnection,
    today: NaiveDate,
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
        .bind(date_text(today))
        .execute(&mut *conn)
        .await?;
    let description = format!("Order {order_id}");
    insert_order_line(conn, order_id, 1, None, &description, Decimal::ONE, amount, cents(amount * rate)).await
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
