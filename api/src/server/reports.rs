//! `GET /v1/reports/kpis`: the figures a CFO asks for when business and finance are joined.
//!
//! Per process: started, completed, running, cycle time (p50, p95), SLA breaches, open tasks by
//! role. From the finance sub-ledger, when the server has one: AR aging, the share of payments
//! matched automatically, days sales outstanding, bad-debt rate and gross margin.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use cloverleaf_engine::store::Queries as _;
use cloverleaf_finance::LedgerKpis;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::Query;

/// Which process.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct KpiParams {
    /// Only this process.
    pub process: Option<String>,
}

/// The report.
#[derive(Debug, Serialize, ToSchema)]
pub struct KpiReport {
    /// When the figures were taken.
    pub as_of: DateTime<Utc>,
    /// Per process, by key.
    pub processes: Vec<ProcessKpis>,
    /// The finance figures, absent when the server runs without the sub-ledger.
    pub ledger: Option<LedgerKpis>,
}

/// The figures of one process.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProcessKpis {
    /// The process key.
    pub process: String,
    /// Instances started.
    pub started: i64,
    /// Instances completed (any outcome).
    pub completed: i64,
    /// Instances running (or created, about to start).
    pub running: i64,
    /// Instances ended by an error end.
    pub failed: i64,
    /// Instances cancelled.
    pub cancelled: i64,
    /// The median time from start to completion, in whole seconds.
    pub cycle_time_p50_seconds: Option<i64>,
    /// The 95th percentile of the time from start to completion, in whole seconds.
    pub cycle_time_p95_seconds: Option<i64>,
    /// Human tasks completed after their due time, or still open past it.
    pub sla_breaches: i64,
    /// Open human tasks by candidate role (`(assigned)` for tasks assigned to a person).
    pub open_tasks_by_role: BTreeMap<String, i64>,
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// Process KPIs, and the finance figures of the sub-ledger.
#[utoipa::path(
    get, path = "/v1/reports/kpis", tag = "reports",
    params(KpiParams),
    responses(
        (status = 200, description = "The figures", body = KpiReport),
        (status = 403, description = "Not admin, auditor, finance controller or CFO", body = ErrorBody),
        (status = 404, description = "No such process", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn kpis(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<KpiParams>,
) -> Result<axum::Json<KpiReport>, ApiError> {
    super::access::may_read_reports(&caller)?;
    Ok(axum::Json(report(&state, params.process.as_deref()).await?))
}

/// The report, for a caller already allowed to read it (the API's route and the finance board).
pub(crate) async fn report(state: &AppState, only: Option<&str>) -> Result<KpiReport, ApiError> {
    let engine = state.engine();
    let store = engine.store();
    let now = engine.now();
    let counts = store.instance_counts().await?;
    let mut keys: BTreeSet<String> = store.deployments().await?.into_iter().map(|d| d.key).collect();
    keys.extend(counts.iter().map(|g| g.labels[0].clone()));
    if let Some(process) = only {
        if !keys.contains(process) {
            return Err(ApiError::missing("process", process, format!("process `{process}` is not deployed")));
        }
        keys.retain(|k| k == process);
    }
    let breaches: BTreeMap<String, i64> =
        store.sla_breaches(only, now).await?.into_iter().map(|g| (g.labels[0].clone(), g.count)).collect();
    let mut tasks: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for (g, _) in store.open_tasks_by_role(only, now).await? {
        tasks.entry(g.labels[0].clone()).or_default().insert(g.labels[1].clone(), g.count);
    }
    let mut processes = Vec::new();
    for key in keys {
        let count = |status: &str| {
            counts.iter().filter(|g| g.labels[0] == key && g.labels[1] == status).map(|g| g.count).sum::<i64>()
        };
        let mut cycles: Vec<i64> =
            store.cycles(&key).await?.iter().map(|c| (c.ended - c.started).num_seconds().max(0)).collect();
        cycles.sort_unstable();
        processes.push(ProcessKpis {
            started: counts.iter().filter(|g| g.labels[0] == key).map(|g| g.count).sum(),
            completed: count("completed"),
            running: count("running") + count("created"),
            failed: count("failed"),
            cancelled: count("cancelled"),
            cycle_time_p50_seconds: percentile(&cycles, 50),
            cycle_time_p95_seconds: percentile(&cycles, 95),
            sla_breaches: breaches.get(&key).copied().unwrap_or(0),
            open_tasks_by_role: tasks.remove(&key).unwrap_or_default(),
            process: key,
        });
    }
    let ledger = match state.ledger() {
        Some(ledger) => {
            let today = ledger.book_date(now).await.map_err(ApiError::internal)?;
            Some(ledger.kpis(today).await.map_err(ApiError::internal)?)
        }
        None => None,
    };
    Ok(KpiReport { as_of: now, processes, ledger })
}

/// Reads a stored report (the month-end AR aging or gross profit by customer) by the id the
/// process recorded (`aging_report`, `profit_report`): finance controller, CFO, auditor, admin.
#[utoipa::path(
    get, path = "/v1/reports/stored/{id}", tag = "reports",
    params(("id" = String, Path, description = "The report id, such as `ar_aging-2026-01-31-1`")),
    responses(
        (status = 200, description = "The report as the ledger stored it (money as decimal strings)", body = Object),
        (status = 403, description = "Not admin, auditor, finance controller or CFO", body = ErrorBody),
        (status = 404, description = "No such report, or no sub-ledger on this server", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn stored(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    super::access::may_read_reports(&caller)?;
    Ok(axum::Json(stored_report(&state, &id).await?))
}

/// A stored report's body, for a caller already allowed to read it.
pub(crate) async fn stored_report(state: &AppState, id: &str) -> Result<serde_json::Value, ApiError> {
    let Some(ledger) = state.ledger() else {
        return Err(ApiError::no_ledger());
    };
    ledger
        .report(id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::missing("report", id.to_string(), format!("no report `{id}`")))
}

/// The days of a live finance report.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FinanceParams {
    /// The report's date (stock reports) or the window's last day; today when absent.
    pub as_of: Option<NaiveDate>,
    /// The window's first day (gross profit); 89 days before `as_of` when absent.
    pub from: Option<NaiveDate>,
    /// Gross profit `by=customer` (the default) or `by=order`.
    pub by: Option<String>,
}

fn ledger(state: &AppState) -> Result<&cloverleaf_finance::Ledger, ApiError> {
    state.ledger().ok_or_else(ApiError::no_ledger)
}

/// AR aging as of a date: the five buckets (`not_due`, then `1-30`, `31-60`, `61-90`, `90+` days
/// past due), each open invoice (with its order, days past due and days until due) and the open
/// amount per customer. Money as decimal strings in the ledger's currency.
#[utoipa::path(
    get, path = "/v1/reports/aging", tag = "reports",
    params(FinanceParams),
    responses(
        (status = 200, description = "`{as_of, currency, buckets, total, invoices, customers}`", body = Object),
        (status = 403, description = "Not admin, auditor, finance controller or CFO", body = ErrorBody),
        (status = 404, description = "No sub-ledger on this server", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn aging(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<FinanceParams>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    super::access::may_read_reports(&caller)?;
    let as_of = match params.as_of {
        Some(as_of) => as_of,
        None => state.books_today().await?,
    };
    let report = ledger(&state)?.aging(as_of).await.map_err(ApiError::internal)?;
    let mut customers: BTreeMap<&str, Decimal> = BTreeMap::new();
    for line in &report.invoices {
        *customers.entry(line.customer_id.as_str()).or_default() += line.amount_open;
    }
    let customers: Vec<serde_json::Value> = customers
        .into_iter()
        .map(|(customer, open)| serde_json::json!({"customer_id": customer, "amount_open": open}))
        .collect();
    let mut body = serde_json::to_value(&report).map_err(ApiError::internal)?;
    body["customers"] = serde_json::Value::Array(customers);
    body["currency"] = crate::web::i18n::CURRENCY.into();
    Ok(axum::Json(body))
}

/// Gross profit over a window, by customer or by order (revenue net of tax, cost of goods sold).
#[utoipa::path(
    get, path = "/v1/reports/gross-profit", tag = "reports",
    params(FinanceParams),
    responses(
        (status = 200, description = "`{from, to, currency, by, lines, revenue, cost_of_goods, gross_profit}`", body = Object),
        (status = 403, description = "Not admin, auditor, finance controller or CFO", body = ErrorBody),
        (status = 404, description = "No sub-ledger on this server", body = ErrorBody),
        (status = 422, description = "`by` is neither `customer` nor `order`, or `from` is after `as_of`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn gross_profit(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<FinanceParams>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    super::access::may_read_reports(&caller)?;
    let to = match params.as_of {
        Some(to) => to,
        None => state.books_today().await?,
    };
    let from = params.from.unwrap_or(to - chrono::TimeDelta::days(89));
    if from > to {
        return Err(ApiError::unprocessable("invalid_window", format!("`from` ({from}) is after `as_of` ({to})")));
    }
    let ledger = ledger(&state)?;
    let report = ledger.gross_profit(from, to).await.map_err(ApiError::internal)?;
    let lines = match params.by.as_deref().unwrap_or("customer") {
        "customer" => serde_json::to_value(&report.customers),
        "order" => serde_json::to_value(ledger.gross_profit_by_order(from, to).await.map_err(ApiError::internal)?),
        other => {
            return Err(ApiError::unprocessable(
                "invalid_breakdown",
                format!("`by={other}`: gross profit is reported by `customer` or by `order`"),
            ));
        }
    }
    .map_err(ApiError::internal)?;
    Ok(axum::Json(serde_json::json!({
        "from": from, "to": to, "currency": crate::web::i18n::CURRENCY,
        "by": params.by.as_deref().unwrap_or("customer"), "lines": lines,
        "revenue": report.revenue, "cost_of_goods": report.cost_of_goods, "gross_profit": report.gross_profit,
    })))
}

/// The trial balance: every account's debits, credits and balance, the balance in its own debit
/// or credit column, and the entries that do not balance (none unless rows were edited by hand).
#[utoipa::path(
    get, path = "/v1/reports/trial-balance", tag = "reports",
    responses(
        (status = 200, description = "`{currency, accounts, total_debit, total_credit, balanced, unbalanced_entries}`", body = Object),
        (status = 403, description = "Not admin, auditor, finance controller or CFO", body = ErrorBody),
        (status = 404, description = "No sub-ledger on this server", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn trial_balance(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    super::access::may_read_reports(&caller)?;
    let tb = ledger(&state)?.trial_balance().await.map_err(ApiError::internal)?;
    let accounts: Vec<serde_json::Value> = tb
        .accounts
        .iter()
        .map(|l| {
            let (debit_balance, credit_balance) =
                if l.balance >= Decimal::ZERO { (Some(l.balance), None) } else { (None, Some(-l.balance)) };
            serde_json::json!({"account": l.account, "name": l.name, "debit": l.debit, "credit": l.credit,
                "debit_balance": debit_balance, "credit_balance": credit_balance})
        })
        .collect();
    Ok(axum::Json(serde_json::json!({
        "currency": crate::web::i18n::CURRENCY, "accounts": accounts,
        "total_debit": tb.total_debit, "total_credit": tb.total_credit,
        "balanced": tb.total_debit == tb.total_credit && tb.unbalanced_entries.is_empty(),
        "unbalanced_entries": tb.unbalanced_entries,
    })))
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 95), Some(7));
        let values: Vec<i64> = (1..=20).collect();
        assert_eq!(percentile(&values, 50), Some(10));
        assert_eq!(percentile(&values, 95), Some(19));
    }
}
