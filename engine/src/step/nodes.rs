//! Moving tokens through the graph: entering a node, opening what it waits for, arriving at joins.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use cloverleaf_dsl::calendar::Calendar;
use cloverleaf_dsl::expr::{Value, is_true};
use cloverleaf_dsl::model::{
    Boundary, BoundaryEvent, CExpr, EndKind, FirstEvent, FormField, Mapping, Node, NodeKind, Reminder, TimerSpec,
    WaitUntil, admit,
};

use crate::effect::{Effect, HistoryEvent, HistoryKind};
use crate::ids::{CallId, JobId, SubscriptionId, TaskId, TimerId, TokenId};
use crate::instance::{
    CallWait, Frame, JobWait, Status, Subscription, SubscriptionPurpose, TaskWait, TimerPurpose, TimerWait, TokenState,
};
use crate::rejection::Rejection;

use super::{Machine, Open, STEP_LIMIT};

impl<'d> Machine<'d> {
    // ---- running tokens ------------------------------------------------------------------

    pub(super) fn run(&mut self) -> Result<(), Rejection> {
        while let Some(token) = self.queue.pop_front() {
            self.entries += 1;
            if self.entries > STEP_LIMIT {
                return Err(Rejection::StepLimit { limit: STEP_LIMIT });
            }
            let Some(t) = self.inst.tokens.get(&token) else { continue };
            let node = self.node(&t.node)?;
            let (frames, activation) = (t.frames.clone(), t.activation);
            self.execute(token, node, frames, activation)?;
        }
        Ok(())
    }

    pub(super) fn execute(
        &mut self,
        token: TokenId,
        node: &'d Node,
        frames: Vec<Frame>,
        activation: u64,
    ) -> Result<(), Rejection> {
        let name = node.name.as_str();
        match &node.kind {
            NodeKind::Start { next, .. } => self.move_to(token, next),
            NodeKind::End { end, side_path } => {
                let side = *side_path || frames.iter().any(|f| matches!(f, Frame::Side { .. }));
                self.history(HistoryEvent::new(HistoryKind::EndReached, Some(name)));
                match end {
                    EndKind::Normal => {
                        self.inst.tokens.remove(&token);
                        if !side {
                            self.inst.last_outcome = Some(name.to_string());
                        }
                    }
                    EndKind::Terminate => {
                        self.close_all();
                        let outcome = Some(name.to_string());
                        self.inst.last_outcome = outcome.clone();
                        self.history(HistoryEvent::new(HistoryKind::Completed, Some(name)));
                        self.effects.push(Effect::Completed { outcome: outcome.clone() });
                        self.inst.status = Status::Completed { outcome };
                    }
                    EndKind::Error { code } => {
                        self.close_all();
                        self.history(HistoryEvent::new(HistoryKind::Failed, Some(name)).detail(code.clone()));
                        self.effects.push(Effect::Failed { code: code.clone() });
                        self.inst.status = Status::Failed { code: code.clone() };
                    }
                }
            }
            NodeKind::Set { assignments, next } => {
                let mut changed = BTreeMap::new();
                for a in assignments {
                    match self.eval(&a.value).and_then(|v| self.coerce(&a.name, v)) {
                        Ok(v) => {
                            self.inst.variables.insert(a.name.clone(), v.clone());
                            changed.insert(a.name.clone(), v);
                        }
                        Err(e) => {
                            // Assignments already made stay: they are visible in history.
                            let mut h = HistoryEvent::new(HistoryKind::Assigned, Some(name));
                            h.variables = changed;
                            self.history(h);
                            self.raise_incident(token, name, None, format!("cannot assign `{}`: {e}", a.name));
                            return Ok(());
                        }
                    }
                }
                let mut h = HistoryEvent::new(HistoryKind::Assigned, Some(name));
                h.variables = changed;
                self.history(h);
                self.move_to(token, next);
            }
            NodeKind::Decide { arms, otherwise } => {
                let mut taken = None;
                for arm in arms {
                    match self.eval(&arm.when) {
                        Ok(v) if is_true(&v) => {
                            taken = Some((arm.next.as_str(), arm.when.source().to_string()));
                            break;
                        }
                        Ok(_) => {}
                        Err(e) => {
                            self.raise_incident(token, name, None, format!("cannot decide: {e}"));
                            return Ok(());
                        }
                    }
                }
                let taken = taken.or_else(|| otherwise.as_deref().map(|o| (o, "otherwise".to_string())));
                match taken {
                    Some((next, why)) => {
                        self.history(HistoryEvent::new(HistoryKind::Decided, Some(name)).detail(why));
                        self.move_to(token, next);
                    }
                    None => self.raise_incident(token, name, None, format!("no arm of `{name}` is true")),
                }
            }
            NodeKind::Split { branches, .. } => {
                let split_activation = self.next_seq();
                self.inst.tokens.remove(&token);
                for (i, branch) in branches.iter().enumerate() {
                    let mut f = frames.clone();
                    f.push(Frame::Branch { split: name.to_string(), activation: split_activation, branch: i });
                    let t = self.new_token(f);
                    self.move_to(t, branch);
                }
            }
            NodeKind::Join { split, next } => self.arrive(token, name, split, next, &frames)?,
            NodeKind::Task { .. }
            | NodeKind::Approval { .. }
            | NodeKind::Receive { .. }
            | NodeKind::Wait { .. }
            | NodeKind::First { .. }
            | NodeKind::Call { .. } => {
                let plan = self.opens_of(node);
                let job = match &node.kind {
                    NodeKind::Task { retry, timeout_secs, .. } => {
                        Some((format!("{}:{name}:{activation}", self.inst.id), retry.clone(), *timeout_secs))
                    }
                    _ => None,
                };
                self.open(token, node, plan, job);
            }
        }
        Ok(())
    }

    /// What a wait node opens when a token enters it (nothing for the other kinds), computed
    /// before anything is opened so that a failing expression opens nothing.
    pub(super) fn opens_of(&self, node: &Node) -> Result<Vec<Open>, String> {
        let name = node.name.as_str();
        match &node.kind {
            NodeKind::Task { job, inputs, retry, boundaries, .. } => {
                let input = self.input_object(inputs)?;
                let mut opens = vec![Open::Job { job_type: job.clone(), input, retries: retry.attempts }];
                self.boundary_timers(boundaries, self.def.calendar.as_ref(), &mut opens)?;
                Ok(opens)
            }
            NodeKind::Approval { roles, assignee, form, due, calendar, reminders, boundaries, .. } => {
                let calendar = self.task_calendar(calendar.as_ref());
                let title = self.render_title(node.title.as_deref().unwrap_or(name));
                let assignee = match assignee {
                    None => None,
                    Some(e) => match self.eval(e)? {
                        Value::Null => None,
                        Value::Text(u) => Some(u),
                        other => return Err(format!("assignee `{e}` is {other}, expected a user")),
                    },
                };
                let due_at = match due {
                    Some(d) => self.timer_at_on(d, calendar)?,
                    None => None,
                };
                let mut opens = vec![Open::Task { title, roles: roles.clone(), assignee, form: form.clone(), due_at }];
                if let Some(at) = due_at {
                    opens.push(Open::Timer { at, purpose: TimerPurpose::Due });
                }
                for (index, r) in reminders.iter().enumerate() {
                    let at = match r {
                        Reminder::At(e) => self.timer_at_on(e, calendar)?,
                        Reminder::Every(e) => Some(self.after(self.interval(e)?)?),
                    };
                    if let Some(at) = at {
                        opens.push(Open::Timer { at, purpose: TimerPurpose::Reminder { index } });
                    }
                }
                self.boundary_timers(boundaries, calendar, &mut opens)?;
                Ok(opens)
            }
            NodeKind::Receive { message, key, boundaries, .. } => {
                let key = self.correlation_key(key)?;
                let mut opens =
                    vec![Open::Subscribe { message: message.clone(), key, purpose: SubscriptionPurpose::Receive }];
                self.boundary_timers(boundaries, self.def.calendar.as_ref(), &mut opens)?;
                Ok(opens)
            }
            NodeKind::Wait { until, boundaries, .. } => {
                let at = match until {
                    WaitUntil::At(e) => {
                        self.timer_at(e)?.ok_or_else(|| format!("`wait until {e}`: the time is null"))?
                    }
                    WaitUntil::Cron(s) => s
                        .next_after(self.now)
                        .map(|t| t.with_timezone(&Utc))
                        .ok_or_else(|| format!("schedule `{}` has no next time", s.pattern()))?,
                };
                let mut opens = vec![Open::Timer { at, purpose: TimerPurpose::Wait }];
                self.boundary_timers(boundaries, self.def.calendar.as_ref(), &mut opens)?;
                Ok(opens)
            }
            NodeKind::First { arms } => {
                let mut opens = Vec::new();
                for (index, arm) in arms.iter().enumerate() {
                    match &arm.event {
                        FirstEvent::Message { message, key, .. } => opens.push(Open::Subscribe {
                            message: message.clone(),
                            key: self.correlation_key(key)?,
                            purpose: SubscriptionPurpose::FirstArm { index },
                        }),
                        FirstEvent::Timer { at } => {
                            if let Some(at) = self.timer_at(at)? {
                                opens.push(Open::Timer { at, purpose: TimerPurpose::FirstArm { index } });
                            }
                        }
                    }
                }
                Ok(opens)
            }
            NodeKind::Call { process, inputs, boundaries, .. } => {
                let inputs = self.input_object(inputs)?;
                let mut opens = vec![Open::Call { process: process.clone(), inputs }];
                self.boundary_timers(boundaries, self.def.calendar.as_ref(), &mut opens)?;
                Ok(opens)
            }
            _ => Ok(Vec::new()),
        }
    }

    pub(super) fn input_object(&self, inputs: &[Mapping]) -> Result<serde_json::Value, String> {
        let mut object = serde_json::Map::new();
        for m in inputs {
            object.insert(m.name.clone(), self.eval(&m.value)?.to_json());
        }
        Ok(serde_json::Value::Object(object))
    }

    pub(super) fn correlation_key(&self, key: &CExpr) -> Result<String, String> {
        match self.eval(key)? {
            Value::Null => Err(format!("correlation key `{key}` is null")),
            Value::Text(s) => Ok(s),
            other => Ok(plain(&other)),
        }
    }

    pub(super) fn boundary_timers(
        &self,
        boundaries: &[Boundary],
        calendar: Option<&Calendar>,
        opens: &mut Vec<Open>,
    ) -> Result<(), String> {
        for (index, b) in boundaries.iter().enumerate() {
            let BoundaryEvent::Timer { timer, .. } = &b.event else { continue };
            let at = match timer {
                TimerSpec::At(e) => self.timer_at_on(e, calendar)?,
                TimerSpec::Every(e) => Some(self.after(self.interval(e)?)?),
                TimerSpec::Cron(s) => s.next_after(self.now).map(|t| t.with_timezone(&Utc)),
            };
            if let Some(at) = at {
                opens.push(Open::Timer { at, purpose: TimerPurpose::Boundary { index } });
            }
        }
        Ok(())
    }

    /// Opens what a wait node needs, or raises an incident when an expression failed.
    pub(super) fn open(
        &mut self,
        token: TokenId,
        node: &Node,
        plan: Result<Vec<Open>, String>,
        job: Option<(String, cloverleaf_dsl::model::RetryPolicy, Option<i64>)>,
    ) {
        let opens = match plan {
            Ok(opens) => opens,
            Err(e) => return self.raise_incident(token, &node.name, None, e),
        };
        let name = node.name.clone();
        for open in opens {
            match open {
                Open::Job { job_type, input, retries } => {
                    let id = JobId(self.new_id("job"));
                    let (idempotency_key, retry, timeout_secs) = job.clone().unwrap_or_default();
                    self.inst.jobs.insert(
                        id.clone(),
                        JobWait {
                            token,
                            node: name.clone(),
                            job_type: job_type.clone(),
                            failures: 0,
                            retries_left: retries,
                            incident: None,
                        },
                    );
                    self.effects.push(Effect::CreateJob {
                        job: id,
                        node: name.clone(),
                        job_type,
                        input,
                        retry,
                        timeout_secs,
                        idempotency_key,
                    });
                }
                Open::Task { title, roles, assignee, form, due_at } => {
                    let id = TaskId(self.new_id("task"));
                    self.inst.tasks.insert(
                        id.clone(),
                        TaskWait { token, node: name.clone(), created_at: self.now, delegated: None },
                    );
                    self.effects.push(Effect::CreateTask {
                        task: id,
                        node: name.clone(),
                        title,
                        roles,
                        assignee,
                        form,
                        due_at,
                    });
                }
                Open::Timer { at, purpose } => {
                    let id = TimerId(self.new_id("timer"));
                    self.inst.timers.insert(id.clone(), TimerWait { token, node: name.clone(), at, purpose });
                    self.effects.push(Effect::ScheduleTimer { timer: id, node: name.clone(), at });
                }
                Open::Subscribe { message, key, purpose } => {
                    let id = SubscriptionId(self.new_id("subscription"));
                    self.inst.subscriptions.insert(
                        id.clone(),
                        Subscription {
                            token,
                            node: name.clone(),
                            message: message.clone(),
                            correlation_key: key.clone(),
                            purpose,
                        },
                    );
                    self.effects.push(Effect::Subscribe {
                        subscription: id,
                        node: name.clone(),
                        message,
                        correlation_key: key,
                    });
                }
                Open::Call { process, inputs } => {
                    let id = CallId(self.new_id("call"));
                    self.inst
                        .calls
                        .insert(id.clone(), CallWait { token, node: name.clone(), process: process.clone() });
                    self.effects.push(Effect::StartChild { call: id, node: name.clone(), process, inputs });
                }
            }
        }
    }

    /// A token arrives at a join: it waits until one token of every branch of the same split
    /// activation is there, then one token goes on with the branch frame popped.
    pub(super) fn arrive(
        &mut self,
        token: TokenId,
        name: &str,
        split: &str,
        next: &str,
        frames: &[Frame],
    ) -> Result<(), Rejection> {
        let Some(Frame::Branch { split: s, activation, .. }) = frames.last() else {
            self.raise_incident(
                token,
                name,
                None,
                format!("a token reached join `{name}` outside a branch of `{split}`"),
            );
            return Ok(());
        };
        if s != split {
            self.raise_incident(token, name, None, format!("a token of `{s}` reached join `{name}` of `{split}`"));
            return Ok(());
        }
        let activation = *activation;
        let branches = match &self.node(split)?.kind {
            NodeKind::Split { branches, .. } => branches.len(),
            _ => return Err(Rejection::UnknownNode { node: split.to_string() }),
        };
        if let Some(t) = self.inst.tokens.get_mut(&token) {
            t.state = TokenState::AtJoin;
        }
        let prefix = &frames[..frames.len() - 1];
        let mut arrived: BTreeMap<usize, TokenId> = BTreeMap::new();
        for (id, t) in &self.inst.tokens {
            if t.node != name || t.state != TokenState::AtJoin || t.frames.len() != frames.len() {
                continue;
            }
            if let Some(Frame::Branch { split: ts, activation: ta, branch }) = t.frames.last()
                && ts == split
                && *ta == activation
                && t.frames[..t.frames.len() - 1] == *prefix
            {
                arrived.entry(*branch).or_insert(*id);
            }
        }
        if arrived.len() < branches {
            return Ok(());
        }
        for id in arrived.values() {
            if *id != token {
                self.inst.tokens.remove(id);
            }
        }
        if let Some(t) = self.inst.tokens.get_mut(&token) {
            t.frames.pop();
        }
        self.move_to(token, next);
        Ok(())
    }
}

pub(super) fn boundaries_of(node: &Node) -> &[Boundary] {
    match &node.kind {
        NodeKind::Task { boundaries, .. }
        | NodeKind::Approval { boundaries, .. }
        | NodeKind::Receive { boundaries, .. }
        | NodeKind::Wait { boundaries, .. }
        | NodeKind::Call { boundaries, .. } => boundaries,
        _ => &[],
    }
}

/// A value as plain text for titles and correlation keys: text without quotes, numbers and
/// dates as their JSON text.
pub(super) fn plain(v: &Value) -> String {
    match v.to_json() {
        serde_json::Value::String(s) => s,
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub(super) fn collect_users(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Text(u) => {
            out.insert(u.clone());
        }
        Value::List(items) => items.iter().for_each(|i| collect_users(i, out)),
        _ => {}
    }
}

/// Checks a submitted form against the approval's fields; every fault is listed.
pub(super) fn validate_form(
    fields: &[FormField],
    form: &serde_json::Value,
) -> Result<BTreeMap<String, Value>, Rejection> {
    let empty = serde_json::Map::new();
    let object = match form {
        serde_json::Value::Object(o) => o,
        serde_json::Value::Null => &empty,
        _ => return Err(Rejection::InvalidForm { fields: vec![(String::new(), "expected an object".into())] }),
    };
    let mut errors = Vec::new();
    let mut values = BTreeMap::new();
    for f in fields {
        match object.get(&f.name).filter(|v| !v.is_null()) {
            None if !f.optional => errors.push((f.name.clone(), "required".to_string())),
            None => {
                values.insert(f.name.clone(), Value::Null);
            }
            Some(json) => match Value::from_json(json, &f.ty) {
                Ok(v) => match admit(&v, &f.ty, &f.bounds) {
                    Ok(()) => {
                        values.insert(f.name.clone(), v);
                    }
                    Err(rule) => errors.push((f.name.clone(), rule)),
                },
                Err(e) => errors.push((f.name.clone(), e.to_string())),
            },
        }
    }
    for key in object.keys() {
        if !fields.iter().any(|f| f.name == *key) {
            errors.push((key.clone(), "not a field of this form".to_string()));
        }
    }
    if errors.is_empty() { Ok(values) } else { Err(Rejection::InvalidForm { fields: errors }) }
}
