//! The demo company: customers of every risk rating, a product catalogue, and opening
//! receivables and stock taken over from a previous system.

use chrono::{NaiveDate, TimeDelta};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::{AnyConnection, Row};

use super::{Entry, Error, JournalLine, Ledger, account, cents, date_text, money_text};

/// A customer to add.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCustomer {
    /// The id (`C-001`).
    pub id: String,
    /// The company name.
    pub name: String,
    /// Where invoices and letters go.
    pub email: Option<String>,
    /// ISO country code.
    pub country: String,
    /// The credit limit.
    pub credit_limit: Decimal,
    /// Risk rating, `A` (best) to `D`.
    pub risk_rating: char,
    /// Blocked for new business.
    pub blocked: bool,
    /// Payment terms in days.
    pub payment_terms_days: i64,
    /// VAT rate on invoices (0.19 = 19 %; 0 for exports and reverse charge).
    pub tax_rate: Decimal,
}

/// What seeding did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DemoSeed {
    /// False when the company was seeded before (nothing changed).
    pub created: bool,
    /// Customers on file.
    pub customers: usize,
    /// Opening invoices taken over.
    pub opening_invoices: usize,
}

/// (name, country, credit limit, rating, terms, VAT rate, blocked)
const CUSTOMERS: [(&str, &str, i64, char, i64, &str, bool); 30] = [
    ("Alpenrose Feinkost GmbH", "DE", 50_000, 'A', 30, "0.19", false),
    ("Baltic Timber AB", "SE", 120_000, 'A', 45, "0", false),
    ("Cafe Lumiere SARL", "FR", 8_000, 'B', 30, "0.20", false),
    ("Delft Instruments BV", "NL", 75_000, 'A', 30, "0.21", false),
    ("Elbe Logistik GmbH", "DE", 40_000, 'B', 14, "0.19", false),
    ("Fjord Seafood AS", "NO", 60_000, 'B', 30, "0", false),
    ("Gruber Bau GmbH", "AT", 25_000, 'C', 30, "0.20", false),
    ("Hanse Maschinenbau AG", "DE", 250_000, 'A', 60, "0.19", false),
    ("Iberia Textiles SL", "ES", 30_000, 'C', 45, "0.21", false),
    ("Jura Uhren AG", "CH", 90_000, 'A', 30, "0", false),
    ("Kraków Furniture Sp. z o.o.", "PL", 35_000, 'B', 30, "0.23", false),
    ("Lago Ceramiche Srl", "IT", 45_000, 'B', 60, "0.22", false),
    ("Moselwein Kellerei eG", "DE", 15_000, 'D', 14, "0.19", true),
    ("Nordlicht Solar GmbH", "DE", 100_000, 'A', 30, "0.19", false),
    ("Oporto Cork Lda", "PT", 20_000, 'C', 30, "0.23", false),
    ("Prague Glassworks s.r.o.", "CZ", 28_000, 'B', 30, "0.21", false),
    ("Quimper Faience SAS", "FR", 12_000, 'C', 30, "0.20", false),
    ("Rhein Pharma GmbH", "DE", 200_000, 'A', 45, "0.19", false),
    ("Salzburg Events GmbH", "AT", 10_000, 'D', 14, "0.20", false),
    ("Tallinn Software OU", "EE", 18_000, 'B', 30, "0.22", false),
    ("Utrecht Bikes BV", "NL", 22_000, 'B', 30, "0.21", false),
    ("Vienna Print GmbH", "AT", 16_000, 'C', 30, "0.20", false),
    ("Westfalen Stahl AG", "DE", 180_000, 'B', 60, "0.19", false),
    ("Xanten Gartenbau KG", "DE", 9_000, 'C', 14, "0.19", false),
    ("Ypres Chocolatier BVBA", "BE", 14_000, 'B', 30, "0.21", false),
    ("Zurich Analytics AG", "CH", 65_000, 'A', 30, "0", false),
    ("Aarhus Design ApS", "DK", 26_000, 'B', 30, "0.25", false),
    ("Bavaria Brau GmbH", "DE", 55_000, 'A', 30, "0.19", false),
    ("Cluj Components SRL", "RO", 12_000, 'D', 14, "0.19", false),
    ("Dublin Medical Ltd", "IE", 85_000, 'A', 30, "0.23", false),
];

/// (sku, name, unit price, unit cost)
const PRODUCTS: [(&str, &str, &str, &str); 8] = [
    ("PUMP-100", "Circulation pump 100", "1250.00", "780.00"),
    ("PUMP-250", "Circulation pump 250", "2890.00", "1815.50"),
    ("VALVE-12", "Control valve DN12", "189.90", "96.40"),
    ("VALVE-40", "Control valve DN40", "412.35", "233.10"),
    ("SENS-T1", "Temperature sensor", "74.99", "31.25"),
    ("CTRL-X", "Controller unit X", "3499.00", "2310.00"),
    ("SERV-H", "Service hour", "95.00", "41.00"),
    ("KIT-INST", "Installation kit", "249.50", "118.75"),
];

/// Opening stock: (sku, units on hand), valued at the catalogue's unit cost. The service hour is
/// not stocked (it is bought in for each order).
const OPENING_STOCK: [(&str, i64); 7] = [
    ("PUMP-100", 40),
    ("PUMP-250", 12),
    ("VALVE-12", 200),
    ("VALVE-40", 80),
    ("SENS-T1", 300),
    ("CTRL-X", 10),
    ("KIT-INST", 60),
];

/// Products bought in for each order rather than held in stock.
const NOT_STOCKED: [&str; 1] = ["SERV-H"];

/// Opening invoices: (customer index, days before the seed date it was issued, total).
const OPENING: [(usize, i64, &str); 14] = [
    (0, 12, "4760.00"),
    (1, 40, "18250.00"),
    (3, 75, "9317.50"),
    (4, 5, "2141.90"),
    (6, 110, "6180.00"),
    (7, 20, "48790.00"),
    (8, 95, "3388.00"),
    (10, 33, "5227.45"),
    (12, 150, "2975.00"),
    (13, 62, "11900.00"),
    (17, 28, "23205.00"),
    (18, 70, "1428.00"),
    (22, 45, "35700.00"),
    (28, 130, "2380.00"),
];

impl Ledger {
    /// Adds a customer (or updates the one with the same id).
    pub async fn upsert_customer(&self, c: &NewCustomer) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        upsert_customer(&mut tx, c).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Seeds a small wholesale company: 30 customers (ratings A-D, one blocked), a product
    /// catalogue, opening receivables dated before `as_of` and opening stock on `as_of`, both
    /// posted against opening balance equity. Idempotent: a second call changes nothing (a
    /// company seeded before stock was booked gets its opening stock, once).
    pub async fn seed_demo_company(&self, as_of: NaiveDate) -> Result<DemoSeed, Error> {
        let mut tx = self.begin().await?;
        let seeded = sqlx::query("SELECT value FROM ledger_settings WHERE key = 'demo_seeded'")
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if seeded {
            // A company seeded before stock was booked gets its opening stock now, once.
            opening_stock(&mut tx, as_of).await?;
            tx.commit().await?;
            let mut tx = self.read.acquire().await?;
            let customers: i64 = sqlx::query("SELECT count(*) FROM customers").fetch_one(&mut *tx).await?.try_get(0)?;
            let opening: i64 = sqlx::query("SELECT count(*) FROM invoices WHERE order_id IS NULL")
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            return Ok(DemoSeed {
                created: false,
                customers: usize::try_from(customers).unwrap_or(0),
                opening_invoices: usize::try_from(opening).unwrap_or(0),
            });
        }
        for (n, (name, country, limit, rating, terms, tax, blocked)) in CUSTOMERS.iter().enumerate() {
            let slug: String = name.chars().filter(char::is_ascii_alphanumeric).take(12).collect();
            let customer = NewCustomer {
                id: customer_id(n),
                name: name.to_string(),
                email: Some(format!("ap@{}.example", slug.to_ascii_lowercase())),
                country: country.to_string(),
                credit_limit: Decimal::from(*limit),
                risk_rating: *rating,
                blocked: *blocked,
                payment_terms_days: *terms,
                tax_rate: Decimal::from_str_exact(tax).map_err(|e| Error::Corrupt(e.to_string()))?,
            };
            upsert_customer(&mut tx, &customer).await?;
        }
        for (sku, name, price, cost) in PRODUCTS {
            sqlx::query(
                "INSERT INTO products (sku, name, unit_price, unit_cost) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (sku) DO NOTHING",
            )
            .bind(sku)
            .bind(name)
            .bind(price)
            .bind(cost)
            .execute(&mut *tx)
            .await?;
        }
        let now = as_of.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or_default();
        for (n, (index, days_ago, total)) in OPENING.iter().enumerate() {
            let total = cents(Decimal::from_str_exact(total).map_err(|e| Error::Corrupt(e.to_string()))?);
            let (customer, terms) = (customer_id(*index), CUSTOMERS[*index].4);
            let issued = as_of - TimeDelta::days(*days_ago);
            let due = issued + TimeDelta::days(terms);
            // Numbered in the previous system's series, so the new gapless series is untouched.
            let number = format!("OB-{:04}", n + 1);
            let id = format!("INV-{number}");
            sqlx::query(
                "INSERT INTO invoices (id, number, order_id, customer_id, issue_date, due_date, net, tax, total, \
                 amount_open, status) VALUES ($1, $2, NULL, $3, $4, $5, $6, '0.00', $6, $6, 'open')",
            )
            .bind(&id)
            .bind(&number)
            .bind(&customer)
            .bind(date_text(issued))
            .bind(date_text(due))
            .bind(money_text(total))
            .execute(&mut *tx)
            .await?;
            let entry = Entry {
                date: issued,
                kind: "opening_balance",
                description: format!("opening receivable {number} taken over"),
                document: Some(&id),
                lines: vec![
                    JournalLine::debit(account::RECEIVABLES, total).customer(&customer).invoice(&id),
                    JournalLine::credit(account::OPENING, total),
                ],
            };
            super::post(&mut tx, entry, now).await?;
        }
        opening_stock(&mut tx, as_of).await?;
        sqlx::query("INSERT INTO ledger_settings (key, value) VALUES ('demo_seeded', $1)")
            .bind(date_text(as_of))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(DemoSeed { created: true, customers: CUSTOMERS.len(), opening_invoices: OPENING.len() })
    }
}

/// Books the opening stock (Inventory against opening balance equity, dated `as_of`) unless it
/// was booked before, and marks the products that are not stocked.
async fn opening_stock(conn: &mut AnyConnection, as_of: NaiveDate) -> Result<(), Error> {
    let booked = sqlx::query("SELECT value FROM ledger_settings WHERE key = 'demo_stock_seeded'")
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
    if booked {
        return Ok(());
    }
    for sku in NOT_STOCKED {
        sqlx::query("UPDATE products SET stocked = 0 WHERE sku = $1").bind(sku).execute(&mut *conn).await?;
    }
    let mut lines = Vec::new();
    for (sku, units) in OPENING_STOCK {
        let cost = PRODUCTS.iter().find(|p| p.0 == sku).map(|p| p.3).unwrap_or("0");
        let cost = Decimal::from_str_exact(cost).map_err(|e| Error::Corrupt(e.to_string()))?;
        lines.push((sku, Decimal::from(units), cost));
    }
    let now = as_of.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or_default();
    let total = super::stock::book_receipt(conn, "OPENING-STOCK", "opening balance", as_of, &lines, now).await?;
    let entry = Entry {
        date: as_of,
        kind: "opening_balance",
        description: "opening stock taken over".to_string(),
        document: Some("OPENING-STOCK"),
        lines: vec![JournalLine::debit(account::INVENTORY, total), JournalLine::credit(account::OPENING, total)],
    };
    super::post(conn, entry, now).await?;
    sqlx::query("INSERT INTO ledger_settings (key, value) VALUES ('demo_stock_seeded', $1)")
        .bind(date_text(as_of))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The id of the `n`th demo customer (0-based): `C-001` ...
pub fn customer_id(n: usize) -> String {
    format!("C-{:03}", n + 1)
}

async fn upsert_customer(conn: &mut AnyConnection, c: &NewCustomer) -> Result<(), Error> {
    if !matches!(c.risk_rating, 'A'..='D') {
        return Err(Error::Input { field: "risk_rating".into(), problem: format!("{} is not A-D", c.risk_rating) });
    }
    if c.credit_limit < Decimal::ZERO || c.payment_terms_days < 0 {
        return Err(Error::InvalidAmount(format!("customer {}: negative limit or terms", c.id)));
    }
    sqlx::query(
        "INSERT INTO customers (id, name, email, country, credit_limit, risk_rating, blocked, payment_terms_days, \
         tax_rate) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (id) DO UPDATE SET name = $2, email = $3, country = $4, credit_limit = $5, risk_rating = $6, \
         blocked = $7, payment_terms_days = $8, tax_rate = $9",
    )
    .bind(&c.id)
    .bind(&c.name)
    .bind(&c.email)
    .bind(&c.country)
    .bind(money_text(c.credit_limit))
    .bind(c.risk_rating.to_string())
    .bind(i64::from(c.blocked))
    .bind(c.payment_terms_days)
    .bind(c.tax_rate.to_string())
    .execute(conn)
    .await?;
    Ok(())
}
