//! Determinism: the same inputs give the same bytes; a recorded log rebuilds the same state.

use cloverleaf_engine::{Event, Instance, replay, step};
use serde_json::json;

use crate::harness::{Run, credit, order};

/// A long order: credit review, manager, escalation to the director, CFO.
fn long_order() -> Run {
    let mut run = Run::reference("order_approval");
    run.start(order("150000"));
    run.complete_job("credit.check", credit("100000", "0", "B"));
    run.advance(3600);
    run.complete_task("credit_review", "cora", json!({"approve": true, "comment": "ok"})).unwrap();
    let escalate = run.timer("manager_approval", &cloverleaf_engine::TimerPurpose::Boundary { index: 0 });
    run.fire(escalate);
    run.advance(7200);
    run.complete_task("director_approval", "dora", json!({"approve": true})).unwrap();
    run.complete_task("cfo_approval", "carl", json!({"approve": true})).unwrap();
    run
}

#[test]
fn the_same_state_event_and_time_give_identical_results() {
    let run = long_order();
    for i in 0..run.log.len() {
        let before =
            replay(&run.def, Instance::new("i1", "order_approval", 1), run.log[..i].iter().map(|(e, t)| (e, *t)))
                .unwrap();
        let (event, now) = &run.log[i];
        let a = step(&run.def, &before, event.clone(), *now).unwrap();
        let b = step(&run.def, &before, event.clone(), *now).unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
    }
}

#[test]
fn replaying_the_event_log_rebuilds_the_final_state() {
    let run = long_order();
    assert_eq!(run.status(), &cloverleaf_engine::Status::Completed { outcome: Some("approved".into()) });
    // The log survives a trip through JSON, as a store would keep it.
    let stored = serde_json::to_string(&run.log).unwrap();
    let log: Vec<(Event, chrono::DateTime<chrono::Utc>)> = serde_json::from_str(&stored).unwrap();
    let rebuilt = replay(&run.def, Instance::new("i1", "order_approval", 1), log.iter().map(|(e, t)| (e, *t))).unwrap();
    assert_eq!(rebuilt, run.instance);
    assert_eq!(rebuilt.to_json().unwrap(), run.instance.to_json().unwrap());
    // A completed instance reads back too (status and last outcome do not collide).
    assert_eq!(Instance::from_json(&run.instance.to_json().unwrap()).unwrap(), run.instance);
}

#[test]
fn events_with_typed_values_survive_json() {
    let event = Event::ChildCompleted {
        call: "i1.call.2".into(),
        outcome: Some("invoiced".into()),
        variables: crate::harness::vars(&[
            ("total", crate::harness::num("23800.00")),
            ("due", cloverleaf_dsl::expr::Value::Date("2026-02-04".parse().unwrap())),
            ("id", crate::harness::text("2026-02-04")),
        ]),
    };
    let text = serde_json::to_string(&event).unwrap();
    assert_eq!(
        text,
        r#"{"event":"child_completed","call":"i1.call.2","outcome":"invoiced","variables":{"due":{"$date":"2026-02-04"},"id":"2026-02-04","total":23800.00}}"#
    );
    assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), event);
}

#[test]
fn an_instance_reads_back_from_its_json_exactly() {
    let mut run = Run::reference("collect_then_reconcile");
    run.start(json!({"invoice_id": "INV-1", "customer_id": "C-7", "amount_due": "1190.50", "due_date": "2026-02-04"}));
    let text = run.instance.to_json().unwrap();
    let back = Instance::from_json(&text).unwrap();
    assert_eq!(back, run.instance);
    assert_eq!(back.variable("amount_due").unwrap().to_json(), json!("1190.50"));
    insta::assert_snapshot!("collect_instance_json", crate::harness::pretty(&back));
}
