//! The AR aging keeps invoices not yet due (未到期) apart from those past due: a bucket of their
//! own, first, and days until due instead of negative days past due.

use cloverleaf_finance::ledger::{NOT_DUE, aging_bucket};
use serde_json::json;

use crate::harness::Env;

#[tokio::test]
async fn invoices_not_yet_due_have_their_own_bucket_and_no_negative_days() {
    let Some(env) = Env::new().await else { return };
    let aging = env.ledger.aging(env.today()).await.unwrap();
    let labels: Vec<&str> = aging.buckets.iter().map(|b| b.label.as_str()).collect();
    assert_eq!(labels, [NOT_DUE, "1-30", "31-60", "61-90", "90+"]);
    for line in &aging.invoices {
        assert!(line.days_past_due >= 0 && line.days_until_due >= 0, "never negative: {line:?}");
        let days = (aging.as_of - line.due_date).num_days();
        assert_eq!((line.days_past_due, line.days_until_due), (days.max(0), (-days).max(0)), "{line:?}");
        assert_eq!(line.bucket, aging_bucket(days), "{line:?}");
        if line.bucket == NOT_DUE {
            assert!(line.due_date >= aging.as_of, "only invoices not past due: {line:?}");
        }
    }
    let not_due: Vec<_> = aging.invoices.iter().filter(|l| l.bucket == NOT_DUE).collect();
    assert!(!not_due.is_empty(), "the demo company has invoices not yet due");
    let sum = not_due.iter().map(|l| l.amount_open).sum();
    assert_eq!(aging.buckets[0].amount, sum);
    assert_eq!(aging.buckets[0].invoices, not_due.len());
    // The not-yet-due money is not overdue, in the KPIs either.
    let kpis = env.ledger.kpis(env.today()).await.unwrap();
    assert_eq!(kpis.aging, aging.buckets);
    let overdue: rust_decimal::Decimal = aging.buckets[1..].iter().map(|b| b.amount).sum();
    assert_eq!(overdue + sum, aging.total);

    // An invoice due on the report's date is not overdue yet; the day after it is 1 day past due.
    let line = not_due[0];
    let on_due = env.ledger.aging(line.due_date).await.unwrap();
    let same = on_due.invoices.iter().find(|l| l.invoice_id == line.invoice_id).unwrap();
    assert_eq!((same.bucket.as_str(), same.days_past_due, same.days_until_due), (NOT_DUE, 0, 0));
    let next = env.ledger.aging(line.due_date.succ_opt().unwrap()).await.unwrap();
    let next = next.invoices.iter().find(|l| l.invoice_id == line.invoice_id).unwrap();
    assert_eq!((next.bucket.as_str(), next.days_past_due, next.days_until_due), ("1-30", 1, 0));

    // The month-end report stores the same shape, and its job outputs each bucket's amount.
    let out = env.call("report.ar_aging", "aging-1", json!({"as_of": "2026-01-05"})).await.unwrap();
    assert_eq!(out["bucket_not_due"], json!(aging.buckets[0].amount));
    assert_eq!(out["bucket_1_30"], json!(aging.buckets[1].amount));
    assert!(out.get("bucket_0_30").is_none(), "{out}");
    let stored = env.ledger.report(out["report_id"].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!(stored["buckets"][0]["label"], NOT_DUE);
    assert!(stored["invoices"].as_array().unwrap().iter().all(|l| l["days_past_due"].as_i64().unwrap() >= 0));
    assert_eq!(stored["total"], json!(aging.total.to_string()));
}
