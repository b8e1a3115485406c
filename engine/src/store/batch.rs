//! The table rows the accepted steps of one batch write, collected once for both backends;
//! each backend writes a table's rows with its own bulk statement (multi-row `VALUES` on SQLite,
//! `jsonb_to_recordset` on PostgreSQL).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{JobChange, JobState, StepWrite, TaskChange, ts};

/// One value of a row to write. Text borrows from the batch's writes where it can: a batch
/// copies no string on its way to the database but the ones it formats (times).
#[derive(Debug, Clone)]
pub(super) enum Cell<'a> {
    Text(Cow<'a, str>),
    OptText(Option<Cow<'a, str>>),
    Int(i64),
    OptInt(Option<i64>),
}

impl Cell<'_> {
    /// The value as JSON (`null` for a missing one).
    pub(super) fn to_json(&self) -> Value {
        match self {
            Cell::Text(text) => Value::from(text.as_ref()),
            Cell::OptText(text) => text.as_deref().map_or(Value::Null, Value::from),
            Cell::Int(n) => Value::from(*n),
            Cell::OptInt(n) => n.map_or(Value::Null, Value::from),
        }
    }
}

/// The statements of a batch's rows, in the order they run: inserts before the updates and
/// deletes of the same table. Each backend has one statement per entry, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Table {
    JobInserts,
    JobUpdates,
    TaskInserts,
    TaskAssigns,
    TaskCloses,
    TimerUpserts,
    TimerDeletes,
    SubscriptionInserts,
    SubscriptionDeletes,
    IncidentInserts,
    IncidentCloses,
    Events,
    Pending,
    PendingConsumed,
    Notifications,
}

/// How many entries [`Table`] has.
pub(super) const TABLES: usize = 15;

/// The columns of each [`Table`]'s rows, in the order its cells come.
pub(super) const COLUMNS: [&[&str]; TABLES] = [
    &["id", "instance_id", "node", "job_type", "input", "idempotency_key", "retries", "attempt", "state", "due_at"],
    &["id", "state", "due_at", "attempt"],
    &["id", "instance_id", "node", "title", "roles", "assignee", "form", "due_at", "created_at"],
    &["id", "assignee"],
    &["id", "state", "completed_by"],
    &["id", "instance_id", "node", "due_at"],
    &["id"],
    &["id", "instance_id", "node", "message_name", "correlation_key"],
    &["id"],
    &["id", "instance_id", "node", "job_id", "message", "raised_at"],
    &["id"],
    &["instance_id", "seq", "at", "event", "history_seq", "prev_hash", "entries", "people"],
    &["id", "instance_id", "event"],
    &["id"],
    &["id", "instance_id", "kind", "subject", "payload", "created_at"],
];

/// The rows of accepted steps not written yet, one list per [`Table`], and whether they made
/// work for other engine nodes (a job ready, a timer set).
#[derive(Default)]
pub(super) struct StepRows<'a> {
    tables: [Vec<Vec<Cell<'a>>>; TABLES],
    /// A job became ready.
    pub(super) wake_jobs: bool,
    /// A timer was set or moved.
    pub(super) wake_timers: bool,
    /// A process version was deployed.
    pub(super) wake_deployments: bool,
}

fn text(value: &str) -> Cell<'_> {
    Cell::Text(Cow::Borrowed(value))
}

fn opt_text(value: &Option<String>) -> Cell<'_> {
    Cell::OptText(value.as_deref().map(Cow::Borrowed))
}

fn time<'a>(value: DateTime<Utc>) -> Cell<'a> {
    Cell::Text(Cow::Owned(ts(value)))
}

fn opt_time<'a>(value: Option<DateTime<Utc>>) -> Cell<'a> {
    Cell::OptText(value.map(|v| Cow::Owned(ts(v))))
}

impl<'a> StepRows<'a> {
    fn push(&mut self, table: Table, row: Vec<Cell<'a>>) {
        self.tables[table as usize].push(row);
    }

    /// Takes the rows collected so far, table by table in statement order, leaving none.
    pub(super) fn take(&mut self) -> impl Iterator<Item = (Table, &'static [&'static str], Vec<Vec<Cell<'a>>>)> + '_ {
        const ORDER: [Table; TABLES] = [
            Table::JobInserts,
            Table::JobUpdates,
            Table::TaskInserts,
            Table::TaskAssigns,
            Table::TaskCloses,
            Table::TimerUpserts,
            Table::TimerDeletes,
            Table::SubscriptionInserts,
            Table::SubscriptionDeletes,
            Table::IncidentInserts,
            Table::IncidentCloses,
            Table::Events,
            Table::Pending,
            Table::PendingConsumed,
            Table::Notifications,
        ];
        ORDER
            .into_iter()
            .map(|table| (table, COLUMNS[table as usize], std::mem::take(&mut self.tables[table as usize])))
            .filter(|(_, _, rows)| !rows.is_empty())
    }

    /// Adds the rows of one accepted step and of the children it started. The plan gives at
    /// most one change per job, task and timer, and a batch holds one step per instance: each
    /// statement touches a row once, as `ON CONFLICT DO UPDATE` requires.
    pub(super) fn add(&mut self, step: &'a StepWrite) {
        let instance = &step.instance.id;
        for change in &step.jobs {
            match change {
                JobChange::Insert(j) => {
                    self.wake_jobs = true;
                    self.push(
                        Table::JobInserts,
                        vec![
                            text(&j.id),
                            text(&j.instance_id),
                            text(&j.node),
                            text(&j.job_type),
                            text(&j.input),
                            text(&j.idempotency_key),
                            Cell::Int(j.retries),
                            Cell::Int(j.attempt),
                            text(j.state.as_str()),
                            time(j.due_at),
                        ],
                    );
                }
                JobChange::Update { id, state, due_at, attempt } => {
                    self.wake_jobs |= *state == JobState::Ready;
                    self.push(
                        Table::JobUpdates,
                        vec![text(id), text(state.as_str()), opt_time(*due_at), Cell::OptInt(*attempt)],
                    );
                }
            }
        }
        for change in &step.tasks {
            match change {
                TaskChange::Insert(t) => self.push(
                    Table::TaskInserts,
                    vec![
                        text(&t.id),
                        text(&t.instance_id),
                        text(&t.node),
                        text(&t.title),
                        text(&t.roles),
                        opt_text(&t.assignee),
                        text(&t.form),
                        opt_time(t.due_at),
                        time(t.created_at),
                    ],
                ),
                TaskChange::Close { id, state, completed_by } => {
                    self.push(Table::TaskCloses, vec![text(id), text(state.as_str()), opt_text(completed_by)])
                }
                TaskChange::Assign { id, assignee } => self.push(Table::TaskAssigns, vec![text(id), text(assignee)]),
            }
        }
        for t in &step.timers_upsert {
            self.wake_timers = true;
            self.push(Table::TimerUpserts, vec![text(&t.id), text(&t.instance_id), text(&t.node), time(t.due_at)]);
        }
        for id in &step.timers_delete {
            self.push(Table::TimerDeletes, vec![text(id)]);
        }
        for s in &step.subscriptions_insert {
            self.push(
                Table::SubscriptionInserts,
                vec![text(&s.id), text(&s.instance_id), text(&s.node), text(&s.message_name), text(&s.correlation_key)],
            );
        }
        for id in &step.subscriptions_delete {
            self.push(Table::SubscriptionDeletes, vec![text(id)]);
        }
        for i in &step.incidents_insert {
            self.push(
                Table::IncidentInserts,
                vec![
                    text(&i.id),
                    text(&i.instance_id),
                    text(&i.node),
                    opt_text(&i.job_id),
                    text(&i.message),
                    time(i.at),
                ],
            );
        }
        for id in &step.incidents_close {
            self.push(Table::IncidentCloses, vec![text(id)]);
        }
        // A step's history entries travel in the row of the last event it applied.
        let last = step.events.len().saturating_sub(1);
        for (n, (seq, at, event)) in step.events.iter().enumerate() {
            let history = step.history.as_ref().filter(|_| n == last);
            self.push(
                Table::Events,
                vec![
                    text(instance),
                    Cell::Int(*seq),
                    time(*at),
                    text(event),
                    Cell::OptInt(history.map(|h| h.seq)),
                    Cell::OptText(history.map(|h| Cow::Borrowed(h.prev_hash.as_str()))),
                    Cell::OptText(history.map(|h| Cow::Borrowed(h.entries.as_str()))),
                    Cell::OptText(history.and_then(|h| h.people.as_deref()).map(Cow::Borrowed)),
                ],
            );
        }
        for p in &step.pending {
            self.push(Table::Pending, vec![text(&p.id), text(&p.instance_id), text(&p.event)]);
        }
        // Checked (and on PostgreSQL locked) before the step was accepted.
        if let Some(id) = &step.consume_pending {
            self.push(Table::PendingConsumed, vec![text(id)]);
        }
        for n in &step.notifications {
            self.push(
                Table::Notifications,
                vec![
                    text(&n.id),
                    opt_text(&n.instance_id),
                    text(&n.kind),
                    text(&n.subject),
                    text(&n.payload),
                    time(n.created_at),
                ],
            );
        }
        for child in &step.started {
            self.add(child);
        }
    }
}

/// `rows` as JSON objects keyed by `columns`.
pub(super) fn json_records(columns: &[&str], rows: &[Vec<Cell<'_>>]) -> Vec<Value> {
    rows.iter()
        .map(|row| {
            let record: Map<String, Value> =
                columns.iter().zip(row).map(|(column, cell)| ((*column).to_owned(), cell.to_json())).collect();
            Value::Object(record)
        })
        .collect()
}
