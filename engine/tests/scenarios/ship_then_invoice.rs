//! Ship, then invoice: the dispatch message, invoice and cost in parallel, escalation to
//! logistics, and invoice data errors fixed by a person.

use chrono::TimeDelta;
use cloverleaf_dsl::expr::Value;
use cloverleaf_engine::Rejection;
use cloverleaf_engine::memory::{Correlation, Error, JobOutcome};
use serde_json::json;

use crate::harness::{
    completed, completions, date, engine, inbox, issue_invoice, job_of, jobs_of, money, register_shipping, status, t0,
    task_at, task_nodes, var,
};

fn inputs(order_id: &str, amount: &str) -> serde_json::Value {
    json!({"order_id": order_id, "customer_id": "C-7", "amount": amount})
}

fn dispatched(order_id: &str) -> serde_json::Value {
    json!({"shipment_id": format!("SH-{order_id}"), "carrier": "DHL"})
}

scenarios! {
    fn the_dispatch_message_starts_invoice_and_cost_together_and_the_join_waits_for_both() {
        let mut engine = engine();
        let id = engine.start("ship_then_invoice", inputs("SO-1", "20000.00")).unwrap();
        assert!(engine.pending_jobs().is_empty());
        engine.advance(TimeDelta::hours(30)).unwrap();
        let delivered = engine.correlate("shipment.dispatched", "SO-1", dispatched("SO-1"), Some("m-1")).unwrap();
        assert_eq!(delivered, Correlation::Delivered(id.clone()));
        assert_eq!(var(&engine, &id, "shipment_id"), Value::Text("SH-SO-1".into()));

        // Both jobs exist at once, created at the dispatch time.
        let invoice = job_of(&engine, "invoice.issue");
        let cost = job_of(&engine, "ledger.post_cost");
        assert_eq!(invoice.created_at, t0() + TimeDelta::hours(30));
        assert_eq!(cost.created_at, invoice.created_at);
        assert_eq!(cost.input["shipment_id"], json!("SH-SO-1"));

        // The cost is posted first: nothing is sent to the customer yet.
        engine.complete_job(&cost.id, json!({"cost_of_goods": "12500.00"})).unwrap();
        assert!(jobs_of(&engine, "outbox.notify").is_empty());
        assert_eq!(engine.pending_jobs().len(), 1);

        engine.register("invoice.issue", issue_invoice);
        assert_eq!(engine.run_jobs().unwrap(), 1);
        let notify = job_of(&engine, "outbox.notify");
        assert_eq!(notify.input, json!({"customer_id": "C-7", "invoice_id": "INV-SO-1", "template": "invoice_issued"}));
        engine.complete_job(&notify.id, json!({})).unwrap();

        assert_eq!(status(&engine, &id), completed("invoiced"));
        assert_eq!(money(&engine, &id, "net"), "20000.00");
        assert_eq!(money(&engine, &id, "tax"), "3800.00");
        assert_eq!(money(&engine, &id, "invoice_total"), "23800.00");
        assert_eq!(money(&engine, &id, "cost_of_goods"), "12500.00");
        // Issued on 2026-01-06 (30 h after the start), due 30 days later.
        assert_eq!(var(&engine, &id, "due_date"), Value::Date(date("2026-02-05")));
    }
}

scenarios! {
    fn tax_is_exact_in_decimals() {
        let mut engine = engine();
        register_shipping(&mut engine);
        let id = engine.start("ship_then_invoice", inputs("SO-2", "1234.57")).unwrap();
        engine.correlate("shipment.dispatched", "SO-2", dispatched("SO-2"), None).unwrap();
        engine.run_jobs().unwrap();
        assert_eq!(status(&engine, &id), completed("invoiced"));
        // 1234.57 × 0.19 = 234.5683 → 234.57.
        assert_eq!(money(&engine, &id, "tax"), "234.57");
        assert_eq!(money(&engine, &id, "invoice_total"), "1469.14");
        for job_type in ["invoice.issue", "ledger.post_cost", "outbox.notify"] {
            assert_eq!(completions(&engine, job_type), 1, "{job_type}");
        }
    }
}

scenarios! {
    fn a_dispatch_before_the_instance_waits_is_buffered_and_a_repeated_message_id_is_ignored() {
        let mut engine = engine();
        register_shipping(&mut engine);
        let early = engine.correlate("shipment.dispatched", "SO-3", dispatched("SO-3"), Some("m-3")).unwrap();
        assert_eq!(early, Correlation::Buffered);
        assert_eq!(engine.buffered_messages(), [("shipment.dispatched".to_string(), "SO-3".to_string())]);
        let id = engine.start("ship_then_invoice", inputs("SO-3", "100.00")).unwrap();
        assert!(engine.buffered_messages().is_empty());
        assert_eq!(var(&engine, &id, "carrier"), Value::Text("DHL".into()));
        let again = engine.correlate("shipment.dispatched", "SO-3", dispatched("SO-3"), Some("m-3")).unwrap();
        assert_eq!(again, Correlation::Duplicate);
        engine.run_jobs().unwrap();
        assert_eq!(status(&engine, &id), completed("invoiced"));
        assert_eq!(completions(&engine, "invoice.issue"), 1);
    }
}

scenarios! {
    fn after_5_days_without_dispatch_logistics_chases_and_the_wait_goes_on() {
        let mut engine = engine();
        register_shipping(&mut engine);
        let id = engine.start("ship_then_invoice", inputs("SO-4", "500.00")).unwrap();
        engine.advance(TimeDelta::days(4)).unwrap();
        assert!(engine.tasks().is_empty());
        engine.advance(TimeDelta::days(2)).unwrap();
        let chase = inbox(&engine, &["logistics.coordinator"]);
        assert_eq!(chase.len(), 1);
        assert_eq!(chase[0].title, "Order SO-4 not dispatched after 5 days");
        assert_eq!(chase[0].created_at, t0() + TimeDelta::days(5));
        // While the task is open the instance no longer listens for the dispatch.
        assert_eq!(
            engine.correlate("shipment.dispatched", "SO-4", dispatched("SO-4"), None).unwrap(),
            Correlation::Buffered
        );
        let task = chase[0].id.clone();
        engine.complete_task(&task, "lucy", None, json!({"chase_note": "truck left this morning"})).unwrap();
        // Waiting again, the buffered dispatch is delivered at once.
        assert_eq!(var(&engine, &id, "shipment_id"), Value::Text("SH-SO-4".into()));
        engine.run_jobs().unwrap();
        assert_eq!(status(&engine, &id), completed("invoiced"));
        assert_eq!(var(&engine, &id, "chase_note"), Value::Text("truck left this morning".into()));
    }
}

scenarios! {
    fn after_5_days_the_chase_then_the_dispatch_arrives() {
        let mut engine = engine();
        register_shipping(&mut engine);
        let id = engine.start("ship_then_invoice", inputs("SO-5", "500.00")).unwrap();
        engine.advance(TimeDelta::days(5)).unwrap();
        let task = task_at(&engine, &id, "chase_shipment").id;
        engine.complete_task(&task, "lucy", None, json!({})).unwrap();
        // A new 5-day wait starts from the chase.
        engine.advance(TimeDelta::days(1)).unwrap();
        engine.correlate("shipment.dispatched", "SO-5", dispatched("SO-5"), None).unwrap();
        engine.run_jobs().unwrap();
        assert_eq!(status(&engine, &id), completed("invoiced"));
        assert_eq!(var(&engine, &id, "due_date"), Value::Date(date("2026-02-10")));
    }
}

scenarios! {
    fn an_invoice_data_error_goes_to_finance_and_the_invoice_is_issued_again() {
        let mut engine = engine();
        engine.register("ledger.post_cost", crate::harness::post_cost);
        engine.register("outbox.notify", |_| JobOutcome::complete(json!({})));
        let id = engine.start("ship_then_invoice", inputs("SO-6", "1000.00")).unwrap();
        engine.correlate("shipment.dispatched", "SO-6", dispatched("SO-6"), None).unwrap();
        engine.run_jobs().unwrap();
        // The cost branch went on to the join; the invoice waits.
        let invoice = job_of(&engine, "invoice.issue");
        engine.business_error(&invoice.id, "invoice_data").unwrap();
        let fix = inbox(&engine, &["finance.ar_clerk"]);
        assert_eq!(fix.len(), 1);
        assert_eq!(fix[0].title, "Fix the invoice data of order SO-6");
        assert!(jobs_of(&engine, "invoice.issue").is_empty());
        engine.advance(TimeDelta::hours(3)).unwrap();
        let task = fix[0].id.clone();
        engine.complete_task(&task, "alex", None, json!({"fix_note": "VAT id corrected"})).unwrap();
        let again = job_of(&engine, "invoice.issue");
        assert_ne!(again.id, invoice.id);
        assert_ne!(again.idempotency_key, invoice.idempotency_key);
        assert_eq!(again.created_at, t0() + TimeDelta::hours(3));
        assert_eq!(task_nodes(&engine, &id), Vec::<String>::new());
        engine.register("invoice.issue", issue_invoice);
        engine.run_jobs().unwrap();
        assert_eq!(status(&engine, &id), completed("invoiced"));
        assert_eq!(money(&engine, &id, "invoice_total"), "1190.00");
        assert_eq!(completions(&engine, "ledger.post_cost"), 1);
        assert_eq!(completions(&engine, "outbox.notify"), 1);
    }
}

scenarios! {
    fn a_dispatch_without_a_required_field_is_refused_and_an_optional_one_may_be_left_out() {
        let mut engine = engine();
        let id = engine.start("ship_then_invoice", inputs("SO-7", "100.00")).unwrap();
        let refused = engine.correlate("shipment.dispatched", "SO-7", json!({"carrier": "DHL"}), Some("m-7"));
        assert!(
            matches!(&refused, Err(Error::Rejected(Rejection::InvalidOutput { fields })) if fields[0].0 == "shipment_id"),
            "{refused:?}"
        );
        assert!(engine.pending_jobs().is_empty());
        // The same message id, corrected, is accepted: a refused message was not recorded as seen.
        // `carrier` is optional (`text?`): leaving it out sets it to null.
        let delivered =
            engine.correlate("shipment.dispatched", "SO-7", json!({"shipment_id": "SH-7"}), Some("m-7")).unwrap();
        assert_eq!(delivered, Correlation::Delivered(id.clone()));
        let instance = engine.instance(&id).unwrap();
        assert_eq!(instance.variables().get("carrier"), Some(&cloverleaf_dsl::expr::Value::Null));
        assert_eq!(instance.variables().get("shipment_id"), Some(&cloverleaf_dsl::expr::Value::Text("SH-7".into())));
    }
}

scenarios! {
    /// A dispatch nobody waits for is kept for its time to live, then dropped: an instance
    /// started after that waits for a new one.
    fn a_buffered_message_expires_after_its_time_to_live() {
        let mut engine = engine();
        engine.set_message_ttl(Some(TimeDelta::hours(1)));
        let early = engine.correlate("shipment.dispatched", "SO-1", dispatched("SO-1"), None);
        assert_eq!(early.unwrap(), Correlation::Buffered);
        engine.advance(TimeDelta::hours(2)).unwrap();
        assert!(engine.buffered_messages().is_empty());
        let id = engine.start("ship_then_invoice", inputs("SO-1", "1.00")).unwrap();
        assert!(engine.pending_jobs().is_empty());
        assert_eq!(engine.instance(&id).unwrap().subscriptions().len(), 1);
    }
}
