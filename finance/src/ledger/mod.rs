//! The reference finance sub-ledger: customers, orders, invoices, payments, a double-entry
//! journal, periods, an outbox and the idempotency records of the jobs that changed it.
//!
//! It lives in the engine's database, in tables of its own: a SQLite file
//! (`finance/migrations/`) or a PostgreSQL database shared by several `serve` and `worker`
//! processes (`finance/migrations_pg/`, the same tables). [`Ledger::connect`] picks the backend by
//! URL. Both run the same SQL through sqlx's `Any` driver: `$1` placeholders (SQLite binds `$N` by
//! its number), `ON CONFLICT` rather than `INSERT OR IGNORE`, integers as 64-bit. Money is
//! [`Decimal`] in code and decimal text in the database; sums are taken in code.
//!
//! Concurrency: every guarantee holds across nodes exactly as in one process: invoice numbers
//! are gapless and unique per series, a payment is never applied twice or beyond what it has, a
//! job's idempotency record is checked and written under a lock (a job run twice posts once), a
//! budget's last amount is reserved once, a period closed by one node refuses the next posting
//! of any other, and seeding the demo company happens once however many nodes start together.
//!
//! On SQLite, `BEGIN IMMEDIATE` takes the file's write lock: one writer at a time. On PostgreSQL
//! a write transaction (READ COMMITTED) locks only what it touches, so writes of different
//! customers, invoices and payments run side by side on every node:
//!
//! 1. the ledger lock, a transaction-scoped advisory lock: *shared* by the job operations,
//!    *exclusive* for every write that names no scopes (`Ledger::begin`, `once!` without
//!    `scoped:`): the rare ones that need the whole ledger still (seeding, customers, budget
//!    amounts and cost-centre assignments, goods receipts, closing a period, stored reports,
//!    alerts, KPI snapshots; marking letters queued takes it shared, with no scope, each row
//!    rechecked under its row lock). Closing a period waits for every posting
//!    in flight, and every posting after it sees the period closed;
//! 2. then the operation's [`Scope`]s, transaction-scoped advisory locks taken in ascending
//!    `(class, hash)` order: key < order < customer < invoice < payment < cost centre < product
//!    (a credit check takes its cost centre late, once it has read the customer's, which cannot
//!    change meanwhile: assigning one is exclusive; costing takes the products of the order's
//!    lines late, in ascending order, and no cost centre). Recording, issuing or costing an
//!    order locks the order and its customer (issuing and costing take the customer *shared*:
//!    they add to its business without reading what the others add, so one customer's
//!    invoices and costs go side by side, and a credit check, taking it exclusive, waits for
//!    them all); matching or applying a payment the invoice and the payment; dunning and
//!    write-offs the invoice; refunds the payment; the credit check the customer, the order and
//!    the cost centre; costing also each stocked product it takes; every job its idempotency
//!    key;
//! 3. last, the only row lock writers queue on: a number series' row (`number_sequences`),
//!    bumped in the invoices' transaction after everything that does not need the number, so
//!    that a rolled-back invoice gives its number back and invoices of one series queue only
//!    for their last few statements and commit.
//!
//! Invoices are issued in batches (see `series.rs`): the invoices asked of one [`Ledger`]
//! handle at once go in one transaction, which takes the scopes of all of them in the one
//! order above (every key, then every order, then every customer, the customers *shared*: two
//! batches of one customer go side by side, and what takes a customer exclusive, a credit check
//! or recording an order, waits for both), then the series' row once,
//! last, for as many consecutive numbers as it issues; each invoice keeps its own checks,
//! idempotency record and refusal (a refused invoice takes no number). A batch waits for its
//! scopes at most 2 s; then its invoices are issued one per transaction, so that a customer
//! held for long delays only its own.
//!
//! Every writer takes its locks in that one order and none waits for a lower one while holding
//! a higher, so writers never deadlock. What a write reads it has locked, or it cannot change
//! under it: rows are only updated under their scope's lock (an invoice's open amount under the
//! invoice's, a payment's applications under the payment's, reservations under the order's and
//! the cost centre's). Reads take no lock. A writer waits at most 30 s for a lock; then its job
//! fails and is retried. The price left is the series: its numbers are given one commit after
//! another, whatever the number of nodes, but a commit numbers a batch.
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
//! Chart of accounts: 1000 Bank, 1200 Accounts receivable, 1300 Inventory, 2000 Accounts payable, 2200 VAT payable,
//! 2300 Unapplied customer cash, 3000 Opening balance equity, 4000 Revenue, 5000 Cost of goods
//! sold, 6800 Bad debt expense, 6900 Payment differences.

pub mod alerts;
mod budgets;
mod close;
mod credit;
mod db;
mod dunning;
mod generate;
mod idempotency;
mod invoices;
pub mod kpi;
mod letters;
mod payments;
mod records;
mod reports;
mod seed;
mod series;
mod stock;
mod tx;
pub mod wording;

/// The currency the ledger books in.
pub const CURRENCY: &str = "CNY";
mod zone;

use std::path::Path;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use cloverleaf_engine::store::DatabaseUrl;
use cloverleaf_engine::store::pool::Lender;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;
use sqlx::{AnyConnection, AnyPool, Row};
use tx::LedgerTx;

use db::{Backend, Mode};

pub use budgets::{BudgetLine, BudgetPosition, BudgetReleased, BudgetReserved};
pub use close::{PeriodClosed, ReportMade};
pub use credit::CreditCheck;
pub use db::Scope;
pub use dunning::{DunningSent, Notified, WrittenOff};
pub use generate::Generated;
pub use invoices::{CostPosted, InvoiceIssued};
pub use letters::Letter;
pub use payments::{PaymentMatch, PaymentMatched, PaymentReturned, ReceiptPosted, Refunded};
pub use reports::{
    AGING_BUCKETS, AgingBucket, AgingLine, AgingReport, EntryLine, LedgerKpis, NOT_DUE, OrderProfit, ProfitLine,
    ProfitReport, TrialBalance, TrialLine, WeekFlow, aging_bucket,
};
pub use seed::{DemoSeed, NewCustomer};
pub use series::{InvoiceQueue, InvoicesPaused};
pub use stock::{GoodsReceived, StockLine};

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
    /// A database URL that names no database the ledger can use.
    #[error("database URL: {0}")]
    Url(String),
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
    /// Nothing was written, for a reason that passes: another write changed what this one read,
    /// or the batch of invoices it was issued in failed. The same call again is safe.
    #[error("{0}: try again")]
    Retry(String),
}

/// The sub-ledger: a cheap-to-clone handle on its pools.
#[derive(Debug, Clone)]
pub struct Ledger {
    writes: Lender<AnyConnection>,
    read: AnyPool,
    /// Migrations, and raw SQL for tools and tests ([`Ledger::pool`]).
    tools: AnyPool,
    backend: Backend,
    /// The invoices waiting to be issued in the next batch.
    invoices: series::Batcher,
    /// The books' time zone, once read.
    zone: zone::BookZone,
}

impl Ledger {
    /// Opens the sub-ledger in the SQLite file at `path` (creating it), with WAL and
    /// `synchronous=FULL`, and applies its migrations. The same as [`Ledger::connect`] with a
    /// file path.
    pub async fn open(path: impl AsRef<Path>) -> Result<Ledger, Error> {
        let db::Pools { writes, read, tools } = db::sqlite(path.as_ref()).await?;
        Ok(Ledger {
            writes,
            read,
            tools,
            backend: Backend::Sqlite,
            invoices: series::Batcher::default(),
            zone: Default::default(),
        })
    }

    /// Opens the sub-ledger in the database `url` names and applies its migrations:
    /// `postgres://...` or `postgresql://...` for PostgreSQL (shared with engine nodes and other
    /// workers), `sqlite://PATH`, `sqlite:PATH` or a bare file path for SQLite.
    pub async fn connect(url: &str) -> Result<Ledger, Error> {
        match DatabaseUrl::parse(url).map_err(Error::Url)? {
            DatabaseUrl::Sqlite(path) => Ledger::open(path).await,
            DatabaseUrl::Postgres(url) => {
                let db::Pools { writes, read, tools } = db::postgres(url).await?;
                Ok(Ledger {
                    writes,
                    read,
                    tools,
                    backend: Backend::Postgres,
                    invoices: series::Batcher::default(),
                    zone: Default::default(),
                })
            }
        }
    }

    /// A pool that may write, for tools and tests that need raw SQL (written with `$1`
    /// placeholders, which both backends read). The ledger's own writes have their connections.
    pub fn pool(&self) -> &AnyPool {
        &self.tools
    }

    /// Closes the pools, and the invoice batches' own connection.
    pub async fn close(&self) {
        self.writes.close().await;
        self.read.close().await;
        self.tools.close().await;
        self.invoices.close().await;
    }

    /// A write transaction that has the whole ledger to itself (see the module docs):
    /// `BEGIN IMMEDIATE` on SQLite, the ledger's advisory lock, exclusive, on PostgreSQL.
    async fn begin(&self) -> Result<LedgerTx, Error> {
        db::begin(&self.writes, self.backend, Mode::Exclusive).await
    }

    /// A write transaction that locks `scopes` (see the module docs): `BEGIN IMMEDIATE` on
    /// SQLite, the ledger's advisory lock shared and one lock per scope on PostgreSQL.
    async fn begin_scoped(&self, scopes: &[Scope]) -> Result<LedgerTx, Error> {
        db::begin(&self.writes, self.backend, Mode::Scoped(scopes)).await
    }

    /// [`Ledger::begin`] for an operation run once per idempotency `key`: also the output an
    /// earlier run recorded under `key`, if any.
    async fn begin_once(&self, key: &str) -> Result<(LedgerTx, Option<String>), Error> {
        db::begin_once(&self.writes, self.backend, Mode::Exclusive, key).await
    }

    /// [`Ledger::begin_scoped`] for an operation run once per idempotency `key` (one of
    /// `scopes`): also the output an earlier run recorded under `key`, if any.
    async fn begin_scoped_once(&self, scopes: &[Scope], key: &str) -> Result<(LedgerTx, Option<String>), Error> {
        db::begin_once(&self.writes, self.backend, Mode::Scoped(scopes), key).await
    }

    /// Takes `scope` late in a scoped transaction; it must rank above every scope taken before
    /// (see [`Scope`]).
    async fn lock_late(&self, conn: &mut AnyConnection, scope: &Scope) -> Result<(), Error> {
        db::lock(conn, self.backend, scope).await
    }

    /// Holds the locks of `scopes` until the returned guard is released or dropped, as a write
    /// on them would: for operators pausing one customer's postings, and for tests that show
    /// which writes wait for which. On SQLite it holds the file's write lock, so every write waits.
    pub async fn hold(&self, scopes: &[Scope]) -> Result<Held, Error> {
        Ok(Held(self.begin_scoped(scopes).await?))
    }

    /// Pauses invoicing on this handle until the returned guard is dropped: the batch being
    /// issued (if any) commits first, then no batch starts. Invoices asked meanwhile queue (see
    /// [`Ledger::invoice_queue`]) and go in the next batch. For tests that need a batch's makeup
    /// fixed, and for an operator holding invoicing still for a moment.
    pub async fn pause_invoices(&self) -> InvoicesPaused {
        self.invoices.pause().await
    }

    /// Reads a setting of `ledger_settings`.
    async fn setting(conn: &mut AnyConnection, key: &str) -> Result<String, Error> {
        let row =
            sqlx::query("SELECT value FROM ledger_settings WHERE key = $1").bind(key).fetch_optional(conn).await?;
        row.map(|r| r.try_get::<String, _>(0))
            .transpose()?
            .ok_or_else(|| Error::Corrupt(format!("setting {key} missing")))
    }
}

/// Locks held by [`Ledger::hold`]: an open write transaction that changes nothing.
#[derive(Debug)]
pub struct Held(LedgerTx);

impl Held {
    /// Ends the transaction, releasing the locks.
    pub async fn release(self) -> Result<(), Error> {
        self.0.rollback().await?;
        Ok(())
    }
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
pub(crate) async fn post(conn: &mut AnyConnection, entry: Entry<'_>, now: DateTime<Utc>) -> Result<i64, Error> {
    balanced(&entry)?;
    write_entry(conn, &entry, now).await
}

/// The entry's lines that are not zero, once checked: no negative amount, no line both debit and
/// credit, at least two lines, debits equal to credits.
fn balanced<'e>(entry: &'e Entry<'_>) -> Result<Vec<&'e JournalLine>, Error> {
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
    Ok(lines)
}

/// Writes `entry` (checked again for balance) in two statements, its lines in one. Its period's
/// check is part of the first: in a closed period nothing is inserted, and the posting is
/// refused. A write holding the ledger lock (shared or exclusive) sees the status stand until it
/// ends: closing takes the lock exclusive.
async fn write_entry(conn: &mut AnyConnection, entry: &Entry<'_>, now: DateTime<Utc>) -> Result<i64, Error> {
    let lines = balanced(entry)?;
    let period = period_of(entry.date);
    let id: Option<i64> = sqlx::query(
        "INSERT INTO journal_entries (entry_date, period, kind, description, document, posted_at) \
         SELECT $1, $2, $3, $4, $5, $6 \
         WHERE NOT EXISTS (SELECT 1 FROM periods WHERE period = $2 AND status = 'closed') RETURNING id",
    )
    .bind(date_text(entry.date))
    .bind(&period)
    .bind(entry.kind)
    .bind(&entry.description)
    .bind(entry.document)
    .bind(ts_text(now))
    .fetch_optional(&mut *conn)
    .await?
    .map(|row| row.try_get(0))
    .transpose()?;
    let Some(id) = id else {
        return Err(Error::PeriodClosed { period, date: entry.date });
    };
    let sql = format!(
        "INSERT INTO journal_lines (entry_id, line_no, account, debit, credit, customer_id, invoice_id) VALUES {}",
        rows_of(7, lines.len())
    );
    let mut insert = sqlx::query(&sql);
    for (n, line) in lines.iter().enumerate() {
        insert = insert
            .bind(id)
            .bind(i64::try_from(n + 1).unwrap_or(i64::MAX))
            .bind(line.account)
            .bind(money_text(line.debit))
            .bind(money_text(line.credit))
            .bind(&line.customer_id)
            .bind(&line.invoice_id);
    }
    insert.execute(&mut *conn).await?;
    Ok(id)
}

/// The `VALUES` rows of a multi-row insert: `rows` of `columns` numbered placeholders each,
/// `($1, $2), ($3, $4)`.
pub(crate) fn rows_of(columns: usize, rows: usize) -> String {
    let row = |r: usize| {
        let cells: Vec<String> = (1..=columns).map(|c| format!("${}", r * columns + c)).collect();
        format!("({})", cells.join(", "))
    };
    (0..rows).map(row).collect::<Vec<_>>().join(", ")
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
    fn multi_row_inserts_number_their_placeholders_row_by_row() {
        assert_eq!(rows_of(2, 2), "($1, $2), ($3, $4)");
        assert_eq!(rows_of(3, 1), "($1, $2, $3)");
    }

    #[test]
    fn period_is_year_and_month() {
        assert_eq!(period_of(NaiveDate::from_ymd_opt(2026, 3, 9).unwrap()), "2026-03");
    }
}
