//! The books' time zone: the day a posting is dated, the month (period, budget) it falls in and
//! the year its invoice is numbered in are read on the company's wall clock, not in UTC. An
//! invoice a Shanghai company issues at 01:00 on 1 January is dated 1 January and numbered in the
//! new year's series, though it is still 31 December in UTC.
//!
//! The zone is a ledger setting (`book_time_zone`, UTC when absent), so that every node and
//! worker on one database dates alike. It is chosen before the books' first entry: moving it
//! later would date some entries on one clock and the rest on another.

use std::sync::{Arc, PoisonError, RwLock};

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use sqlx::Row;

use super::{Error, Ledger};

/// The setting that holds the zone's IANA name.
const SETTING: &str = "book_time_zone";

/// The zone as read from the database, once per handle (its clones share it).
#[derive(Debug, Clone, Default)]
pub(super) struct BookZone(Arc<RwLock<Option<Tz>>>);

impl Ledger {
    /// The books' time zone (see the module docs): read on the first posting of this handle,
    /// once the demo company or an operator has had the chance to set it.
    pub async fn book_zone(&self) -> Result<Tz, Error> {
        if let Some(zone) = *self.zone.0.read().unwrap_or_else(PoisonError::into_inner) {
            return Ok(zone);
        }
        let stored = sqlx::query("SELECT value FROM ledger_settings WHERE key = $1")
            .bind(SETTING)
            .fetch_optional(&self.read)
            .await?
            .map(|row| row.try_get::<String, _>(0))
            .transpose()?;
        let zone = match stored {
            None => Tz::UTC,
            Some(name) => name
                .parse::<Tz>()
                .map_err(|_| Error::Corrupt(format!("setting {SETTING}: `{name}` is not an IANA time zone")))?,
        };
        *self.zone.0.write().unwrap_or_else(PoisonError::into_inner) = Some(zone);
        Ok(zone)
    }

    /// The day `now` is on the books' clock: the date its postings carry.
    pub async fn book_date(&self, now: DateTime<Utc>) -> Result<NaiveDate, Error> {
        Ok(now.with_timezone(&self.book_zone().await?).date_naive())
    }

    /// Sets the books' time zone. Refused once the journal holds an entry (unless the zone is
    /// the one already set): entries dated on two clocks would not add up by day or month.
    pub async fn set_book_zone(&self, zone: Tz) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        let current = sqlx::query("SELECT value FROM ledger_settings WHERE key = $1")
            .bind(SETTING)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.try_get::<String, _>(0))
            .transpose()?
            .unwrap_or_else(|| Tz::UTC.name().to_string());
        if current != zone.name() {
            let entries: i64 =
                sqlx::query("SELECT COUNT(*) FROM journal_entries").fetch_one(&mut *tx).await?.try_get(0)?;
            if entries > 0 {
                let _ = tx.rollback().await;
                return Err(Error::Input {
                    field: SETTING.into(),
                    problem: format!(
                        "the books are kept in {current} and hold {entries} journal entries; the time zone is \
                         chosen before the first entry (start a new ledger to keep the books in {})",
                        zone.name()
                    ),
                });
            }
            sqlx::query(
                "INSERT INTO ledger_settings (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(SETTING)
            .bind(zone.name())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        *self.zone.0.write().unwrap_or_else(PoisonError::into_inner) = Some(zone);
        Ok(())
    }
}
