//! `cloverleaf audit verify`: re-checks the history hash chain of every instance.

use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use cloverleaf_engine::runtime::Engine;
use cloverleaf_engine::store::{AnyStore, DatabaseUrl};
use cloverleaf_engine::{InstanceId, SystemClock};

/// Instances checked per page.
const PAGE: i64 = 500;

/// One instance whose history does not check out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Altered {
    /// The instance.
    pub instance: String,
    /// What is wrong, in words.
    pub problem: String,
}

/// What an audit found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSummary {
    /// Instances checked.
    pub instances: usize,
    /// History rows checked.
    pub rows: usize,
    /// The instances whose chain is broken.
    pub altered: Vec<Altered>,
}

/// Checks every instance of the database `url` names (see [`AnyStore::connect`]). The engine is
/// opened without its start-up recovery, so an audit changes nothing: no owed event applied, no
/// timer fired.
pub async fn verify(url: &str) -> Result<AuditSummary> {
    if let Ok(DatabaseUrl::Sqlite(path)) = DatabaseUrl::parse(url)
        && !std::path::Path::new(path).exists()
    {
        bail!("no database at {path}");
    }
    let store =
        AnyStore::connect(url).await.with_context(|| format!("cannot open {}", crate::server::redacted(url)))?;
    let engine = Engine::with_store(store, Arc::new(SystemClock), 1);
    let mut summary = AuditSummary::default();
    let mut after: Option<InstanceId> = None;
    loop {
        let page = engine.verify_histories(after.as_ref(), PAGE).await?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for (id, check) in page {
            summary.instances += 1;
            summary.rows += check.rows;
            if let Some(seq) = check.first_altered {
                summary.altered.push(Altered {
                    instance: id.0,
                    problem: format!("history row {seq} does not match its hash chain (changed, inserted or removed)"),
                });
            } else if check.head_mismatch {
                summary.altered.push(Altered {
                    instance: id.0,
                    problem: "the last history rows were removed (the instance's recorded head is missing)".into(),
                });
            }
        }
    }
    engine.store().close().await;
    Ok(summary)
}
