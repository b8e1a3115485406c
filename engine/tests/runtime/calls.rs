//! Call activities: a called process takes its first step in its caller's write.

use chrono::TimeDelta;
use cloverleaf_engine::Status;
use cloverleaf_engine::runtime::Correlation;
use cloverleaf_engine::store::Store;
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
async fn a_called_process_that_refuses_its_inputs_never_runs_and_its_caller_stays_at_the_call() {
    let Some(env) = Env::new().await else { return };
    env.engine.deploy(&[("calls.flow", CALLS)]).await.unwrap();
    // `pay` takes only an amount above zero: its start is refused, as an owed start event's would be.
    let parent = env.engine.start("parent", None, json!({"invoice_id": "INV-1", "amount": "0"})).await.unwrap();
    assert_eq!(env.status(&parent).await, Status::Running);
    assert!(env.engine.store().pending(10).await.unwrap().is_empty());
    let call = env.instance(&parent).await.calls().keys().next().map(|c| c.0.clone()).expect("the call is open");
    let child = env.engine.store().load_instance(&call.as_str().into()).await.unwrap().unwrap();
    assert_eq!((child.version, child.parent_id.as_deref()), (0, Some(parent.as_str())));
    assert!(env.engine.fetch_and_lock("w1", &["pay.check"], 10, TimeDelta::seconds(60)).await.unwrap().is_empty());
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
    // The child cannot take the payment (not an amount): its start is left to an owed event, as
    // a refused start is, and the caller's own step stands.
    let parent = env.engine.start("quick", None, json!({"invoice_id": "INV-1", "amount": "1.00"})).await.unwrap();
    assert_eq!(env.status(&parent).await, Status::Running);
}
