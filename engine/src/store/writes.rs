//! The writes of a batch that both backends make alike, written once over [`Tx`] (a connection
//! inside the batch's transaction): the checks a step makes before it changes anything, what it
//! records after, and every write that is not a step (deployments, claims, leases, substitutes,
//! schedules, buffered messages, owed events).
//!
//! What keeps several PostgreSQL nodes apart is part of the statements: the rows a check reads
//! are locked until the commit (`FOR UPDATE`), and a check whose subject has no row yet (a
//! message id, a correlation, a process key) takes a transaction-scoped advisory lock
//! ([`Tx::exclusive`]). On SQLite both are nothing: its writes are serialised whole.

use std::collections::{HashMap, HashSet};
use std::future::Future;

use super::batch::StepRows;
use super::rows::{self, Columns, NOTIFICATION_COLUMNS};
use super::sql::{Arg, Dialect, Each};
use super::{DeliveryOutcome, Error, Guard, InstanceRow, MessageRow, StepWrite, Write, WriteError, WriteOutcome, ts};

/// A connection inside a batch's transaction.
pub(super) trait Tx: Send {
    /// A result row.
    type Row: Columns + Send;
    /// The dialect of its SQL.
    fn dialect(&self) -> Dialect;
    /// The rows of `sql` with `args` bound to `$1`, `$2`...
    fn fetch(&mut self, sql: &str, args: Vec<Arg<'_>>) -> impl Future<Output = Result<Vec<Self::Row>, Error>> + Send;
    /// Runs `sql`; how many rows it changed.
    fn execute(&mut self, sql: &str, args: Vec<Arg<'_>>) -> impl Future<Output = Result<u64, Error>> + Send;
    /// Until the commit, no other transaction passes this point for `name`.
    fn exclusive(&mut self, name: &str) -> impl Future<Output = Result<(), Error>> + Send;
    /// Writes instance rows: a new one (no expected version) unless its id is taken, another
    /// only if it is still at the expected version. The ids written.
    fn write_instances(
        &mut self,
        rows: Vec<(&InstanceRow, Option<i64>)>,
    ) -> impl Future<Output = Result<HashSet<String>, Error>> + Send;
}

/// The lock that makes buffering a message and subscribing to it exclude each other.
pub(super) fn correlation_lock(name: &str, key: &str) -> String {
    format!("cloverleaf.message\u{1f}{name}\u{1f}{key}")
}

/// The lock that makes recording a message id atomic with checking it.
fn message_id_lock(id: &str) -> String {
    format!("cloverleaf.message-id\u{1f}{id}")
}

/// The lock that makes concurrent deploys of one process key agree on its version numbers.
fn deploy_lock(key: &str) -> String {
    format!("cloverleaf.deploy\u{1f}{key}")
}

/// `FOR UPDATE` where rows read by a check must stay as read until the commit.
fn row_lock(tx: &impl Tx) -> &'static str {
    match tx.dialect() {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE",
    }
}

/// Rows whose `id` is one of `$1`.
const ID_IN: Each = Each { sqlite: "id IN (SELECT value FROM json_each($1))", postgres: "id = ANY($1)" };

/// Messages whose `seq` is one of `$1`.
const SEQ_IN: Each = Each { sqlite: "seq IN (SELECT value FROM json_each($1))", postgres: "seq = ANY($1)" };

/// Messages whose `seq` is none of `$4`.
const SEQ_NOT_IN_4: Each =
    Each { sqlite: "seq NOT IN (SELECT value FROM json_each($4))", postgres: "NOT (seq = ANY($4))" };

fn text(value: &str) -> Arg<'_> {
    Arg::Text(Some(value))
}

async fn exists(tx: &mut impl Tx, sql: &str, args: Vec<Arg<'_>>) -> Result<bool, Error> {
    Ok(!tx.fetch(sql, args).await?.is_empty())
}

/// Whether a message with this id was received before.
pub(super) async fn message_seen(tx: &mut impl Tx, message_id: &str) -> Result<bool, Error> {
    exists(tx, "SELECT 1 AS one FROM messages WHERE message_id = $1", vec![text(message_id)]).await
}

async fn insert_message(tx: &mut impl Tx, message: &MessageRow, state: &str) -> Result<(), Error> {
    let (received, expires) = (ts(message.received_at), ts(message.expires_at));
    tx.execute(
        "INSERT INTO messages (message_id, message_name, correlation_key, payload, state, instance_id, received_at, \
         expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        vec![
            text(&message.message_id),
            text(&message.name),
            text(&message.correlation_key),
            text(&message.payload),
            text(state),
            Arg::Text(message.instance_id.as_deref()),
            text(&received),
            text(&expires),
        ],
    )
    .await?;
    Ok(())
}

async fn check_guard(tx: &mut impl Tx, guard: &Guard) -> Result<Option<WriteError>, Error> {
    Ok(match guard {
        Guard::JobLocked { job, epoch } => {
            let sql = format!(
                "SELECT 1 AS one FROM jobs WHERE id = $1 AND state = 'locked' AND lock_epoch = $2{}",
                row_lock(tx)
            );
            let locked = exists(tx, &sql, vec![text(job), Arg::Int(*epoch)]).await?;
            (!locked).then(|| WriteError::StaleEpoch { job: job.clone(), epoch: *epoch })
        }
        Guard::TaskFree { task, user } => {
            let sql = format!(
                "SELECT 1 AS one FROM tasks WHERE id = $1 AND state = 'open' \
                 AND (claimed_by IS NULL OR claimed_by = $2){}",
                row_lock(tx)
            );
            let free = exists(tx, &sql, vec![text(task), text(user)]).await?;
            (!free).then(|| WriteError::TaskTaken { task: task.clone() })
        }
        Guard::NoBufferedMessage { name, key, now, except } => {
            // Held until the commit: a message buffered on another node meanwhile waits for the
            // subscription this step opens, sees it, and is delivered instead.
            tx.exclusive(&correlation_lock(name, key)).await?;
            let now = ts(*now);
            let sql = format!(
                "SELECT 1 AS one FROM messages WHERE message_name = $1 AND correlation_key = $2 \
                 AND state = 'buffered' AND expires_at > $3 AND {} LIMIT 1",
                SEQ_NOT_IN_4.of(tx.dialect())
            );
            let waiting = exists(tx, &sql, vec![text(name), text(key), text(&now), Arg::Ints(except.clone())]).await?;
            waiting.then_some(WriteError::BufferedMessageWaiting)
        }
    })
}

/// Checks what a step with rarer checks needs (claims, a message it records or consumes, an
/// owed event it applies) before anything is changed; the refusal, if one fails.
async fn check_step(tx: &mut impl Tx, step: &StepWrite) -> Result<Option<WriteError>, Error> {
    // The message id is locked before the correlation, as buffering does, so the two never wait
    // for each other in opposite orders. A message seen before is a duplicate whatever else the
    // step would be refused for.
    if let Some(message) = &step.record_message {
        tx.exclusive(&message_id_lock(&message.message_id)).await?;
        if message_seen(tx, &message.message_id).await? {
            return Ok(Some(WriteError::DuplicateMessage(message.message_id.clone())));
        }
    }
    for guard in &step.guards {
        if let Some(refusal) = check_guard(tx, guard).await? {
            return Ok(Some(refusal));
        }
    }
    if !step.consume_messages.is_empty() {
        let mut wanted = step.consume_messages.clone();
        wanted.sort_unstable();
        wanted.dedup();
        let sql = format!(
            "SELECT seq FROM messages WHERE {} AND state = 'buffered' ORDER BY seq{}",
            SEQ_IN.of(tx.dialect()),
            row_lock(tx)
        );
        let count = wanted.len();
        if tx.fetch(&sql, vec![Arg::Ints(wanted)]).await?.len() != count {
            return Ok(Some(WriteError::Conflict(step.instance.id.clone())));
        }
    }
    if let Some(pending) = &step.consume_pending {
        let sql = format!("SELECT 1 AS one FROM pending_events WHERE id = $1{}", row_lock(tx));
        if !exists(tx, &sql, vec![text(pending)]).await? {
            return Ok(Some(WriteError::PendingGone));
        }
    }
    Ok(None)
}

/// Records what a checked step consumed and received, once its instance row is written.
async fn record_step(tx: &mut impl Tx, step: &StepWrite) -> Result<(), Error> {
    if let Some(message) = &step.record_message {
        insert_message(tx, message, "delivered").await?;
    }
    if !step.consume_messages.is_empty() {
        let sql =
            format!("UPDATE messages SET state = 'delivered', instance_id = $2 WHERE {}", SEQ_IN.of(tx.dialect()));
        tx.execute(&sql, vec![Arg::Ints(step.consume_messages.clone()), text(&step.instance.id)]).await?;
    }
    // The owed event it consumed goes with the batch's rows (`StepRows::add`).
    Ok(())
}

/// Schedules of a process other than the nodes `$2`.
const OTHER_SCHEDULES: Each = Each {
    sqlite: "DELETE FROM schedules WHERE process_key = $1 AND node NOT IN (SELECT value FROM json_each($2))",
    postgres: "DELETE FROM schedules WHERE process_key = $1 AND NOT (node = ANY($2))",
};

/// Applies a write that is not a step (steps and fetches are applied together, elsewhere).
pub(super) async fn apply_other(
    tx: &mut impl Tx,
    write: &Write,
    acc: &mut StepRows<'_>,
) -> Result<Result<WriteOutcome, WriteError>, Error> {
    match write {
        Write::Step(_) => Ok(Ok(WriteOutcome::Done)),
        Write::FetchJobs { .. } => Ok(Ok(WriteOutcome::Jobs(Vec::new()))),
        Write::Deploy(d) => {
            tx.exclusive(&deploy_lock(&d.key)).await?;
            let existing = tx
                .fetch(
                    "SELECT version FROM deployments WHERE process_key = $1 AND hash = $2",
                    vec![text(&d.key), text(&d.hash)],
                )
                .await?;
            if let Some(row) = existing.first() {
                return Ok(Ok(WriteOutcome::Deployed { version: row.version("version")?, created: false }));
            }
            let latest = tx
                .fetch(
                    "SELECT COALESCE(MAX(version), 0) AS v FROM deployments WHERE process_key = $1",
                    vec![text(&d.key)],
                )
                .await?;
            let latest = match latest.first() {
                Some(row) => row.version("v")?,
                None => 0,
            };
            let version = latest.saturating_add(1);
            let at = ts(d.at);
            tx.execute(
                "INSERT INTO deployments (process_key, version, hash, source, compiled, deployed_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                vec![
                    text(&d.key),
                    Arg::Int(i64::from(version)),
                    text(&d.hash),
                    text(&d.source),
                    text(&d.compiled),
                    text(&at),
                ],
            )
            .await?;
            acc.wake_deployments = true;
            Ok(Ok(WriteOutcome::Deployed { version, created: true }))
        }
        Write::ClaimTask { task, user, by } => {
            let changed = match user {
                Some(user) => {
                    tx.execute(
                        "UPDATE tasks SET claimed_by = $2 WHERE id = $1 AND state = 'open' \
                         AND (claimed_by IS NULL OR claimed_by = $2)",
                        vec![text(task), text(user)],
                    )
                    .await?
                }
                None => {
                    tx.execute(
                        "UPDATE tasks SET claimed_by = NULL WHERE id = $1 AND state = 'open' AND claimed_by = $2",
                        vec![text(task), text(by)],
                    )
                    .await?
                }
            };
            Ok(Ok(WriteOutcome::Claimed(changed > 0)))
        }
        Write::ExtendLock { job, epoch, now, until } => {
            let (now, until) = (ts(*now), ts(*until));
            let changed = tx
                .execute(
                    "UPDATE jobs SET lock_expires_at = $4 WHERE id = $1 AND state = 'locked' AND lock_epoch = $2 \
                     AND lock_expires_at > $3",
                    vec![text(job), Arg::Int(*epoch), text(&now), text(&until)],
                )
                .await?;
            Ok(Ok(WriteOutcome::Extended(changed > 0)))
        }
        Write::SetSubstitute { user, substitute, from, until } => {
            match substitute {
                Some(substitute) => {
                    let (from, until) = (ts(*from), ts(*until));
                    tx.execute(
                        "INSERT INTO substitutes (user_name, substitute, from_at, until_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (user_name) DO UPDATE SET substitute = $2, from_at = $3, until_at = $4",
                        vec![text(user), text(substitute), text(&from), text(&until)],
                    )
                    .await?;
                }
                None => {
                    tx.execute("DELETE FROM substitutes WHERE user_name = $1", vec![text(user)]).await?;
                }
            }
            Ok(Ok(WriteOutcome::Done))
        }
        Write::EndSession { session, until, now } => {
            tx.execute("DELETE FROM ended_sessions WHERE until_at < $1", vec![text(&ts(*now))]).await?;
            tx.execute(
                "INSERT INTO ended_sessions (session, until_at) VALUES ($1, $2) ON CONFLICT (session) DO NOTHING",
                vec![text(session), text(&ts(*until))],
            )
            .await?;
            Ok(Ok(WriteOutcome::Done))
        }
        Write::SetSchedules { process, nodes } => {
            let keep: Vec<String> = nodes.iter().map(|(n, _, _)| n.clone()).collect();
            tx.execute(OTHER_SCHEDULES.of(tx.dialect()), vec![text(process), Arg::Texts(keep)]).await?;
            for (node, schedule, next) in nodes {
                let next = ts(*next);
                tx.execute(
                    "INSERT INTO schedules (process_key, node, schedule, next_fire_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (process_key, node) DO UPDATE SET schedule = excluded.schedule, \
                     next_fire_at = excluded.next_fire_at WHERE schedules.schedule <> excluded.schedule",
                    vec![text(process), text(node), text(schedule), text(&next)],
                )
                .await?;
            }
            acc.wake_timers |= !nodes.is_empty();
            Ok(Ok(WriteOutcome::Done))
        }
        Write::AdvanceSchedule { process, node, from, to } => {
            let (from, to) = (ts(*from), ts(*to));
            tx.execute(
                "UPDATE schedules SET next_fire_at = $4 WHERE process_key = $1 AND node = $2 AND next_fire_at = $3",
                vec![text(process), text(node), text(&from), text(&to)],
            )
            .await?;
            Ok(Ok(WriteOutcome::Done))
        }
        Write::BufferMessage(message) => {
            tx.exclusive(&message_id_lock(&message.message_id)).await?;
            if message_seen(tx, &message.message_id).await? {
                return Ok(Err(WriteError::DuplicateMessage(message.message_id.clone())));
            }
            tx.exclusive(&correlation_lock(&message.name, &message.correlation_key)).await?;
            let waiting = exists(
                tx,
                "SELECT 1 AS one FROM subscriptions WHERE message_name = $1 AND correlation_key = $2 LIMIT 1",
                vec![text(&message.name), text(&message.correlation_key)],
            )
            .await?;
            if waiting {
                return Ok(Err(WriteError::SubscriptionExists));
            }
            insert_message(tx, message, "buffered").await?;
            Ok(Ok(WriteOutcome::Done))
        }
        Write::TakeNotifications { now, until, max } => {
            let (now, until) = (ts(*now), ts(*until));
            // Another node's take holds its rows until its commit: pass them over.
            let skip = match tx.dialect() {
                Dialect::Sqlite => "",
                Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            };
            let sql = format!(
                "{NOTIFICATION_COLUMNS} WHERE state = 'pending' AND next_attempt_at <= $1 \
                 ORDER BY next_attempt_at, id LIMIT $2{skip}"
            );
            let taken = tx
                .fetch(&sql, vec![text(&now), Arg::Int(*max)])
                .await?
                .iter()
                .map(rows::notification)
                .collect::<Result<Vec<_>, _>>()?;
            if !taken.is_empty() {
                let ids: Vec<String> = taken.iter().map(|n| n.row.id.clone()).collect();
                let sql = format!("UPDATE notifications SET next_attempt_at = $2 WHERE {}", ID_IN.of(tx.dialect()));
                tx.execute(&sql, vec![Arg::Texts(ids), text(&until)]).await?;
            }
            Ok(Ok(WriteOutcome::Notifications(taken)))
        }
        Write::NotificationAttempt { id, at, outcome } => {
            let at = ts(*at);
            match outcome {
                DeliveryOutcome::Delivered => {
                    tx.execute(
                        "UPDATE notifications SET state = 'delivered', delivered_at = $2, attempts = attempts + 1, \
                         last_error = NULL WHERE id = $1 AND state = 'pending'",
                        vec![text(id), text(&at)],
                    )
                    .await?;
                }
                DeliveryOutcome::Retry { error, at: retry_at } => {
                    let retry_at = ts(*retry_at);
                    tx.execute(
                        "UPDATE notifications SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3 \
                         WHERE id = $1 AND state = 'pending'",
                        vec![text(id), text(error), text(&retry_at)],
                    )
                    .await?;
                }
                DeliveryOutcome::Dead { error } => {
                    tx.execute(
                        "UPDATE notifications SET state = 'dead', attempts = attempts + 1, last_error = $2 \
                         WHERE id = $1 AND state = 'pending'",
                        vec![text(id), text(error)],
                    )
                    .await?;
                }
            }
            Ok(Ok(WriteOutcome::Done))
        }
        Write::Notify(rows) => {
            for n in rows {
                let created = ts(n.created_at);
                tx.execute(
                    "INSERT INTO notifications (id, instance_id, kind, subject, payload, created_at, next_attempt_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (id) DO NOTHING",
                    vec![
                        text(&n.id),
                        Arg::Text(n.instance_id.as_deref()),
                        text(&n.kind),
                        text(&n.subject),
                        text(&n.payload),
                        text(&created),
                    ],
                )
                .await?;
            }
            Ok(Ok(WriteOutcome::Done))
        }
        Write::RetryNotification { id, now } => {
            let now = ts(*now);
            let changed = tx
                .execute(
                    "UPDATE notifications SET state = 'pending', attempts = 0, next_attempt_at = $2 \
                     WHERE id = $1 AND state = 'dead'",
                    vec![text(id), text(&now)],
                )
                .await?;
            Ok(Ok(WriteOutcome::Retried(changed > 0)))
        }
        Write::DropPending(id) => {
            let dropped = tx.execute("DELETE FROM pending_events WHERE id = $1", vec![text(id)]).await?;
            Ok(Ok(WriteOutcome::Dropped(dropped > 0)))
        }
    }
}

/// The outcome of each simple step once the bulk statements ran: refused by a job-epoch guard,
/// written (its rows join the batch's), or beaten to its instance by another write (a conflict).
pub(super) fn simple_outcomes<'a>(
    steps: &[(usize, &'a StepWrite)],
    mut refused: HashMap<usize, WriteError>,
    written: impl Fn(usize, &StepWrite) -> bool,
    acc: &mut StepRows<'a>,
) -> Vec<(usize, Result<WriteOutcome, WriteError>)> {
    let mut out = Vec::with_capacity(steps.len());
    for (i, step) in steps {
        if let Some(refusal) = refused.remove(i) {
            out.push((*i, Err(refusal)));
        } else if written(*i, step) {
            acc.add(step);
            out.push((*i, Ok(WriteOutcome::Done)));
        } else {
            out.push((*i, Err(WriteError::Conflict(step.instance.id.clone()))));
        }
    }
    out
}

/// Checks and applies a step with rarer checks (a claim, messages, an owed event, children).
/// On PostgreSQL its instance, if it existed, is locked at its expected version already.
pub(super) async fn apply_step<'a>(
    tx: &mut impl Tx,
    step: &'a StepWrite,
    acc: &mut StepRows<'a>,
) -> Result<Result<WriteOutcome, WriteError>, Error> {
    let id = &step.instance.id;
    // Checks first: nothing is changed until every one holds.
    for checked in step.with_started() {
        if let Some(refusal) = check_step(tx, checked).await? {
            return Ok(Err(refusal));
        }
    }
    if !tx.write_instances(vec![(&step.instance, step.expected_version)]).await?.contains(id) {
        return Ok(Err(WriteError::Conflict(id.clone())));
    }
    // Every check held: apply.
    record_step(tx, step).await?;
    let children: Vec<&InstanceRow> = step.new_children().collect();
    if !children.is_empty() {
        let written = tx.write_instances(children.iter().map(|child| (*child, None)).collect()).await?;
        if let Some(child) = children.iter().find(|c| !written.contains(&c.id)) {
            return Err(Error::Corrupt(format!("child instance `{}` exists already", child.id)));
        }
    }
    for child in &step.started {
        record_step(tx, child).await?;
    }
    acc.add(step);
    Ok(Ok(WriteOutcome::Done))
}
