//! Order to cash through call activities: approval, shipping and collection, with their
//! outputs flowing from one to the next.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use cloverleaf_dsl::expr::Value;
use cloverleaf_engine::{HistoryKind, InstanceId, Status};
use serde_json::json;

use crate::harness::{
    Sim, completed, completions, date, engine, inbox, money, order, pay, register_collection, register_credit,
    register_shipping, status, t0, task_at, var,
};

/// An engine with every handler, and an order-to-cash instance started.
pub fn order_to_cash(order_id: &str, amount: &str) -> (Sim, InstanceId) {
    let mut engine = engine();
    register_credit(&mut engine, "100000.00", "0.00", "A");
    register_shipping(&mut engine);
    register_collection(&mut engine);
    let id = engine.start("order_to_cash", order(order_id, amount)).unwrap();
    engine.run_jobs().unwrap();
    (engine, id)
}

/// The happy path of a small order: approved automatically, shipped the next day, paid 20 days
/// later.
pub fn paid_order() -> (Sim, InstanceId) {
    let (mut engine, id) = order_to_cash("SO-1", "8000.00");
    engine.advance(TimeDelta::days(1)).unwrap();
    let dispatched = json!({"shipment_id": "SH-1", "carrier": "DHL"});
    engine.correlate("shipment.dispatched", "SO-1", dispatched, Some("ship-1")).unwrap();
    engine.run_jobs().unwrap();
    engine.advance(TimeDelta::days(20)).unwrap();
    pay(&mut engine, "INV-SO-1", "P-1", "9520.00");
    engine.run_jobs().unwrap();
    (engine, id)
}

fn child(engine: &Sim, parent: &InstanceId, process: &str) -> InstanceId {
    let found: Vec<InstanceId> =
        engine.children(parent).into_iter().filter(|c| engine.instance(c).unwrap().process() == process).collect();
    assert_eq!(found.len(), 1, "children of {parent} running {process}");
    found[0].clone()
}

/// When the instance's audit trail says it completed.
fn completed_at(engine: &Sim, id: &InstanceId) -> DateTime<Utc> {
    let history = engine.history(id);
    history.iter().rev().find(|(_, e)| e.kind == HistoryKind::Completed).map(|(at, _)| *at).expect("completed")
}

scenarios! {
    fn an_order_flows_from_approval_through_shipping_to_cash() {
        let (engine, id) = paid_order();
        assert_eq!(status(&engine, &id), completed("cash_collected"));
        let children = engine.children(&id);
        let called: Vec<String> = children.iter().map(|c| engine.instance(c).unwrap().process().to_string()).collect();
        assert_eq!(called, ["order_approval", "ship_then_invoice", "collect_then_reconcile"]);
        assert_eq!(var(&engine, &id, "approval_outcome"), Value::Text("approved".into()));
        assert_eq!(var(&engine, &id, "invoice_id"), Value::Text("INV-SO-1".into()));
        assert_eq!(money(&engine, &id, "invoice_total"), "9520.00");
        // Invoiced on 2026-01-06, due 30 days later.
        assert_eq!(var(&engine, &id, "due_date"), Value::Date(date("2026-02-05")));
        assert_eq!(var(&engine, &id, "collection_outcome"), Value::Text("paid".into()));

        // The collection child was started with the invoice's total and due date.
        let collect = child(&engine, &id, "collect_then_reconcile");
        assert_eq!(money(&engine, &collect, "amount_due"), "9520.00");
        assert_eq!(var(&engine, &collect, "due_date"), Value::Date(date("2026-02-05")));
        assert_eq!(engine.parent(&collect), Some(id.clone()));

        let approval = child(&engine, &id, "order_approval");
        let shipping = child(&engine, &id, "ship_then_invoice");
        assert_eq!(completed_at(&engine, &approval), t0());
        assert_eq!(completed_at(&engine, &shipping), t0() + TimeDelta::days(1));
        assert_eq!(completed_at(&engine, &collect), t0() + TimeDelta::days(21));
        assert_eq!(completed_at(&engine, &id), t0() + TimeDelta::days(21));
        for job_type in
            ["credit.check", "invoice.issue", "ledger.post_cost", "outbox.notify", "payment.match", "receipt.post"]
        {
            assert_eq!(completions(&engine, job_type), 1, "{job_type}");
        }
        assert!(engine.pending_jobs().is_empty() && engine.tasks().is_empty() && engine.timers().is_empty());
        if let Some(refusals) = engine.refusals() {
            assert!(refusals.is_empty(), "{refusals:?}");
        }
    }
}

scenarios! {
    fn an_order_the_manager_rejects_is_not_shipped() {
        let (mut engine, id) = order_to_cash("SO-2", "40000.00");
        let approval = child(&engine, &id, "order_approval");
        let task = task_at(&engine, &approval, "manager_approval").id;
        engine.complete_task(&task, "mia", None, json!({"approve": false})).unwrap();
        assert_eq!(status(&engine, &id), completed("not_approved"));
        assert_eq!(var(&engine, &id, "approval_outcome"), Value::Text("rejected".into()));
        assert_eq!(engine.children(&id).len(), 1);
    }
}

scenarios! {
    fn a_refused_write_off_is_caught_by_order_to_cash_and_handed_to_legal() {
        let (mut engine, id) = order_to_cash("SO-3", "60000.00");
        let approval = child(&engine, &id, "order_approval");
        let task = task_at(&engine, &approval, "manager_approval").id;
        engine.complete_task(&task, "mia", None, json!({"approve": true})).unwrap();
        engine.correlate("shipment.dispatched", "SO-3", json!({"shipment_id": "SH-3", "carrier": "UPS"}), None).unwrap();
        engine.run_jobs().unwrap();
        assert_eq!(money(&engine, &id, "invoice_total"), "71400.00");
        let collect = child(&engine, &id, "collect_then_reconcile");
        // Due 2026-02-04; nobody pays. At due + 60 days the controller proposes a write-off.
        engine.advance_to(Utc.with_ymd_and_hms(2026, 4, 5, 0, 0, 0).unwrap()).unwrap();
        engine.run_jobs().unwrap();
        let task = task_at(&engine, &collect, "finance_decision").id;
        engine.complete_task(&task, "fran", None, json!({"write_off": true})).unwrap();
        let task = task_at(&engine, &collect, "cfo_write_off").id;
        engine.complete_task(&task, "carl", None, json!({"approve_write_off": false})).unwrap();
        assert_eq!(status(&engine, &collect), Status::Failed { code: "write_off_refused".into() });

        let legal = inbox(&engine, &["finance.controller"]);
        assert_eq!(legal.len(), 1);
        assert_eq!(legal[0].title, "Refused write-off on order SO-3: next steps");
        assert_eq!(legal[0].instance, id);
        let task = legal[0].id.clone();
        engine.complete_task(&task, "fran", None, json!({"legal_note": "file with the court"})).unwrap();
        assert_eq!(status(&engine, &id), completed("handed_to_legal"));
        assert!(engine.tasks().is_empty());
    }
}

scenarios! {
    fn cancelling_order_to_cash_cancels_the_running_child() {
        let (mut engine, id) = order_to_cash("SO-4", "8000.00");
        let shipping = child(&engine, &id, "ship_then_invoice");
        assert_eq!(status(&engine, &shipping), Status::Running);
        engine.cancel(&id, "ops").unwrap();
        assert_eq!(status(&engine, &id), Status::Cancelled { by: "ops".into() });
        assert_eq!(status(&engine, &shipping), Status::Cancelled { by: format!("parent {id}") });
        assert!(engine.timers().is_empty());
        assert_eq!(
            engine.correlate("shipment.dispatched", "SO-4", json!({}), None).unwrap(),
            cloverleaf_engine::memory::Correlation::Buffered
        );
        if let Some(refusals) = engine.refusals() {
            assert!(refusals.is_empty(), "{refusals:?}");
        }
    }
}
