//! What the engine's benches share: the runtime they run on, the raw single-row commit rate they
//! set their figures beside (readings of the machine are the testkit's `machine`, which the finance
//! bench shares). Each bench includes it with
//! `mod common;` (`timers`, a directory, with `#[path]`); the straight-through workload of
//! `engine` and `nodes` is in [`workload`].
//!
//! Items a bench leaves unused allow `dead_code`, with the bench that leaves them as the reason.

#[allow(dead_code, reason = "only the engine bench reads the writer's costs")]
pub mod cost;
#[allow(dead_code, reason = "only the engine bench pre-fills its database")]
pub mod prefill;
#[allow(dead_code, reason = "the timers bench runs a process of its own")]
pub mod workload;

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

/// What a bench returns: any error, boxed.
pub type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Raw commits are measured for this long.
pub const RAW_TIME: Duration = Duration::from_secs(2);

/// The variable `name` as a number, or `default` when it is unset or not one.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs `bench` on a multi-threaded runtime of `BENCH_WORKER_THREADS` workers (2 unless set).
pub fn block_on(bench: impl Future<Output = BenchResult<()>>) -> BenchResult<()> {
    let workers = env_usize("BENCH_WORKER_THREADS", 2);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()?;
    runtime.block_on(bench)
}

/// Single-row autocommit INSERTs into `bench_raw` through sqlx on the file at `path` (WAL,
/// `synchronous=FULL`), from `tasks` tasks over its one connection, for [`RAW_TIME`].
pub async fn sqlite_raw(path: &Path, tasks: usize) -> BenchResult<f64> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_raw (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        .execute(&pool)
        .await?;
    let rate = commit_rate(&pool, tasks, |pool: SqlitePool| async move {
        sqlx::query("INSERT INTO bench_raw (v) VALUES (?1)").bind("x").execute(&pool).await.map(drop)
    })
    .await;
    pool.close().await;
    rate
}

/// Single-row autocommit INSERTs into a tiny table, `bench_raw`, through sqlx on the PostgreSQL
/// database at `url`, from `tasks` tasks over `connections` connections (all opened first), for
/// [`RAW_TIME`]. The table is created when missing and otherwise kept as it is.
#[allow(dead_code, reason = "the engine bench measures SQLite only")]
pub async fn pg_raw(url: &str, tasks: usize, connections: usize) -> BenchResult<f64> {
    let connections = u32::try_from(connections.max(1))?;
    let pool = PgPoolOptions::new().max_connections(connections).min_connections(connections).connect(url).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_raw (id BIGSERIAL PRIMARY KEY, v TEXT NOT NULL)")
        .execute(&pool)
        .await?;
    let rate = commit_rate(&pool, tasks, |pool: PgPool| async move {
        sqlx::query("INSERT INTO bench_raw (v) VALUES ($1)").bind("x").execute(&pool).await.map(drop)
    })
    .await;
    pool.close().await;
    rate
}

/// Runs `commit` over and over from `tasks` tasks, each with its own handle on `pool`, for
/// [`RAW_TIME`]; commits per second.
async fn commit_rate<P, F, C>(pool: &P, tasks: usize, commit: F) -> BenchResult<f64>
where
    P: Clone + Send + 'static,
    F: Fn(P) -> C + Copy + Send + 'static,
    C: Future<Output = Result<(), sqlx::Error>> + Send,
{
    let start = Instant::now();
    let deadline = start + RAW_TIME;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let pool = pool.clone();
        set.spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                commit(pool.clone()).await?;
                n += 1;
            }
            Ok::<_, sqlx::Error>(n)
        });
    }
    let mut n = 0;
    while let Some(done) = set.join_next().await {
        n += done??;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}
