//! History retention: ended instances moved into an archive database with all their rows,
//! tombstones left behind, broken chains refused, interrupted runs finished, dry runs harmless.

use std::sync::Arc;

use chrono::TimeDelta;
use cloverleaf_engine::InstanceId;
use cloverleaf_engine::runtime::{ArchiveOptions, ArchiveReport, Engine, Error, Refusal};
use cloverleaf_engine::store::{AnyStore, InstanceState, Store as _};
use serde_json::json;

use crate::harness::{Env, TestDb, completed};

const QUICK: &str = r#"process quick "Quick" {
  start -> work
  task work { job "quick.work" } -> done
  end done "Done"
}"#;

const CALLS: &str = r#"
process caller "Caller" {
  input { order_id: text }
  var reply: text?
  start -> sub
  call sub "Sub" { process callee  in { order_id }  out { reply: outcome } } -> after
  task after { job "caller.after" } -> done
  end done "Done"
}
process callee "Callee" {
  input { order_id: text }
  start -> work
  task work "Work" { job "callee.work" } -> ok
  end ok "Ok"
}
"#;

const REVIEWED: &str = r#"process reviewed "Reviewed" {
  var ok: bool = false
  start -> approve
  approval approve "Review" { role finance.controller  form { ok: bool } } -> done
  end done "Done"
}"#;

/// The tables an instance's rows live in, by the column that names the instance.
const TABLES: [(&str, &str); 4] =
    [("instances", "id"), ("events", "instance_id"), ("jobs", "instance_id"), ("tasks", "instance_id")];

/// Rows of `table` where `column` is `id`.
async fn count(store: &AnyStore, table: &str, column: &str, id: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column} = $1");
    if let Some(sqlite) = store.as_sqlite() {
        sqlx::query_scalar(&sql).bind(id).fetch_one(sqlite.pool()).await.unwrap()
    } else {
        let pg = store.as_postgres().unwrap();
        sqlx::query_scalar(&sql).bind(id).fetch_one(pg.pool()).await.unwrap()
    }
}

/// Every row of an instance, table by table.
async fn rows_of(store: &AnyStore, id: &InstanceId) -> Vec<i64> {
    let mut out = Vec::new();
    for (table, column) in TABLES {
        out.push(count(store, table, column, id.as_str()).await);
    }
    out
}

/// Starts an instance of `quick` and finishes it now.
async fn finished(env: &Env) -> InstanceId {
    let id = env.engine.start("quick", None, json!({})).await.unwrap();
    let job = env.one_job("quick.work").await;
    env.engine.complete_job(&job.id, job.epoch, json!({})).await.unwrap();
    assert_eq!(env.status(&id).await, completed("done"));
    id
}

/// The archive database of a test, opened like a live one.
async fn archive_db() -> (TestDb, AnyStore) {
    let db = TestDb::new().await.expect("a second scratch database on the same backend");
    let store = AnyStore::connect(&db.url()).await.unwrap();
    (db, store)
}

fn options(env: &Env, into: &AnyStore, dry_run: bool) -> ArchiveOptions {
    ArchiveOptions {
        ended_before: env.engine.now() - TimeDelta::days(1),
        into: Some(into.clone()),
        label: "archive-2026".into(),
        by: "olga".into(),
        batch: 2,
        dry_run,
    }
}

async fn archive(env: &Env, into: &AnyStore) -> ArchiveReport {
    env.engine.archive(&options(env, into, false)).await.unwrap()
}

#[tokio::test]
async fn archiving_moves_exactly_the_instances_ended_before_the_cutoff_with_all_their_rows() {
    let Some(env) = Env::new().await else { return };
    env.engine.deploy(&[("quick.flow", QUICK)]).await.unwrap();
    let mut old = Vec::new();
    for _ in 0..3 {
        old.push(finished(&env).await);
    }
    let mut before = Vec::new();
    for id in &old {
        before.push(rows_of(env.engine.store(), id).await);
    }
    env.advance(TimeDelta::days(2));
    let recent = finished(&env).await;
    let running = env.engine.start("quick", None, json!({})).await.unwrap();
    let (_db, into) = archive_db().await;

    let report = archive(&env, &into).await;
    assert_eq!((report.examined, report.archived, report.refused.len()), (3, 3, 0), "{report:?}");
    assert_eq!(report.batches, 2, "three instances in batches of two");
    let archived = Engine::with_store(into.clone(), Arc::new(env.clock.clone()), 1);
    for (id, rows) in old.iter().zip(&before) {
        assert_eq!(rows_of(env.engine.store(), id).await, vec![0; TABLES.len()], "{id} left the live database");
        assert_eq!(&rows_of(&into, id).await, rows, "{id} arrived whole");
        assert!(archived.verify_history(id).await.unwrap().is_intact());
        assert!(matches!(env.engine.instance(id).await, Err(Error::UnknownInstance(_))));
        let stone = env.engine.archived(id).await.unwrap().expect("a tombstone");
        assert_eq!((stone.process_key.as_str(), stone.status), ("quick", InstanceState::Completed));
        assert_eq!((stone.archive.as_str(), stone.archived_by.as_str()), ("archive-2026", "olga"));
        assert_eq!(stone.archived_at, env.engine.now());
    }
    assert!(into.deployment("quick", Some(1)).await.unwrap().is_some(), "the archive can show the definition");
    // What ended later, and what still runs, stay where they were and keep working.
    assert_eq!(env.status(&recent).await, completed("done"));
    assert!(env.engine.archived(&recent).await.unwrap().is_none());
    let job = env.one_job("quick.work").await;
    assert_eq!(job.instance_id, running);
    env.engine.complete_job(&job.id, job.epoch, json!({})).await.unwrap();
    assert_eq!(env.status(&running).await, completed("done"));
    // A second run finds nothing more to move.
    let again = archive(&env, &into).await;
    assert_eq!((again.examined, again.archived), (0, 0));
    // An archived id is never used again.
    // An archived id is never used again: a start retried under it answers that it was started.
    let reuse = env.engine.start_once(old[0].as_str(), "quick", None, None, json!({})).await.unwrap();
    assert_eq!(reuse, (old[0].clone(), false));
    assert_eq!(rows_of(env.engine.store(), &old[0]).await, vec![0; TABLES.len()]);
}

#[tokio::test]
async fn a_history_that_does_not_verify_is_refused_and_stays_live() {
    let Some(env) = Env::new().await else { return };
    env.engine.deploy(&[("quick.flow", QUICK)]).await.unwrap();
    let (good, bad) = (finished(&env).await, finished(&env).await);
    env.tamper_who(&bad, 2, "mallory").await;
    env.advance(TimeDelta::days(2));
    let (_db, into) = archive_db().await;

    let report = archive(&env, &into).await;
    assert_eq!(report.archived, 1);
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert_eq!(report.refused[0].instance, bad);
    assert_eq!(report.refused[0].refusal, Refusal::BrokenChain { first_altered: Some(2) });
    assert!(report.refused[0].refusal.is_alarm());
    assert!(report.refused[0].refusal.to_string().contains("row 2 does not match its hash chain"));
    assert!(env.engine.archived(&good).await.unwrap().is_some());
    assert_eq!(rows_of(&into, &bad).await, vec![0; TABLES.len()], "nothing of it in the archive");
    assert!(env.engine.archived(&bad).await.unwrap().is_none());
    assert!(!env.engine.verify_history(&bad).await.unwrap().is_intact(), "still live, still broken");
}

#[tokio::test]
async fn an_interrupted_archive_is_finished_by_the_next_run_and_nothing_is_doubled() {
    let Some(env) = Env::new().await else { return };
    env.engine.deploy(&[("quick.flow", QUICK)]).await.unwrap();
    let (a, b) = (finished(&env).await, finished(&env).await);
    let before = rows_of(env.engine.store(), &a).await;
    env.advance(TimeDelta::days(2));
    let (_db, into) = archive_db().await;
    // A run that committed its copy into the archive, and stopped before the live removal.
    let ids = vec![a.0.clone(), b.0.clone()];
    let rows = env.engine.store().instance_rows(&ids).await.unwrap();
    into.write_archive_copy(&rows, &ids).await.unwrap();
    into.write_archive_copy(&rows, &ids).await.unwrap();
    assert_eq!(rows_of(&into, &a).await, before, "a repeated copy replaces, never adds");
    assert!(env.engine.archived(&a).await.unwrap().is_none());

    let report = archive(&env, &into).await;
    assert_eq!((report.archived, report.refused.len()), (2, 0), "{report:?}");
    assert_eq!(rows_of(&into, &a).await, before, "nothing doubled");
    assert_eq!(rows_of(env.engine.store(), &a).await, vec![0; TABLES.len()]);
    assert!(env.engine.archived(&b).await.unwrap().is_some());
}

#[tokio::test]
async fn a_dry_run_writes_nothing() {
    let Some(env) = Env::new().await else { return };
    env.engine.deploy(&[("quick.flow", QUICK)]).await.unwrap();
    let id = finished(&env).await;
    let before = rows_of(env.engine.store(), &id).await;
    env.advance(TimeDelta::days(2));
    let (_db, into) = archive_db().await;

    let report = env.engine.archive(&options(&env, &into, true)).await.unwrap();
    assert!(report.dry_run);
    assert_eq!((report.archived, report.batches), (1, 0));
    assert!(report.rows >= 4, "{report:?}");
    let mut without_archive = options(&env, &into, true);
    without_archive.into = None;
    assert_eq!(env.engine.archive(&without_archive).await.unwrap().archived, 1);
    assert_eq!(rows_of(env.engine.store(), &id).await, before);
    assert_eq!(rows_of(&into, &id).await, vec![0; TABLES.len()]);
    assert!(env.engine.archived(&id).await.unwrap().is_none());
    assert!(into.deployment("quick", None).await.unwrap().is_none());
}

#[tokio::test]
async fn the_live_database_is_refused_as_its_own_archive() {
    let Some(env) = Env::new().await else { return };
    env.engine.deploy(&[("quick.flow", QUICK)]).await.unwrap();
    let id = finished(&env).await;
    env.advance(TimeDelta::days(2));
    let itself = AnyStore::connect(&env.db.url()).await.unwrap();
    let refused = env.engine.archive(&options(&env, &itself, false)).await;
    assert!(matches!(&refused, Err(Error::InvalidArchive(why)) if why.contains("live database itself")), "{refused:?}");
    let mut nobody = options(&env, &itself, false);
    nobody.by = " ".into();
    nobody.into = None;
    assert!(matches!(env.engine.archive(&nobody).await, Err(Error::InvalidArchive(_))));
    assert_eq!(env.status(&id).await, completed("done"));
}

#[tokio::test]
async fn a_callee_waits_for_its_running_caller_then_both_go() {
    let Some(env) = Env::new().await else { return };
    env.engine.deploy(&[("calls.flow", CALLS)]).await.unwrap();
    let caller = env.engine.start("caller", None, json!({"order_id": "SO-1"})).await.unwrap();
    let work = env.one_job("callee.work").await;
    let callee = work.instance_id.clone();
    env.engine.complete_job(&work.id, work.epoch, json!({})).await.unwrap();
    assert_eq!(env.status(&callee).await, completed("ok"));
    env.advance(TimeDelta::days(2));
    let (_db, into) = archive_db().await;

    let report = archive(&env, &into).await;
    assert_eq!(report.archived, 0);
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert_eq!(report.refused[0].instance, callee);
    assert_eq!(report.refused[0].refusal, Refusal::ParentRunning { parent: caller.0.clone() });
    assert!(!report.refused[0].refusal.is_alarm());

    let after = env.one_job("caller.after").await;
    env.engine.complete_job(&after.id, after.epoch, json!({})).await.unwrap();
    env.advance(TimeDelta::days(2));
    let report = archive(&env, &into).await;
    assert_eq!((report.archived, report.refused.len()), (2, 0), "{report:?}");
    let stone = env.engine.archived(&callee).await.unwrap().unwrap();
    assert_eq!(stone.parent_id.as_deref(), Some(caller.as_str()));
}

#[tokio::test]
async fn undelivered_notifications_hold_an_instance_back_and_participants_are_kept() {
    let Some(env) = Env::new().await else { return };
    let roles = crate::harness::roles();
    env.engine.deploy(&[("roles.flow", roles.as_str()), ("reviewed.flow", REVIEWED)]).await.unwrap();
    let id = env.engine.start("reviewed", None, json!({})).await.unwrap();
    let task = env.engine.tasks(Some(&id)).await.unwrap().remove(0);
    let controller = vec!["finance.controller".to_string()];
    env.engine.complete_task(&task.id, "carol", &["finance.controller"], json!({"ok": true})).await.unwrap();
    assert_eq!(env.status(&id).await, completed("done"));
    env.advance(TimeDelta::days(2));
    let (_db, into) = archive_db().await;

    let report = archive(&env, &into).await;
    assert_eq!(report.archived, 0);
    assert!(
        matches!(report.refused.as_slice(), [r] if matches!(r.refusal, Refusal::UndeliveredNotifications { count } if count > 0)),
        "{report:?}"
    );
    for notification in env.engine.take_notifications(100, TimeDelta::minutes(1)).await.unwrap() {
        env.engine
            .record_delivery(&notification.row.id, cloverleaf_engine::store::DeliveryOutcome::Delivered)
            .await
            .unwrap();
    }
    let report = archive(&env, &into).await;
    assert_eq!(report.archived, 1, "{report:?}");
    assert_eq!(count(&into, "notifications", "instance_id", id.as_str()).await, 1, "the delivered notice went along");
    let stone = env.engine.archived(&id).await.unwrap().unwrap();
    assert!(stone.participants.include("carol", &[]));
    assert!(stone.participants.include("someone", &controller));
    assert!(!stone.participants.include("mallory", &["sales.rep".to_string()]));
}
