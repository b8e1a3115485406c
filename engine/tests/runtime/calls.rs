//! Call activities: a called process takes its first step in its caller's write.

use chrono::TimeDelta;
use cloverleaf_engine::runtime::Correlation;
use cloverleaf_engine::store::{Queries, Store};
use cloverleaf_engine::{Event, InstanceId, Modification, START_REFUSED, Status};
use serde_json::json;

use crate::harness::{Env, completed};
use crate::messages::payment;

const CALLS: &str = r#"
process parent "Parent" {
  input { invoice_id: text, amount: money }
  var received: money = 0
  start -> collect
  call collect "Collect" { process pay  in { invoice_id, amount }  out { received } } -> done
  end done "Done"
}
process guarded "Guarded" {
  input { invoice_id: text, amount: money }
  var received: money = 0
  start -> collect
  call collect "Collect" { process pay  in { invoice_id, amount }  out { received }  on error "start_refused" -> refused } -> done
  end done "Done"
  end refused "Refused"
}
process pay "Pay" {
  input { invoice_id: text, amount: money > 0 }
  var received: money = 0
  start -> check
  task check "Check" { job "pay.check" } -> wait_pay
  receive wait_pay "Wait for payment" { message "payment.received" key invoice_id  out { received: amount } } -> paid
  end paid "Paid"
}
process quick "Quick" {
  input { invoice_id: text, amount: money }
  var received: money = 0
  start -> collect
  call collect "Collect" { process pay_now  in { invoice_id }  out { received } } -> done
  end done "Done"
}
process both "Both" {
  input { invoice_id: text }
  start -> split
  parallel split { -> first  -> second }
  call first "First" { process pay_now  in { invoice_id } } -> meet
  call second "Second" { process pay_now  in { invoice_id } } -> meet
  join meet -> done
  end done "Done"
}
process split_pay "Split pay" {
  input { invoice_id: text }
  var noted: date?
  start -> split
  parallel split { -> note  -> collect }
  receive note "Note the payment date" { message "payment.received" key invoice_id  out { noted: amount } } -> meet
  call collect "Collect" { process pay_now  in { invoice_id } } -> meet
  join meet -> done
  end done "Done"
}
process pay_now "Pay now" {
  input { invoice_id: text }
  var received: money = 0
  start -> wait_pay
  receive wait_pay "Wait for payment" { message "payment.received" key invoice_id  out { received: amount } } -> paid
  end paid "Paid"
}
"#;

#[tokio::test]
async fn a_called_process_starts_in_the_same_write_as_its_caller() {
    let Some(env) = Env::new().await else { return };
    env.engine.deploy(&[("calls.flow", CALLS)]).await.unwrap();
    let before = env.engine.writer_stats().writes;
    let parent = env.engine.start("parent", None, json!({"invoice_id": "INV-1", "amount": "100.50"})).await.unwrap();
    // One write: the parent's start with its child's, no owed start event applied after it.
    assert_eq!(env.engine.writer_stats().writes - before, 1);
    assert!(env.engine.store().pending(10).await.unwrap().is_empty());
    let job = env.one_job("pay.check").await;
    assert_ne!(job.instance_id, parent);
    let child = env.engine.store().load_instance(&job.instance_id).await.unwrap().unwrap();
    assert_eq!((child.version, child.parent_id.as_deref()), (1, Some(parent.as_str())));
    assert!(env.engine.verify_history(&job.instance_id).await.unwrap().is_intact());
    env.engine.complete_job(&job.id, job.epoch, json!({})).await.unwrap();
    let delivered = env.engine.correlate(payment("INV-1", "m1")).await.unwrap();
    assert_eq!(delivered, Correlation::Delivered { instance: job.instance_id.clone() });
    assert_eq!(env.status(&job.instance_id).await, completed("paid"));
    assert_eq!(env.status(&parent).await, completed("done"));
    assert_eq!(env.instance(&parent).await.variable("received").map(|v| v.to_string()), Some("100.50".into()));
}

#[tokio::test]
async fn a_called_process_carries_its_callers_business_key_started_at_once_or_owed() {
    let Some(env) = Env::new().await else { return };
    env.engine.deploy(&[("calls.flow", CALLS)]).await.unwrap();
    let variables = json!({"invoice_id": "INV-1", "amount": "100.50"});
    let parent = env.engine.start("parent", Some("SO-7"), variables).await.unwrap();
    let job = env.one_job("pay.check").await;
    let child = env.engine.store().load_instance(&job.instance_id).await.unwrap().unwrap();
    assert_eq!(child.business_key.as_deref(), Some("SO-7"), "the row, which lists and searches read");
    assert_eq!(env.instance(&job.instance_id).await.business_key(), Some("SO-7"), "the instance's own state");
    // A search by the order number finds the whole case: the order and what it called.
    let found = env.engine.store().instances(None, None, Some("SO-7"), 10, 0).await.unwrap();
    let mut ids: Vec<&str> = found.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    let mut expected = vec![parent.as_str(), job.instance_id.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    // A child whose start is owed (here refused) is created under the same key.
    let refused =
        env.engine.start("parent", Some("SO-8"), json!({"invoice_id": "INV-2", "amount": "0"})).await.unwrap();
    let child = refused_child(&env, &refused).await;
    let row = env.engine.store().load_instance(&child).await.unwrap().unwrap();
    assert_eq!(row.business_key.as_deref(), Some("SO-8"));
    // A caller without a key gives its children none.
    let keyless = env.engine.start("quick", None, json!({"invoice_id": "INV-3", "amount": "1"})).await.unwrap();
    let children = env.engine.store().instances(Some("pay_now"), None, None, 10, 0).await.unwrap();
    let child = children.iter().find(|r| r.parent_id.as_ref() == Some(&keyless)).expect("the keyless call");
    assert_eq!(child.business_key, None);
}

#[tokio::test]
async fn a_called_process_gets_the_message_buffered_for_it_in_its_first_step() {
    let Some(env) = Env::new().await else { return };
    env.engine.deploy(&[("calls.flow", CALLS)]).await.unwrap();
    assert_eq!(env.engine.correlate(payment("INV-1", "m1")).await.unwrap(), Correlation::Buffered);
    let first = env.engine.start("quick", None, json!({"invoice_id": "INV-1", "amount": "100.50"})).await.unwrap();
    assert_eq!(env.status(&first).await, completed("done"));
    assert_eq!(env.instance(&first).await.variable("received").map(|v| v.to_string()), Some("100.50".into()));
    // Delivered once: the next caller's child waits for a payment of its own.
    let second = env.engine.start("quick", None, json!({"invoice_id": "INV-1", "amount": "100.50"})).await.unwrap();
    assert_eq!(env.status(&second).await, Status::Running);
    let delivered = env.engine.correlate(payment("INV-1", "m2")).await.unwrap();
    assert!(matches!(delivered, Correlation::Delivered { .. }), "{delivered:?}");
    assert_eq!(env.status(&second).await, completed("done"));
}

#[tokio::test]
async fn a_called_process_that_refuses_its_inputs_fails_and_its_caller_gets_an_incident_to_retry() {
    let Some(env) = Env::new().await else { return };
    env.engine.deploy(&[("calls.flow", CALLS)]).await.unwrap();
    // `pay` takes only an amount above zero: it refuses its start, and fails with `start_refused`.
    let parent = env.engine.start("parent", None, json!({"invoice_id": "INV-1", "amount": "0"})).await.unwrap();
    assert!(env.engine.store().pending(10).await.unwrap().is_empty(), "nothing is left owed");
    let child = refused_child(&env, &parent).await;
    assert_eq!(env.status(&child).await, Status::Failed { code: START_REFUSED.into() });
    let history = env.engine.history(&child).await.unwrap();
    let failed = history.last().expect("the child's history");
    assert_eq!(failed.kind, "failed");
    assert!(failed.detail.contains("start_refused: invalid inputs: amount"), "{failed:?}");
    assert!(env.engine.fetch_and_lock("w1", &["pay.check"], 10, TimeDelta::seconds(60)).await.unwrap().is_empty());
    // The caller is not left waiting for ever: an incident on the call says what happened.
    assert_eq!(env.status(&parent).await, Status::Running);
    let incidents = env.instance(&parent).await.incidents().clone();
    let (incident, open) = incidents.iter().next().expect("an incident on the call");
    assert_eq!(open.node, "collect");
    let expected = format!("`pay` refused its start (the reason is in the history of the instance called for {child})");
    assert!(open.message.contains(&expected), "{}", open.message);
    // An operator corrects the amount and retries: the call starts a new `pay`, which runs.
    let amount = Modification::SetVariable { name: "amount".into(), value: json!("100.50") };
    env.engine.modify(&parent, amount, "olga", "the order's amount was missing").await.unwrap();
    env.engine.retry_incident(incident).await.unwrap();
    let job = env.one_job("pay.check").await;
    assert_ne!(job.instance_id, child);
    env.engine.complete_job(&job.id, job.epoch, json!({})).await.unwrap();
    env.engine.correlate(payment("INV-1", "m1")).await.unwrap();
    assert_eq!(env.status(&parent).await, completed("done"));
    assert!(env.instance(&parent).await.incidents().is_empty());
}

#[tokio::test]
async fn a_refused_start_takes_the_callers_on_error_path() {
    let Some(env) = Env::new().await else { return };
    env.engine.deploy(&[("calls.flow", CALLS)]).await.unwrap();
    let parent = env.engine.start("guarded", None, json!({"invoice_id": "INV-1", "amount": "-5"})).await.unwrap();
    assert_eq!(env.status(&parent).await, completed("refused"));
    assert!(env.instance(&parent).await.incidents().is_empty());
    let child = refused_child(&env, &parent).await;
    assert_eq!(env.status(&child).await, Status::Failed { code: START_REFUSED.into() });
}

/// The called instance whose failure with `start_refused` `parent` was told of.
async fn refused_child(env: &Env, parent: &InstanceId) -> InstanceId {
    let events = env.engine.events(parent).await.unwrap();
    let refused = events.iter().find_map(|(event, _)| match event {
        Event::ChildFailed { call, code } if code == START_REFUSED => Some(InstanceId::from(call.0.as_str())),
        _ => None,
    });
    refused.expect("the caller was told its child refused its start")
}

#[tokio::test]
async fn two_called_processes_started_in_one_write_share_a_buffered_message_out_once() {
    let Some(env) = Env::new().await else { return };
    env.engine.deploy(&[("calls.flow", CALLS)]).await.unwrap();
    assert_eq!(env.engine.correlate(payment("INV-1", "m1")).await.unwrap(), Correlation::Buffered);
    // Both children wait for a payment of INV-1: one takes the buffered one in the write that
    // starts them, the other waits for the next.
    let parent = env.engine.start("both", None, json!({"invoice_id": "INV-1"})).await.unwrap();
    assert_eq!(env.status(&parent).await, Status::Running);
    let delivered = env.engine.correlate(payment("INV-1", "m2")).await.unwrap();
    assert!(matches!(delivered, Correlation::Delivered { .. }), "{delivered:?}");
    assert_eq!(env.status(&parent).await, completed("done"));
}

#[tokio::test]
async fn a_buffered_message_a_called_process_refuses_does_not_refuse_its_caller() {
    let Some(env) = Env::new().await else { return };
    env.engine.deploy(&[("calls.flow", CALLS)]).await.unwrap();
    let mut bad = payment("INV-1", "m1");
    bad.payload = json!({"amount": "lots"});
    assert_eq!(env.engine.correlate(bad).await.unwrap(), Correlation::Buffered);
    // The child cannot take the payment (not an amount): it starts without it, and the caller's
    // own step stands.
    let parent = env.engine.start("quick", None, json!({"invoice_id": "INV-1", "amount": "1.00"})).await.unwrap();
    assert_eq!(env.status(&parent).await, Status::Running);
    // Its start itself was not refused: it does not fail for a message it cannot take.
    assert!(env.instance(&parent).await.incidents().is_empty());
    let call = env.instance(&parent).await.calls().keys().next().map(|c| c.0.clone()).expect("the call is open");
    assert_eq!(env.status(&call.as_str().into()).await, Status::Running);
    // The payment it can take reaches it; the one it could not stays buffered until it expires.
    let delivered = env.engine.correlate(payment("INV-1", "m2")).await.unwrap();
    assert_eq!(delivered, Correlation::Delivered { instance: call.as_str().into() });
    assert_eq!(env.status(&parent).await, completed("done"));
}

#[tokio::test]
async fn a_buffered_message_the_caller_cannot_take_still_reaches_the_child_it_starts() {
    let Some(env) = Env::new().await else { return };
    env.engine.deploy(&[("calls.flow", CALLS)]).await.unwrap();
    assert_eq!(env.engine.correlate(payment("INV-1", "m1")).await.unwrap(), Correlation::Buffered);
    // The caller's own receive wants a date (the amount is not one); the child it starts in the
    // same write takes the payment.
    let parent = env.engine.start("split_pay", None, json!({"invoice_id": "INV-1"})).await.unwrap();
    assert!(env.engine.store().buffered_messages(env.engine.now()).await.unwrap().is_empty(), "taken by the child");
    let instance = env.instance(&parent).await;
    assert!(instance.calls().is_empty(), "the child completed: {:?}", instance.calls());
    assert_eq!(instance.subscriptions().values().map(|s| s.message.as_str()).collect::<Vec<_>>(), ["payment.received"]);
}

#[tokio::test]
async fn buffered_messages_a_subscriber_cannot_take_do_not_hold_it_back_however_many() {
    let Some(env) = Env::new().await else { return };
    env.engine.deploy(&[("calls.flow", CALLS)]).await.unwrap();
    // More than the 64 messages one step delivers: each is passed over, none refuses the step.
    for n in 0..70 {
        let mut bad = payment("INV-1", &format!("bad-{n}"));
        bad.payload = json!({"amount": "lots"});
        assert_eq!(env.engine.correlate(bad).await.unwrap(), Correlation::Buffered);
    }
    assert_eq!(env.engine.correlate(payment("INV-1", "good")).await.unwrap(), Correlation::Buffered);
    let parent = env.engine.start("quick", None, json!({"invoice_id": "INV-1", "amount": "1.00"})).await.unwrap();
    assert_eq!(env.status(&parent).await, completed("done"), "the good payment, buffered last, was taken");
    let left = env.engine.store().buffered_messages(env.engine.now()).await.unwrap();
    assert_eq!(left.len(), 70, "the ones it could not take wait until they expire");
}
