//! `GET /metrics`: Prometheus text exposition, written by hand.
//!
//! Gauges come from the database at scrape time (instances by state, jobs, timers, tasks by
//! role, incidents); counters from the engine's writer; request latencies from a histogram the
//! [`track`] middleware fills.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use chrono::TimeDelta;

use super::AppState;
use super::error::ApiError;
use cloverleaf_engine::store::Queries as _;

/// Upper bounds of the latency buckets, in microseconds.
const BUCKETS_MICROS: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];

/// A timer due longer ago than this is late: the scheduler is behind.
const LATE_AFTER_SECONDS: i64 = 60;

#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS_MICROS.len()],
    count: u64,
    sum_micros: u64,
}

/// Request latencies by (method, route, status).
#[derive(Debug, Default)]
pub struct RequestMetrics {
    by_route: Mutex<BTreeMap<(String, String, u16), Histogram>>,
}

impl RequestMetrics {
    fn record(&self, method: &str, route: &str, status: u16, micros: u64) {
        let mut map = self.by_route.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let h = map.entry((method.to_string(), route.to_string(), status)).or_default();
        for (bucket, bound) in h.buckets.iter_mut().zip(BUCKETS_MICROS) {
            if micros <= bound {
                *bucket += 1;
            }
        }
        h.count += 1;
        h.sum_micros = h.sum_micros.saturating_add(micros);
    }

    fn render(&self, out: &mut String) {
        let map = self.by_route.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let name = "cloverleaf_http_request_duration_seconds";
        header(out, name, "histogram", "HTTP request latency");
        for ((method, route, status), h) in map {
            let status = status.to_string();
            let labels = [("method", method.as_str()), ("route", route.as_str()), ("status", status.as_str())];
            let [m, r, s] = labels;
            let bucket = format!("{name}_bucket");
            for (n, bound) in h.buckets.iter().zip(BUCKETS_MICROS) {
                sample(out, &bucket, &[m, r, s, ("le", &seconds(bound))], n);
            }
            sample(out, &bucket, &[m, r, s, ("le", "+Inf")], h.count);
            sample(out, &format!("{name}_sum"), &labels, seconds(h.sum_micros));
            sample(out, &format!("{name}_count"), &labels, h.count);
        }
    }
}

/// Microseconds as decimal seconds, exactly (`2500` → `0.0025`).
fn seconds(micros: u64) -> String {
    let text = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
    let text = text.trim_end_matches('0');
    text.strip_suffix('.').unwrap_or(text).to_string()
}

/// Times every request by its route.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // Labels come from bounded sets only: a client inventing methods or paths must not grow the
    // exposition by one series per request.
    let method = match request.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "DELETE" | "PATCH" | "HEAD" | "OPTIONS") => m.to_string(),
        _ => "other".to_string(),
    };
    let matched = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let response = next.run(request).await;
    let route = matched.unwrap_or_else(|| "unmatched".to_string());
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    state.requests().record(&method, &route, response.status().as_u16(), micros);
    response
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One sample: `name{label="value",...} value`, or `name value` without labels.
fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {value}");
        return;
    }
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    let _ = writeln!(out, "{name}{{{}}} {value}", labels.join(","));
}

/// A metric of one sample without labels.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, kind, help);
    sample(out, name, &[], value);
}

/// A gauge of one sample per group: the group's labels, named `names` in the query's order.
fn gauges<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    names: &[&str],
    groups: impl IntoIterator<Item = (&'a [String], i64)>,
) {
    header(out, name, "gauge", help);
    for (values, count) in groups {
        let labels: Vec<(&str, &str)> = names.iter().copied().zip(values.iter().map(String::as_str)).collect();
        sample(out, name, &labels, count);
    }
}

/// The whole exposition.
pub async fn render(state: &AppState) -> Result<String, ApiError> {
    let engine = state.engine();
    let store = engine.store();
    let now = engine.now();
    let mut out = String::new();

    let instances = store.instance_counts().await?;
    let by_process_status = ["process", "status"];
    let rows = instances.iter().map(|g| (g.labels.as_slice(), g.count));
    gauges(&mut out, "cloverleaf_instances", "Instances by process and status", &by_process_status, rows);

    let steps = store.event_count().await?;
    single(&mut out, "cloverleaf_steps_total", "counter", "Events accepted by instances (durable steps)", steps);
    let stats = engine.writer_stats();
    let writer = "Transactions committed by this node's writer";
    single(&mut out, "cloverleaf_writer_transactions_total", "counter", writer, stats.batches);
    let writes = "Writes (steps, fetches, claims) group-committed by this node";
    single(&mut out, "cloverleaf_writer_writes_total", "counter", writes, stats.writes);
    let busy = "Time this node's writer spent in transactions";
    single(&mut out, "cloverleaf_writer_busy_seconds_total", "counter", busy, seconds(stats.busy_micros));
    let linger = "How long this node's writer waits for more writes before a batch while writes come together";
    let linger_micros = u64::try_from(engine.write_linger().as_micros()).unwrap_or(u64::MAX);
    single(&mut out, "cloverleaf_writer_linger_seconds", "gauge", linger, seconds(linger_micros));

    let jobs = store.job_counts(now).await?;
    let help = "Jobs by type and state (expired: locked with the lease run out)";
    let rows = jobs.iter().map(|g| (g.labels.as_slice(), g.count));
    gauges(&mut out, "cloverleaf_jobs", help, &["job_type", "state"], rows);

    let timers = store.timer_stats(now, now - TimeDelta::seconds(LATE_AFTER_SECONDS)).await?;
    // The timer table holds each waiting instance's earliest timer: these count instances.
    let pending = "Instances waiting on a timer (counted once, at their earliest)";
    single(&mut out, "cloverleaf_timers_pending", "gauge", pending, timers.pending);
    let due = "Instances whose earliest timer's time has come";
    single(&mut out, "cloverleaf_timers_due", "gauge", due, timers.due);
    let late = "Instances whose earliest timer is due for more than 60 seconds (the scheduler is behind)";
    single(&mut out, "cloverleaf_timers_late", "gauge", late, timers.late);
    let lag = timers.oldest_due.map_or(0, |at| (now - at).num_microseconds().unwrap_or(i64::MAX).max(0));
    let help = "How long the oldest due timer has waited";
    single(&mut out, "cloverleaf_timer_lag_seconds", "gauge", help, seconds(lag.unsigned_abs()));

    let tasks = store.open_tasks_by_role(None, now).await?;
    let by_process_role = ["process", "role"];
    let help = "Open human tasks by process and candidate role";
    let rows = tasks.iter().map(|(g, _)| (g.labels.as_slice(), g.count));
    gauges(&mut out, "cloverleaf_tasks_open", help, &by_process_role, rows);
    let rows = tasks.iter().map(|(g, overdue)| (g.labels.as_slice(), *overdue));
    gauges(&mut out, "cloverleaf_tasks_overdue", "Open human tasks past their due time", &by_process_role, rows);

    let incidents = store.open_incident_counts().await?;
    let rows = incidents.iter().map(|g| (g.labels.as_slice(), g.count));
    gauges(&mut out, "cloverleaf_incidents_open", "Open incidents by process", &["process"], rows);

    let polls = "Long polls of fetch-and-lock waiting on this node for a job";
    single(&mut out, "cloverleaf_long_polls_waiting", "gauge", polls, state.long_polls_waiting());

    state.requests().render(&mut out);
    Ok(out)
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microseconds_print_as_exact_seconds() {
        assert_eq!(seconds(2_500), "0.0025");
        assert_eq!(seconds(1_000_000), "1");
        assert_eq!(seconds(0), "0");
        assert_eq!(seconds(12_345_678), "12.345678");
    }

    #[test]
    fn samples_carry_escaped_labels_in_order() {
        let mut out = String::new();
        sample(&mut out, "m", &[], 3);
        sample(&mut out, "m", &[("process", "a\"b"), ("role", "x\\y")], 4);
        gauges(&mut out, "g", "G", &["process"], [(["p".to_string()].as_slice(), 5)]);
        assert_eq!(
            out,
            "m 3\nm{process=\"a\\\"b\",role=\"x\\\\y\"} 4\n# HELP g G\n# TYPE g gauge\ng{process=\"p\"} 5\n"
        );
    }
}
