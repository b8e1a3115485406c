//! Human tasks: roles, claims, separation of duties, escalation, concurrent completion.

use chrono::TimeDelta;
use cloverleaf_engine::Rejection;
use cloverleaf_engine::runtime::Error;
use cloverleaf_engine::store::{Guard, StepWrite, Store as _, Write, WriteError, WriteOutcome};
use serde_json::json;

use crate::harness::{Env, completed};

#[tokio::test]
async fn the_manager_path_checks_roles_and_refuses_the_requester() {
    let Some(env) = Env::reference().await else { return };
    let id = env.order("20000.00", "50000", "A").await;
    let task = env.engine.tasks(Some(&id)).await.unwrap().remove(0);
    assert_eq!(task.node, "manager_approval");
    assert_eq!(task.roles, ["sales.manager"]);
    let form = json!({"approve": true});
    let not_role = env.engine.complete_task(&task.id, "carl", &["finance.cfo"], form.clone()).await;
    assert!(matches!(not_role, Err(Error::NotCandidate { .. })), "{not_role:?}");
    let own = env.engine.complete_task(&task.id, "rita", &["sales.manager"], form.clone()).await;
    assert!(matches!(own, Err(Error::Rejected(Rejection::SeparationOfDuties { .. }))), "{own:?}");
    let bad_form = env.engine.complete_task(&task.id, "max", &["sales.manager"], json!({"approve": "yes"})).await;
    assert!(matches!(bad_form, Err(Error::Rejected(Rejection::InvalidForm { .. }))), "{bad_form:?}");
    env.engine.complete_task(&task.id, "max", &["sales.manager"], form).await.unwrap();
    assert_eq!(env.status(&id).await, completed("approved"));
    let closed = env.engine.task(&task.id).await.unwrap();
    assert_eq!((closed.state.as_str(), closed.completed_by.as_deref()), ("completed", Some("max")));
    let history = env.engine.history(&id).await.unwrap();
    assert!(history.iter().any(|h| h.kind == "task_completed" && h.who.as_deref() == Some("max")));
}

#[tokio::test]
async fn a_claimed_task_is_completed_only_by_its_claimant() {
    let Some(env) = Env::reference().await else { return };
    let id = env.order("20000.00", "50000", "A").await;
    let task = env.engine.tasks(Some(&id)).await.unwrap().remove(0);
    env.engine.claim(&task.id, "max", &["sales.manager"]).await.unwrap();
    assert!(matches!(env.engine.claim(&task.id, "mia", &["sales.manager"]).await, Err(Error::TaskClaimed { .. })));
    let other = env.engine.complete_task(&task.id, "mia", &["sales.manager"], json!({"approve": true})).await;
    assert!(matches!(other, Err(Error::TaskClaimed { .. })), "{other:?}");
    env.engine.unclaim(&task.id, "max").await.unwrap();
    env.engine.complete_task(&task.id, "mia", &["sales.manager"], json!({"approve": false})).await.unwrap();
    assert_eq!(env.status(&id).await, completed("rejected"));
}

#[tokio::test]
async fn an_unanswered_approval_escalates_after_24_hours() {
    let Some(env) = Env::reference().await else { return };
    let id = env.order("20000.00", "50000", "A").await;
    env.advance(TimeDelta::hours(8));
    assert_eq!(env.engine.fire_due_timers().await.unwrap(), 1); // the reminder
    let tasks = env.engine.tasks(Some(&id)).await.unwrap();
    assert_eq!(tasks.iter().map(|t| t.node.as_str()).collect::<Vec<_>>(), ["manager_approval"]);
    env.advance(TimeDelta::hours(16));
    assert!(env.engine.fire_due_timers().await.unwrap() >= 1);
    let tasks = env.engine.tasks(Some(&id)).await.unwrap();
    assert_eq!(tasks.iter().map(|t| t.node.as_str()).collect::<Vec<_>>(), ["director_approval"]);
    let old = env.engine.tasks(None).await.unwrap();
    assert_eq!(old.len(), 1);
    env.engine.complete_task(&tasks[0].id, "dora", &["sales.director"], json!({"approve": true})).await.unwrap();
    assert_eq!(env.status(&id).await, completed("approved"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_concurrent_completions_of_one_task_exactly_one_succeeds() {
    let Some(env) = Env::reference().await else { return };
    for _ in 0..5 {
        let id = env.order("20000.00", "50000", "A").await;
        let task = env.engine.tasks(Some(&id)).await.unwrap().remove(0);
        let (a, b) = (env.engine.clone(), env.engine.clone());
        let (ta, tb) = (task.id.clone(), task.id.clone());
        let one =
            tokio::spawn(
                async move { a.complete_task(&ta, "max", &["sales.manager"], json!({"approve": true})).await },
            );
        let two =
            tokio::spawn(
                async move { b.complete_task(&tb, "mia", &["sales.manager"], json!({"approve": false})).await },
            );
        let (one, two) = (one.await.unwrap(), two.await.unwrap());
        assert_eq!(u8::from(one.is_ok()) + u8::from(two.is_ok()), 1, "{one:?} {two:?}");
        let status = env.status(&id).await;
        let winner = if one.is_ok() { "approved" } else { "rejected" };
        assert_eq!(status, completed(winner));
        assert_eq!(env.engine.history(&id).await.unwrap().iter().filter(|h| h.kind == "task_completed").count(), 1);
    }
}

/// The store's own check of a completion (the runtime checks the claim first; this one guards the
/// race between that read and the write): a task claimed by someone else refuses the step whole,
/// its claimant's step lands. SQLite checks the free-task guards of a batch in one statement.
#[tokio::test]
async fn the_store_refuses_a_completion_step_for_a_task_claimed_by_another() {
    let Some(env) = Env::reference().await else { return };
    let id = env.order("20000.00", "50000", "A").await;
    let task = env.engine.tasks(Some(&id)).await.unwrap().remove(0);
    env.engine.claim(&task.id, "max", &["sales.manager"]).await.unwrap();
    let row = env.engine.store().load_instance(&id).await.unwrap().unwrap();
    let step = |user: &str| {
        let mut instance = row.clone();
        instance.version += 1;
        Write::Step(Box::new(StepWrite {
            instance,
            expected_version: Some(row.version),
            guards: vec![Guard::TaskFree { task: task.id.0.clone(), user: user.to_string() }],
            consume_messages: vec![],
            record_message: None,
            consume_pending: None,
            jobs: vec![],
            tasks: vec![],
            timers_upsert: vec![],
            timers_delete: vec![],
            subscriptions_insert: vec![],
            subscriptions_delete: vec![],
            incidents_insert: vec![],
            incidents_close: vec![],
            history: None,
            events: vec![],
            children: vec![],
            started: vec![],
            pending: vec![],
            notifications: vec![],
        }))
    };
    let refused = env.engine.store().write(vec![step("mia")]).await;
    assert!(matches!(refused.as_slice(), [Err(WriteError::TaskTaken { task: t })] if *t == task.id.0), "{refused:?}");
    let unchanged = env.engine.store().load_instance(&id).await.unwrap().unwrap();
    assert_eq!(unchanged.version, row.version);
    let landed = env.engine.store().write(vec![step("max")]).await;
    assert!(matches!(landed.as_slice(), [Ok(WriteOutcome::Done)]), "{landed:?}");
    assert_eq!(env.engine.store().load_instance(&id).await.unwrap().unwrap().version, row.version + 1);
}
