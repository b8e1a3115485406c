//! Stock booked: goods come into Inventory as opening stock or on goods receipts, and leave it
//! at their moving average cost when an order's cost of goods is posted, so that the Inventory
//! account's balance is always the value of what the warehouse holds.
//!
//! Valuation rule: each stocked product keeps its quantity on hand and their value; a receipt adds
//! its quantity and cost, an issue takes `value × quantity ÷ on hand` rounded to the cent (the
//! last units take whatever value is left, so no cent stays behind). An order cannot take more
//! than is on hand: its costing fails (and its job is retried) until goods are received.
//! A product that is not stocked (a service hour) or an order line without a product is bought in
//! for the order: its cost is owed to a supplier (Accounts payable), not taken from stock.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

use super::{Entry, Error, JournalLine, Ledger, account, cents, date_text, money_text, parse_date, parse_money, post};

/// Accounts payable: what is owed to suppliers for goods received and goods bought in.
pub const PAYABLES: &str = "2000";

/// One product's stock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StockLine {
    /// The product.
    pub sku: String,
    /// Its name.
    pub name: String,
    /// Units on hand.
    pub on_hand: Decimal,
    /// Their booked value.
    pub value: Decimal,
    /// The moving average cost of one unit (`None` when none is on hand).
    pub average_cost: Option<Decimal>,
}

/// A goods receipt as booked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoodsReceived {
    /// The receipt's id.
    pub receipt_id: String,
    /// The supplier.
    pub supplier: String,
    /// The day the goods came in.
    pub received_on: NaiveDate,
    /// What the goods cost, owed to the supplier.
    pub total: Decimal,
    /// False when the receipt was booked before (nothing changed).
    pub created: bool,
}

/// What an order's goods cost: the part taken from stock and the part bought in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Relieved {
    /// Relieved from Inventory at the moving average cost.
    pub from_stock: Decimal,
    /// Bought in for the order (services, lines without a product), owed to suppliers.
    pub bought_in: Decimal,
}

impl Relieved {
    /// The whole cost of the order's goods.
    pub(crate) fn total(self) -> Decimal {
        self.from_stock + self.bought_in
    }

    /// The cost of goods entry's lines: cost of goods sold against inventory and payables.
    pub(crate) fn lines(self, customer_id: &str) -> Vec<JournalLine> {
        vec![
            JournalLine::debit(account::COST_OF_GOODS, self.total()).customer(customer_id),
            JournalLine::credit(account::INVENTORY, self.from_stock),
            JournalLine::credit(PAYABLES, self.bought_in),
        ]
    }
}

impl Ledger {
    /// Books a goods receipt: `(sku, quantity, unit cost)` lines into stock at their cost, Inventory
    /// debited and Accounts payable credited, dated `received_on`. A receipt id already booked
    /// returns what it booked and changes nothing.
    pub async fn receive_goods(
        &self,
        receipt_id: &str,
        supplier: &str,
        received_on: NaiveDate,
        lines: &[(&str, Decimal, Decimal)],
        now: DateTime<Utc>,
    ) -> Result<GoodsReceived, Error> {
        let mut tx = self.begin().await?;
        let existing = sqlx::query("SELECT supplier, received_on, total FROM goods_receipts WHERE id = $1")
            .bind(receipt_id)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(r) = existing {
            return Ok(GoodsReceived {
                receipt_id: receipt_id.to_string(),
                supplier: r.try_get(0)?,
                received_on: parse_date(r.try_get(1)?)?,
                total: parse_money(r.try_get(2)?)?,
                created: false,
            });
        }
        let total = book_receipt(&mut tx, receipt_id, supplier, received_on, lines, now).await?;
        let description = format!("goods receipt {receipt_id} from {supplier}");
        let entry = Entry {
            date: received_on,
            kind: "goods_receipt",
            description,
            document: Some(receipt_id),
            lines: vec![JournalLine::debit(account::INVENTORY, total), JournalLine::credit(PAYABLES, total)],
        };
        post(&mut tx, entry, now).await?;
        tx.commit().await?;
        Ok(GoodsReceived {
            receipt_id: receipt_id.to_string(),
            supplier: supplier.to_string(),
            received_on,
            total,
            created: true,
        })
    }

    /// Every stocked product's quantity on hand and booked value, by SKU.
    pub async fn stock(&self) -> Result<Vec<StockLine>, Error> {
        let rows = sqlx::query(
            "SELECT p.sku, p.name, s.on_hand, s.value FROM products p JOIN stock s ON s.sku = p.sku ORDER BY p.sku",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let (on_hand, value) = (parse_money(r.try_get(2)?)?, parse_money(r.try_get(3)?)?);
                Ok(StockLine {
                    sku: r.try_get(0)?,
                    name: r.try_get(1)?,
                    on_hand,
                    value,
                    average_cost: (on_hand > Decimal::ZERO).then(|| cents(value / on_hand)),
                })
            })
            .collect()
    }
}

/// Records a receipt's rows and adds its lines to stock; returns its total. The caller posts it.
pub(crate) async fn book_receipt(
    conn: &mut AnyConnection,
    receipt_id: &str,
    supplier: &str,
    received_on: NaiveDate,
    lines: &[(&str, Decimal, Decimal)],
    now: DateTime<Utc>,
) -> Result<Decimal, Error> {
    if lines.is_empty() {
        return Err(Error::Input { field: "lines".into(), problem: "a goods receipt needs a line".into() });
    }
    let mut total = Decimal::ZERO;
    for (sku, quantity, unit_cost) in lines {
        if *quantity <= Decimal::ZERO || *unit_cost < Decimal::ZERO {
            return Err(Error::InvalidAmount(format!("receipt {receipt_id}: {quantity} of {sku} at {unit_cost}")));
        }
        total += cents(*quantity * *unit_cost);
    }
    sqlx::query("INSERT INTO goods_receipts (id, supplier, received_on, total, posted_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(receipt_id)
        .bind(supplier)
        .bind(date_text(received_on))
        .bind(money_text(total))
        .bind(super::ts_text(now))
        .execute(&mut *conn)
        .await?;
    for (n, (sku, quantity, unit_cost)) in lines.iter().enumerate() {
        let stocked = sqlx::query("SELECT stocked FROM products WHERE sku = $1")
            .bind(sku)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| Error::UnknownProduct(sku.to_string()))?
            .try_get::<i64, _>(0)?;
        if stocked == 0 {
            return Err(Error::Input { field: "lines".into(), problem: format!("{sku} is not a stocked product") });
        }
        sqlx::query(
            "INSERT INTO goods_receipt_lines (receipt_id, line_no, sku, quantity, unit_cost) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(receipt_id)
        .bind(i64::try_from(n + 1).unwrap_or(i64::MAX))
        .bind(sku)
        .bind(quantity.to_string())
        .bind(unit_cost.to_string())
        .execute(&mut *conn)
        .await?;
        let held = held(conn, sku).await?;
        let (on_hand, value) = (held.on_hand, held.value);
        store(conn, sku, &held, on_hand + *quantity, value + cents(*quantity * *unit_cost)).await?;
    }
    Ok(total)
}

/// Takes an order's goods out of stock at their moving average cost (refusing more than is on
/// hand) and prices what is bought in; the caller posts the entry in the same transaction.
pub(crate) async fn relieve(conn: &mut AnyConnection, order_id: &str) -> Result<Relieved, Error> {
    let rows = sqlx::query(
        "SELECT l.sku, l.quantity, l.unit_cost, coalesce(p.stocked, 0) FROM order_lines l \
         LEFT JOIN products p ON p.sku = l.sku WHERE l.order_id = $1 ORDER BY l.line_no",
    )
    .bind(order_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut relieved = Relieved::default();
    for r in &rows {
        let sku: Option<String> = r.try_get(0)?;
        let (quantity, unit_cost) = (parse_money(r.try_get(1)?)?, parse_money(r.try_get(2)?)?);
        let stocked: i64 = r.try_get(3)?;
        let Some(sku) = sku.filter(|_| stocked != 0) else {
            relieved.bought_in += cents(quantity * unit_cost);
            continue;
        };
        let held = held(conn, &sku).await?;
        let (on_hand, value) = (held.on_hand, held.value);
        let taken = issue_cost(on_hand, value, quantity).ok_or_else(|| {
            Error::InvalidAmount(format!("order {order_id} needs {quantity} of {sku}, only {on_hand} in stock"))
        })?;
        store(conn, &sku, &held, on_hand - quantity, value - taken).await?;
        relieved.from_stock += taken;
    }
    Ok(relieved)
}

/// What `quantity` units cost out of `on_hand` units worth `value`, at the moving average, or
/// `None` when fewer are on hand. The last units take all the value left.
pub(crate) fn issue_cost(on_hand: Decimal, value: Decimal, quantity: Decimal) -> Option<Decimal> {
    if quantity > on_hand || quantity <= Decimal::ZERO {
        return None;
    }
    if quantity == on_hand {
        return Some(value);
    }
    value.checked_mul(quantity).and_then(|v| v.checked_div(on_hand)).map(cents)
}

/// A product's stock row as read: the values and their stored text, which the update checks.
struct Held {
    on_hand: Decimal,
    value: Decimal,
    stored: (String, String),
}

/// Reads a product's stock row, creating an empty one first if it has none.
async fn held(conn: &mut AnyConnection, sku: &str) -> Result<Held, Error> {
    sqlx::query("INSERT INTO stock (sku, on_hand, value) VALUES ($1, '0', '0.00') ON CONFLICT (sku) DO NOTHING")
        .bind(sku)
        .execute(&mut *conn)
        .await?;
    let r = sqlx::query("SELECT on_hand, value FROM stock WHERE sku = $1").bind(sku).fetch_one(conn).await?;
    let stored: (String, String) = (r.try_get(0)?, r.try_get(1)?);
    Ok(Held { on_hand: parse_money(&stored.0)?, value: parse_money(&stored.1)?, stored })
}

/// Writes a product's new stock if the row still holds what was read. The check makes the
/// read-modify-write safe whatever locks the caller's transaction holds: a concurrent change
/// (another order costing the same product under a lock of its own) fails this one, to be
/// retried, instead of being overwritten.
async fn store(
    conn: &mut AnyConnection,
    sku: &str,
    held: &Held,
    on_hand: Decimal,
    value: Decimal,
) -> Result<(), Error> {
    let changed =
        sqlx::query("UPDATE stock SET on_hand = $2, value = $3 WHERE sku = $1 AND on_hand = $4 AND value = $5")
            .bind(sku)
            .bind(on_hand.normalize().to_string())
            .bind(money_text(value))
            .bind(&held.stored.0)
            .bind(&held.stored.1)
            .execute(conn)
            .await?
            .rows_affected();
    if changed == 0 {
        return Err(Error::Retry(format!("the stock of {sku} changed while it was being booked")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        Decimal::from_str_exact(text).unwrap()
    }

    #[test]
    fn issues_at_the_moving_average_and_the_last_units_take_what_is_left() {
        // 3 units worth 100.00: one costs 33.33, then one of two worth 66.67 costs 33.34 (33.335
        // rounded half away from zero), and the last takes the 33.33 left.
        assert_eq!(issue_cost(d("3"), d("100.00"), d("1")), Some(d("33.33")));
        assert_eq!(issue_cost(d("2"), d("66.67"), d("1")), Some(d("33.34")));
        assert_eq!(issue_cost(d("1"), d("33.33"), d("1")), Some(d("33.33")));
        assert_eq!(issue_cost(d("2"), d("50.00"), d("3")), None, "more than is on hand");
        assert_eq!(issue_cost(d("2"), d("50.00"), d("0")), None);
    }
}
