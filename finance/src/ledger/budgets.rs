//! Budgets per cost centre and month, checked and reserved when an order is entered.
//!
//! An order draws on the budget of its customer's cost centre for the month (UTC) it is checked
//! in. The credit check reserves the order's amount when it fits what is left, so two orders
//! checked at the same time cannot both take the last of a budget (the reservation is written in
//! the check's transaction, under the cost centre's lock: see [`Scope`]). An order that does not fit reserves
//! nothing and goes to finance; if finance approves it anyway, the amount is reserved over the
//! budget and marked so. A rejected order releases what it reserved. A customer without a cost
//! centre, or a month without a budget for it, is not budget-controlled.

use chrono::{DateTime, NaiveDate, Utc};
use cloverleaf_dsl::model::{MONEY_DECIMALS, MONEY_LIMIT};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

use super::idempotency::once;
use super::{Error, Ledger, Scope, cents, money_text, parse_money, ts_text};

/// The month an order checked on `today` (the books' day, see [`zone`](super::zone)) draws on.
fn month_of(today: NaiveDate) -> String {
    super::period_of(today)
}

/// Where an order stands against its budget at the credit check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BudgetPosition {
    /// The customer's cost centre; `None`: not budget-controlled.
    pub cost_centre: Option<String>,
    /// The month drawn on (`2026-03`).
    pub period: String,
    /// The month's budget; `None` when the cost centre has none for the month.
    pub budget: Option<Decimal>,
    /// What is left of it after this order (before it, when the order does not fit).
    pub budget_left: Option<Decimal>,
    /// True when the order fits (or is not budget-controlled).
    pub budget_ok: bool,
    /// True when the order's amount is reserved.
    pub budget_reserved: bool,
}

/// A budget line as listed: the month's budget, what orders reserved, what is left.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BudgetLine {
    /// The cost centre.
    pub cost_centre: String,
    /// The month (`2026-03`).
    pub period: String,
    /// The budget.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub amount: Decimal,
    /// Reserved by orders (over-budget approvals included).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub reserved: Decimal,
    /// Of which approved over the budget.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub over_budget: Decimal,
    /// The budget less the reservations (negative when overspent).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub left: Decimal,
    /// Orders holding a reservation.
    pub orders: i64,
}

/// A reservation made by `budget.reserve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetReserved {
    /// The amount reserved for the order.
    pub reserved: Decimal,
    /// True when it went over the budget.
    pub over_budget: bool,
    /// What is left of the month's budget after it (negative when overspent).
    pub budget_left: Decimal,
}

/// What `budget.release` gave back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetReleased {
    /// The amount released (0 when the order held no reservation).
    pub released: Decimal,
}

fn check_period(period: &str) -> Result<(), Error> {
    let valid = period.len() == 7
        && chrono::NaiveDate::parse_from_str(&format!("{period}-01"), "%Y-%m-%d").is_ok()
        && period.as_bytes()[4] == b'-';
    if valid {
        Ok(())
    } else {
        Err(Error::Input { field: "period".into(), problem: format!("`{period}` is not a month like 2026-03") })
    }
}

fn check_cost_centre(cost_centre: &str) -> Result<(), Error> {
    let valid = !cost_centre.is_empty()
        && cost_centre.len() <= 64
        && cost_centre.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(Error::Input {
            field: "cost_centre".into(),
            problem: format!("`{cost_centre}`: use 1-64 letters, digits, `-`, `_` or `.`"),
        })
    }
}

impl Ledger {
    /// Sets the budget of `cost_centre` for `period` (`YYYY-MM`); replaces an earlier amount.
    pub async fn set_budget(
        &self,
        cost_centre: &str,
        period: &str,
        amount: Decimal,
        now: DateTime<Utc>,
    ) -> Result<BudgetLine, Error> {
        check_cost_centre(cost_centre)?;
        check_period(period)?;
        if amount < Decimal::ZERO {
            return Err(Error::InvalidAmount(format!("budget {amount} is negative")));
        }
        // As any money from outside: whole cents, below a quadrillion, so that what is set is what
        // is booked (never rounded on the way in).
        if amount.normalize().scale() > MONEY_DECIMALS {
            return Err(Error::InvalidAmount(format!("budget {amount} has more than two decimals (whole cents only)")));
        }
        if amount >= Decimal::from(MONEY_LIMIT) {
            return Err(Error::InvalidAmount(format!("budget {amount} is too large (at most 999999999999999.99)")));
        }
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO budgets (cost_centre, period, amount, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (cost_centre, period) DO UPDATE SET amount = $3, updated_at = $4",
        )
        .bind(cost_centre)
        .bind(period)
        .bind(money_text(cents(amount)))
        .bind(ts_text(now))
        .execute(&mut *tx)
        .await?;
        let line = budget_line(&mut tx, cost_centre, period).await?;
        tx.commit().await?;
        line.ok_or_else(|| Error::Corrupt(format!("budget {cost_centre} {period} not written")))
    }

    /// Puts customer `customer_id` under `cost_centre` (`None`: no budget control).
    pub async fn assign_cost_centre(&self, customer_id: &str, cost_centre: Option<&str>) -> Result<(), Error> {
        if let Some(cc) = cost_centre {
            check_cost_centre(cc)?;
        }
        self.update_customer("UPDATE customers SET cost_centre = $1 WHERE id = $2", cost_centre, customer_id).await
    }

    /// Runs `sql` (`UPDATE customers SET column = $1 WHERE id = $2`) in its own transaction;
    /// an unknown customer is an error and changes nothing.
    pub(super) async fn update_customer(
        &self,
        sql: &'static str,
        value: Option<&str>,
        customer_id: &str,
    ) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        let changed = sqlx::query(sql).bind(value).bind(customer_id).execute(&mut *tx).await?.rows_affected();
        if changed == 0 {
            return Err(Error::UnknownCustomer(customer_id.to_string()));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every budget of `period` (all periods when `None`), by cost centre and period.
    pub async fn budgets(&self, period: Option<&str>) -> Result<Vec<BudgetLine>, Error> {
        if let Some(p) = period {
            check_period(p)?;
        }
        let mut conn = self.read.acquire().await?;
        let keys = sqlx::query(
            "SELECT cost_centre, period FROM budgets WHERE ($1 IS NULL OR period = $1) ORDER BY cost_centre, period",
        )
        .bind(period)
        .fetch_all(&mut *conn)
        .await?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let (cc, p): (String, String) = (key.try_get(0)?, key.try_get(1)?);
            if let Some(line) = budget_line(&mut conn, &cc, &p).await? {
                out.push(line);
            }
        }
        Ok(out)
    }

    /// Reserves `amount` for `order_id` on `cost_centre`'s budget of this month even when it does
    /// not fit (finance approved it): marked over the budget then. An order that holds a
    /// reservation keeps it; a released one is reserved again.
    pub async fn reserve_budget(
        &self,
        key: &str,
        now: DateTime<Utc>,
        order_id: &str,
        cost_centre: &str,
        amount: Decimal,
    ) -> Result<BudgetReserved, Error> {
        check_cost_centre(cost_centre)?;
        if amount <= Decimal::ZERO {
            return Err(Error::InvalidAmount(format!("a reservation of {amount}")));
        }
        let today = self.book_date(now).await?;
        once!(self, key, "budget.reserve", now, scoped: vec![Scope::Order(order_id.into()), Scope::CostCentre(cost_centre.into())], |conn| {
            let period = month_of(today);
            if let Some((held, _)) = reservation(conn, order_id).await? {
                let line = budget_line(conn, cost_centre, &period).await?;
                let left = line.map_or(Decimal::ZERO, |l| l.left);
                BudgetReserved { reserved: held, over_budget: left < Decimal::ZERO, budget_left: cents(left) }
            } else {
                let budget = budget_amount(conn, cost_centre, &period).await?.unwrap_or(Decimal::ZERO);
                let left = budget - reserved_total(conn, cost_centre, &period).await?;
                let over = amount > left;
                write_reservation(conn, order_id, cost_centre, &period, amount, over, now).await?;
                BudgetReserved { reserved: cents(amount), over_budget: over, budget_left: cents(left - amount) }
            }
        })
    }

    /// The orders holding a reservation (not released), by order id: what a sweep for cancelled
    /// orders looks at.
    pub async fn reserved_orders(&self) -> Result<Vec<String>, Error> {
        let rows = sqlx::query("SELECT order_id FROM budget_reservations WHERE state = 'reserved' ORDER BY order_id")
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Releases the reservation of `order_id`, if it holds one.
    pub async fn release_budget(&self, key: &str, now: DateTime<Utc>, order_id: &str) -> Result<BudgetReleased, Error> {
        once!(self, key, "budget.release", now, scoped: vec![Scope::Order(order_id.into())], |conn| {
            match reservation(conn, order_id).await? {
                Some((amount, _)) => {
                    sqlx::query(
                        "UPDATE budget_reservations SET state = 'released', released_at = $1 \
                         WHERE order_id = $2 AND state = 'reserved'",
                    )
                    .bind(ts_text(now))
                    .bind(order_id)
                    .execute(&mut *conn)
                    .await?;
                    BudgetReleased { released: amount }
                }
                None => BudgetReleased { released: Decimal::ZERO },
            }
        })
    }
}

/// The order's position when it is not checked against a budget.
pub(super) fn uncontrolled(today: NaiveDate) -> BudgetPosition {
    BudgetPosition { period: month_of(today), budget_ok: true, ..BudgetPosition::default() }
}

/// The budget side of the credit check, inside its transaction (which holds the order's lock):
/// reserves `amount` for `order_id` when it fits, under the lock of `cost_centre` (the
/// customer's, read in the same transaction).
pub(super) async fn check_and_reserve(
    ledger: &Ledger,
    conn: &mut AnyConnection,
    cost_centre: Option<&str>,
    order_id: &str,
    amount: Decimal,
    (today, now): (NaiveDate, DateTime<Utc>),
) -> Result<BudgetPosition, Error> {
    let period = month_of(today);
    let Some(cc) = cost_centre.map(str::to_string) else {
        return Ok(BudgetPosition { period, budget_ok: true, ..BudgetPosition::default() });
    };
    // Taken late, once the cost centre is known (it cannot change meanwhile: assigning one takes
    // the whole ledger); the highest class, so still in the fixed order.
    ledger.lock_late(conn, &Scope::CostCentre(cc.clone())).await?;
    let Some(budget) = budget_amount(conn, &cc, &period).await? else {
        return Ok(BudgetPosition { cost_centre: Some(cc), period, budget_ok: true, ..BudgetPosition::default() });
    };
    let reserved = reserved_total(conn, &cc, &period).await?;
    if reservation(conn, order_id).await?.is_some() {
        // Checked again (a repeated order): its reservation stands.
        let left = cents(budget - reserved);
        return Ok(BudgetPosition {
            cost_centre: Some(cc),
            period,
            budget: Some(cents(budget)),
            budget_left: Some(left),
            budget_ok: true,
            budget_reserved: true,
        });
    }
    let left = budget - reserved;
    let fits = amount <= left;
    if fits {
        write_reservation(conn, order_id, &cc, &period, amount, false, now).await?;
    }
    Ok(BudgetPosition {
        cost_centre: Some(cc),
        period,
        budget: Some(cents(budget)),
        budget_left: Some(cents(if fits { left - amount } else { left })),
        budget_ok: fits,
        budget_reserved: fits,
    })
}

async fn budget_amount(conn: &mut AnyConnection, cost_centre: &str, period: &str) -> Result<Option<Decimal>, Error> {
    let row = sqlx::query("SELECT amount FROM budgets WHERE cost_centre = $1 AND period = $2")
        .bind(cost_centre)
        .bind(period)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| parse_money(r.try_get(0)?)).transpose()
}

/// The live reservation of an order: (amount, over budget).
async fn reservation(conn: &mut AnyConnection, order_id: &str) -> Result<Option<(Decimal, bool)>, Error> {
    let row =
        sqlx::query("SELECT amount, over_budget FROM budget_reservations WHERE order_id = $1 AND state = 'reserved'")
            .bind(order_id)
            .fetch_optional(&mut *conn)
            .await?;
    row.map(|r| Ok((parse_money(r.try_get(0)?)?, r.try_get::<i64, _>(1)? != 0))).transpose()
}

async fn reserved_total(conn: &mut AnyConnection, cost_centre: &str, period: &str) -> Result<Decimal, Error> {
    let rows = sqlx::query(
        "SELECT amount FROM budget_reservations WHERE cost_centre = $1 AND period = $2 AND state = 'reserved'",
    )
    .bind(cost_centre)
    .bind(period)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|r| parse_money(r.try_get(0)?)).sum()
}

async fn write_reservation(
    conn: &mut AnyConnection,
    order_id: &str,
    cost_centre: &str,
    period: &str,
    amount: Decimal,
    over_budget: bool,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO budget_reservations (order_id, cost_centre, period, amount, over_budget, state, reserved_at) \
         VALUES ($1, $2, $3, $4, $5, 'reserved', $6) \
         ON CONFLICT (order_id) DO UPDATE SET cost_centre = $2, period = $3, amount = $4, over_budget = $5, \
         state = 'reserved', reserved_at = $6, released_at = NULL",
    )
    .bind(order_id)
    .bind(cost_centre)
    .bind(period)
    .bind(money_text(cents(amount)))
    .bind(i64::from(over_budget))
    .bind(ts_text(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn budget_line(conn: &mut AnyConnection, cost_centre: &str, period: &str) -> Result<Option<BudgetLine>, Error> {
    let Some(amount) = budget_amount(conn, cost_centre, period).await? else { return Ok(None) };
    let rows = sqlx::query(
        "SELECT amount, over_budget FROM budget_reservations \
         WHERE cost_centre = $1 AND period = $2 AND state = 'reserved'",
    )
    .bind(cost_centre)
    .bind(period)
    .fetch_all(&mut *conn)
    .await?;
    let (mut reserved, mut over) = (Decimal::ZERO, Decimal::ZERO);
    for r in &rows {
        let a = parse_money(r.try_get(0)?)?;
        reserved += a;
        if r.try_get::<i64, _>(1)? != 0 {
            over += a;
        }
    }
    Ok(Some(BudgetLine {
        cost_centre: cost_centre.to_string(),
        period: period.to_string(),
        amount: cents(amount),
        reserved: cents(reserved),
        over_budget: cents(over),
        left: cents(amount - reserved),
        orders: i64::try_from(rows.len()).unwrap_or(i64::MAX),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_is_a_month_and_a_cost_centre_a_plain_code() {
        assert!(check_period("2026-03").is_ok());
        for bad in ["2026-13", "2026-3", "26-03", "2026/03", "2026-03-01", ""] {
            assert!(check_period(bad).is_err(), "{bad}");
        }
        assert!(check_cost_centre("SALES-EAST").is_ok());
        for bad in ["", "sales east", "华东", &"x".repeat(65)] {
            assert!(check_cost_centre(bad).is_err(), "{bad}");
        }
    }
}
