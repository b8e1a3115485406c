//! The indicator catalogue on a generated company of 10,000 orders (written in bulk by
//! `Ledger::generate_trade`), checked against a recomputation of its own: every money figure,
//! whole and split by customer, sales rep and month, summed here from the journal lines read
//! with plain SQL, and the ratios and days computed from those sums, must agree to the cent.

use std::collections::{BTreeMap, HashMap};

use chrono::{NaiveDate, TimeDelta};
use cloverleaf_finance::ledger::kpi::{Breakdown, CATALOGUE, Figure, NO_SALES_REP, Window};
use rust_decimal::Decimal;
use sqlx::Row;

use crate::harness::{Env, dec};

/// The sums a recomputation needs, per label.
#[derive(Debug, Default, Clone)]
struct Sums {
    revenue: Decimal,
    cost: Decimal,
    write_offs: Decimal,
    invoiced: Decimal,
    received: Decimal,
    open: Decimal,
    overdue: Decimal,
    invoiced_90: Decimal,
    limit: Decimal,
}

fn ratio(n: Decimal, d: Decimal) -> Option<Decimal> {
    (!d.is_zero()).then(|| (n / d).round_dp(4))
}

impl Sums {
    fn value(&self, key: &str) -> Option<Option<Decimal>> {
        Some(match key {
            "revenue" => Some(self.revenue),
            "gross_profit" => Some(self.revenue - self.cost),
            "gross_margin" => ratio(self.revenue - self.cost, self.revenue),
            "bad_debt_rate" => ratio(self.write_offs, self.revenue),
            "invoiced" => Some(self.invoiced),
            "cash_received" => Some(self.received),
            "open_receivables" => Some(self.open),
            "overdue_receivables" => Some(self.overdue),
            "days_sales_outstanding" => ratio(self.open * Decimal::from(90), self.invoiced_90).map(|d| d.round_dp(1)),
            _ => return None,
        })
    }
}

/// Who sold what: order → rep, invoice → order, and each invoice's customer and due date.
struct Documents {
    rep_of_order: HashMap<String, String>,
    order_of_invoice: HashMap<String, String>,
    due: HashMap<String, NaiveDate>,
}

impl Documents {
    fn rep(&self, document: &str) -> String {
        let order = self.order_of_invoice.get(document).map_or(document, String::as_str);
        self.rep_of_order.get(order).cloned().unwrap_or_else(|| NO_SALES_REP.to_string())
    }
}

async fn documents(env: &Env) -> Documents {
    let pool = env.ledger.pool();
    let mut docs = Documents { rep_of_order: HashMap::new(), order_of_invoice: HashMap::new(), due: HashMap::new() };
    for r in sqlx::query("SELECT id, sales_rep FROM orders").fetch_all(pool).await.unwrap() {
        if let Some(rep) = r.get::<Option<String>, _>(1) {
            docs.rep_of_order.insert(r.get(0), rep);
        }
    }
    for r in sqlx::query("SELECT id, order_id, due_date FROM invoices").fetch_all(pool).await.unwrap() {
        let id: String = r.get(0);
        if let Some(order) = r.get::<Option<String>, _>(1) {
            docs.order_of_invoice.insert(id.clone(), order);
        }
        docs.due.insert(id, NaiveDate::parse_from_str(&r.get::<String, _>(2), "%Y-%m-%d").unwrap());
    }
    docs
}

/// The recomputation: (whole, by customer, by sales rep, by month) from the journal lines.
async fn recompute(env: &Env, window: Window) -> [BTreeMap<String, Sums>; 4] {
    let docs = documents(env).await;
    let mut split: [BTreeMap<String, Sums>; 4] = Default::default();
    let mut add = |customer: &str, rep: String, month: Option<String>, f: &dyn Fn(&mut Sums)| {
        f(split[0].entry(String::new()).or_default());
        f(split[1].entry(customer.to_string()).or_default());
        f(split[2].entry(rep).or_default());
        if let Some(month) = month {
            f(split[3].entry(month).or_default());
        }
    };
    let rows = sqlx::query(
        "SELECT l.account, l.customer_id, l.invoice_id, l.debit, l.credit, e.entry_date, e.kind, e.document \
         FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id",
    )
    .fetch_all(env.ledger.pool())
    .await
    .unwrap();
    // Open amounts per invoice as of the window's last day, from the receivable lines.
    let mut open: BTreeMap<String, (String, Decimal)> = BTreeMap::new();
    for r in &rows {
        let account: String = r.get(0);
        let customer: String = r.get::<Option<String>, _>(1).unwrap_or_default();
        let (debit, credit) = (dec(&r.get::<String, _>(3)), dec(&r.get::<String, _>(4)));
        let day = NaiveDate::parse_from_str(&r.get::<String, _>(5), "%Y-%m-%d").unwrap();
        let (kind, document): (String, String) = (r.get(6), r.get::<Option<String>, _>(7).unwrap_or_default());
        if day > window.as_of {
            continue;
        }
        if account == "1200" {
            let invoice: String = r.get::<Option<String>, _>(2).unwrap();
            open.entry(invoice).or_insert((customer.clone(), Decimal::ZERO)).1 += debit - credit;
            if matches!(kind.as_str(), "invoice" | "opening_balance") && day > window.as_of - TimeDelta::days(90) {
                let rep = docs.rep(&document);
                add(&customer, rep, None, &|s| s.invoiced_90 += debit);
            }
        }
        if day < window.from {
            continue;
        }
        let (rep, month) = (docs.rep(&document), Some(day.format("%Y-%m").to_string()));
        match (account.as_str(), kind.as_str()) {
            ("4000", _) => add(&customer, rep, month, &|s| s.revenue += credit - debit),
            ("5000", _) => add(&customer, rep, month, &|s| s.cost += debit - credit),
            ("6800", _) => add(&customer, rep, month, &|s| s.write_offs += debit - credit),
            ("1200", "invoice" | "opening_balance") => add(&customer, rep, month, &|s| s.invoiced += debit),
            ("2300", "payment_received") => add(&customer, rep, month, &|s| s.received += credit),
            _ => {}
        }
    }
    for (invoice, (customer, amount)) in &open {
        let overdue = docs.due[invoice] < window.as_of;
        add(customer, docs.rep(invoice), None, &|s| {
            s.open += *amount;
            if overdue {
                s.overdue += *amount;
            }
        });
    }
    for r in sqlx::query("SELECT id, credit_limit FROM customers").fetch_all(env.ledger.pool()).await.unwrap() {
        let limit = dec(&r.get::<String, _>(1));
        split[0].entry(String::new()).or_default().limit += limit;
        if let Some(part) = split[1].get_mut(&r.get::<String, _>(0)) {
            part.limit += limit;
        }
    }
    split
}

/// Every figure the recomputation covers agrees with it, whole (`by` none) or part by part.
fn assert_agrees(figures: &[Figure], recomputed: &BTreeMap<String, Sums>, by: Option<Breakdown>) {
    let mut checked = 0;
    for (definition, figure) in CATALOGUE.iter().zip(figures) {
        if Sums::default().value(definition.key).is_none() {
            continue; // auto_match_rate counts payment rows, not journal lines
        }
        let expected = |label: &str| recomputed.get(label).and_then(|s| s.value(definition.key)).flatten();
        if by.is_none() {
            assert_eq!(figure.value, expected(""), "{}", definition.key);
            checked += 1;
        }
        for (label, value) in &figure.parts {
            assert_eq!(*value, expected(label), "{} by {by:?}, part {label}", definition.key);
            checked += 1;
        }
    }
    assert!(checked >= 9, "only {checked} values checked");
}

#[tokio::test]
async fn every_figure_agrees_with_the_journal_on_a_generated_company_of_10000_orders() {
    let Some(env) = Env::new().await else { return };
    let until = env.today() + TimeDelta::days(100);
    let made = env.ledger.generate_trade(10_000, until, env.now()).await.unwrap();
    assert_eq!((made.orders, made.invoices), (10_000, 9_000));
    assert!(made.payments > 4_000, "{made:?}");
    let tb = env.ledger.trial_balance().await.unwrap();
    assert!(tb.is_balanced(), "{tb:#?}");
    // Stock booked in bulk as in single postings: Inventory is what the stock is worth.
    let stock: Decimal = env.ledger.stock().await.unwrap().iter().map(|l| l.value).sum();
    assert_eq!(tb.balance("1300"), stock);
    let window = Window::last_90_days(until);
    let [whole, by_customer, by_rep, by_month] = recompute(&env, window).await;
    assert_agrees(&env.ledger.figures(window, None).await.unwrap(), &whole, None);
    assert_agrees(
        &env.ledger.figures(window, Some(Breakdown::Customer)).await.unwrap(),
        &by_customer,
        Some(Breakdown::Customer),
    );
    let reps = env.ledger.figures(window, Some(Breakdown::SalesRep)).await.unwrap();
    assert_agrees(&reps, &by_rep, Some(Breakdown::SalesRep));
    let labels: Vec<&str> =
        reps.iter().find(|f| f.key == "revenue").unwrap().parts.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(labels, [NO_SALES_REP, "max", "mia", "rita", "sam"], "four reps and the orders without one");
    assert_agrees(
        &env.ledger.figures(window, Some(Breakdown::Month)).await.unwrap(),
        &by_month,
        Some(Breakdown::Month),
    );
}
