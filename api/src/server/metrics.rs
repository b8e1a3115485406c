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

/// Upper bounds of the latency buckets, in microseconds.
const BUCKETS_MICROS: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];

/// A timer due longer ago than this is late: the scheduler is behind.
const LATE_AFTER_SECONDS: i64 = 60;

/// The logical route of a response, when the router matched a catch-all (ids hold `/`).
#[derive(Debug, Clone)]
pub struct RouteLabel(pub String);

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
        header(out, "cloverleaf_http_request_duration_seconds", "histogram", "HTTP request latency");
        for ((method, route, status), h) in map {
            let labels = format!("method=\"{}\",route=\"{}\",status=\"{status}\"", escape(&method), escape(&route));
            for (n, bound) in h.buckets.iter().zip(BUCKETS_MICROS) {
                let _ = writeln!(
                    out,
                    "cloverleaf_http_request_duration_seconds_bucket{{{labels},le=\"{}\"}} {n}",
                    seconds(bound)
                );
            }
            let _ =
                writeln!(out, "cloverleaf_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "cloverleaf_http_request_duration_seconds_sum{{{labels}}} {}", seconds(h.sum_micros));
            let _ = writeln!(out, "cloverleaf_http_request_duration_seconds_count{{{labels}}} {}", h.count);
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
    let method = request.method().to_string();
    let matched = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let mut response = next.run(request).await;
    let route = match (response.extensions_mut().remove::<RouteLabel>(), matched) {
        (Some(label), _) => label.0,
        (None, Some(path)) => path,
        (None, None) => "unmatched".to_string(),
    };
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

/// The whole exposition.
pub async fn render(state: &AppState) -> Result<String, ApiError> {
    let engine = state.engine();
    let store = engine.store();
    let now = engine.now();
    let mut out = String::new();

    header(&mut out, "cloverleaf_instances", "gauge", "Instances by process and status");
    for g in store.instance_counts().await? {
        let _ = writeln!(
            out,
            "cloverleaf_instances{{process=\"{}\",status=\"{}\"}} {}",
            escape(&g.labels[0]),
            escape(&g.labels[1]),
            g.count
        );
    }

    header(&mut out, "cloverleaf_steps_total", "counter", "Events accepted by instances (durable steps)");
    let _ = writeln!(out, "cloverleaf_steps_total {}", store.event_count().await?);
    let stats = engine.writer_stats();
    header(&mut out, "cloverleaf_writer_transactions_total", "counter", "Transactions committed by this node's writer");
    let _ = writeln!(out, "cloverleaf_writer_transactions_total {}", stats.batches);
    header(
        &mut out,
        "cloverleaf_writer_writes_total",
        "counter",
        "Writes (steps, fetches, claims) group-committed by this node",
    );
    let _ = writeln!(out, "cloverleaf_writer_writes_total {}", stats.writes);
    header(
        &mut out,
        "cloverleaf_writer_busy_seconds_total",
        "counter",
        "Time this node's writer spent in transactions",
    );
    let _ = writeln!(out, "cloverleaf_writer_busy_seconds_total {}", seconds(stats.busy_micros));

    header(&mut out, "cloverleaf_jobs", "gauge", "Jobs by type and state (expired: locked with the lease run out)");
    for g in store.job_counts(now).await? {
        let _ = writeln!(
            out,
            "cloverleaf_jobs{{job_type=\"{}\",state=\"{}\"}} {}",
            escape(&g.labels[0]),
            escape(&g.labels[1]),
            g.count
        );
    }

    let timers = store.timer_stats(now, now - TimeDelta::seconds(LATE_AFTER_SECONDS)).await?;
    header(&mut out, "cloverleaf_timers_pending", "gauge", "Timers not fired yet");
    let _ = writeln!(out, "cloverleaf_timers_pending {}", timers.pending);
    header(&mut out, "cloverleaf_timers_due", "gauge", "Timers whose time has come");
    let _ = writeln!(out, "cloverleaf_timers_due {}", timers.due);
    header(
        &mut out,
        "cloverleaf_timers_late",
        "gauge",
        "Timers due for more than 60 seconds (the scheduler is behind)",
    );
    let _ = writeln!(out, "cloverleaf_timers_late {}", timers.late);
    header(&mut out, "cloverleaf_timer_lag_seconds", "gauge", "How long the oldest due timer has waited");
    let lag = timers.oldest_due.map_or(0, |at| (now - at).num_microseconds().unwrap_or(i64::MAX).max(0));
    let _ = writeln!(out, "cloverleaf_timer_lag_seconds {}", seconds(lag.unsigned_abs()));

    let tasks = store.open_tasks_by_role(None, now).await?;
    header(&mut out, "cloverleaf_tasks_open", "gauge", "Open human tasks by process and candidate role");
    for (g, _) in &tasks {
        let _ = writeln!(
            out,
            "cloverleaf_tasks_open{{process=\"{}\",role=\"{}\"}} {}",
            escape(&g.labels[0]),
            escape(&g.labels[1]),
            g.count
        );
    }
    header(&mut out, "cloverleaf_tasks_overdue", "gauge", "Open human tasks past their due time");
    for (g, overdue) in &tasks {
        let _ = writeln!(
            out,
            "cloverleaf_tasks_overdue{{process=\"{}\",role=\"{}\"}} {overdue}",
            escape(&g.labels[0]),
            escape(&g.labels[1])
        );
    }

    header(&mut out, "cloverleaf_incidents_open", "gauge", "Open incidents by process");
    for g in store.open_incident_counts().await? {
        let _ = writeln!(out, "cloverleaf_incidents_open{{process=\"{}\"}} {}", escape(&g.labels[0]), g.count);
    }

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
}
