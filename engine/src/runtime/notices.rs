//! Notifications for people, taken for delivery and settled through the group-commit writer, so
//! several nodes never deliver one at the same time and every outcome is durable.

use chrono::TimeDelta;

use crate::store::{DeliveryOutcome, Notification, NotificationRow, Store, Write, WriteOutcome};

use super::{Engine, Error};

impl<S: Store> Engine<S> {
    /// Takes up to `max` notifications due for delivery now, each left to this caller for
    /// `lease` (after that another taker may deliver it again, under the same id).
    pub async fn take_notifications(&self, max: usize, lease: TimeDelta) -> Result<Vec<Notification>, Error> {
        let now = self.now();
        let until = now.checked_add_signed(lease).unwrap_or(now);
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        match self.submit(Write::TakeNotifications { now, until, max }).await? {
            WriteOutcome::Notifications(taken) => Ok(taken),
            other => Err(Error::Write(format!("unexpected outcome of a notification take: {other:?}"))),
        }
    }

    /// Raises notifications not caused by a step (alerts, say), in one transaction; one whose id
    /// exists already is left as it is, so raising the same again is harmless.
    pub async fn notify(&self, rows: Vec<NotificationRow>) -> Result<(), Error> {
        if !rows.is_empty() {
            self.submit(Write::Notify(rows)).await?;
        }
        Ok(())
    }

    /// Records the outcome of one delivery attempt of notification `id`.
    pub async fn record_delivery(&self, id: &str, outcome: DeliveryOutcome) -> Result<(), Error> {
        let at = self.now();
        self.submit(Write::NotificationAttempt { id: id.to_string(), at, outcome }).await?;
        Ok(())
    }

    /// Gives a dead notification another round of attempts; false when `id` is not dead.
    pub async fn retry_notification(&self, id: &str) -> Result<bool, Error> {
        let now = self.now();
        match self.submit(Write::RetryNotification { id: id.to_string(), now }).await? {
            WriteOutcome::Retried(retried) => Ok(retried),
            other => Err(Error::Write(format!("unexpected outcome of a notification retry: {other:?}"))),
        }
    }
}
