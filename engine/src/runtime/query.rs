//! Read-only queries of the runtime for operators and the HTTP API.
//!
//! Listings and report figures are the store's ([`Queries`], on either backend); these are the
//! ones that need the runtime: its clock, or a walk over every instance.

use crate::ids::InstanceId;
use crate::store::{HistoryCheck, Queries, Store};

use super::{Engine, Error};

impl<S: Store + Queries> Engine<S> {
    /// True when a fetch of `job_types` (patterns with `*` allowed) would lock something now.
    pub async fn has_due_jobs(&self, job_types: &[String]) -> Result<bool, Error> {
        Ok(self.store().has_due_jobs(job_types, self.now()).await?)
    }

    /// Re-checks the history hash chain of up to `limit` instances, in id order after `after`:
    /// one page of a full audit. An empty page means every instance was checked.
    pub async fn verify_histories(
        &self,
        after: Option<&InstanceId>,
        limit: i64,
    ) -> Result<Vec<(InstanceId, HistoryCheck)>, Error> {
        let heads = self.store().history_heads(after.map(InstanceId::as_str), limit).await?;
        let mut out = Vec::with_capacity(heads.len());
        for (id, head_seq, head_hash) in heads {
            let id = InstanceId(id);
            let rows = self.store().history(&id).await?;
            out.push((id, HistoryCheck::verify(&rows, head_seq, &head_hash)));
        }
        Ok(out)
    }
}
