//! The transition function: `(definition, instance, event, now) → (instance, effects)`.
//!
//! [`step`] is the one table of accepted (status, event) pairs; everything else is a
//! [`Rejection`]. Accepted events move tokens through the graph until every token waits again
//! (a job, a task, a timer, a message, a child, a join or an incident) or the instance ends.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, TimeDelta, Utc};
use cloverleaf_dsl::CompiledProcess;
use cloverleaf_dsl::calendar::Calendar;
use cloverleaf_dsl::expr::{EvalContext, EvalError, Type, Value, eval};
use cloverleaf_dsl::model::{CExpr, FormField, Mapping, Node, NodeKind, Trigger, admit};
use serde::{Deserialize, Serialize};

use crate::effect::{Effect, HistoryEvent, HistoryKind};
use crate::event::Event;
use crate::ids::{CallId, IncidentId, JobId, SubscriptionId, TaskId, TimerId, TokenId};
use crate::instance::{Frame, Incident, Instance, Status, SubscriptionPurpose, TimerPurpose, Token, TokenState};
use crate::rejection::Rejection;

/// A title template with its `{expression}` placeholders evaluated on `variables` at `now`
/// (business time on `calendar`): what a task's title becomes when it opens. A placeholder that
/// does not evaluate stays as written.
pub fn render_title(
    template: &str,
    variables: &BTreeMap<String, Value>,
    now: DateTime<Utc>,
    calendar: Option<&Calendar>,
) -> String {
    render_title_with(template, variables, now, calendar, &|_, _| None)
}

/// [`render_title`] for a reader: `show` may word a placeholder's value (given the placeholder as
/// written, trimmed, and its value) as that reader reads it, money with its currency for one;
/// `None` keeps the plain text every title gets.
pub fn render_title_with(
    template: &str,
    variables: &BTreeMap<String, Value>,
    now: DateTime<Utc>,
    calendar: Option<&Calendar>,
    show: &dyn Fn(&str, &Value) -> Option<String>,
) -> String {
    let context = EvalContext::new(variables, now).with_calendar(calendar);
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| open + c) else { break };
        out.push_str(&rest[..open]);
        let inner = &rest[open + 1..close];
        match CExpr::parse(inner.trim()).ok().and_then(|e| eval(e.ast(), &context).ok()) {
            Some(v) => out.push_str(&show(inner.trim(), &v).unwrap_or_else(|| plain(&v))),
            None => out.push_str(&rest[open..=close]),
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

mod events;
mod migrate;
mod modify;
mod nodes;

pub use migrate::{
    Migration, MigrationPlan, TokenMove, WaitAction, WaitChange, WaitKind, check_mapping, migrate, replay_versions,
};
use nodes::plain;

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
        (Status::Created, Event::StartRefused { reason }) => m.start_refused(reason),
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
        (Status::Running, Event::Modify { modification, by, reason }) => m.modify(modification, by, reason)?,
        // A migration needs the definition it leaves as well: see `migrate`.
        (status, Event::Migrate { .. }) => {
            return Err(Rejection::InvalidState {
                event: "migrate (applied by `migrate`, with both definitions)".to_string(),
                status: status_word(status),
            });
        }
        (status, event) => {
            return Err(Rejection::InvalidState { event: event.name().to_string(), status: status_word(status) });
        }
    }
    m.finish()
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

    /// Runs queued tokens until each waits again, then closes the step: incidents for stuck
    /// tokens, completion when no token is left, the version bumped.
    fn finish(mut self) -> Result<Transition, Rejection> {
        self.run()?;
        self.raise_if_stuck();
        if self.inst.status == Status::Running && self.inst.tokens.is_empty() {
            let outcome = self.inst.last_outcome.clone();
            self.history(HistoryEvent::new(HistoryKind::Completed, None));
            self.effects.push(Effect::Completed { outcome: outcome.clone() });
            self.inst.status = Status::Completed { outcome };
        }
        self.inst.version += 1;
        Ok(Transition { instance: self.inst, effects: self.effects })
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
        self.eval_on(expr, self.def.calendar.as_ref())
    }

    /// Evaluates `expr` with business time counted on `calendar`.
    fn eval_on(&self, expr: &CExpr, calendar: Option<&Calendar>) -> Result<Value, String> {
        let ctx = EvalContext::new(&self.inst.variables, self.now).with_calendar(calendar);
        eval(expr.ast(), &ctx).map_err(|e| format!("`{}`: {e}", expr.source()))
    }

    /// The calendar an approval's times count on: its roles' (`calendar` on the node, kept in
    /// the definition's role calendars), or else the process's.
    fn task_calendar(&self, named: Option<&String>) -> Option<&Calendar> {
        named.and_then(|name| self.def.role_calendars.get(name)).or(self.def.calendar.as_ref())
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
        self.timer_at_on(expr, self.def.calendar.as_ref())
    }

    /// [`Self::timer_at`] with business time counted on `calendar`.
    fn timer_at_on(&self, expr: &CExpr, calendar: Option<&Calendar>) -> Result<Option<DateTime<Utc>>, String> {
        match self.eval_on(expr, calendar)? {
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
        render_title(template, &self.inst.variables, self.now, self.def.calendar.as_ref())
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
        let ctx = EvalContext::new(source, self.now).with_calendar(self.def.calendar.as_ref());
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
                    let ctx =
                        EvalContext::new(&self.inst.variables, self.now).with_calendar(self.def.calendar.as_ref());
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
}
