//! Readings of the machine a bench runs on, printed beside its figures: a rate means little
//! without the CPU it ran on and how busy that CPU was meanwhile (whether the run was bound by
//! the CPU or by waiting).

/// The CPU's model name, from /proc/cpuinfo (`unknown` where there is none).
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The machine's busy and total CPU time so far, in ticks (the `cpu` line of /proc/stat);
/// `None` where /proc/stat cannot be read.
pub fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    // user, nice, system, idle, iowait, irq, softirq, steal: guest time is already in user and nice.
    let ticks: Vec<u64> =
        stat.lines().next()?.split_whitespace().skip(1).take(8).filter_map(|t| t.parse().ok()).collect();
    let total: u64 = ticks.iter().sum();
    // idle and iowait
    let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// The share of the machine's CPU time spent busy between two readings of [`cpu_times`], as
/// `91 %`, or `unknown`.
pub fn cpu_busy(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> String {
    match (before, after) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => format!("{:.0} %", 100.0 * (b1 - b0) as f64 / (t1 - t0) as f64),
        _ => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_share_is_the_busy_ticks_over_all_ticks() {
        assert_eq!(cpu_busy(Some((100, 1_000)), Some((550, 1_500))), "90 %");
        assert_eq!(cpu_busy(Some((100, 1_000)), Some((100, 1_000))), "unknown");
        assert_eq!(cpu_busy(None, Some((1, 2))), "unknown");
    }
}
