//! The tamper-evident history chain: each row's hash is
//! `sha256(prev_hash ‖ canonical JSON of the row)`, the first row chained to [`GENESIS_HASH`].

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
