//! The credit check: a customer's limit, open receivables and risk before an order goes ahead.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

use super::budgets::{BudgetPosition, check_and_reserve, uncontrolled};
use super::idempotency::once;
use super::records::customer;
use super::{Error, Ledger, Scope, cents, parse_money};

/// The customer's credit position, and the order's against its budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreditCheck {
    /// The credit limit.
    pub credit_limit: Decimal,
    /// Open receivables (invoices not yet paid or written off).
    pub open_ar: Decimal,
    /// Risk rating A (best) to D.
    pub risk: String,
    /// What is left of the limit before this order.
    pub available: Decimal,
    /// Payment terms in days.
    pub payment_terms_days: i64,
    /// The order against its cost centre's budget (answers recorded before budgets read as
    /// not budget-controlled).
    #[serde(flatten)]
    pub budget: BudgetPosition,
}

impl Ledger {
    /// The customer's credit position; a blocked customer is refused. With `order`, the order
    /// (id, amount) is checked against its cost centre's budget too and reserves it when it fits
    /// (see the ledger's budgets). The answer is recorded under `key`, so a redelivered
    /// job sees the position its first run decided on.
    pub async fn credit_check(
        &self,
        key: &str,
        now: DateTime<Utc>,
        customer_id: &str,
        order: Option<(&str, Decimal)>,
    ) -> Result<CreditCheck, Error> {
        let mut scopes = vec![Scope::Customer(customer_id.into())];
        if let Some((order_id, _)) = order {
            scopes.push(Scope::Order(order_id.into()));
        }
        let today = self.book_date(now).await?;
        once!(self, key, "credit.check", now, scoped: scopes, |conn| {
            let c = customer(conn, customer_id).await?;
            if c.blocked {
                return Err(Error::CustomerBlocked(customer_id.to_string()));
            }
            let open_ar = open_receivables(conn, Some(customer_id)).await?;
            let budget = match order {
                Some((order_id, amount)) => check_and_reserve(self, conn, c.cost_centre.as_deref(), order_id, amount, (today, now)).await?,
                None => uncontrolled(today),
            };
            CreditCheck {
                credit_limit: cents(c.credit_limit),
                open_ar: cents(open_ar),
                risk: c.risk,
                available: cents(c.credit_limit - open_ar),
                payment_terms_days: c.terms,
                budget,
            }
        })
    }
}

/// Open receivables (of one customer, or all) from the invoices. One statement for each case: a
/// statement for both (`$1 IS NULL OR customer_id = $1`) would be planned once for both, as a
/// scan of every invoice, and PostgreSQL keeps that plan for the credit check of every order.
pub(crate) async fn open_receivables(conn: &mut AnyConnection, customer_id: Option<&str>) -> Result<Decimal, Error> {
    let rows = match customer_id {
        Some(customer) => {
            sqlx::query("SELECT amount_open FROM invoices WHERE customer_id = $1 AND status = 'open'")
                .bind(customer)
                .fetch_all(conn)
                .await?
        }
        None => sqlx::query("SELECT amount_open FROM invoices WHERE status = 'open'").fetch_all(conn).await?,
    };
    rows.iter().map(|r| parse_money(r.try_get(0)?)).sum()
}
