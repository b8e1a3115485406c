//! What the writer spends: rows written, WAL frames appended, and CPU time on the writer path
//! (the group-commit thread, which makes the batch's SQLite calls itself), read before and after
//! a measure so that the bench can print the cost of one instance.
//!
//! Rows are SQLite's `total_changes()` of the writer's connection (rows inserted, updated and
//! deleted). WAL frames are its pager's `SQLITE_DBSTATUS_CACHE_WRITE` counter: in WAL mode every
//! page a commit writes is one frame appended to the log (the checkpoints that copy frames back
//! into the database file are not counted). CPU times are the kernel's per-thread run times
//! (`/proc/self/task/*/schedstat`, in nanoseconds), the process's from `/proc/self/stat`.

use std::path::Path;

use cloverleaf_engine::runtime::Engine;

use super::BenchResult;

/// The name of the engine's group-commit thread (`cloverleaf-writer`) as the kernel keeps it:
/// cut to 15 bytes.
const WRITER_THREAD: &str = "cloverleaf-writ";

/// One reading of the counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reading {
    /// Rows inserted, updated or deleted by the write connection so far.
    pub rows: i64,
    /// WAL frames the write connection appended so far.
    pub frames: i64,
    /// The database's page size.
    pub page_size: i64,
    /// CPU time of the group-commit thread, in nanoseconds.
    pub writer_ns: u64,
    /// CPU time of the whole process, in nanoseconds (10 ms resolution).
    pub process_ns: u64,
}

/// The cost of `instances` instances between two readings.
#[derive(Debug, Clone, Copy)]
pub struct Cost {
    pub instances: usize,
    pub rows: f64,
    pub frames: f64,
    pub wal_bytes: f64,
    /// The writer path: the group-commit thread, SQLite's work included.
    pub writer_us: f64,
    pub process_us: f64,
}

impl Cost {
    /// One line for the bench's output.
    pub fn line(&self, what: &str) -> String {
        format!(
            "cost per {what}: {:.1} rows written, {:.0} WAL bytes ({:.2} frames), writer-path CPU {:.0} us \
             (the group-commit thread, SQLite included), whole process CPU {:.0} us",
            self.rows, self.wal_bytes, self.frames, self.writer_us, self.process_us
        )
    }
}

/// Reads the counters of `engine`'s write connection and of the writer thread. Takes the
/// writer's lock, so the writer is between two batches while it reads.
pub async fn read(engine: &Engine) -> BenchResult<Reading> {
    let counters = engine.store().writer_counters().await?;
    let mut writer_ns = 0;
    for task in std::fs::read_dir("/proc/self/task")? {
        let dir = task?.path();
        if std::fs::read_to_string(dir.join("comm")).is_ok_and(|c| c.trim() == WRITER_THREAD) {
            writer_ns += run_ns(&dir.join("schedstat"))?;
        }
    }
    Ok(Reading {
        rows: counters.rows_changed,
        frames: counters.wal_pages,
        page_size: counters.page_size,
        writer_ns,
        process_ns: process_ns()?,
    })
}

/// The cost per instance between `before` and `after`, over `instances` instances.
pub fn per_instance(before: Reading, after: Reading, instances: usize) -> Cost {
    let n = instances.max(1) as f64;
    let frames = (after.frames - before.frames) as f64 / n;
    Cost {
        instances,
        rows: (after.rows - before.rows) as f64 / n,
        frames,
        // Each frame is a 24-byte header and a page.
        wal_bytes: frames * (after.page_size + 24) as f64,
        writer_us: after.writer_ns.saturating_sub(before.writer_ns) as f64 / 1000.0 / n,
        process_us: after.process_ns.saturating_sub(before.process_ns) as f64 / 1000.0 / n,
    }
}

/// The first field of a `schedstat` file: time spent on a CPU, in nanoseconds.
fn run_ns(path: &Path) -> BenchResult<u64> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.split_whitespace().next().ok_or("empty schedstat")?.parse()?)
}

/// User and system time of the process (fields 14 and 15 of `/proc/self/stat`, in clock ticks
/// of 10 ms), in nanoseconds.
fn process_ns() -> BenchResult<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = stat.rsplit_once(')').ok_or("odd /proc/self/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        fields.get(11).ok_or("short stat")?.parse::<u64>()? + fields.get(12).ok_or("short stat")?.parse::<u64>()?;
    Ok(ticks * 10_000_000)
}
