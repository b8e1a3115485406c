//! Collect, then reconcile: matching payments, dunning beside the wait, and write-offs.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use cloverleaf_dsl::expr::Value;
use cloverleaf_engine::memory::{Correlation, Error, JobOutcome};
use cloverleaf_engine::{InstanceId, Rejection, Status};
use serde_json::json;

use crate::harness::{
    Sim, completed, completions, engine, inbox, job_of, jobs_of, money, pay, ran_with, register_collection, status, t0,
    task_at, task_nodes, var,
};

/// Midnight UTC, `days` after the due date 2026-02-04.
fn due_plus(days: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 4, 0, 0, 0).unwrap() + chrono::TimeDelta::days(days)
}

fn collecting(engine: &mut Sim, amount_due: &str) -> InstanceId {
    register_collection(engine);
    let inputs =
        json!({"invoice_id": "INV-1", "customer_id": "C-7", "amount_due": amount_due, "due_date": "2026-02-04"});
    engine.start("collect_then_reconcile", inputs).unwrap()
}

scenarios! {
    fn an_exact_payment_within_the_tolerance_posts_the_receipt() {
        let mut engine = engine();
        let id = collecting(&mut engine, "11900.00");
        pay(&mut engine, "INV-1", "P-1", "11899.99");
        engine.run_jobs().unwrap();
        assert_eq!(
            ran_with(&engine, "receipt.post"),
            [json!({"invoice_id": "INV-1", "payment_id": "P-1", "received": "11899.99", "amount_due": "11900.00"})]
        );
        assert_eq!(status(&engine, &id), completed("paid"));
        assert_eq!(completions(&engine, "payment.match"), 1);
        assert!(engine.timers().is_empty(), "the dunning timers went with the wait");
    }
}

scenarios! {
    fn a_payment_two_cents_short_is_partial() {
        let mut engine = engine();
        let id = collecting(&mut engine, "11900.00");
        pay(&mut engine, "INV-1", "P-1", "11899.98");
        engine.run_jobs().unwrap();
        assert_eq!(status(&engine, &id), Status::Running);
        assert_eq!(money(&engine, &id, "amount_due"), "0.02");
    }
}

scenarios! {
    fn a_partial_payment_lowers_the_amount_due_exactly_and_the_rest_closes_it() {
        let mut engine = engine();
        let id = collecting(&mut engine, "1190.50");
        pay(&mut engine, "INV-1", "P-1", "400.25");
        engine.run_jobs().unwrap();
        assert_eq!(money(&engine, &id, "amount_due"), "790.25");
        assert_eq!(status(&engine, &id), Status::Running);
        assert!(jobs_of(&engine, "receipt.post").is_empty());
        pay(&mut engine, "INV-1", "P-2", "790.25");
        engine.run_jobs().unwrap();
        assert_eq!(status(&engine, &id), completed("paid"));
        assert_eq!(completions(&engine, "payment.match"), 2);
        assert_eq!(completions(&engine, "receipt.post"), 1);
    }
}

scenarios! {
    fn an_over_payment_goes_to_an_accountant_who_refunds_the_difference() {
        let mut engine = engine();
        let id = collecting(&mut engine, "11900.00");
        pay(&mut engine, "INV-1", "P-1", "12000.00");
        engine.run_jobs().unwrap();
        let review = inbox(&engine, &["finance.accountant"]);
        assert_eq!(review.len(), 1);
        assert_eq!(review[0].title, "Over-payment on invoice INV-1");
        let task = review[0].id.clone();
        engine.complete_task(&task, "ann", None, json!({"refund": true})).unwrap();
        let refund = job_of(&engine, "payment.refund");
        assert_eq!(refund.input, json!({"payment_id": "P-1", "customer_id": "C-7", "amount": "100.00"}));
        engine.run_jobs().unwrap();
        assert_eq!(status(&engine, &id), completed("paid"));
        assert_eq!(completions(&engine, "receipt.post"), 1);
    }
}

scenarios! {
    fn a_mismatched_reference_goes_to_an_ar_clerk_who_matches_it_by_hand() {
        let mut engine = engine();
        let id = collecting(&mut engine, "500.00");
        let payload = json!({"amount": "500.00", "reference": "order 7 thanks", "payment_id": "P-9"});
        let delivered = engine.correlate("payment.received", "INV-1", payload, Some("P-9")).unwrap();
        assert_eq!(delivered, Correlation::Delivered(id.clone()));
        engine.run_jobs().unwrap();
        let review = inbox(&engine, &["finance.ar_clerk"]);
        assert_eq!(review.len(), 1);
        assert_eq!(review[0].title, "Payment P-9 does not match invoice INV-1");
        let task = review[0].id.clone();
        engine.complete_task(&task, "alex", None, json!({"belongs_here": true})).unwrap();
        assert_eq!(var(&engine, &id, "reference"), Value::Text("INV-1".into()));
        engine.run_jobs().unwrap();
        assert_eq!(status(&engine, &id), completed("paid"));
        assert_eq!(completions(&engine, "payment.match"), 2);
    }
}

scenarios! {
    fn a_payment_that_does_not_belong_is_returned_and_the_wait_goes_on() {
        let mut engine = engine();
        let id = collecting(&mut engine, "500.00");
        let payload = json!({"amount": "80.00", "reference": "INV-77", "payment_id": "P-3"});
        engine.correlate("payment.received", "INV-1", payload, None).unwrap();
        engine.run_jobs().unwrap();
        let task = task_at(&engine, &id, "reference_review").id;
        engine.complete_task(&task, "alex", None, json!({"belongs_here": false, "comment": "other customer"})).unwrap();
        engine.run_jobs().unwrap();
        assert_eq!(completions(&engine, "payment.return"), 1);
        assert_eq!(money(&engine, &id, "amount_due"), "500.00");
        pay(&mut engine, "INV-1", "P-4", "500.00");
        engine.run_jobs().unwrap();
        assert_eq!(status(&engine, &id), completed("paid"));
    }
}

scenarios! {
    fn dunning_at_due_plus_7_and_30_days_beside_the_wait_each_level_once() {
        let mut engine = engine();
        let id = collecting(&mut engine, "11900.00");

        // Due + 7 days: the first reminder, while the instance keeps waiting for the payment.
        engine.advance_to(due_plus(7)).unwrap();
        let first = job_of(&engine, "dunning.send");
        assert_eq!(first.created_at, due_plus(7));
        assert_eq!(first.input, json!({"invoice_id": "INV-1", "customer_id": "C-7", "level": "1"}));
        engine.run_jobs().unwrap();
        assert_eq!(var(&engine, &id, "dunning_level"), Value::Number(1.into()));
        assert_eq!(engine.instance(&id).unwrap().subscriptions().len(), 1);

        // A partial payment at due + 10 days restarts the wait: the first level is not sent again.
        engine.advance_to(due_plus(10)).unwrap();
        pay(&mut engine, "INV-1", "P-1", "4000.00");
        engine.run_jobs().unwrap();
        assert_eq!(money(&engine, &id, "amount_due"), "7900.00");
        engine.advance_to(due_plus(29)).unwrap();
        engine.run_jobs().unwrap();
        assert!(jobs_of(&engine, "dunning.send").is_empty());
        assert_eq!(completions(&engine, "dunning.send"), 1);

        // Due + 30 days: the second reminder and a call by the account manager.
        engine.advance_to(due_plus(30)).unwrap();
        let second = job_of(&engine, "dunning.send");
        assert_eq!((second.created_at, &second.input["level"]), (due_plus(30), &json!("2")));
        engine.run_jobs().unwrap();
        assert_eq!(var(&engine, &id, "dunning_level"), Value::Number(2.into()));
        let call = inbox(&engine, &["sales.account_manager"]);
        assert_eq!(call.len(), 1);
        assert_eq!(call[0].title, "Call the customer about invoice INV-1");
        assert_eq!(call[0].created_at, due_plus(30));
        let task = call[0].id.clone();
        engine
            .complete_task(&task, "amy", None, json!({"promised_date": "2026-03-20", "comment": "pays on the 20th"}))
            .unwrap();
        assert_eq!(var(&engine, &id, "promised_date"), Value::Date("2026-03-20".parse().unwrap()));
        assert_eq!(completions(&engine, "dunning.send"), 2);

        // The customer pays the rest; the wait was never interrupted.
        pay(&mut engine, "INV-1", "P-2", "7900.00");
        engine.run_jobs().unwrap();
        assert_eq!(status(&engine, &id), completed("paid"));
    }
}

scenarios! {
    fn at_due_plus_60_days_the_controller_decides_and_a_late_payment_still_closes_it() {
        let mut engine = engine();
        let id = collecting(&mut engine, "11900.00");
        engine.advance_to(due_plus(30)).unwrap();
        engine.run_jobs().unwrap();
        let call = task_at(&engine, &id, "call_customer").id;
        engine.complete_task(&call, "amy", None, json!({})).unwrap();
        engine.advance_to(due_plus(60)).unwrap();
        let decision = inbox(&engine, &["finance.controller"]);
        assert_eq!(decision.len(), 1);
        assert_eq!(decision[0].title, "Invoice INV-1 is 60 days overdue");
        assert_eq!(decision[0].created_at, due_plus(60));
        // The wait was interrupted: a payment now is buffered.
        assert_eq!(
            engine
                .correlate(
                    "payment.received",
                    "INV-1",
                    json!({"amount": "11900.00", "reference": "INV-1", "payment_id": "P-1"}),
                    Some("P-1")
                )
                .unwrap(),
            Correlation::Buffered
        );
        // The controller is reminded every day.
        engine.advance_to(due_plus(62)).unwrap();
        assert_eq!(engine.reminders().iter().filter(|r| r.node == "finance_decision").count(), 2);
        let task = decision[0].id.clone();
        engine.complete_task(&task, "fran", None, json!({"write_off": false, "comment": "collect"})).unwrap();
        // Collection waits again and takes the buffered payment.
        engine.run_jobs().unwrap();
        assert_eq!(status(&engine, &id), completed("paid"));
        assert_eq!(completions(&engine, "dunning.send"), 2);
    }
}

fn at_write_off_decision(engine: &mut Sim, amount_due: &str) -> InstanceId {
    let id = collecting(engine, amount_due);
    engine.advance_to(due_plus(30)).unwrap();
    engine.run_jobs().unwrap();
    let call = task_at(engine, &id, "call_customer").id;
    engine.complete_task(&call, "amy", None, json!({"comment": "no answer"})).unwrap();
    engine.advance_to(due_plus(60)).unwrap();
    id
}

scenarios! {
    fn a_write_off_up_to_50000_needs_only_the_controller() {
        let mut engine = engine();
        let id = at_write_off_decision(&mut engine, "50000.00");
        let task = task_at(&engine, &id, "finance_decision").id;
        engine.complete_task(&task, "fran", None, json!({"write_off": true})).unwrap();
        assert!(engine.tasks_for(&["finance.cfo"]).is_empty());
        let write_off = job_of(&engine, "ledger.write_off");
        assert_eq!(write_off.input, json!({"invoice_id": "INV-1", "customer_id": "C-7", "amount": "50000.00"}));
        engine.run_jobs().unwrap();
        assert_eq!(status(&engine, &id), completed("written_off"));
    }
}

scenarios! {
    fn a_write_off_above_50000_needs_a_cfo_who_is_not_the_controller() {
        let mut engine = engine();
        let id = at_write_off_decision(&mut engine, "60000.00");
        let task = task_at(&engine, &id, "finance_decision").id;
        engine.complete_task(&task, "fran", None, json!({"write_off": true})).unwrap();
        let cfo = inbox(&engine, &["finance.cfo"]);
        assert_eq!(cfo.len(), 1);
        assert_eq!(cfo[0].title, "Write off 60000.00 on invoice INV-1");
        let task = cfo[0].id.clone();
        let refused = engine.complete_task(&task, "fran", None, json!({"approve_write_off": true})).unwrap_err();
        assert_eq!(
            refused,
            Error::Rejected(Rejection::SeparationOfDuties {
                rule: "finance_decision.completed_by".into(),
                user: "fran".into()
            })
        );
        engine.complete_task(&task, "carl", None, json!({"approve_write_off": true})).unwrap();
        assert_eq!(job_of(&engine, "ledger.write_off").input["amount"], json!("60000.00"));
        engine.run_jobs().unwrap();
        assert_eq!(status(&engine, &id), completed("written_off"));
    }
}

scenarios! {
    fn a_cfo_refusal_ends_in_the_error_end_and_withdraws_what_is_open() {
        let mut engine = engine();
        let id = collecting(&mut engine, "75000.00");
        engine.advance_to(due_plus(30)).unwrap();
        engine.run_jobs().unwrap();
        engine.advance_to(due_plus(60)).unwrap();
        // The account manager has not called yet.
        assert_eq!(task_nodes(&engine, &id), ["call_customer", "finance_decision"]);
        let task = task_at(&engine, &id, "finance_decision").id;
        engine.complete_task(&task, "fran", None, json!({"write_off": true})).unwrap();
        let task = task_at(&engine, &id, "cfo_write_off").id;
        engine.complete_task(&task, "carl", None, json!({"approve_write_off": false, "comment": "sue them"})).unwrap();
        assert_eq!(status(&engine, &id), Status::Failed { code: "write_off_refused".into() });
        assert!(engine.tasks().is_empty());
        assert!(engine.timers().is_empty());
        assert_eq!(completions(&engine, "ledger.write_off"), 0);
    }
}

scenarios! {
    /// Jobs run by a worker at the time they become due: the dunning letters go out at due + 7
    /// and due + 30 days while the clock runs 70 days in one go.
    fn with_auto_run_each_job_runs_at_the_time_it_was_created() {
        let mut engine = engine();
        for job_type in ["payment.match", "receipt.post", "dunning.send"] {
            engine.register(job_type, |_| JobOutcome::complete(json!({})));
        }
        engine.set_auto_run(true);
        let inputs =
            json!({"invoice_id": "INV-1", "customer_id": "C-7", "amount_due": "100.00", "due_date": "2026-02-04"});
        let id = engine.start("collect_then_reconcile", inputs).unwrap();
        engine.advance(TimeDelta::days(70)).unwrap();
        let sent: Vec<_> =
            engine.job_attempts().iter().filter(|a| a.job_type == "dunning.send").map(|a| a.at).collect();
        assert_eq!(sent, [due_plus(7), due_plus(30)]);
        assert_eq!(engine.now(), t0() + TimeDelta::days(70));
        // The account manager's call task appeared at due + 30 days.
        assert_eq!(task_at(&engine, &id, "call_customer").created_at, due_plus(30));
        assert_eq!(status(&engine, &id), Status::Running);
    }
}
