//! Automated tasks: jobs, retries, incidents, business errors.

use cloverleaf_engine::{Event, Rejection, Status};
use serde_json::json;

use crate::harness::{Run, credit, lines, order};

const RETRYING: &str = r#"process p "P" {
  var ref: text = ""
  start -> post
  task post { job "ledger.post"  out { ref: reference }  retry 2 backoff 30s } -> done
  end done "Done"
}"#;

#[test]
fn failed_jobs_are_retried_with_backoff_then_raise_an_incident() {
    let mut run = Run::snippet(RETRYING);
    run.start(json!({}));
    let job = run.job("ledger.post");
    let fail = |m: &str| Event::JobFailed { job: job.clone(), message: m.into() };
    assert_eq!(lines(&run.ok(fail("timeout"))), ["retry job i1.job.2 at 2026-01-05T09:00:30+00:00 attempt 2"]);
    run.advance(30);
    assert_eq!(lines(&run.ok(fail("timeout"))), ["retry job i1.job.2 at 2026-01-05T09:01:30+00:00 attempt 3"]);
    run.advance(60);
    let effects = run.ok(fail("ledger down"));
    assert_eq!(
        lines(&effects),
        ["incident i1.incident.3 at post: job `ledger.post` failed 3 times, no retries left: ledger down"]
    );
    assert_eq!(run.status(), &Status::Running);
    // The token waits: a late completion is refused until an operator retries.
    let r = run.refused(Event::JobCompleted { job: job.clone(), output: json!({"reference": "R1"}) });
    assert_eq!(r, Rejection::JobInIncident { job: job.clone() });
    let effects = run.ok(Event::RetryJob { job: job.clone() });
    assert_eq!(
        lines(&effects),
        ["close incident i1.incident.3", "retry job i1.job.2 at 2026-01-05T09:01:30+00:00 attempt 4"]
    );
    assert!(run.instance.incidents().is_empty());
    run.ok(Event::JobCompleted { job, output: json!({"reference": "R1"}) });
    assert_eq!(run.status(), &Status::Completed { outcome: Some("done".into()) });
}

#[test]
fn retry_of_a_job_without_incident_is_refused() {
    let mut run = Run::snippet(RETRYING);
    run.start(json!({}));
    let job = run.job("ledger.post");
    assert_eq!(run.refused(Event::RetryJob { job: job.clone() }), Rejection::JobNotInIncident { job });
}

#[test]
fn job_output_missing_a_mapped_field_is_refused() {
    let mut run = Run::snippet(RETRYING);
    run.start(json!({}));
    let job = run.job("ledger.post");
    let r = run.refused(Event::JobCompleted { job, output: json!({"other": 1}) });
    assert_eq!(r, Rejection::InvalidOutput { fields: vec![("ref".into(), "unknown variable `reference`".into())] });
}

#[test]
fn business_error_goes_to_its_on_error() {
    let mut run = Run::reference("order_approval");
    run.start(order("5000"));
    let job = run.job("credit.check");
    let effects = run.ok(Event::JobBusinessError { job, code: "customer_blocked".into() });
    assert_eq!(lines(&effects), ["completed rejected"]);
    assert_eq!(run.status(), &Status::Completed { outcome: Some("rejected".into()) });
}

#[test]
fn business_error_nobody_catches_raises_an_incident() {
    let mut run = Run::reference("order_approval");
    run.start(order("5000"));
    let job = run.job("credit.check");
    let effects = run.ok(Event::JobBusinessError { job: job.clone(), code: "erp_down".into() });
    assert_eq!(
        lines(&effects),
        [
            "incident i1.incident.3 at check_credit: business error `erp_down` is not caught by an `on error` of `check_credit`"
        ]
    );
    // The operator retries: the same job (same idempotency key) runs again.
    run.ok(Event::RetryJob { job });
    run.complete_job("credit.check", credit("50000", "0", "B"));
    assert_eq!(run.status(), &Status::Completed { outcome: Some("approved".into()) });
}

#[test]
fn catch_all_on_error_takes_any_code() {
    let mut run = Run::snippet(
        r#"process p "P" {
          start -> work
          task work { job "w"  on error "a" -> a_end  on error -> other_end } -> ok
          end ok "Ok"
          end a_end "A"
          end other_end "Other"
        }"#,
    );
    run.start(json!({}));
    let job = run.job("w");
    run.ok(Event::JobBusinessError { job, code: "zzz".into() });
    assert_eq!(run.status(), &Status::Completed { outcome: Some("other_end".into()) });
}

#[test]
fn a_loop_gives_each_activation_its_own_job_and_idempotency_key() {
    let mut run = Run::snippet(
        r#"process p "P" {
          var n: int = 0
          start -> work
          task work { job "w" } -> set n = n + 1 -> again
          decide again { when n < 2 -> work  otherwise -> done }
          end done "Done"
        }"#,
    );
    run.start(json!({}));
    run.complete_job("w", json!({}));
    run.complete_job("w", json!({}));
    let keys: Vec<String> = run
        .effects
        .iter()
        .filter_map(|e| match e {
            cloverleaf_engine::Effect::CreateJob { job, idempotency_key, .. } => {
                Some(format!("{job} {idempotency_key}"))
            }
            _ => None,
        })
        .collect();
    assert_eq!(keys, ["i1.job.2 i1:work:1", "i1.job.3 i1:work:2"]);
    assert_eq!(run.status(), &Status::Completed { outcome: Some("done".into()) });
}
