//! Straight-through flows: start, set, decide, end.

use cloverleaf_engine::{Event, HistoryKind, Status};
use serde_json::json;

use crate::harness::{Run, credit, lines, num, order, text};

#[test]
fn small_low_risk_order_is_approved_straight_through() {
    let mut run = Run::reference("order_approval");
    let effects = run.start(order("5000.00"));
    assert_eq!(
        lines(&effects),
        [
            r#"create job i1.job.2 credit.check {"amount":"5000.00","customer_id":"C-7","order_id":"SO-1"} key=i1:check_credit:1"#
        ]
    );
    let effects = run.complete_job("credit.check", credit("50000", "0", "A"));
    assert_eq!(lines(&effects), ["completed approved"]);
    assert_eq!(run.status(), &Status::Completed { outcome: Some("approved".into()) });
    assert_eq!(run.var("credit_limit"), num("50000"));
    assert_eq!(run.var("risk"), text("A"));
    assert!(run.instance.tokens().is_empty() && run.instance.jobs().is_empty());
    insta::assert_snapshot!("straight_through", crate::harness::pretty(&run.effects));
}

#[test]
fn decide_takes_the_first_true_arm_in_order() {
    // Over the limit wins over "small and low risk", because it comes first.
    let mut run = Run::reference("order_approval");
    run.start(order("5000.00"));
    run.complete_job("credit.check", credit("1000", "0", "A"));
    assert_eq!(run.token_nodes(), ["credit_review"]);
    let decided = run.effects.iter().find_map(|e| match e {
        cloverleaf_engine::Effect::History(h) if h.kind == HistoryKind::Decided => h.detail.clone(),
        _ => None,
    });
    assert_eq!(decided.as_deref(), Some("open_ar + amount > credit_limit"));
}

#[test]
fn decide_falls_back_to_otherwise() {
    let mut run = Run::reference("order_approval");
    run.start(order("20000"));
    run.complete_job("credit.check", credit("50000", "0", "A"));
    assert_eq!(run.token_nodes(), ["manager_approval"]);
}

#[test]
fn set_assigns_in_order_and_converts_to_the_declared_type() {
    let mut run = Run::snippet(
        r#"process p "P" {
          input { a: int }
          var b: int = 0
          var c: money = 0
          var when: date?
          start -> s
          set s { b = a + 1, c = b * 2.5, when = date("2026-01-31") } -> done
          end done "Done"
        }"#,
    );
    run.start(json!({"a": 2}));
    assert_eq!(run.var("b"), num("3"));
    assert_eq!(run.var("c"), num("7.5"));
    assert_eq!(run.var("when").to_json(), json!("2026-01-31"));
    assert_eq!(run.status(), &Status::Completed { outcome: Some("done".into()) });
}

#[test]
fn a_decide_that_cannot_be_evaluated_raises_an_incident() {
    let mut run = Run::snippet(
        r#"process p "P" {
          input { n: money, d: money }
          start -> route
          decide route { when n / d > 1 -> big  otherwise -> small }
          end big "Big"
          end small "Small"
        }"#,
    );
    let effects = run.start(json!({"n": "10", "d": "0"}));
    let l = lines(&effects);
    assert_eq!(l.len(), 1);
    assert!(l[0].starts_with("incident i1.incident.2 at route: cannot decide: `n / d > 1`: division by zero"), "{l:?}");
    assert_eq!(run.status(), &Status::Running);
    assert_eq!(run.instance.incidents().len(), 1);
    // Resolving runs the decide again; it still fails, so a new incident is raised.
    let incident = run.instance.incidents().keys().next().unwrap().clone();
    let effects = run.ok(Event::ResolveIncident { incident });
    assert_eq!(lines(&effects)[0], "close incident i1.incident.2");
    assert!(lines(&effects)[1].starts_with("incident i1.incident.3 at route"));
}

#[test]
fn inputs_are_checked_against_their_types() {
    let mut run = Run::reference("order_approval");
    let r = run.refused(Event::Start {
        variables: json!({"order_id": "SO-1", "amount": "lots", "requested_by": "rita", "colour": "red"}),
        business_key: None,
        start: None,
        started_by: None,
        on_behalf_of: None,
    });
    let cloverleaf_engine::Rejection::InvalidInput { fields } = r else { panic!("{r:?}") };
    let names: Vec<&str> = fields.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(names, ["colour", "customer_id", "amount"]);
    assert_eq!(fields[1].1, "required");
    assert_eq!(fields[2].1, "expected money, found \"lots\"");
}
