//! The in-memory engine's own promises: versioned deployments, typed errors, auto-run handlers,
//! buffered messages that expire, and a readable timeline.

use chrono::TimeDelta;
use cloverleaf_dsl::Project;
use cloverleaf_engine::memory::{Error, JobOutcome};
use cloverleaf_engine::{InstanceId, MemoryEngine, Rejection, Status};
use serde_json::json;

use crate::harness::{completed, order, t0};

/// The in-memory engine itself, with every reference process deployed.
fn engine() -> MemoryEngine {
    let mut engine = MemoryEngine::new(t0());
    engine.deploy_compilation(&crate::common::reference_project().compile()).unwrap();
    engine
}

fn status(engine: &MemoryEngine, id: &InstanceId) -> Status {
    engine.instance(id).unwrap().status().clone()
}

fn task_at(engine: &MemoryEngine, id: &InstanceId, node: &str) -> cloverleaf_engine::memory::Task {
    engine.tasks().into_iter().find(|t| t.instance == *id && t.node == node).cloned().expect("an open task")
}

const FLOW: &str = r#"process fee "Fee" {
  input { amount: money }
  var fee: money = 0
  start -> price
  task price { job "fee.compute" in { amount } out { fee } } -> done
  end done "Done"
}"#;

fn compile(src: &str) -> cloverleaf_dsl::Compilation {
    let mut project = Project::new();
    project.add("fee.flow", src);
    project.compile()
}

#[test]
fn the_same_definition_deploys_once_and_running_instances_keep_their_version() {
    let mut engine = MemoryEngine::new(t0());
    let first = engine.deploy_compilation(&compile(FLOW)).unwrap();
    assert_eq!((first[0].version, first[0].new), (1, true));
    let again = engine.deploy_compilation(&compile(FLOW)).unwrap();
    assert_eq!((again[0].version, again[0].new), (1, false));
    let old = engine.start("fee", json!({"amount": "10.00"})).unwrap();
    let changed = engine.deploy_compilation(&compile(&FLOW.replace("\"Done\"", "\"Finished\""))).unwrap();
    assert_eq!((changed[0].version, changed[0].new), (2, true));
    let new = engine.start("fee", json!({"amount": "10.00"})).unwrap();
    assert_eq!(engine.instance(&old).unwrap().process_version(), 1);
    assert_eq!(engine.instance(&new).unwrap().process_version(), 2);
    assert_eq!((old.as_str(), new.as_str()), ("fee-1", "fee-2"));
}

#[test]
fn bad_requests_get_typed_errors_and_change_nothing() {
    let mut engine = MemoryEngine::new(t0());
    assert!(matches!(engine.deploy_compilation(&compile("process {")), Err(Error::Compilation(_))));
    assert!(matches!(engine.start("fee", json!({})), Err(Error::UnknownProcess { .. })));
    engine.deploy_compilation(&compile(FLOW)).unwrap();
    let refused = engine.start("fee", json!({"amount": "ten"})).unwrap_err();
    assert!(matches!(refused, Error::Rejected(Rejection::InvalidInput { .. })), "{refused:?}");
    assert!(engine.instances().is_empty());
    let unknown = InstanceId::from("nope-1");
    assert_eq!(engine.cancel(&unknown, "ops"), Err(Error::UnknownInstance(unknown.clone())));
    assert!(matches!(engine.complete_job(&"x.job.1".into(), json!({})), Err(Error::UnknownJob(_))));
    assert!(matches!(engine.complete_task(&"x.task.1".into(), "u", None, json!({})), Err(Error::UnknownTask(_))));
    assert!(matches!(engine.retry_incident(&"x.incident.1".into()), Err(Error::UnknownIncident(_))));
    assert!(
        engine
            .start_with(
                "fee",
                json!({"amount": "1"}),
                cloverleaf_engine::memory::StartOptions { version: Some(7), ..Default::default() }
            )
            .is_err()
    );
}

#[test]
fn a_handler_whose_result_does_not_fit_counts_as_a_failure() {
    let mut engine = MemoryEngine::new(t0());
    engine.deploy_compilation(&compile(FLOW)).unwrap();
    engine.register("fee.compute", |_| JobOutcome::complete(json!({"fee": "a lot"})));
    engine.set_auto_run(true);
    let id = engine.start("fee", json!({"amount": "10.00"})).unwrap();
    // The default policy retries 3 times after 10 s, 20 s and 40 s; with auto-run each retry
    // runs at its time, then an incident is raised.
    engine.advance(TimeDelta::minutes(5)).unwrap();
    let times: Vec<_> = engine.job_attempts().iter().map(|a| (a.at - t0()).num_seconds()).collect();
    assert_eq!(times, [0, 10, 30, 70]);
    let incidents = engine.incidents();
    assert_eq!(incidents.len(), 1);
    assert!(incidents[0].message.contains("the core refused the handler's result"), "{}", incidents[0].message);
    let incident = incidents[0].id.clone();
    engine.register("fee.compute", |job| {
        let amount: rust_decimal::Decimal = job.input["amount"].as_str().unwrap().parse().unwrap();
        JobOutcome::complete(json!({"fee": (amount * rust_decimal::Decimal::new(25, 3)).round_dp(2).to_string()}))
    });
    engine.retry_incident(&incident).unwrap();
    assert_eq!(status(&engine, &id), completed("done"));
    assert_eq!(engine.instance(&id).unwrap().variable("fee").unwrap().to_json(), json!("0.25"));
}

#[test]
fn the_timeline_tells_the_story_with_times() {
    let mut engine = engine();
    let answer = json!({"credit_limit": "100000.00", "open_ar": "0.00", "risk": "B"});
    engine.register("credit.check", move |_| JobOutcome::complete(answer.clone()));
    let id = engine.start("order_approval", order("SO-1", "25000.00")).unwrap();
    engine.run_jobs().unwrap();
    engine.advance(TimeDelta::hours(9)).unwrap();
    let task = task_at(&engine, &id, "manager_approval").id;
    engine.complete_task(&task, "mia", None, json!({"approve": true})).unwrap();
    let text = engine.timeline_text();
    let expected = "\
2026-01-05 09:00  order_approval-1  started
2026-01-05 09:00  order_approval-1  job credit.check created at check_credit
2026-01-05 09:00  order_approval-1  job at check_credit completed
2026-01-05 09:00  order_approval-1  route: otherwise
2026-01-05 09:00  order_approval-1  task \"Approve order SO-1\" for sales.manager
2026-01-05 17:00  order_approval-1  timer fired at manager_approval
2026-01-05 17:00  order_approval-1  reminder for task \"Approve order SO-1\"
2026-01-05 18:00  order_approval-1  mia completed manager_approval
2026-01-05 18:00  order_approval-1  after_first_approval: approve
2026-01-05 18:00  order_approval-1  completed: approved
";
    assert_eq!(text, expected);
}

#[test]
fn a_called_process_that_refuses_its_start_fails_and_its_caller_gets_an_incident() {
    let src = r#"process parent "Parent" {
  input { amount: money }
  start -> pay
  call pay "Pay" { process pay_out  in { amount } } -> done
  end done "Done"
}
process pay_out "Pay out" {
  input { amount: money > 0 }
  start -> done
  end done "Done"
}"#;
    let mut engine = MemoryEngine::new(t0());
    engine.deploy_compilation(&compile(src)).unwrap();
    let id = engine.start("parent", json!({"amount": "0"})).unwrap();
    let child = engine.children(&id).into_iter().next().expect("the called instance");
    assert_eq!(status(&engine, &child), Status::Failed { code: cloverleaf_engine::START_REFUSED.into() });
    assert!(engine.refusals().is_empty(), "the refusal was met: {:?}", engine.refusals());
    let incidents = engine.incidents();
    assert_eq!(incidents.len(), 1);
    assert_eq!((incidents[0].instance.clone(), incidents[0].node.as_str()), (id.clone(), "pay"));
    assert!(incidents[0].message.contains("`pay_out` refused its start"), "{}", incidents[0].message);
    assert_eq!(status(&engine, &id), Status::Running);
}

#[test]
fn a_buffered_message_a_new_subscription_cannot_take_is_passed_over_until_it_expires() {
    let mut engine = MemoryEngine::new(t0());
    engine.deploy_compilation(&compile(crate::common::PAY)).unwrap();
    engine.set_message_ttl(Some(TimeDelta::hours(1)));
    engine.correlate("payment.received", "INV-1", json!({"amount": "lots"}), Some("bad")).unwrap();
    engine.correlate("payment.received", "INV-1", json!({"amount": "100.50"}), Some("good")).unwrap();
    // As the runtime does: the payment it cannot take is passed over, the next one taken.
    let id = engine.start("pay", json!({"invoice_id": "INV-1"})).unwrap();
    assert_eq!(status(&engine, &id), completed("done"));
    assert_eq!(engine.instance(&id).unwrap().variable("received").unwrap().to_json(), json!("100.50"));
    assert!(engine.refusals().is_empty(), "{:?}", engine.refusals());
    // The one it could not take waits, until it expires.
    assert_eq!(engine.buffered_messages(), [("payment.received".to_string(), "INV-1".to_string())]);
    engine.advance(TimeDelta::hours(2)).unwrap();
    assert!(engine.buffered_messages().is_empty());
}
