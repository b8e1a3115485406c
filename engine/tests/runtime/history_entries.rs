//! A step's history entries stored in its event's row: the `history` view reads them back entry
//! by entry, and a database written one entry per row (before the entries moved into the events)
//! is upgraded with every chain intact and every entry as it was.

use cloverleaf_engine::runtime::Engine;
use cloverleaf_engine::store::{HistoryCheck, HistoryRow, Queries as _, Store, ts};
use cloverleaf_engine::{InstanceId, VirtualClock};
use cloverleaf_testkit::testdb::ScratchDb;
use serde_json::json;

use crate::harness::{Env, OldDb, migrated_before, t0};

/// The migration that moves history entries into the events, on both backends.
const HISTORY_IN_EVENTS: i64 = 20261204000000;

const COLUMNS: &str = "instance_id, seq, at, kind, node, who, on_behalf_of, detail, prev_hash, hash";

/// An order approved by a manager: several steps, each writing several entries.
async fn approved_order(env: &Env) -> (InstanceId, Vec<HistoryRow>) {
    let id = env.order("20000.00", "50000", "A").await;
    let task = env.engine.tasks(Some(&id)).await.unwrap().remove(0);
    env.engine.complete_task(&task.id, "max", &["sales.manager"], json!({"approve": true})).await.unwrap();
    let rows = env.engine.history(&id).await.unwrap();
    (id, rows)
}

fn view_row((instance_id, seq, at, kind, node, who, on_behalf_of, detail, prev_hash, hash): ViewRow) -> HistoryRow {
    HistoryRow { instance_id, seq, at, kind, node, who, on_behalf_of, detail, prev_hash, hash }
}

type ViewRow = (String, i64, String, String, Option<String>, Option<String>, Option<String>, String, String, String);

#[tokio::test]
async fn the_history_view_reads_each_entry_as_the_engine_does() {
    let Some(env) = Env::reference().await else { return };
    let (id, rows) = approved_order(&env).await;
    assert!(rows.len() > 6, "{rows:?}");
    let sql = format!("SELECT {COLUMNS} FROM history WHERE instance_id = $1 ORDER BY seq");
    let store = env.engine.store();
    let viewed: Vec<ViewRow> = if let Some(sqlite) = store.as_sqlite() {
        sqlx::query_as(&sql).bind(id.as_str()).fetch_all(sqlite.pool()).await.unwrap()
    } else {
        let pg = store.as_postgres().unwrap();
        sqlx::query_as(&sql).bind(id.as_str()).fetch_all(pg.pool()).await.unwrap()
    };
    assert_eq!(viewed.into_iter().map(view_row).collect::<Vec<_>>(), rows);
    // No row of their own: the entries travel with the events of their steps.
    let count = "SELECT COUNT(*) FROM events WHERE instance_id = $1 AND entries IS NOT NULL";
    let steps: i64 = if let Some(sqlite) = store.as_sqlite() {
        sqlx::query_scalar(count).bind(id.as_str()).fetch_one(sqlite.pool()).await.unwrap()
    } else {
        sqlx::query_scalar(count).bind(id.as_str()).fetch_one(store.as_postgres().unwrap().pool()).await.unwrap()
    };
    assert_eq!(steps, 3, "start, the credit check's completion, the approval");
}

#[tokio::test]
async fn a_history_written_one_entry_per_row_reads_and_verifies_after_the_upgrade() {
    let Some(env) = Env::reference().await else { return };
    let (id, rows) = approved_order(&env).await;
    let events = env.engine.events(&id).await.unwrap();
    let Some(old) = ScratchDb::new().await else { return };
    let insert = format!("INSERT INTO history ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)");
    let insert_event = "INSERT INTO events (instance_id, seq, at, event) VALUES ($1, $2, $3, $4)";
    macro_rules! write_old_rows {
        ($pool:expr) => {{
            let pool = $pool;
            for r in &rows {
                sqlx::query(&insert)
                    .bind(&r.instance_id)
                    .bind(r.seq)
                    .bind(&r.at)
                    .bind(&r.kind)
                    .bind(&r.node)
                    .bind(&r.who)
                    .bind(&r.on_behalf_of)
                    .bind(&r.detail)
                    .bind(&r.prev_hash)
                    .bind(&r.hash)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            for (seq, (event, at)) in (1_i64..).zip(&events) {
                sqlx::query(insert_event)
                    .bind(id.as_str())
                    .bind(seq)
                    .bind(ts(*at))
                    .bind(serde_json::to_string(event).unwrap())
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        }};
    }
    match migrated_before(&old, HISTORY_IN_EVENTS).await {
        OldDb::Sqlite(pool) => write_old_rows!(pool),
        OldDb::Postgres(pool) => write_old_rows!(pool),
    }
    let upgraded = Engine::connect(&old.url(), std::sync::Arc::new(VirtualClock::new(t0()))).await.unwrap();
    let read = upgraded.store().history(&id).await.unwrap();
    assert_eq!(read, rows, "every entry as it was written");
    let last = rows.last().unwrap();
    assert!(HistoryCheck::verify(&read, last.seq, &last.hash).is_intact());
    assert_eq!(upgraded.events(&id).await.unwrap(), events, "the event log as it was");
    // Who took part is found from the moved entries: max approved the order; nobody named ma.
    assert_eq!(upgraded.store().participations("max", &[]).await.unwrap(), vec![id.0.clone()]);
    assert!(upgraded.store().participations("ma", &[]).await.unwrap().is_empty());
}
