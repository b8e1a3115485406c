//! The month-end close: the AR aging and gross profit reports stored for the record, and closing
//! a period against later postings.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::idempotency::once;
use super::{Error, Ledger, date_text, money_text, period_of, ts_text};

/// A stored report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportMade {
    /// The report's id.
    pub report_id: String,
    /// The report's totals, as the job outputs them.
    #[serde(flatten)]
    pub totals: serde_json::Map<String, serde_json::Value>,
}

/// A closed period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeriodClosed {
    /// The period (`YYYY-MM`).
    pub period: String,
    /// When it was closed.
    pub closed_at: DateTime<Utc>,
}

impl Ledger {
    /// Stores the AR aging as of a date; outputs its id and total.
    pub async fn aging_report(&self, key: &str, now: DateTime<Utc>, as_of: NaiveDate) -> Result<ReportMade, Error> {
        let report = self.aging(as_of).await?;
        let mut totals = serde_json::Map::new();
        totals.insert("total".into(), serde_json::json!(money_text(report.total)));
        for bucket in &report.buckets {
            totals
                .insert(format!("bucket_{}", bucket.label.replace(['-', '+'], "_")), serde_json::json!(bucket.amount));
        }
        let body = serde_json::to_string(&report).map_err(|e| Error::Corrupt(e.to_string()))?;
        self.store_report(key, "report.ar_aging", "aging", as_of, body, totals, now).await
    }

    /// Stores gross profit by customer for the month of `as_of` up to that date.
    pub async fn gross_profit_report(
        &self,
        key: &str,
        now: DateTime<Utc>,
        as_of: NaiveDate,
    ) -> Result<ReportMade, Error> {
        let from = as_of.with_day(1).unwrap_or(as_of);
        let report = self.gross_profit(from, as_of).await?;
        let mut totals = serde_json::Map::new();
        totals.insert("revenue".into(), serde_json::json!(money_text(report.revenue)));
        totals.insert("cost_of_goods".into(), serde_json::json!(money_text(report.cost_of_goods)));
        totals.insert("gross_profit".into(), serde_json::json!(money_text(report.gross_profit)));
        let body = serde_json::to_string(&report).map_err(|e| Error::Corrupt(e.to_string()))?;
        self.store_report(key, "report.gross_profit", "gross_profit", as_of, body, totals, now).await
    }

    #[allow(clippy::too_many_arguments)] // one private helper shared by the two reports
    async fn store_report(
        &self,
        key: &str,
        job_type: &str,
        kind: &str,
        as_of: NaiveDate,
        body: String,
        totals: serde_json::Map<String, serde_json::Value>,
        now: DateTime<Utc>,
    ) -> Result<ReportMade, Error> {
        once!(self, key, job_type, now, |conn| {
            let n: i64 = sqlx::query("SELECT count(*) FROM reports WHERE kind = $1 AND as_of = $2")
                .bind(kind)
                .bind(date_text(as_of))
                .fetch_one(&mut *conn)
                .await?
                .try_get(0)?;
            let report_id = format!("{kind}-{}-{}", date_text(as_of), n + 1);
            sqlx::query("INSERT INTO reports (id, kind, as_of, body, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&report_id)
                .bind(kind)
                .bind(date_text(as_of))
                .bind(&body)
                .bind(ts_text(now))
                .execute(&mut *conn)
                .await?;
            ReportMade { report_id, totals }
        })
    }

    /// A stored report's body (JSON), by id.
    pub async fn report(&self, report_id: &str) -> Result<Option<serde_json::Value>, Error> {
        let row =
            sqlx::query("SELECT body FROM reports WHERE id = $1").bind(report_id).fetch_optional(&self.read).await?;
        match row {
            Some(r) => {
                let body: String = r.try_get(0)?;
                serde_json::from_str(&body).map(Some).map_err(|e| Error::Corrupt(format!("report {report_id}: {e}")))
            }
            None => Ok(None),
        }
    }

    /// Closes the period (month) of `as_of`: later postings dated in it are refused.
    pub async fn close_period(&self, key: &str, now: DateTime<Utc>, as_of: NaiveDate) -> Result<PeriodClosed, Error> {
        once!(self, key, "ledger.close_period", now, |conn| {
            let period = period_of(as_of);
            sqlx::query(
                "INSERT INTO periods (period, status, closed_at) VALUES ($1, 'closed', $2) \
                 ON CONFLICT (period) DO UPDATE SET status = 'closed', closed_at = coalesce(periods.closed_at, $2)",
            )
            .bind(&period)
            .bind(ts_text(now))
            .execute(&mut *conn)
            .await?;
            PeriodClosed { period, closed_at: now }
        })
    }

    /// True if the period (`YYYY-MM`) is closed.
    pub async fn is_closed(&self, period: &str) -> Result<bool, Error> {
        let row =
            sqlx::query("SELECT status FROM periods WHERE period = $1").bind(period).fetch_optional(&self.read).await?;
        Ok(row.map(|r| r.try_get::<String, _>(0)).transpose()?.is_some_and(|s| s == "closed"))
    }
}
