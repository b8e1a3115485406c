//! Routing the core's effects in memory: jobs to the queue, tasks to the inbox, timers, subscriptions
//! and child calls to their tables, and events owed to other instances applied in order.

use std::collections::BTreeMap;

use crate::effect::{Effect, HistoryEvent, HistoryKind};
use crate::event::Event;
use crate::ids::{CallId, InstanceId, SubscriptionId};
use crate::step::step;

use super::model::{
    Error, Job, Offer, OpenIncident, Refusal, Reminder, SubscriptionEntry, Task, TimelineEntry, TimerEntry,
};

use super::{CASCADE_LIMIT, MemoryEngine};

impl MemoryEngine {
    /// Applies an API event, then everything it causes.
    pub(super) fn act(&mut self, instance: &InstanceId, event: Event) -> Result<(), Error> {
        self.apply(instance, event)?;
        self.drain()?;
        self.settle()
    }

    pub(super) fn settle(&mut self) -> Result<(), Error> {
        if self.auto_run {
            self.run_jobs()?;
        }
        Ok(())
    }

    /// Applies queued events in order until none is left.
    pub(super) fn drain(&mut self) -> Result<(), Error> {
        let mut count = 0;
        while let Some((instance, event)) = self.queue.pop_front() {
            count += 1;
            if count > CASCADE_LIMIT {
                self.queue.clear();
                return Err(Error::RunawayCascade(CASCADE_LIMIT));
            }
            let name = event.name().to_string();
            let start = matches!(event, Event::Start { .. });
            // Every queued message delivery is a buffered message offered to a new subscription.
            let offer = match &event {
                Event::MessageCorrelated { subscription: s, .. } => self.offers.remove(s).map(|o| (s.clone(), o)),
                _ => None,
            };
            let rejection = match self.apply(&instance, event) {
                Ok(()) => continue,
                Err(Error::Rejected(rejection)) => rejection,
                Err(e) => return Err(e),
            };
            if let Some((subscription, Offer { message, mut passed_over })) = offer {
                // A buffered message the new subscription cannot take goes back to its place in
                // the buffer (until it expires), and the next one is offered: as the runtime does.
                self.note(&instance, format!("buffered {} passed over: {rejection}", message.message));
                passed_over.push(message.seq);
                let at = self.buffer.iter().position(|b| b.seq > message.seq).unwrap_or(self.buffer.len());
                self.buffer.insert(at, message);
                self.offer(&instance, &subscription, passed_over);
            } else if start && self.apply(&instance, Event::StartRefused { reason: rejection.to_string() }).is_ok() {
                // A called process refusing its start fails, and its caller hears so.
                self.note(&instance, format!("start refused, so it failed: {rejection}"));
            } else {
                self.note(&instance, format!("{name} refused: {rejection}"));
                self.refusals.push(Refusal { at: self.now(), instance: instance.clone(), event: name, rejection });
            }
        }
        Ok(())
    }

    /// Steps one instance with one event at the current time and routes the effects.
    pub(super) fn apply(&mut self, id: &InstanceId, event: Event) -> Result<(), Error> {
        let now = self.now();
        let record = self.records.get_mut(id).ok_or_else(|| Error::UnknownInstance(id.clone()))?;
        let transition = step(&record.definition, &record.instance, event.clone(), now)?;
        record.instance = transition.instance;
        record.log.push((event, now));
        for effect in transition.effects {
            self.route(id, effect);
        }
        self.reconcile(id);
        Ok(())
    }

    /// Drops what the instance no longer has open: the core closes a completed job, task or
    /// subscription (and a fired timer) without a withdrawal effect.
    pub(super) fn reconcile(&mut self, id: &InstanceId) {
        let Some(record) = self.records.get(id) else { return };
        let inst = &record.instance;
        self.jobs.retain(|k, j| j.instance != *id || inst.jobs().contains_key(k));
        self.tasks.retain(|k, t| t.instance != *id || inst.tasks().contains_key(k));
        self.timers.retain(|k, t| t.instance != *id || inst.timers().contains_key(k));
        self.subscriptions.retain(|k, s| s.instance != *id || inst.subscriptions().contains_key(k));
        self.incidents.retain(|k, i| i.instance != *id || inst.incidents().contains_key(k));
    }

    /// Queues the delivery of the oldest live buffered message `subscription` (of `instance`)
    /// waits for, but those it passed over, taking it out of the buffer meanwhile.
    fn offer(&mut self, instance: &InstanceId, subscription: &SubscriptionId, passed_over: Vec<u64>) {
        let now = self.now();
        let Some(entry) = self.subscriptions.get(subscription) else { return };
        let found = self.buffer.iter().position(|b| {
            b.message == entry.message
                && b.key == entry.key
                && b.expires_at.is_none_or(|e| e > now)
                && !passed_over.contains(&b.seq)
        });
        if let Some(i) = found {
            let message = self.buffer.remove(i);
            let payload = message.payload.clone();
            self.queue.push_back((
                instance.clone(),
                Event::MessageCorrelated { subscription: subscription.clone(), payload },
            ));
            self.offers.insert(subscription.clone(), Offer { message, passed_over });
        }
    }

    pub(super) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub(super) fn note(&mut self, instance: &InstanceId, text: String) {
        self.timeline.push(TimelineEntry { at: self.now(), instance: instance.clone(), text });
    }

    pub(super) fn route(&mut self, id: &InstanceId, effect: Effect) {
        let now = self.now();
        match effect {
            Effect::CreateJob { job, node, job_type, input, idempotency_key, .. } => {
                self.note(id, format!("job {job_type} created at {node}"));
                let seq = self.next_seq();
                self.jobs.insert(
                    job.clone(),
                    Job {
                        id: job,
                        instance: id.clone(),
                        node,
                        job_type,
                        input,
                        idempotency_key,
                        attempt: 1,
                        created_at: now,
                        not_before: now,
                        incident: None,
                        seq,
                    },
                );
            }
            Effect::RetryJob { job, at, attempt } => {
                if let Some(j) = self.jobs.get_mut(&job) {
                    j.not_before = at;
                    j.attempt = attempt;
                    j.incident = None;
                    let text = format!(
                        "job {} will run again at {} (attempt {attempt})",
                        j.job_type,
                        at.format("%Y-%m-%d %H:%M:%S")
                    );
                    self.note(id, text);
                }
            }
            Effect::CancelJob { job } => {
                if let Some(j) = self.jobs.remove(&job) {
                    self.note(id, format!("job {} withdrawn", j.job_type));
                }
            }
            Effect::CreateTask { task, node, title, roles, assignee, form, due_at } => {
                let to = match &assignee {
                    Some(user) => format!("assigned to {user}"),
                    None => format!("for {}", roles.join(", ")),
                };
                self.note(id, format!("task \"{title}\" {to}"));
                let seq = self.next_seq();
                let process = self.records.get(id).map(|r| r.instance.process().to_string()).unwrap_or_default();
                self.tasks.insert(
                    task.clone(),
                    Task {
                        id: task,
                        instance: id.clone(),
                        process,
                        node,
                        title,
                        roles,
                        assignee,
                        form,
                        due_at,
                        created_at: now,
                        reminders: 0,
                        seq,
                    },
                );
            }
            Effect::CancelTask { task } => {
                if let Some(t) = self.tasks.remove(&task) {
                    self.note(id, format!("task \"{}\" withdrawn", t.title));
                }
            }
            Effect::AssignTask { task, to } => {
                if let Some(t) = self.tasks.get_mut(&task) {
                    t.assignee = Some(to.clone());
                    let text = format!("task \"{}\" delegated to {to}", t.title);
                    self.note(id, text);
                }
            }
            Effect::Remind { task, overdue } => {
                if let Some(t) = self.tasks.get_mut(&task) {
                    t.reminders += 1;
                    let (title, node) = (t.title.clone(), t.node.clone());
                    let what = if overdue { "overdue notice" } else { "reminder" };
                    self.note(id, format!("{what} for task \"{title}\""));
                    self.reminders.push(Reminder { at: now, task, node, overdue });
                }
            }
            Effect::ScheduleTimer { timer, node, at } => {
                let seq = self.next_seq();
                self.timers.insert(timer, TimerEntry { instance: id.clone(), node, at, seq });
            }
            Effect::CancelTimer { timer } => {
                self.timers.remove(&timer);
            }
            Effect::Subscribe { subscription, message, correlation_key, .. } => {
                self.note(id, format!("waits for message {message} ({correlation_key})"));
                let seq = self.next_seq();
                self.subscriptions.insert(
                    subscription.clone(),
                    SubscriptionEntry { instance: id.clone(), message, key: correlation_key, seq },
                );
                self.offer(id, &subscription, Vec::new());
            }
            Effect::Unsubscribe { subscription } => {
                self.subscriptions.remove(&subscription);
            }
            Effect::StartChild { call, node, process, inputs } => {
                let caller = self.records.get(id).map(|r| &r.instance);
                let started_by = caller.and_then(|i| i.started_by().map(str::to_string));
                let business_key = caller.and_then(|i| i.business_key().map(str::to_string));
                match self.create(&process, None, Some((id.clone(), call.clone()))) {
                    Ok(child) => {
                        self.note(id, format!("{node} calls {process} as {child}"));
                        self.children.insert(call, child.clone());
                        self.queue.push_back((
                            child,
                            Event::Start {
                                variables: inputs,
                                business_key,
                                start: None,
                                started_by,
                                on_behalf_of: None,
                            },
                        ));
                    }
                    Err(e) => {
                        self.note(id, format!("{node} cannot call {process}: {e}"));
                        self.queue.push_back((id.clone(), Event::ChildFailed { call, code: "not_deployed".into() }));
                    }
                }
            }
            Effect::CancelChild { call } => {
                if let Some(child) = self.children.remove(&call) {
                    if let Some(r) = self.records.get_mut(&child) {
                        r.parent = None;
                    }
                    let running = self.records.get(&child).is_some_and(|r| !r.instance.status().is_final());
                    if running {
                        self.queue.push_front((child, Event::Cancel { by: format!("parent {id}") }));
                    }
                }
            }
            Effect::RaiseIncident { incident, node, job, message } => {
                self.note(id, format!("incident at {node}: {message}"));
                if let Some(j) = job.as_ref().and_then(|j| self.jobs.get_mut(j)) {
                    j.incident = Some(incident.clone());
                }
                self.incidents.insert(
                    incident.clone(),
                    OpenIncident { id: incident, instance: id.clone(), node, job, message, at: now },
                );
            }
            Effect::CloseIncident { incident } => {
                if let Some(i) = self.incidents.remove(&incident) {
                    if let Some(j) = i.job.as_ref().and_then(|j| self.jobs.get_mut(j)) {
                        j.incident = None;
                    }
                    self.note(id, format!("incident at {} closed", i.node));
                }
            }
            Effect::Completed { outcome } => {
                self.note(id, format!("completed: {}", outcome.as_deref().unwrap_or("-")));
                self.report_to_parent(id, |call, variables| Event::ChildCompleted { call, outcome, variables });
            }
            Effect::Failed { code } => {
                self.note(id, format!("failed with error {code}"));
                self.report_to_parent(id, |call, _| Event::ChildFailed { call, code });
            }
            Effect::Cancelled { by } => {
                self.note(id, format!("cancelled by {by}"));
                self.report_to_parent(id, |call, _| Event::ChildFailed { call, code: "cancelled".into() });
            }
            Effect::History(h) => {
                if let Some(text) = history_text(&h) {
                    self.note(id, text);
                }
                if let Some(r) = self.records.get_mut(id) {
                    r.history.push((now, h));
                }
            }
        }
    }

    pub(super) fn report_to_parent(
        &mut self,
        child: &InstanceId,
        event: impl FnOnce(CallId, BTreeMap<String, cloverleaf_dsl::expr::Value>) -> Event,
    ) {
        let Some(record) = self.records.get(child) else { return };
        let Some((parent, call)) = record.parent.clone() else { return };
        let variables = record.instance.variables().clone();
        self.children.remove(&call);
        self.queue.push_back((parent, event(call, variables)));
    }
}

/// The words for the history entries worth a timeline line (creation effects have their own).
pub(super) fn history_text(h: &HistoryEvent) -> Option<String> {
    let node = h.node.as_deref().unwrap_or("-");
    Some(match h.kind {
        HistoryKind::Started => "started".to_string(),
        HistoryKind::Decided => format!("{node}: {}", h.detail.as_deref().unwrap_or("")),
        HistoryKind::JobCompleted => format!("job at {node} completed"),
        HistoryKind::JobFailed => format!("job at {node} failed: {}", h.detail.as_deref().unwrap_or("")),
        HistoryKind::BusinessError => format!("job at {node} raised {}", h.detail.as_deref().unwrap_or("")),
        HistoryKind::TaskCompleted => {
            let who = h.who.as_deref().unwrap_or("?");
            match &h.on_behalf_of {
                Some(p) => format!("{who} (for {p}) completed {node}"),
                None => format!("{who} completed {node}"),
            }
        }
        HistoryKind::TimerFired => format!("timer fired at {node}"),
        HistoryKind::MessageReceived => format!("message {} received at {node}", h.detail.as_deref().unwrap_or("")),
        HistoryKind::ChildCompleted => format!("{node} returned {}", h.detail.as_deref().unwrap_or("-")),
        HistoryKind::ChildFailed => format!("{node} failed with {}", h.detail.as_deref().unwrap_or("-")),
        _ => return None,
    })
}
