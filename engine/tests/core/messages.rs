//! Receiving correlated messages.

use cloverleaf_engine::{Event, Rejection, TimerPurpose};
use serde_json::json;

use crate::harness::{Run, lines, text};

fn awaiting_shipment() -> Run {
    let mut run = Run::reference("ship_then_invoice");
    let effects = run.start(json!({"order_id": "SO-1", "customer_id": "C-7", "amount": "1190.00"}));
    assert_eq!(
        lines(&effects),
        [
            "subscribe i1.subscription.2 shipment.dispatched key=SO-1",
            "timer i1.timer.3 await_shipment at 2026-01-10T09:00:00+00:00",
        ]
    );
    run
}

#[test]
fn a_message_sets_variables_from_its_payload_and_moves_on() {
    let mut run = awaiting_shipment();
    let subscription = run.subscription("await_shipment");
    let effects =
        run.ok(Event::MessageCorrelated { subscription, payload: json!({"shipment_id": "SH-9", "carrier": "DHL"}) });
    assert_eq!(lines(&effects)[0], "cancel timer i1.timer.3");
    assert_eq!(run.var("shipment_id"), text("SH-9"));
    assert_eq!(run.var("carrier"), text("DHL"));
    assert_eq!(run.token_nodes(), ["issue_invoice", "post_cost"]);
}

#[test]
fn a_payload_missing_a_mapped_field_is_refused() {
    let mut run = awaiting_shipment();
    let subscription = run.subscription("await_shipment");
    let r = run.refused(Event::MessageCorrelated { subscription, payload: json!({"carrier": "DHL"}) });
    assert_eq!(
        r,
        Rejection::InvalidOutput { fields: vec![("shipment_id".into(), "unknown variable `shipment_id`".into())] }
    );
}

#[test]
fn escalation_then_loop_back_subscribes_again() {
    let mut run = awaiting_shipment();
    let timer = run.timer("await_shipment", &TimerPurpose::Boundary { index: 0 });
    let effects = run.fire(timer);
    assert_eq!(lines(&effects)[0], "unsubscribe i1.subscription.2");
    run.complete_task("chase_shipment", "lou", json!({"chase_note": "called DHL"})).unwrap();
    assert_eq!(run.token_nodes(), ["await_shipment"]);
    assert_eq!(run.instance.subscriptions().len(), 1);
    assert_eq!(run.instance.subscriptions().values().next().unwrap().correlation_key, "SO-1");
}
