//! One place that compiles flows, runs instances and renders effects for assertions.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use cloverleaf_dsl::expr::Value;
use cloverleaf_dsl::{CompiledProcess, Project};
use cloverleaf_engine::{
    CallId, Effect, Event, Instance, JobId, Rejection, Status, SubscriptionId, TaskId, TimerId, TimerPurpose, step,
};
use serde_json::json;

/// The fixed start time of every scenario: Monday 2026-01-05 09:00 UTC.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()
}

/// Compiles one snippet (roles of the reference processes are in scope).
pub fn compile_snippet(src: &str) -> Vec<CompiledProcess> {
    let mut project = Project::new();
    let roles = crate::common::reference_files().into_iter().find(|(name, _)| name == "roles.flow");
    project.add("roles.flow", roles.expect("processes/roles.flow").1);
    project.add("snippet.flow", src);
    let compilation = project.compile();
    assert!(!compilation.has_errors(), "{}", compilation.render());
    compilation.processes
}

/// Every reference process, compiled together.
pub fn reference_processes() -> Vec<CompiledProcess> {
    let project = crate::common::reference_project();
    let compilation = project.compile();
    assert!(!compilation.has_errors(), "{}", compilation.render());
    compilation.processes
}

/// An instance under test, with its clock and the log of accepted events.
pub struct Run {
    pub def: CompiledProcess,
    pub instance: Instance,
    pub now: DateTime<Utc>,
    pub log: Vec<(Event, DateTime<Utc>)>,
    /// Every effect so far, in order.
    pub effects: Vec<Effect>,
}

impl Run {
    /// The first process of a snippet, not started.
    pub fn snippet(src: &str) -> Run {
        let def = compile_snippet(src).into_iter().next().expect("a process");
        Run::of(def)
    }

    /// A reference process by key, not started.
    pub fn reference(key: &str) -> Run {
        let def = reference_processes().into_iter().find(|p| p.key == key).expect("a reference process");
        Run::of(def)
    }

    /// A hand-made definition, not started.
    pub fn of_definition(def: CompiledProcess) -> Run {
        Run::of(def)
    }

    fn of(def: CompiledProcess) -> Run {
        let instance = Instance::new("i1", def.key.clone(), 1);
        Run { def, instance, now: t0(), log: Vec::new(), effects: Vec::new() }
    }

    /// Applies an event now; on success keeps the new state and returns the effects.
    pub fn send(&mut self, event: Event) -> Result<Vec<Effect>, Rejection> {
        let t = step(&self.def, &self.instance, event.clone(), self.now)?;
        self.instance = t.instance;
        self.log.push((event, self.now));
        self.effects.extend(t.effects.iter().cloned());
        Ok(t.effects)
    }

    /// Applies an event that must be accepted.
    pub fn ok(&mut self, event: Event) -> Vec<Effect> {
        let name = event.name();
        self.send(event).unwrap_or_else(|r| panic!("{name} rejected: {r}"))
    }

    /// Applies an event that must be refused, and checks the state did not change.
    pub fn refused(&mut self, event: Event) -> Rejection {
        let before = self.instance.clone();
        let r = self.send(event).expect_err("the event should be rejected");
        assert_eq!(self.instance, before);
        r
    }

    /// Starts with these inputs.
    pub fn start(&mut self, variables: serde_json::Value) -> Vec<Effect> {
        self.ok(Event::Start { variables, business_key: None, start: None, started_by: None, on_behalf_of: None })
    }

    /// Moves the clock on.
    pub fn advance(&mut self, secs: i64) {
        self.now += TimeDelta::seconds(secs);
    }

    /// The open job of this type.
    pub fn job(&self, job_type: &str) -> JobId {
        let found: Vec<&JobId> =
            self.instance.jobs().iter().filter(|(_, j)| j.job_type == job_type).map(|(k, _)| k).collect();
        assert_eq!(found.len(), 1, "open jobs of type {job_type}: {:?}", self.instance.jobs());
        found[0].clone()
    }

    /// The open task of this approval node.
    pub fn task(&self, node: &str) -> TaskId {
        let found: Vec<&TaskId> =
            self.instance.tasks().iter().filter(|(_, t)| t.node == node).map(|(k, _)| k).collect();
        assert_eq!(found.len(), 1, "open tasks at {node}: {:?}", self.instance.tasks());
        found[0].clone()
    }

    /// The open subscription at this node (the first one when several).
    pub fn subscription(&self, node: &str) -> SubscriptionId {
        self.instance
            .subscriptions()
            .iter()
            .find(|(_, s)| s.node == node)
            .map(|(k, _)| k.clone())
            .expect("subscription")
    }

    /// The open call at this node.
    pub fn call(&self, node: &str) -> CallId {
        self.instance.calls().iter().find(|(_, c)| c.node == node).map(|(k, _)| k.clone()).expect("call")
    }

    /// The open timer at this node with this purpose.
    pub fn timer(&self, node: &str, purpose: &TimerPurpose) -> TimerId {
        self.instance
            .timers()
            .iter()
            .find(|(_, t)| t.node == node && t.purpose == *purpose)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| panic!("no timer {purpose:?} at {node}: {:?}", self.instance.timers()))
    }

    /// Moves the clock to the timer's time and fires it.
    pub fn fire(&mut self, timer: TimerId) -> Vec<Effect> {
        let at = self.instance.timers()[&timer].at;
        if at > self.now {
            self.now = at;
        }
        self.ok(Event::TimerFired { timer })
    }

    /// Completes the open job of this type.
    pub fn complete_job(&mut self, job_type: &str, output: serde_json::Value) -> Vec<Effect> {
        let job = self.job(job_type);
        self.ok(Event::JobCompleted { job, output })
    }

    /// Completes the open task of this node as `by`.
    pub fn complete_task(&mut self, node: &str, by: &str, form: serde_json::Value) -> Result<Vec<Effect>, Rejection> {
        let task = self.task(node);
        self.send(Event::TaskCompleted { task, by: by.into(), on_behalf_of: None, form })
    }

    /// A variable's value.
    pub fn var(&self, name: &str) -> Value {
        self.instance.variable(name).cloned().unwrap_or_else(|| panic!("no variable {name}"))
    }

    /// The status.
    pub fn status(&self) -> &Status {
        self.instance.status()
    }

    /// The nodes where tokens are, sorted.
    pub fn token_nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = self.instance.tokens().values().map(|t| t.node.clone()).collect();
        nodes.sort();
        nodes
    }
}

/// The effects without history, one short line each: what a reader checks first.
pub fn lines(effects: &[Effect]) -> Vec<String> {
    effects.iter().filter_map(line).collect()
}

fn line(e: &Effect) -> Option<String> {
    Some(match e {
        Effect::CreateJob { job, job_type, input, idempotency_key, .. } => {
            format!("create job {job} {job_type} {input} key={idempotency_key}")
        }
        Effect::RetryJob { job, at, attempt } => format!("retry job {job} at {} attempt {attempt}", at.to_rfc3339()),
        Effect::CancelJob { job } => format!("cancel job {job}"),
        Effect::CreateTask { task, title, roles, assignee, due_at, .. } => format!(
            "create task {task} \"{title}\" roles={} assignee={} due={}",
            roles.join(","),
            assignee.as_deref().unwrap_or("-"),
            due_at.map_or("-".to_string(), |d| d.to_rfc3339())
        ),
        Effect::CancelTask { task } => format!("cancel task {task}"),
        Effect::AssignTask { task, to } => format!("assign task {task} to {to}"),
        Effect::Remind { task, overdue } => format!("remind {task}{}", if *overdue { " overdue" } else { "" }),
        Effect::ScheduleTimer { timer, node, at } => format!("timer {timer} {node} at {}", at.to_rfc3339()),
        Effect::CancelTimer { timer } => format!("cancel timer {timer}"),
        Effect::Subscribe { subscription, message, correlation_key, .. } => {
            format!("subscribe {subscription} {message} key={correlation_key}")
        }
        Effect::Unsubscribe { subscription } => format!("unsubscribe {subscription}"),
        Effect::StartChild { call, process, inputs, .. } => format!("start child {call} {process} {inputs}"),
        Effect::CancelChild { call } => format!("cancel child {call}"),
        Effect::RaiseIncident { incident, node, message, .. } => format!("incident {incident} at {node}: {message}"),
        Effect::CloseIncident { incident } => format!("close incident {incident}"),
        Effect::Completed { outcome } => format!("completed {}", outcome.as_deref().unwrap_or("-")),
        Effect::Failed { code } => format!("failed {code}"),
        Effect::Cancelled { by } => format!("cancelled by {by}"),
        Effect::History(_) => return None,
    })
}

/// Money (or any number) as a value.
pub fn num(text: &str) -> Value {
    Value::Number(text.parse().unwrap())
}

/// Text as a value.
pub fn text(s: &str) -> Value {
    Value::Text(s.into())
}

/// The standard order inputs.
pub fn order(amount: &str) -> serde_json::Value {
    json!({"order_id": "SO-1", "customer_id": "C-7", "amount": amount, "requested_by": "rita"})
}

/// The credit check's answer.
pub fn credit(limit: &str, open_ar: &str, risk: &str) -> serde_json::Value {
    json!({"credit_limit": limit, "open_ar": open_ar, "risk": risk})
}

/// Variables as typed values, for `ChildCompleted`.
pub fn vars(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// Pretty JSON through serde_json (numbers keep their exact text), for snapshots.
pub fn pretty<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap()
}
