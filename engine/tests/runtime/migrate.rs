//! Migrations on the durable runtime: a batch of orders moved from version 1 to version 2 of
//! `order_approval`, each in its own step, a refused one stopping no other; the same migration
//! on the in-memory engine gives the same plan.

use std::collections::BTreeMap;

use chrono::TimeDelta;
use cloverleaf_engine::memory::MemoryEngine;
use cloverleaf_engine::runtime::{MigrationOutcome, MigrationRequest};
use cloverleaf_engine::store::{Queries as _, Store as _};
use cloverleaf_engine::{InstanceId, MigrationPlan, Status, TimerPurpose, WaitAction, replay_versions};
use serde_json::json;

use crate::common::{order_approval_v2, reference_files_with_order_approval};
use crate::harness::{Env, completed, t0};

fn request(instances: Option<Vec<InstanceId>>, dry_run: bool) -> MigrationRequest {
    MigrationRequest {
        process: "order_approval".into(),
        from_version: 1,
        to_version: 2,
        mapping: BTreeMap::new(),
        instances,
        dry_run,
        by: "ada".into(),
        reason: "shorter reminders".into(),
        after: None,
        limit: None,
    }
}

async fn deploy_v2(env: &Env) {
    let files = reference_files_with_order_approval(&order_approval_v2());
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    let deployed = env.engine.deploy(&refs).await.unwrap();
    let v = deployed.iter().find(|d| d.key == "order_approval").unwrap();
    assert_eq!((v.version, v.created), (2, true));
}

/// What a plan says, without the ids (which differ between drivers).
fn shape(plan: &MigrationPlan) -> Vec<String> {
    let mut out: Vec<String> = plan.tokens.iter().map(|t| format!("token {} -> {}", t.from, t.to)).collect();
    out.extend(plan.waits.iter().map(|w| format!("{:?} {} {:?}", w.kind, w.node, w.action)));
    out.extend(plan.added.iter().map(|v| format!("added {v}")));
    out.sort();
    out
}

#[tokio::test]
async fn a_batch_of_orders_migrates_each_in_its_own_step_and_a_refused_one_stops_no_other() {
    let Some(env) = Env::reference().await else { return };
    let waiting = env.order("50000.00", "100000.00", "B").await;
    let done = env.order("500.00", "100000.00", "A").await;
    assert_eq!(env.status(&done).await, completed("approved"));
    env.advance(TimeDelta::hours(1));
    deploy_v2(&env).await;
    let history_before = env.engine.history(&waiting).await.unwrap().len();

    // A dry run says what would happen and changes nothing.
    let report = env.engine.migrate(&request(None, true)).await.unwrap();
    assert_eq!(report.instances.len(), 1, "only running instances of version 1: {report:?}");
    let MigrationOutcome::WouldMigrate(dry) = &report.instances[0].outcome else { panic!("{report:?}") };
    assert_eq!(env.instance(&waiting).await.process_version(), 1);
    assert_eq!(env.engine.history(&waiting).await.unwrap().len(), history_before);

    // Named instances: the completed one is refused with its reason, the other migrates.
    let report = env.engine.migrate(&request(Some(vec![done.clone(), waiting.clone()]), false)).await.unwrap();
    assert_eq!((report.migrated(), report.refused()), (1, 1), "{report:?}");
    let refused = report.instances.iter().find(|i| i.instance == done).unwrap();
    let MigrationOutcome::Refused(why) = &refused.outcome else { panic!("{report:?}") };
    assert!(why[0].1.contains("only a running instance migrates"), "{why:?}");
    let migrated = report.instances.iter().find(|i| i.instance == waiting).unwrap();
    let MigrationOutcome::Migrated(plan) = &migrated.outcome else { panic!("{report:?}") };
    assert_eq!(plan, dry);

    // The store row, the state, the timers and the history agree.
    let summary = env.engine.store().instance_summary(waiting.as_str()).await.unwrap().unwrap();
    assert_eq!(summary.process_version, 2);
    let instance = env.instance(&waiting).await;
    assert_eq!(instance.process_version(), 2);
    let reminder =
        instance.timers().values().find(|t| t.purpose == TimerPurpose::Reminder { index: 0 }).expect("a reminder");
    assert_eq!(reminder.at, t0() + TimeDelta::hours(5));
    let history = env.engine.history(&waiting).await.unwrap();
    let last = history.last().unwrap();
    assert_eq!((last.kind.as_str(), last.who.as_deref()), ("migrated", Some("ada")));
    assert!(last.detail.contains("migrated from v1 to v2: shorter reminders"), "{}", last.detail);
    assert!(env.engine.verify_history(&waiting).await.unwrap().is_intact());
    // The re-created reminder is in the store: four hours on, it is what fires.
    env.advance(TimeDelta::hours(4));
    assert_eq!(env.engine.recover().await.unwrap(), 1);
    assert!(env.instance(&waiting).await.timers().values().all(|t| t.purpose != TimerPurpose::Reminder { index: 0 }));

    // Nothing left to migrate; the order goes on on version 2.
    assert!(env.engine.migrate(&request(None, false)).await.unwrap().instances.is_empty());
    let task = env.engine.store().open_tasks(Some(&waiting)).await.unwrap().remove(0);
    env.engine.complete_task(&task.id, "maria", &["sales.manager"], json!({"approve": true})).await.unwrap();
    assert_eq!(env.status(&waiting).await, completed("approved"));

    // The event log, migration included, replays to the stored state.
    let (v1, v2) = (
        env.engine.definition("order_approval", 1).await.unwrap(),
        env.engine.definition("order_approval", 2).await.unwrap(),
    );
    let versions = |v: u32| match v {
        1 => Some(&*v1),
        2 => Some(&*v2),
        _ => None,
    };
    let events = env.engine.events(&waiting).await.unwrap();
    let fresh = cloverleaf_engine::Instance::new(waiting.clone(), "order_approval", 1);
    let replayed = replay_versions(versions, fresh, events.iter().map(|(e, t)| (e, *t))).unwrap();
    assert_eq!(replayed, env.instance(&waiting).await);

    // The in-memory engine plans and applies the same migration.
    let mut memory = MemoryEngine::new(t0());
    let mut project = cloverleaf_dsl::Project::new();
    for (name, text) in crate::common::reference_files() {
        project.add(name, text);
    }
    memory.deploy_compilation(&project.compile()).unwrap();
    let id = memory
        .start(
            "order_approval",
            json!({"order_id": "SO-1", "customer_id": "C-7", "amount": "50000.00", "requested_by": "rita"}),
        )
        .unwrap();
    let job = memory.pending_jobs()[0].id.clone();
    memory.complete_job(&job, json!({"credit_limit": "100000.00", "open_ar": "0", "risk": "B"})).unwrap();
    memory.advance(TimeDelta::hours(1)).unwrap();
    let mut project = cloverleaf_dsl::Project::new();
    for (name, text) in reference_files_with_order_approval(&order_approval_v2()) {
        project.add(name, text);
    }
    memory.deploy_compilation(&project.compile()).unwrap();
    let in_memory = memory.migrate(&id, 2, &BTreeMap::new(), ("ada", "shorter reminders"), false).unwrap();
    assert_eq!(shape(&in_memory), shape(plan));
    assert_eq!(memory.instance(&id).unwrap().process_version(), 2);
    assert_eq!(memory.replay(&id).unwrap(), *memory.instance(&id).unwrap());
    let task = memory.tasks()[0].id.clone();
    memory.complete_task(&task, "maria", None, json!({"approve": true})).unwrap();
    assert_eq!(memory.instance(&id).unwrap().status(), &Status::Completed { outcome: Some("approved".into()) });
    assert!(plan.waits.iter().any(|w| w.action == WaitAction::Opened));
}

#[tokio::test]
async fn a_request_that_cannot_run_as_asked_is_refused_whole() {
    let Some(env) = Env::reference().await else { return };
    let id = env.order("50000.00", "100000.00", "B").await;
    deploy_v2(&env).await;
    let mut bad = request(None, false);
    bad.to_version = 1;
    bad.reason = "  ".into();
    bad.mapping = BTreeMap::from([("nowhere".into(), "manager_approval".into())]);
    let error = env.engine.migrate(&bad).await.unwrap_err();
    let text = error.to_string();
    for part in ["to_version: it is the version migrated from", "reason: say why", "`nowhere` is not a node"] {
        assert!(text.contains(part), "{text}");
    }
    let mut unknown = request(None, false);
    unknown.to_version = 7;
    assert!(matches!(
        env.engine.migrate(&unknown).await,
        Err(cloverleaf_engine::runtime::Error::UnknownVersion { version: 7, .. })
    ));
    assert_eq!(env.instance(&id).await.process_version(), 1);
}
