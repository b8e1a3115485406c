//! Turns accepted transitions into the rows one [`StepWrite`] changes.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::effect::{Effect, HistoryEvent};
use crate::event::Event;
use crate::ids::TimerId;
use crate::instance::{Instance, Status, TimerWait};
use crate::step::Transition;
use crate::store::{
    GENESIS_HASH, HistoryRow, HistoryStep, IncidentRow, InstanceRow, InstanceState, JobChange, JobRow, JobState,
    NotificationRow, PendingRow, StepWrite, SubscriptionRow, TaskChange, TaskRow, TaskState, TimerRow, chain_hash, ts,
};

/// Where the instance stood before the step.
pub(crate) struct Before<'a> {
    pub instance: &'a Instance,
    pub expected_version: Option<i64>,
    pub parent: Option<(String, String)>,
    pub history_seq: i64,
    pub history_hash: String,
}

/// A child instance to create, resolved by the caller (the version it runs).
pub(crate) struct NewChild {
    pub id: String,
    pub process: String,
    pub version: u32,
    pub inputs: serde_json::Value,
}

/// Builds the write for `steps` applied in order to `before.instance`.
pub(crate) fn plan(
    before: &Before<'_>,
    steps: &[(Event, Transition)],
    children: Vec<NewChild>,
    now: DateTime<Utc>,
    mut next_id: impl FnMut() -> String,
) -> Result<StepWrite, serde_json::Error> {
    let id = before.instance.id().as_str().to_string();
    let Some((_, last)) = steps.last() else {
        return Err(serde::de::Error::custom("a step write needs at least one transition"));
    };
    let after = &last.instance;
    let mut jobs: BTreeMap<String, JobChange> = BTreeMap::new();
    let mut tasks: BTreeMap<String, TaskChange> = BTreeMap::new();
    let mut subscriptions: BTreeMap<String, SubscriptionRow> = BTreeMap::new();
    let mut incidents_insert = Vec::new();
    let mut incidents_close = Vec::new();
    let mut history = Vec::new();
    let mut events = Vec::new();
    let mut pending = Vec::new();
    let mut cancelled_jobs = BTreeSet::new();
    let mut cancelled_tasks = BTreeSet::new();
    let mut notices: Vec<NotificationRow> = Vec::new();
    let mut completed_by: BTreeMap<String, String> = BTreeMap::new();
    let mut seq = before.history_seq;
    let mut hash = before.history_hash.clone();
    let at = ts(now);

    for (event, transition) in steps {
        if let Event::TaskCompleted { task, by, .. } = event {
            completed_by.insert(task.0.clone(), by.clone());
        }
        events.push((
            i64::try_from(transition.instance.version()).unwrap_or(i64::MAX),
            now,
            serde_json::to_string(event)?,
        ));
        let step_no = transition.instance.version();
        let process = transition.instance.process();
        for effect in &transition.effects {
            if let Some(notice) = notice_of(effect, &id, process, &transition.instance, step_no, now)? {
                notices.push(notice);
            }
            match effect {
                Effect::CreateJob { job, node, job_type, input, retry, idempotency_key, .. } => {
                    jobs.insert(
                        job.0.clone(),
                        JobChange::Insert(JobRow {
                            id: job.0.clone(),
                            instance_id: id.clone(),
                            node: node.clone(),
                            job_type: job_type.clone(),
                            input: input.to_string(),
                            idempotency_key: idempotency_key.clone(),
                            retries: i64::from(retry.attempts),
                            attempt: 1,
                            state: JobState::Ready,
                            due_at: now,
                        }),
                    );
                }
                Effect::RetryJob { job, at, attempt } => {
                    set_job(&mut jobs, &job.0, JobState::Ready, Some(*at), Some(i64::from(*attempt)));
                }
                Effect::CancelJob { job } => {
                    cancelled_jobs.insert(job.0.clone());
                    set_job(&mut jobs, &job.0, JobState::Cancelled, None, None);
                }
                Effect::CreateTask { task, node, title, roles, assignee, form, due_at } => {
                    tasks.insert(
                        task.0.clone(),
                        TaskChange::Insert(TaskRow {
                            id: task.0.clone(),
                            instance_id: id.clone(),
                            node: node.clone(),
                            title: title.clone(),
                            roles: serde_json::to_string(roles)?,
                            assignee: assignee.clone(),
                            form: serde_json::to_string(form)?,
                            due_at: *due_at,
                            created_at: now,
                        }),
                    );
                }
                Effect::CancelTask { task } => {
                    cancelled_tasks.insert(task.0.clone());
                }
                Effect::AssignTask { task, to } => match tasks.get_mut(&task.0) {
                    Some(TaskChange::Insert(row)) => row.assignee = Some(to.clone()),
                    _ => {
                        tasks.insert(task.0.clone(), TaskChange::Assign { id: task.0.clone(), assignee: to.clone() });
                    }
                },
                // Raised as a notification (`notice_of`), like a task offered or handed over.
                Effect::Remind { .. } => {}
                // The timer row follows the instance's earliest timer (`earliest_timer_change`).
                Effect::ScheduleTimer { .. } | Effect::CancelTimer { .. } | Effect::Unsubscribe { .. } => {}
                Effect::Subscribe { subscription, node, message, correlation_key } => {
                    subscriptions.insert(
                        subscription.0.clone(),
                        SubscriptionRow {
                            id: subscription.0.clone(),
                            instance_id: id.clone(),
                            node: node.clone(),
                            message_name: message.clone(),
                            correlation_key: correlation_key.clone(),
                        },
                    );
                }
                Effect::StartChild { .. } => {}
                Effect::CancelChild { call } => {
                    pending.push(PendingRow {
                        id: next_id(),
                        instance_id: call.0.clone(),
                        event: serde_json::to_string(&Event::Cancel { by: format!("parent {id}") })?,
                    });
                }
                Effect::RaiseIncident { incident, node, job, message } => {
                    incidents_insert.push(IncidentRow {
                        id: incident.0.clone(),
                        instance_id: id.clone(),
                        node: node.clone(),
                        job_id: job.as_ref().map(|j| j.0.clone()),
                        message: message.clone(),
                        at: now,
                    });
                    if let Some(job) = job {
                        set_job(&mut jobs, &job.0, JobState::Incident, None, None);
                    }
                }
                Effect::CloseIncident { incident } => incidents_close.push(incident.0.clone()),
                Effect::Completed { .. } | Effect::Failed { .. } | Effect::Cancelled { .. } => {}
                Effect::History(event) => {
                    seq += 1;
                    let row = history_row(&id, seq, &at, event, &hash)?;
                    hash = row.hash.clone();
                    history.push(row);
                }
            }
        }
    }

    // Whatever the instance no longer has open is closed, whichever effect closed it.
    let old = before.instance;
    let job_ids: BTreeSet<String> = old.jobs().keys().map(|j| j.0.clone()).chain(jobs.keys().cloned()).collect();
    for job in job_ids {
        if !after.jobs().keys().any(|j| j.0 == job) && !cancelled_jobs.contains(&job) {
            set_job(&mut jobs, &job, JobState::Done, None, None);
        }
    }
    let task_ids: BTreeSet<String> = old.tasks().keys().map(|t| t.0.clone()).chain(tasks.keys().cloned()).collect();
    for task in task_ids {
        if after.tasks().keys().any(|t| t.0 == task) {
            continue;
        }
        let close = if cancelled_tasks.contains(&task) {
            TaskChange::Close { id: task.clone(), state: TaskState::Cancelled, completed_by: None }
        } else {
            TaskChange::Close {
                id: task.clone(),
                state: TaskState::Completed,
                completed_by: completed_by.get(&task).cloned(),
            }
        };
        // A task opened and closed in the same step never reaches the table.
        if matches!(tasks.get(&task), Some(TaskChange::Insert(_))) {
            tasks.remove(&task);
        } else {
            tasks.insert(task, close);
        }
    }
    let (timers_upsert, timers_delete) = earliest_timer_change(&id, old, after);
    let mut subscriptions_delete = Vec::new();
    let sub_ids: BTreeSet<String> =
        old.subscriptions().keys().map(|s| s.0.clone()).chain(subscriptions.keys().cloned()).collect();
    for sub in sub_ids {
        if !after.subscriptions().keys().any(|s| s.0 == sub) {
            subscriptions.remove(&sub);
            if old.subscriptions().keys().any(|s| s.0 == sub) {
                subscriptions_delete.push(sub);
            }
        }
    }

    // A child's end is owed to its parent.
    if let Some((parent, call)) = &before.parent {
        let owed = match after.status() {
            Status::Completed { outcome } if !old.status().is_final() => Some(Event::ChildCompleted {
                call: call.as_str().into(),
                outcome: outcome.clone(),
                variables: after.variables().clone(),
            }),
            Status::Failed { code } if !old.status().is_final() => {
                Some(Event::ChildFailed { call: call.as_str().into(), code: code.clone() })
            }
            Status::Cancelled { .. } if !old.status().is_final() => {
                Some(Event::ChildFailed { call: call.as_str().into(), code: "cancelled".into() })
            }
            _ => None,
        };
        if let Some(event) = owed {
            pending.push(PendingRow {
                id: next_id(),
                instance_id: parent.clone(),
                event: serde_json::to_string(&event)?,
            });
        }
    }

    let mut child_rows = Vec::new();
    for child in children {
        let state = Instance::new(child.id.as_str(), child.process.as_str(), child.version);
        child_rows.push(InstanceRow {
            id: child.id.clone(),
            process_key: child.process.clone(),
            process_version: child.version,
            status: InstanceState::of(state.status()),
            business_key: after.business_key().map(str::to_string),
            parent_id: Some(id.clone()),
            parent_call: Some(child.id.clone()),
            state: state.to_json()?,
            version: 0,
            history_seq: 0,
            history_hash: GENESIS_HASH.into(),
            at: now,
        });
        pending.push(PendingRow {
            id: next_id(),
            instance_id: child.id,
            event: serde_json::to_string(&Event::Start {
                variables: child.inputs,
                // A called process belongs to its caller's case: its business key and the person
                // who started it.
                business_key: after.business_key().map(str::to_string),
                start: None,
                started_by: after.started_by().map(str::to_string),
                on_behalf_of: None,
            })?,
        });
    }

    Ok(StepWrite {
        instance: InstanceRow {
            id: id.clone(),
            process_key: after.process().to_string(),
            process_version: after.process_version(),
            status: InstanceState::of(after.status()),
            business_key: after.business_key().map(str::to_string),
            parent_id: before.parent.as_ref().map(|p| p.0.clone()),
            parent_call: before.parent.as_ref().map(|p| p.1.clone()),
            state: after.to_json()?,
            version: i64::try_from(after.version()).unwrap_or(i64::MAX),
            history_seq: seq,
            history_hash: hash,
            at: now,
        },
        expected_version: before.expected_version,
        guards: Vec::new(),
        consume_messages: Vec::new(),
        record_message: None,
        consume_pending: None,
        jobs: jobs.into_values().collect(),
        tasks: tasks.into_values().collect(),
        timers_upsert,
        timers_delete,
        subscriptions_insert: subscriptions.into_values().collect(),
        subscriptions_delete,
        incidents_insert,
        incidents_close,
        history: HistoryStep::of(&history),
        events,
        children: child_rows,
        started: Vec::new(),
        pending,
        // A task offered and withdrawn within one write was never open to anyone.
        notifications: notices.into_iter().filter(|n| !cancelled_tasks.contains(&n.subject)).collect(),
    })
}

/// The timer row change of a step: an instance keeps one timer row, for its earliest timer (in
/// [`firing_order`]). Firing it moves the row to the next one, so an
/// approval's due date, reminders and escalation cost one row set and one dropped, not one each.
fn earliest_timer_change(id: &str, before: &Instance, after: &Instance) -> (Vec<TimerRow>, Vec<String>) {
    let (was, is) = (earliest_timer(before), earliest_timer(after));
    if let (Some(was), Some(is)) = (was, is)
        && was.0 == is.0
        && was.1.at == is.1.at
    {
        return (Vec::new(), Vec::new());
    }
    let upsert: Vec<TimerRow> = is
        .map(|(timer, wait)| TimerRow {
            id: timer.0.clone(),
            instance_id: id.to_string(),
            node: wait.node.clone(),
            due_at: wait.at,
        })
        .into_iter()
        .collect();
    let delete = was.filter(|(timer, _)| is.is_none_or(|(now, _)| now != *timer)).map(|(timer, _)| timer.0.clone());
    (upsert, delete.into_iter().collect())
}

fn earliest_timer(instance: &Instance) -> Option<(&TimerId, &TimerWait)> {
    instance.timers().iter().min_by_key(|(timer, wait)| firing_order(timer, wait))
}

/// The order an instance's timers fire in: by due time, then by the sequence number their ids
/// end in (a shorter id is an earlier number); the stores' `in_firing_order` orders rows alike.
pub(crate) fn firing_order<'a>(timer: &'a TimerId, wait: &TimerWait) -> (DateTime<Utc>, usize, &'a str) {
    (wait.at, timer.0.len(), timer.0.as_str())
}

/// The notification an effect raises for the people concerned, if any: a task offered, handed
/// to someone, or reminded of (before and after its due time).
fn notice_of(
    effect: &Effect,
    instance_id: &str,
    process: &str,
    instance: &Instance,
    step_no: u64,
    now: DateTime<Utc>,
) -> Result<Option<NotificationRow>, serde_json::Error> {
    let (task, kind, body) = match effect {
        Effect::CreateTask { task, node, title, roles, assignee, due_at, .. } => (
            task,
            "task_created",
            serde_json::json!({"node": node, "title": title, "roles": roles, "assignee": assignee,
                               "due_at": due_at.map(ts)}),
        ),
        Effect::AssignTask { task, to } => (task, "task_assigned", serde_json::json!({"assignee": to})),
        Effect::Remind { task, overdue } => {
            let node = instance.tasks().get(task).map(|t| t.node.clone());
            let kind = if *overdue { "task_overdue" } else { "task_reminder" };
            (task, kind, serde_json::json!({"node": node}))
        }
        _ => return Ok(None),
    };
    let id = format!("{task}.{kind}.{step_no}");
    let mut payload = serde_json::json!({"id": id, "kind": kind, "task": task, "instance": instance_id,
                                         "process": process, "business_key": instance.business_key(),
                                         "at": ts(now)});
    if let (Some(target), serde_json::Value::Object(extra)) = (payload.as_object_mut(), body) {
        target.extend(extra);
    }
    Ok(Some(NotificationRow {
        id,
        instance_id: Some(instance_id.to_string()),
        kind: kind.to_string(),
        subject: task.to_string(),
        payload: serde_json::to_string(&payload)?,
        created_at: now,
    }))
}

fn set_job(
    jobs: &mut BTreeMap<String, JobChange>,
    id: &str,
    state: JobState,
    due: Option<DateTime<Utc>>,
    attempt_no: Option<i64>,
) {
    match jobs.get_mut(id) {
        Some(JobChange::Insert(row)) => {
            row.state = state;
            if let Some(due) = due {
                row.due_at = due;
            }
            if let Some(a) = attempt_no {
                row.attempt = a;
            }
        }
        Some(JobChange::Update { state: s, due_at, attempt, .. }) => {
            *s = state;
            if due.is_some() {
                *due_at = due;
            }
            if attempt_no.is_some() {
                *attempt = attempt_no;
            }
        }
        None => {
            jobs.insert(
                id.to_string(),
                JobChange::Update { id: id.to_string(), state, due_at: due, attempt: attempt_no },
            );
        }
    }
}

fn history_row(
    instance: &str,
    seq: i64,
    at: &str,
    event: &HistoryEvent,
    prev: &str,
) -> Result<HistoryRow, serde_json::Error> {
    let kind = match serde_json::to_value(event.kind)? {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    };
    let mut row = HistoryRow {
        instance_id: instance.to_string(),
        seq,
        at: at.to_string(),
        kind,
        node: event.node.clone(),
        who: event.who.clone(),
        on_behalf_of: event.on_behalf_of.clone(),
        detail: serde_json::to_string(event)?,
        prev_hash: prev.to_string(),
        hash: String::new(),
    };
    row.hash = chain_hash(prev, &row);
    Ok(row)
}
