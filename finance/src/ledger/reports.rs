//! Reads of the sub-ledger: trial balance, AR aging, gross profit, and the finance KPIs.

use std::collections::BTreeMap;

use chrono::{Datelike as _, NaiveDate, TimeDelta};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{Error, Ledger, account, cents, date_text, parse_date, parse_money};

/// One account's totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialLine {
    /// The account code.
    pub account: String,
    /// Its name.
    pub name: String,
    /// Total debits.
    pub debit: Decimal,
    /// Total credits.
    pub credit: Decimal,
    /// Debits minus credits.
    pub balance: Decimal,
}

/// Every account's totals, and the checks of double entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialBalance {
    /// Accounts with postings, by code.
    pub accounts: Vec<TrialLine>,
    /// Total debits.
    pub total_debit: Decimal,
    /// Total credits.
    pub total_credit: Decimal,
    /// Entries whose own lines do not balance (none, unless rows were edited by hand).
    pub unbalanced_entries: Vec<i64>,
}

impl TrialBalance {
    /// Debits minus credits over all accounts: zero when the books balance.
    pub fn difference(&self) -> Decimal {
        self.total_debit - self.total_credit
    }

    /// True when the books balance and every entry does.
    pub fn is_balanced(&self) -> bool {
        self.difference().is_zero() && self.unbalanced_entries.is_empty()
    }

    /// The balance of one account (zero if it has no postings).
    pub fn balance(&self, account: &str) -> Decimal {
        self.accounts.iter().find(|l| l.account == account).map_or(Decimal::ZERO, |l| l.balance)
    }
}

/// The aging buckets' labels, in the order reports show them: invoices not yet due (due today
/// included) first, then by days past due.
pub const AGING_BUCKETS: [&str; 5] = [NOT_DUE, "1-30", "31-60", "61-90", "90+"];

/// The label of the bucket of invoices not yet due (未到期).
pub const NOT_DUE: &str = "not_due";

/// The label of the bucket an invoice `days_past_due` days past its due date falls in (zero or
/// fewer: [`NOT_DUE`]).
pub fn aging_bucket(days_past_due: i64) -> &'static str {
    AGING_BUCKETS[bucket_of(days_past_due)]
}

/// One aging bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgingBucket {
    /// `not_due` (not yet due, or due on the report's date), then `1-30`, `31-60`, `61-90` or
    /// `90+` days past due. Reports stored before `not_due` existed have `0-30`, which counted
    /// the invoices not yet due with those up to 30 days past due.
    pub label: String,
    /// Open amount in the bucket.
    pub amount: Decimal,
    /// Invoices in the bucket.
    pub invoices: usize,
}

/// One open invoice in the aging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgingLine {
    /// The invoice.
    pub invoice_id: String,
    /// The customer.
    pub customer_id: String,
    /// The order it bills; none for an invoice taken over from an earlier system.
    #[serde(default)]
    pub order_id: Option<String>,
    /// Its due date.
    pub due_date: NaiveDate,
    /// Days past due on the report's date; 0 when not yet due (see `days_until_due`). Reports
    /// stored before `days_until_due` existed have a negative number for an invoice not yet due.
    pub days_past_due: i64,
    /// Days from the report's date to the due date; 0 when due that day or past due.
    #[serde(default)]
    pub days_until_due: i64,
    /// Open on the report's date.
    pub amount_open: Decimal,
    /// Its bucket's label.
    pub bucket: String,
}

/// Accounts receivable aging as of a date, from the receivable postings up to that date.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgingReport {
    /// The report's date.
    pub as_of: NaiveDate,
    /// The five buckets of [`AGING_BUCKETS`]: not yet due, then youngest first.
    pub buckets: Vec<AgingBucket>,
    /// All open receivables.
    pub total: Decimal,
    /// The open invoices.
    pub invoices: Vec<AgingLine>,
}

/// One line of a journal entry, with its entry's date and words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryLine {
    /// The entry's number.
    pub entry: i64,
    /// Its booking date.
    pub date: NaiveDate,
    /// What kind of posting (`invoice`, `cost`, `receipt`...).
    pub kind: String,
    /// Its description.
    pub description: String,
    /// The account code.
    pub account: String,
    /// The account's name.
    pub account_name: String,
    /// Debit amount.
    pub debit: Decimal,
    /// Credit amount.
    pub credit: Decimal,
}

/// Gross profit of one customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfitLine {
    /// The customer.
    pub customer_id: String,
    /// Revenue (net of tax).
    pub revenue: Decimal,
    /// Cost of goods sold.
    pub cost_of_goods: Decimal,
    /// Revenue minus cost of goods.
    pub gross_profit: Decimal,
}

/// Gross profit of one order: its invoice's revenue and the cost of the goods it shipped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderProfit {
    /// The order (for an invoice taken over from an earlier system: the invoice).
    pub order_id: String,
    /// The customer.
    pub customer_id: String,
    /// Revenue (net of tax).
    pub revenue: Decimal,
    /// Cost of goods sold.
    pub cost_of_goods: Decimal,
    /// Revenue minus cost of goods.
    pub gross_profit: Decimal,
}

/// What was invoiced and what came in from customers in one week (Monday to Sunday).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeekFlow {
    /// The week's Monday.
    pub week_start: NaiveDate,
    /// Invoice totals (gross, with tax) by issue date.
    pub invoiced: Decimal,
    /// Customer payments by the day the bank received them.
    pub received: Decimal,
}

/// Gross profit by customer over a date range, from the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfitReport {
    /// First day included.
    pub from: NaiveDate,
    /// Last day included.
    pub to: NaiveDate,
    /// By customer.
    pub customers: Vec<ProfitLine>,
    /// Total revenue.
    pub revenue: Decimal,
    /// Total cost of goods.
    pub cost_of_goods: Decimal,
    /// Total gross profit.
    pub gross_profit: Decimal,
}

/// The finance numbers a CFO asks for, as of a date. Money serializes as decimal strings; ratios
/// are fractions (`"0.25"` is 25 %) rounded to four places, `null` when there is nothing to
/// divide by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LedgerKpis {
    /// The date (postings up to it).
    pub as_of: NaiveDate,
    /// Open receivables by age: not yet due (`not_due`), then 1-30, 31-60, 61-90, 90+ days past due.
    pub aging: Vec<AgingBucket>,
    /// All open receivables.
    pub open_receivables: Decimal,
    /// Payments matched so far.
    pub payments_matched: u64,
    /// Of those, matched without a person (exact within tolerance, or partial).
    pub payments_matched_automatically: u64,
    /// The share matched automatically (settlement accuracy).
    pub auto_match_rate: Option<Decimal>,
    /// Days sales outstanding: open receivables ÷ invoiced (gross) in the last 90 days × 90.
    pub days_sales_outstanding: Option<Decimal>,
    /// Revenue to date (net).
    pub revenue: Decimal,
    /// Cost of goods sold to date.
    pub cost_of_goods: Decimal,
    /// Receivables written off to date.
    pub write_offs: Decimal,
    /// Write-offs ÷ revenue.
    pub bad_debt_rate: Option<Decimal>,
    /// (Revenue − cost of goods) ÷ revenue.
    pub gross_margin: Option<Decimal>,
}

fn ratio(numerator: Decimal, denominator: Decimal) -> Option<Decimal> {
    if denominator.is_zero() { None } else { numerator.checked_div(denominator).map(|r| r.round_dp(4)) }
}

fn bucket_of(days_past_due: i64) -> usize {
    match days_past_due {
        ..=0 => 0,
        1..=30 => 1,
        31..=60 => 2,
        61..=90 => 3,
        _ => 4,
    }
}

impl Ledger {
    /// Every account's debits, credits and balance, and any entry that does not balance.
    pub async fn trial_balance(&self) -> Result<TrialBalance, Error> {
        let names: BTreeMap<String, String> = sqlx::query("SELECT code, name FROM accounts")
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, Error>>()?;
        let rows =
            sqlx::query("SELECT entry_id, account, debit, credit FROM journal_lines").fetch_all(&self.read).await?;
        let mut accounts: BTreeMap<String, (Decimal, Decimal)> = BTreeMap::new();
        let mut entries: BTreeMap<i64, Decimal> = BTreeMap::new();
        for r in rows {
            let (debit, credit) = (parse_money(r.try_get(2)?)?, parse_money(r.try_get(3)?)?);
            let totals = accounts.entry(r.try_get(1)?).or_default();
            totals.0 += debit;
            totals.1 += credit;
            *entries.entry(r.try_get(0)?).or_default() += debit - credit;
        }
        let mut balance = TrialBalance {
            accounts: Vec::new(),
            total_debit: Decimal::ZERO,
            total_credit: Decimal::ZERO,
            unbalanced_entries: entries.into_iter().filter(|(_, d)| !d.is_zero()).map(|(id, _)| id).collect(),
        };
        for (code, (debit, credit)) in accounts {
            balance.total_debit += debit;
            balance.total_credit += credit;
            balance.accounts.push(TrialLine {
                name: names.get(&code).cloned().unwrap_or_default(),
                account: code,
                debit: cents(debit),
                credit: cents(credit),
                balance: cents(debit - credit),
            });
        }
        balance.total_debit = cents(balance.total_debit);
        balance.total_credit = cents(balance.total_credit);
        Ok(balance)
    }

    /// The journal lines an order produced: entries booking the order itself or its invoice
    /// (invoice, cost of goods, receipts, refunds, write-off), in posting order.
    pub async fn entries_of_order(&self, order_id: &str) -> Result<Vec<EntryLine>, Error> {
        let invoice = self.invoice_of_order(order_id).await?.map(|i| i.invoice_id);
        let rows = sqlx::query(
            "SELECT e.id, e.entry_date, e.kind, e.description, l.account, a.name, l.debit, l.credit \
             FROM journal_entries e JOIN journal_lines l ON l.entry_id = e.id JOIN accounts a ON a.code = l.account \
             WHERE e.document = $1 OR e.document = $2 \
                OR e.id IN (SELECT entry_id FROM journal_lines WHERE invoice_id = $2) \
             ORDER BY e.id, l.line_no",
        )
        .bind(order_id)
        .bind(invoice.as_deref().unwrap_or(order_id))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EntryLine {
                    entry: r.try_get(0)?,
                    date: parse_date(&r.try_get::<String, _>(1)?)?,
                    kind: r.try_get(2)?,
                    description: r.try_get(3)?,
                    account: r.try_get(4)?,
                    account_name: r.try_get(5)?,
                    debit: parse_money(r.try_get(6)?)?,
                    credit: parse_money(r.try_get(7)?)?,
                })
            })
            .collect()
    }

    /// AR aging as of `as_of`: each invoice's receivable postings dated up to then, not yet due
    /// or by days past its due date.
    pub async fn aging(&self, as_of: NaiveDate) -> Result<AgingReport, Error> {
        let rows = sqlx::query(
            "SELECT i.id, i.customer_id, i.due_date, l.debit, l.credit, i.order_id \
             FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id JOIN invoices i ON i.id = l.invoice_id \
             WHERE l.account = $1 AND e.entry_date <= $2 ORDER BY i.due_date, i.id",
        )
        .bind(account::RECEIVABLES)
        .bind(date_text(as_of))
        .fetch_all(&self.read)
        .await?;
        let mut open: Vec<(String, String, NaiveDate, Decimal, Option<String>)> = Vec::new();
        for r in rows {
            let id: String = r.try_get(0)?;
            let amount = parse_money(r.try_get(3)?)? - parse_money(r.try_get(4)?)?;
            match open.last_mut() {
                Some(last) if last.0 == id => last.3 += amount,
                _ => open.push((id, r.try_get(1)?, parse_date(r.try_get(2)?)?, amount, r.try_get(5)?)),
            }
        }
        let mut buckets: Vec<AgingBucket> = AGING_BUCKETS
            .iter()
            .map(|l| AgingBucket { label: l.to_string(), amount: Decimal::ZERO, invoices: 0 })
            .collect();
        let mut invoices = Vec::new();
        let mut total = Decimal::ZERO;
        for (invoice_id, customer_id, due_date, amount, order_id) in open {
            if amount.is_zero() {
                continue;
            }
            let days = (as_of - due_date).num_days();
            let b = bucket_of(days);
            buckets[b].amount += amount;
            buckets[b].invoices += 1;
            total += amount;
            invoices.push(AgingLine {
                invoice_id,
                customer_id,
                order_id,
                due_date,
                days_past_due: days.max(0),
                days_until_due: (-days).max(0),
                amount_open: cents(amount),
                bucket: AGING_BUCKETS[b].to_string(),
            });
        }
        for b in &mut buckets {
            b.amount = cents(b.amount);
        }
        Ok(AgingReport { as_of, buckets, total: cents(total), invoices })
    }

    /// Revenue, cost of goods and gross profit by customer, from entries dated `from..=to`.
    pub async fn gross_profit(&self, from: NaiveDate, to: NaiveDate) -> Result<ProfitReport, Error> {
        let rows = sqlx::query(
            "SELECT l.account, coalesce(l.customer_id, ''), l.debit, l.credit \
             FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id \
             WHERE l.account IN ($1, $2) AND e.entry_date >= $3 AND e.entry_date <= $4",
        )
        .bind(account::REVENUE)
        .bind(account::COST_OF_GOODS)
        .bind(date_text(from))
        .bind(date_text(to))
        .fetch_all(&self.read)
        .await?;
        let mut by: BTreeMap<String, (Decimal, Decimal)> = BTreeMap::new();
        for r in rows {
            let account: String = r.try_get(0)?;
            let (debit, credit) = (parse_money(r.try_get(2)?)?, parse_money(r.try_get(3)?)?);
            let line = by.entry(r.try_get(1)?).or_default();
            if account == account::REVENUE {
                line.0 += credit - debit;
            } else {
                line.1 += debit - credit;
            }
        }
        let mut report = ProfitReport {
            from,
            to,
            customers: Vec::new(),
            revenue: Decimal::ZERO,
            cost_of_goods: Decimal::ZERO,
            gross_profit: Decimal::ZERO,
        };
        for (customer_id, (revenue, cost)) in by {
            report.revenue += revenue;
            report.cost_of_goods += cost;
            report.customers.push(ProfitLine {
                customer_id,
                revenue: cents(revenue),
                cost_of_goods: cents(cost),
                gross_profit: cents(revenue - cost),
            });
        }
        report.revenue = cents(report.revenue);
        report.cost_of_goods = cents(report.cost_of_goods);
        report.gross_profit = cents(report.revenue - report.cost_of_goods);
        Ok(report)
    }

    /// Revenue, cost of goods and gross profit by order, from entries dated `from..=to`, most
    /// revenue first: the orders behind [`Ledger::gross_profit`]'s lines, which they add up to.
    pub async fn gross_profit_by_order(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<OrderProfit>, Error> {
        // Revenue is booked on the invoice (its document), cost of goods on the order.
        let rows = sqlx::query(
            "SELECT coalesce(i.order_id, e.document, ''), coalesce(l.customer_id, ''), l.account, l.debit, l.credit \
             FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id \
             LEFT JOIN invoices i ON i.id = e.document \
             WHERE l.account IN ($1, $2) AND e.entry_date >= $3 AND e.entry_date <= $4",
        )
        .bind(account::REVENUE)
        .bind(account::COST_OF_GOODS)
        .bind(date_text(from))
        .bind(date_text(to))
        .fetch_all(&self.read)
        .await?;
        let mut by: BTreeMap<(String, String), (Decimal, Decimal)> = BTreeMap::new();
        for r in rows {
            let account: String = r.try_get(2)?;
            let (debit, credit) = (parse_money(r.try_get(3)?)?, parse_money(r.try_get(4)?)?);
            let line = by.entry((r.try_get(0)?, r.try_get(1)?)).or_default();
            if account == account::REVENUE {
                line.0 += credit - debit;
            } else {
                line.1 += debit - credit;
            }
        }
        let mut orders: Vec<OrderProfit> = by
            .into_iter()
            .map(|((order_id, customer_id), (revenue, cost))| OrderProfit {
                order_id,
                customer_id,
                revenue: cents(revenue),
                cost_of_goods: cents(cost),
                gross_profit: cents(revenue - cost),
            })
            .collect();
        orders.sort_by(|a, b| b.revenue.cmp(&a.revenue).then_with(|| a.order_id.cmp(&b.order_id)));
        Ok(orders)
    }

    /// Invoiced and received per week for the weeks that hold `from..=to`, oldest first, every
    /// week listed (a quiet week is zero, not missing).
    pub async fn weekly_flow(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<WeekFlow>, Error> {
        use super::kpi::{Breakdown, Window};
        // The catalogue's own figures split by ISO week, so the chart and the indicators agree.
        let monday = |d: NaiveDate| d - TimeDelta::days(i64::from(d.weekday().num_days_from_monday()));
        let figures = self.figures(Window { from: monday(from), as_of: to }, Some(Breakdown::Week)).await?;
        let parts = |key: &str| -> BTreeMap<String, Decimal> {
            figures
                .iter()
                .find(|f| f.key == key)
                .map(|f| f.parts.iter().map(|(week, v)| (week.clone(), v.unwrap_or_default())).collect())
                .unwrap_or_default()
        };
        let (invoiced, received) = (parts("invoiced"), parts("cash_received"));
        let mut weeks = Vec::new();
        let mut week = monday(from);
        while week <= to {
            let label = Breakdown::Week.period_of(week);
            weeks.push(WeekFlow {
                week_start: week,
                invoiced: cents(invoiced.get(&label).copied().unwrap_or_default()),
                received: cents(received.get(&label).copied().unwrap_or_default()),
            });
            week += TimeDelta::days(7);
        }
        Ok(weeks)
    }

    /// The finance KPIs as of `as_of` (postings dated up to then).
    pub async fn kpis(&self, as_of: NaiveDate) -> Result<LedgerKpis, Error> {
        let aging = self.aging(as_of).await?;
        let start = NaiveDate::MIN;
        let profit = self.gross_profit(start, as_of).await?;
        let write_offs: Decimal = sqlx::query(
            "SELECT l.debit FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id \
             WHERE l.account = $1 AND e.entry_date <= $2",
        )
        .bind(account::BAD_DEBT)
        .bind(date_text(as_of))
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|r| parse_money(r.try_get(0)?))
        .sum::<Result<Decimal, Error>>()?;
        let invoiced: Decimal = sqlx::query("SELECT total FROM invoices WHERE issue_date > $1 AND issue_date <= $2")
            .bind(date_text(as_of - TimeDelta::days(90)))
            .bind(date_text(as_of))
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|r| parse_money(r.try_get(0)?))
            .sum::<Result<Decimal, Error>>()?;
        let matched = sqlx::query(
            "SELECT count(*), count(CASE WHEN matched_automatically = 1 THEN 1 END) FROM payments \
             WHERE matched_automatically IS NOT NULL AND received_on <= $1",
        )
        .bind(date_text(as_of))
        .fetch_one(&self.read)
        .await?;
        let (payments_matched, automatically): (i64, i64) = (matched.try_get(0)?, matched.try_get(1)?);
        let (payments_matched, automatically) =
            (u64::try_from(payments_matched).unwrap_or(0), u64::try_from(automatically).unwrap_or(0));
        Ok(LedgerKpis {
            as_of,
            open_receivables: aging.total,
            aging: aging.buckets,
            payments_matched,
            payments_matched_automatically: automatically,
            auto_match_rate: ratio(Decimal::from(automatically), Decimal::from(payments_matched)),
            days_sales_outstanding: ratio(aging.total * Decimal::from(90), invoiced).map(|d| d.round_dp(1)),
            revenue: profit.revenue,
            cost_of_goods: profit.cost_of_goods,
            write_offs: cents(write_offs),
            bad_debt_rate: ratio(write_offs, profit.revenue),
            gross_margin: ratio(profit.gross_profit, profit.revenue),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_yet_due_is_its_own_bucket_and_the_others_count_days_past_due() {
        assert_eq!(aging_bucket(-10), NOT_DUE);
        assert_eq!(aging_bucket(0), NOT_DUE, "due today is not overdue");
        assert_eq!(aging_bucket(1), "1-30");
        assert_eq!(aging_bucket(30), "1-30");
        assert_eq!(aging_bucket(31), "31-60");
        assert_eq!(aging_bucket(60), "31-60");
        assert_eq!(aging_bucket(61), "61-90");
        assert_eq!(aging_bucket(90), "61-90");
        assert_eq!(aging_bucket(91), "90+");
    }

    #[test]
    fn ratios_are_undefined_without_a_denominator() {
        assert_eq!(ratio(Decimal::ONE, Decimal::ZERO), None);
        assert_eq!(ratio(Decimal::ONE, Decimal::from(3)), Some(Decimal::new(3333, 4)));
    }
}
