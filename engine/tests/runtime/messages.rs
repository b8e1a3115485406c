//! Messages: correlation, buffering before the subscription, idempotency by message id.

use chrono::TimeDelta;
use cloverleaf_engine::runtime::{Correlation, Message};
use serde_json::json;

use crate::common::PAY;
use crate::harness::{Env, completed};

/// A payment of 100.50 for `invoice`, with message id `id`.
pub fn payment(invoice: &str, id: &str) -> Message {
    Message {
        name: "payment.received".into(),
        correlation_key: invoice.into(),
        payload: json!({"amount": "100.50"}),
        message_id: Some(id.into()),
        ttl: TimeDelta::days(1),
    }
}

#[tokio::test]
async fn a_message_reaches_the_waiting_instance_once_per_message_id() {
    let Some(env) = Env::new().await else { return };
    env.engine.deploy(&[("pay.flow", PAY)]).await.unwrap();
    let id = env.engine.start("pay", None, json!({"invoice_id": "INV-1"})).await.unwrap();
    assert_eq!(env.engine.correlate(payment("INV-2", "m0")).await.unwrap(), Correlation::Buffered);
    let delivered = env.engine.correlate(payment("INV-1", "m1")).await.unwrap();
    assert_eq!(delivered, Correlation::Delivered { instance: id.clone() });
    assert_eq!(env.status(&id).await, completed("done"));
    assert_eq!(env.instance(&id).await.variable("received").map(|v| v.to_string()), Some("100.50".into()));
    assert_eq!(env.engine.correlate(payment("INV-1", "m1")).await.unwrap(), Correlation::Duplicate);
}

#[tokio::test]
async fn a_message_that_arrives_early_is_buffered_and_delivered_when_the_subscription_opens() {
    let Some(env) = Env::new().await else { return };
    env.engine.deploy(&[("pay.flow", PAY)]).await.unwrap();
    assert_eq!(env.engine.correlate(payment("INV-1", "m1")).await.unwrap(), Correlation::Buffered);
    assert_eq!(env.engine.correlate(payment("INV-1", "m1")).await.unwrap(), Correlation::Duplicate);
    let id = env.engine.start("pay", None, json!({"invoice_id": "INV-1"})).await.unwrap();
    assert_eq!(env.status(&id).await, completed("done"));
    // Consumed: a second instance waits.
    let second = env.engine.start("pay", None, json!({"invoice_id": "INV-1"})).await.unwrap();
    assert_eq!(env.status(&second).await, cloverleaf_engine::Status::Running);
}

#[tokio::test]
async fn a_buffered_message_expires_after_its_ttl() {
    let Some(env) = Env::new().await else { return };
    env.engine.deploy(&[("pay.flow", PAY)]).await.unwrap();
    assert_eq!(env.engine.correlate(payment("INV-1", "m1")).await.unwrap(), Correlation::Buffered);
    env.advance(TimeDelta::days(2));
    let id = env.engine.start("pay", None, json!({"invoice_id": "INV-1"})).await.unwrap();
    assert_eq!(env.status(&id).await, cloverleaf_engine::Status::Running);
}

const TWO_RECEIVES: &str = r#"process note_and_pay "Note and pay" {
  input { invoice_id: text }
  var noted: date?
  var received: money = 0
  start -> split
  parallel split { -> note  -> pay }
  receive note "Note the payment date" { message "payment.received" key invoice_id  out { noted: amount } } -> meet
  receive pay "Wait for payment" { message "payment.received" key invoice_id  out { received: amount } } -> meet
  join meet -> done
  end done "Done"
}"#;

#[tokio::test]
async fn a_buffered_message_one_receive_cannot_take_goes_to_another_that_can() {
    let Some(env) = Env::new().await else { return };
    env.engine.deploy(&[("two.flow", TWO_RECEIVES)]).await.unwrap();
    assert_eq!(env.engine.correlate(payment("INV-1", "m1")).await.unwrap(), Correlation::Buffered);
    // `note` wants a date and passes the payment over; `pay` takes it in the same step.
    let id = env.engine.start("note_and_pay", None, json!({"invoice_id": "INV-1"})).await.unwrap();
    let instance = env.instance(&id).await;
    assert_eq!(instance.variable("received").map(|v| v.to_string()), Some("100.50".into()));
    let waiting: Vec<&str> = instance.subscriptions().values().map(|s| s.node.as_str()).collect();
    assert_eq!(waiting, ["note"]);
}
