//! A generated company at scale, for tests and benchmarks: thousands of orders of the seeded demo
//! company with their invoices, costs of goods and payments, written in bulk.
//!
//! The documented bulk seeding helper: it writes the rows the ledger's own paths write (orders
//! and lines, invoices with gapless numbers and their lines, balanced journal entries for
//! invoices, cost of goods, goods receipts and payments, payment rows and allocations, stock),
//! computed with the same rules (tax once on the net total, moving average cost), but many rows
//! per statement and a few thousand orders per transaction, under the ledger's write lock. The
//! trade is a pure function of the order's number, so two runs give the same company.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::{AnyConnection, Row};

use super::db::Backend;
use super::stock::{PAYABLES, issue_cost};
use super::{Error, Ledger, account, cents, date_text, money_text, parse_money, period_of, ts_text};

/// What was generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Generated {
    /// Orders recorded.
    pub orders: usize,
    /// Invoices issued (and costed).
    pub invoices: usize,
    /// Payments received and applied.
    pub payments: usize,
    /// Journal entries posted.
    pub entries: usize,
}

/// Orders per transaction.
const CHUNK: usize = 2_500;
/// Rows per `INSERT` statement (at most 8 columns: far below both databases' bind limits).
const ROWS_PER_STATEMENT: usize = 200;
/// The sales reps the trade is spread over; every tenth order has none recorded.
const REPS: [&str; 4] = ["sam", "mia", "max", "rita"];
/// The stocked products orders draw on, and the service bought in for some of them.
const GOODS: [&str; 7] = ["PUMP-100", "PUMP-250", "VALVE-12", "VALVE-40", "SENS-T1", "CTRL-X", "KIT-INST"];
const SERVICE: &str = "SERV-H";

/// One line of a generated entry: (account, debit, credit, customer, invoice).
type Leg<'a> = (&'a str, Decimal, Decimal, Option<&'a str>, Option<&'a str>);

/// One value of a generated row.
enum V {
    T(String),
    I(i64),
    Null,
}

/// Rows for one table, written many per statement.
struct Rows {
    insert: &'static str,
    width: usize,
    values: Vec<V>,
}

impl Rows {
    fn new(insert: &'static str, width: usize) -> Rows {
        Rows { insert, width, values: Vec::new() }
    }

    fn push(&mut self, row: Vec<V>) {
        debug_assert_eq!(row.len(), self.width);
        self.values.extend(row);
    }

    async fn write(self, conn: &mut AnyConnection) -> Result<(), Error> {
        let mut values = self.values.into_iter().peekable();
        while values.peek().is_some() {
            let batch: Vec<V> = values.by_ref().take(self.width * ROWS_PER_STATEMENT).collect();
            let rows = batch.len() / self.width;
            let placeholders: Vec<String> = (0..rows)
                .map(|r| {
                    let cols: Vec<String> = (1..=self.width).map(|c| format!("${}", r * self.width + c)).collect();
                    format!("({})", cols.join(", "))
                })
                .collect();
            let sql = format!("{} VALUES {}", self.insert, placeholders.join(", "));
            let mut query = sqlx::query(&sql);
            for v in batch {
                query = match v {
                    V::T(text) => query.bind(text),
                    V::I(n) => query.bind(n),
                    V::Null => query.bind(Option::<String>::None),
                };
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }
}

fn t(text: impl Into<String>) -> V {
    V::T(text.into())
}

/// The catalogue and customers the trade draws on.
struct Company {
    /// sku → (name, unit price, unit cost).
    products: BTreeMap<String, (String, Decimal, Decimal)>,
    /// (id, tax rate, payment terms in days) of each customer open for business.
    customers: Vec<(String, Decimal, i64)>,
}

impl Ledger {
    /// Adds `orders` generated orders of the seeded demo company, dated over the 120 days up to
    /// `until`: nine in ten invoiced and costed on their order day (with a goods receipt first so
    /// that stock serves them all), two in three of those paid in full or in half 20 days later
    /// when that is not after `until`. Refused when the company is not seeded or a day falls in
    /// a closed period.
    pub async fn generate_trade(
        &self,
        orders: usize,
        until: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<Generated, Error> {
        let company = self.company().await?;
        if company.customers.is_empty() || GOODS.iter().any(|s| !company.products.contains_key(*s)) {
            return Err(Error::Input { field: "company".into(), problem: "seed the demo company first".into() });
        }
        let first = until - TimeDelta::days(119);
        let closed = sqlx::query("SELECT period FROM periods WHERE status = 'closed' AND period >= $1")
            .bind(period_of(first))
            .fetch_optional(&self.read)
            .await?;
        if let Some(row) = closed {
            let period: String = row.try_get(0)?;
            return Err(Error::PeriodClosed { period, date: first });
        }
        let mut made = Generated { orders: 0, invoices: 0, payments: 0, entries: 0 };
        let mut start = 0;
        while start < orders {
            let end = (start + CHUNK).min(orders);
            let mut tx = self.begin().await?;
            let chunk = write_chunk(&mut tx, &company, start..end, first, until, now).await?;
            if self.backend == Backend::Postgres {
                // Entry ids were given explicitly: move the identity past them.
                sqlx::query(
                    "SELECT setval(pg_get_serial_sequence('journal_entries', 'id'), \
                     (SELECT max(id) FROM journal_entries))",
                )
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            made.orders += chunk.orders;
            made.invoices += chunk.invoices;
            made.payments += chunk.payments;
            made.entries += chunk.entries;
            start = end;
        }
        Ok(made)
    }

    async fn company(&self) -> Result<Company, Error> {
        let mut products = BTreeMap::new();
        for r in sqlx::query("SELECT sku, name, unit_price, unit_cost FROM products").fetch_all(&self.read).await? {
            let (sku, name): (String, String) = (r.try_get(0)?, r.try_get(1)?);
            products.insert(sku, (name, parse_money(r.try_get(2)?)?, parse_money(r.try_get(3)?)?));
        }
        let mut customers = Vec::new();
        let rows = sqlx::query("SELECT id, tax_rate, payment_terms_days FROM customers WHERE blocked = 0 ORDER BY id")
            .fetch_all(&self.read)
            .await?;
        for r in rows {
            let rate: String = r.try_get(1)?;
            let rate = Decimal::from_str_exact(&rate).map_err(|_| Error::Corrupt(format!("tax rate {rate:?}")))?;
            customers.push((r.try_get(0)?, rate, r.try_get(2)?));
        }
        Ok(Company { products, customers })
    }
}

/// The `n`th order's lines: (sku, quantity), one to three goods and every fifth a service.
fn lines_of(n: usize) -> Vec<(&'static str, Decimal)> {
    // Three apart in a list of seven: the goods of one order are never the same product twice.
    let mut lines: Vec<(&'static str, Decimal)> =
        (0..1 + n % 3).map(|k| (GOODS[(n + 3 * k) % GOODS.len()], Decimal::from(1 + (n * 13 + k) % 5))).collect();
    if n.is_multiple_of(5) {
        lines.push((SERVICE, Decimal::from(2)));
    }
    lines
}

async fn write_chunk(
    conn: &mut AnyConnection,
    company: &Company,
    numbers: std::ops::Range<usize>,
    first: NaiveDate,
    until: NaiveDate,
    now: DateTime<Utc>,
) -> Result<Generated, Error> {
    let posted_at = ts_text(now);
    let mut next_entry: i64 =
        sqlx::query("SELECT coalesce(max(id), 0) FROM journal_entries").fetch_one(&mut *conn).await?.try_get(0)?;
    let mut entries =
        Rows::new("INSERT INTO journal_entries (id, entry_date, period, kind, description, document, posted_at)", 7);
    let mut lines =
        Rows::new("INSERT INTO journal_lines (entry_id, line_no, account, debit, credit, customer_id, invoice_id)", 7);
    // Balanced by construction: each entry's debits and credits are listed together and checked.
    let mut post = |date: NaiveDate, kind: &str, document: &str, legs: &[Leg<'_>]| {
        next_entry += 1;
        let (debit, credit): (Decimal, Decimal) =
            legs.iter().fold((Decimal::ZERO, Decimal::ZERO), |s, l| (s.0 + l.1, s.1 + l.2));
        if debit != credit {
            return Err(Error::Unbalanced { debit, credit });
        }
        entries.push(vec![
            V::I(next_entry),
            t(date_text(date)),
            t(period_of(date)),
            t(kind),
            t(format!("generated {kind} {document}")),
            t(document),
            t(posted_at.clone()),
        ]);
        let mut no = 0;
        for (account, debit, credit, customer, invoice) in legs.iter().filter(|l| !(l.1.is_zero() && l.2.is_zero())) {
            no += 1;
            lines.push(vec![
                V::I(next_entry),
                V::I(no),
                t(*account),
                t(money_text(*debit)),
                t(money_text(*credit)),
                customer.map_or(V::Null, t),
                invoice.map_or(V::Null, t),
            ]);
        }
        Ok(())
    };
    let mut orders = Rows::new("INSERT INTO orders (id, customer_id, order_date, sales_rep)", 4);
    let mut order_lines =
        Rows::new("INSERT INTO order_lines (order_id, line_no, sku, description, quantity, unit_price, unit_cost)", 7);
    let mut invoices = Rows::new(
        "INSERT INTO invoices (id, number, order_id, customer_id, issue_date, due_date, net, tax, total, amount_open, status)",
        11,
    );
    let mut invoice_lines = Rows::new(
        "INSERT INTO invoice_lines (invoice_id, line_no, description, quantity, unit_price, net, tax_rate)",
        7,
    );
    let mut payments = Rows::new(
        "INSERT INTO payments (id, customer_id, received_on, amount, reference, applied, matched_automatically, status)",
        8,
    );
    let mut allocations =
        Rows::new("INSERT INTO payment_allocations (payment_id, invoice_id, amount, allocated_on, idempotency_key)", 5);
    // Stock now, plus one receipt per product of what the chunk's invoiced orders need, dated
    // on the window's first day at the catalogue's cost.
    let mut stock: BTreeMap<&str, (Decimal, Decimal)> = BTreeMap::new();
    let mut needed: BTreeMap<&str, Decimal> = BTreeMap::new();
    for n in numbers.clone().filter(|n| n % 10 != 9) {
        for (sku, quantity) in lines_of(n).into_iter().filter(|l| l.0 != SERVICE) {
            *needed.entry(sku).or_default() += quantity;
        }
    }
    let receipt_id = format!("GR-GEN-{:06}", numbers.start);
    let mut receipt_total = Decimal::ZERO;
    let mut receipt_lines =
        Rows::new("INSERT INTO goods_receipt_lines (receipt_id, line_no, sku, quantity, unit_cost)", 5);
    for (no, (sku, quantity)) in needed.iter().enumerate() {
        let row = sqlx::query("SELECT on_hand, value FROM stock WHERE sku = $1")
            .bind(*sku)
            .fetch_optional(&mut *conn)
            .await?;
        let (on_hand, value) = match row {
            Some(r) => (parse_money(r.try_get(0)?)?, parse_money(r.try_get(1)?)?),
            None => (Decimal::ZERO, Decimal::ZERO),
        };
        let cost = company.products[*sku].2;
        receipt_total += cents(*quantity * cost);
        stock.insert(sku, (on_hand + *quantity, value + cents(*quantity * cost)));
        receipt_lines.push(vec![
            t(receipt_id.clone()),
            V::I(i64::try_from(no + 1).unwrap_or(i64::MAX)),
            t(*sku),
            t(quantity.to_string()),
            t(cost.to_string()),
        ]);
    }
    if !needed.is_empty() {
        sqlx::query(
            "INSERT INTO goods_receipts (id, supplier, received_on, total, posted_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&receipt_id)
        .bind("generated supplier")
        .bind(date_text(first))
        .bind(money_text(receipt_total))
        .bind(&posted_at)
        .execute(&mut *conn)
        .await?;
        post(
            first,
            "goods_receipt",
            &receipt_id,
            &[
                (account::INVENTORY, receipt_total, Decimal::ZERO, None, None),
                (PAYABLES, Decimal::ZERO, receipt_total, None, None),
            ],
        )?;
    }
    // Invoice numbers continue each year's gapless series.
    let mut sequences: BTreeMap<i32, i64> = BTreeMap::new();
    let mut made = Generated { orders: 0, invoices: 0, payments: 0, entries: 0 };
    for n in numbers {
        let (customer, tax_rate, terms) = &company.customers[(n * 7) % company.customers.len()];
        let day = until - TimeDelta::days(i64::try_from(n % 120).unwrap_or(0));
        let order_id = format!("GEN-{n:06}");
        let rep = (n % 10 != 3).then(|| REPS[n % REPS.len()]);
        orders.push(vec![t(order_id.clone()), t(customer.clone()), t(date_text(day)), rep.map_or(V::Null, t)]);
        made.orders += 1;
        let mut net = Decimal::ZERO;
        let mut from_stock = Decimal::ZERO;
        let mut bought_in = Decimal::ZERO;
        let order = lines_of(n);
        for (no, (sku, quantity)) in order.iter().enumerate() {
            let (name, price, cost) = &company.products[*sku];
            let no = i64::try_from(no + 1).unwrap_or(i64::MAX);
            order_lines.push(vec![
                t(order_id.clone()),
                V::I(no),
                t(*sku),
                t(name.clone()),
                t(quantity.to_string()),
                t(price.to_string()),
                t(cost.to_string()),
            ]);
            net += cents(*quantity * *price);
            if n % 10 == 9 {
                continue;
            }
            if *sku == SERVICE {
                bought_in += cents(*quantity * *cost);
            } else if let Some((on_hand, value)) = stock.get_mut(sku) {
                let taken = issue_cost(*on_hand, *value, *quantity)
                    .ok_or_else(|| Error::Corrupt(format!("generated stock of {sku} ran out")))?;
                *on_hand -= *quantity;
                *value -= taken;
                from_stock += taken;
            }
        }
        if n % 10 == 9 {
            continue;
        }
        let year = day.year();
        let seq = match sequences.get(&year) {
            Some(next) => *next,
            None => {
                let row = sqlx::query("SELECT next_value FROM number_sequences WHERE name = $1")
                    .bind(format!("invoice-{year}"))
                    .fetch_optional(&mut *conn)
                    .await?;
                row.map(|r| r.try_get::<i64, _>(0)).transpose()?.unwrap_or(1)
            }
        };
        sequences.insert(year, seq + 1);
        let number = format!("{year}-{seq:06}");
        let invoice_id = format!("INV-{number}");
        let tax = cents(net * *tax_rate);
        let total = net + tax;
        let due = day + TimeDelta::days(*terms);
        let paid_on = day + TimeDelta::days(20);
        let paid = match n % 3 {
            0 if paid_on <= until => total,
            1 if paid_on <= until => cents(total / Decimal::from(2)),
            _ => Decimal::ZERO,
        };
        let open = total - paid;
        invoices.push(vec![
            t(invoice_id.clone()),
            t(number.clone()),
            t(order_id.clone()),
            t(customer.clone()),
            t(date_text(day)),
            t(date_text(due)),
            t(money_text(net)),
            t(money_text(tax)),
            t(money_text(total)),
            t(money_text(open)),
            t(if open.is_zero() { "paid" } else { "open" }),
        ]);
        for (no, (sku, quantity)) in order.iter().enumerate() {
            let (name, price, _) = &company.products[*sku];
            invoice_lines.push(vec![
                t(invoice_id.clone()),
                V::I(i64::try_from(no + 1).unwrap_or(i64::MAX)),
                t(name.clone()),
                t(quantity.to_string()),
                t(price.to_string()),
                t(money_text(*quantity * *price)),
                t(tax_rate.to_string()),
            ]);
        }
        let c = Some(customer.as_str());
        post(
            day,
            "invoice",
            &invoice_id,
            &[
                (account::RECEIVABLES, total, Decimal::ZERO, c, Some(&invoice_id)),
                (account::REVENUE, Decimal::ZERO, net, c, None),
                (account::VAT, Decimal::ZERO, tax, None, None),
            ],
        )?;
        post(
            day,
            "cost_of_goods",
            &order_id,
            &[
                (account::COST_OF_GOODS, from_stock + bought_in, Decimal::ZERO, c, None),
                (account::INVENTORY, Decimal::ZERO, from_stock, None, None),
                (PAYABLES, Decimal::ZERO, bought_in, None, None),
            ],
        )?;
        made.invoices += 1;
        if paid.is_zero() {
            continue;
        }
        let payment_id = format!("PAY-GEN-{n:06}");
        payments.push(vec![
            t(payment_id.clone()),
            t(customer.clone()),
            t(date_text(paid_on)),
            t(money_text(paid)),
            t(invoice_id.clone()),
            t(money_text(paid)),
            V::I(1),
            t("applied"),
        ]);
        allocations.push(vec![
            t(payment_id.clone()),
            t(invoice_id.clone()),
            t(money_text(paid)),
            t(date_text(paid_on)),
            t(format!("generated-{payment_id}")),
        ]);
        post(
            paid_on,
            "payment_received",
            &payment_id,
            &[
                (account::BANK, paid, Decimal::ZERO, None, None),
                (account::UNAPPLIED_CASH, Decimal::ZERO, paid, c, None),
            ],
        )?;
        post(
            paid_on,
            "receipt",
            &invoice_id,
            &[
                (account::UNAPPLIED_CASH, paid, Decimal::ZERO, c, None),
                (account::RECEIVABLES, Decimal::ZERO, paid, c, Some(&invoice_id)),
            ],
        )?;
        made.payments += 1;
    }
    made.entries = entries.values.len() / entries.width;
    for rows in [orders, order_lines, invoices, invoice_lines, payments, allocations, receipt_lines, entries, lines] {
        rows.write(conn).await?;
    }
    for (year, next) in sequences {
        sqlx::query(
            "INSERT INTO number_sequences (name, next_value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET next_value = $2",
        )
        .bind(format!("invoice-{year}"))
        .bind(next)
        .execute(&mut *conn)
        .await?;
    }
    for (sku, (on_hand, value)) in stock {
        sqlx::query(
            "INSERT INTO stock (sku, on_hand, value) VALUES ($1, $2, $3) \
             ON CONFLICT (sku) DO UPDATE SET on_hand = $2, value = $3",
        )
        .bind(sku)
        .bind(on_hand.normalize().to_string())
        .bind(money_text(value))
        .execute(&mut *conn)
        .await?;
    }
    Ok(made)
}
