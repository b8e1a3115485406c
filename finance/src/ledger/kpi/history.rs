//! Daily snapshots of the catalogue: every figure's whole value over the 90 days up to a day,
//! stored once per day and figure (the first snapshot of a day stands, so a second node or a
//! second pass the same day changes nothing), and read back as a series to draw a trend.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{CATALOGUE, Window};
use crate::ledger::{Error, Ledger, date_text, parse_date, ts_text};

/// One day's value of a figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// The day it was taken for (stock figures on that day, flows over the 90 days up to it).
    pub day: NaiveDate,
    /// The value; `None` when a ratio had nothing to divide by.
    pub value: Option<Decimal>,
}

impl Ledger {
    /// Takes the snapshot of `day` (every figure over the 90 days up to it) unless it was taken
    /// before; returns how many values it stored (0 when the day was already taken).
    pub async fn snapshot_kpis(&self, day: NaiveDate, now: DateTime<Utc>) -> Result<usize, Error> {
        let day_text = date_text(day);
        let taken: i64 = sqlx::query("SELECT count(*) FROM kpi_snapshots WHERE day = $1")
            .bind(&day_text)
            .fetch_one(&self.read)
            .await?
            .try_get(0)?;
        if usize::try_from(taken).unwrap_or(0) >= CATALOGUE.len() {
            return Ok(0);
        }
        let figures = self.figures(Window::last_90_days(day), None).await?;
        let mut tx = self.begin().await?;
        let mut stored = 0;
        for figure in figures {
            stored += sqlx::query(
                "INSERT INTO kpi_snapshots (day, kpi, value, taken_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (kpi, day) DO NOTHING",
            )
            .bind(&day_text)
            .bind(&figure.key)
            .bind(figure.value.map(|v| v.to_string()))
            .bind(ts_text(now))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(usize::try_from(stored).unwrap_or(usize::MAX))
    }

    /// The stored daily values of `key` from `from` to `to`, oldest first (days without a
    /// snapshot are absent, never filled in).
    pub async fn kpi_series(&self, key: &str, from: NaiveDate, to: NaiveDate) -> Result<Vec<Point>, Error> {
        let rows =
            sqlx::query("SELECT day, value FROM kpi_snapshots WHERE kpi = $1 AND day >= $2 AND day <= $3 ORDER BY day")
                .bind(key)
                .bind(date_text(from))
                .bind(date_text(to))
                .fetch_all(&self.read)
                .await?;
        rows.iter()
            .map(|r| {
                let value: Option<String> = r.try_get(1)?;
                let value = value
                    .map(|v| Decimal::from_str_exact(&v).map_err(|_| Error::Corrupt(format!("snapshot value {v:?}"))))
                    .transpose()?;
                Ok(Point { day: parse_date(r.try_get(0)?)?, value })
            })
            .collect()
    }
}
