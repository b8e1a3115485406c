//! Terminate, cancel, and events that do not fit.

use cloverleaf_engine::{Event, Instance, Rejection, Status, step};
use serde_json::json;

use crate::harness::{Run, credit, lines, order, t0};

#[test]
fn terminate_ends_every_branch_and_completes() {
    let mut run = Run::snippet(
        r#"process p "P" {
          start -> fork
          parallel fork { -> slow  -> fast }
          task slow { job "slow" } -> both
          task fast { job "fast" } -> decide { when true -> stop  otherwise -> both }
          join both -> done
          end done "Done"
          end stop "Stopped" terminate
        }"#,
    );
    run.start(json!({}));
    let effects = run.complete_job("fast", json!({}));
    assert_eq!(lines(&effects), ["cancel job i1.job.5", "completed stop"]);
    assert_eq!(run.status(), &Status::Completed { outcome: Some("stop".into()) });
    assert!(run.instance.tokens().is_empty() && run.instance.jobs().is_empty());
}

#[test]
fn cancel_closes_everything_open() {
    let mut run = Run::reference("order_approval");
    run.start(order("20000"));
    run.complete_job("credit.check", credit("1000000", "0", "A"));
    let effects = run.ok(Event::Cancel { by: "ops".into() });
    assert_eq!(
        lines(&effects),
        [
            "cancel task i1.task.3",
            "cancel timer i1.timer.4",
            "cancel timer i1.timer.5",
            "cancel timer i1.timer.6",
            "cancelled by ops",
        ]
    );
    assert_eq!(run.status(), &Status::Cancelled { by: "ops".into() });
    let r = run.refused(Event::Cancel { by: "ops".into() });
    assert_eq!(r, Rejection::InvalidState { event: "cancel".into(), status: "cancelled".into() });
}

#[test]
fn events_that_do_not_fit_are_rejections_not_panics() {
    let mut run = Run::reference("order_approval");
    // Nothing but a start before the start.
    let r = run.refused(Event::TimerFired { timer: "x".into() });
    assert_eq!(r, Rejection::InvalidState { event: "timer fired".into(), status: "not started".into() });
    run.start(order("20000"));
    let r = run.refused(Event::Start {
        variables: order("1"),
        business_key: None,
        start: None,
        started_by: None,
        on_behalf_of: None,
    });
    assert_eq!(r, Rejection::InvalidState { event: "start".into(), status: "running".into() });
    let unknown = [
        (Event::JobCompleted { job: "nope".into(), output: json!({}) }, Rejection::UnknownJob { job: "nope".into() }),
        (Event::JobFailed { job: "nope".into(), message: "x".into() }, Rejection::UnknownJob { job: "nope".into() }),
        (
            Event::TaskCompleted { task: "nope".into(), by: "u".into(), on_behalf_of: None, form: json!({}) },
            Rejection::UnknownTask { task: "nope".into() },
        ),
        (Event::TimerFired { timer: "nope".into() }, Rejection::UnknownTimer { timer: "nope".into() }),
        (
            Event::MessageCorrelated { subscription: "nope".into(), payload: json!({}) },
            Rejection::UnknownSubscription { subscription: "nope".into() },
        ),
        (Event::ChildFailed { call: "nope".into(), code: "x".into() }, Rejection::UnknownCall { call: "nope".into() }),
        (Event::ResolveIncident { incident: "nope".into() }, Rejection::UnknownIncident { incident: "nope".into() }),
    ];
    for (event, want) in unknown {
        assert_eq!(run.refused(event), want);
    }
    let job = run.job("credit.check");
    let r = run.refused(Event::JobCompleted { job, output: json!([1, 2]) });
    assert!(matches!(r, Rejection::InvalidOutput { .. }));
}

#[test]
fn a_definition_of_another_process_is_refused() {
    let run = Run::reference("order_approval");
    let other = Instance::new("i2", "ship_then_invoice", 1);
    let r = step(&run.def, &other, Event::Cancel { by: "x".into() }, t0()).unwrap_err();
    assert_eq!(
        r,
        Rejection::WrongDefinition { instance: "ship_then_invoice".into(), definition: "order_approval".into() }
    );
}

#[test]
fn a_named_start_must_exist() {
    let mut run = Run::reference("order_approval");
    let r = run.refused(Event::Start {
        variables: order("1"),
        business_key: None,
        start: Some("nowhere".into()),
        started_by: None,
        on_behalf_of: None,
    });
    assert_eq!(r, Rejection::UnknownStart { start: "nowhere".into() });
}

#[test]
fn start_keeps_the_business_key_and_version_counts_events() {
    let mut run = Run::reference("order_approval");
    run.ok(Event::Start {
        variables: order("5000"),
        business_key: Some("SO-1".into()),
        start: None,
        started_by: None,
        on_behalf_of: None,
    });
    assert_eq!(run.instance.business_key(), Some("SO-1"));
    assert_eq!(run.instance.version(), 1);
    run.complete_job("credit.check", credit("50000", "0", "A"));
    assert_eq!(run.instance.version(), 2);
}
