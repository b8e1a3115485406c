//! The reference finance sub-ledger: customers, orders, invoices, payments, a double-entry
//! journal, periods, an outbox and the idempotency records of the jobs that changed it.
//!
//! It lives in the engine's SQLite file, in tables of its own (`worker/migrations/`). Money is
//! [`Decimal`] in code and decimal text in the database; sums are taken in code.
//!
//! Rounding rule: amounts are rounded to the cent **half away from zero** (commercial rounding,
//! "half-up" for positive amounts, the same rule as the DSL's `round`), and tax is computed once
//! per invoice on its net total, so an invoice's tax is exact to the cent and never the sum of
//! per-line roundings.
//!
//! Posting rule: every journal entry balances (debits equal credits) or is refused before it is
//! written, and no entry is accepted into a closed period. [`Ledger::trial_balance`] checks both
//! again from the stored rows.
//!
//! Chart of accounts: 1000 Bank, 1200 Accounts receivable, 1300 Inventory, 2200 VAT payable,
//! 2300 Unapplied customer cash, 3000 Opening balance equity, 4000 Revenue, 5000 Cost of goods
//! sold, 6800 Bad debt expense, 6900 Payment differences.

mod ops;
mod reports;
mod seed;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqliteConnection};

pub use ops::{
    CostPosted, CreditCheck, DunningSent, InvoiceIssued, Notified, PaymentMatch, PaymentMatched, PaymentReturned,
    PeriodClosed, ReceiptPosted, Refunded, ReportMade, WrittenOff,
};
pub use reports::{AgingBucket, AgingLine, AgingReport, LedgerKpis, ProfitLine, ProfitReport, TrialBalance, TrialLine};
pub use seed::{DemoSeed, NewCustomer};

/// Accounts the handlers post to.
pub mod account {
    /// Bank.
    pub const BANK: &str = "1000";
    /// Accounts receivable.
    pub const RECEIVABLES: &str = "1200";
    /// Inventory.
    pub const INVENTORY: &str = "1300";
    /// VAT payable.
    pub const VAT: &str = "2200";
    /// Customer cash received but not yet applied to invoices.
    pub const UNAPPLIED_CASH: &str = "2300";
    /// Opening balance equity (balances taken over from a previous system).
    pub const OPENING: &str = "3000";
    /// Revenue.
    pub const REVENUE: &str = "4000";
    /// Cost of goods sold.
    pub const COST_OF_GOODS: &str = "5000";
    /// Bad debt expense.
    pub const BAD_DEBT: &str = "6800";
    /// Payment differences (short payments within tolerance).
    pub const PAYMENT_DIFFERENCES: &str = "6900";
}

/// A sub-ledger failure or refusal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The migrations could not be applied.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// No such customer.
    #[error("unknown customer {0}")]
    UnknownCustomer(String),
    /// The customer is blocked for new business.
    #[error("customer {0} is blocked")]
    CustomerBlocked(String),
    /// No such invoice.
    #[error("unknown invoice {0}")]
    UnknownInvoice(String),
    /// No such order (not recorded yet).
    #[error("order {0} is not recorded")]
    UnknownOrder(String),
    /// No such payment.
    #[error("unknown payment {0}")]
    UnknownPayment(String),
    /// No such product.
    #[error("unknown product {0}")]
    UnknownProduct(String),
    /// The data an invoice needs is wrong or missing.
    #[error("invoice data: {0}")]
    InvoiceData(String),
    /// A posting into a closed period.
    #[error("period {period} is closed: no posting dated {date}")]
    PeriodClosed {
        /// The period (`YYYY-MM`).
        period: String,
        /// The posting's date.
        date: NaiveDate,
    },
    /// A journal entry whose debits and credits differ.
    #[error("unbalanced entry: debits {debit}, credits {credit}")]
    Unbalanced {
        /// Total debits.
        debit: Decimal,
        /// Total credits.
        credit: Decimal,
    },
    /// An amount that is negative, zero where it must not be, or more than what is there.
    #[error("invalid amount: {0}")]
    InvalidAmount(String),
    /// A job input that is missing or of the wrong kind.
    #[error("input `{field}`: {problem}")]
    Input {
        /// The input variable.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A stored value that cannot be read (edited by hand?).
    #[error("corrupt ledger value: {0}")]
    Corrupt(String),
}

/// The sub-ledger: a cheap-to-clone handle on its pools.
#[derive(Debug, Clone)]
pub struct Ledger {
    write: SqlitePool,
    read: SqlitePool,
}

impl Ledger {
    /// Opens the SQLite file at `path` (creating it), with WAL and `synchronous=FULL`, and applies
    /// the sub-ledger's migrations.
    pub async fn open(path: impl AsRef<Path>) -> Result<Ledger, Error> {
        let options = SqliteConnectOptions::new()
            .filename(path.as_ref())
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        // One writing connection: ledger transactions queue in the pool instead of spinning on
        // SQLite's busy handler.
        let write =
            SqlitePoolOptions::new().max_connections(1).min_connections(1).connect_with(options.clone()).await?;
        migrate(&write).await?;
        let read = SqlitePoolOptions::new().max_connections(4).connect_with(options.read_only(true)).await?;
        Ok(Ledger { write, read })
    }

    /// A ledger on an existing pool (used for reads and writes), after applying the migrations.
    pub async fn from_pool(pool: SqlitePool) -> Result<Ledger, Error> {
        Ledger::from_pools(pool.clone(), pool).await
    }

    /// A ledger writing through `write` and reading through `read`, after applying the
    /// migrations through `write`.
    ///
    /// Given the engine's own pools (`SqliteStore::pool` and `SqliteStore::reader`), ledger
    /// transactions and the engine's commits queue for one connection instead of meeting as two
    /// SQLite writers, where a deferred transaction that has read may fail with "database is
    /// locked" rather than wait.
    pub async fn from_pools(write: SqlitePool, read: SqlitePool) -> Result<Ledger, Error> {
        migrate(&write).await?;
        Ok(Ledger { write, read })
    }

    /// The pool used for writes.
    pub fn pool(&self) -> &SqlitePool {
        &self.write
    }

    /// Closes the pools.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    /// A write transaction that takes SQLite's write lock at once: a deferred one could fail
    /// to upgrade while the engine's writer commits to the same file.
    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, Error> {
        Ok(self.write.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Reads a setting of `ledger_settings`.
    async fn setting(conn: &mut SqliteConnection, key: &str) -> Result<String, Error> {
        let row =
            sqlx::query("SELECT value FROM ledger_settings WHERE key = ?1").bind(key).fetch_optional(conn).await?;
        row.map(|r| r.get::<String, _>(0)).ok_or_else(|| Error::Corrupt(format!("setting {key} missing")))
    }
}

async fn migrate(pool: &SqlitePool) -> Result<(), Error> {
    let mut migrator = sqlx::migrate!("./migrations");
    // The engine's migrations live in the same database.
    migrator.set_ignore_missing(true);
    migrator.run(pool).await?;
    Ok(())
}

/// Rounds to the cent, half away from zero, and keeps two decimals (`12.5` → `12.50`).
pub fn cents(amount: Decimal) -> Decimal {
    let mut rounded = amount.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(2);
    rounded
}

/// Money as stored and sent: two decimals.
pub(crate) fn money_text(amount: Decimal) -> String {
    cents(amount).to_string()
}

pub(crate) fn parse_money(text: &str) -> Result<Decimal, Error> {
    Decimal::from_str_exact(text.trim()).map_err(|_| Error::Corrupt(format!("amount {text:?}")))
}

pub(crate) fn parse_date(text: &str) -> Result<NaiveDate, Error> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| Error::Corrupt(format!("date {text:?}")))
}

pub(crate) fn date_text(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

pub(crate) fn ts_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The accounting period (`YYYY-MM`) of a date.
pub fn period_of(date: NaiveDate) -> String {
    format!("{:04}-{:02}", date.year(), date.month())
}

fn decimal_setting(text: &str) -> Result<Decimal, Error> {
    Decimal::from_str(text.trim()).map_err(|_| Error::Corrupt(format!("setting value {text:?}")))
}

/// One line of a journal entry: a debit or a credit on an account.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JournalLine {
    /// The account code.
    pub account: &'static str,
    /// The debit (zero on a credit line).
    pub debit: Decimal,
    /// The credit (zero on a debit line).
    pub credit: Decimal,
    /// The customer, on receivable, revenue and cost lines.
    pub customer_id: Option<String>,
    /// The invoice, on receivable lines.
    pub invoice_id: Option<String>,
}

impl JournalLine {
    /// A debit of `amount` on `account`.
    pub fn debit(account: &'static str, amount: Decimal) -> JournalLine {
        JournalLine { account, debit: cents(amount), credit: Decimal::ZERO, customer_id: None, invoice_id: None }
    }

    /// A credit of `amount` on `account`.
    pub fn credit(account: &'static str, amount: Decimal) -> JournalLine {
        JournalLine { account, debit: Decimal::ZERO, credit: cents(amount), customer_id: None, invoice_id: None }
    }

    /// The line names a customer.
    pub fn customer(mut self, customer_id: &str) -> JournalLine {
        self.customer_id = Some(customer_id.to_string());
        self
    }

    /// The line names an invoice.
    pub fn invoice(mut self, invoice_id: &str) -> JournalLine {
        self.invoice_id = Some(invoice_id.to_string());
        self
    }
}

/// A journal entry to post.
#[derive(Debug, Clone)]
pub(crate) struct Entry<'a> {
    pub date: NaiveDate,
    pub kind: &'a str,
    pub description: String,
    pub document: Option<&'a str>,
    pub lines: Vec<JournalLine>,
}

/// Posts `entry` after checking that it balances and that its period is open. Lines of zero
/// are left out (a tax-free invoice has no VAT line).
pub(crate) async fn post(conn: &mut SqliteConnection, entry: Entry<'_>, now: DateTime<Utc>) -> Result<i64, Error> {
    let lines: Vec<&JournalLine> = entry.lines.iter().filter(|l| !(l.debit.is_zero() && l.credit.is_zero())).collect();
    let mut debit = Decimal::ZERO;
    let mut credit = Decimal::ZERO;
    for line in &lines {
        if line.debit.is_sign_negative() || line.credit.is_sign_negative() {
            return Err(Error::InvalidAmount(format!("a negative amount on account {}", line.account)));
        }
        if !line.debit.is_zero() && !line.credit.is_zero() {
            return Err(Error::InvalidAmount(format!("a line on account {} both debits and credits", line.account)));
        }
        debit += line.debit;
        credit += line.credit;
    }
    if debit != credit || lines.len() < 2 {
        return Err(Error::Unbalanced { debit, credit });
    }
    let period = period_of(entry.date);
    let status = sqlx::query("SELECT status FROM periods WHERE period = ?1")
        .bind(&period)
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.get::<String, _>(0));
    if status.as_deref() == Some("closed") {
        return Err(Error::PeriodClosed { period, date: entry.date });
    }
    let id: i64 = sqlx::query(
        "INSERT INTO journal_entries (entry_date, period, kind, description, document, posted_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
    )
    .bind(date_text(entry.date))
    .bind(&period)
    .bind(entry.kind)
    .bind(&entry.description)
    .bind(entry.document)
    .bind(ts_text(now))
    .fetch_one(&mut *conn)
    .await?
    .get(0);
    for (n, line) in lines.iter().enumerate() {
        sqlx::query(
            "INSERT INTO journal_lines (entry_id, line_no, account, debit, credit, customer_id, invoice_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(id)
        .bind(i64::try_from(n + 1).unwrap_or(i64::MAX))
        .bind(line.account)
        .bind(money_text(line.debit))
        .bind(money_text(line.credit))
        .bind(&line.customer_id)
        .bind(&line.invoice_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cents_round_half_away_from_zero_and_keep_two_decimals() {
        let d = |s: &str| Decimal::from_str_exact(s).unwrap();
        assert_eq!(cents(d("0.125")).to_string(), "0.13");
        assert_eq!(cents(d("0.135")).to_string(), "0.14");
        assert_eq!(cents(d("-0.125")).to_string(), "-0.13");
        assert_eq!(cents(d("0.124999")).to_string(), "0.12");
        assert_eq!(cents(d("12.5")).to_string(), "12.50");
        assert_eq!(cents(d("7")).to_string(), "7.00");
    }

    #[test]
    fn period_is_year_and_month() {
        assert_eq!(period_of(NaiveDate::from_ymd_opt(2026, 3, 9).unwrap()), "2026-03");
    }
}
