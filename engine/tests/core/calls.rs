//! Calling child processes.

use cloverleaf_engine::{Event, Rejection, START_REFUSED, Status};
use serde_json::json;

use crate::harness::{Run, lines, num, order, text, vars};

fn started() -> Run {
    let mut run = Run::reference("order_to_cash");
    let effects = run.start(order("20000.00"));
    assert_eq!(
        lines(&effects),
        [
            r#"start child i1.call.2 order_approval {"amount":"20000.00","customer_id":"C-7","order_id":"SO-1","requested_by":"rita"}"#
        ]
    );
    run
}

fn approved_and_shipped() -> Run {
    let mut run = started();
    let call = run.call("approve");
    let effects = run.ok(Event::ChildCompleted { call, outcome: Some("approved".into()), variables: vars(&[]) });
    assert_eq!(
        lines(&effects),
        [r#"start child i1.call.3 ship_then_invoice {"amount":"20000.00","customer_id":"C-7","order_id":"SO-1"}"#]
    );
    assert_eq!(run.var("approval_outcome"), text("approved"));
    let call = run.call("fulfil");
    let child_vars = vars(&[
        ("invoice_id", text("INV-1")),
        ("invoice_total", num("23800.00")),
        ("due_date", cloverleaf_dsl::expr::Value::Date("2026-02-04".parse().unwrap())),
        ("net", num("20000.00")),
    ]);
    let effects = run.ok(Event::ChildCompleted { call, outcome: Some("invoiced".into()), variables: child_vars });
    assert_eq!(
        lines(&effects),
        [
            r#"start child i1.call.4 collect_then_reconcile {"amount_due":"23800.00","customer_id":"C-7","due_date":"2026-02-04","invoice_id":"INV-1"}"#
        ]
    );
    run
}

#[test]
fn child_outcome_and_variables_map_into_the_parent() {
    let mut run = approved_and_shipped();
    assert_eq!(run.var("invoice_total"), num("23800.00"));
    let call = run.call("collect");
    run.ok(Event::ChildCompleted { call, outcome: Some("paid".into()), variables: vars(&[]) });
    assert_eq!(run.var("collection_outcome"), text("paid"));
    assert_eq!(run.status(), &Status::Completed { outcome: Some("cash_collected".into()) });
}

#[test]
fn a_child_that_is_not_approved_takes_the_otherwise_arm() {
    let mut run = started();
    let call = run.call("approve");
    run.ok(Event::ChildCompleted { call, outcome: Some("rejected".into()), variables: vars(&[]) });
    assert_eq!(run.status(), &Status::Completed { outcome: Some("not_approved".into()) });
}

#[test]
fn a_child_error_goes_to_on_error() {
    let mut run = approved_and_shipped();
    let call = run.call("collect");
    run.ok(Event::ChildFailed { call, code: "write_off_refused".into() });
    assert_eq!(run.token_nodes(), ["legal_review"]);
}

#[test]
fn an_uncaught_child_error_raises_an_incident_and_resolving_calls_again() {
    let mut run = started();
    let call = run.call("approve");
    let effects = run.ok(Event::ChildFailed { call: call.clone(), code: "boom".into() });
    assert_eq!(
        lines(&effects),
        [
            "incident i1.incident.3 at approve: `order_approval` failed with `boom`, not caught by an `on error` of `approve`"
        ]
    );
    assert_eq!(
        run.refused(Event::ChildCompleted { call, outcome: None, variables: vars(&[]) }),
        Rejection::UnknownCall { call: "i1.call.2".into() }
    );
    let effects = run.ok(Event::ResolveIncident { incident: "i1.incident.3".into() });
    assert_eq!(
        lines(&effects)[1],
        r#"start child i1.call.4 order_approval {"amount":"20000.00","customer_id":"C-7","order_id":"SO-1","requested_by":"rita"}"#
    );
}

#[test]
fn a_refused_start_fails_the_called_process_before_any_node() {
    let mut run = Run::reference("order_approval");
    let reason = "invalid input: amount: must be > 0".to_string();
    let effects = run.ok(Event::StartRefused { reason: reason.clone() });
    assert_eq!(lines(&effects), ["failed start_refused"]);
    assert_eq!(run.status(), &Status::Failed { code: START_REFUSED.into() });
    let history: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            cloverleaf_engine::Effect::History(h) => Some((h.kind, h.node.clone(), h.detail.clone())),
            _ => None,
        })
        .collect();
    let detail = Some(format!("start_refused: {reason}"));
    assert_eq!(history, [(cloverleaf_engine::HistoryKind::Failed, None, detail)]);
    // Only an instance still waiting for its start can refuse it.
    assert!(matches!(run.refused(Event::StartRefused { reason }), Rejection::InvalidState { .. }));
    let mut running = Run::reference("order_approval");
    running.start(order("100.00"));
    assert!(matches!(running.refused(Event::StartRefused { reason: "late".into() }), Rejection::InvalidState { .. }));
}

#[test]
fn a_called_process_that_refused_its_start_raises_an_incident_that_says_how_to_go_on() {
    let mut run = started();
    let call = run.call("approve");
    let effects = run.ok(Event::ChildFailed { call, code: START_REFUSED.into() });
    assert_eq!(
        lines(&effects),
        ["incident i1.incident.3 at approve: `order_approval` refused its start (the reason is in the history \
             of the instance called for i1.call.2), not caught by an `on error \"start_refused\"` of `approve`: correct what it is \
             called with (the variables its inputs come from), or deploy a `order_approval` that accepts it, then \
             retry"]
    );
}

#[test]
fn an_error_end_fails_the_child_with_its_code() {
    let mut run = Run::reference("collect_then_reconcile");
    run.start(json!({"invoice_id": "INV-1", "customer_id": "C-7", "amount_due": "60000", "due_date": "2026-02-04"}));
    let last = run.timer("await_payment", &cloverleaf_engine::TimerPurpose::Boundary { index: 2 });
    run.fire(last);
    run.complete_task("finance_decision", "fred", json!({"write_off": true})).unwrap();
    let effects = run.complete_task("cfo_write_off", "carl", json!({"approve_write_off": false})).unwrap();
    assert_eq!(
        lines(&effects),
        ["cancel timer i1.timer.10", "failed write_off_refused"],
        "the CFO task's SLA timer closes"
    );
    assert_eq!(run.status(), &Status::Failed { code: "write_off_refused".into() });
}
