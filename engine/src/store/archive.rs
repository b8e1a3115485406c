//! History retention at the table level: the rows of ended instances copied into an archive
//! database of the same schema, then removed from the live one, leaving a tombstone
//! (`archived_instances`). The runtime's `Engine::archive` decides which instances go; this
//! module only moves rows, on either backend, in either direction (a SQLite live file may be
//! archived into PostgreSQL and the other way round).
//!
//! Crash safety comes from the order: a batch is first written into the archive and committed
//! there (its earlier copies replaced, so a repeat is harmless), and only then removed from the
//! live database, in one transaction that checks again that nothing changed since the copy.
//! A crash between the two leaves a copy in the archive and the instance live: the next run
//! copies it again and finishes.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use super::rows::Columns;
use super::sql::{Arg, Dialect};
use super::writes::Tx;
use super::{AnyStore, Error, HistoryRow, HistoryStep, InstanceState, ts};

/// The statuses of an instance that has ended.
pub const ENDED: [InstanceState; 3] = [InstanceState::Completed, InstanceState::Failed, InstanceState::Cancelled];

/// A column's type: text (nullable), a 64-bit integer, or a nullable one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Int,
    OptInt,
}

use Kind::{Int, OptInt, Text};

/// A table whose rows belong to one instance, found by `key` (the instance's id).
struct Table {
    name: &'static str,
    key: &'static str,
    columns: &'static [(&'static str, Kind)],
}

/// Every table that holds an instance's rows, with the columns both schemas share (the
/// backends' own sequence and claim columns are left to the archive to fill).
const TABLES: [Table; 9] = [
    Table {
        name: "instances",
        key: "id",
        columns: &[
            ("id", Text),
            ("process_key", Text),
            ("process_version", Int),
            ("status", Text),
            ("business_key", Text),
            ("parent_id", Text),
            ("parent_call", Text),
            ("state", Text),
            ("version", Int),
            ("history_seq", Int),
            ("history_hash", Text),
            ("created_at", Text),
            ("updated_at", Text),
        ],
    },
    Table {
        name: "jobs",
        key: "instance_id",
        columns: &[
            ("id", Text),
            ("instance_id", Text),
            ("node", Text),
            ("job_type", Text),
            ("input", Text),
            ("idempotency_key", Text),
            ("retries", Int),
            ("attempt", Int),
            ("state", Text),
            ("lock_owner", Text),
            ("lock_epoch", Int),
            ("lock_expires_at", Text),
            ("due_at", Text),
        ],
    },
    Table {
        name: "timers",
        key: "instance_id",
        columns: &[("id", Text), ("instance_id", Text), ("node", Text), ("due_at", Text)],
    },
    Table {
        name: "tasks",
        key: "instance_id",
        columns: &[
            ("id", Text),
            ("instance_id", Text),
            ("node", Text),
            ("title", Text),
            ("roles", Text),
            ("assignee", Text),
            ("form", Text),
            ("due_at", Text),
            ("state", Text),
            ("claimed_by", Text),
            ("completed_by", Text),
            ("created_at", Text),
        ],
    },
    Table {
        name: "subscriptions",
        key: "instance_id",
        columns: &[
            ("id", Text),
            ("instance_id", Text),
            ("node", Text),
            ("message_name", Text),
            ("correlation_key", Text),
        ],
    },
    Table {
        name: "incidents",
        key: "instance_id",
        columns: &[
            ("id", Text),
            ("instance_id", Text),
            ("node", Text),
            ("job_id", Text),
            ("message", Text),
            ("state", Text),
            ("raised_at", Text),
        ],
    },
    Table {
        name: "pending_events",
        key: "instance_id",
        columns: &[("id", Text), ("instance_id", Text), ("event", Text)],
    },
    Table {
        name: "events",
        key: "instance_id",
        columns: &[
            ("instance_id", Text),
            ("seq", Int),
            ("at", Text),
            ("event", Text),
            ("history_seq", OptInt),
            ("prev_hash", Text),
            ("entries", Text),
            ("people", Text),
        ],
    },
    Table {
        name: "notifications",
        key: "instance_id",
        columns: &[
            ("id", Text),
            ("instance_id", Text),
            ("kind", Text),
            ("subject", Text),
            ("payload", Text),
            ("created_at", Text),
            ("state", Text),
            ("attempts", Int),
            ("next_attempt_at", Text),
            ("last_error", Text),
            ("delivered_at", Text),
        ],
    },
];

/// The messages delivered to an instance: copied into the archive, and kept in the live
/// database, where their ids keep a resent message from being taken for a new one.
const MESSAGES: Table = Table {
    name: "messages",
    key: "instance_id",
    columns: &[
        ("message_id", Text),
        ("message_name", Text),
        ("correlation_key", Text),
        ("payload", Text),
        ("state", Text),
        ("instance_id", Text),
        ("received_at", Text),
        ("expires_at", Text),
    ],
};

const DEPLOYMENTS: Table = Table {
    name: "deployments",
    key: "process_key",
    columns: &[
        ("process_key", Text),
        ("version", Int),
        ("hash", Text),
        ("source", Text),
        ("compiled", Text),
        ("deployed_at", Text),
    ],
};

/// Most bound parameters in one statement (SQLite allows 32,766; PostgreSQL 65,535).
const MAX_PARAMS: usize = 8_000;

/// One stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Val {
    Text(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
}

/// An ended instance that may be archived, with what could hold it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The instance.
    pub id: String,
    /// Its process.
    pub process_key: String,
    /// The version it ran.
    pub process_version: u32,
    /// How it ended.
    pub status: InstanceState,
    /// Its business key.
    pub business_key: Option<String>,
    /// The calling instance.
    pub parent_id: Option<String>,
    /// Its optimistic-concurrency version when read.
    pub version: i64,
    /// When it ended (its last step).
    pub ended_at: DateTime<Utc>,
    /// The parent's status, when it has a parent still in the live database.
    pub parent_status: Option<InstanceState>,
    /// A called instance of its that has not ended.
    pub running_child: Option<String>,
    /// Events owed to it, not yet applied.
    pub pending_events: i64,
    /// Notifications about it not yet delivered (waiting or dead).
    pub undelivered: i64,
}

/// The rows of a set of instances, read in one snapshot, ready to be written elsewhere.
#[derive(Debug, Default)]
pub struct InstanceRows {
    /// Per table of [`TABLES`] (same order): its rows.
    tables: Vec<Vec<Vec<Val>>>,
    messages: Vec<Vec<Val>>,
    deployments: Vec<Vec<Val>>,
}

impl InstanceRows {
    /// How many rows (messages and deployments not counted).
    pub fn len(&self) -> usize {
        self.tables.iter().map(Vec::len).sum()
    }

    /// True when no rows were read.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The history rows of every instance, by instance, in order.
    pub fn histories(&self) -> HashMap<String, Vec<HistoryRow>> {
        let mut out: HashMap<String, Vec<HistoryRow>> = HashMap::new();
        let Some(events) = table_index("events").and_then(|i| self.tables.get(i)) else { return out };
        for row in events {
            let text = |i: usize| match row.get(i) {
                Some(Val::Text(Some(t))) => Some(t.clone()),
                _ => None,
            };
            // The entries of a step travel in its last event's row.
            let (Some(Val::OptInt(Some(seq))), Some(entries)) = (row.get(4), text(6)) else { continue };
            let step = HistoryStep {
                instance_id: text(0).unwrap_or_default(),
                seq: *seq,
                at: text(2).unwrap_or_default(),
                prev_hash: text(5).unwrap_or_default(),
                entries,
                people: None,
            };
            out.entry(step.instance_id.clone()).or_default().extend(step.rows());
        }
        for rows in out.values_mut() {
            rows.sort_by_key(|r| r.seq);
        }
        out
    }

    /// Who took part in each instance, as stored in its tombstone (JSON of [`Participants`]).
    pub fn participants(&self) -> HashMap<String, String> {
        let mut each: HashMap<String, Participants> = HashMap::new();
        let text = |row: &Vec<Val>, i: usize| match row.get(i) {
            Some(Val::Text(Some(t))) => Some(t.clone()),
            _ => None,
        };
        let tables = |name: &str| table_index(name).and_then(|i| self.tables.get(i)).into_iter().flatten();
        for (id, rows) in self.histories() {
            let entry = each.entry(id).or_default();
            entry.users.extend(rows.into_iter().flat_map(|r| [r.who, r.on_behalf_of]).flatten());
        }
        for row in tables("tasks") {
            let Some(id) = text(row, 1) else { continue };
            let entry = each.entry(id).or_default();
            entry.users.extend([text(row, 5), text(row, 9), text(row, 10)].into_iter().flatten());
            let roles: Vec<String> = text(row, 4).and_then(|r| serde_json::from_str(&r).ok()).unwrap_or_default();
            entry.roles.extend(roles);
        }
        each.into_iter().map(|(id, p)| (id, p.to_json())).collect()
    }

    /// The recorded head of each instance: (history_seq, history_hash).
    pub fn heads(&self) -> HashMap<String, (i64, String)> {
        let mut out = HashMap::new();
        for row in self.tables.first().into_iter().flatten() {
            if let (Some(Val::Text(Some(id))), Some(Val::Int(seq)), Some(Val::Text(Some(hash)))) =
                (row.first(), row.get(9), row.get(10))
            {
                out.insert(id.clone(), (*seq, hash.clone()));
            }
        }
        out
    }
}

fn table_index(name: &str) -> Option<usize> {
    TABLES.iter().position(|t| t.name == name)
}

/// An archived instance, as its tombstone in the live database tells.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tombstone {
    /// The instance.
    pub id: String,
    /// Its process.
    pub process_key: String,
    /// The version it ran.
    pub process_version: u32,
    /// How it ended.
    pub status: InstanceState,
    /// Its business key.
    pub business_key: Option<String>,
    /// The calling instance.
    pub parent_id: Option<String>,
    /// When it ended.
    pub ended_at: DateTime<Utc>,
    /// When it was moved.
    pub archived_at: DateTime<Utc>,
    /// Where it went (a label, never a URL with a password).
    pub archive: String,
    /// The operator who moved it.
    pub archived_by: String,
    /// Who took part in it.
    pub participants: Participants,
}

/// Who took part in an instance: the users who acted in it, for whom, or held one of its
/// tasks, and the roles its tasks were offered to (what a live instance's readers are judged by).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Participants {
    /// Users.
    pub users: BTreeSet<String>,
    /// Roles.
    pub roles: BTreeSet<String>,
}

impl Participants {
    /// True when `user`, or one of `roles`, took part.
    pub fn include(&self, user: &str, roles: &[String]) -> bool {
        self.users.contains(user) || roles.iter().any(|r| self.roles.contains(r))
    }

    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

/// A list of ids bound as one parameter, and how the dialect reads it.
fn in_list(dialect: Dialect, column: &str, n: usize) -> String {
    match dialect {
        Dialect::Sqlite => format!("{column} IN (SELECT value FROM json_each(${n}))"),
        Dialect::Postgres => format!("{column} = ANY(${n})"),
    }
}

fn texts(ids: &[String]) -> Arg<'static> {
    Arg::Texts(ids.to_vec())
}

async fn read_table<C: Tx>(tx: &mut C, table: &Table, keys: &[String]) -> Result<Vec<Vec<Val>>, Error> {
    let columns: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
    let sql =
        format!("SELECT {} FROM {} WHERE {}", columns.join(", "), table.name, in_list(tx.dialect(), table.key, 1));
    let rows = tx.fetch(&sql, vec![texts(keys)]).await?;
    rows.iter()
        .map(|row| {
            table
                .columns
                .iter()
                .map(|(c, kind)| match kind {
                    Text => row.opt_text(c).map(Val::Text),
                    Int => row.int(c).map(Val::Int),
                    OptInt => row.opt_int(c).map(Val::OptInt),
                })
                .collect()
        })
        .collect()
}

/// Inserts `rows` into `table`, a chunk of rows per statement; `tail` ends each statement.
async fn insert_rows<C: Tx>(tx: &mut C, table: &Table, rows: &[Vec<Val>], tail: &str) -> Result<(), Error> {
    let width = table.columns.len();
    let columns: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
    for chunk in rows.chunks((MAX_PARAMS / width).max(1)) {
        let mut sql = format!("INSERT INTO {} ({}) VALUES ", table.name, columns.join(", "));
        let mut args = Vec::with_capacity(chunk.len() * width);
        for (r, row) in chunk.iter().enumerate() {
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for (c, value) in row.iter().enumerate() {
                if c > 0 {
                    sql.push_str(", ");
                }
                // Anonymous on SQLite: sqlx looks up the name of each numbered parameter, and
                // SQLite walks its list of names to find one, which makes binding thousands quadratic.
                match tx.dialect() {
                    Dialect::Sqlite => sql.push('?'),
                    Dialect::Postgres => sql.push_str(&format!("${}", args.len() + 1)),
                }
                args.push(match value {
                    Val::Text(t) => Arg::Text(t.as_deref()),
                    Val::Int(n) => Arg::Int(*n),
                    Val::OptInt(n) => Arg::OptInt(*n),
                });
            }
            sql.push(')');
        }
        sql.push_str(tail);
        tx.execute(&sql, args).await?;
    }
    Ok(())
}

/// Ended instances after `after` (by id) that ended before `before`, at most `limit`, each
/// with what could hold it back.
async fn candidates<C: Tx>(
    tx: &mut C,
    before: DateTime<Utc>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Candidate>, Error> {
    // A called instance's id extends its caller's (`{parent}.call.{n}`, or `/call/` in older
    // stores): its children are found by a range of the primary key.
    let sql = "SELECT i.id, i.process_key, i.process_version, i.status, i.business_key, i.parent_id, i.version, \
               i.updated_at, \
               (SELECT p.status FROM instances p WHERE p.id = i.parent_id) AS parent_status, \
               (SELECT c.id FROM instances c WHERE ((c.id > i.id || '.call.' AND c.id < i.id || '.call/') \
                 OR (c.id > i.id || '/call/' AND c.id < i.id || '/call0')) AND c.parent_id = i.id \
                 AND c.status IN ('created', 'running') LIMIT 1) AS running_child, \
               (SELECT COUNT(*) FROM pending_events e WHERE e.instance_id = i.id) AS pending_events, \
               (SELECT COUNT(*) FROM notifications n WHERE n.instance_id = i.id AND n.state IN ('pending', 'dead')) \
                 AS undelivered \
               FROM instances i WHERE i.id > $1 AND i.status IN ('completed', 'failed', 'cancelled') \
               AND i.updated_at < $2 ORDER BY i.id LIMIT $3";
    let before = ts(before);
    let rows =
        tx.fetch(sql, vec![Arg::Text(Some(after.unwrap_or(""))), Arg::Text(Some(&before)), Arg::Int(limit)]).await?;
    rows.iter()
        .map(|row| {
            Ok(Candidate {
                id: row.text("id")?,
                process_key: row.text("process_key")?,
                process_version: row.version("process_version")?,
                status: row.text("status")?.parse()?,
                business_key: row.opt_text("business_key")?,
                parent_id: row.opt_text("parent_id")?,
                version: row.int("version")?,
                ended_at: row.timestamp("updated_at")?,
                parent_status: row.opt_text("parent_status")?.map(|s| s.parse()).transpose()?,
                running_child: row.opt_text("running_child")?,
                pending_events: row.int("pending_events")?,
                undelivered: row.int("undelivered")?,
            })
        })
        .collect()
}

async fn read_rows<C: Tx>(tx: &mut C, ids: &[String]) -> Result<InstanceRows, Error> {
    let mut out = InstanceRows::default();
    for table in &TABLES {
        out.tables.push(read_table(tx, table, ids).await?);
    }
    out.messages = read_table(tx, &MESSAGES, ids).await?;
    let keys: BTreeSet<String> = out.tables[0]
        .iter()
        .filter_map(|row| match row.get(1) {
            Some(Val::Text(Some(key))) => Some(key.clone()),
            _ => None,
        })
        .collect();
    let keys: Vec<String> = keys.into_iter().collect();
    out.deployments = read_table(tx, &DEPLOYMENTS, &keys).await?;
    Ok(out)
}

/// Replaces the archive's copies of the instances of `rows` with `rows`; deployments are added
/// when missing, and one that differs from the archive's under the same key and version is
/// refused (one archive serves one live database).
async fn write_copy<C: Tx>(tx: &mut C, rows: &InstanceRows, ids: &[String]) -> Result<(), Error> {
    for table in &TABLES {
        let sql = format!("DELETE FROM {} WHERE {}", table.name, in_list(tx.dialect(), table.key, 1));
        tx.execute(&sql, vec![texts(ids)]).await?;
    }
    for (table, table_rows) in TABLES.iter().zip(&rows.tables) {
        insert_rows(tx, table, table_rows, "").await?;
    }
    insert_rows(tx, &MESSAGES, &rows.messages, " ON CONFLICT (message_id) DO NOTHING").await?;
    insert_rows(tx, &DEPLOYMENTS, &rows.deployments, " ON CONFLICT DO NOTHING").await?;
    for deployment in &rows.deployments {
        let (Some(Val::Text(Some(key))), Some(Val::Int(version)), Some(Val::Text(Some(hash)))) =
            (deployment.first(), deployment.get(1), deployment.get(2))
        else {
            continue;
        };
        let sql = "SELECT hash FROM deployments WHERE process_key = $1 AND version = $2";
        let found = tx.fetch(sql, vec![Arg::Text(Some(key)), Arg::Int(*version)]).await?;
        let theirs = found.first().map(|r| r.text("hash")).transpose()?;
        if theirs.as_deref() != Some(hash.as_str()) {
            return Err(Error::Corrupt(format!(
                "the archive holds another deployment of `{key}` v{version} (or cannot take this one): \
                 archive each live database into its own archive"
            )));
        }
    }
    Ok(())
}

/// Removes from the live database the instances of `copied` (id, version when copied) that
/// are unchanged, still ended and owe nothing, and leaves a tombstone for each. The ids
/// removed.
async fn remove<C: Tx>(
    tx: &mut C,
    copied: &[(Candidate, i64)],
    participants: &HashMap<String, String>,
    archived_at: DateTime<Utc>,
    label: &str,
    by: &str,
) -> Result<Vec<String>, Error> {
    let ids: Vec<String> = copied.iter().map(|(c, _)| c.id.clone()).collect();
    let dialect = tx.dialect();
    // On PostgreSQL the rows stay locked until the commit: no other node steps them meanwhile.
    let lock = if dialect == Dialect::Postgres { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT id, version, status FROM instances WHERE {}{lock}", in_list(dialect, "id", 1));
    let mut now: HashMap<String, (i64, String)> = HashMap::new();
    for row in tx.fetch(&sql, vec![texts(&ids)]).await? {
        now.insert(row.text("id")?, (row.int("version")?, row.text("status")?));
    }
    let mut owing: BTreeSet<String> = BTreeSet::new();
    for sql in [
        format!("SELECT DISTINCT instance_id FROM pending_events WHERE {}", in_list(dialect, "instance_id", 1)),
        format!(
            "SELECT DISTINCT instance_id FROM notifications WHERE {} AND state IN ('pending', 'dead')",
            in_list(dialect, "instance_id", 1)
        ),
    ] {
        for row in tx.fetch(&sql, vec![texts(&ids)]).await? {
            owing.insert(row.text("instance_id")?);
        }
    }
    let ended: Vec<&str> = ENDED.iter().map(|s| s.as_str()).collect();
    let keep: Vec<&(Candidate, i64)> = copied
        .iter()
        .filter(|(c, version)| {
            now.get(&c.id).is_some_and(|(v, status)| v == version && ended.contains(&status.as_str()))
                && !owing.contains(&c.id)
        })
        .collect();
    let keep_ids: Vec<String> = keep.iter().map(|(c, _)| c.id.clone()).collect();
    if keep_ids.is_empty() {
        return Ok(keep_ids);
    }
    for table in &TABLES {
        let sql = format!("DELETE FROM {} WHERE {}", table.name, in_list(dialect, table.key, 1));
        tx.execute(&sql, vec![texts(&keep_ids)]).await?;
    }
    let at = ts(archived_at);
    let stones: Vec<Vec<Val>> = keep
        .iter()
        .map(|(c, _)| {
            vec![
                Val::Text(Some(c.id.clone())),
                Val::Text(Some(c.process_key.clone())),
                Val::Int(i64::from(c.process_version)),
                Val::Text(Some(c.status.as_str().to_string())),
                Val::Text(c.business_key.clone()),
                Val::Text(c.parent_id.clone()),
                Val::Text(Some(ts(c.ended_at))),
                Val::Text(Some(at.clone())),
                Val::Text(Some(label.to_string())),
                Val::Text(Some(by.to_string())),
                Val::Text(Some(participants.get(&c.id).cloned().unwrap_or_else(|| Participants::default().to_json()))),
            ]
        })
        .collect();
    insert_rows(tx, &TOMBSTONES, &stones, " ON CONFLICT DO NOTHING").await?;
    Ok(keep_ids)
}

const TOMBSTONES: Table = Table {
    name: "archived_instances",
    key: "id",
    columns: &[
        ("id", Text),
        ("process_key", Text),
        ("process_version", Int),
        ("status", Text),
        ("business_key", Text),
        ("parent_id", Text),
        ("ended_at", Text),
        ("archived_at", Text),
        ("archive", Text),
        ("archived_by", Text),
        ("participants", Text),
    ],
};

/// Runs `$body` with `$tx` bound to a connection of `$store` inside a transaction, committed
/// when the body succeeds. `read`: a snapshot on the read pool; `write`: the write connection
/// (SQLite: `BEGIN IMMEDIATE`, short, with the engine's writer held between two batches).
macro_rules! in_tx {
    ($store:expr, $mode:ident, |$tx:ident| $body:expr) => {{
        match $store {
            AnyStore::Sqlite(s) => {
                let _writer = in_tx!(@hold s, $mode);
                let mut t = in_tx!(@sqlite s, $mode);
                let $tx: &mut sqlx::SqliteConnection = &mut *t;
                let out = $body;
                t.commit().await?;
                out
            }
            AnyStore::Postgres(s) => {
                let mut t = s.pool().begin().await?;
                in_tx!(@pg t, $mode);
                let $tx: &mut sqlx::PgConnection = &mut *t;
                let out = $body;
                t.commit().await?;
                out
            }
        }
    }};
    (@hold $s:ident, read) => { () };
    (@hold $s:ident, write) => { $s.hold_writer().await };
    (@sqlite $s:ident, read) => { $s.reader().begin().await? };
    (@sqlite $s:ident, write) => { $s.pool().begin_with("BEGIN IMMEDIATE").await? };
    (@pg $t:ident, read) => {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *$t).await?;
    };
    (@pg $t:ident, write) => {};
}

impl AnyStore {
    /// Ended instances after `after` (by id) whose last step was before `before`, at most
    /// `limit`, in id order, each with what could hold it back.
    pub async fn archive_candidates(
        &self,
        before: DateTime<Utc>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Candidate>, Error> {
        Ok(in_tx!(self, read, |tx| candidates(tx, before, after, limit).await?))
    }

    /// Every row of the instances `ids`, read in one snapshot.
    pub async fn instance_rows(&self, ids: &[String]) -> Result<InstanceRows, Error> {
        Ok(in_tx!(self, read, |tx| read_rows(tx, ids).await?))
    }

    /// In an archive: replaces its copies of `ids` with `rows`, in one transaction.
    pub async fn write_archive_copy(&self, rows: &InstanceRows, ids: &[String]) -> Result<(), Error> {
        in_tx!(self, write, |tx| write_copy(tx, rows, ids).await?);
        Ok(())
    }

    /// In an archive: drops its copies of `ids` (instances that changed after they were copied
    /// and stay live).
    pub async fn drop_archive_copy(&self, ids: &[String]) -> Result<(), Error> {
        in_tx!(self, write, |tx| {
            for table in &TABLES {
                let sql = format!("DELETE FROM {} WHERE {}", table.name, in_list(tx.dialect(), table.key, 1));
                tx.execute(&sql, vec![texts(ids)]).await?;
            }
        });
        Ok(())
    }

    /// In the live database: removes the copied instances that are unchanged since (their
    /// version when copied given beside each) and leaves their tombstones labelled `label`, in
    /// one transaction, naming `by` as the operator and each instance's participants (JSON of
    /// [`Participants`], from [`InstanceRows::participants`]); the ids removed.
    pub async fn remove_archived(
        &self,
        copied: &[(Candidate, i64)],
        participants: &HashMap<String, String>,
        archived_at: DateTime<Utc>,
        label: &str,
        by: &str,
    ) -> Result<Vec<String>, Error> {
        Ok(in_tx!(self, write, |tx| remove(tx, copied, participants, archived_at, label, by).await?))
    }

    /// What tells this database from another: a SQLite file's canonical path, a PostgreSQL
    /// server's address, port and database name. Two stores on one database answer alike.
    pub async fn identity(&self) -> Result<String, Error> {
        match self {
            AnyStore::Sqlite(s) => {
                let rows = sqlx::query("PRAGMA database_list").fetch_all(s.reader()).await?;
                let mut file = String::new();
                for row in rows {
                    use sqlx::Row as _;
                    if row.try_get::<String, _>("name")? == "main" {
                        file = row.try_get("file")?;
                    }
                }
                let canonical = std::fs::canonicalize(&file).map_or(file, |p| p.display().to_string());
                Ok(format!("sqlite:{canonical}"))
            }
            AnyStore::Postgres(s) => {
                let sql = "SELECT current_database() || '@' || COALESCE(host(inet_server_addr()), 'local') || ':' \
                           || COALESCE(inet_server_port(), 0)::text AS identity";
                let row = sqlx::query(sql).fetch_one(s.pool()).await?;
                use sqlx::Row as _;
                Ok(format!("postgres:{}", row.try_get::<String, _>("identity")?))
            }
        }
    }

    /// The tombstone of an archived instance.
    pub async fn tombstone(&self, id: &str) -> Result<Option<Tombstone>, Error> {
        Ok(in_tx!(self, read, |tx| tombstone(tx, id).await?))
    }
}

async fn tombstone<C: Tx>(tx: &mut C, id: &str) -> Result<Option<Tombstone>, Error> {
    let sql = "SELECT id, process_key, process_version, status, business_key, parent_id, ended_at, archived_at, \
               archive, archived_by, participants FROM archived_instances WHERE id = $1";
    let rows = tx.fetch(sql, vec![Arg::Text(Some(id))]).await?;
    rows.first()
        .map(|row| {
            Ok(Tombstone {
                id: row.text("id")?,
                process_key: row.text("process_key")?,
                process_version: row.version("process_version")?,
                status: row.text("status")?.parse()?,
                business_key: row.opt_text("business_key")?,
                parent_id: row.opt_text("parent_id")?,
                ended_at: row.timestamp("ended_at")?,
                archived_at: row.timestamp("archived_at")?,
                archive: row.text("archive")?,
                archived_by: row.text("archived_by")?,
                participants: serde_json::from_str(&row.text("participants")?)?,
            })
        })
        .transpose()
}

/// A label for the database `url` names that is safe to store and show: the file of a SQLite
/// URL, or a PostgreSQL URL's host, port and database without user, password or parameters.
pub fn archive_label(url: &str) -> Result<String, String> {
    match super::DatabaseUrl::parse(url)? {
        super::DatabaseUrl::Sqlite(path) => Ok(format!("sqlite://{path}")),
        super::DatabaseUrl::Postgres(url) => {
            let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
            let rest = rest.split(['?', '#']).next().unwrap_or_default();
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let host_start = rest[..authority_end].rfind('@').map_or(0, |at| at + 1);
            Ok(format!("{}://{}", scheme.to_ascii_lowercase(), &rest[host_start..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::archive_label;

    #[test]
    fn labels_never_carry_a_password() {
        assert_eq!(archive_label("sqlite://a/b.db").unwrap(), "sqlite://a/b.db");
        assert_eq!(archive_label("old.db").unwrap(), "sqlite://old.db");
        assert_eq!(
            archive_label("postgres://u:secret@db.internal:5432/archive?sslmode=require").unwrap(),
            "postgres://db.internal:5432/archive"
        );
        assert_eq!(archive_label("postgresql://db/arch").unwrap(), "postgresql://db/arch");
        assert!(archive_label("mysql://x").is_err());
    }
}
