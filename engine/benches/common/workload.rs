//! The straight-through workload of the `engine` and `nodes` benches: start `order_approval`,
//! complete its credit check in-process, let it decide and end; on a SQLite file of the bench's
//! own.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::TimeDelta;
use cloverleaf_engine::runtime::{Engine, Error};
use cloverleaf_engine::store::Store;
use serde_json::json;

use super::BenchResult;

/// The reference processes (`processes/*.flow`), as (file name, text), by name.
pub fn reference_files() -> BenchResult<Vec<(String, String)>> {
    let dir = format!("{}/../processes", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".flow"))
        .collect();
    names.sort();
    names.into_iter().map(|n| Ok((n.clone(), std::fs::read_to_string(format!("{dir}/{n}"))?))).collect()
}

/// A SQLite file in the benches' temporary directory, removed (with its WAL) when made, in case
/// an earlier run left it, and when dropped.
pub struct SqliteFile(PathBuf);

impl SqliteFile {
    /// The file `name` in `CARGO_TARGET_TMPDIR`, not there yet.
    pub fn new(name: &str) -> SqliteFile {
        let file = SqliteFile(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name));
        file.remove();
        file
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    fn remove(&self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

impl Drop for SqliteFile {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The input of the `i`th order of `amount`.
pub fn order(i: usize, amount: &str) -> serde_json::Value {
    json!({"order_id": format!("SO-{i}"), "customer_id": "C-7", "amount": amount, "requested_by": "rita"})
}

/// start → credit check completed in-process → decide → end, `instances` times, by
/// `concurrency` starters spread over `nodes`; instances per second.
pub async fn straight_through<S: Store>(nodes: &[Engine<S>], instances: usize, concurrency: usize) -> BenchResult<f64> {
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let node = nodes[w % nodes.len()].clone();
        let share = instances / concurrency + usize::from(w < instances % concurrency);
        set.spawn(async move {
            for i in 0..share {
                node.start("order_approval", None, order(i, "5000.00")).await?;
                complete_credit_checks(&node, 1).await?;
            }
            Ok::<_, Error>(())
        });
    }
    while let Some(done) = set.join_next().await {
        done??;
    }
    // Jobs another starter's fetch skipped, through any node.
    loop {
        let mut completed = 0;
        for node in nodes {
            completed += complete_credit_checks(node, 256).await?;
        }
        if completed == 0 {
            break;
        }
    }
    Ok(instances as f64 / start.elapsed().as_secs_f64())
}

/// Fetches up to `max` due credit checks and completes them with a good rating; how many.
pub async fn complete_credit_checks<S: Store>(node: &Engine<S>, max: usize) -> Result<usize, Error> {
    let jobs = node.fetch_and_lock("bench", &["credit.check"], max, TimeDelta::seconds(60)).await?;
    for job in &jobs {
        node.complete_job(&job.id, job.epoch, json!({"credit_limit": "50000", "open_ar": "0", "risk": "A"})).await?;
    }
    Ok(jobs.len())
}
