//! How each accepted event moves the machine: job outcomes, task completion and delegation, timers,
//! messages, children's ends, cancellation and incidents.

use std::collections::{BTreeMap, BTreeSet};

use chrono::TimeDelta;
use cloverleaf_dsl::expr::{ExprKind, Value};
use cloverleaf_dsl::model::{Boundary, BoundaryEvent, CExpr, FirstEvent, Node, NodeKind, Reminder, TimerSpec, admit};

use crate::effect::{Effect, HistoryEvent, HistoryKind};
use crate::event::START_REFUSED;
use crate::ids::{CallId, IncidentId, JobId, SubscriptionId, TaskId, TimerId, TokenId};
use crate::instance::{Delegation, Frame, JobWait, Status, SubscriptionPurpose, TimerPurpose, TimerWait, TokenState};
use crate::rejection::Rejection;

use super::nodes::{boundaries_of, collect_users, validate_form};

use super::Machine;

impl<'d> Machine<'d> {
    pub(super) fn open_job(&self, job: &JobId) -> Result<JobWait, Rejection> {
        let wait = self.inst.jobs.get(job).ok_or_else(|| Rejection::UnknownJob { job: job.clone() })?;
        if wait.incident.is_some() {
            return Err(Rejection::JobInIncident { job: job.clone() });
        }
        Ok(wait.clone())
    }

    pub(super) fn job_completed(&mut self, job: &JobId, output: &serde_json::Value) -> Result<(), Rejection> {
        let wait = self.open_job(job)?;
        let node = self.node(&wait.node)?;
        let NodeKind::Task { outputs, next, .. } = &node.kind else {
            return Err(Rejection::UnknownNode { node: wait.node.clone() });
        };
        let source = match output {
            serde_json::Value::Object(o) => o.iter().map(|(k, v)| (k.clone(), Value::from_json_untyped(v))).collect(),
            serde_json::Value::Null => BTreeMap::new(),
            _ => return Err(Rejection::InvalidOutput { fields: vec![(String::new(), "expected an object".into())] }),
        };
        let changed = self.map_outputs(outputs, &source).map_err(|fields| Rejection::InvalidOutput { fields })?;
        self.set_variables(&changed);
        let mut h = HistoryEvent::new(HistoryKind::JobCompleted, Some(&node.name));
        h.variables = changed;
        self.history(h);
        self.inst.jobs.remove(job);
        self.close_waits(wait.token);
        self.move_to(wait.token, next);
        Ok(())
    }

    pub(super) fn job_failed(&mut self, job: &JobId, message: String) -> Result<(), Rejection> {
        let wait = self.open_job(job)?;
        let node = self.node(&wait.node)?;
        let NodeKind::Task { retry, .. } = &node.kind else {
            return Err(Rejection::UnknownNode { node: wait.node.clone() });
        };
        self.history(HistoryEvent::new(HistoryKind::JobFailed, Some(&node.name)).detail(message.clone()));
        let Some(w) = self.inst.jobs.get_mut(job) else { return Ok(()) };
        w.failures += 1;
        let failures = w.failures;
        if w.retries_left > 0 {
            w.retries_left -= 1;
            let at = self.after(retry.delay_secs(failures)).unwrap_or(self.now);
            self.effects.push(Effect::RetryJob { job: job.clone(), at, attempt: failures + 1 });
        } else {
            let times = if failures == 1 { "once".to_string() } else { format!("{failures} times") };
            let text = format!("job `{}` failed {times}, no retries left: {message}", wait.job_type);
            self.raise_incident(wait.token, &node.name, Some(job.clone()), text);
        }
        Ok(())
    }

    /// Where a business error with `code` leads from `node`: the first `on error` with that code,
    /// else the first catch-all.
    pub(super) fn error_boundary(node: &'d Node, code: &str) -> Option<&'d Boundary> {
        let boundaries = boundaries_of(node);
        boundaries
            .iter()
            .find(|b| matches!(&b.event, BoundaryEvent::Error { code: Some(c) } if c == code))
            .or_else(|| boundaries.iter().find(|b| matches!(b.event, BoundaryEvent::Error { code: None })))
    }

    pub(super) fn job_business_error(&mut self, job: &JobId, code: String) -> Result<(), Rejection> {
        let wait = self.open_job(job)?;
        let node = self.node(&wait.node)?;
        self.history(HistoryEvent::new(HistoryKind::BusinessError, Some(&node.name)).detail(code.clone()));
        match Self::error_boundary(node, &code) {
            Some(b) => {
                self.inst.jobs.remove(job);
                self.close_waits(wait.token);
                self.move_to(wait.token, &b.next);
            }
            None => {
                let text = format!("business error `{code}` is not caught by an `on error` of `{}`", node.name);
                self.raise_incident(wait.token, &node.name, Some(job.clone()), text);
            }
        }
        Ok(())
    }

    pub(super) fn task_completed(
        &mut self,
        task: &TaskId,
        by: String,
        on_behalf_of: Option<String>,
        form: &serde_json::Value,
    ) -> Result<(), Rejection> {
        let wait = self.inst.tasks.get(task).cloned().ok_or_else(|| Rejection::UnknownTask { task: task.clone() })?;
        let node = self.node(&wait.node)?;
        let NodeKind::Approval { not_by, form: fields, next, .. } = &node.kind else {
            return Err(Rejection::UnknownNode { node: wait.node.clone() });
        };
        // The delegate acts for the first delegator, and a `not by` rule follows the task through
        // every hop of the delegation; a substitute's principal given by the caller wins
        // (substitutes do not chain).
        let delegation = wait.delegated.filter(|d| d.to == by);
        let mut principals: Vec<&str> = on_behalf_of.as_deref().into_iter().collect();
        if let Some(d) = &delegation {
            principals.extend(d.delegators());
        }
        self.separation_of_duties(not_by, &by, &principals)?;
        let on_behalf_of = on_behalf_of.or_else(|| delegation.as_ref().map(|d| d.origin().to_string()));
        let values = validate_form(fields, form)?;
        let mut changed = values;
        let record = BTreeMap::from([
            ("completed_by".to_string(), Value::Text(by.clone())),
            ("completed_at".to_string(), Value::DateTime(self.now)),
            ("on_behalf_of".to_string(), on_behalf_of.clone().map_or(Value::Null, Value::Text)),
        ]);
        changed.insert(node.name.clone(), Value::Record(record));
        self.set_variables(&changed);
        let mut h = HistoryEvent::new(HistoryKind::TaskCompleted, Some(&node.name));
        h.who = Some(by);
        h.on_behalf_of = on_behalf_of;
        h.variables = changed;
        self.history(h);
        self.inst.tasks.remove(task);
        self.close_waits(wait.token);
        self.move_to(wait.token, next);
        Ok(())
    }

    pub(super) fn task_delegated(&mut self, task: &TaskId, by: String, to: String) -> Result<(), Rejection> {
        let wait = self.inst.tasks.get(task).cloned().ok_or_else(|| Rejection::UnknownTask { task: task.clone() })?;
        let node = self.node(&wait.node)?;
        let NodeKind::Approval { not_by, .. } = &node.kind else {
            return Err(Rejection::UnknownNode { node: wait.node.clone() });
        };
        // A holder who received the task by delegation hands on the whole chain.
        let earlier: Vec<String> = match &wait.delegated {
            Some(d) if d.to == by => d.delegators().map(str::to_string).collect(),
            _ => Vec::new(),
        };
        if earlier.contains(&to) || to == by {
            return Err(Rejection::DelegationLoop { user: to });
        }
        // Refused now rather than at completion: a delegate who could never complete the task
        // (or a barred delegator handing it on) would only leave it stuck.
        let mut principals: Vec<&str> = earlier.iter().map(String::as_str).collect();
        principals.push(&by);
        self.separation_of_duties(not_by, &to, &principals)?;
        let mut h = HistoryEvent::new(HistoryKind::TaskDelegated, Some(&node.name)).detail(format!("to {to}"));
        h.who = Some(by.clone());
        h.on_behalf_of = earlier.first().cloned();
        self.history(h);
        self.effects.push(Effect::AssignTask { task: task.clone(), to: to.clone() });
        if let Some(w) = self.inst.tasks.get_mut(task) {
            w.delegated = Some(Delegation { by, to, earlier });
        }
        Ok(())
    }

    /// Refuses a completion by anyone a `not by` rule names, acting themselves or through a
    /// substitute. An earlier approval's record (`x.completed_by`) names both the person who
    /// completed it and the person they acted for. A rule that cannot be evaluated refuses.
    pub(super) fn separation_of_duties(
        &self,
        rules: &[CExpr],
        by: &str,
        on_behalf_of: &[&str],
    ) -> Result<(), Rejection> {
        for rule in rules {
            let refuse =
                |user: &str| Rejection::SeparationOfDuties { rule: rule.source().to_string(), user: user.into() };
            let value = self.eval(rule).map_err(|_| refuse(by))?;
            let mut barred = BTreeSet::new();
            collect_users(&value, &mut barred);
            if let ExprKind::Field { target, field } = &rule.ast().kind
                && field == "completed_by"
                && let ExprKind::Name(approval) = &target.kind
                && let Some(Value::Record(record)) = self.inst.variables.get(approval)
                && let Some(Value::Text(principal)) = record.get("on_behalf_of")
            {
                barred.insert(principal.clone());
            }
            // Whoever entered a request for someone is as barred as the requester: a manager
            // entering an order for a rep may not approve it either.
            if let Some(requester) = &self.def.access.requester
                && let Some(Value::Text(requested)) = self.inst.variables.get(requester)
                && barred.contains(requested)
                && let Some(starter) = &self.inst.started_by
            {
                barred.insert(starter.clone());
            }
            if barred.contains(by) {
                return Err(refuse(by));
            }
            if let Some(principal) = on_behalf_of.iter().find(|p| barred.contains(**p)) {
                return Err(refuse(principal));
            }
        }
        Ok(())
    }

    pub(super) fn timer_fired(&mut self, timer: &TimerId) -> Result<(), Rejection> {
        let wait =
            self.inst.timers.get(timer).cloned().ok_or_else(|| Rejection::UnknownTimer { timer: timer.clone() })?;
        if self.now < wait.at {
            return Err(Rejection::TimerNotDue { timer: timer.clone(), at: wait.at });
        }
        let node = self.node(&wait.node)?;
        self.inst.timers.remove(timer);
        self.history(HistoryEvent::new(HistoryKind::TimerFired, Some(&node.name)));
        match (&wait.purpose, &node.kind) {
            (TimerPurpose::Boundary { index }, _) => {
                let Some(Boundary { event: BoundaryEvent::Timer { timer: spec, interrupting }, next }) =
                    boundaries_of(node).get(*index)
                else {
                    return Err(Rejection::UnknownNode { node: node.name.clone() });
                };
                if *interrupting {
                    self.close_waits(wait.token);
                    self.move_to(wait.token, next);
                } else {
                    if let TimerSpec::Every(every) = spec {
                        self.reschedule(&wait, every);
                    }
                    let mut frames = self.inst.tokens.get(&wait.token).map(|t| t.frames.clone()).unwrap_or_default();
                    frames.push(Frame::Side { owner: node.name.clone(), activation: self.next_seq() });
                    let side = self.new_token(frames);
                    self.move_to(side, next);
                }
            }
            (TimerPurpose::Reminder { index }, NodeKind::Approval { reminders, .. }) => {
                if let Some(Reminder::Every(every)) = reminders.get(*index) {
                    self.reschedule(&wait, every);
                }
                self.remind(wait.token, false);
            }
            (TimerPurpose::Due, _) => self.remind(wait.token, true),
            (TimerPurpose::Wait, NodeKind::Wait { next, .. }) => {
                self.close_waits(wait.token);
                self.move_to(wait.token, next);
            }
            (TimerPurpose::FirstArm { index }, NodeKind::First { arms }) => {
                let next = &arms.get(*index).ok_or_else(|| Rejection::UnknownNode { node: node.name.clone() })?.next;
                self.close_waits(wait.token);
                self.move_to(wait.token, next);
            }
            _ => return Err(Rejection::UnknownNode { node: node.name.clone() }),
        }
        Ok(())
    }

    /// Schedules the next fire of a repeating timer, one interval after the last (or after now
    /// when the runtime was late: missed fires coalesce into one).
    pub(super) fn reschedule(&mut self, fired: &TimerWait, every: &CExpr) {
        let Ok(secs) = self.interval(every) else { return };
        let Some(delta) = TimeDelta::try_seconds(secs) else { return };
        let mut at = fired.at.checked_add_signed(delta).unwrap_or(self.now);
        if at <= self.now {
            at = self.now.checked_add_signed(delta).unwrap_or(self.now);
        }
        let timer = TimerId(self.new_id("timer"));
        self.inst.timers.insert(timer.clone(), TimerWait { at, ..fired.clone() });
        self.effects.push(Effect::ScheduleTimer { timer, node: fired.node.clone(), at });
    }

    pub(super) fn remind(&mut self, token: TokenId, overdue: bool) {
        let task = self.inst.tasks.iter().find(|(_, w)| w.token == token).map(|(k, _)| k.clone());
        if let Some(task) = task {
            self.effects.push(Effect::Remind { task, overdue });
        }
    }

    pub(super) fn message_correlated(
        &mut self,
        subscription: &SubscriptionId,
        payload: &serde_json::Value,
    ) -> Result<(), Rejection> {
        let wait = self
            .inst
            .subscriptions
            .get(subscription)
            .cloned()
            .ok_or_else(|| Rejection::UnknownSubscription { subscription: subscription.clone() })?;
        let node = self.node(&wait.node)?;
        let (outputs, next) = match (&wait.purpose, &node.kind) {
            (SubscriptionPurpose::Receive, NodeKind::Receive { outputs, next, .. }) => (outputs, next),
            (SubscriptionPurpose::FirstArm { index }, NodeKind::First { arms }) => match arms.get(*index) {
                Some(arm) => match &arm.event {
                    FirstEvent::Message { outputs, .. } => (outputs, &arm.next),
                    FirstEvent::Timer { .. } => return Err(Rejection::UnknownNode { node: node.name.clone() }),
                },
                None => return Err(Rejection::UnknownNode { node: node.name.clone() }),
            },
            _ => return Err(Rejection::UnknownNode { node: node.name.clone() }),
        };
        let source = match payload {
            serde_json::Value::Object(o) => o.iter().map(|(k, v)| (k.clone(), Value::from_json_untyped(v))).collect(),
            serde_json::Value::Null => BTreeMap::new(),
            _ => return Err(Rejection::InvalidOutput { fields: vec![(String::new(), "expected an object".into())] }),
        };
        let changed = self.map_outputs(outputs, &source).map_err(|fields| Rejection::InvalidOutput { fields })?;
        // A message comes from outside, like a start's inputs: the same limits apply.
        let broken: Vec<(String, String)> = changed
            .iter()
            .filter_map(|(name, value)| {
                let def = self.def.inputs.iter().chain(&self.def.vars).find(|d| d.name == *name)?;
                admit(value, &def.ty, &def.bounds).err().map(|rule| (name.clone(), rule))
            })
            .collect();
        if !broken.is_empty() {
            return Err(Rejection::InvalidOutput { fields: broken });
        }
        self.set_variables(&changed);
        let mut h = HistoryEvent::new(HistoryKind::MessageReceived, Some(&node.name)).detail(wait.message.clone());
        h.variables = changed;
        self.history(h);
        self.inst.subscriptions.remove(subscription);
        self.close_waits(wait.token);
        self.move_to(wait.token, next);
        Ok(())
    }

    pub(super) fn child_completed(
        &mut self,
        call: &CallId,
        outcome: Option<String>,
        mut variables: BTreeMap<String, Value>,
    ) -> Result<(), Rejection> {
        let wait = self.inst.calls.get(call).cloned().ok_or_else(|| Rejection::UnknownCall { call: call.clone() })?;
        let node = self.node(&wait.node)?;
        let NodeKind::Call { outputs, next, .. } = &node.kind else {
            return Err(Rejection::UnknownNode { node: wait.node.clone() });
        };
        variables.insert("outcome".to_string(), outcome.clone().map_or(Value::Null, Value::Text));
        self.inst.calls.remove(call);
        match self.map_outputs(outputs, &variables) {
            Ok(changed) => {
                self.set_variables(&changed);
                let mut h = HistoryEvent::new(HistoryKind::ChildCompleted, Some(&node.name));
                h.variables = changed;
                h.detail = outcome;
                self.history(h);
                self.close_waits(wait.token);
                self.move_to(wait.token, next);
            }
            Err(errors) => {
                let text = errors.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; ");
                self.raise_incident(wait.token, &node.name, None, format!("output of `{}`: {text}", wait.process));
            }
        }
        Ok(())
    }

    /// A called process that refused its start fails at once, before any node: its caller is
    /// owed a `ChildFailed` with [`START_REFUSED`], like any failed child.
    pub(super) fn start_refused(&mut self, reason: String) {
        self.history(HistoryEvent::new(HistoryKind::Failed, None).detail(format!("{START_REFUSED}: {reason}")));
        self.effects.push(Effect::Failed { code: START_REFUSED.to_string() });
        self.inst.status = Status::Failed { code: START_REFUSED.to_string() };
    }

    pub(super) fn child_failed(&mut self, call: &CallId, code: String) -> Result<(), Rejection> {
        let wait = self.inst.calls.get(call).cloned().ok_or_else(|| Rejection::UnknownCall { call: call.clone() })?;
        let node = self.node(&wait.node)?;
        self.inst.calls.remove(call);
        self.history(HistoryEvent::new(HistoryKind::ChildFailed, Some(&node.name)).detail(code.clone()));
        match Self::error_boundary(node, &code) {
            Some(b) => {
                self.close_waits(wait.token);
                self.move_to(wait.token, &b.next);
            }
            None if code == START_REFUSED => {
                let text = format!(
                    "`{}` refused its start (the reason is in the history of the instance called for {}), not caught by an \
                     `on error \"{START_REFUSED}\"` of `{}`: correct what it is called with (the variables its \
                     inputs come from), or deploy a `{}` that accepts it, then retry",
                    wait.process, call.0, node.name, wait.process
                );
                self.raise_incident(wait.token, &node.name, None, text);
            }
            None => {
                let text =
                    format!("`{}` failed with `{code}`, not caught by an `on error` of `{}`", wait.process, node.name);
                self.raise_incident(wait.token, &node.name, None, text);
            }
        }
        Ok(())
    }

    pub(super) fn cancel(&mut self, by: String) {
        self.close_all();
        let mut h = HistoryEvent::new(HistoryKind::Cancelled, None);
        h.who = Some(by.clone());
        self.history(h);
        self.effects.push(Effect::Cancelled { by: by.clone() });
        self.inst.status = Status::Cancelled { by };
    }

    pub(super) fn retry_job(&mut self, job: &JobId) -> Result<(), Rejection> {
        let wait = self.inst.jobs.get(job).cloned().ok_or_else(|| Rejection::UnknownJob { job: job.clone() })?;
        let incident = wait.incident.clone().ok_or_else(|| Rejection::JobNotInIncident { job: job.clone() })?;
        self.close_incident(&incident, &wait.node);
        if let Some(w) = self.inst.jobs.get_mut(job) {
            w.incident = None;
        }
        self.effects.push(Effect::RetryJob { job: job.clone(), at: self.now, attempt: wait.failures + 1 });
        Ok(())
    }

    pub(super) fn close_incident(&mut self, incident: &IncidentId, node: &str) {
        if let Some(i) = self.inst.incidents.remove(incident)
            && let Some(t) = self.inst.tokens.get_mut(&i.token)
        {
            t.state = TokenState::Waiting;
        }
        self.history(HistoryEvent::new(HistoryKind::IncidentResolved, Some(node)));
        self.effects.push(Effect::CloseIncident { incident: incident.clone() });
    }

    pub(super) fn resolve_incident(&mut self, incident: &IncidentId) -> Result<(), Rejection> {
        let open = self
            .inst
            .incidents
            .get(incident)
            .cloned()
            .ok_or_else(|| Rejection::UnknownIncident { incident: incident.clone() })?;
        if let Some(job) = &open.job {
            return self.retry_job(job);
        }
        self.close_incident(incident, &open.node);
        // The stuck node runs again (same activation: nothing was opened for it).
        self.queue.push_back(open.token);
        Ok(())
    }
}
