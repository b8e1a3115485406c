//! `GET /v1/kpis` and `GET /v1/kpis/{key}`: the indicator catalogue with each figure's
//! definition (formula in words, unit, owner role, breakdowns) and its value, whole or split by
//! customer, sales rep or period; `GET /v1/kpis/{key}/history`: its daily snapshots, for a trend.
//! The same definitions and numbers as the finance board; readers of the finance reports only
//! (admin, auditor, finance controller, CFO), for all three.

use axum::extract::State;
use chrono::NaiveDate;
use cloverleaf_finance::ledger::kpi::{self, Breakdown, Definition, Figure, Unit, Window};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{Path, Query};

/// Which days, and how to split.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct KpiQuery {
    /// The date stock figures are taken on and the window's last day; today when absent.
    pub as_of: Option<NaiveDate>,
    /// The window's first day for flow figures; 89 days before `as_of` when absent.
    pub from: Option<NaiveDate>,
    /// `customer`, `sales_rep`, `day`, `week` or `month`.
    pub by: Option<String>,
}

/// Which days of a figure's history.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// The first day; 89 days before `to` when absent.
    pub from: Option<NaiveDate>,
    /// The last day; today when absent.
    pub to: Option<NaiveDate>,
}

/// A figure's daily snapshots: its whole value as taken each day (stock figures on the day, flows
/// over the 90 days up to it). Days without a snapshot are absent.
#[derive(Debug, Serialize, ToSchema)]
pub struct KpiHistory {
    /// The indicator's key.
    pub key: &'static str,
    /// Its name.
    pub name: &'static str,
    /// `money`, `days` or `ratio`.
    #[schema(value_type = String)]
    pub unit: Unit,
    /// The currency money figures are in.
    pub currency: &'static str,
    /// The first day asked for.
    pub from: NaiveDate,
    /// The last day asked for.
    pub to: NaiveDate,
    /// The snapshots, oldest first.
    pub points: Vec<KpiPoint>,
}

/// One day's snapshot.
#[derive(Debug, Serialize, ToSchema)]
pub struct KpiPoint {
    /// The day.
    pub day: NaiveDate,
    /// The value that day; `null` for a ratio with nothing to divide by.
    #[schema(value_type = Option<String>)]
    pub value: Option<Decimal>,
}

/// The catalogue's figures over one window.
#[derive(Debug, Serialize, ToSchema)]
pub struct KpiCatalogue {
    /// The window's first day (flow figures).
    pub from: NaiveDate,
    /// The date stock figures are taken on, and the window's last day.
    pub as_of: NaiveDate,
    /// The currency money figures are in.
    pub currency: &'static str,
    /// The split asked for, if any.
    pub by: Option<String>,
    /// The figures, in the catalogue's order.
    pub kpis: Vec<KpiView>,
}

/// One indicator: its definition and its value.
#[derive(Debug, Serialize, ToSchema)]
pub struct KpiView {
    /// The key alert rules and links use.
    pub key: &'static str,
    /// Its name.
    pub name: &'static str,
    /// How it is computed, in words.
    pub formula: &'static str,
    /// `money` (decimal string, the ledger's currency), `days` or `ratio` (a fraction: `"0.25"` is 25 %).
    #[schema(value_type = String)]
    pub unit: Unit,
    /// The role that answers for it.
    pub owner: &'static str,
    /// Summed over the window (`true`) or taken on `as_of`.
    pub over_window: bool,
    /// The splits it offers.
    #[schema(value_type = Vec<String>)]
    pub breakdowns: &'static [Breakdown],
    /// The value; `null` for a ratio with nothing to divide by.
    #[schema(value_type = Option<String>)]
    pub value: Option<Decimal>,
    /// The parts, when a split it offers was asked for.
    pub parts: Vec<KpiPart>,
}

/// One part of a split figure.
#[derive(Debug, Serialize, ToSchema)]
pub struct KpiPart {
    /// The customer id or the period (`2026-01-05`, `2026-W02`, `2026-01`).
    pub label: String,
    /// The part's value.
    #[schema(value_type = Option<String>)]
    pub value: Option<Decimal>,
}

fn view(definition: &'static Definition, figure: Figure) -> KpiView {
    KpiView {
        key: definition.key,
        name: definition.name,
        formula: definition.formula,
        unit: definition.unit,
        owner: definition.owner,
        over_window: definition.over_window,
        breakdowns: definition.breakdowns,
        value: figure.value,
        parts: figure.parts.into_iter().map(|(label, value)| KpiPart { label, value }).collect(),
    }
}

async fn window(state: &AppState, query: &KpiQuery) -> Result<Window, ApiError> {
    let as_of = match query.as_of {
        Some(as_of) => as_of,
        None => state.books_today().await?,
    };
    let from = query.from.unwrap_or(Window::last_90_days(as_of).from);
    if from > as_of {
        return Err(ApiError::unprocessable(
            "invalid_window",
            format!("`from` ({from}) is after `as_of` ({as_of}): the window would hold no day"),
        ));
    }
    Ok(Window { from, as_of })
}

fn breakdown(query: &KpiQuery) -> Result<Option<Breakdown>, ApiError> {
    match query.by.as_deref() {
        None | Some("") => Ok(None),
        Some(text) => Breakdown::parse(text).map(Some).ok_or_else(|| {
            ApiError::unprocessable(
                "invalid_breakdown",
                format!("`by={text}` is not a breakdown: use customer, sales_rep, day, week or month"),
            )
        }),
    }
}

async fn figures(state: &AppState, window: Window, by: Option<Breakdown>) -> Result<Vec<Figure>, ApiError> {
    let ledger = state.ledger().ok_or_else(ApiError::no_ledger)?;
    ledger.figures(window, by).await.map_err(ApiError::internal)
}

/// Every indicator of the catalogue: definition and value, split by `by` where it offers that.
#[utoipa::path(
    get, path = "/v1/kpis", tag = "reports",
    params(KpiQuery),
    responses(
        (status = 200, description = "The catalogue with values", body = KpiCatalogue),
        (status = 403, description = "Not admin, auditor, finance controller or CFO", body = ErrorBody),
        (status = 404, description = "No sub-ledger on this server", body = ErrorBody),
        (status = 422, description = "An unknown breakdown, or `from` after `as_of`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn catalogue(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<KpiQuery>,
) -> Result<axum::Json<KpiCatalogue>, ApiError> {
    super::access::may_read_reports(&caller)?;
    let (window, by) = (window(&state, &query).await?, breakdown(&query)?);
    let figures = figures(&state, window, by).await?;
    let kpis = kpi::CATALOGUE.iter().zip(figures).map(|(d, f)| view(d, f)).collect();
    Ok(axum::Json(KpiCatalogue {
        from: window.from,
        as_of: window.as_of,
        currency: crate::web::i18n::CURRENCY,
        by: by.map(|b| b.name().to_string()),
        kpis,
    }))
}

fn known(key: &str) -> Result<&'static Definition, ApiError> {
    kpi::definition(key).ok_or_else(|| {
        let keys: Vec<&str> = kpi::CATALOGUE.iter().map(|d| d.key).collect();
        ApiError::missing("indicator", key, format!("no indicator `{key}`: the catalogue has {}", keys.join(", ")))
    })
}

/// One indicator's daily snapshots (taken when the alert rules are judged, once a day).
#[utoipa::path(
    get, path = "/v1/kpis/{key}/history", tag = "reports",
    params(("key" = String, Path, description = "The indicator's key, such as `days_sales_outstanding`"), HistoryQuery),
    responses(
        (status = 200, description = "The stored daily values", body = KpiHistory),
        (status = 403, description = "Not admin, auditor, finance controller or CFO", body = ErrorBody),
        (status = 404, description = "No such indicator, or no sub-ledger on this server", body = ErrorBody),
        (status = 422, description = "`from` after `to`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Result<axum::Json<KpiHistory>, ApiError> {
    super::access::may_read_reports(&caller)?;
    let definition = known(&key)?;
    let to = match query.to {
        Some(to) => to,
        None => state.books_today().await?,
    };
    let from = query.from.unwrap_or(Window::last_90_days(to).from);
    if from > to {
        return Err(ApiError::unprocessable(
            "invalid_window",
            format!("`from` ({from}) is after `to` ({to}): the history would hold no day"),
        ));
    }
    let ledger = state.ledger().ok_or_else(ApiError::no_ledger)?;
    let points = ledger.kpi_series(definition.key, from, to).await.map_err(ApiError::internal)?;
    Ok(axum::Json(KpiHistory {
        key: definition.key,
        name: definition.name,
        unit: definition.unit,
        currency: crate::web::i18n::CURRENCY,
        from,
        to,
        points: points.into_iter().map(|p| KpiPoint { day: p.day, value: p.value }).collect(),
    }))
}

/// One indicator; a split it does not offer is refused with the ones it does.
#[utoipa::path(
    get, path = "/v1/kpis/{key}", tag = "reports",
    params(("key" = String, Path, description = "The indicator's key, such as `gross_margin`"), KpiQuery),
    responses(
        (status = 200, description = "The indicator with its value", body = KpiView),
        (status = 403, description = "Not admin, auditor, finance controller or CFO", body = ErrorBody),
        (status = 404, description = "No such indicator, or no sub-ledger on this server", body = ErrorBody),
        (status = 422, description = "A breakdown it does not offer, or `from` after `as_of`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    Query(query): Query<KpiQuery>,
) -> Result<axum::Json<KpiView>, ApiError> {
    super::access::may_read_reports(&caller)?;
    let definition = known(&key)?;
    let (window, by) = (window(&state, &query).await?, breakdown(&query)?);
    if let Some(by) = by.filter(|b| !definition.breakdowns.contains(b)) {
        let offered: Vec<&str> = definition.breakdowns.iter().map(|b| b.name()).collect();
        return Err(ApiError::unprocessable(
            "invalid_breakdown",
            format!("`{key}` has no breakdown by {}: it offers {}", by.name(), offered.join(", ")),
        )
        .with_details(json!({"kpi": key, "by": by.name(), "offered": offered})));
    }
    let figure = figures(&state, window, by)
        .await?
        .into_iter()
        .find(|f| f.key == definition.key)
        .ok_or_else(|| ApiError::internal(format!("the ledger computed no `{key}`")))?;
    Ok(axum::Json(view(definition, figure)))
}
