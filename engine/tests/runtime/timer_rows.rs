//! An instance keeps one timer row, on its earliest timer: an approval's reminder, due date and
//! escalation still fire each in turn, a timer the engine refuses does not hold back the ones
//! behind it, and a database written one row per timer is cut to the earliest on upgrade.

use chrono::TimeDelta;
use cloverleaf_engine::runtime::Engine;
use cloverleaf_engine::{InstanceId, VirtualClock};
use cloverleaf_testkit::testdb::ScratchDb;
use serde_json::json;

use crate::harness::{Env, OldDb, migrated_before, t0};

/// The migration that keeps one timer row per instance, on both backends.
const EARLIEST_TIMER_ROW: i64 = 20261204000003;

/// The timer rows of `instance`, as (id, node), in the order they fire.
async fn rows(env: &Env, instance: &InstanceId) -> Vec<(String, String)> {
    let sql = "SELECT id, node FROM timers WHERE instance_id = $1 ORDER BY due_at, length(id), id";
    let store = env.engine.store();
    if let Some(sqlite) = store.as_sqlite() {
        sqlx::query_as(sql).bind(instance.as_str()).fetch_all(sqlite.pool()).await.unwrap()
    } else {
        sqlx::query_as(sql).bind(instance.as_str()).fetch_all(store.as_postgres().unwrap().pool()).await.unwrap()
    }
}

/// The instance's timers as its state holds them, as (id, node), in the order they fire.
async fn timers(env: &Env, instance: &InstanceId) -> Vec<(String, String)> {
    let state = env.instance(instance).await;
    let mut all: Vec<_> = state.timers().iter().collect();
    all.sort_by_key(|(id, wait)| (wait.at, id.0.len(), id.0.clone()));
    all.into_iter().map(|(id, wait)| (id.0.clone(), wait.node.clone())).collect()
}

async fn open_task_nodes(env: &Env, instance: &InstanceId) -> Vec<String> {
    env.engine.tasks(Some(instance)).await.unwrap().into_iter().map(|t| t.node).collect()
}

async fn timers_fired(env: &Env, instance: &InstanceId) -> usize {
    env.engine.history(instance).await.unwrap().iter().filter(|r| r.kind == "timer_fired").count()
}

#[tokio::test]
async fn an_approval_keeps_one_timer_row_and_its_reminder_due_date_and_escalation_fire_in_turn() {
    let Some(env) = Env::reference().await else { return };
    // 20,000 at risk A goes to a sales manager: reminded after 8 h, due and escalated after 24 h.
    let id = env.order("20000.00", "50000", "A").await;
    assert_eq!(open_task_nodes(&env, &id).await, ["manager_approval"]);
    let all = timers(&env, &id).await;
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(rows(&env, &id).await, all[..1], "one row, on the reminder");

    env.advance(TimeDelta::hours(8));
    assert_eq!(env.engine.fire_due_timers().await.unwrap(), 1);
    assert_eq!(timers_fired(&env, &id).await, 1, "the reminder");
    let left = timers(&env, &id).await;
    assert_eq!(left, all[1..], "the due date and the escalation are still set");
    assert_eq!(rows(&env, &id).await, left[..1], "the row moved to the next timer");

    // Due date and escalation fall at the same instant: both fire, in the order they were set.
    env.advance(TimeDelta::hours(16));
    assert_eq!(env.engine.fire_due_timers().await.unwrap(), 2);
    assert_eq!(timers_fired(&env, &id).await, 3);
    assert_eq!(open_task_nodes(&env, &id).await, ["director_approval"], "escalated");
    let director = timers(&env, &id).await;
    assert_eq!(director.len(), 2, "the director's repeating reminder and due date: {director:?}");
    assert_eq!(rows(&env, &id).await, director[..1]);

    let task = env.engine.tasks(Some(&id)).await.unwrap().remove(0);
    env.engine.complete_task(&task.id, "dora", &["sales.director"], json!({"approve": true})).await.unwrap();
    assert!(timers(&env, &id).await.is_empty());
    assert!(rows(&env, &id).await.is_empty(), "no timer left, no row left");
}

#[tokio::test]
async fn a_timer_row_the_engine_refuses_does_not_hold_back_the_timers_behind_it() {
    let Some(env) = Env::reference().await else { return };
    let id = env.order("20000.00", "50000", "A").await;
    // The row names a timer the instance does not have (as a row left behind would).
    env.execute("UPDATE timers SET id = 'stray' WHERE instance_id = ?1", id.as_str()).await;

    env.advance(TimeDelta::hours(8));
    assert_eq!(env.engine.fire_due_timers().await.unwrap(), 1, "the reminder fired, the stray row was refused");
    assert_eq!(timers_fired(&env, &id).await, 1);
    let left = timers(&env, &id).await;
    assert_eq!(left.len(), 2, "{left:?}");
    let mut expected = vec![left[0].clone(), ("stray".to_string(), "manager_approval".to_string())];
    expected.sort_by_key(|(id, _)| id == "stray");
    let mut have = rows(&env, &id).await;
    have.sort_by_key(|(id, _)| id == "stray");
    assert_eq!(have, expected, "the next timer has its row; the stray one is still there, refused");

    env.advance(TimeDelta::hours(16));
    assert_eq!(env.engine.fire_due_timers().await.unwrap(), 2);
    assert_eq!(open_task_nodes(&env, &id).await, ["director_approval"], "escalated all the same");
}

#[tokio::test]
async fn a_database_written_one_row_per_timer_keeps_each_instances_earliest_after_the_upgrade() {
    let Some(old) = ScratchDb::new().await else { return };
    // As the engine wrote them before: every timer its row (none due yet, so the upgraded engine
    // fires none when it connects). Ids end in a sequence number, so
    // timer.9 fires before timer.10 when both are due at once.
    let written = [
        ("A", "A.timer.10", "2099-01-01T08:00:00.000000Z"),
        ("A", "A.timer.9", "2099-01-01T08:00:00.000000Z"),
        ("A", "A.timer.3", "2099-01-02T00:00:00.000000Z"),
        ("B", "B.timer.4", "2099-01-03T00:00:00.000000Z"),
        ("B", "B.timer.5", "2099-01-02T00:00:00.000000Z"),
    ];
    let insert = "INSERT INTO timers (id, instance_id, node, due_at) VALUES ($1, $2, 'manager_approval', $3)";
    macro_rules! write_old_rows {
        ($pool:expr) => {{
            let pool = $pool;
            for (instance, id, due_at) in written {
                sqlx::query(insert).bind(id).bind(instance).bind(due_at).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }};
    }
    match migrated_before(&old, EARLIEST_TIMER_ROW).await {
        OldDb::Sqlite(pool) => write_old_rows!(pool),
        OldDb::Postgres(pool) => write_old_rows!(pool),
    }
    let upgraded = Engine::connect(&old.url(), std::sync::Arc::new(VirtualClock::new(t0()))).await.unwrap();
    let sql = "SELECT id FROM timers ORDER BY id";
    let store = upgraded.store();
    let kept: Vec<String> = if let Some(sqlite) = store.as_sqlite() {
        sqlx::query_scalar(sql).fetch_all(sqlite.pool()).await.unwrap()
    } else {
        sqlx::query_scalar(sql).fetch_all(store.as_postgres().unwrap().pool()).await.unwrap()
    };
    assert_eq!(kept, ["A.timer.9", "B.timer.5"]);
}
