//! SQLite: committed steps reach the database file itself soon after their commit, copied there
//! in the background, not only when the writer's own checkpoint runs (once the log holds 1,000
//! frames, while every step queued behind it waits).

use std::path::Path;
use std::sync::Arc;

use cloverleaf_engine::VirtualClock;
use cloverleaf_engine::runtime::Engine;
use cloverleaf_testkit::eventually;
use cloverleaf_testkit::testdb::ScratchDb;
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use crate::harness::{reference_files, t0};

/// The instances the database file alone holds, without its `-wal` log: a copy of the file is
/// opened on its own. `None` while the copy is not a database yet or holds no instances table
/// (a checkpoint may be copying pages while the file is read).
async fn instances_in_file_alone(db: &Path) -> Option<i64> {
    let copy = db.with_extension("copy.db");
    std::fs::copy(db, &copy).ok()?;
    let options = SqliteConnectOptions::new().filename(&copy);
    let count = match SqlitePoolOptions::new().max_connections(1).connect_with(options).await {
        Ok(pool) => {
            let count = sqlx::query_scalar("SELECT count(*) FROM instances").fetch_one(&pool).await.ok();
            pool.close().await;
            count
        }
        Err(_) => None,
    };
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", copy.display()));
    }
    count
}

#[tokio::test]
async fn committed_steps_reach_the_database_file_without_the_writers_checkpoint() {
    let db = ScratchDb::sqlite();
    let engine = Engine::connect(&db.url(), Arc::new(VirtualClock::new(t0()))).await.unwrap();
    let files = reference_files();
    engine.deploy(&files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect::<Vec<_>>()).await.unwrap();
    for n in 1..=3 {
        let order = format!("SO-{n}");
        engine
            .start(
                "order_approval",
                Some(&order),
                json!({"order_id": order, "customer_id": "C-7", "amount": "100.00", "requested_by": "rita"}),
            )
            .await
            .unwrap();
    }
    // A few dozen frames: far below the 1,000 at which the writer would copy them itself.
    let path = db.url();
    eventually("the three started instances in the database file itself", || async {
        instances_in_file_alone(Path::new(&path)).await.filter(|n| *n == 3)
    })
    .await;
    engine.store().close().await;
}
