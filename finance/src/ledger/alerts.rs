//! Alerts: what the alert rules found, kept beside the figures they judge. An evaluation opens
//! an alert for each rule and subject whose condition holds and has none open, refreshes the value
//! of those still open, and closes the open alerts of the evaluated rules whose condition cleared.
//! Closed alerts stay, as history; acknowledging one records who saw it.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Error, Ledger, parse_money, ts_text};

/// A condition that holds now, as one evaluation found it.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    /// The rule's name.
    pub rule: String,
    /// What it holds for: a customer id, or empty for the whole company.
    pub subject: String,
    /// The rule's title.
    pub title: String,
    /// `warning` or `critical`.
    pub severity: String,
    /// The indicator judged.
    pub indicator: String,
    /// The rule's threshold, in the indicator's unit.
    pub threshold: Decimal,
    /// The indicator's value now.
    pub value: Decimal,
}

/// One alert, open or closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Its id.
    pub id: i64,
    /// The rule that opened it.
    pub rule: String,
    /// A customer id, or empty for the whole company.
    pub subject: String,
    /// The rule's title.
    pub title: String,
    /// `warning` or `critical`.
    pub severity: String,
    /// The indicator judged.
    pub indicator: String,
    /// The rule's threshold.
    pub threshold: Decimal,
    /// The value when it opened.
    pub opened_value: Decimal,
    /// The value at the latest evaluation while open.
    pub last_value: Decimal,
    /// When it opened.
    pub opened_at: DateTime<Utc>,
    /// The latest evaluation that saw it.
    pub checked_at: DateTime<Utc>,
    /// Who acknowledged it.
    pub acknowledged_by: Option<String>,
    /// When.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// When its condition cleared; `None` while open.
    pub closed_at: Option<DateTime<Utc>>,
}

/// What an evaluation changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertChanges {
    /// Ids of the alerts it opened.
    pub opened: Vec<i64>,
    /// Ids of the alerts it closed.
    pub closed: Vec<i64>,
}

const COLUMNS: &str = "id, rule, subject, title, severity, indicator, threshold, opened_value, last_value, \
                       opened_at, checked_at, acknowledged_by, acknowledged_at, closed_at";

fn time(text: &str) -> Result<DateTime<Utc>, Error> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| Error::Corrupt(format!("time {text:?}")))
}

fn alert(row: &AnyRow) -> Result<Alert, Error> {
    let optional_time = |i: usize| -> Result<Option<DateTime<Utc>>, Error> {
        row.try_get::<Option<String>, _>(i)?.as_deref().map(time).transpose()
    };
    Ok(Alert {
        id: row.try_get(0)?,
        rule: row.try_get(1)?,
        subject: row.try_get(2)?,
        title: row.try_get(3)?,
        severity: row.try_get(4)?,
        indicator: row.try_get(5)?,
        threshold: parse_money(row.try_get(6)?)?,
        opened_value: parse_money(row.try_get(7)?)?,
        last_value: parse_money(row.try_get(8)?)?,
        opened_at: time(row.try_get(9)?)?,
        checked_at: time(row.try_get(10)?)?,
        acknowledged_by: row.try_get(11)?,
        acknowledged_at: optional_time(12)?,
        closed_at: optional_time(13)?,
    })
}

impl Ledger {
    /// Records one evaluation of the rules named in `evaluated`, in one transaction: opens an
    /// alert for each firing with none open for its rule and subject, refreshes the open ones
    /// still firing, and closes the open alerts of `evaluated` rules that no longer fire. An
    /// open alert of a rule not in `evaluated` (one since removed from the files) is left alone.
    pub async fn record_alerts(
        &self,
        evaluated: &[String],
        firing: &[Firing],
        now: DateTime<Utc>,
    ) -> Result<AlertChanges, Error> {
        let mut tx = self.begin().await?;
        let now_text = ts_text(now);
        let open = sqlx::query(&format!("SELECT {COLUMNS} FROM alerts WHERE closed_at IS NULL"))
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(alert)
            .collect::<Result<Vec<_>, Error>>()?;
        let mut changes = AlertChanges::default();
        for f in firing {
            match open.iter().find(|a| a.rule == f.rule && a.subject == f.subject) {
                Some(existing) => {
                    sqlx::query("UPDATE alerts SET last_value = $1, checked_at = $2 WHERE id = $3")
                        .bind(f.value.to_string())
                        .bind(&now_text)
                        .bind(existing.id)
                        .execute(&mut *tx)
                        .await?;
                }
                None => {
                    let id: i64 = sqlx::query(
                        "INSERT INTO alerts (rule, subject, title, severity, indicator, threshold, opened_value, \
                         last_value, opened_at, checked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                    )
                    .bind(&f.rule)
                    .bind(&f.subject)
                    .bind(&f.title)
                    .bind(&f.severity)
                    .bind(&f.indicator)
                    .bind(f.threshold.to_string())
                    .bind(f.value.to_string())
                    .bind(f.value.to_string())
                    .bind(&now_text)
                    .bind(&now_text)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get(0)?;
                    changes.opened.push(id);
                }
            }
        }
        for a in &open {
            let still = firing.iter().any(|f| f.rule == a.rule && f.subject == a.subject);
            if !still && evaluated.contains(&a.rule) {
                sqlx::query("UPDATE alerts SET closed_at = $1, checked_at = $1 WHERE id = $2")
                    .bind(&now_text)
                    .bind(a.id)
                    .execute(&mut *tx)
                    .await?;
                changes.closed.push(a.id);
            }
        }
        tx.commit().await?;
        Ok(changes)
    }

    /// Alerts, newest first: the open ones only, or all of them.
    pub async fn alerts(&self, open_only: bool) -> Result<Vec<Alert>, Error> {
        let filter = if open_only { "WHERE closed_at IS NULL" } else { "" };
        sqlx::query(&format!("SELECT {COLUMNS} FROM alerts {filter} ORDER BY id DESC"))
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(alert)
            .collect()
    }

    /// Records that `user` has seen alert `id` (the first acknowledgement stands); `None` when
    /// there is no such alert.
    pub async fn acknowledge_alert(&self, id: i64, user: &str, now: DateTime<Utc>) -> Result<Option<Alert>, Error> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE alerts SET acknowledged_by = $1, acknowledged_at = $2 WHERE id = $3 AND acknowledged_by IS NULL",
        )
        .bind(user)
        .bind(ts_text(now))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM alerts WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        row.as_ref().map(alert).transpose()
    }
}
