//! The CPU the run used, per process: the serve and worker processes, and the PostgreSQL
//! backends serving each of them (told apart by their connection's `application_name`). Read
//! from `/proc` (Linux only; elsewhere nothing is counted), a figure for the report, never
//! asserted.

use std::collections::BTreeMap;

use sqlx::PgPool;

/// Clock ticks per second of `/proc/PID/stat` (USER_HZ, 100 on every Linux this runs on).
const TICKS: f64 = 100.0;

/// User plus system CPU seconds of process `pid`, if it is still there.
pub(crate) fn seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: count fields after the last `)`.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the line (utime, stime) are the 12th and 13th after the name.
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / TICKS)
}

/// The most each process was seen to have used, by pid, with the name it goes by.
#[derive(Default)]
pub(crate) struct Cpu {
    seen: BTreeMap<u32, (String, f64)>,
}

impl Cpu {
    /// Records `pid` as `name` at what it has used so far.
    pub(crate) fn record(&mut self, pid: u32, name: &str) {
        if let Some(s) = seconds(pid) {
            let entry = self.seen.entry(pid).or_insert_with(|| (name.to_string(), 0.0));
            entry.1 = entry.1.max(s);
        }
    }

    /// Records every backend of the test's database, named `pg:APP`.
    pub(crate) async fn record_backends(&mut self, pool: &PgPool) {
        let backends: Vec<(i32, String)> = sqlx::query_as(
            "SELECT pid, application_name FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_all(pool)
        .await
        .unwrap_or_default();
        for (pid, app) in backends {
            if let Ok(pid) = u32::try_from(pid) {
                self.record(pid, &format!("pg:{app}"));
            }
        }
    }

    /// Every process seen, by pid.
    pub(crate) fn names(&self) -> impl Iterator<Item = (u32, &str)> {
        self.seen.iter().map(|(pid, (name, _))| (*pid, name.as_str()))
    }

    /// Seconds by name, summed over the processes of each name.
    pub(crate) fn by_name(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for (name, s) in self.seen.values() {
            *out.entry(name.clone()).or_insert(0.0) += s;
        }
        out
    }
}

/// The load average of the machine (1, 5 and 15 minutes), as `/proc/loadavg` gives it.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
