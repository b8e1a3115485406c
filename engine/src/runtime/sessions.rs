//! Sessions of the pages ended at sign-out, so that a copy of a signed-out cookie opens nothing.

use chrono::{DateTime, Utc};

use crate::store::{Store, Write};

use super::{Engine, Error};

impl<S: Store> Engine<S> {
    /// Ends the session `session` (an id derived from its cookie) until `until`, when it would
    /// have expired anyway; sessions that expired before `now` are forgotten. Sessions keep the
    /// wall clock's time (their cookies do), not the engine's clock.
    pub async fn end_session(&self, session: &str, until: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), Error> {
        self.submit(Write::EndSession { session: session.to_string(), until, now }).await?;
        Ok(())
    }

    /// True when the session `session` was ended.
    pub async fn session_ended(&self, session: &str) -> Result<bool, Error> {
        Ok(self.inner.store.session_ended(session).await?)
    }
}
