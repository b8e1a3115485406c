//! Instance migration: a running instance moved to another deployed version of its definition,
//! planned from the two graphs and the instance alone (no IO, no clock: `now` comes in).
//!
//! A token keeps its place: a node of the same name is the same node, unless the mapping names
//! another (a renamed node). What a token waits for is kept when the new node would open the same
//! thing (the same job type and inputs; the same task roles, assignee, form, due and title; the
//! same message and key; the same timer expression; the same called process), and otherwise
//! closed and re-created as the new node opens it, from `now`. A renamed node's jobs, tasks,
//! timers and subscriptions are re-created, since their rows name the node; a call is kept (its
//! child runs on). Variables the new version declares are added with their defaults (null
//! without one), those it no longer declares are removed, and a value whose type changed is
//! converted when it converts without loss.
//!
//! Refused, with every reason at once ([`Rejection::CannotMigrate`]): an instance that is not
//! running; a token at a node the new version lacks and the mapping does not name; a token that
//! would change the kind of node it is at; a token inside a parallel branch (or a side path)
//! whose split, join or branches change, or that would land in another branch context; a
//! running call whose node calls another process; a value that does not convert to its
//! variable's new type; a new required input without a default.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrono::{DateTime, Utc};
use cloverleaf_dsl::CompiledProcess;
use cloverleaf_dsl::expr::{EvalContext, Type, Value, eval};
use cloverleaf_dsl::model::{Node, NodeKind};
use serde::{Deserialize, Serialize};

use crate::effect::{HistoryEvent, HistoryKind};
use crate::event::Event;
use crate::ids::TokenId;
use crate::instance::{Frame, Instance, Status, TimerPurpose, TokenState};
use crate::rejection::Rejection;

use super::nodes::boundaries_of;
use super::{Machine, Open, Transition, status_word, step};

/// A migration to apply to instances: the definition they run, the one they move to, renamed
/// nodes, and who asks and why (recorded in each instance's history).
#[derive(Debug, Clone, Copy)]
pub struct Migration<'a> {
    /// The definition the instances run now.
    pub from: &'a CompiledProcess,
    /// The definition they move to.
    pub to: &'a CompiledProcess,
    /// The deployed version of `to`.
    pub to_version: u32,
    /// Renamed nodes, old name → new name; a node of the same name maps to itself.
    pub mapping: &'a BTreeMap<String, String>,
    /// The operator.
    pub by: &'a str,
    /// Why, in the operator's words.
    pub reason: &'a str,
}

impl Migration<'_> {
    /// The event an instance's log records for this migration.
    pub fn event(&self, instance: &Instance) -> Event {
        Event::Migrate {
            from_version: instance.process_version,
            to_version: self.to_version,
            mapping: self.mapping.clone(),
            by: self.by.to_string(),
            reason: self.reason.to_string(),
        }
    }

    /// The node of the new version a node of the old one maps to.
    fn target(&self, old: &str) -> Option<String> {
        match self.mapping.get(old) {
            Some(new) => self.to.node(new).map(|n| n.name.clone()),
            None => self.to.node(old).map(|n| n.name.clone()),
        }
    }
}

/// Where a token went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenMove {
    /// The token.
    pub token: TokenId,
    /// Its node in the old version.
    pub from: String,
    /// Its node in the new version.
    pub to: String,
}

/// The kind of an open wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitKind {
    /// A job for a worker.
    Job,
    /// A human task.
    Task,
    /// A timer.
    Timer,
    /// A message subscription.
    Subscription,
    /// A called child instance.
    Call,
    /// An incident.
    Incident,
}

/// What a migration does to a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitAction {
    /// Left as it is.
    Kept,
    /// Closed (its node changed, or was renamed).
    Closed,
    /// Opened by the new version's node (re-created, or new).
    Opened,
}

/// One wait of the instance and what the migration does to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitChange {
    /// What kind of wait.
    pub kind: WaitKind,
    /// Its id.
    pub id: String,
    /// Its node.
    pub node: String,
    /// What becomes of it.
    pub action: WaitAction,
}

/// What a migration does (or, in a dry run, would do) to one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationPlan {
    /// The version it ran.
    pub from_version: u32,
    /// The version it runs afterwards.
    pub to_version: u32,
    /// Every token, with its node before and after.
    pub tokens: Vec<TokenMove>,
    /// Every wait kept, closed or opened.
    pub waits: Vec<WaitChange>,
    /// Variables the new version declares, added with their defaults.
    pub added: Vec<String>,
    /// Variables the new version no longer declares, removed.
    pub removed: Vec<String>,
    /// Variables whose type changed, their values converted.
    pub converted: Vec<String>,
}

/// Checks a node mapping against both definitions: every old name is a node of `from`, every
/// new name a node of `to`. Returns every problem (empty: the mapping is sound).
pub fn check_mapping(
    from: &CompiledProcess,
    to: &CompiledProcess,
    mapping: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    if from.key != to.key {
        problems
            .push(("process".to_string(), format!("`{}` cannot migrate to another process `{}`", from.key, to.key)));
    }
    for (old, new) in mapping {
        if from.node(old).is_none() {
            problems.push((format!("mapping {old}"), format!("`{old}` is not a node of the version migrated from")));
        }
        if to.node(new).is_none() {
            problems.push((format!("mapping {old}"), format!("`{new}` is not a node of the version migrated to")));
        }
    }
    problems
}

/// Moves `instance` to the new version of its definition at `now`: the transition (the
/// instance on its new version, the effects closing and opening waits, and a `migrated`
/// history entry naming the operator and the reason) and the plan that describes it, or every
/// reason the move is unsafe. Pure: a dry run is this call with its result thrown away.
pub fn migrate(
    migration: &Migration<'_>,
    instance: &Instance,
    now: DateTime<Utc>,
) -> Result<(Transition, MigrationPlan), Rejection> {
    let (from, to) = (migration.from, migration.to);
    if from.key != instance.process || to.key != instance.process {
        return Err(Rejection::WrongDefinition { instance: instance.process.clone(), definition: to.key.clone() });
    }
    let mut problems = check_mapping(from, to, migration.mapping);
    if instance.status != Status::Running {
        problems.push((
            "instance".to_string(),
            format!("it is {}: only a running instance migrates", status_word(&instance.status)),
        ));
        return Err(Rejection::CannotMigrate { problems });
    }
    let (variables, vars) = migrate_variables(from, to, instance, now, &mut problems);
    let moves = plan_tokens(migration, instance, &mut problems);
    if !problems.is_empty() {
        return Err(Rejection::CannotMigrate { problems });
    }

    let mut inst = instance.clone();
    inst.process_version = migration.to_version;
    inst.variables = variables;
    for (old, new) in migration.mapping {
        if old != new
            && let Some(n) = inst.activations.remove(old)
        {
            let entry = inst.activations.entry(new.clone()).or_insert(0);
            *entry = (*entry).max(n);
        }
    }
    let mut m = Machine::new(to, inst, now);
    let mut h = HistoryEvent::new(HistoryKind::Migrated, None).detail(format!(
        "migrated from v{} to v{}: {}",
        instance.process_version, migration.to_version, migration.reason
    ));
    h.who = Some(migration.by.to_string());
    m.history(h);
    for mv in &moves {
        let Some(old_node) = from.node(&mv.from) else { continue };
        let Some(new_node) = to.node(&mv.to) else { continue };
        move_token(&mut m, mv.token, old_node, new_node, &mut problems);
    }
    if !problems.is_empty() {
        return Err(Rejection::CannotMigrate { problems });
    }
    let transition = m.finish()?;
    let plan = MigrationPlan {
        from_version: instance.process_version,
        to_version: migration.to_version,
        tokens: moves,
        waits: wait_changes(instance, &transition.instance),
        added: vars.added,
        removed: vars.removed,
        converted: vars.converted,
    };
    Ok((transition, plan))
}

/// Applies a recorded event log across versions: [`crate::replay`] for a log that may hold
/// migrations, each version's definition found by `definition`.
pub fn replay_versions<'a, 'd>(
    definition: impl Fn(u32) -> Option<&'d CompiledProcess>,
    instance: Instance,
    events: impl IntoIterator<Item = (&'a Event, DateTime<Utc>)>,
) -> Result<Instance, Rejection> {
    let lookup = |process: &str, version: u32| {
        definition(version).ok_or_else(|| Rejection::UnknownVersion { process: process.to_string(), version })
    };
    let mut current = instance;
    for (event, now) in events {
        let def = lookup(&current.process, current.process_version)?;
        current = match event {
            Event::Migrate { to_version, mapping, by, reason, .. } => {
                let to = lookup(&current.process, *to_version)?;
                let migration = Migration { from: def, to, to_version: *to_version, mapping, by, reason };
                migrate(&migration, &current, now)?.0.instance
            }
            other => step(def, &current, other.clone(), now)?.instance,
        };
    }
    Ok(current)
}

// ---- variables ---------------------------------------------------------------------------

#[derive(Default)]
struct VariableChanges {
    added: Vec<String>,
    removed: Vec<String>,
    converted: Vec<String>,
}

/// The declared type of every name a process gives a value: inputs, variables, form fields.
fn types(def: &CompiledProcess) -> BTreeMap<&str, &Type> {
    let mut types = BTreeMap::new();
    for v in def.inputs.iter().chain(&def.vars) {
        types.insert(v.name.as_str(), &v.ty);
    }
    for node in &def.nodes {
        if let NodeKind::Approval { form, .. } = &node.kind {
            for f in form {
                types.entry(f.name.as_str()).or_insert(&f.ty);
            }
        }
    }
    types
}

/// Every variable name a process declares: inputs, variables, form fields and approval records.
fn declared(def: &CompiledProcess) -> BTreeSet<&str> {
    let mut names: BTreeSet<&str> = types(def).into_keys().collect();
    for node in &def.nodes {
        if matches!(node.kind, NodeKind::Approval { .. }) {
            names.insert(node.name.as_str());
        }
    }
    names
}

fn migrate_variables(
    from: &CompiledProcess,
    to: &CompiledProcess,
    instance: &Instance,
    now: DateTime<Utc>,
    problems: &mut Vec<(String, String)>,
) -> (BTreeMap<String, Value>, VariableChanges) {
    let (old_types, new_types) = (types(from), types(to));
    let (old_names, new_names) = (declared(from), declared(to));
    let mut changes = VariableChanges::default();
    let mut variables = BTreeMap::new();
    for (name, value) in &instance.variables {
        if old_names.contains(name.as_str()) && !new_names.contains(name.as_str()) {
            changes.removed.push(name.clone());
            continue;
        }
        let (old_ty, new_ty) = (old_types.get(name.as_str()), new_types.get(name.as_str()));
        let value = match new_ty {
            Some(ty) if old_ty != Some(ty) && **ty != Type::Any && *value != Value::Null => {
                match Value::from_json(&value.to_json(), ty) {
                    Ok(converted) if converted.to_json() == value.to_json() => {
                        changes.converted.push(name.clone());
                        converted
                    }
                    _ => {
                        let was = old_ty.map_or("undeclared".to_string(), |t| t.to_string());
                        problems.push((
                            format!("variable {name}"),
                            format!(
                                "it holds {value} ({was}), which does not convert to `{ty}` without loss: keep its \
                                 type in the new version, or finish this instance on its version"
                            ),
                        ));
                        continue;
                    }
                }
            }
            _ => value.clone(),
        };
        variables.insert(name.clone(), value);
    }
    for def in to.inputs.iter().chain(&to.vars) {
        let is_input = to.inputs.iter().any(|i| i.name == def.name);
        match variables.get(&def.name) {
            Some(Value::Null) if is_input && !def.optional && def.default.is_none() => {
                problems.push((
                    format!("variable {}", def.name),
                    "it is null, and the new version makes it a required input: give it a default".to_string(),
                ));
                continue;
            }
            Some(_) => continue,
            None => {}
        }
        let value = match &def.default {
            Some(default) => {
                let ctx = EvalContext::new(&variables, now).with_calendar(to.calendar.as_ref());
                let value = eval(default.ast(), &ctx).map_err(|e| e.to_string()).and_then(|v| match def.ty {
                    Type::Any => Ok(v),
                    _ => Value::from_json(&v.to_json(), &def.ty).map_err(|e| e.to_string()),
                });
                match value {
                    Ok(v) => v,
                    Err(e) => {
                        problems.push((format!("variable {}", def.name), format!("its default `{default}`: {e}")));
                        continue;
                    }
                }
            }
            None if is_input && !def.optional => {
                problems.push((
                    format!("variable {}", def.name),
                    "the new version adds it as a required input without a default, which a running instance \
                     cannot supply: give it a default or make it optional"
                        .to_string(),
                ));
                continue;
            }
            None => Value::Null,
        };
        changes.added.push(def.name.clone());
        variables.insert(def.name.clone(), value);
    }
    // Form fields and approval records start as null, as at a start.
    for name in new_names {
        if !variables.contains_key(name) {
            changes.added.push(name.to_string());
            variables.insert(name.to_string(), Value::Null);
        }
    }
    changes.added.sort();
    (variables, changes)
}

// ---- tokens ------------------------------------------------------------------------------

/// One level of a node's branch context in a graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ctx {
    /// Branch `index` of the split.
    Branch(String, usize),
    /// The side path started by a non-interrupting event of the node.
    Side(String),
}

/// The branch context of every node reachable from a start, outermost first. A join is labelled
/// with the context around its split (a token waiting there still carries its branch frame).
/// The compiler has made sure that every node has one context (E0407), so the first wins.
pub(super) fn contexts(def: &CompiledProcess) -> BTreeMap<&str, Vec<Ctx>> {
    let mut out: BTreeMap<&str, Vec<Ctx>> = BTreeMap::new();
    let mut queue: VecDeque<(&str, Vec<Ctx>)> = def
        .nodes
        .iter()
        .filter(|n| matches!(n.kind, NodeKind::Start { .. }))
        .map(|n| (n.name.as_str(), Vec::new()))
        .collect();
    let enter = |to: &str, mut ctx: Vec<Ctx>| {
        if let Some(NodeKind::Join { split, .. }) = def.node(to).map(|n| &n.kind)
            && matches!(ctx.last(), Some(Ctx::Branch(s, _)) if s == split)
        {
            ctx.pop();
        }
        ctx
    };
    while let Some((name, ctx)) = queue.pop_front() {
        if out.contains_key(name) {
            continue;
        }
        let Some(node) = def.node(name) else { continue };
        out.insert(&node.name, ctx.clone());
        if let NodeKind::Split { branches, .. } = &node.kind {
            for (i, b) in branches.iter().enumerate() {
                let mut c = ctx.clone();
                c.push(Ctx::Branch(node.name.clone(), i));
                queue.push_back((b.as_str(), enter(b, c)));
            }
            continue;
        }
        node.kind.for_each_flow(|to, flow| {
            let mut c = ctx.clone();
            if flow.is_side_path() {
                c.push(Ctx::Side(node.name.clone()));
            }
            queue.push_back((to, enter(to, c)));
        });
    }
    out
}

fn describe(ctx: &[Ctx]) -> String {
    if ctx.is_empty() {
        return "the main flow".to_string();
    }
    ctx.iter()
        .map(|c| match c {
            Ctx::Branch(split, i) => format!("branch {} of `{split}`", i + 1),
            Ctx::Side(owner) => format!("the side path of `{owner}`"),
        })
        .collect::<Vec<_>>()
        .join(" in ")
}

/// Where every token goes, checking what must hold for it to go there.
fn plan_tokens(migration: &Migration<'_>, instance: &Instance, problems: &mut Vec<(String, String)>) -> Vec<TokenMove> {
    let (from, to) = (migration.from, migration.to);
    let new_contexts = contexts(to);
    let mut moves = Vec::new();
    for (id, token) in &instance.tokens {
        let at = format!("token {id}");
        let Some(old_node) = from.node(&token.node) else {
            problems.push((at, format!("it is at `{}`, which the version it runs does not have", token.node)));
            continue;
        };
        let Some(new_name) = migration.target(&token.node) else {
            problems.push((
                at,
                format!(
                    "it is at `{}`, which the new version does not have: map it to a node of the new version \
                     (\"mapping\": {{\"{}\": \"...\"}})",
                    token.node, token.node
                ),
            ));
            continue;
        };
        let Some(new_node) = to.node(&new_name) else { continue };
        if old_node.kind.word() != new_node.kind.word() {
            problems.push((
                at,
                format!(
                    "it is at {} `{}`, and `{new_name}` is a {} in the new version: a token keeps the kind of node \
                     it is at; map it to a {}",
                    article(old_node.kind.word()),
                    token.node,
                    new_node.kind.word(),
                    old_node.kind.word()
                ),
            ));
            continue;
        }
        // A token at a join still carries the frame of the branch it came by.
        let mut frames = token.frames.clone();
        if let NodeKind::Join { split, .. } = &old_node.kind
            && matches!(frames.last(), Some(Frame::Branch { split: s, .. }) if s == split)
        {
            frames.pop();
            if let (NodeKind::Join { split: new_split, .. }, Some(mapped)) = (&new_node.kind, migration.target(split))
                && *new_split != mapped
            {
                problems.push((
                    at.clone(),
                    format!("it waits at join `{}` of `{split}`; `{new_name}` joins `{new_split}` instead", token.node),
                ));
            }
        }
        let mut projected = Vec::new();
        let mut lost = false;
        for frame in &frames {
            match frame {
                Frame::Branch { split, branch, .. } => match split_unchanged(migration, split) {
                    Ok(new_split) => projected.push(Ctx::Branch(new_split, *branch)),
                    Err(why) => {
                        problems.push((
                            at.clone(),
                            format!(
                                "it is inside branch {} of the parallel `{split}`, which {why}: a token \
                                     inside a parallel branch cannot move while its split changes; let the \
                                     branches join first",
                                branch + 1
                            ),
                        ));
                        lost = true;
                    }
                },
                Frame::Side { owner, .. } => match migration.target(owner) {
                    Some(new_owner) => projected.push(Ctx::Side(new_owner)),
                    None => {
                        problems.push((
                            at.clone(),
                            format!("it is on the side path of `{owner}`, which the new version does not have"),
                        ));
                        lost = true;
                    }
                },
            }
        }
        if !lost {
            match new_contexts.get(new_name.as_str()) {
                Some(expected) if *expected == projected => {}
                Some(expected) => problems.push((
                    at.clone(),
                    format!(
                        "it is in {} at `{}`, but `{new_name}` is in {} in the new version",
                        describe(&projected),
                        token.node,
                        describe(expected)
                    ),
                )),
                None => problems
                    .push((at.clone(), format!("`{new_name}` cannot be reached from a start in the new version"))),
            }
        }
        if let (NodeKind::Call { process: a, .. }, NodeKind::Call { process: b, .. }) = (&old_node.kind, &new_node.kind)
            && a != b
            && instance.calls.values().any(|c| c.token == *id)
        {
            problems.push((
                at.clone(),
                format!(
                    "it waits for a running `{a}` called by `{}`, and `{new_name}` calls `{b}`: a running child \
                     cannot be moved to another process",
                    token.node
                ),
            ));
        }
        moves.push(TokenMove { token: *id, from: token.node.clone(), to: new_name });
    }
    moves
}

fn article(word: &str) -> String {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) { format!("an {word}") } else { format!("a {word}") }
}

/// The new name of split `split` when its branches and join are the same in the new version.
fn split_unchanged(migration: &Migration<'_>, split: &str) -> Result<String, String> {
    let Some(NodeKind::Split { branches, join }) = migration.from.node(split).map(|n| &n.kind) else {
        return Err("the version it runs does not have".to_string());
    };
    let Some(new_name) = migration.target(split) else {
        return Err("the new version does not have".to_string());
    };
    let Some(NodeKind::Split { branches: new_branches, join: new_join }) =
        migration.to.node(&new_name).map(|n| &n.kind)
    else {
        return Err(format!("is no parallel in the new version (`{new_name}`)"));
    };
    if branches.len() != new_branches.len() {
        return Err(format!("has {} branches in the new version instead of {}", new_branches.len(), branches.len()));
    }
    if migration.target(join).as_deref() != Some(new_join.as_str()) {
        return Err(format!("joins at `{new_join}` in the new version instead of `{join}`"));
    }
    for (old, new) in branches.iter().zip(new_branches) {
        if migration.target(old).as_deref() != Some(new.as_str()) {
            return Err(format!("starts a branch at `{new}` in the new version instead of `{old}`"));
        }
    }
    Ok(new_name)
}

// ---- waits -------------------------------------------------------------------------------

/// The part of a wait node that decides what it opens (not where it leads): equal parts open
/// equal waits.
fn wait_config(node: &Node) -> serde_json::Value {
    use serde_json::json;
    match &node.kind {
        NodeKind::Task { job, inputs, .. } => json!({"job": job, "inputs": inputs}),
        NodeKind::Approval { roles, assignee, form, due, .. } => {
            json!({"roles": roles, "assignee": assignee, "form": form, "due": due, "title": node.title})
        }
        NodeKind::Receive { message, key, .. } => json!({"message": message, "key": key}),
        NodeKind::Wait { until, .. } => json!({"until": until}),
        NodeKind::First { arms } => json!(arms.iter().map(|a| &a.event).collect::<Vec<_>>()),
        NodeKind::Call { process, .. } => json!({"process": process}),
        _ => serde_json::Value::Null,
    }
}

/// What decides when a node's timer of `purpose` fires (`Null`: the node has no such timer).
fn timer_spec(node: &Node, purpose: &TimerPurpose) -> serde_json::Value {
    let value = match (purpose, &node.kind) {
        (TimerPurpose::Boundary { index }, _) => {
            boundaries_of(node).get(*index).map(|b| serde_json::to_value(&b.event))
        }
        (TimerPurpose::Reminder { index }, NodeKind::Approval { reminders, .. }) => {
            reminders.get(*index).map(serde_json::to_value)
        }
        (TimerPurpose::Due, NodeKind::Approval { due, .. }) => due.as_ref().map(serde_json::to_value),
        (TimerPurpose::Wait, NodeKind::Wait { until, .. }) => Some(serde_json::to_value(until)),
        (TimerPurpose::FirstArm { index }, NodeKind::First { arms }) => {
            arms.get(*index).map(|a| serde_json::to_value(&a.event))
        }
        _ => None,
    };
    value.and_then(Result::ok).unwrap_or(serde_json::Value::Null)
}

/// Moves one token: its waits kept when the new node opens the same, else closed and opened
/// again by entering the new node.
fn move_token(m: &mut Machine<'_>, token: TokenId, old: &Node, new: &Node, problems: &mut Vec<(String, String)>) {
    let renamed = old.name != new.name;
    let Some(state) = m.inst.tokens.get(&token).map(|t| t.state.clone()) else { return };
    if let Some(t) = m.inst.tokens.get_mut(&token) {
        t.node = new.name.clone();
    }
    let is_call = matches!(new.kind, NodeKind::Call { .. });
    let waits = !matches!(wait_config(new), serde_json::Value::Null);
    if state == TokenState::AtJoin {
        return;
    }
    if !waits {
        // A token stuck on an incident at a decide, set or join: its incident names the node.
        if renamed {
            m.close_waits(token);
            m.move_to(token, &new.name);
        }
        return;
    }
    if is_call {
        for call in m.inst.calls.values_mut().filter(|c| c.token == token) {
            call.node = new.name.clone();
        }
    } else if renamed || wait_config(old) != wait_config(new) {
        m.close_waits(token);
        m.move_to(token, &new.name);
        return;
    }
    // The main wait stays: timers whose expression changed are re-created, new ones opened.
    let stale: Vec<_> = m
        .inst
        .timers
        .iter()
        .filter(|(_, t)| t.token == token && (renamed || timer_spec(old, &t.purpose) != timer_spec(new, &t.purpose)))
        .map(|(id, _)| id.clone())
        .collect();
    for timer in stale {
        m.inst.timers.remove(&timer);
        m.effects.push(crate::effect::Effect::CancelTimer { timer });
    }
    let opens = match m.opens_of(new) {
        Ok(opens) => opens,
        Err(e) => {
            problems.push((format!("token {token}"), format!("the timers of `{}` in the new version: {e}", new.name)));
            return;
        }
    };
    let fresh: Vec<Open> = opens
        .into_iter()
        .filter(|o| match o {
            Open::Timer { purpose, .. } => renamed || timer_spec(old, purpose) != timer_spec(new, purpose),
            _ => false,
        })
        .collect();
    if !fresh.is_empty() {
        m.open(token, new, Ok(fresh), None);
    }
}

/// Every wait before and after, with what became of it.
fn wait_changes(before: &Instance, after: &Instance) -> Vec<WaitChange> {
    let mut out = Vec::new();
    let mut compare = |kind: WaitKind, old: Vec<(String, String)>, new: Vec<(String, String)>| {
        let new_ids: BTreeSet<&String> = new.iter().map(|(id, _)| id).collect();
        let old_ids: BTreeSet<&String> = old.iter().map(|(id, _)| id).collect();
        for (id, node) in &old {
            let action = if new_ids.contains(id) { WaitAction::Kept } else { WaitAction::Closed };
            let node = new.iter().find(|(i, _)| i == id).map_or(node, |(_, n)| n);
            out.push(WaitChange { kind, id: id.clone(), node: node.clone(), action });
        }
        for (id, node) in &new {
            if !old_ids.contains(id) {
                out.push(WaitChange { kind, id: id.clone(), node: node.clone(), action: WaitAction::Opened });
            }
        }
    };
    compare(
        WaitKind::Job,
        before.jobs.iter().map(|(k, w)| (k.0.clone(), w.node.clone())).collect(),
        after.jobs.iter().map(|(k, w)| (k.0.clone(), w.node.clone())).collect(),
    );
    compare(
        WaitKind::Task,
        before.tasks.iter().map(|(k, w)| (k.0.clone(), w.node.clone())).collect(),
        after.tasks.iter().map(|(k, w)| (k.0.clone(), w.node.clone())).collect(),
    );
    compare(
        WaitKind::Timer,
        before.timers.iter().map(|(k, w)| (k.0.clone(), w.node.clone())).collect(),
        after.timers.iter().map(|(k, w)| (k.0.clone(), w.node.clone())).collect(),
    );
    compare(
        WaitKind::Subscription,
        before.subscriptions.iter().map(|(k, w)| (k.0.clone(), w.node.clone())).collect(),
        after.subscriptions.iter().map(|(k, w)| (k.0.clone(), w.node.clone())).collect(),
    );
    compare(
        WaitKind::Call,
        before.calls.iter().map(|(k, w)| (k.0.clone(), w.node.clone())).collect(),
        after.calls.iter().map(|(k, w)| (k.0.clone(), w.node.clone())).collect(),
    );
    compare(
        WaitKind::Incident,
        before.incidents.iter().map(|(k, w)| (k.0.clone(), w.node.clone())).collect(),
        after.incidents.iter().map(|(k, w)| (k.0.clone(), w.node.clone())).collect(),
    );
    out
}
