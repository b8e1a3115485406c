//! The indicator catalogue against a recomputation from the journal: the trial balance sums every
//! journal line by account, a path of its own, and the figures must agree with it to the cent;
//! a breakdown's parts add up to the whole.

use chrono::{NaiveDate, TimeDelta};
use cloverleaf_finance::ledger::kpi::{Breakdown, CATALOGUE, Figure, Unit, Window};
use rust_decimal::Decimal;
use serde_json::json;

use crate::harness::{Env, dec};

fn value(figures: &[Figure], key: &str) -> Option<Decimal> {
    figures.iter().find(|f| f.key == key).unwrap_or_else(|| panic!("no {key}")).value
}

/// The seeded company plus a month of trade: two orders invoiced and costed, a payment matched,
/// an opening invoice written off.
async fn trading() -> Option<Env> {
    let env = Env::new().await?;
    for (order, customer, sku, n, amount) in
        [("SO-1", "C-002", "PUMP-250", "10", "28900.00"), ("SO-2", "C-001", "CTRL-X", "1", "3499.00")]
    {
        env.ledger.record_order(order, customer, env.today(), &[(sku, dec(n))]).await.unwrap();
        let input = json!({"order_id": order, "customer_id": customer, "amount": amount});
        env.call("invoice.issue", &format!("i-{order}"), input).await.unwrap();
        let input = json!({"order_id": order, "customer_id": customer, "shipment_id": "S"});
        env.call("ledger.post_cost", &format!("c-{order}"), input).await.unwrap();
    }
    env.advance(TimeDelta::days(20));
    let invoice = env.ledger.invoice_of_order("SO-1").await.unwrap().unwrap();
    let input = json!({"invoice_id": invoice.invoice_id, "payment_id": "P-1", "received": "10000.00",
        "reference": invoice.invoice_id, "amount_due": invoice.total.to_string(), "tolerance": "0.01"});
    env.call("payment.match", "m1", input).await.unwrap();
    let input = json!({"invoice_id": "INV-OB-0005", "customer_id": "C-007", "amount": "6180.00"});
    env.call("ledger.write_off", "w1", input).await.unwrap();
    Some(env)
}

#[tokio::test]
async fn every_figure_agrees_with_the_journal_to_the_cent() {
    let Some(env) = trading().await else { return };
    let today = env.today();
    // A window from before anything was posted: the flows are the accounts' balances.
    let everything = Window { from: NaiveDate::from_ymd_opt(2000, 1, 1).unwrap(), as_of: today };
    let figures = env.ledger.figures(everything, None).await.unwrap();
    assert_eq!(figures.len(), CATALOGUE.len());
    let tb = env.ledger.trial_balance().await.unwrap();
    let revenue = -tb.balance("4000");
    let cost = tb.balance("5000");
    let write_offs = tb.balance("6800");
    assert_eq!(value(&figures, "open_receivables"), Some(tb.balance("1200")));
    assert_eq!(value(&figures, "revenue"), Some(revenue));
    assert_eq!(value(&figures, "gross_profit"), Some(revenue - cost));
    assert_eq!(value(&figures, "gross_margin"), Some(((revenue - cost) / revenue).round_dp(4)));
    assert_eq!(value(&figures, "bad_debt_rate"), Some((write_offs / revenue).round_dp(4)));
    assert_eq!(value(&figures, "cash_received"), Some(dec("10000.00")));
    assert_eq!(value(&figures, "auto_match_rate"), Some(dec("1")));
    let mut new_invoices = Decimal::ZERO;
    for order in ["SO-1", "SO-2"] {
        new_invoices += env.ledger.invoice_of_order(order).await.unwrap().unwrap().total;
    }
    let opening = dec("175642.85");
    assert_eq!(value(&figures, "invoiced"), Some(opening + new_invoices), "the opening invoices and the two new ones");
    // Overdue: the opening invoices past due, less the one written off; the new ones are not due.
    let aging = env.ledger.aging(today).await.unwrap();
    let overdue: Decimal = aging.invoices.iter().filter(|l| l.days_past_due > 0).map(|l| l.amount_open).sum();
    assert_eq!(value(&figures, "overdue_receivables"), Some(overdue));
    assert!(overdue > Decimal::ZERO && overdue < tb.balance("1200"));
    // The same numbers the older KPI report gives for the same days.
    let kpis = env.ledger.kpis(today).await.unwrap();
    assert_eq!(value(&figures, "days_sales_outstanding"), kpis.days_sales_outstanding);
    assert_eq!(value(&figures, "gross_margin"), kpis.gross_margin);
    assert_eq!(value(&figures, "bad_debt_rate"), kpis.bad_debt_rate);
}

#[tokio::test]
async fn a_breakdowns_parts_add_up_to_the_whole() {
    let Some(env) = trading().await else { return };
    let window = Window::last_90_days(env.today());
    let whole = env.ledger.figures(window, None).await.unwrap();
    for by in [Breakdown::Customer, Breakdown::Day, Breakdown::Week, Breakdown::Month] {
        let split = env.ledger.figures(window, Some(by)).await.unwrap();
        for (definition, figure) in CATALOGUE.iter().zip(&split) {
            assert_eq!(figure.value, value(&whole, definition.key), "{} whole by {by:?}", definition.key);
            let offered = definition.breakdowns.contains(&by);
            assert!(offered || figure.parts.is_empty(), "{} offers no breakdown by {by:?}", definition.key);
            if offered && definition.unit == Unit::Money {
                let sum: Decimal = figure.parts.iter().filter_map(|(_, v)| *v).sum();
                assert_eq!(Some(sum), figure.value, "{} by {by:?}: {:?}", definition.key, figure.parts);
            }
        }
    }
    // By customer: C-002 bought SO-1 for 28,900.00 and paid 10,000.00 of it.
    let by_customer = env.ledger.figures(window, Some(Breakdown::Customer)).await.unwrap();
    let part = |key: &str, customer: &str| {
        by_customer.iter().find(|f| f.key == key).unwrap().parts.iter().find(|(c, _)| c == customer).and_then(|p| p.1)
    };
    assert_eq!(part("revenue", "C-002"), Some(dec("28900.00")));
    assert_eq!(part("cash_received", "C-002"), Some(dec("10000.00")));
    assert_eq!(part("gross_margin", "C-002"), Some(dec("0.3718")), "10,745.00 ÷ 28,900.00");
}
