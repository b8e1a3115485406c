//! Business calendars in the durable runtime: the due time, the reminder and the escalation of
//! an approval counted on China's 2026 calendar, stored, fired by the timer pass and equal to
//! what the core computes.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::harness::{Env, reference_files};

const PAYMENT: &str = r#"
process supplier_payment "Supplier payment" {
  calendar cn
  input { invoice_id: text }
  start -> review
  approval review "Approve invoice {invoice_id}" {
    role finance.controller
    form { approve: bool }
    due 3 business days
    remind after 4 business hours
    escalate after 5 business days -> cfo_review
  } -> paid
  approval cfo_review "Approve invoice {invoice_id} (escalated)" {
    role finance.cfo
    form { approve: bool }
    due 1 business day
  } -> paid
  end paid "Paid"
}
"#;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

#[tokio::test]
async fn an_approval_due_3_business_days_after_the_friday_before_spring_festival() {
    let Some(env) = Env::new().await else { return };
    let files: Vec<(String, String)> = reference_files()
        .into_iter()
        .filter(|(n, _)| n == "roles.flow" || n == "calendars.flow")
        .chain([("payment.flow".to_string(), PAYMENT.to_string())])
        .collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    env.engine.deploy(&refs).await.unwrap();
    // Friday 13 February 2026, 16:00 in Shanghai: the last working day before Spring Festival
    // but for the make-up Saturday.
    env.clock.advance_to(utc("2026-02-13T08:00:00Z"));
    let id = env.engine.start("supplier_payment", Some("INV-7"), json!({"invoice_id": "INV-7"})).await.unwrap();
    let task = env.engine.tasks(Some(&id)).await.unwrap().remove(0);
    assert_eq!(task.due_at, Some(utc("2026-02-25T08:00:00Z")), "Wednesday after the holiday, 16:00");

    // Nothing fires during Friday evening; the reminder on the make-up Saturday at 11:00.
    env.clock.advance_to(utc("2026-02-14T02:59:00Z"));
    assert_eq!(env.engine.fire_due_timers().await.unwrap(), 0);
    env.clock.advance_to(utc("2026-02-14T03:00:00Z"));
    assert_eq!(env.engine.fire_due_timers().await.unwrap(), 1);
    // The holiday week passes without a timer.
    env.clock.advance_to(utc("2026-02-24T08:00:00Z"));
    assert_eq!(env.engine.fire_due_timers().await.unwrap(), 0);
    // Due on Wednesday; escalated on Friday the 27th, to a task due on Saturday the 28th (make-up).
    env.clock.advance_to(utc("2026-02-25T08:00:00Z"));
    assert_eq!(env.engine.fire_due_timers().await.unwrap(), 1);
    env.clock.advance_to(utc("2026-02-27T08:00:00Z"));
    assert!(env.engine.fire_due_timers().await.unwrap() >= 1);
    let tasks = env.engine.tasks(Some(&id)).await.unwrap();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!((tasks[0].node.as_str(), tasks[0].due_at), ("cfo_review", Some(utc("2026-02-28T08:00:00Z"))));
}
