//! History retention: [`Engine::archive`] moves ended instances, with every row they own, into
//! an archive database of the same schema, and leaves a tombstone in the live one.
//!
//! The rules, per instance: it ended (completed, failed or cancelled) before the cutoff; its
//! history hash chain verifies (a broken chain is refused and reported, never moved); no
//! instance it calls or that calls it is still running; no owed event waits for it and no
//! notification about it waits for delivery (or lies dead). A batch is written into the archive
//! and committed there first, its earlier copies replaced, then removed from the live database
//! in one short transaction that checks each instance again (unchanged since the copy) and
//! writes the tombstones. A crash in between leaves copies the next run replaces; running twice
//! moves nothing twice. The engine may keep serving meanwhile: on SQLite each transaction is
//! short and waits its turn behind the writer; on PostgreSQL the instance rows are locked while
//! they are removed, so other nodes' steps and the removal exclude each other.
//!
//! Messages delivered to an archived instance are copied, and their live rows kept: a message
//! resent under the same id is still recognised as one received before.

use std::sync::PoisonError;

use chrono::{DateTime, Utc};

use crate::ids::InstanceId;
use crate::store::archive::{Candidate, ENDED, Tombstone};
use crate::store::{AnyStore, HistoryCheck};

use super::{Engine, Error};

/// Instances per batch when none is asked for.
pub const ARCHIVE_BATCH: usize = 500;

/// What [`Engine::archive`] is asked to do.
#[derive(Debug, Clone)]
pub struct ArchiveOptions {
    /// Instances whose last step (their end) came before this instant.
    pub ended_before: DateTime<Utc>,
    /// The archive database (migrated like a live one; see `AnyStore::connect`); may be left
    /// out of a dry run only.
    pub into: Option<AnyStore>,
    /// Where the rows go, in words safe to show (see [`crate::store::archive_label`]).
    pub label: String,
    /// The operator, recorded in each tombstone.
    pub by: String,
    /// Instances per transaction.
    pub batch: usize,
    /// Look and verify, write nothing.
    pub dry_run: bool,
}

/// Why an ended instance was not moved.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    /// Its history does not verify: the first altered row, or rows missing at the end.
    BrokenChain {
        /// The first row whose hash or link does not match.
        first_altered: Option<i64>,
    },
    /// It was called by an instance that has not ended.
    ParentRunning {
        /// The caller.
        parent: String,
    },
    /// An instance it called has not ended.
    ChildRunning {
        /// The called instance.
        child: String,
    },
    /// Events owed to it are not applied yet.
    PendingEvents {
        /// How many.
        count: i64,
    },
    /// Notifications about it wait for delivery or lie dead.
    UndeliveredNotifications {
        /// How many.
        count: i64,
    },
    /// It changed between the copy and the removal (it stays live; a later run takes it).
    Changed,
}

impl Refusal {
    /// True when the instance needs an operator's attention (not merely its turn).
    pub fn is_alarm(&self) -> bool {
        matches!(self, Refusal::BrokenChain { .. })
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::BrokenChain { first_altered: Some(seq) } => write!(
                f,
                "its history does not verify: row {seq} does not match its hash chain (run `cloverleaf audit verify`)"
            ),
            Refusal::BrokenChain { first_altered: None } => {
                write!(f, "its history does not verify: the last rows were removed (run `cloverleaf audit verify`)")
            }
            Refusal::ParentRunning { parent } => write!(f, "its caller `{parent}` is still running"),
            Refusal::ChildRunning { child } => write!(f, "the instance it called, `{child}`, is still running"),
            Refusal::PendingEvents { count } => write!(f, "{count} event(s) owed to it are not applied yet"),
            Refusal::UndeliveredNotifications { count } => {
                write!(f, "{count} notification(s) about it are not delivered (pending or dead)")
            }
            Refusal::Changed => write!(f, "it changed while it was being archived; a later run takes it"),
        }
    }
}

/// One instance not moved, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Refused {
    /// The instance.
    pub instance: InstanceId,
    /// Why.
    #[serde(flatten)]
    pub refusal: Refusal,
}

/// What [`Engine::archive`] did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ArchiveReport {
    /// Ended instances before the cutoff that were looked at.
    pub examined: usize,
    /// Instances moved (in a dry run: that would be).
    pub archived: usize,
    /// Their rows (instances, history, events, jobs, tasks...).
    pub rows: usize,
    /// Transactions on the live database (none in a dry run).
    pub batches: usize,
    /// What was not moved, and why.
    pub refused: Vec<Refused>,
    /// True for a dry run.
    pub dry_run: bool,
}

/// Why `candidate` may not go now, before its rows are read.
fn held_back(candidate: &Candidate) -> Option<Refusal> {
    if let (Some(parent), Some(status)) = (&candidate.parent_id, candidate.parent_status)
        && !ENDED.contains(&status)
    {
        return Some(Refusal::ParentRunning { parent: parent.clone() });
    }
    if let Some(child) = &candidate.running_child {
        return Some(Refusal::ChildRunning { child: child.clone() });
    }
    if candidate.pending_events > 0 {
        return Some(Refusal::PendingEvents { count: candidate.pending_events });
    }
    if candidate.undelivered > 0 {
        return Some(Refusal::UndeliveredNotifications { count: candidate.undelivered });
    }
    None
}

impl Engine<AnyStore> {
    /// Moves every instance that ended before `options.ended_before` into `options.into`, a
    /// batch at a time, and leaves a tombstone for each (see the module docs for the rules).
    /// Refusals are reported, never fatal; a database failure stops the run, and running it
    /// again carries on where it stopped.
    pub async fn archive(&self, options: &ArchiveOptions) -> Result<ArchiveReport, Error> {
        let live = self.store();
        let into = match &options.into {
            Some(into) if live.identity().await? == into.identity().await? => {
                return Err(Error::InvalidArchive(
                    "the archive is the live database itself: name another database".into(),
                ));
            }
            Some(into) => Some(into),
            None if options.dry_run => None,
            None => return Err(Error::InvalidArchive("name the archive database".into())),
        };
        if options.by.trim().is_empty() {
            return Err(Error::InvalidArchive("name the operator who archives".into()));
        }
        let batch = i64::try_from(options.batch.max(1)).unwrap_or(i64::MAX);
        let mut report = ArchiveReport { dry_run: options.dry_run, ..ArchiveReport::default() };
        let mut after: Option<String> = None;
        loop {
            let page = live.archive_candidates(options.ended_before, after.as_deref(), batch).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            report.examined += page.len();
            let mut ready = Vec::with_capacity(page.len());
            for candidate in page {
                match held_back(&candidate) {
                    Some(refusal) => report.refused.push(Refused { instance: InstanceId(candidate.id), refusal }),
                    None => ready.push(candidate),
                }
            }
            if ready.is_empty() {
                continue;
            }
            let ids: Vec<String> = ready.iter().map(|c| c.id.clone()).collect();
            let rows = live.instance_rows(&ids).await?;
            let (histories, heads) = (rows.histories(), rows.heads());
            let mut verified = Vec::with_capacity(ready.len());
            for candidate in ready {
                // The copy's own head, read in the same snapshot as its rows.
                let Some((seq, hash)) = heads.get(&candidate.id) else { continue };
                let history = histories.get(&candidate.id).map_or(&[][..], Vec::as_slice);
                let check = HistoryCheck::verify(history, *seq, hash);
                if check.is_intact() {
                    verified.push(candidate);
                } else {
                    let refusal = Refusal::BrokenChain { first_altered: check.first_altered };
                    report.refused.push(Refused { instance: InstanceId(candidate.id), refusal });
                }
            }
            let Some(into) = into.filter(|_| !options.dry_run) else {
                report.archived += verified.len();
                report.rows += rows.len();
                continue;
            };
            if verified.is_empty() {
                continue;
            }
            let verified_ids: Vec<String> = verified.iter().map(|c| c.id.clone()).collect();
            let rows = if verified.len() == ids.len() { rows } else { live.instance_rows(&verified_ids).await? };
            into.write_archive_copy(&rows, &verified_ids).await?;
            let copied: Vec<(Candidate, i64)> = verified.into_iter().map(|c| (c.clone(), c.version)).collect();
            let participants = rows.participants();
            let removed =
                live.remove_archived(&copied, &participants, self.now(), &options.label, options.by.trim()).await?;
            report.batches += 1;
            if removed.len() < copied.len() {
                let stayed: Vec<String> =
                    copied.iter().map(|(c, _)| c.id.clone()).filter(|id| !removed.contains(id)).collect();
                into.drop_archive_copy(&stayed).await?;
                report.refused.extend(
                    stayed.into_iter().map(|id| Refused { instance: InstanceId(id), refusal: Refusal::Changed }),
                );
            }
            report.archived += removed.len();
            report.rows += rows.len();
            let mut cache = self.inner.cache.lock().unwrap_or_else(PoisonError::into_inner);
            for id in &removed {
                cache.remove(id);
            }
        }
        Ok(report)
    }

    /// The tombstone of `id` when it was archived.
    pub async fn archived(&self, id: &InstanceId) -> Result<Option<Tombstone>, Error> {
        Ok(self.store().tombstone(id.as_str()).await?)
    }
}
