//! The reference processes end to end with the built-in handlers, on the seeded company and the
//! virtual clock: timers fire after the clock moves, people complete their tasks through the
//! engine.

use chrono::TimeDelta;
use cloverleaf_engine::runtime::Message;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::Row;

use crate::harness::{Env, completed, date, dec, options};

fn message(name: &str, key: &str, payload: Value) -> Message {
    Message { name: name.into(), correlation_key: key.into(), payload, message_id: None, ttl: TimeDelta::days(30) }
}

/// Open invoices as the invoices table has them.
async fn open_invoices(env: &Env) -> Decimal {
    let rows = sqlx::query("SELECT amount_open FROM invoices WHERE status = 'open'")
        .fetch_all(env.ledger.pool())
        .await
        .unwrap();
    rows.iter().map(|r| dec(r.get::<String, _>(0).as_str())).sum()
}

async fn assert_books(env: &Env) {
    let tb = env.ledger.trial_balance().await.unwrap();
    assert!(tb.is_balanced(), "{tb:#?}");
    assert!(tb.difference().is_zero());
    let aging = env.ledger.aging(env.today()).await.unwrap();
    assert_eq!(aging.total, open_invoices(env).await, "the aging matches the open invoices");
    assert_eq!(aging.total, tb.balance("1200"), "the aging matches the receivables account");
}

#[tokio::test]
async fn order_to_cash_runs_end_to_end_and_leaves_balanced_books() {
    let Some(env) = Env::new().await else { return };
    let lines = [("PUMP-100", dec("2")), ("VALVE-12", dec("4"))];
    let amount = env.ledger.record_order("SO-100", "C-001", env.today(), &lines).await.unwrap();
    assert_eq!(amount, dec("3259.60"));
    let worker = env.worker(Default::default(), options());
    let id = env
        .engine
        .start(
            "order_to_cash",
            Some("SO-100"),
            json!({"order_id": "SO-100", "customer_id": "C-001", "amount": amount.to_string(), "requested_by": "rita"}),
        )
        .await
        .unwrap();
    // Small, A-rated, within the limit: approved by the credit check alone.
    worker.until(|s| s.completed >= 1).await;
    env.engine
        .correlate(message("shipment.dispatched", "SO-100", json!({"shipment_id": "SH-1", "carrier": "DHL"})))
        .await
        .unwrap();
    // Invoice and cost of goods in parallel, then the notification.
    worker.until(|s| s.completed >= 4).await;
    let invoice = env.ledger.invoice_of_order("SO-100").await.unwrap().expect("invoiced");
    assert_eq!((invoice.tax, invoice.total), (dec("619.32"), dec("3878.92")));
    assert_eq!(invoice.due_date, date("2026-02-04"));
    assert_books(&env).await;

    // A week past due: the first reminder.
    env.clock.advance_to(date("2026-02-12").and_hms_opt(9, 0, 0).unwrap().and_utc());
    assert!(env.engine.fire_due_timers().await.unwrap() >= 1);
    worker.until(|s| s.completed >= 5).await;
    let letters: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE kind = 'dunning_letter'")
        .fetch_one(env.ledger.pool())
        .await
        .unwrap();
    assert_eq!(letters, 1);

    // A partial payment, applied at once; the wait starts again.
    let partial = json!({"amount": "1000.00", "reference": invoice.invoice_id, "payment_id": "P-1"});
    env.engine.correlate(message("payment.received", &invoice.invoice_id, partial)).await.unwrap();
    worker.until(|s| s.completed >= 6).await;
    assert_eq!(env.ledger.invoice_open(&invoice.invoice_id).await.unwrap().0, dec("2878.92"));
    assert_books(&env).await;
    // The reminder is not sent twice when the wait starts again.
    env.engine.fire_due_timers().await.unwrap();

    // The rest, one cent short: exact within tolerance, the receipt settles the invoice.
    let rest =
        json!({"amount": "2878.91", "reference": format!("inv {}", invoice.invoice_number), "payment_id": "P-2"});
    env.engine.correlate(message("payment.received", &invoice.invoice_id, rest)).await.unwrap();
    worker.until_status(&env, &id, &completed("cash_collected")).await;
    assert_eq!(env.ledger.invoice_open(&invoice.invoice_id).await.unwrap(), (dec("0.00"), "paid".to_string()));
    assert_books(&env).await;
    let tb = env.ledger.trial_balance().await.unwrap();
    assert_eq!(tb.balance("6900"), dec("0.01"));
    assert_eq!(tb.balance("1000"), dec("3878.91"));
    assert_eq!(tb.balance("4000"), dec("-3259.60"));
    assert_eq!(tb.balance("5000"), dec("1945.60"));
    let letters: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE kind = 'dunning_letter'")
        .fetch_one(env.ledger.pool())
        .await
        .unwrap();
    assert_eq!(letters, 1, "one reminder");
    let kpis = env.ledger.kpis(env.today()).await.unwrap();
    assert_eq!((kpis.payments_matched, kpis.payments_matched_automatically), (2, 2));
    assert_eq!(kpis.gross_margin, Some(dec("0.4031")), "(3259.60 - 1945.60) / 3259.60");
    let stats = worker.stop().await;
    assert_eq!((stats.failed, stats.business_errors, stats.lost_locks), (0, 0, 0));
}

#[tokio::test]
async fn a_large_risky_order_goes_to_people_and_an_overpayment_is_refunded() {
    let Some(env) = Env::new().await else { return };
    // C-007: rated C, so the manager approves even a small order.
    let amount = env.ledger.record_order("SO-200", "C-007", env.today(), &[("CTRL-X", dec("2"))]).await.unwrap();
    let worker = env.worker(Default::default(), options());
    let id = env
        .engine
        .start(
            "order_to_cash",
            None,
            json!({"order_id": "SO-200", "customer_id": "C-007", "amount": amount.to_string(), "requested_by": "rita"}),
        )
        .await
        .unwrap();
    let task = worker.until_task(&env, "manager_approval").await;
    // Four eyes: the requester may not approve her own order.
    assert!(env.engine.complete_task(&task.id, "rita", &["sales.manager"], json!({"approve": true})).await.is_err());
    env.engine.complete_task(&task.id, "max", &["sales.manager"], json!({"approve": true})).await.unwrap();
    env.engine
        .correlate(message("shipment.dispatched", "SO-200", json!({"shipment_id": "SH-2", "carrier": null})))
        .await
        .unwrap();
    worker.until(|s| s.completed >= 4).await;
    let invoice = env.ledger.invoice_of_order("SO-200").await.unwrap().unwrap();
    assert_eq!(invoice.total, dec("8397.60"), "6998.00 + 20 % VAT");
    let over = json!({"amount": "8500.00", "reference": invoice.invoice_id, "payment_id": "P-7"});
    env.engine.correlate(message("payment.received", &invoice.invoice_id, over)).await.unwrap();
    let review = worker.until_task(&env, "overpayment_review").await;
    env.engine
        .complete_task(&review.id, "anna", &["finance.accountant"], json!({"refund": true, "comment": "send it back"}))
        .await
        .unwrap();
    worker.until_status(&env, &id, &completed("cash_collected")).await;
    let tb = env.ledger.trial_balance().await.unwrap();
    assert_eq!(tb.balance("1000"), dec("8397.60"), "8500 in, 102.40 refunded");
    assert_eq!(tb.balance("2300"), dec("0.00"));
    assert_books(&env).await;
    let kpis = env.ledger.kpis(env.today()).await.unwrap();
    assert_eq!((kpis.payments_matched, kpis.payments_matched_automatically), (1, 0));
}

#[tokio::test]
async fn an_overdue_invoice_is_written_off_after_the_finance_decision() {
    let Some(env) = Env::new().await else { return };
    let worker = env.worker(Default::default(), options());
    // INV-OB-0005: C-007, 6180.00, due 2025-10-17: every dunning timer is already due.
    let id = env
        .engine
        .start(
            "collect_then_reconcile",
            None,
            json!({"invoice_id": "INV-OB-0005", "customer_id": "C-007", "amount_due": "6180.00",
                   "due_date": "2025-10-17"}),
        )
        .await
        .unwrap();
    assert_eq!(env.engine.fire_due_timers().await.unwrap(), 3, "two reminders and the finance decision");
    let decision = worker.until_task(&env, "finance_decision").await;
    env.engine.complete_task(&decision.id, "carla", &["finance.controller"], json!({"write_off": true})).await.unwrap();
    worker.until_status(&env, &id, &completed("written_off")).await;
    assert_eq!(env.ledger.invoice_open("INV-OB-0005").await.unwrap(), (dec("0.00"), "written_off".to_string()));
    let kpis = env.ledger.kpis(env.today()).await.unwrap();
    assert_eq!(kpis.write_offs, dec("6180.00"));
    assert_books(&env).await;
}

#[tokio::test]
async fn month_end_close_reports_and_closes_the_period() {
    let Some(env) = Env::new().await else { return };
    let amount = env.ledger.record_order("SO-300", "C-002", env.today(), &[("PUMP-250", dec("1"))]).await.unwrap();
    let worker = env.worker(Default::default(), options());
    let shipping = env
        .engine
        .start(
            "ship_then_invoice",
            None,
            json!({"order_id": "SO-300", "customer_id": "C-002", "amount": amount.to_string()}),
        )
        .await
        .unwrap();
    env.engine
        .correlate(message("shipment.dispatched", "SO-300", json!({"shipment_id": "SH-3", "carrier": "UPS"})))
        .await
        .unwrap();
    worker.until_status(&env, &shipping, &completed("invoiced")).await;

    let close = env.engine.start("month_end_close", None, json!({"as_of": "2026-01-31"})).await.unwrap();
    let review = worker.until_task(&env, "review").await;
    let vars = env.variables(&close).await;
    assert_eq!(vars["open_ar"], "178532.85", "175642.85 opening + 2890.00 exported without VAT");
    assert_eq!(vars["revenue"], "2890.00");
    assert_eq!(vars["cost_of_goods"], "1815.50");
    assert_eq!(vars["gross_profit"], "1074.50");
    let report = env.ledger.report(vars["aging_report"].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!(report["total"], "178532.85");
    env.engine
        .complete_task(&review.id, "carla", &["finance.controller"], json!({"approve_close": true}))
        .await
        .unwrap();
    worker.until_status(&env, &close, &completed("closed")).await;
    assert!(env.ledger.is_closed("2026-01").await.unwrap());

    // A January invoice after the close is refused: an incident for an operator.
    env.ledger.record_order("SO-301", "C-002", env.today(), &[("SENS-T1", dec("1"))]).await.unwrap();
    let late = env
        .engine
        .start("ship_then_invoice", None, json!({"order_id": "SO-301", "customer_id": "C-002", "amount": "74.99"}))
        .await
        .unwrap();
    env.engine
        .correlate(message("shipment.dispatched", "SO-301", json!({"shipment_id": "SH-4", "carrier": "UPS"})))
        .await
        .unwrap();
    worker.until(|s| s.business_errors >= 2).await;
    let incidents = env.engine.instance(&late).await.unwrap().incidents().clone();
    assert!(!incidents.is_empty(), "period_closed is not caught by the process");
    assert!(env.ledger.invoice_of_order("SO-301").await.unwrap().is_none());
    assert_books(&env).await;
}
