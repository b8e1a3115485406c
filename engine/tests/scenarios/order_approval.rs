//! Order approval: automatic approval, the manager, the CFO, separation of duties, escalation
//! and the credit controller.

use chrono::TimeDelta;
use cloverleaf_engine::memory::{Error, JobOutcome};
use cloverleaf_engine::{HistoryKind, Rejection};
use serde_json::json;

use crate::harness::{
    completed, completions, engine, inbox, job_of, order, register_credit, status, t0, task_at, task_nodes,
};

scenarios! {
    fn a_small_low_risk_order_within_the_limit_is_approved_automatically() {
        let mut engine = engine();
        register_credit(&mut engine, "50000.00", "10000.00", "A");
        let id = engine.start("order_approval", order("SO-1", "8000.00")).unwrap();
        assert_eq!(engine.run_jobs().unwrap(), 1);
        assert_eq!(status(&engine, &id), completed("approved"));
        assert!(engine.tasks().is_empty());
        assert_eq!(completions(&engine, "credit.check"), 1);
        let history = engine.history(&id);
        let (at, last) = history.last().unwrap();
        assert_eq!((*at, last.kind), (t0(), HistoryKind::Completed));
    }
}

scenarios! {
    fn a_medium_order_goes_to_a_sales_manager_who_approves_it() {
        let mut engine = engine();
        register_credit(&mut engine, "100000.00", "0.00", "B");
        let id = engine.start("order_approval", order("SO-2", "25000.00")).unwrap();
        engine.run_jobs().unwrap();
        let inbox = inbox(&engine, &["sales.manager"]);
        assert_eq!(inbox.len(), 1);
        assert_eq!(inbox[0].title, "Approve order SO-2");
        assert_eq!(inbox[0].due_at, Some(t0() + TimeDelta::hours(24)));
        assert!(engine.tasks_for(&["finance.cfo", "sales.director"]).is_empty());

        // The reminder after 8 h fires at +8 h, not at the time the clock is moved to.
        engine.advance(TimeDelta::hours(10)).unwrap();
        let reminders = engine.reminders();
        assert_eq!(reminders.len(), 1);
        assert_eq!((reminders[0].at, reminders[0].overdue), (t0() + TimeDelta::hours(8), false));

        let task = inbox_task(&engine, "sales.manager");
        engine.complete_task(&task, "mia", None, json!({"approve": true, "comment": "good customer"})).unwrap();
        assert_eq!(status(&engine, &id), completed("approved"));
        assert!(engine.tasks().is_empty());
        // Nothing is left to fire: the SLA and escalation timers went with the task.
        assert!(engine.timers().is_empty());
    }
}

fn inbox_task(engine: &crate::harness::Sim, role: &str) -> cloverleaf_engine::TaskId {
    let inbox = inbox(engine, &[role]);
    assert_eq!(inbox.len(), 1, "inbox of {role}: {inbox:?}");
    inbox[0].id.clone()
}

scenarios! {
    fn a_large_order_needs_the_manager_then_the_cfo() {
        let mut engine = engine();
        register_credit(&mut engine, "1000000.00", "200000.00", "A");
        let id = engine.start("order_approval", order("SO-3", "150000.00")).unwrap();
        engine.run_jobs().unwrap();
        let task = inbox_task(&engine, "sales.manager");
        engine.advance(TimeDelta::hours(2)).unwrap();
        engine.complete_task(&task, "mia", None, json!({"approve": true})).unwrap();
        let cfo = inbox(&engine, &["finance.cfo"]);
        assert_eq!(cfo.len(), 1);
        assert_eq!(cfo[0].title, "CFO approval of order SO-3");
        assert_eq!(cfo[0].created_at, t0() + TimeDelta::hours(2));
        let task = cfo[0].id.clone();
        engine.complete_task(&task, "carl", None, json!({"approve": true})).unwrap();
        assert_eq!(status(&engine, &id), completed("approved"));
    }
}

scenarios! {
    fn a_cfo_refusal_rejects_the_order() {
        let mut engine = engine();
        register_credit(&mut engine, "1000000.00", "0.00", "A");
        let id = engine.start("order_approval", order("SO-4", "120000.00")).unwrap();
        engine.run_jobs().unwrap();
        let task = inbox_task(&engine, "sales.manager");
        engine.complete_task(&task, "mia", None, json!({"approve": true})).unwrap();
        let task = inbox_task(&engine, "finance.cfo");
        engine.complete_task(&task, "carl", None, json!({"approve": false, "comment": "margin too thin"})).unwrap();
        assert_eq!(status(&engine, &id), completed("rejected"));
    }
}

scenarios! {
    fn the_requester_cannot_approve_their_own_order_nor_through_a_substitute() {
        let mut engine = engine();
        register_credit(&mut engine, "100000.00", "0.00", "C");
        let id = engine.start("order_approval", order("SO-5", "5000.00")).unwrap();
        engine.run_jobs().unwrap();
        // Risk C: even a small order needs a manager.
        let task = task_at(&engine, &id, "manager_approval").id;
        let refused = engine.complete_task(&task, "rita", None, json!({"approve": true})).unwrap_err();
        assert_eq!(
            refused,
            Error::Rejected(Rejection::SeparationOfDuties { rule: "requested_by".into(), user: "rita".into() })
        );
        let refused = engine.complete_task(&task, "sam", Some("rita"), json!({"approve": true})).unwrap_err();
        assert_eq!(
            refused,
            Error::Rejected(Rejection::SeparationOfDuties { rule: "requested_by".into(), user: "rita".into() })
        );
        // Nothing changed: the task is still open for the managers.
        assert_eq!(task_nodes(&engine, &id), ["manager_approval"]);
        engine.complete_task(&task, "mia", None, json!({"approve": true})).unwrap();
        assert_eq!(status(&engine, &id), completed("approved"));
    }
}

scenarios! {
    fn a_form_of_the_wrong_type_is_refused_with_its_fields() {
        let mut engine = engine();
        register_credit(&mut engine, "100000.00", "0.00", "B");
        let id = engine.start("order_approval", order("SO-6", "20000.00")).unwrap();
        engine.run_jobs().unwrap();
        let task = task_at(&engine, &id, "manager_approval").id;
        let Err(Error::Rejected(Rejection::InvalidForm { fields })) =
            engine.complete_task(&task, "mia", None, json!({"approve": "yes", "note": "x"}))
        else {
            panic!("the form should be refused");
        };
        let names: Vec<&str> = fields.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(names, ["approve", "note"]);
        assert_eq!(task_nodes(&engine, &id), ["manager_approval"]);
    }
}

scenarios! {
    fn the_cfo_must_be_a_different_person_from_the_first_approver() {
        let mut engine = engine();
        register_credit(&mut engine, "1000000.00", "0.00", "A");
        let id = engine.start("order_approval", order("SO-7", "250000.00")).unwrap();
        engine.run_jobs().unwrap();
        let task = task_at(&engine, &id, "manager_approval").id;
        // Mia holds both roles: she approves as manager...
        engine.complete_task(&task, "mia", None, json!({"approve": true})).unwrap();
        let task = task_at(&engine, &id, "cfo_approval").id;
        // ...and may not approve again as CFO, neither herself nor through a substitute.
        let refused = engine.complete_task(&task, "mia", None, json!({"approve": true})).unwrap_err();
        assert_eq!(
            refused,
            Error::Rejected(Rejection::SeparationOfDuties {
                rule: "manager_approval.completed_by".into(),
                user: "mia".into()
            })
        );
        assert!(engine.complete_task(&task, "sub", Some("mia"), json!({"approve": true})).is_err());
        engine.complete_task(&task, "carl", None, json!({"approve": true})).unwrap();
        assert_eq!(status(&engine, &id), completed("approved"));
    }
}

scenarios! {
    fn after_24_hours_the_manager_task_is_withdrawn_and_the_director_gets_it() {
        let mut engine = engine();
        register_credit(&mut engine, "100000.00", "0.00", "B");
        let id = engine.start("order_approval", order("SO-8", "40000.00")).unwrap();
        engine.run_jobs().unwrap();
        let manager_task = task_at(&engine, &id, "manager_approval").id;
        engine.advance(TimeDelta::hours(23)).unwrap();
        assert_eq!(task_nodes(&engine, &id), ["manager_approval"]);
        engine.advance(TimeDelta::hours(2)).unwrap();
        assert!(engine.tasks_for(&["sales.manager"]).is_empty());
        assert!(engine.task(&manager_task).is_none());
        let director = inbox(&engine, &["sales.director"]);
        assert_eq!(director.len(), 1);
        assert_eq!(director[0].title, "Approve order SO-8 (escalated)");
        assert_eq!(director[0].created_at, t0() + TimeDelta::hours(24));
        // The manager was reminded at +8 h and told at +24 h that the task was overdue.
        let manager: Vec<_> =
            engine.reminders().iter().filter(|r| r.node == "manager_approval").map(|r| (r.at, r.overdue)).collect();
        assert_eq!(manager, [(t0() + TimeDelta::hours(8), false), (t0() + TimeDelta::hours(24), true)]);
        // A completion of the withdrawn task is refused.
        assert!(matches!(
            engine.complete_task(&manager_task, "mia", None, json!({"approve": true})),
            Err(Error::UnknownTask(_))
        ));
        // The director is reminded every 8 h while it waits.
        engine.advance(TimeDelta::hours(15)).unwrap();
        let director_reminders = engine.reminders().iter().filter(|r| r.node == "director_approval").count();
        assert_eq!(director_reminders, 2);
        let task = director[0].id.clone();
        engine.complete_task(&task, "dora", None, json!({"approve": true})).unwrap();
        assert_eq!(status(&engine, &id), completed("approved"));
    }
}

scenarios! {
    fn an_order_over_the_credit_limit_goes_to_the_credit_controller_first() {
        let mut engine = engine();
        register_credit(&mut engine, "20000.00", "5000.00", "A");
        let id = engine.start("order_approval", order("SO-9", "30000.00")).unwrap();
        engine.run_jobs().unwrap();
        let inbox = inbox(&engine, &["finance.credit_controller"]);
        assert_eq!(inbox.len(), 1);
        assert_eq!(inbox[0].title, "Credit review of order SO-9");
        assert!(engine.tasks_for(&["sales.manager"]).is_empty());
        let task = inbox[0].id.clone();
        engine.complete_task(&task, "cora", None, json!({"approve": true, "comment": "limit raised"})).unwrap();
        // Above 10,000 the manager still approves.
        let task = inbox_task(&engine, "sales.manager");
        engine.complete_task(&task, "mia", None, json!({"approve": true})).unwrap();
        assert_eq!(status(&engine, &id), completed("approved"));
    }
}

scenarios! {
    fn a_blocked_customer_is_rejected_without_a_task() {
        let mut engine = engine();
        engine.register("credit.check", |_| JobOutcome::BusinessError("customer_blocked".into()));
        let id = engine.start("order_approval", order("SO-10", "100.00")).unwrap();
        engine.run_jobs().unwrap();
        assert_eq!(status(&engine, &id), completed("rejected"));
        assert!(engine.tasks().is_empty());
    }
}

scenarios! {
    fn a_failing_credit_check_is_retried_with_backoff_then_raises_an_incident_an_operator_retries() {
        let mut engine = engine();
        let id = engine.start("order_approval", order("SO-11", "8000.00")).unwrap();
        let job = job_of(&engine, "credit.check").id;
        // retry 3 backoff 30s: exponential, 30 s, 60 s, 120 s.
        for (attempt, offset) in [(2, 30), (3, 90), (4, 210)] {
            engine.fail_job(&job, "credit bureau timeout").unwrap();
            let pending = job_of(&engine, "credit.check");
            assert_eq!((pending.attempt, pending.not_before), (attempt, t0() + TimeDelta::seconds(offset)));
            // Not run before its backoff is over.
            assert!(pending.not_before > engine.now());
            engine.advance_to(pending.not_before).unwrap();
        }
        engine.fail_job(&job, "credit bureau timeout").unwrap();
        assert!(engine.pending_jobs().is_empty());
        let incidents = engine.incidents();
        assert_eq!(incidents.len(), 1);
        assert_eq!(incidents[0].node, "check_credit");
        assert!(incidents[0].message.contains("failed 4 times"), "{}", incidents[0].message);
        let incident = incidents[0].id.clone();
        engine.retry_incident(&incident).unwrap();
        assert!(engine.incidents().is_empty());
        register_credit(&mut engine, "50000.00", "0.00", "A");
        engine.run_jobs().unwrap();
        assert_eq!(status(&engine, &id), completed("approved"));
        let attempts: Vec<u32> = engine.job_attempts().iter().map(|a| a.attempt).collect();
        assert_eq!(attempts, [1, 2, 3, 4, 5]);
    }
}
