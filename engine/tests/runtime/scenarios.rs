//! The reference processes end to end on SQLite, on the virtual clock, with jobs completed
//! through the engine's API as a worker would and the engine restarted mid-flight.

use chrono::TimeDelta;
use cloverleaf_engine::runtime::Error;
use cloverleaf_engine::runtime::{Correlation, Message};
use cloverleaf_engine::{Rejection, Status};
use serde_json::{Value, json};

use crate::harness::{Env, completed};

/// Locks the one due job of `job_type` and completes it with `output`; returns its input.
async fn work(env: &Env, job_type: &str, output: Value) -> Value {
    let job = env.one_job(job_type).await;
    env.engine.complete_job(&job.id, job.epoch, output).await.unwrap();
    job.input
}

async fn message(env: &Env, name: &str, key: &str, payload: Value) -> Correlation {
    let message =
        Message { name: name.into(), correlation_key: key.into(), payload, message_id: None, ttl: TimeDelta::days(1) };
    env.engine.correlate(message).await.unwrap()
}

/// The open task at `node` (of any instance).
async fn task_at(env: &Env, node: &str) -> cloverleaf_engine::store::TaskInfo {
    let tasks = env.engine.tasks(None).await.unwrap();
    tasks.into_iter().find(|t| t.node == node).unwrap_or_else(|| panic!("no open task at {node}"))
}

#[tokio::test]
async fn order_to_cash_with_approval_shipment_partial_payment_and_dunning_survives_restarts() {
    let Some(env) = Env::reference().await else { return };
    let root = env
        .engine
        .start(
            "order_to_cash",
            Some("SO-100"),
            json!({"order_id": "SO-100", "customer_id": "C-7", "amount": "20000.00", "requested_by": "rita"}),
        )
        .await
        .unwrap();
    work(&env, "credit.check", json!({"credit_limit": "50000", "open_ar": "0", "risk": "A"})).await;
    let approval = task_at(&env, "manager_approval").await;
    env.engine.complete_task(&approval.id, "max", &["sales.manager"], json!({"approve": true})).await.unwrap();
    let env = env.restart().await;
    let shipped = message(&env, "shipment.dispatched", "SO-100", json!({"shipment_id": "SH-1"})).await;
    assert!(matches!(shipped, Correlation::Delivered { .. }), "{shipped:?}");
    let input = work(
        &env,
        "invoice.issue",
        json!({"invoice_id": "INV-1", "invoice_number": "2026-000001", "net": "20000.00", "tax": "3800.00",
               "total": "23800.00", "due_date": "2026-02-04"}),
    )
    .await;
    assert_eq!(input["amount"], json!("20000.00"));
    work(&env, "ledger.post_cost", json!({"cost_of_goods": "12000.00"})).await;
    work(&env, "outbox.notify", json!({})).await;
    // Due 2026-02-04: the first reminder at +7 days, the second and a call at +30.
    let env = env.restart_after(TimeDelta::days(37)).await;
    let reminder = work(&env, "dunning.send", json!({})).await;
    assert_eq!(reminder["level"], json!("1"), "numbers travel as decimal strings");
    let partial = message(
        &env,
        "payment.received",
        "INV-1",
        json!({"amount": "10000.00", "reference": "INV-1", "payment_id": "P-1"}),
    )
    .await;
    assert!(matches!(partial, Correlation::Delivered { .. }), "{partial:?}");
    let input = work(&env, "payment.match", json!({"result": "partial"})).await;
    assert_eq!((input["received"].clone(), input["amount_due"].clone()), (json!("10000.00"), json!("23800.00")));
    env.advance(TimeDelta::days(23));
    env.engine.fire_due_timers().await.unwrap();
    let second = work(&env, "dunning.send", json!({})).await;
    assert_eq!(second["level"], json!("2"));
    let call = task_at(&env, "call_customer").await;
    env.engine
        .complete_task(&call.id, "ann", &["sales.account_manager"], json!({"comment": "pays Friday"}))
        .await
        .unwrap();
    message(
        &env,
        "payment.received",
        "INV-1",
        json!({"amount": "13800.00", "reference": "INV-1", "payment_id": "P-2"}),
    )
    .await;
    let input = work(&env, "payment.match", json!({"result": "exact"})).await;
    assert_eq!(input["amount_due"], json!("13800.00"), "the partial payment lowered the amount due");
    work(&env, "receipt.post", json!({})).await;
    assert_eq!(env.status(&root).await, completed("cash_collected"));
    assert!(env.engine.tasks(None).await.unwrap().is_empty(), "paid ends with terminate: nothing stays open");
    assert!(env.engine.verify_history(&root).await.unwrap().is_intact());
}

#[tokio::test]
async fn an_undispatched_order_goes_to_logistics_after_five_days_then_waits_again() {
    let Some(env) = Env::reference().await else { return };
    let id = env
        .engine
        .start("ship_then_invoice", Some("SO-5"), json!({"order_id": "SO-5", "customer_id": "C-1", "amount": "100.00"}))
        .await
        .unwrap();
    env.advance(TimeDelta::days(5));
    assert_eq!(env.engine.fire_due_timers().await.unwrap(), 1);
    let chase = task_at(&env, "chase_shipment").await;
    assert_eq!(chase.roles, ["logistics.coordinator"]);
    env.engine
        .complete_task(&chase.id, "lou", &["logistics.coordinator"], json!({"chase_note": "carrier strike"}))
        .await
        .unwrap();
    message(&env, "shipment.dispatched", "SO-5", json!({"shipment_id": "SH-5", "carrier": "DHL"})).await;
    let (mut issue, mut cost) = (None, None);
    for job in
        env.engine.fetch_and_lock("w", &["invoice.issue", "ledger.post_cost"], 10, TimeDelta::minutes(1)).await.unwrap()
    {
        if job.job_type == "invoice.issue" { issue = Some(job) } else { cost = Some(job) }
    }
    let (issue, cost) = (issue.expect("invoice job"), cost.expect("cost job"));
    assert_eq!(cost.input["shipment_id"], json!("SH-5"), "both branches run in parallel");
    env.engine.complete_job(&cost.id, cost.epoch, json!({"cost_of_goods": "60.00"})).await.unwrap();
    assert!(
        env.engine.fetch_and_lock("w", &["outbox.notify"], 1, TimeDelta::minutes(1)).await.unwrap().is_empty(),
        "the join waits for the invoice"
    );
    env.engine
        .complete_job(
            &issue.id,
            issue.epoch,
            json!({"invoice_id": "INV-5", "invoice_number": "2026-000005", "net": "100.00",
               "tax": "19.00", "total": "119.00", "due_date": "2026-02-04"}),
        )
        .await
        .unwrap();
    work(&env, "outbox.notify", json!({})).await;
    assert_eq!(env.status(&id).await, completed("invoiced"));
}

#[tokio::test]
async fn a_large_write_off_needs_a_cfo_other_than_the_controller() {
    let Some(env) = Env::reference().await else { return };
    let id = env
        .engine
        .start(
            "collect_then_reconcile",
            Some("INV-9"),
            json!({"invoice_id": "INV-9", "customer_id": "C-9", "amount_due": "80000.00", "due_date": "2026-01-05"}),
        )
        .await
        .unwrap();
    env.advance(TimeDelta::days(60));
    env.engine.fire_due_timers().await.unwrap();
    let mut levels = Vec::new();
    for job in env.engine.fetch_and_lock("w", &["dunning.send"], 10, TimeDelta::minutes(1)).await.unwrap() {
        levels.push(job.input["level"].clone());
        env.engine.complete_job(&job.id, job.epoch, json!({})).await.unwrap();
    }
    levels.sort_by_key(|l| l.to_string());
    assert_eq!(levels, [json!("1"), json!("2")], "both reminders went out before the decision");
    let decision = task_at(&env, "finance_decision").await;
    env.engine
        .complete_task(&decision.id, "carl", &["finance.controller", "finance.cfo"], json!({"write_off": true}))
        .await
        .unwrap();
    let cfo = task_at(&env, "cfo_write_off").await;
    let same = env.engine.complete_task(&cfo.id, "carl", &["finance.cfo"], json!({"approve_write_off": true})).await;
    assert!(matches!(same, Err(Error::Rejected(Rejection::SeparationOfDuties { .. }))), "{same:?}");
    env.engine.complete_task(&cfo.id, "cleo", &["finance.cfo"], json!({"approve_write_off": true})).await.unwrap();
    let input = work(&env, "ledger.write_off", json!({})).await;
    assert_eq!(input["amount"], json!("80000.00"));
    assert_eq!(env.status(&id).await, Status::Completed { outcome: Some("written_off".into()) });
}
