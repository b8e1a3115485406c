//! Out-of-office substitutes, delegation and separation of duties at claim time: every action
//! records who acted and for whom.

use chrono::TimeDelta;
use cloverleaf_engine::runtime::Error;
use cloverleaf_engine::{Instance, Rejection, replay};
use serde_json::json;

use crate::harness::{Env, completed, t0};

/// An order of 250,000 that the manager `max` approved: it now waits for the CFO.
async fn at_cfo(env: &Env) -> (cloverleaf_engine::InstanceId, cloverleaf_engine::TaskId) {
    let id = env.order("250000.00", "500000", "A").await;
    let manager = env.engine.tasks(Some(&id)).await.unwrap().remove(0);
    env.engine.complete_task(&manager.id, "max", &["sales.manager"], json!({"approve": true})).await.unwrap();
    let cfo = env.engine.tasks(Some(&id)).await.unwrap().remove(0);
    assert_eq!(cfo.node, "cfo_approval");
    (id, cfo.id)
}

#[tokio::test]
async fn a_barred_user_cannot_claim_and_the_inbox_shows_role_tasks() {
    let Some(env) = Env::reference().await else { return };
    let id = env.order("20000.00", "50000", "A").await;
    let inbox = env.engine.inbox("rita", &["sales.manager"]).await.unwrap();
    assert_eq!(inbox.len(), 1, "the requester still sees the task of her role");
    let claim = env.engine.claim(&inbox[0].id, "rita", &["sales.manager"]).await;
    match claim {
        Err(Error::Rejected(Rejection::SeparationOfDuties { rule, user })) => {
            assert_eq!((rule.as_str(), user.as_str()), ("requested_by", "rita"));
        }
        other => panic!("expected a separation-of-duties refusal, got {other:?}"),
    }
    assert_eq!(env.engine.task(&inbox[0].id).await.unwrap().claimed_by, None, "nothing was written");
    assert!(env.engine.inbox("sam", &["sales.rep"]).await.unwrap().is_empty());
    env.engine.claim(&inbox[0].id, "max", &["sales.manager"]).await.unwrap();
    env.engine.complete_task(&inbox[0].id, "max", &["sales.manager"], json!({"approve": true})).await.unwrap();
    assert_eq!(env.status(&id).await, completed("approved"));
}

#[tokio::test]
async fn a_substitute_acts_for_the_absent_claimant_and_history_says_for_whom() {
    let Some(env) = Env::reference().await else { return };
    let id = env.order("20000.00", "50000", "A").await;
    let task = env.engine.tasks(Some(&id)).await.unwrap().remove(0);
    env.engine.claim(&task.id, "max", &["sales.manager"]).await.unwrap();
    // max goes on holiday tomorrow for a week, with sue (no manager role) standing in.
    let from = t0() + TimeDelta::days(1);
    env.engine.set_substitute("max", Some("sue"), from, from + TimeDelta::days(7)).await.unwrap();
    assert_eq!(env.engine.substitute_of("max").await.unwrap().map(|s| s.substitute), Some("sue".to_string()));
    assert!(env.engine.inbox("sue", &[]).await.unwrap().is_empty(), "not yet in force");
    let early = env.engine.complete_task(&task.id, "sue", &[], json!({"approve": true})).await;
    assert!(matches!(early, Err(Error::NotCandidate { .. })), "{early:?}");
    env.advance(TimeDelta::days(1));
    let inbox = env.engine.inbox("sue", &[]).await.unwrap();
    assert_eq!(inbox.iter().map(|t| &t.id).collect::<Vec<_>>(), [&task.id]);
    env.engine.complete_task(&task.id, "sue", &[], json!({"approve": true})).await.unwrap();
    assert_eq!(env.status(&id).await, completed("approved"));
    let history = env.engine.history(&id).await.unwrap();
    let done = history.iter().find(|h| h.kind == "task_completed").unwrap();
    assert_eq!((done.who.as_deref(), done.on_behalf_of.as_deref()), (Some("sue"), Some("max")));
    assert!(env.engine.verify_history(&id).await.unwrap().is_intact());
}

#[tokio::test]
async fn substitutes_do_not_chain_and_cannot_be_oneself() {
    let Some(env) = Env::reference().await else { return };
    let id = env.order("20000.00", "50000", "A").await;
    let task = env.engine.tasks(Some(&id)).await.unwrap().remove(0);
    env.engine.claim(&task.id, "max", &["sales.manager"]).await.unwrap();
    let (from, until) = (t0(), t0() + TimeDelta::days(7));
    env.engine.set_substitute("max", Some("sue"), from, until).await.unwrap();
    env.engine.set_substitute("sue", Some("tom"), from, until).await.unwrap();
    assert!(env.engine.inbox("tom", &[]).await.unwrap().is_empty());
    let chained = env.engine.complete_task(&task.id, "tom", &[], json!({"approve": true})).await;
    assert!(matches!(chained, Err(Error::NotCandidate { .. })), "{chained:?}");
    let myself = env.engine.set_substitute("max", Some("max"), from, until).await;
    assert!(matches!(myself, Err(Error::InvalidSubstitute(_))), "{myself:?}");
    let backwards = env.engine.set_substitute("max", Some("sue"), until, from).await;
    assert!(matches!(backwards, Err(Error::InvalidSubstitute(_))), "{backwards:?}");
    env.engine.set_substitute("max", None, from, until).await.unwrap();
    assert_eq!(env.engine.substitute_of("max").await.unwrap(), None);
    assert!(env.engine.inbox("sue", &[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_cfo_cannot_approve_through_the_first_approvers_substitute() {
    let Some(env) = Env::reference().await else { return };
    let (id, cfo_task) = at_cfo(&env).await;
    // carl (CFO) is away; max, who approved as manager, is named as his substitute.
    env.engine.set_substitute("carl", Some("max"), t0(), t0() + TimeDelta::days(3)).await.unwrap();
    env.engine.claim(&cfo_task, "carl", &["finance.cfo"]).await.unwrap();
    let through = env.engine.complete_task(&cfo_task, "max", &[], json!({"approve": true})).await;
    assert!(matches!(through, Err(Error::Rejected(Rejection::SeparationOfDuties { .. }))), "{through:?}");
    env.engine.complete_task(&cfo_task, "carl", &["finance.cfo"], json!({"approve": true})).await.unwrap();
    assert_eq!(env.status(&id).await, completed("approved"));
}

#[tokio::test]
async fn a_substitutes_claim_is_for_the_absent_person_and_ends_with_the_substitution() {
    let Some(env) = Env::reference().await else { return };
    let (id, cfo_task) = at_cfo(&env).await;
    env.engine.delegate(&cfo_task, "carl", &["finance.cfo"], "vic").await.unwrap();
    // vic, who now holds the task, is away for three days with sue (no role) standing in.
    env.engine.set_substitute("vic", Some("sue"), t0(), t0() + TimeDelta::days(3)).await.unwrap();
    env.engine.claim(&cfo_task, "sue", &[]).await.unwrap();
    let claimant = |task: cloverleaf_engine::store::TaskInfo| task.claimed_by;
    assert_eq!(claimant(env.engine.task(&cfo_task).await.unwrap()).as_deref(), Some("vic"), "claimed for vic");
    env.engine.unclaim(&cfo_task, "sue").await.unwrap();
    assert_eq!(claimant(env.engine.task(&cfo_task).await.unwrap()), None, "the substitute may release it");
    env.engine.claim(&cfo_task, "sue", &[]).await.unwrap();
    // vic is back early and ends the substitution: the claim gives sue nothing any more.
    env.engine.set_substitute("vic", None, t0(), t0()).await.unwrap();
    let late = env.engine.complete_task(&cfo_task, "sue", &[], json!({"approve": true})).await;
    assert!(matches!(late, Err(Error::NotCandidate { .. })), "{late:?}");
    let handed = env.engine.delegate(&cfo_task, "sue", &[], "tom").await;
    assert!(matches!(handed, Err(Error::NotCandidate { .. })), "{handed:?}");
    env.engine.complete_task(&cfo_task, "vic", &[], json!({"approve": true})).await.unwrap();
    assert_eq!(env.status(&id).await, completed("approved"));
    // That the task is closed is told to its candidates, not to anyone who asks.
    let again = env.engine.complete_task(&cfo_task, "vic", &[], json!({"approve": true})).await;
    assert!(matches!(again, Err(Error::TaskClosed { .. })), "{again:?}");
    let stranger = env.engine.claim(&cfo_task, "tom", &["sales.rep"]).await;
    assert!(matches!(stranger, Err(Error::NotCandidate { .. })), "{stranger:?}");
}

#[tokio::test]
async fn a_delegate_completes_for_the_delegator_and_not_by_follows_the_task() {
    let Some(env) = Env::reference().await else { return };
    let (id, cfo_task) = at_cfo(&env).await;
    // Delegating to the first approver is refused at once: they could never complete it.
    let to_max = env.engine.delegate(&cfo_task, "carl", &["finance.cfo"], "max").await;
    assert!(matches!(to_max, Err(Error::Rejected(Rejection::SeparationOfDuties { .. }))), "{to_max:?}");
    // Someone without the role cannot hand the task on.
    let outsider = env.engine.delegate(&cfo_task, "sam", &["sales.rep"], "vic").await;
    assert!(matches!(outsider, Err(Error::NotCandidate { .. })), "{outsider:?}");
    env.engine.delegate(&cfo_task, "carl", &["finance.cfo"], "vic").await.unwrap();
    let task = env.engine.task(&cfo_task).await.unwrap();
    assert_eq!(task.assignee.as_deref(), Some("vic"));
    assert_eq!(env.engine.inbox("vic", &[]).await.unwrap().len(), 1);
    // Once assigned, the task is vic's: another CFO cannot take it over.
    let other_cfo = env.engine.complete_task(&cfo_task, "cleo", &["finance.cfo"], json!({"approve": false})).await;
    assert!(matches!(other_cfo, Err(Error::NotCandidate { .. })), "{other_cfo:?}");
    env.engine.complete_task(&cfo_task, "vic", &[], json!({"approve": true})).await.unwrap();
    assert_eq!(env.status(&id).await, completed("approved"));
    let history = env.engine.history(&id).await.unwrap();
    let delegated = history.iter().find(|h| h.kind == "task_delegated").unwrap();
    assert_eq!(delegated.who.as_deref(), Some("carl"));
    assert!(delegated.detail.contains("to vic"), "{}", delegated.detail);
    let done = history.iter().rfind(|h| h.kind == "task_completed").unwrap();
    assert_eq!((done.who.as_deref(), done.on_behalf_of.as_deref()), (Some("vic"), Some("carl")));
    // Replaying the stored events rebuilds the same state, delegation included.
    let stored = env.instance(&id).await;
    let definition = env.engine.definition("order_approval", 1).await.unwrap();
    let events = env.engine.events(&id).await.unwrap();
    let fresh = Instance::new(id.clone(), "order_approval", 1);
    let replayed = replay(&definition, fresh, events.iter().map(|(e, at)| (e, *at))).unwrap();
    assert_eq!(replayed, stored);
}
