//! Human tasks: form validation, separation of duties, delegation.

use cloverleaf_dsl::expr::Value;
use cloverleaf_engine::{Event, Rejection, Status};
use serde_json::json;

use crate::harness::{Run, credit, lines, order, text};

/// An order of `amount` waiting for the sales manager.
fn at_manager(amount: &str) -> Run {
    let mut run = Run::reference("order_approval");
    run.start(order(amount));
    run.complete_job("credit.check", credit("1000000", "0", "A"));
    assert_eq!(run.token_nodes(), ["manager_approval"]);
    run
}

#[test]
fn approval_opens_a_task_with_title_sla_reminder_and_escalation() {
    let mut run = Run::reference("order_approval");
    run.start(order("20000"));
    let effects = run.complete_job("credit.check", credit("1000000", "0", "A"));
    assert_eq!(
        lines(&effects),
        [
            "create task i1.task.3 \"Approve order SO-1\" roles=sales.manager assignee=- due=2026-01-06T09:00:00+00:00",
            "timer i1.timer.4 manager_approval at 2026-01-06T09:00:00+00:00",
            "timer i1.timer.5 manager_approval at 2026-01-05T17:00:00+00:00",
            "timer i1.timer.6 manager_approval at 2026-01-06T09:00:00+00:00",
        ]
    );
}

#[test]
fn a_form_field_of_the_wrong_type_is_refused() {
    let mut run = at_manager("20000");
    let r = run.complete_task("manager_approval", "mia", json!({"approve": "yes"})).unwrap_err();
    assert_eq!(r, Rejection::InvalidForm { fields: vec![("approve".into(), "expected bool, found \"yes\"".into())] });
}

#[test]
fn missing_required_and_unknown_fields_are_all_listed() {
    let mut run = at_manager("20000");
    let r = run.complete_task("manager_approval", "mia", json!({"comment": 3, "colour": "red"})).unwrap_err();
    assert_eq!(
        r,
        Rejection::InvalidForm {
            fields: vec![
                ("approve".into(), "required".into()),
                ("comment".into(), "expected text, found 3".into()),
                ("colour".into(), "not a field of this form".into()),
            ]
        }
    );
    assert_eq!(run.token_nodes(), ["manager_approval"], "nothing moved");
}

#[test]
fn form_fields_set_variables_and_the_approval_record() {
    let mut run = at_manager("20000");
    run.complete_task("manager_approval", "mia", json!({"approve": true, "comment": "fine"})).unwrap();
    assert_eq!(run.status(), &Status::Completed { outcome: Some("approved".into()) });
    assert_eq!(run.var("approve"), Value::Bool(true));
    assert_eq!(run.var("comment"), text("fine"));
    let Value::Record(record) = run.var("manager_approval") else { panic!() };
    assert_eq!(record["completed_by"], text("mia"));
    assert_eq!(record["completed_at"].to_json(), json!("2026-01-05T09:00:00Z"));
}

#[test]
fn the_requester_cannot_approve_their_own_order() {
    let mut run = at_manager("20000");
    let r = run.complete_task("manager_approval", "rita", json!({"approve": true})).unwrap_err();
    assert_eq!(r, Rejection::SeparationOfDuties { rule: "requested_by".into(), user: "rita".into() });
}

#[test]
fn nor_can_a_substitute_acting_for_the_requester() {
    let mut run = at_manager("20000");
    let task = run.task("manager_approval");
    let r = run.refused(Event::TaskCompleted {
        task,
        by: "sam".into(),
        on_behalf_of: Some("rita".into()),
        form: json!({"approve": true}),
    });
    assert_eq!(r, Rejection::SeparationOfDuties { rule: "requested_by".into(), user: "rita".into() });
}

#[test]
fn the_cfo_must_differ_from_the_first_approver() {
    let mut run = at_manager("150000");
    run.complete_task("manager_approval", "mia", json!({"approve": true})).unwrap();
    assert_eq!(run.token_nodes(), ["cfo_approval"]);
    let r = run.complete_task("cfo_approval", "mia", json!({"approve": true})).unwrap_err();
    assert_eq!(r, Rejection::SeparationOfDuties { rule: "manager_approval.completed_by".into(), user: "mia".into() });
    run.complete_task("cfo_approval", "carl", json!({"approve": true})).unwrap();
    assert_eq!(run.status(), &Status::Completed { outcome: Some("approved".into()) });
}

#[test]
fn a_manager_who_approved_through_a_substitute_cannot_be_the_cfo() {
    let mut run = at_manager("150000");
    let task = run.task("manager_approval");
    run.ok(Event::TaskCompleted {
        task,
        by: "sam".into(),
        on_behalf_of: Some("mia".into()),
        form: json!({"approve": true}),
    });
    // Neither the substitute nor the manager they acted for may give the second signature.
    for user in ["sam", "mia"] {
        let r = run.complete_task("cfo_approval", user, json!({"approve": true})).unwrap_err();
        assert_eq!(
            r,
            Rejection::SeparationOfDuties { rule: "manager_approval.completed_by".into(), user: user.into() }
        );
    }
    let history = run.effects.iter().find_map(|e| match e {
        cloverleaf_engine::Effect::History(h) if h.kind == cloverleaf_engine::HistoryKind::TaskCompleted => {
            Some((h.who.clone(), h.on_behalf_of.clone()))
        }
        _ => None,
    });
    assert_eq!(history, Some((Some("sam".into()), Some("mia".into()))));
}

#[test]
fn a_rejection_by_the_manager_ends_rejected() {
    let mut run = at_manager("20000");
    run.complete_task("manager_approval", "mia", json!({"approve": false})).unwrap();
    assert_eq!(run.status(), &Status::Completed { outcome: Some("rejected".into()) });
    assert!(run.instance.timers().is_empty(), "the task's timers are closed with it");
}

#[test]
fn assignee_expressions_assign_the_task() {
    let mut run = Run::snippet(
        r#"process p "P" {
          input { owner: user }
          var ok: bool = false
          start -> sign
          approval sign "Sign for {owner}" { assignee owner  form { ok: bool }  due 2d } -> done
          end done "Done"
        }"#,
    );
    let effects = run.start(json!({"owner": "olga"}));
    assert_eq!(
        lines(&effects)[0],
        "create task i1.task.2 \"Sign for olga\" roles= assignee=olga due=2026-01-07T09:00:00+00:00"
    );
}
