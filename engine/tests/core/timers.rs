//! Timers: escalation (interrupting), reminders and side paths (non-interrupting), `every`,
//! `wait`, and `wait first`.

use cloverleaf_engine::{Event, Frame, Rejection, Status, TimerPurpose};
use serde_json::json;

use crate::harness::{Run, credit, lines, order};

fn at_manager() -> Run {
    let mut run = Run::reference("order_approval");
    run.start(order("20000"));
    run.complete_job("credit.check", credit("1000000", "0", "A"));
    run
}

#[test]
fn a_reminder_leaves_the_task_open() {
    let mut run = at_manager();
    let timer = run.timer("manager_approval", &TimerPurpose::Reminder { index: 0 });
    let effects = run.fire(timer);
    assert_eq!(lines(&effects), ["remind i1.task.3"]);
    assert_eq!(run.token_nodes(), ["manager_approval"]);
    assert_eq!(run.instance.tasks().len(), 1);
}

#[test]
fn escalation_cancels_the_task_and_its_timers_and_moves_on() {
    let mut run = at_manager();
    let due = run.timer("manager_approval", &TimerPurpose::Due);
    assert_eq!(lines(&run.fire(due)), ["remind i1.task.3 overdue"]);
    let escalate = run.timer("manager_approval", &TimerPurpose::Boundary { index: 0 });
    let effects = run.fire(escalate);
    insta::assert_snapshot!("escalation", crate::harness::pretty(&effects));
    assert_eq!(
        lines(&effects),
        [
            "cancel task i1.task.3",
            "cancel timer i1.timer.5",
            "create task i1.task.7 \"Approve order SO-1 (escalated)\" roles=sales.director assignee=- due=2026-01-07T09:00:00+00:00",
            "timer i1.timer.8 director_approval at 2026-01-07T09:00:00+00:00",
            "timer i1.timer.9 director_approval at 2026-01-06T17:00:00+00:00",
        ]
    );
    assert_eq!(run.token_nodes(), ["director_approval"]);
    // The old task is gone: completing it is refused.
    let r = run.refused(Event::TaskCompleted {
        task: "i1.task.3".into(),
        by: "mia".into(),
        on_behalf_of: None,
        form: json!({"approve": true}),
    });
    assert_eq!(r, Rejection::UnknownTask { task: "i1.task.3".into() });
}

#[test]
fn remind_every_reschedules_itself() {
    let mut run = at_manager();
    let escalate = run.timer("manager_approval", &TimerPurpose::Boundary { index: 0 });
    run.fire(escalate);
    let first = run.timer("director_approval", &TimerPurpose::Reminder { index: 0 });
    assert_eq!(
        lines(&run.fire(first)),
        ["timer i1.timer.10 director_approval at 2026-01-07T01:00:00+00:00", "remind i1.task.7"]
    );
}

#[test]
fn a_timer_is_not_fired_early() {
    let mut run = at_manager();
    let timer = run.timer("manager_approval", &TimerPurpose::Reminder { index: 0 });
    let r = run.refused(Event::TimerFired { timer: timer.clone() });
    assert!(matches!(r, Rejection::TimerNotDue { .. }), "{r:?}");
}

fn awaiting_payment() -> Run {
    let mut run = Run::reference("collect_then_reconcile");
    let effects = run
        .start(json!({"invoice_id": "INV-1", "customer_id": "C-7", "amount_due": "1190.00", "due_date": "2026-02-04"}));
    assert_eq!(
        lines(&effects),
        [
            "subscribe i1.subscription.2 payment.received key=INV-1",
            "timer i1.timer.3 await_payment at 2026-02-11T00:00:00+00:00",
            "timer i1.timer.4 await_payment at 2026-03-06T00:00:00+00:00",
            "timer i1.timer.5 await_payment at 2026-04-05T00:00:00+00:00",
        ]
    );
    run
}

#[test]
fn a_non_interrupting_timer_runs_a_side_path_while_the_wait_goes_on() {
    let mut run = awaiting_payment();
    let first = run.timer("await_payment", &TimerPurpose::Boundary { index: 0 });
    let effects = run.fire(first);
    assert_eq!(lines(&effects).len(), 1);
    assert!(lines(&effects)[0].contains("dunning.send"));
    let side = run.instance.tokens().values().find(|t| t.node == "send_first_reminder").unwrap();
    assert!(matches!(side.frames.as_slice(), [Frame::Side { owner, .. }] if owner == "await_payment"));
    assert_eq!(run.token_nodes(), ["await_payment", "send_first_reminder"]);
    run.complete_job("dunning.send", json!({}));
    // The side path ended on its own; its end gives no outcome and the wait goes on.
    assert_eq!(run.token_nodes(), ["await_payment"]);
    assert_eq!(run.status(), &Status::Running);
    assert_eq!(run.var("dunning_level").to_json(), json!("1"));
    // The payment arrives and matches: the main flow ends with its own outcome.
    let subscription = run.subscription("await_payment");
    let effects = run.ok(Event::MessageCorrelated {
        subscription,
        payload: json!({"amount": "1190.00", "reference": "INV-1", "payment_id": "P-1"}),
    });
    assert_eq!(lines(&effects)[..2], ["cancel timer i1.timer.4", "cancel timer i1.timer.5"]);
    run.complete_job("payment.match", json!({"result": "exact"}));
    run.complete_job("receipt.post", json!({}));
    assert_eq!(run.status(), &Status::Completed { outcome: Some("paid".into()) });
}

#[test]
fn paying_the_invoice_withdraws_open_dunning_work() {
    let mut run = awaiting_payment();
    let second = run.timer("await_payment", &TimerPurpose::Boundary { index: 1 });
    run.fire(second);
    run.complete_job("dunning.send", json!({}));
    assert_eq!(run.token_nodes(), ["await_payment", "call_customer"]);
    let subscription = run.subscription("await_payment");
    run.ok(Event::MessageCorrelated {
        subscription,
        payload: json!({"amount": "1190.00", "reference": "INV-1", "payment_id": "P-1"}),
    });
    run.complete_job("payment.match", json!({"result": "exact"}));
    let effects = run.complete_job("receipt.post", json!({}));
    // `paid` is a terminate end: the call-the-customer task is withdrawn.
    assert!(lines(&effects).iter().any(|l| l.starts_with("cancel task")), "{:?}", lines(&effects));
    assert_eq!(run.status(), &Status::Completed { outcome: Some("paid".into()) });
}

#[test]
fn the_instance_waits_for_a_running_side_path_before_completing() {
    let mut run = Run::snippet(
        r#"roles { ops.clerk "Clerk" }
        process p {
          input { k: text }
          start -> w
          receive w { message "m" key k  also after 1h -> side } -> done
          approval side { role ops.clerk  form { ok: bool }  due 1d } -> side_done
          end side_done "Side done"
          end done "Done"
        }"#,
    );
    run.start(json!({"k": "K-1"}));
    let timer = run.timer("w", &TimerPurpose::Boundary { index: 0 });
    run.fire(timer);
    let subscription = run.subscription("w");
    run.ok(Event::MessageCorrelated { subscription, payload: json!({}) });
    assert_eq!(run.status(), &Status::Running, "the side path's task is still open");
    run.complete_task("side", "alex", json!({"ok": true})).unwrap();
    // A side path's end gives no outcome: the main flow's end does.
    assert_eq!(run.status(), &Status::Completed { outcome: Some("done".into()) });
}

#[test]
fn an_interrupting_date_timer_cancels_the_wait() {
    let mut run = awaiting_payment();
    let last = run.timer("await_payment", &TimerPurpose::Boundary { index: 2 });
    let effects = run.fire(last);
    let l = lines(&effects);
    assert_eq!(l[..3], ["cancel timer i1.timer.3", "cancel timer i1.timer.4", "unsubscribe i1.subscription.2"]);
    assert_eq!(run.token_nodes(), ["finance_decision"]);
}

#[test]
fn every_boundary_repeats_and_each_fire_starts_a_side_path() {
    let mut run = Run::snippet(
        r#"process p "P" {
          start -> hold
          wait hold { for 10d  every 3d -> ping } -> done
          task ping { job "ping" } -> pinged
          end pinged "Pinged"
          end done "Done"
        }"#,
    );
    let effects = run.start(json!({}));
    assert_eq!(
        lines(&effects),
        ["timer i1.timer.2 hold at 2026-01-15T09:00:00+00:00", "timer i1.timer.3 hold at 2026-01-08T09:00:00+00:00"]
    );
    let every = run.timer("hold", &TimerPurpose::Boundary { index: 0 });
    let effects = run.fire(every);
    assert_eq!(lines(&effects)[0], "timer i1.timer.4 hold at 2026-01-11T09:00:00+00:00");
    let again = run.timer("hold", &TimerPurpose::Boundary { index: 0 });
    run.fire(again);
    assert_eq!(run.instance.jobs().len(), 2, "two side paths run");
    let wait = run.timer("hold", &TimerPurpose::Wait);
    let effects = run.fire(wait);
    assert_eq!(lines(&effects), ["cancel timer i1.timer.8"]);
    assert_eq!(run.status(), &Status::Running, "side paths still run");
    let jobs: Vec<_> = run.instance.jobs().keys().cloned().collect();
    for job in jobs {
        run.ok(Event::JobCompleted { job, output: json!({}) });
    }
    assert_eq!(run.status(), &Status::Completed { outcome: Some("done".into()) });
}

#[test]
fn wait_until_a_date_waits_until_its_midnight() {
    let mut run = Run::snippet(
        r#"process p "P" {
          input { day: date }
          start -> hold
          wait hold { until day } -> done
          end done "Done"
        }"#,
    );
    let effects = run.start(json!({"day": "2026-03-01"}));
    assert_eq!(lines(&effects), ["timer i1.timer.2 hold at 2026-03-01T00:00:00+00:00"]);
    let timer = run.timer("hold", &TimerPurpose::Wait);
    run.fire(timer);
    assert_eq!(run.status(), &Status::Completed { outcome: Some("done".into()) });
}

const FIRST: &str = r#"process p "P" {
  input { order_id: text }
  var carrier: text = ""
  start -> race
  wait first race {
    message "shipment.dispatched" key order_id -> shipped
    after 5d -> late
  }
  set shipped { carrier = "x" } -> ok
  end ok "Shipped"
  end late "Late"
}"#;

#[test]
fn wait_first_message_wins_and_cancels_the_timer() {
    let mut run = Run::snippet(FIRST);
    let effects = run.start(json!({"order_id": "SO-1"}));
    assert_eq!(
        lines(&effects),
        [
            "subscribe i1.subscription.2 shipment.dispatched key=SO-1",
            "timer i1.timer.3 race at 2026-01-10T09:00:00+00:00"
        ]
    );
    let subscription = run.subscription("race");
    let effects = run.ok(Event::MessageCorrelated { subscription, payload: json!({}) });
    assert_eq!(lines(&effects), ["cancel timer i1.timer.3", "completed ok"]);
}

#[test]
fn wait_first_timer_wins_and_unsubscribes() {
    let mut run = Run::snippet(FIRST);
    run.start(json!({"order_id": "SO-1"}));
    let timer = run.timer("race", &TimerPurpose::FirstArm { index: 1 });
    let effects = run.fire(timer);
    assert_eq!(lines(&effects), ["unsubscribe i1.subscription.2", "completed late"]);
    let r = run.refused(Event::MessageCorrelated { subscription: "i1.subscription.2".into(), payload: json!({}) });
    assert!(matches!(r, Rejection::InvalidState { .. }), "{r:?}");
}

#[test]
fn wait_until_a_cron_time_uses_its_time_zone() {
    let mut run = Run::snippet(
        r#"process p "P" {
          start -> hold
          wait hold { until next "0 9 * * MON-FRI" in "Europe/Berlin" } -> done
          end done "Done"
        }"#,
    );
    // Monday 09:00 UTC is 10:00 in Berlin: the next 09:00 there is Tuesday, 08:00 UTC.
    let effects = run.start(json!({}));
    assert_eq!(lines(&effects), ["timer i1.timer.2 hold at 2026-01-06T08:00:00+00:00"]);
}
