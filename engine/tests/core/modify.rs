//! An operator's repairs: a token cancelled, one started before a node, a variable set; each in
//! the history with who and why, and refused with the reason when it does not fit.

use cloverleaf_engine::{Effect, Event, HistoryKind, Modification, Rejection, Status, TokenId};
use serde_json::json;

use crate::harness::{Run, order};

fn modify(run: &mut Run, modification: Modification) -> Result<Vec<Effect>, Rejection> {
    run.send(Event::Modify { modification, by: "ada".into(), reason: "repair".into() })
}

fn at_manager() -> Run {
    let mut run = Run::reference("order_approval");
    run.start(order("50000.00"));
    run.complete_job("credit.check", json!({"credit_limit": "100000.00", "open_ar": "0.00", "risk": "B"}));
    run
}

fn problem(r: Rejection) -> String {
    match r {
        Rejection::CannotModify { problems } => format!("{}: {}", problems[0].0, problems[0].1),
        other => panic!("expected a refused modification, got {other}"),
    }
}

#[test]
fn an_operator_sets_a_variable_starts_a_token_and_cancels_one() {
    let mut run = at_manager();
    let effects = modify(&mut run, Modification::SetVariable { name: "risk".into(), value: json!("A") }).unwrap();
    assert_eq!(run.var("risk").to_json(), json!("A"));
    let Some(Effect::History(h)) = effects.first() else { panic!("{effects:?}") };
    assert_eq!(
        (h.kind, h.who.as_deref(), h.detail.as_deref()),
        (HistoryKind::Modified, Some("ada"), Some("set `risk`: repair"))
    );

    modify(&mut run, Modification::StartBefore { node: "cfo_approval".into() }).unwrap();
    assert_eq!(run.token_nodes(), ["cfo_approval", "manager_approval"]);
    let manager: TokenId =
        *run.instance.tokens().iter().find(|(_, t)| t.node == "manager_approval").map(|(id, _)| id).unwrap();
    let task = run.task("manager_approval");
    let effects = modify(&mut run, Modification::CancelToken { token: manager }).unwrap();
    assert!(effects.contains(&Effect::CancelTask { task }));
    assert_eq!(run.token_nodes(), ["cfo_approval"]);
    run.complete_task("cfo_approval", "carl", json!({"approve": true})).unwrap();
    assert_eq!(run.status(), &Status::Completed { outcome: Some("approved".into()) });
}

#[test]
fn a_modification_that_does_not_fit_is_refused_with_the_reason() {
    let mut run = at_manager();
    let before = run.instance.clone();
    let cases = [
        (
            Modification::StartBefore { node: "nowhere".into() },
            "node nowhere: the definition the instance runs has no such node",
        ),
        (Modification::SetVariable { name: "amount".into(), value: json!("lots") }, "variable amount"),
        (Modification::SetVariable { name: "amount".into(), value: json!("-5.00") }, "must be greater than 0"),
        (Modification::SetVariable { name: "nope".into(), value: json!(1) }, "declares no such variable"),
        (Modification::CancelToken { token: TokenId(99) }, "token t99: the instance has no such token"),
        (Modification::CancelToken { token: *run.instance.tokens().keys().next().unwrap() }, "last token"),
    ];
    for (modification, expected) in cases {
        let text = problem(modify(&mut run, modification).unwrap_err());
        assert!(text.contains(expected), "{text}");
        assert_eq!(run.instance, before);
    }
    run.complete_task("manager_approval", "mia", json!({"approve": false})).unwrap();
    let refused = modify(&mut run, Modification::StartBefore { node: "route".into() }).unwrap_err();
    assert!(matches!(refused, Rejection::InvalidState { .. }), "{refused}");
}

#[test]
fn a_token_is_not_started_alone_inside_a_parallel_branch() {
    let mut run = Run::reference("ship_then_invoice");
    run.start(json!({"order_id": "SO-1", "customer_id": "C-7", "amount": "1190.00"}));
    let text = problem(modify(&mut run, Modification::StartBefore { node: "post_cost".into() }).unwrap_err());
    assert!(text.contains("inside a parallel branch"), "{text}");
}
