//! The tamper-evident history chain: each row's hash is
//! `sha256(prev_hash ‖ canonical JSON of the row)`, the first row chained to [`GENESIS_HASH`].
//! The entries a step writes are stored together, as one [`HistoryStep`] in the row of the step's
//! last event, each keeping its hash.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The `prev_hash` of an instance's first history row.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One history row as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct HistoryRow {
    /// The instance.
    pub instance_id: String,
    /// 1-based position in the instance's history.
    pub seq: i64,
    /// When (the database's text form).
    pub at: String,
    /// What happened.
    pub kind: String,
    /// Where.
    pub node: Option<String>,
    /// Who acted.
    pub who: Option<String>,
    /// For whom.
    pub on_behalf_of: Option<String>,
    /// The whole entry as JSON (variables changed, detail).
    pub detail: String,
    /// The previous row's hash.
    pub prev_hash: String,
    /// This row's hash.
    pub hash: String,
}

#[derive(Serialize)]
struct Canonical<'a> {
    instance_id: &'a str,
    seq: i64,
    at: &'a str,
    kind: &'a str,
    node: Option<&'a str>,
    who: Option<&'a str>,
    on_behalf_of: Option<&'a str>,
    detail: &'a str,
}

/// The hash of `row` chained to `prev_hash` (the row's own `hash` and `prev_hash` are not read).
pub fn chain_hash(prev_hash: &str, row: &HistoryRow) -> String {
    let canonical = Canonical {
        instance_id: &row.instance_id,
        seq: row.seq,
        at: &row.at,
        kind: &row.kind,
        node: row.node.as_deref(),
        who: row.who.as_deref(),
        on_behalf_of: row.on_behalf_of.as_deref(),
        detail: &row.detail,
    };
    // Serializing a struct of strings and integers cannot fail.
    let json = serde_json::to_vec(&canonical).unwrap_or_default();
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(&json);
    hex(&hasher.finalize())
}

/// The sha256 of `data`, as lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(digest: &[u8]) -> String {
    let mut out = String::with_capacity(64);
    for &byte in digest {
        out.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(byte & 0xf), 16).unwrap_or('0'));
    }
    out
}

/// The history entries of one step as stored: the `history_seq`, `prev_hash` and `entries`
/// columns of the row of the last event the step applied (its time is theirs). A step's entries
/// share their instance and time; each keeps its own hash, so the chain reads and verifies
/// entry by entry, exactly as when every entry was a row of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryStep {
    /// The instance.
    pub instance_id: String,
    /// The position of the first entry in the instance's history.
    pub seq: i64,
    /// When (the database's text form), for every entry.
    pub at: String,
    /// The hash the first entry chains from.
    pub prev_hash: String,
    /// The entries, a JSON array of `[kind, node, who, on_behalf_of, detail, hash]`.
    pub entries: String,
    /// The users the entries name (who acted, for whom), a JSON array, stored beside them so
    /// that who took part in which instance is found without reading every entry; `None` when
    /// they name nobody, or when only the entries were read.
    pub people: Option<String>,
}

/// What [`HistoryStep::people`] holds for `user`: the name as a JSON string, quotes included, so
/// that looking for it finds that name and never a longer one that contains it.
pub fn person_key(user: &str) -> String {
    serde_json::Value::from(user).to_string()
}

/// An entry of [`HistoryStep::entries`]: `[kind, node, who, on_behalf_of, detail, hash]`.
type StoredEntry<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>, &'a str, &'a str);

/// An entry as read back; owned, since JSON escapes may have to be undone.
type ReadEntry = (String, Option<String>, Option<String>, Option<String>, String, String);

impl HistoryStep {
    /// The stored form of `rows`, consecutive entries of one instance written at one time (a
    /// step's, in order); `None` when there are none.
    pub fn of(rows: &[HistoryRow]) -> Option<HistoryStep> {
        let first = rows.first()?;
        let people: std::collections::BTreeSet<&str> =
            rows.iter().flat_map(|r| [r.who.as_deref(), r.on_behalf_of.as_deref()]).flatten().collect();
        let entries: Vec<StoredEntry<'_>> = rows
            .iter()
            .map(|r| {
                (r.kind.as_str(), r.node.as_deref(), r.who.as_deref(), r.on_behalf_of.as_deref(), &*r.detail, &*r.hash)
            })
            .collect();
        Some(HistoryStep {
            instance_id: first.instance_id.clone(),
            seq: first.seq,
            at: first.at.clone(),
            prev_hash: first.prev_hash.clone(),
            // A list of strings and nulls always serializes.
            entries: serde_json::to_string(&entries).unwrap_or_default(),
            people: (!people.is_empty()).then(|| serde_json::to_string(&people).unwrap_or_default()),
        })
    }

    /// The same entries chained from `prev_hash` instead, each hash computed anew, and the
    /// last one: what a copy of an instance's rows under another id needs, since every hash
    /// covers the instance's id.
    pub fn chained_from(&self, prev_hash: &str) -> (HistoryStep, String) {
        let mut prev = prev_hash.to_string();
        let mut rows = self.rows();
        for row in &mut rows {
            row.prev_hash = prev.clone();
            row.hash = chain_hash(&prev, row);
            prev.clone_from(&row.hash);
        }
        let step =
            HistoryStep::of(&rows).unwrap_or_else(|| HistoryStep { prev_hash: prev_hash.into(), ..self.clone() });
        (step, prev)
    }

    /// The entries as history rows, in order. Entries that cannot be read (the stored text was
    /// altered) come back as one row that matches no hash, so verification reports this step's
    /// first position instead of failing to read the history.
    pub fn rows(&self) -> Vec<HistoryRow> {
        let Ok(entries) = serde_json::from_str::<Vec<ReadEntry>>(&self.entries) else {
            return vec![HistoryRow {
                instance_id: self.instance_id.clone(),
                seq: self.seq,
                at: self.at.clone(),
                kind: "unreadable".into(),
                node: None,
                who: None,
                on_behalf_of: None,
                detail: self.entries.clone(),
                prev_hash: self.prev_hash.clone(),
                hash: String::new(),
            }];
        };
        let mut prev = self.prev_hash.clone();
        let mut out = Vec::with_capacity(entries.len());
        for (seq, (kind, node, who, on_behalf_of, detail, hash)) in (self.seq..).zip(entries) {
            let prev_hash = std::mem::replace(&mut prev, hash.clone());
            out.push(HistoryRow {
                instance_id: self.instance_id.clone(),
                seq,
                at: self.at.clone(),
                kind,
                node,
                who,
                on_behalf_of,
                detail,
                prev_hash,
                hash,
            });
        }
        out
    }
}

/// The result of re-checking an instance's history chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryCheck {
    /// Rows checked.
    pub rows: usize,
    /// The first row (by seq) whose hash or link does not match, if any.
    pub first_altered: Option<i64>,
    /// True when the instance's recorded head does not match the last row (rows removed at the end).
    pub head_mismatch: bool,
}

impl HistoryCheck {
    /// True when nothing was altered.
    pub fn is_intact(&self) -> bool {
        self.first_altered.is_none() && !self.head_mismatch
    }

    /// Recomputes the chain of `rows` (in seq order) against the instance's recorded head.
    pub fn verify(rows: &[HistoryRow], head_seq: i64, head_hash: &str) -> HistoryCheck {
        let mut prev = GENESIS_HASH.to_string();
        let mut first_altered = None;
        for (i, row) in rows.iter().enumerate() {
            let expected_seq = i64::try_from(i).unwrap_or(i64::MAX).saturating_add(1);
            if row.seq != expected_seq || row.prev_hash != prev || chain_hash(&prev, row) != row.hash {
                first_altered = Some(row.seq);
                break;
            }
            prev = row.hash.clone();
        }
        let last_seq = rows.last().map_or(0, |r| r.seq);
        let head_mismatch = first_altered.is_none() && (last_seq != head_seq || prev != head_hash);
        HistoryCheck { rows: rows.len(), first_altered, head_mismatch }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: i64, prev: &str, who: Option<&str>) -> HistoryRow {
        let mut row = HistoryRow {
            instance_id: "i-1".into(),
            seq,
            at: "2026-12-04T04:00:00.000000Z".into(),
            kind: "task_completed".into(),
            node: Some("review".into()),
            who: who.map(str::to_string),
            on_behalf_of: None,
            detail: r#"{"kind":"task_completed","note":"a \"quoted\" word, 审批"}"#.into(),
            prev_hash: prev.into(),
            hash: String::new(),
        };
        row.hash = chain_hash(prev, &row);
        row
    }

    #[test]
    fn a_step_reads_back_as_the_rows_it_was_made_of_and_verifies() {
        let first = entry(1, GENESIS_HASH, Some("mia"));
        let second = entry(2, &first.hash, None);
        let rows = vec![first, second];
        let step = HistoryStep::of(&rows).unwrap();
        assert_eq!(step.seq, 1);
        assert_eq!(step.people.as_deref(), Some(r#"["mia"]"#));
        assert!(step.people.as_deref().unwrap().contains(&person_key("mia")));
        assert!(!step.people.as_deref().unwrap().contains(&person_key("mi")));
        assert_eq!(step.rows(), rows);
        let head = rows[1].hash.clone();
        assert!(HistoryCheck::verify(&step.rows(), 2, &head).is_intact());
        assert!(HistoryStep::of(&[]).is_none());
        let moved = HistoryStep { instance_id: "i-2".into(), ..step };
        let (copy, last) = moved.chained_from(GENESIS_HASH);
        assert!(HistoryCheck::verify(&copy.rows(), 2, &last).is_intact());
        assert_ne!(last, head);
    }

    #[test]
    fn an_altered_step_is_reported_at_its_entry_and_unreadable_text_at_its_first() {
        let first = entry(1, GENESIS_HASH, Some("mia"));
        let second = entry(2, &first.hash, Some("max"));
        let head = second.hash.clone();
        let step = HistoryStep::of(&[first, second]).unwrap();
        let altered = HistoryStep { entries: step.entries.replace("\"max\"", "\"mallory\""), ..step.clone() };
        assert_eq!(HistoryCheck::verify(&altered.rows(), 2, &head).first_altered, Some(2));
        let garbled = HistoryStep { entries: "[[\"task_completed\"".into(), ..step };
        let rows = garbled.rows();
        assert_eq!((rows.len(), rows[0].kind.as_str()), (1, "unreadable"));
        assert_eq!(HistoryCheck::verify(&rows, 2, &head).first_altered, Some(1));
    }
}
