//! Several processes' handlers on one ledger at once: two (or three) `Ledger` handles on one
//! database stand for nodes, each with its own pools. On PostgreSQL this exercises the ledger's
//! scoped locks and the number series' row (see `locks.rs` for which writes wait for which); on
//! SQLite, two writers on one file.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use cloverleaf_finance::{self as finance, Ledger};
use cloverleaf_testkit::testdb::ScratchDb;
use cloverleaf_worker::HandlerResult;
use serde_json::{Value, json};
use sqlx::Row;

use crate::harness::{context, dec, t0};

/// Calls the built-in handler for `job_type` on `ledger` with idempotency key `key`.
async fn run(ledger: &Ledger, job_type: &str, key: &str, input: Value, now: DateTime<Utc>) -> HandlerResult {
    let handlers = finance::handlers(ledger);
    let handler = handlers.get(job_type).unwrap_or_else(|| panic!("no handler for {job_type}"));
    handler.call(context(job_type, key, input, now)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_nodes_seed_once_number_gaplessly_post_each_job_once_and_never_over_apply() {
    let Some(db) = ScratchDb::new().await else { return };
    let url = db.url();
    let (a, b, c) = tokio::join!(Ledger::connect(&url), Ledger::connect(&url), Ledger::connect(&url));
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());

    // Three nodes starting together seed the demo company once.
    let today = t0().date_naive();
    let seeds = tokio::join!(a.seed_demo_company(today), b.seed_demo_company(today), c.seed_demo_company(today));
    let seeds = [seeds.0.unwrap(), seeds.1.unwrap(), seeds.2.unwrap()];
    assert_eq!(seeds.iter().filter(|s| s.created).count(), 1, "{seeds:?}");
    assert!(seeds.iter().all(|s| s.customers == 30 && s.opening_invoices == 14), "{seeds:?}");

    // Invoices from both nodes at once; every fifth job is delivered to both nodes at once.
    const ORDERS: usize = 60;
    let mut calls = Vec::new();
    for n in 0..ORDERS {
        let input = json!({"order_id": format!("SO-{n}"), "customer_id": "C-001", "amount": "100.00"});
        let key = format!("issue-{n}");
        let nodes: &[&Ledger] = if n % 5 == 0 {
            &[&a, &b]
        } else if n % 2 == 0 {
            &[&a]
        } else {
            &[&b]
        };
        for node in nodes {
            let (node, key, input) = ((*node).clone(), key.clone(), input.clone());
            calls.push(tokio::spawn(async move {
                let out = run(&node, "invoice.issue", &key, input, t0()).await;
                (key, out.unwrap_or_else(|e| panic!("invoice.issue failed: {e:?}")))
            }));
        }
    }
    let mut outputs: Vec<(String, Value)> = Vec::new();
    for call in calls {
        outputs.push(call.await.unwrap());
    }
    // A job delivered twice answers the same both times.
    for (key, out) in &outputs {
        for (other_key, other) in &outputs {
            if key == other_key {
                assert_eq!(out, other, "job {key} answered differently on two nodes");
            }
        }
    }

    let numbers: Vec<String> = sqlx::query("SELECT number FROM invoices WHERE order_id IS NOT NULL")
        .fetch_all(a.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(numbers.len(), ORDERS, "one invoice per order, whichever node ran it and how often");
    let unique: BTreeSet<&String> = numbers.iter().collect();
    let expected: BTreeSet<String> = (1..=ORDERS).map(|n| format!("2026-{n:06}")).collect();
    assert_eq!(unique.into_iter().cloned().collect::<BTreeSet<_>>(), expected, "gapless and unique");
    let posted: i64 = sqlx::query_scalar("SELECT count(*) FROM journal_entries WHERE kind = 'invoice'")
        .fetch_one(a.pool())
        .await
        .unwrap();
    assert_eq!(posted, i64::try_from(ORDERS).unwrap(), "a job run on two nodes posts once");

    // One payment of 150.00 offered to two invoices of 119.00 on two nodes at once: never more
    // than the payment is applied.
    a.record_bank_payment("P-1", Some("C-001"), dec("150.00"), "INV-2026-000001 INV-2026-000002", today, t0())
        .await
        .unwrap();
    let receipt = |invoice: &str| json!({"invoice_id": invoice, "payment_id": "P-1", "received": "120.00", "amount_due": "120.00"});
    let (first, second) = tokio::join!(
        run(&a, "receipt.post", "receipt-1", receipt("INV-2026-000001"), t0()),
        run(&b, "receipt.post", "receipt-2", receipt("INV-2026-000002"), t0()),
    );
    let applied = dec(first.unwrap()["applied"].as_str().unwrap()) + dec(second.unwrap()["applied"].as_str().unwrap());
    assert_eq!(applied, dec("150.00"), "the payment is applied in full and no further");
    let allocated: Vec<String> = sqlx::query("SELECT amount FROM payment_allocations WHERE payment_id = 'P-1'")
        .fetch_all(b.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(allocated.iter().map(|a| dec(a)).sum::<rust_decimal::Decimal>(), dec("150.00"));

    let tb = c.trial_balance().await.unwrap();
    assert!(tb.is_balanced(), "{tb:#?}");
    assert!(tb.difference().is_zero());
    for ledger in [a, b, c] {
        ledger.close().await;
    }
}
