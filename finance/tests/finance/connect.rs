//! Opening the ledger: by URL or path, beside the engine in one database.

use std::sync::Arc;

use cloverleaf_engine::VirtualClock;
use cloverleaf_engine::runtime::Engine;
use cloverleaf_finance::Ledger;
use cloverleaf_finance::ledger::Error;
use cloverleaf_testkit::testdb::ScratchDb;

use crate::harness::t0;

#[tokio::test]
async fn the_ledger_and_the_engine_share_one_database_whichever_migrates_first() {
    let Some(db) = ScratchDb::new().await else { return };
    let url = db.url();
    // The ledger first, then the engine, then both again (a restart): each migrator leaves the
    // other's versions alone.
    let ledger = Ledger::connect(&url).await.unwrap();
    let clock = Arc::new(VirtualClock::new(t0()));
    let engine = Engine::connect(&url, clock.clone()).await.unwrap();
    let again = Ledger::connect(&url).await.unwrap();
    drop(engine);
    let _engine = Engine::connect(&url, clock).await.unwrap();
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(again.pool())
        .await
        .unwrap();
    assert!(versions.contains(&20260101000000), "the engine's first migration: {versions:?}");
    assert!(versions.contains(&20260201000000), "the ledger's migration: {versions:?}");
    assert!(again.seed_demo_company(t0().date_naive()).await.unwrap().created);
    ledger.close().await;
    again.close().await;
}

#[tokio::test]
async fn a_sqlite_path_with_spaces_and_url_characters_is_opened_as_named() {
    let dir = std::env::temp_dir().join(format!("cloverleaf ledger #{} %20", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("books 50%.db");
    let ledger = Ledger::open(&path).await.unwrap();
    assert!(ledger.seed_demo_company(t0().date_naive()).await.unwrap().created);
    ledger.close().await;
    assert!(path.exists(), "the file is where the path says");
    // The same file by sqlite: URL: already seeded.
    let again = Ledger::connect(&format!("sqlite:{}", path.display())).await.unwrap();
    assert!(!again.seed_demo_company(t0().date_naive()).await.unwrap().created);
    again.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_url_naming_no_usable_database_is_a_clear_error() {
    for (url, expected) in [
        ("mysql://localhost/books", "unsupported database URL scheme `mysql`"),
        ("sqlite::memory:", "in-memory"),
        ("", "empty"),
    ] {
        match Ledger::connect(url).await {
            Err(e @ Error::Url(_)) => assert!(e.to_string().contains(expected), "{url}: {e}"),
            other => panic!("{url}: {other:?}"),
        }
    }
}
