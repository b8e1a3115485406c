//! Budgets per cost centre and month: what the credit-and-budget check of `order_approval`
//! reserves against.
//!
//! Who may use them: the finance report readers (admin, auditor, controller, CFO) list them;
//! the controller, the CFO and admins set them (an auditor reads, never writes).
//!
//! A rejected order releases its reservation inside `order_approval`; an approved order that is
//! cancelled later (its order-to-cash instance cancelled by an operator) has no step left to do
//! it, so [`release_cancelled`] does: the server runs it with every alert evaluation (every five
//! minutes and on `POST /v1/alerts/evaluate`).

use axum::extract::State;
use chrono::{DateTime, Utc};
use cloverleaf_engine::runtime::Engine;
use cloverleaf_engine::store::{InstanceState, Queries, Store};
use cloverleaf_finance::{BudgetLine, Error as LedgerError};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Caller;
use super::config::ADMIN;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, Query};

/// Releases the budget reserved by each order whose latest instance under the order's id (its
/// order-to-cash instance, started with the order id as business key) was cancelled. Returns the
/// orders released, with the amounts. Released once: the release is keyed by the order.
pub async fn release_cancelled<S: Store + Queries>(
    engine: &Engine<S>,
    ledger: &cloverleaf_finance::Ledger,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<(String, Decimal)>> {
    let mut released = Vec::new();
    for order in ledger.reserved_orders().await? {
        let latest = engine.store().instances(None, None, Some(&order), 1, 0).await?;
        if latest.first().is_some_and(|i| i.status == InstanceState::Cancelled) {
            let release = ledger.release_budget(&format!("budget.release.cancelled.{order}"), now, &order).await?;
            released.push((order, release.released));
        }
    }
    Ok(released)
}

/// Who may set a budget.
pub const BUDGET_SETTERS: &[&str] = &[ADMIN, "finance.controller", "finance.cfo"];

/// Which month.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BudgetParams {
    /// Only this month (`2026-03`); all months when absent.
    pub period: Option<String>,
}

/// The budgets, in the ledger's currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetList {
    /// The currency of every amount.
    pub currency: String,
    /// By cost centre and month.
    pub budgets: Vec<BudgetLine>,
}

/// A budget to set.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetBudget {
    /// The month's budget, a decimal string (`"250000.00"`), not negative.
    #[schema(value_type = String)]
    pub amount: Decimal,
}

fn ledger(state: &AppState) -> Result<&cloverleaf_finance::Ledger, ApiError> {
    state.ledger().ok_or_else(ApiError::no_ledger)
}

/// A refusal of the ledger as the API's error: bad input is the caller's to fix.
fn refused(e: LedgerError) -> ApiError {
    match e {
        LedgerError::Input { .. } | LedgerError::InvalidAmount(_) => {
            ApiError::unprocessable("invalid_budget", e.to_string())
        }
        other => ApiError::internal(other),
    }
}

/// Every budget with what orders reserved and what is left.
#[utoipa::path(
    get, path = "/v1/budgets", tag = "reports",
    params(BudgetParams),
    responses(
        (status = 200, description = "The budgets", body = BudgetList),
        (status = 403, description = "Not admin, auditor, finance controller or CFO", body = ErrorBody),
        (status = 404, description = "No sub-ledger on this server", body = ErrorBody),
        (status = 422, description = "`period` is not a month like 2026-03", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<BudgetParams>,
) -> Result<axum::Json<BudgetList>, ApiError> {
    super::access::may_read_reports(&caller)?;
    let budgets = ledger(&state)?.budgets(params.period.as_deref()).await.map_err(refused)?;
    Ok(axum::Json(BudgetList { currency: crate::web::i18n::CURRENCY.into(), budgets }))
}

/// Sets the budget of a cost centre for a month (replacing an earlier amount); orders already
/// reserved keep their reservations.
#[utoipa::path(
    put, path = "/v1/budgets/{cost_centre}/{period}", tag = "reports",
    params(("cost_centre" = String, Path, description = "The cost centre"), ("period" = String, Path, description = "The month, `2026-03`")),
    request_body = SetBudget,
    responses(
        (status = 200, description = "The budget as it now stands", body = BudgetLine),
        (status = 403, description = "Not admin, finance controller or CFO", body = ErrorBody),
        (status = 404, description = "No sub-ledger on this server", body = ErrorBody),
        (status = 422, description = "A bad cost centre, month or amount", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn set(
    State(state): State<AppState>,
    caller: Caller,
    Path((cost_centre, period)): Path<(String, String)>,
    Json(body): Json<SetBudget>,
) -> Result<axum::Json<BudgetLine>, ApiError> {
    caller.require_any(BUDGET_SETTERS, "set a budget")?;
    let now = state.engine().now();
    let line = ledger(&state)?.set_budget(&cost_centre, &period, body.amount, now).await.map_err(refused)?;
    tracing::info!(user = caller.name(), %cost_centre, %period, amount = %body.amount, "budget set");
    Ok(axum::Json(line))
}
