//! The indicator catalogue: every finance figure defined once (key, name, formula in words,
//! unit, owner role, the breakdowns it offers), and computed from the ledger's rows in one place,
//! so the API, the pages and the demo quote the same numbers.
//!
//! Stock figures (receivables, DSO) are taken on a date; flow figures
//! (revenue, gross profit, invoiced, received...) sum the postings of a window of days. A
//! breakdown splits a figure by customer, by sales rep (the user who entered the order behind
//! the posting: `(none)` for opening balances and orders without a recorded rep) or by period
//! (day, ISO week, month); its parts add up to the whole for sums, and a ratio is computed within
//! each part.
//!
//! There is no breakdown "by process" here: every posting belongs to an order, and every order
//! goes through the same order-to-cash process, so a split by process would have one part. The
//! process figures the alert rules judge (approvals past due, open incidents) live with the
//! engine. Daily snapshots of every figure ([`history`]) keep the trend.

pub mod history;

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike as _, NaiveDate, TimeDelta};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{Error, Ledger, account, cents, date_text, parse_date, parse_money};

/// What a figure is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// An amount in the ledger's currency, to the cent.
    Money,
    /// Days, to one decimal.
    Days,
    /// A fraction (0.25 is 25 %), to four decimals.
    Ratio,
}

/// How a figure can be split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Breakdown {
    /// By customer id.
    Customer,
    /// By the sales rep who entered the order (`(none)` when not recorded).
    SalesRep,
    /// By calendar day of the posting.
    Day,
    /// By ISO week of the posting (`2026-W05`).
    Week,
    /// By calendar month of the posting (`2026-01`).
    Month,
}

impl Breakdown {
    /// From a query value: `customer`, `sales_rep`, `day`, `week` or `month`.
    pub fn parse(text: &str) -> Option<Breakdown> {
        match text {
            "customer" => Some(Breakdown::Customer),
            "sales_rep" => Some(Breakdown::SalesRep),
            "day" => Some(Breakdown::Day),
            "week" => Some(Breakdown::Week),
            "month" => Some(Breakdown::Month),
            _ => None,
        }
    }

    /// The word a query uses.
    pub fn name(self) -> &'static str {
        match self {
            Breakdown::Customer => "customer",
            Breakdown::SalesRep => "sales_rep",
            Breakdown::Day => "day",
            Breakdown::Week => "week",
            Breakdown::Month => "month",
        }
    }

    /// The label of the period holding `day` (for `Customer` and `SalesRep`, the day itself).
    pub fn period_of(self, day: NaiveDate) -> String {
        match self {
            Breakdown::Customer | Breakdown::SalesRep | Breakdown::Day => date_text(day),
            Breakdown::Week => format!("{}-W{:02}", day.iso_week().year(), day.iso_week().week()),
            Breakdown::Month => day.format("%Y-%m").to_string(),
        }
    }
}

/// One indicator's definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Definition {
    /// The key the API and alert rules use.
    pub key: &'static str,
    /// Its name.
    pub name: &'static str,
    /// How it is computed, in words.
    pub formula: &'static str,
    /// What it is measured in.
    pub unit: Unit,
    /// The role that answers for it.
    pub owner: &'static str,
    /// Taken on a date (`false`) or summed over a window of days (`true`).
    pub over_window: bool,
    /// The splits it offers.
    pub breakdowns: &'static [Breakdown],
}

const BY_PARTY: &[Breakdown] = &[Breakdown::Customer, Breakdown::SalesRep];
const BY_ANY: &[Breakdown] =
    &[Breakdown::Customer, Breakdown::SalesRep, Breakdown::Day, Breakdown::Week, Breakdown::Month];
const BY_CUSTOMER_OR_PERIOD: &[Breakdown] = &[Breakdown::Customer, Breakdown::Day, Breakdown::Week, Breakdown::Month];
const BY_PERIOD: &[Breakdown] = &[Breakdown::Day, Breakdown::Week, Breakdown::Month];

/// The key of [`Ledger::credit_utilisation`].
pub const CREDIT_UTILISATION: &str = "credit_utilisation";

/// What a part is called when the sales rep of its order is not recorded.
pub const NO_SALES_REP: &str = "(none)";

/// Every finance indicator, in the order a board shows them.
pub const CATALOGUE: [Definition; 10] = [
    Definition {
        key: "open_receivables",
        name: "Open receivables",
        formula: "sum of the open balances of invoices (receivable postings up to the date)",
        unit: Unit::Money,
        owner: "finance.controller",
        over_window: false,
        breakdowns: BY_PARTY,
    },
    Definition {
        key: "overdue_receivables",
        name: "Overdue receivables",
        formula: "open balances of invoices past their due date on the date",
        unit: Unit::Money,
        owner: "finance.controller",
        over_window: false,
        breakdowns: BY_PARTY,
    },
    Definition {
        key: "days_sales_outstanding",
        name: "Days sales outstanding",
        formula: "open receivables ÷ invoiced (with tax) in the 90 days up to the date × 90",
        unit: Unit::Days,
        owner: "finance.cfo",
        over_window: false,
        breakdowns: BY_PARTY,
    },
    Definition {
        key: "revenue",
        name: "Revenue",
        formula: "revenue account credits − debits posted in the window (net of tax)",
        unit: Unit::Money,
        owner: "finance.cfo",
        over_window: true,
        breakdowns: BY_ANY,
    },
    Definition {
        key: "gross_profit",
        name: "Gross profit",
        formula: "revenue − cost of goods sold, posted in the window",
        unit: Unit::Money,
        owner: "finance.cfo",
        over_window: true,
        breakdowns: BY_ANY,
    },
    Definition {
        key: "gross_margin",
        name: "Gross margin",
        formula: "(revenue − cost of goods sold) ÷ revenue, posted in the window",
        unit: Unit::Ratio,
        owner: "finance.cfo",
        over_window: true,
        breakdowns: BY_ANY,
    },
    Definition {
        key: "bad_debt_rate",
        name: "Bad-debt rate",
        formula: "receivables written off ÷ revenue, posted in the window",
        unit: Unit::Ratio,
        owner: "finance.cfo",
        over_window: true,
        breakdowns: BY_ANY,
    },
    Definition {
        key: "invoiced",
        name: "Invoiced",
        formula: "invoice totals (with tax) by issue date in the window",
        unit: Unit::Money,
        owner: "finance.accountant",
        over_window: true,
        breakdowns: BY_ANY,
    },
    Definition {
        key: "cash_received",
        name: "Cash received",
        formula: "customer payments by the day the bank received them, in the window",
        unit: Unit::Money,
        owner: "finance.accountant",
        over_window: true,
        breakdowns: BY_CUSTOMER_OR_PERIOD,
    },
    Definition {
        key: "auto_match_rate",
        name: "Payments matched automatically",
        formula: "payments matched without a person ÷ payments matched, received in the window",
        unit: Unit::Ratio,
        owner: "finance.accountant",
        over_window: true,
        breakdowns: BY_PERIOD,
    },
];

/// The definition of `key`.
pub fn definition(key: &str) -> Option<&'static Definition> {
    CATALOGUE.iter().find(|d| d.key == key)
}

/// The days a figure is taken on: stock figures on `as_of`, flows over `from..=as_of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// The first day of the flows' window.
    pub from: NaiveDate,
    /// The date stock figures are taken on, and the last day of the window.
    pub as_of: NaiveDate,
}

impl Window {
    /// The 90 days up to `as_of`.
    pub fn last_90_days(as_of: NaiveDate) -> Window {
        Window { from: as_of - TimeDelta::days(89), as_of }
    }
}

/// One figure's value, whole and (when asked) split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// The indicator's key.
    pub key: String,
    /// The value; `None` when a ratio has nothing to divide by.
    pub value: Option<Decimal>,
    /// The parts, by customer or period label in order; empty unless a breakdown was asked.
    pub parts: Vec<(String, Option<Decimal>)>,
}

/// The sums every figure is made of, for the whole or one part.
#[derive(Debug, Clone, Default)]
struct Sums {
    open: Decimal,
    overdue: Decimal,
    invoiced_90: Decimal,
    revenue: Decimal,
    cost: Decimal,
    write_offs: Decimal,
    invoiced: Decimal,
    received: Decimal,
    matched: u64,
    matched_automatically: u64,
}

impl Sums {
    fn value(&self, key: &str) -> Option<Decimal> {
        let ratio = |n: Decimal, d: Decimal| if d.is_zero() { None } else { n.checked_div(d).map(|r| r.round_dp(4)) };
        match key {
            "open_receivables" => Some(cents(self.open)),
            "overdue_receivables" => Some(cents(self.overdue)),
            "days_sales_outstanding" => ratio(self.open * Decimal::from(90), self.invoiced_90).map(|d| d.round_dp(1)),
            "revenue" => Some(cents(self.revenue)),
            "gross_profit" => Some(cents(self.revenue - self.cost)),
            "gross_margin" => ratio(self.revenue - self.cost, self.revenue),
            "bad_debt_rate" => ratio(self.write_offs, self.revenue),
            "invoiced" => Some(cents(self.invoiced)),
            "cash_received" => Some(cents(self.received)),
            "auto_match_rate" => ratio(Decimal::from(self.matched_automatically), Decimal::from(self.matched)),
            _ => None,
        }
    }
}

/// Sums for the whole and per part label.
#[derive(Debug, Default)]
struct Tally {
    whole: Sums,
    parts: BTreeMap<String, Sums>,
}

impl Tally {
    fn add(&mut self, part: Option<String>, add: impl Fn(&mut Sums)) {
        add(&mut self.whole);
        if let Some(label) = part {
            add(self.parts.entry(label).or_default());
        }
    }
}

impl Ledger {
    /// Every indicator of [`CATALOGUE`] over `window`, split by `by` where an indicator offers
    /// that breakdown (the others come whole).
    pub async fn figures(&self, window: Window, by: Option<Breakdown>) -> Result<Vec<Figure>, Error> {
        let Window { from, as_of } = window;
        let (from_text, to_text) = (date_text(from), date_text(as_of));
        // The sales rep behind each order and invoice (documents of both kinds), when asked.
        let reps = if by == Some(Breakdown::SalesRep) { self.reps_of_documents().await? } else { HashMap::new() };
        let rep = |document: &str| reps.get(document).cloned().unwrap_or_else(|| NO_SALES_REP.to_string());
        let part = |customer: &str, document: &str, day: NaiveDate| match by {
            None => None,
            Some(Breakdown::Customer) => Some(customer.to_string()),
            Some(Breakdown::SalesRep) => Some(rep(document)),
            Some(period) => Some(period.period_of(day)),
        };
        // Stock figures are split by customer or sales rep only.
        let party = |customer: &str, document: &str| match by {
            Some(Breakdown::Customer) => Some(customer.to_string()),
            Some(Breakdown::SalesRep) => Some(rep(document)),
            _ => None,
        };
        let mut stock = Tally::default();
        for line in self.aging(as_of).await?.invoices {
            stock.add(party(&line.customer_id, &line.invoice_id), |s| {
                s.open += line.amount_open;
                if line.days_past_due > 0 {
                    s.overdue += line.amount_open;
                }
            });
        }
        let since_90 = date_text(as_of - TimeDelta::days(90));
        let invoices = sqlx::query("SELECT customer_id, issue_date, total, id FROM invoices WHERE issue_date <= $1")
            .bind(&to_text)
            .fetch_all(&self.read)
            .await?;
        let mut flows = Tally::default();
        for r in &invoices {
            let (customer, issued, id): (String, String, String) = (r.try_get(0)?, r.try_get(1)?, r.try_get(3)?);
            let total = parse_money(r.try_get(2)?)?;
            if issued > since_90 {
                stock.add(party(&customer, &id), |s| s.invoiced_90 += total);
            }
            if issued >= from_text {
                flows.add(part(&customer, &id, parse_date(&issued)?), |s| s.invoiced += total);
            }
        }
        let lines = sqlx::query(
            "SELECT l.account, coalesce(l.customer_id, ''), e.entry_date, l.debit, l.credit, coalesce(e.document, '') \
             FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id \
             WHERE l.account IN ($1, $2, $3) AND e.entry_date >= $4 AND e.entry_date <= $5",
        )
        .bind(account::REVENUE)
        .bind(account::COST_OF_GOODS)
        .bind(account::BAD_DEBT)
        .bind(&from_text)
        .bind(&to_text)
        .fetch_all(&self.read)
        .await?;
        for r in &lines {
            let (account_code, customer, day): (String, String, String) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            let (debit, credit) = (parse_money(r.try_get(3)?)?, parse_money(r.try_get(4)?)?);
            let document: String = r.try_get(5)?;
            let label = part(&customer, &document, parse_date(&day)?);
            match account_code.as_str() {
                account::REVENUE => flows.add(label, |s| s.revenue += credit - debit),
                account::COST_OF_GOODS => flows.add(label, |s| s.cost += debit - credit),
                _ => flows.add(label, |s| s.write_offs += debit - credit),
            }
        }
        let payments = sqlx::query(
            "SELECT coalesce(customer_id, ''), received_on, amount, matched_automatically FROM payments \
             WHERE received_on >= $1 AND received_on <= $2",
        )
        .bind(&from_text)
        .bind(&to_text)
        .fetch_all(&self.read)
        .await?;
        for r in &payments {
            let (customer, day): (String, String) = (r.try_get(0)?, r.try_get(1)?);
            let amount = parse_money(r.try_get(2)?)?;
            let automatic: Option<i64> = r.try_get(3)?;
            flows.add(part(&customer, "", parse_date(&day)?), |s| {
                s.received += amount;
                if let Some(automatic) = automatic {
                    s.matched += 1;
                    s.matched_automatically += u64::from(automatic == 1);
                }
            });
        }
        Ok(CATALOGUE
            .iter()
            .map(|d| {
                let tally = if d.over_window { &flows } else { &stock };
                let split = by.is_some_and(|b| d.breakdowns.contains(&b));
                Figure {
                    key: d.key.to_string(),
                    value: tally.whole.value(d.key),
                    parts: if split {
                        tally.parts.iter().map(|(label, sums)| (label.clone(), sums.value(d.key))).collect()
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect())
    }

    /// Credit utilisation on `as_of`: open receivables ÷ credit limit (a ratio to four decimals),
    /// split by customer (those with open receivables and a limit) and whole (of all customers
    /// with a limit). What the credit controller's alert rules judge; not (yet) on the board, so
    /// kept beside the catalogue rather than in it.
    pub async fn credit_utilisation(&self, as_of: NaiveDate) -> Result<Figure, Error> {
        let mut open: BTreeMap<String, Decimal> = BTreeMap::new();
        for line in self.aging(as_of).await?.invoices {
            *open.entry(line.customer_id).or_default() += line.amount_open;
        }
        let (mut all_open, mut all_limits) = (Decimal::ZERO, Decimal::ZERO);
        let mut parts = Vec::new();
        for r in sqlx::query("SELECT id, credit_limit FROM customers ORDER BY id").fetch_all(&self.read).await? {
            let (customer, limit): (String, Decimal) = (r.try_get(0)?, parse_money(r.try_get(1)?)?);
            if limit <= Decimal::ZERO {
                continue;
            }
            all_limits += limit;
            if let Some(owed) = open.get(&customer) {
                all_open += *owed;
                parts.push((customer, owed.checked_div(limit).map(|r| r.round_dp(4))));
            }
        }
        let value = if all_limits.is_zero() { None } else { all_open.checked_div(all_limits).map(|r| r.round_dp(4)) };
        Ok(Figure { key: CREDIT_UTILISATION.to_string(), value, parts })
    }

    /// The sales rep recorded on each order, under the order's id and under its invoice's id
    /// (the documents journal entries name); orders without one are left out.
    async fn reps_of_documents(&self) -> Result<HashMap<String, String>, Error> {
        let mut reps = HashMap::new();
        let rows = sqlx::query(
            "SELECT o.id, o.sales_rep, i.id FROM orders o LEFT JOIN invoices i ON i.order_id = o.id \
             WHERE o.sales_rep IS NOT NULL",
        )
        .fetch_all(&self.read)
        .await?;
        for r in &rows {
            let (order, rep, invoice): (String, String, Option<String>) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            if let Some(invoice) = invoice {
                reps.insert(invoice, rep.clone());
            }
            reps.insert(order, rep);
        }
        Ok(reps)
    }

    /// Records who sold an order (the user who entered it), for the sales rep breakdown. An
    /// order not recorded yet is an error; recording it again replaces the rep.
    pub async fn set_sales_rep(&self, order_id: &str, sales_rep: &str) -> Result<(), Error> {
        if sales_rep.trim().is_empty() {
            return Err(Error::Input { field: "sales_rep".into(), problem: "empty".into() });
        }
        let mut tx = self.begin().await?;
        let changed = sqlx::query("UPDATE orders SET sales_rep = $1 WHERE id = $2")
            .bind(sales_rep)
            .bind(order_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed == 0 {
            return Err(Error::UnknownOrder(order_id.to_string()));
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_defined_once_and_computed() {
        let sums = Sums::default();
        for (i, d) in CATALOGUE.iter().enumerate() {
            assert!(CATALOGUE[..i].iter().all(|e| e.key != d.key), "{} twice", d.key);
            assert!(!d.breakdowns.is_empty() && !d.formula.is_empty() && d.owner.starts_with("finance."));
            // Sums of nothing: money is zero, a ratio has nothing to divide by.
            match d.unit {
                Unit::Money => assert_eq!(sums.value(d.key), Some(Decimal::ZERO), "{}", d.key),
                Unit::Days | Unit::Ratio => assert_eq!(sums.value(d.key), None, "{}", d.key),
            }
        }
        assert_eq!(definition("revenue").map(|d| d.unit), Some(Unit::Money));
        assert!(definition("nope").is_none());
    }

    #[test]
    fn periods_are_days_iso_weeks_and_months() {
        let day = NaiveDate::from_ymd_opt(2027, 1, 1).unwrap();
        assert_eq!(Breakdown::Day.period_of(day), "2027-01-01");
        // 1 January 2027 is a Friday of the last ISO week of 2026.
        assert_eq!(Breakdown::Week.period_of(day), "2026-W53");
        assert_eq!(Breakdown::Month.period_of(day), "2027-01");
        for b in [Breakdown::Customer, Breakdown::SalesRep, Breakdown::Day, Breakdown::Week, Breakdown::Month] {
            assert_eq!(Breakdown::parse(b.name()), Some(b));
        }
        assert_eq!(Breakdown::parse("process"), None);
    }
}
