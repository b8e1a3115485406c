//! The transition function: `(definition, instance, event, now) → (instance, effects)`.
//!
//! [`step`] is the one table of accepted (status, event) pairs; everything else is a
//! [`Rejection`]. Accepted events move tokens through the graph until every token waits again
//! (a job, a task, a timer, a message, a child, a join or an incident) or the instance ends.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrono::{DateTime, TimeDelta, Utc};
use cloverleaf_dsl::CompiledProcess;
use cloverleaf_dsl::expr::{EvalContext, EvalError, ExprKind, Type, Value, eval, is_true};
use cloverleaf_dsl::model::{
    Boundary, BoundaryEvent, CExpr, EndKind, FirstEvent, FormField, Mapping, Node, NodeKind, Reminder, TimerSpec,
    Trigger, WaitUntil, admit,
};
use serde::{Deserialize, Serialize};

use crate::effect::{Effect, HistoryEvent, HistoryKind};
use crate::event::Event;
use crate::ids::{CallId, IncidentId, JobId, SubscriptionId, TaskId, TimerId, TokenId};
use crate::instance::{
    CallWait, Delegation, Frame, Incident, Instance, JobWait, Status, Subscription, SubscriptionPurpose, TaskWait,
    TimerPurpose, TimerWait, Token, TokenState,
};
use crate::rejection::Rejection;

/// Most node entries one event may cause before it is refused as a runaway loop.
pub const STEP_LIMIT: usize = 10_000;

/// The result of an accepted event: the new state and what to do after committing it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// The instance after the event.
    pub instance: Instance,
    /// The effects, in order.
    pub effects: Vec<Effect>,
}

/// Applies `event` to `instance` at the instant `now`. Pure: the same arguments always give the
/// same result, and a rejection leaves nothing changed.
pub fn step(
    definition: &CompiledProcess,
    instance: &Instance,
    event: Event,
    now: DateTime<Utc>,
) -> Result<Transition, Rejection> {
    if definition.key != instance.process {
        return Err(Rejection::WrongDefinition {
            instance: instance.process.clone(),
            definition: definition.key.clone(),
        });
    }
    let mut m = Machine::new(definition, instance.clone(), now);
    match (&instance.status, event) {
        (Status::Created, Event::Start { variables, business_key, start, started_by, on_behalf_of }) => {
            m.start(&variables, business_key, start, started_by, on_behalf_of)?
        }
        (Status::Running, Event::JobCompleted { job, output }) => m.job_completed(&job, &output)?,
        (Status::Running, Event::JobFailed { job, message }) => m.job_failed(&job, message)?,
        (Status::Running, Event::JobBusinessError { job, code }) => m.job_business_error(&job, code)?,
        (Status::Running, Event::TaskCompleted { task, by, on_behalf_of, form }) => {
            m.task_completed(&task, by, on_behalf_of, &form)?
        }
        (Status::Running, Event::TaskDelegated { task, by, to }) => m.task_delegated(&task, by, to)?,
        (Status::Running, Event::TimerFired { timer }) => m.timer_fired(&timer)?,
        (Status::Running, Event::MessageCorrelated { subscription, payload }) => {
            m.message_correlated(&subscription, &payload)?
        }
        (Status::Running, Event::ChildCompleted { call, outcome, variables }) => {
            m.child_completed(&call, outcome, variables)?
        }
        (Status::Running, Event::ChildFailed { call, code }) => m.child_failed(&call, code)?,
        (Status::Running, Event::Cancel { by }) => m.cancel(by),
        (Status::Running, Event::RetryJob { job }) => m.retry_job(&job)?,
        (Status::Running, Event::ResolveIncident { incident }) => m.resolve_incident(&incident)?,
        (status, event) => {
            return Err(Rejection::InvalidState { event: event.name().to_string(), status: status_word(status) });
        }
    }
    m.run()?;
    m.raise_if_stuck();
    if m.inst.status == Status::Running && m.inst.tokens.is_empty() {
        let outcome = m.inst.last_outcome.clone();
        m.history(HistoryEvent::new(HistoryKind::Completed, None));
        m.effects.push(Effect::Completed { outcome: outcome.clone() });
        m.inst.status = Status::Completed { outcome };
    }
    m.inst.version += 1;
    Ok(Transition { instance: m.inst, effects: m.effects })
}

/// Whether `user` (acting for `on_behalf_of`) may complete `task` under its `not by` rules:
/// what a runtime checks when someone claims a task, so that a barred person cannot hold it.
pub fn check_separation(
    definition: &CompiledProcess,
    instance: &Instance,
    task: &TaskId,
    user: &str,
    on_behalf_of: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), Rejection> {
    let m = Machine::new(definition, instance.clone(), now);
    let wait = m.inst.tasks.get(task).ok_or_else(|| Rejection::UnknownTask { task: task.clone() })?;
    let node = m.node(&wait.node)?;
    let NodeKind::Approval { not_by, .. } = &node.kind else {
        return Err(Rejection::UnknownNode { node: wait.node.clone() });
    };
    let mut principals: Vec<&str> = on_behalf_of.into_iter().collect();
    if let Some(d) = wait.delegated.as_ref().filter(|d| d.to == user) {
        principals.extend(d.delegators());
    }
    m.separation_of_duties(not_by, user, &principals)
}

/// Applies a recorded event log to a fresh instance: the state a runtime rebuilds from history.
pub fn replay<'a>(
    definition: &CompiledProcess,
    instance: Instance,
    events: impl IntoIterator<Item = (&'a Event, DateTime<Utc>)>,
) -> Result<Instance, Rejection> {
    let mut current = instance;
    for (event, now) in events {
        current = step(definition, &current, event.clone(), now)?.instance;
    }
    Ok(current)
}

fn status_word(status: &Status) -> String {
    match status {
        Status::Created => "not started".into(),
        Status::Running => "running".into(),
        Status::Completed { .. } => "completed".into(),
        Status::Failed { .. } => "failed".into(),
        Status::Cancelled { .. } => "cancelled".into(),
    }
}

/// Something a wait node opens when a token enters it, computed before anything is opened so
/// that a failing expression opens nothing.
enum Open {
    Job {
        job_type: String,
        input: serde_json::Value,
        retries: u32,
    },
    Task {
        title: String,
        roles: Vec<String>,
        assignee: Option<String>,
        form: Vec<FormField>,
        due_at: Option<DateTime<Utc>>,
    },
    Timer {
        at: DateTime<Utc>,
        purpose: TimerPurpose,
    },
    Subscribe {
        message: String,
        key: String,
        purpose: SubscriptionPurpose,
    },
    Call {
        process: String,
        inputs: serde_json::Value,
    },
}

struct Machine<'d> {
    def: &'d CompiledProcess,
    inst: Instance,
    now: DateTime<Utc>,
    effects: Vec<Effect>,
    queue: VecDeque<TokenId>,
    entries: usize,
    types: BTreeMap<String, Type>,
}

impl<'d> Machine<'d> {
    fn new(def: &'d CompiledProcess, inst: Instance, now: DateTime<Utc>) -> Self {
        let mut types = BTreeMap::new();
        for v in def.inputs.iter().chain(&def.vars) {
            types.insert(v.name.clone(), v.ty.clone());
        }
        for node in &def.nodes {
            if let NodeKind::Approval { form, .. } = &node.kind {
                for f in form {
                    types.entry(f.name.clone()).or_insert_with(|| f.ty.clone());
                }
            }
        }
        Machine { def, inst, now, effects: Vec::new(), queue: VecDeque::new(), entries: 0, types }
    }

    // ---- helpers -------------------------------------------------------------------------

    fn node(&self, name: &str) -> Result<&'d Node, Rejection> {
        self.def.node(name).ok_or_else(|| Rejection::UnknownNode { node: name.to_string() })
    }

    fn next_seq(&mut self) -> u64 {
        self.inst.sequence += 1;
        self.inst.sequence
    }

    fn new_id(&mut self, kind: &str) -> String {
        let n = self.next_seq();
        crate::ids::derived(&self.inst.id.0, kind, n)
    }

    fn history(&mut self, h: HistoryEvent) {
        self.effects.push(Effect::History(h));
    }

    fn eval(&self, expr: &CExpr) -> Result<Value, String> {
        let ctx = EvalContext::new(&self.inst.variables, self.now);
        eval(expr.ast(), &ctx).map_err(|e| format!("`{}`: {e}", expr.source()))
    }

    /// Converts `value` to the declared type of variable `name` (a job's `"2026-01-31"` becomes
    /// a date); undeclared names and `any` keep the value as it is.
    fn coerce(&self, name: &str, value: Value) -> Result<Value, String> {
        match self.types.get(name) {
            Some(Type::Any) | None => Ok(value),
            Some(ty) => Value::from_json(&value.to_json(), ty).map_err(|e| e.to_string()),
        }
    }

    /// When a timer expression fires: a duration after now, a date at its midnight UTC, a
    /// datetime itself; `None` for null (no timer).
    fn timer_at(&self, expr: &CExpr) -> Result<Option<DateTime<Utc>>, String> {
        match self.eval(expr)? {
            Value::Null => Ok(None),
            Value::Duration(secs) => self.after(secs).map(Some),
            Value::Date(d) => Ok(d.and_hms_opt(0, 0, 0).map(|n| n.and_utc())),
            Value::DateTime(dt) => Ok(Some(dt)),
            other => {
                Err(format!("`{}` is `{}`, expected a duration, date or datetime", expr.source(), other.type_of()))
            }
        }
    }

    fn after(&self, secs: i64) -> Result<DateTime<Utc>, String> {
        TimeDelta::try_seconds(secs)
            .and_then(|d| self.now.checked_add_signed(d))
            .ok_or_else(|| "time out of range".to_string())
    }

    fn interval(&self, expr: &CExpr) -> Result<i64, String> {
        match self.eval(expr)? {
            Value::Duration(secs) if secs > 0 => Ok(secs),
            other => Err(format!("`{}` is {other}, expected a positive duration", expr.source())),
        }
    }

    fn render_title(&self, template: &str) -> String {
        let mut out = String::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}').map(|c| open + c) else { break };
            out.push_str(&rest[..open]);
            let inner = &rest[open + 1..close];
            match CExpr::parse(inner.trim()).ok().and_then(|e| self.eval(&e).ok()) {
                Some(v) => out.push_str(&plain(&v)),
                None => out.push_str(&rest[open..=close]),
            }
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        out
    }

    /// Moves a token to `next` (a new activation of that node) and queues it to run.
    fn move_to(&mut self, token: TokenId, next: &str) {
        let activation = {
            let n = self.inst.activations.entry(next.to_string()).or_insert(0);
            *n += 1;
            *n
        };
        if let Some(t) = self.inst.tokens.get_mut(&token) {
            t.node = next.to_string();
            t.activation = activation;
            t.state = TokenState::Waiting;
        }
        self.history(HistoryEvent::new(HistoryKind::Entered, Some(next)));
        self.queue.push_back(token);
    }

    fn new_token(&mut self, frames: Vec<Frame>) -> TokenId {
        let id = TokenId(self.next_seq());
        self.inst.tokens.insert(id, Token { node: String::new(), frames, activation: 0, state: TokenState::Waiting });
        id
    }

    /// The safety net behind the compiler's soundness checks: tokens that are left with nothing
    /// to wait for and nothing to do (a join whose other branches can never arrive) would keep
    /// the instance running forever in silence; each gets an incident naming its node, so that
    /// an operator sees it and can cancel or repair the instance.
    fn raise_if_stuck(&mut self) {
        let inst = &self.inst;
        let waiting = !(inst.jobs.is_empty()
            && inst.tasks.is_empty()
            && inst.timers.is_empty()
            && inst.subscriptions.is_empty()
            && inst.calls.is_empty()
            && inst.incidents.is_empty());
        if inst.status != Status::Running || inst.tokens.is_empty() || waiting {
            return;
        }
        let stuck: Vec<(TokenId, String)> = inst
            .tokens
            .iter()
            .filter(|(_, t)| t.state == TokenState::AtJoin)
            .map(|(id, t)| (*id, t.node.clone()))
            .collect();
        for (token, node) in stuck {
            let message = format!(
                "stuck at `{node}`: it waits for branches that can no longer arrive, and nothing else in the instance can move"
            );
            self.raise_incident(token, &node, None, message);
        }
    }

    fn raise_incident(&mut self, token: TokenId, node: &str, job: Option<JobId>, message: String) {
        let incident = IncidentId(self.new_id("incident"));
        if let Some(t) = self.inst.tokens.get_mut(&token) {
            t.state = TokenState::Incident { incident: incident.clone() };
        }
        if let Some(j) = job.as_ref().and_then(|j| self.inst.jobs.get_mut(j)) {
            j.incident = Some(incident.clone());
        }
        self.inst.incidents.insert(
            incident.clone(),
            Incident { token, node: node.to_string(), job: job.clone(), message: message.clone() },
        );
        self.history(HistoryEvent::new(HistoryKind::IncidentRaised, Some(node)).detail(message.clone()));
        self.effects.push(Effect::RaiseIncident { incident, node: node.to_string(), job, message });
    }

    /// Closes everything a token has open at its node (it is leaving, or being cancelled).
    fn close_waits(&mut self, token: TokenId) {
        let jobs: Vec<JobId> =
            self.inst.jobs.iter().filter(|(_, w)| w.token == token).map(|(k, _)| k.clone()).collect();
        for job in jobs {
            self.inst.jobs.remove(&job);
            self.effects.push(Effect::CancelJob { job });
        }
        let tasks: Vec<TaskId> =
            self.inst.tasks.iter().filter(|(_, w)| w.token == token).map(|(k, _)| k.clone()).collect();
        for task in tasks {
            self.inst.tasks.remove(&task);
            self.effects.push(Effect::CancelTask { task });
        }
        let timers: Vec<TimerId> =
            self.inst.timers.iter().filter(|(_, w)| w.token == token).map(|(k, _)| k.clone()).collect();
        for timer in timers {
            self.inst.timers.remove(&timer);
            self.effects.push(Effect::CancelTimer { timer });
        }
        let subs: Vec<SubscriptionId> =
            self.inst.subscriptions.iter().filter(|(_, w)| w.token == token).map(|(k, _)| k.clone()).collect();
        for subscription in subs {
            self.inst.subscriptions.remove(&subscription);
            self.effects.push(Effect::Unsubscribe { subscription });
        }
        let calls: Vec<CallId> =
            self.inst.calls.iter().filter(|(_, w)| w.token == token).map(|(k, _)| k.clone()).collect();
        for call in calls {
            self.inst.calls.remove(&call);
            self.effects.push(Effect::CancelChild { call });
        }
        let incidents: Vec<IncidentId> =
            self.inst.incidents.iter().filter(|(_, w)| w.token == token).map(|(k, _)| k.clone()).collect();
        for incident in incidents {
            self.inst.incidents.remove(&incident);
            self.effects.push(Effect::CloseIncident { incident });
        }
    }

    /// Ends every token and closes everything open (terminate, error end, cancel).
    fn close_all(&mut self) {
        let tokens: Vec<TokenId> = self.inst.tokens.keys().copied().collect();
        for token in tokens {
            self.close_waits(token);
        }
        self.inst.tokens.clear();
        self.queue.clear();
    }

    /// Evaluates output mappings over `source` (a job result, a message payload, a child's
    /// variables), converting each to its variable's type. Collects every failure.
    fn map_outputs(
        &self,
        outputs: &[Mapping],
        source: &BTreeMap<String, Value>,
    ) -> Result<BTreeMap<String, Value>, Vec<(String, String)>> {
        let ctx = EvalContext::new(source, self.now);
        let mut changed = BTreeMap::new();
        let mut errors = Vec::new();
        for m in outputs {
            // A field the result or payload leaves out sets an optional variable to null.
            let value = match eval(m.value.ast(), &ctx) {
                Err(EvalError::UnknownVariable { .. }) if self.is_optional(&m.name) => Ok(Value::Null),
                other => other.map_err(|e| e.to_string()),
            };
            match value.and_then(|v| self.coerce(&m.name, v)) {
                Ok(v) => {
                    changed.insert(m.name.clone(), v);
                }
                Err(e) => errors.push((m.name.clone(), e)),
            }
        }
        if errors.is_empty() { Ok(changed) } else { Err(errors) }
    }

    /// True if the variable is declared with `?`.
    fn is_optional(&self, name: &str) -> bool {
        self.def.inputs.iter().chain(&self.def.vars).any(|v| v.name == name && v.optional)
    }

    fn set_variables(&mut self, changed: &BTreeMap<String, Value>) {
        for (k, v) in changed {
            self.inst.variables.insert(k.clone(), v.clone());
        }
    }

    // ---- events --------------------------------------------------------------------------

    fn start(
        &mut self,
        variables: &serde_json::Value,
        business_key: Option<String>,
        start: Option<String>,
        started_by: Option<String>,
        on_behalf_of: Option<String>,
    ) -> Result<(), Rejection> {
        let start_node = match &start {
            Some(name) => self
                .def
                .nodes
                .iter()
                .find(|n| n.name == *name && matches!(n.kind, NodeKind::Start { .. }))
                .ok_or_else(|| Rejection::UnknownStart { start: name.clone() })?,
            None => {
                let starts = || self.def.nodes.iter().filter(|n| matches!(n.kind, NodeKind::Start { .. }));
                starts()
                    .find(|n| matches!(n.kind, NodeKind::Start { trigger: Trigger::Request, .. }))
                    .or_else(|| starts().next())
                    .ok_or_else(|| Rejection::UnknownStart { start: "(any)".into() })?
            }
        };
        let empty = serde_json::Map::new();
        let object = match variables {
            serde_json::Value::Object(o) => o,
            serde_json::Value::Null => &empty,
            _ => return Err(Rejection::InvalidInput { fields: vec![(String::new(), "expected an object".into())] }),
        };
        let mut errors = Vec::new();
        for key in object.keys() {
            if !self.def.inputs.iter().any(|i| i.name == *key) {
                errors.push((key.clone(), "not an input of this process".to_string()));
            }
        }
        let mut inputs = BTreeMap::new();
        for def in self.def.inputs.iter().chain(&self.def.vars) {
            let is_input = self.def.inputs.iter().any(|i| i.name == def.name);
            let given = if is_input { object.get(&def.name).filter(|v| !v.is_null()) } else { None };
            let value = match (given, &def.default) {
                (Some(json), _) => match Value::from_json(json, &def.ty) {
                    Ok(v) => match admit(&v, &def.ty, &def.bounds) {
                        Ok(()) => v,
                        Err(rule) => {
                            errors.push((def.name.clone(), rule));
                            continue;
                        }
                    },
                    Err(e) => {
                        errors.push((def.name.clone(), e.to_string()));
                        continue;
                    }
                },
                (None, Some(default)) => {
                    let ctx = EvalContext::new(&self.inst.variables, self.now);
                    match eval(default.ast(), &ctx).map_err(|e| e.to_string()).and_then(|v| self.coerce(&def.name, v)) {
                        Ok(v) => v,
                        Err(e) => {
                            errors.push((def.name.clone(), format!("default: {e}")));
                            continue;
                        }
                    }
                }
                (None, None) if is_input && !def.optional => {
                    errors.push((def.name.clone(), "required".to_string()));
                    continue;
                }
                (None, None) => Value::Null,
            };
            if is_input {
                inputs.insert(def.name.clone(), value.clone());
            }
            self.inst.variables.insert(def.name.clone(), value);
        }
        if !errors.is_empty() {
            return Err(Rejection::InvalidInput { fields: errors });
        }
        // Form fields that declare their own variable, and approvals as records
        // (`manager_approval.completed_by`), start as null.
        for node in &self.def.nodes {
            if let NodeKind::Approval { form, .. } = &node.kind {
                for f in form {
                    self.inst.variables.entry(f.name.clone()).or_insert(Value::Null);
                }
                self.inst.variables.entry(node.name.clone()).or_insert(Value::Null);
            }
        }
        self.inst.status = Status::Running;
        self.inst.business_key = business_key;
        self.inst.started_by.clone_from(&started_by);
        let mut h = HistoryEvent::new(HistoryKind::Started, None);
        h.who = started_by;
        h.on_behalf_of = on_behalf_of;
        h.variables = inputs;
        self.history(h);
        let token = self.new_token(Vec::new());
        self.move_to(token, &start_node.name);
        Ok(())
    }

    fn open_job(&self, job: &JobId) -> Result<JobWait, Rejection> {
        let wait = self.inst.jobs.get(job).ok_or_else(|| Rejection::UnknownJob { job: job.clone() })?;
        if wait.incident.is_some() {
            return Err(Rejection::JobInIncident { job: job.clone() });
        }
        Ok(wait.clone())
    }

    fn job_completed(&mut self, job: &JobId, output: &serde_json::Value) -> Result<(), Rejection> {
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

    fn job_failed(&mut self, job: &JobId, message: String) -> Result<(), Rejection> {
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
            let text = format!("job `{}` failed {failures} time(s), no retries left: {message}", wait.job_type);
            self.raise_incident(wait.token, &node.name, Some(job.clone()), text);
        }
        Ok(())
    }

    /// Where a business error with `code` leads from `node`: the first `on error` with that code,
    /// else the first catch-all.
    fn error_boundary(node: &'d Node, code: &str) -> Option<&'d Boundary> {
        let boundaries = boundaries_of(node);
        boundaries
            .iter()
            .find(|b| matches!(&b.event, BoundaryEvent::Error { code: Some(c) } if c == code))
            .or_else(|| boundaries.iter().find(|b| matches!(b.event, BoundaryEvent::Error { code: None })))
    }

    fn job_business_error(&mut self, job: &JobId, code: String) -> Result<(), Rejection> {
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

    fn task_completed(
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

    fn task_delegated(&mut self, task: &TaskId, by: String, to: String) -> Result<(), Rejection> {
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
    fn separation_of_duties(&self, rules: &[CExpr], by: &str, on_behalf_of: &[&str]) -> Result<(), Rejection> {
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

    fn timer_fired(&mut self, timer: &TimerId) -> Result<(), Rejection> {
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
    fn reschedule(&mut self, fired: &TimerWait, every: &CExpr) {
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

    fn remind(&mut self, token: TokenId, overdue: bool) {
        let task = self.inst.tasks.iter().find(|(_, w)| w.token == token).map(|(k, _)| k.clone());
        if let Some(task) = task {
            self.effects.push(Effect::Remind { task, overdue });
        }
    }

    fn message_correlated(
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

    fn child_completed(
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

    fn child_failed(&mut self, call: &CallId, code: String) -> Result<(), Rejection> {
        let wait = self.inst.calls.get(call).cloned().ok_or_else(|| Rejection::UnknownCall { call: call.clone() })?;
        let node = self.node(&wait.node)?;
        self.inst.calls.remove(call);
        self.history(HistoryEvent::new(HistoryKind::ChildFailed, Some(&node.name)).detail(code.clone()));
        match Self::error_boundary(node, &code) {
            Some(b) => {
                self.close_waits(wait.token);
                self.move_to(wait.token, &b.next);
            }
            None => {
                let text =
                    format!("`{}` failed with `{code}`, not caught by an `on error` of `{}`", wait.process, node.name);
                self.raise_incident(wait.token, &node.name, None, text);
            }
        }
        Ok(())
    }

    fn cancel(&mut self, by: String) {
        self.close_all();
        let mut h = HistoryEvent::new(HistoryKind::Cancelled, None);
        h.who = Some(by.clone());
        self.history(h);
        self.effects.push(Effect::Cancelled { by: by.clone() });
        self.inst.status = Status::Cancelled { by };
    }

    fn retry_job(&mut self, job: &JobId) -> Result<(), Rejection> {
        let wait = self.inst.jobs.get(job).cloned().ok_or_else(|| Rejection::UnknownJob { job: job.clone() })?;
        let incident = wait.incident.clone().ok_or_else(|| Rejection::JobNotInIncident { job: job.clone() })?;
        self.close_incident(&incident, &wait.node);
        if let Some(w) = self.inst.jobs.get_mut(job) {
            w.incident = None;
        }
        self.effects.push(Effect::RetryJob { job: job.clone(), at: self.now, attempt: wait.failures + 1 });
        Ok(())
    }

    fn close_incident(&mut self, incident: &IncidentId, node: &str) {
        if let Some(i) = self.inst.incidents.remove(incident)
            && let Some(t) = self.inst.tokens.get_mut(&i.token)
        {
            t.state = TokenState::Waiting;
        }
        self.history(HistoryEvent::new(HistoryKind::IncidentResolved, Some(node)));
        self.effects.push(Effect::CloseIncident { incident: incident.clone() });
    }

    fn resolve_incident(&mut self, incident: &IncidentId) -> Result<(), Rejection> {
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

    // ---- running tokens ------------------------------------------------------------------

    fn run(&mut self) -> Result<(), Rejection> {
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

    fn execute(
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
            NodeKind::Task { job, inputs, retry, boundaries, timeout_secs, .. } => {
                let plan = (|| {
                    let input = self.input_object(inputs)?;
                    let mut opens = vec![Open::Job { job_type: job.clone(), input, retries: retry.attempts }];
                    self.boundary_timers(boundaries, &mut opens)?;
                    Ok::<_, String>(opens)
                })();
                let idempotency_key = format!("{}:{name}:{activation}", self.inst.id);
                self.open(token, node, plan, Some((idempotency_key, retry.clone(), *timeout_secs)));
            }
            NodeKind::Approval { roles, assignee, form, due, reminders, boundaries, .. } => {
                let plan = (|| {
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
                        Some(d) => self.timer_at(d)?,
                        None => None,
                    };
                    let mut opens =
                        vec![Open::Task { title, roles: roles.clone(), assignee, form: form.clone(), due_at }];
                    if let Some(at) = due_at {
                        opens.push(Open::Timer { at, purpose: TimerPurpose::Due });
                    }
                    for (index, r) in reminders.iter().enumerate() {
                        let at = match r {
                            Reminder::At(e) => self.timer_at(e)?,
                            Reminder::Every(e) => Some(self.after(self.interval(e)?)?),
                        };
                        if let Some(at) = at {
                            opens.push(Open::Timer { at, purpose: TimerPurpose::Reminder { index } });
                        }
                    }
                    self.boundary_timers(boundaries, &mut opens)?;
                    Ok(opens)
                })();
                self.open(token, node, plan, None);
            }
            NodeKind::Receive { message, key, boundaries, .. } => {
                let plan = (|| {
                    let key = self.correlation_key(key)?;
                    let mut opens =
                        vec![Open::Subscribe { message: message.clone(), key, purpose: SubscriptionPurpose::Receive }];
                    self.boundary_timers(boundaries, &mut opens)?;
                    Ok(opens)
                })();
                self.open(token, node, plan, None);
            }
            NodeKind::Wait { until, boundaries, .. } => {
                let plan = (|| {
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
                    self.boundary_timers(boundaries, &mut opens)?;
                    Ok(opens)
                })();
                self.open(token, node, plan, None);
            }
            NodeKind::First { arms } => {
                let plan = (|| {
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
                })();
                self.open(token, node, plan, None);
            }
            NodeKind::Call { process, inputs, boundaries, .. } => {
                let plan = (|| {
                    let inputs = self.input_object(inputs)?;
                    let mut opens = vec![Open::Call { process: process.clone(), inputs }];
                    self.boundary_timers(boundaries, &mut opens)?;
                    Ok(opens)
                })();
                self.open(token, node, plan, None);
            }
        }
        Ok(())
    }

    fn input_object(&self, inputs: &[Mapping]) -> Result<serde_json::Value, String> {
        let mut object = serde_json::Map::new();
        for m in inputs {
            object.insert(m.name.clone(), self.eval(&m.value)?.to_json());
        }
        Ok(serde_json::Value::Object(object))
    }

    fn correlation_key(&self, key: &CExpr) -> Result<String, String> {
        match self.eval(key)? {
            Value::Null => Err(format!("correlation key `{key}` is null")),
            Value::Text(s) => Ok(s),
            other => Ok(plain(&other)),
        }
    }

    fn boundary_timers(&self, boundaries: &[Boundary], opens: &mut Vec<Open>) -> Result<(), String> {
        for (index, b) in boundaries.iter().enumerate() {
            let BoundaryEvent::Timer { timer, .. } = &b.event else { continue };
            let at = match timer {
                TimerSpec::At(e) => self.timer_at(e)?,
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
    fn open(
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
    fn arrive(
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

fn boundaries_of(node: &Node) -> &[Boundary] {
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
fn plain(v: &Value) -> String {
    match v.to_json() {
        serde_json::Value::String(s) => s,
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn collect_users(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Text(u) => {
            out.insert(u.clone());
        }
        Value::List(items) => items.iter().for_each(|i| collect_users(i, out)),
        _ => {}
    }
}

/// Checks a submitted form against the approval's fields; every fault is listed.
fn validate_form(fields: &[FormField], form: &serde_json::Value) -> Result<BTreeMap<String, Value>, Rejection> {
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
