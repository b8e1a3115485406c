//! Each built-in handler on the seeded company's real rows, called directly with a job context.

use chrono::Datelike as _;
use cloverleaf_worker::HandlerError;
use serde_json::{Value, json};

use crate::harness::{Env, date, dec};

fn business(result: Result<Value, HandlerError>) -> String {
    match result {
        Err(HandlerError::Business { code, .. }) => code,
        other => panic!("expected a business error, got {other:?}"),
    }
}

/// Issues an invoice for an unrecorded order; returns (invoice_id, total).
async fn invoice(env: &Env, order: &str, customer: &str, amount: &str) -> (String, String) {
    let out = env
        .call(
            "invoice.issue",
            &format!("issue-{order}"),
            json!({"order_id": order, "customer_id": customer, "amount": amount}),
        )
        .await
        .unwrap();
    (out["invoice_id"].as_str().unwrap().to_string(), out["total"].as_str().unwrap().to_string())
}

async fn matched(
    env: &Env,
    key: &str,
    invoice: &str,
    payment: &str,
    received: &str,
    due: &str,
    reference: &str,
) -> Value {
    env.call(
        "payment.match",
        key,
        json!({"invoice_id": invoice, "payment_id": payment, "received": received, "reference": reference,
               "amount_due": due, "tolerance": "0.01"}),
    )
    .await
    .unwrap()
}

async fn receipt(env: &Env, key: &str, invoice: &str, payment: &str, received: &str, due: &str) -> Value {
    env.call(
        "receipt.post",
        key,
        json!({"invoice_id": invoice, "payment_id": payment, "received": received, "amount_due": due}),
    )
    .await
    .unwrap()
}

/// An idempotency key is the job's, whatever it holds: quotes, backslashes and non-ASCII text
/// find the first run's output as any other key does.
#[tokio::test]
async fn a_key_with_quotes_and_backslashes_replays_its_first_output() {
    let Some(env) = Env::new().await else { return };
    let key = r"o'brien\\n; DROP TABLE invoices; --\'订单";
    let first = env.call("credit.check", key, json!({"customer_id": "C-001", "amount": "1000.00"})).await.unwrap();
    invoice(&env, "SO-1", "C-001", "1000.00").await;
    let replay = env.call("credit.check", key, json!({"customer_id": "C-001", "amount": "1000.00"})).await.unwrap();
    assert_eq!(replay, first, "the open receivables the first run saw");
    let fresh = env.call("credit.check", "k2", json!({"customer_id": "C-001", "amount": "1000.00"})).await.unwrap();
    assert_ne!(fresh["open_ar"], first["open_ar"], "a new key sees the new invoice");
}

#[tokio::test]
async fn credit_check_reads_the_customer_and_its_open_receivables() {
    let Some(env) = Env::new().await else { return };
    let out = env.call("credit.check", "k1", json!({"customer_id": "C-001", "amount": "1000.00"})).await.unwrap();
    assert_eq!(out["credit_limit"], "50000.00");
    assert_eq!(out["open_ar"], "4760.00", "the opening invoice of C-001");
    assert_eq!(out["risk"], "A");
    // A new invoice raises the open receivables the next check sees.
    invoice(&env, "SO-1", "C-001", "1000.00").await;
    let now = env.call("credit.check", "k2", json!({"customer_id": "C-001", "amount": "1.00"})).await.unwrap();
    assert_eq!(now["open_ar"], "5950.00");
    // A redelivered job sees the position its first run decided on.
    let replay = env.call("credit.check", "k1", json!({"customer_id": "C-001", "amount": "1000.00"})).await.unwrap();
    assert_eq!(replay, out);
    let blocked = env.call("credit.check", "k3", json!({"customer_id": "C-013", "amount": "1.00"})).await;
    assert_eq!(business(blocked), "customer_blocked");
    let unknown = env.call("credit.check", "k4", json!({"customer_id": "C-999", "amount": "1.00"})).await;
    assert_eq!(business(unknown), "customer_unknown");
    let bad = env.call("credit.check", "k5", json!({"customer_id": "C-001", "amount": "lots"})).await;
    assert_eq!(business(bad), "invalid_input");
}

#[tokio::test]
async fn tax_is_rounded_half_up_to_the_cent_on_the_net_total() {
    let Some(env) = Env::new().await else { return };
    // Denmark, 25 %: 10.50 × 0.25 = 2.625 → 2.63 (banker's rounding would give 2.62).
    let out = env
        .call("invoice.issue", "k1", json!({"order_id": "SO-1", "customer_id": "C-027", "amount": "10.50"}))
        .await
        .unwrap();
    assert_eq!(
        out,
        json!({"invoice_id": "INV-2026-000001", "invoice_number": "2026-000001", "net": "10.50", "tax": "2.63",
               "total": "13.13", "issue_date": "2026-01-05", "due_date": "2026-02-04"})
    );
    // 0.50 × 0.25 = 0.125 → 0.13.
    let out = env
        .call("invoice.issue", "k2", json!({"order_id": "SO-2", "customer_id": "C-027", "amount": "0.50"}))
        .await
        .unwrap();
    assert_eq!((out["tax"].as_str(), out["total"].as_str()), (Some("0.13"), Some("0.63")));
    // Germany, 19 %: 1234.56 × 0.19 = 234.5664 → 234.57; terms 30 days.
    let out = env
        .call("invoice.issue", "k3", json!({"order_id": "SO-3", "customer_id": "C-001", "amount": "1234.56"}))
        .await
        .unwrap();
    assert_eq!((out["tax"].as_str(), out["total"].as_str()), (Some("234.57"), Some("1469.13")));
    // Export, no VAT: the entry has no tax line and still balances.
    let out = env
        .call("invoice.issue", "k4", json!({"order_id": "SO-4", "customer_id": "C-002", "amount": "999.99"}))
        .await
        .unwrap();
    assert_eq!((out["tax"].as_str(), out["due_date"].as_str()), (Some("0.00"), Some("2026-02-19")));
    env.assert_balanced().await;
}

#[tokio::test]
async fn invoice_numbers_have_no_gaps_when_an_invoice_is_refused() {
    let Some(env) = Env::new().await else { return };
    let (first, _) = invoice(&env, "SO-1", "C-001", "100.00").await;
    let unknown = env
        .call("invoice.issue", "bad-1", json!({"order_id": "SO-2", "customer_id": "C-999", "amount": "100.00"}))
        .await;
    assert_eq!(business(unknown), "invoice_data");
    let zero =
        env.call("invoice.issue", "bad-2", json!({"order_id": "SO-3", "customer_id": "C-001", "amount": "0"})).await;
    assert_eq!(business(zero), "invoice_data");
    let fraction = env
        .call("invoice.issue", "bad-3", json!({"order_id": "SO-4", "customer_id": "C-001", "amount": "1.005"}))
        .await;
    assert_eq!(business(fraction), "invoice_data");
    // A recorded order whose lines do not add up to the amount asked for.
    let net = env.ledger.record_order("SO-5", "C-001", env.today(), &[("PUMP-100", dec("2"))]).await.unwrap();
    assert_eq!(net, dec("2500.00"));
    let mismatch = env
        .call("invoice.issue", "bad-4", json!({"order_id": "SO-5", "customer_id": "C-001", "amount": "2400.00"}))
        .await;
    assert_eq!(business(mismatch), "invoice_data");
    let (second, _) = invoice(&env, "SO-6", "C-001", "100.00").await;
    assert_eq!((first.as_str(), second.as_str()), ("INV-2026-000001", "INV-2026-000002"));
}

#[tokio::test]
async fn an_invoice_is_issued_once_per_key_and_once_per_order() {
    let Some(env) = Env::new().await else { return };
    let net = env
        .ledger
        .record_order("SO-1", "C-001", env.today(), &[("PUMP-100", dec("2")), ("VALVE-12", dec("4"))])
        .await
        .unwrap();
    assert_eq!(net, dec("3259.60"));
    let input = json!({"order_id": "SO-1", "customer_id": "C-001", "amount": "3259.60"});
    let first = env.call("invoice.issue", "k1", input.clone()).await.unwrap();
    let again = env.call("invoice.issue", "k1", input.clone()).await.unwrap();
    let other_key = env.call("invoice.issue", "k2", input).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(first, other_key);
    assert_eq!(first["tax"], "619.32", "3259.60 × 0.19 = 619.324");
    assert_eq!(env.entries("invoice").await, 1);
    let lines: i64 =
        sqlx::query_scalar("SELECT count(*) FROM invoice_lines").fetch_one(env.ledger.pool()).await.unwrap();
    assert_eq!(lines, 2);
}

#[tokio::test]
async fn cost_of_goods_comes_from_the_order_lines_and_is_posted_once() {
    let Some(env) = Env::new().await else { return };
    env.ledger
        .record_order("SO-1", "C-001", env.today(), &[("PUMP-100", dec("2")), ("VALVE-12", dec("4"))])
        .await
        .unwrap();
    let input = json!({"order_id": "SO-1", "customer_id": "C-001", "shipment_id": "SH-1"});
    let out = env.call("ledger.post_cost", "k1", input.clone()).await.unwrap();
    assert_eq!(out, json!({"cost_of_goods": "1945.60"}));
    assert_eq!(env.call("ledger.post_cost", "k2", input).await.unwrap(), out);
    assert_eq!(env.entries("cost_of_goods").await, 1);
    // An order nobody recorded yet: a failure the engine retries (invoicing may record it).
    let unknown = env
        .call("ledger.post_cost", "k3", json!({"order_id": "SO-X", "customer_id": "C-001", "shipment_id": "S"}))
        .await;
    assert!(matches!(unknown, Err(HandlerError::Failure(_))), "{unknown:?}");
    // Unrecorded orders are costed at the standard rate when invoiced.
    invoice(&env, "SO-2", "C-001", "1000.00").await;
    let out = env
        .call("ledger.post_cost", "k4", json!({"order_id": "SO-2", "customer_id": "C-001", "shipment_id": "SH-2"}))
        .await
        .unwrap();
    assert_eq!(out["cost_of_goods"], "620.00");
    env.assert_balanced().await;
}

#[tokio::test]
async fn costing_that_runs_before_invoicing_records_the_order_and_the_invoice_agrees() {
    let Some(env) = Env::new().await else { return };
    // The parallel branch of ship-then-invoice: the cost job wins the race with the invoice job.
    let cost = env
        .call(
            "ledger.post_cost",
            "c1",
            json!({"order_id": "SO-7", "customer_id": "C-001", "shipment_id": "SH-7", "amount": "1000.00"}),
        )
        .await
        .unwrap();
    assert_eq!(cost, json!({"cost_of_goods": "620.00"}), "the standard cost rate, as invoicing would record it");
    let (_, total) = invoice(&env, "SO-7", "C-001", "1000.00").await;
    assert!(!total.is_empty());
    assert_eq!(env.entries("cost_of_goods").await, 1);
    assert_eq!(env.entries("invoice").await, 1);
    // An invoice for another amount than the order costing recorded is refused as bad data.
    env.call(
        "ledger.post_cost",
        "c2",
        json!({"order_id": "SO-8", "customer_id": "C-001", "shipment_id": "SH-8", "amount": "500.00"}),
    )
    .await
    .unwrap();
    let differing =
        env.call("invoice.issue", "i8", json!({"order_id": "SO-8", "customer_id": "C-001", "amount": "600.00"})).await;
    assert!(
        matches!(differing, Err(HandlerError::Business { ref code, .. }) if code == "invoice_data"),
        "{differing:?}"
    );
    // A bad amount is refused before anything is recorded.
    let negative = env
        .call(
            "ledger.post_cost",
            "c3",
            json!({"order_id": "SO-9", "customer_id": "C-001", "shipment_id": "S", "amount": "-5.00"}),
        )
        .await;
    assert!(negative.is_err(), "{negative:?}");
    env.assert_balanced().await;
}

#[tokio::test]
async fn a_payment_one_cent_short_is_exact_within_tolerance_and_the_cent_is_booked() {
    let Some(env) = Env::new().await else { return };
    let (inv, total) = invoice(&env, "SO-1", "C-002", "1000.00").await;
    assert_eq!(total, "1000.00");
    let out = matched(&env, "m1", &inv, "P-1", "999.99", "1000.00", &format!("Payment {inv} thanks")).await;
    assert_eq!(out["result"], "exact");
    let out = receipt(&env, "r1", &inv, "P-1", "999.99", "1000.00").await;
    assert_eq!(out, json!({"applied": "999.99", "difference": "0.01", "amount_open": "0.00", "status": "paid"}));
    assert_eq!(env.ledger.invoice_open(&inv).await.unwrap(), (dec("0.00"), "paid".to_string()));
    let tb = env.ledger.trial_balance().await.unwrap();
    assert_eq!(tb.balance("6900"), dec("0.01"));
    assert_eq!(tb.balance("2300"), dec("0.00"), "nothing left unapplied");
    assert!(tb.is_balanced());
}

#[tokio::test]
async fn a_partial_payment_is_applied_at_once_and_the_rest_settles_later() {
    let Some(env) = Env::new().await else { return };
    let (inv, _) = invoice(&env, "SO-1", "C-002", "1000.00").await;
    let out = matched(&env, "m1", &inv, "P-1", "400.00", "1000.00", &inv).await;
    assert_eq!((out["result"].as_str(), out["amount_open"].as_str()), (Some("partial"), Some("600.00")));
    // Run twice (the worker died after posting): applied once.
    let again = matched(&env, "m1", &inv, "P-1", "400.00", "1000.00", &inv).await;
    assert_eq!(again, out);
    assert_eq!(env.entries("receipt").await, 1);
    let out = matched(&env, "m2", &inv, "P-2", "600.00", "600.00", &inv.to_lowercase()).await;
    assert_eq!(out["result"], "exact");
    receipt(&env, "r2", &inv, "P-2", "600.00", "600.00").await;
    assert_eq!(env.ledger.invoice_open(&inv).await.unwrap().1, "paid");
    env.assert_balanced().await;
}

#[tokio::test]
async fn an_over_payment_waits_for_finance_and_the_excess_is_refunded() {
    let Some(env) = Env::new().await else { return };
    let (inv, _) = invoice(&env, "SO-1", "C-002", "1000.00").await;
    let out = matched(&env, "m1", &inv, "P-1", "1100.00", "1000.00", &inv).await;
    assert_eq!((out["result"].as_str(), out["difference"].as_str()), (Some("overpayment"), Some("100.00")));
    let refund = env
        .call("payment.refund", "f1", json!({"payment_id": "P-1", "customer_id": "C-002", "amount": "100.00"}))
        .await
        .unwrap();
    assert_eq!(refund, json!({"refunded": "100.00"}));
    // More than is left unapplied is refused.
    let too_much = env
        .call("payment.refund", "f2", json!({"payment_id": "P-1", "customer_id": "C-002", "amount": "1000.01"}))
        .await;
    assert_eq!(business(too_much), "invalid_amount");
    let out = receipt(&env, "r1", &inv, "P-1", "1100.00", "1000.00").await;
    assert_eq!((out["applied"].as_str(), out["status"].as_str()), (Some("1000.00"), Some("paid")));
    let tb = env.ledger.trial_balance().await.unwrap();
    assert_eq!(tb.balance("1000"), dec("1000.00"), "1100 in, 100 back out");
    assert_eq!(tb.balance("2300"), dec("0.00"));
    assert!(tb.is_balanced());
}

#[tokio::test]
async fn a_payment_with_another_reference_is_a_mismatch_and_can_be_returned() {
    let Some(env) = Env::new().await else { return };
    let (inv, _) = invoice(&env, "SO-1", "C-002", "1000.00").await;
    let out = matched(&env, "m1", &inv, "P-1", "1000.00", "1000.00", "INV-2026-000999").await;
    assert_eq!(out["result"], "mismatch");
    assert!(out["reason"].as_str().unwrap().contains("does not name"));
    assert_eq!(env.ledger.invoice_open(&inv).await.unwrap().0, dec("1000.00"), "nothing applied");
    // Finance says it belongs here: matched again with the invoice as reference.
    let out = matched(&env, "m2", &inv, "P-1", "1000.00", "1000.00", &inv).await;
    assert_eq!(out["result"], "exact");
    // Another payment that belongs nowhere goes back.
    matched(&env, "m3", &inv, "P-2", "50.00", "1000.00", "no idea").await;
    let out = env.call("payment.return", "x1", json!({"payment_id": "P-2", "customer_id": "C-002"})).await.unwrap();
    assert_eq!(out, json!({"returned": "50.00"}));
    let tb = env.ledger.trial_balance().await.unwrap();
    assert_eq!(tb.balance("1000"), dec("1000.00"));
    assert!(tb.is_balanced());
    let automatic: Vec<(String, Option<i64>)> =
        sqlx::query_as("SELECT id, matched_automatically FROM payments ORDER BY id")
            .fetch_all(env.ledger.pool())
            .await
            .unwrap();
    assert_eq!(automatic, vec![("P-1".to_string(), Some(0)), ("P-2".to_string(), Some(0))]);
}

#[tokio::test]
async fn one_payment_split_across_two_invoices_settles_both() {
    let Some(env) = Env::new().await else { return };
    let (first, _) = invoice(&env, "SO-1", "C-002", "700.00").await;
    let (second, _) = invoice(&env, "SO-2", "C-002", "300.00").await;
    let reference = "Invoices 2026-000001 and 2026-000002";
    env.ledger
        .record_bank_payment("P-9", Some("C-002"), dec("1000.00"), reference, env.today(), env.now())
        .await
        .unwrap();
    let split = env.ledger.split_payment("P-9").await.unwrap();
    assert_eq!(split, vec![(first.clone(), dec("700.00")), (second.clone(), dec("300.00"))]);
    for (n, (inv, amount)) in split.iter().enumerate() {
        let amount = amount.to_string();
        let out = matched(&env, &format!("m{n}"), inv, "P-9", &amount, &amount, reference).await;
        assert_eq!(out["result"], "exact");
        receipt(&env, &format!("r{n}"), inv, "P-9", &amount, &amount).await;
    }
    assert_eq!(env.ledger.invoice_open(&first).await.unwrap().1, "paid");
    assert_eq!(env.ledger.invoice_open(&second).await.unwrap().1, "paid");
    // The payment is used up: more against it is a mismatch.
    let out = matched(&env, "m9", &second, "P-9", "1.00", "1.00", reference).await;
    assert_eq!(out["result"], "mismatch");
    let status: String =
        sqlx::query_scalar("SELECT status FROM payments WHERE id = 'P-9'").fetch_one(env.ledger.pool()).await.unwrap();
    assert_eq!(status, "applied");
    env.assert_balanced().await;
}

#[tokio::test]
async fn dunning_letters_and_notifications_go_to_the_outbox() {
    let Some(env) = Env::new().await else { return };
    // INV-OB-0003: C-004, issued 75 days ago on 30-day terms.
    let out = env
        .call("dunning.send", "d1", json!({"invoice_id": "INV-OB-0003", "customer_id": "C-004", "level": "1"}))
        .await
        .unwrap();
    assert_eq!((out["sent"].as_bool(), out["days_overdue"].as_i64()), (Some(true), Some(45)));
    assert_eq!(out["amount_open"], "9317.50");
    let again = env
        .call("dunning.send", "d1", json!({"invoice_id": "INV-OB-0003", "customer_id": "C-004", "level": "1"}))
        .await
        .unwrap();
    assert_eq!(again, out);
    let (inv, _) = invoice(&env, "SO-1", "C-001", "100.00").await;
    let out = env
        .call("outbox.notify", "n1", json!({"customer_id": "C-001", "invoice_id": inv, "template": "invoice_issued"}))
        .await
        .unwrap();
    assert!(out["outbox_id"].as_i64().is_some());
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT kind, invoice_id, subject FROM outbox ORDER BY id")
            .fetch_all(env.ledger.pool())
            .await
            .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].0, "dunning_letter");
    assert_eq!(rows[1], ("notification".into(), inv, "Invoice 2026-000001".into()));
    let level: i64 = sqlx::query_scalar("SELECT dunning_level FROM invoices WHERE id = 'INV-OB-0003'")
        .fetch_one(env.ledger.pool())
        .await
        .unwrap();
    assert_eq!(level, 1);
}

#[tokio::test]
async fn aging_buckets_the_opening_receivables_not_yet_due_and_by_days_past_due() {
    let Some(env) = Env::new().await else { return };
    let aging = env.ledger.aging(env.today()).await.unwrap();
    let buckets: Vec<(String, String, usize)> =
        aging.buckets.iter().map(|b| (b.label.clone(), b.amount.to_string(), b.invoices)).collect();
    assert_eq!(
        buckets,
        vec![
            ("not_due".into(), "132846.90".into(), 6),
            ("1-30".into(), "5227.45".into(), 1),
            ("31-60".into(), "26033.50".into(), 4),
            ("61-90".into(), "6180.00".into(), 1),
            ("90+".into(), "5355.00".into(), 2),
        ]
    );
    assert_eq!(aging.total, dec("175642.85"));
    // Thirty days later everything has aged a bucket or more.
    let later = env.ledger.aging(date("2026-02-04")).await.unwrap();
    assert_eq!(later.total, aging.total);
    assert_eq!(later.buckets[4].amount, dec("11535.00"), "61-90 and the two 90+ move to 90+");
    // Before the oldest invoices were issued, they are not in the aging.
    let early = env.ledger.aging(date("2025-08-15")).await.unwrap();
    assert_eq!(early.total, dec("2975.00"), "only OB-0009, issued 2025-08-08");
    let out = env.call("report.ar_aging", "a1", json!({"as_of": "2026-01-05"})).await.unwrap();
    assert_eq!(out["total"], "175642.85");
    let id = out["report_id"].as_str().unwrap();
    let stored = env.ledger.report(id).await.unwrap().unwrap();
    assert_eq!(stored["total"], "175642.85");
}

#[tokio::test]
async fn gross_profit_by_customer_comes_from_the_ledger() {
    let Some(env) = Env::new().await else { return };
    env.ledger.record_order("SO-1", "C-001", env.today(), &[("PUMP-100", dec("2"))]).await.unwrap();
    env.ledger.record_order("SO-2", "C-002", env.today(), &[("CTRL-X", dec("1"))]).await.unwrap();
    invoice(&env, "SO-1", "C-001", "2500.00").await;
    invoice(&env, "SO-2", "C-002", "3499.00").await;
    for (order, customer) in [("SO-1", "C-001"), ("SO-2", "C-002")] {
        env.call(
            "ledger.post_cost",
            &format!("c-{order}"),
            json!({"order_id": order, "customer_id": customer, "shipment_id": "S"}),
        )
        .await
        .unwrap();
    }
    let out = env.call("report.gross_profit", "g1", json!({"as_of": "2026-01-31"})).await.unwrap();
    assert_eq!(out["revenue"], "5999.00");
    assert_eq!(out["cost_of_goods"], "3870.00");
    assert_eq!(out["gross_profit"], "2129.00");
    let report = env.ledger.gross_profit(date("2026-01-01"), date("2026-01-31")).await.unwrap();
    let by: Vec<(String, String)> =
        report.customers.iter().map(|c| (c.customer_id.clone(), c.gross_profit.to_string())).collect();
    assert_eq!(by, vec![("C-001".into(), "940.00".into()), ("C-002".into(), "1189.00".into())]);

    // The orders behind those lines, which add up to them.
    let orders = env.ledger.gross_profit_by_order(date("2026-01-01"), date("2026-01-31")).await.unwrap();
    let by_order: Vec<(&str, &str, String, String)> = orders
        .iter()
        .map(|o| (o.order_id.as_str(), o.customer_id.as_str(), o.revenue.to_string(), o.gross_profit.to_string()))
        .collect();
    assert_eq!(
        by_order,
        [("SO-2", "C-002", "3499.00".into(), "1189.00".into()), ("SO-1", "C-001", "2500.00".into(), "940.00".into())]
    );
    for customer in &report.customers {
        let sum: rust_decimal::Decimal =
            orders.iter().filter(|o| o.customer_id == customer.customer_id).map(|o| o.gross_profit).sum();
        assert_eq!(sum, customer.gross_profit, "{}", customer.customer_id);
    }
}

#[tokio::test]
async fn invoiced_and_received_by_week_list_every_week_and_match_the_documents() {
    let Some(env) = Env::new().await else { return };
    let today = env.today();
    env.ledger.record_order("SO-1", "C-001", today, &[("PUMP-100", dec("2"))]).await.unwrap();
    let (invoice_id, total) = invoice(&env, "SO-1", "C-001", "2500.00").await;
    env.ledger
        .record_bank_payment("BANK-1", Some("C-001"), dec("1000.00"), &invoice_id, today, env.now())
        .await
        .unwrap();
    let from = today - chrono::TimeDelta::days(27);
    let weeks = env.ledger.weekly_flow(from, today).await.unwrap();
    assert!(weeks.len() >= 4 && weeks.len() <= 5, "four weeks and the one holding `from`: {weeks:?}");
    assert!(weeks.windows(2).all(|w| w[1].week_start - w[0].week_start == chrono::TimeDelta::days(7)), "{weeks:?}");
    assert!(weeks.iter().all(|w| w.week_start.weekday() == chrono::Weekday::Mon), "{weeks:?}");
    let last = weeks.last().unwrap();
    assert!(last.week_start <= today && today - last.week_start < chrono::TimeDelta::days(7));
    // This week holds the new invoice and the payment, besides whatever the seed dated in it.
    let opening = env.ledger.weekly_flow(today, today).await.unwrap();
    assert_eq!(opening.len(), 1);
    let invoiced: rust_decimal::Decimal = weeks.iter().map(|w| w.invoiced).sum();
    let received: rust_decimal::Decimal = weeks.iter().map(|w| w.received).sum();
    assert!(invoiced >= dec(&total), "{invoiced} includes the invoice of {total}");
    assert!(received >= dec("1000.00"), "{received} includes the payment");
    assert_eq!(opening[0].invoiced, last.invoiced);
    assert_eq!(opening[0].received, last.received);
}

#[tokio::test]
async fn a_closed_period_refuses_later_postings_into_it() {
    let Some(env) = Env::new().await else { return };
    let out = env.call("ledger.close_period", "p1", json!({"as_of": "2026-01-31"})).await.unwrap();
    assert_eq!(out["period"], "2026-01");
    assert!(env.ledger.is_closed("2026-01").await.unwrap());
    let refused =
        env.call("invoice.issue", "k1", json!({"order_id": "SO-1", "customer_id": "C-001", "amount": "100.00"})).await;
    assert_eq!(business(refused), "period_closed");
    // Refused whole: the number is not used up.
    env.advance(chrono::TimeDelta::days(27));
    let (inv, _) = invoice(&env, "SO-1", "C-001", "100.00").await;
    assert_eq!(inv, "INV-2026-000001");
    env.assert_balanced().await;
}

#[tokio::test]
async fn write_offs_and_the_kpis() {
    let Some(env) = Env::new().await else { return };
    // INV-OB-0005: C-007, 6180.00, 80 days past due.
    let out = env
        .call(
            "ledger.write_off",
            "w1",
            json!({"invoice_id": "INV-OB-0005", "customer_id": "C-007", "amount": "6180.00"}),
        )
        .await
        .unwrap();
    assert_eq!(out, json!({"written_off": "6180.00", "amount_open": "0.00"}));
    assert_eq!(env.ledger.invoice_open("INV-OB-0005").await.unwrap().1, "written_off");
    let wrong = env
        .call("ledger.write_off", "w2", json!({"invoice_id": "INV-OB-0005", "customer_id": "C-001", "amount": "1"}))
        .await;
    assert_eq!(business(wrong), "invalid_input");
    env.ledger.record_order("SO-1", "C-002", env.today(), &[("PUMP-250", dec("10"))]).await.unwrap();
    let (inv, _) = invoice(&env, "SO-1", "C-002", "28900.00").await;
    env.call("ledger.post_cost", "c1", json!({"order_id": "SO-1", "customer_id": "C-002", "shipment_id": "S"}))
        .await
        .unwrap();
    matched(&env, "m1", &inv, "P-1", "10000.00", "28900.00", &inv).await;
    let kpis = env.ledger.kpis(env.today()).await.unwrap();
    assert_eq!(kpis.revenue, dec("28900.00"));
    assert_eq!(kpis.cost_of_goods, dec("18155.00"));
    assert_eq!(kpis.write_offs, dec("6180.00"));
    assert_eq!(kpis.bad_debt_rate, Some(dec("0.2138")), "6180 / 28900");
    assert_eq!(kpis.gross_margin, Some(dec("0.3718")), "10745 / 28900");
    assert_eq!(kpis.open_receivables, dec("188362.85"), "175642.85 - 6180 + 28900 - 10000");
    assert_eq!((kpis.payments_matched, kpis.payments_matched_automatically), (1, 1));
    assert_eq!(kpis.auto_match_rate, Some(dec("1")));
    assert!(kpis.days_sales_outstanding.is_some());
    let json = serde_json::to_value(&kpis).unwrap();
    assert_eq!(json["open_receivables"], "188362.85", "decimals travel as strings");
    env.assert_balanced().await;
}

#[tokio::test]
async fn seeding_twice_changes_nothing() {
    let Some(env) = Env::new().await else { return };
    // Also through a ledger with pools of its own on the same database.
    let own = cloverleaf_finance::Ledger::connect(&env.db.url()).await.unwrap();
    let again = own.seed_demo_company(env.today()).await.unwrap();
    assert!(!again.created);
    assert_eq!((again.customers, again.opening_invoices), (30, 14));
    let tb = env.ledger.trial_balance().await.unwrap();
    assert_eq!(tb.balance("1200"), dec("175642.85"));
    assert!(tb.is_balanced());
}
