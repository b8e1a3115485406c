//! Lowering: each node of the tree becomes a compiled node, and targets written in place
//! (`-> decide { ... }`, `-> set { ... } -> next`) become anonymous nodes named after their owner.

use std::collections::HashMap;

use super::{ProcessChecker, twice};
use crate::analysis::LNode;
use crate::ast::{self, Target};
use crate::codes;
use crate::diag::Span;
use crate::expr::Type;
use crate::model::{
    Arm, Boundary, BoundaryEvent, CExpr, EndKind, FirstArm, FirstEvent, FormField, NodeKind, Reminder, RetryPolicy,
    TimerSpec, Trigger, WaitUntil,
};
use crate::suggest::did_you_mean;

impl ProcessChecker<'_> {
    /// Lowers one node; anonymous nodes its targets create follow it in `nodes`.
    pub(super) fn lower_node(&mut self, node: &ast::Node) {
        let title = self.title(&node.title, node.head);
        let title_zh = self.title(&node.title_zh, node.head);
        let name = node.name.name.clone();
        // The node goes first so that anonymous nodes created for its targets follow it.
        let index = self.nodes.len();
        self.nodes.push(LNode::placeholder(&name, node.head));
        let needs_next = !matches!(
            node.kind,
            ast::NodeKind::End(_) | ast::NodeKind::Decide(_) | ast::NodeKind::Parallel(_) | ast::NodeKind::First(_)
        );
        let next = match (&node.next, needs_next) {
            (Some(t), true) => self.target(&name, t),
            (None, true) => {
                self.graph_broken = true;
                self.err(
                    codes::MISSING,
                    node.head,
                    format!("{} `{name}` does not say where the flow goes next", word(&node.kind)),
                    "no `->` after this node",
                    "add `-> next_node` after the block (or after the name for a join)",
                );
                String::new()
            }
            (_, false) => String::new(),
        };
        let kind = match &node.kind {
            ast::NodeKind::Start(trigger) => {
                let trigger = match trigger {
                    ast::StartTrigger::None => Trigger::Request,
                    ast::StartTrigger::Message(m, _) => Trigger::Message { message: m.clone() },
                    ast::StartTrigger::Schedule { cron, cron_span, zone } => {
                        match self.schedule(cron, *cron_span, zone.as_ref()) {
                            Some(schedule) => Trigger::Schedule { schedule },
                            None => Trigger::Request,
                        }
                    }
                };
                NodeKind::Start { trigger, next }
            }
            ast::NodeKind::End(kind) => NodeKind::End {
                end: match kind {
                    ast::EndKind::Normal => EndKind::Normal,
                    ast::EndKind::Error(code) => EndKind::Error { code: code.clone() },
                    ast::EndKind::Terminate => EndKind::Terminate,
                },
                side_path: false,
            },
            ast::NodeKind::Task { job, inputs, outputs, retry, timeout, boundaries } => {
                let job = match job {
                    Some((j, span)) if j.trim().is_empty() => {
                        self.err(
                            codes::MISSING,
                            *span,
                            "empty job type",
                            "empty",
                            "name the job type workers handle, such as `job \"credit.check\"`",
                        );
                        String::new()
                    }
                    Some((j, _)) => j.clone(),
                    None => {
                        self.err(
                            codes::MISSING,
                            node.head,
                            format!("task `{name}` has no job type"),
                            "no `job` clause",
                            "add `job \"type.name\"`: workers subscribe to job types",
                        );
                        String::new()
                    }
                };
                let inputs = self.input_mappings(inputs);
                let outputs = self.output_mappings(outputs, None);
                let retry = retry.as_ref().map_or_else(RetryPolicy::default, |r| RetryPolicy {
                    attempts: r.attempts,
                    backoff_secs: if r.backoff_secs > 0 { r.backoff_secs } else { RetryPolicy::default().backoff_secs },
                    exponential: !r.fixed,
                });
                if let Some((secs, span)) = timeout
                    && *secs <= 0
                {
                    self.err(
                        codes::INVALID_LITERAL,
                        *span,
                        "a timeout must be longer than zero",
                        "zero",
                        "write a duration such as `5m`",
                    );
                }
                let boundaries = self.boundaries(&name, boundaries, true);
                NodeKind::Task { job, inputs, outputs, retry, timeout_secs: timeout.map(|(s, _)| s), boundaries, next }
            }
            ast::NodeKind::Approval { roles, assignee, not_by, form, due, reminders, outputs: _, boundaries, show } => {
                let show: Vec<String> = show
                    .iter()
                    .filter_map(|v| {
                        if self.scope.get(&v.name).is_some() {
                            Some(v.name.clone())
                        } else {
                            self.unknown_variable(v, "not a variable of this process");
                            None
                        }
                    })
                    .collect();
                let mut role_names = Vec::new();
                for role in roles {
                    self.known_role(role);
                    self.used_roles.insert(role.name.clone());
                    role_names.push(role.name.clone());
                }
                let assignee = assignee.as_ref().map(|e| {
                    let (c, ty) = self.expr(e);
                    self.expect_fits(&Type::User, &ty, e.span, "an assignee");
                    c
                });
                if role_names.is_empty() && assignee.is_none() {
                    self.err(
                        codes::MISSING,
                        node.head,
                        format!("approval `{name}` has no role and no assignee"),
                        "nobody could work on this task",
                        "add `role finance.controller` (or several, comma-separated) or `assignee some_user_variable`",
                    );
                }
                let not_by = not_by
                    .iter()
                    .map(|e| {
                        let (c, ty) = self.expr(e);
                        if !matches!(ty, Type::User | Type::Text | Type::Any | Type::Null)
                            && !matches!(&ty, Type::List { of } if matches!(**of, Type::User | Type::Text))
                        {
                            self.err(
                                codes::TYPE_MISMATCH,
                                e.span,
                                format!("`not by` needs a user, found `{ty}`"),
                                format!("this is `{ty}`"),
                                "name a user, such as `requested_by` or `manager_approval.completed_by`",
                            );
                        }
                        c
                    })
                    .collect();
                let mut seen = HashMap::new();
                let form = form
                    .iter()
                    .map(|f| {
                        if let Some(first) = seen.insert(f.name.name.clone(), f.name.span) {
                            let d = twice(
                                self.file,
                                f.name.span,
                                first,
                                format!("form field `{}` is declared twice", f.name.name),
                                "declared",
                                "rename one of the fields",
                            );
                            self.diags.push(d);
                        }
                        let bounds = self.bounds(f);
                        FormField { name: f.name.name.clone(), ty: f.ty.ty.clone(), optional: f.ty.optional, bounds }
                    })
                    .collect();
                // Business time of the task counts on the calendar its roles' people work on.
                let role_calendars = self.role_calendars_of(roles);
                self.task_calendar = role_calendars.first().map(|(_, calendar)| calendar.clone());
                self.task_calendar_used = false;
                let due = due.as_ref().map(|e| self.timer(e, "`due`"));
                let reminders = reminders
                    .iter()
                    .flat_map(|r| match r {
                        ast::Remind::After(times) => {
                            times.iter().map(|t| Reminder::At(self.timer(t, "`remind after`"))).collect::<Vec<_>>()
                        }
                        ast::Remind::Every(d) => vec![Reminder::Every(self.interval(d, "`remind every`"))],
                    })
                    .collect();
                let boundaries = self.boundaries(&name, boundaries, false);
                let calendar = self.task_calendar.take().filter(|_| self.task_calendar_used);
                if let Some(calendar) = &calendar {
                    self.roles_on_one_calendar(&name, node.head, &role_calendars);
                    if let Some(c) = self.calendars.get(calendar.as_str()).and_then(|d| d.calendar.clone()) {
                        self.role_calendars_used.insert(calendar.clone(), c);
                    }
                }
                NodeKind::Approval {
                    roles: role_names,
                    assignee,
                    not_by,
                    form,
                    due,
                    calendar,
                    reminders,
                    boundaries,
                    show,
                    next,
                }
            }
            ast::NodeKind::Set(assignments) => NodeKind::Set { assignments: self.assignments(assignments), next },
            ast::NodeKind::Decide(body) => self.decide(&name, body, index),
            ast::NodeKind::Parallel(branches) => {
                if branches.len() < 2 {
                    self.err(
                        codes::MISSING,
                        node.head,
                        format!("parallel `{name}` has {} branch(es)", branches.len()),
                        "a split needs two branches or more",
                        "list each branch as `-> node` inside the block",
                    );
                }
                let branches = branches.iter().map(|t| self.target(&name, t)).collect();
                NodeKind::Split { branches, join: String::new() }
            }
            ast::NodeKind::Join => NodeKind::Join { split: String::new(), next },
            ast::NodeKind::First(arms) => {
                if arms.len() < 2 {
                    self.err(
                        codes::MISSING,
                        node.head,
                        format!("wait first `{name}` needs two events or more"),
                        "nothing to race",
                        "list a `message ... -> node` and an `after ... -> node`, or use `receive` / `wait`",
                    );
                }
                let arms = arms
                    .iter()
                    .map(|arm| match arm {
                        ast::FirstArm::Message { name: message, key, outputs, target, .. } => {
                            let key = self.key(key);
                            let outputs = self.output_mappings(outputs, None);
                            FirstArm {
                                event: FirstEvent::Message { message: message.clone(), key, outputs },
                                next: self.target(&name, target),
                            }
                        }
                        ast::FirstArm::After { at, target, .. } => {
                            let at = self.timer(at, "`after`");
                            FirstArm { event: FirstEvent::Timer { at }, next: self.target(&name, target) }
                        }
                    })
                    .collect();
                NodeKind::First { arms }
            }
            ast::NodeKind::Receive { message, key, outputs, boundaries } => {
                let message = match message {
                    Some((m, _)) => m.clone(),
                    None => {
                        self.err(
                            codes::MISSING,
                            node.head,
                            format!("receive `{name}` has no message"),
                            "no `message` clause",
                            "add `message \"payment.received\" key invoice_id`",
                        );
                        String::new()
                    }
                };
                let key = match key {
                    Some(k) => self.key(k),
                    None => {
                        self.err(
                            codes::MISSING,
                            node.head,
                            format!("receive `{name}` has no correlation key"),
                            "no `key` after the message name",
                            "add `key some_variable`: a message reaches this instance only when its key equals that value",
                        );
                        CExpr::parse("null").expect("`null` parses")
                    }
                };
                let outputs = self.output_mappings(outputs, None);
                let boundaries = self.boundaries(&name, boundaries, false);
                NodeKind::Receive { message, key, outputs, boundaries, next }
            }
            ast::NodeKind::Wait { spec, boundaries } => {
                let until = match spec {
                    // `wait for 3 business days`: a timer counted from the entry, like `after`.
                    ast::WaitSpec::For(e) if e.business().is_some() => WaitUntil::At(self.timer(e, "`wait for`")),
                    ast::WaitSpec::For(e) => {
                        let c = self.interval(e, "`wait for`");
                        WaitUntil::At(c)
                    }
                    ast::WaitSpec::Until(e) => {
                        let (c, ty) = self.expr(e);
                        if !matches!(ty, Type::Date | Type::DateTime | Type::Any | Type::Null) {
                            self.err(
                                codes::TYPE_MISMATCH,
                                e.span,
                                format!("`wait until` needs a date or a datetime, found `{ty}`"),
                                format!("this is `{ty}`"),
                                "write a date such as `due_date + 7d`, or use `wait for 2d`",
                            );
                        }
                        WaitUntil::At(c)
                    }
                    ast::WaitSpec::Cron { cron, cron_span, zone } => {
                        match self.schedule(cron, *cron_span, zone.as_ref()) {
                            Some(s) => WaitUntil::Cron(s),
                            None => WaitUntil::At(CExpr::parse("0s").expect("`0s` parses")),
                        }
                    }
                };
                let boundaries = self.boundaries(&name, boundaries, false);
                NodeKind::Wait { until, boundaries, next }
            }
            ast::NodeKind::Call { process, inputs, outputs, boundaries } => {
                let key = process.clone().unwrap_or_else(|| node.name.clone());
                let (inputs, outputs) = self.call_mappings(&key, node.head, inputs, outputs);
                let boundaries = self.boundaries(&name, boundaries, true);
                NodeKind::Call { process: key.name, inputs, outputs, boundaries, next }
            }
        };
        self.nodes[index].node.title = title;
        self.nodes[index].node.title_zh = title_zh;
        self.nodes[index].node.kind = kind;
    }

    fn decide(&mut self, name: &str, body: &ast::DecideBody, index: usize) -> NodeKind {
        let mut arms = Vec::new();
        for (cond, target) in &body.arms {
            let when = self.condition(cond);
            let next = self.target(name, target);
            arms.push(Arm { when, next });
        }
        self.nodes[index].arm_exprs = body.arms.iter().map(|(e, _)| e.clone()).collect();
        let otherwise = body.otherwise.as_ref().map(|(_, t)| self.target(name, t));
        if body.arms.is_empty() {
            let span = self.nodes[index].head;
            self.err(
                codes::MISSING,
                span,
                format!("decide `{name}` has no `when` arm"),
                "nothing to decide",
                "add `when condition -> node` arms, or lead the flow straight to the next node",
            );
        }
        NodeKind::Decide { arms, otherwise }
    }

    fn boundaries(&mut self, owner: &str, boundaries: &[ast::Boundary], errors_allowed: bool) -> Vec<Boundary> {
        let mut out = Vec::new();
        for b in boundaries {
            match b {
                ast::Boundary::Error { code, target, span } => {
                    if !errors_allowed {
                        self.err(
                            codes::MISPLACED,
                            *span,
                            "`on error` is only for tasks and calls",
                            "nothing here raises business errors",
                            "catch errors on the `task` or `call` that raises them",
                        );
                    }
                    let next = self.target(owner, target);
                    out.push(Boundary { event: BoundaryEvent::Error { code: code.clone() }, next });
                }
                ast::Boundary::After { at, target, .. } => {
                    let timer = TimerSpec::At(self.timer(at, "`after`"));
                    let next = self.target(owner, target);
                    out.push(Boundary { event: BoundaryEvent::Timer { timer, interrupting: true }, next });
                }
                ast::Boundary::AlsoAfter { at, target, .. } => {
                    let times: Vec<CExpr> = at.iter().map(|t| self.timer(t, "`also after`")).collect();
                    let next = self.target(owner, target);
                    for t in times {
                        out.push(Boundary {
                            event: BoundaryEvent::Timer { timer: TimerSpec::At(t), interrupting: false },
                            next: next.clone(),
                        });
                    }
                }
                ast::Boundary::Every { interval, target, .. } => {
                    let timer = TimerSpec::Every(self.interval(interval, "`every`"));
                    let next = self.target(owner, target);
                    out.push(Boundary { event: BoundaryEvent::Timer { timer, interrupting: false }, next });
                }
            }
        }
        out
    }

    /// Resolves a target to a node name, creating anonymous nodes for in-place decides and sets.
    fn target(&mut self, owner: &str, target: &Target) -> String {
        match target {
            Target::Node(id) => {
                if !self.names.contains_key(&id.name) {
                    self.graph_broken = true;
                    let help = match did_you_mean(&id.name, self.names.keys().map(String::as_str)) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("define it, for example `end {} \"Done\"`", id.name),
                    };
                    self.err(
                        codes::UNKNOWN_NODE,
                        id.span,
                        format!("unknown node `{}`", id.name),
                        format!("no node of this name in process `{}`", self.p.key.name),
                        help,
                    );
                }
                id.name.clone()
            }
            Target::Decide(body, span) => {
                let name = self.fresh_name(owner, "decide");
                let index = self.nodes.len();
                self.nodes.push(LNode::placeholder(&name, *span));
                self.nodes[index].synthetic = true;
                let kind = self.decide(&name, body, index);
                self.nodes[index].node.kind = kind;
                name
            }
            Target::Set(assignments, next, span) => {
                let name = self.fresh_name(owner, "set");
                let index = self.nodes.len();
                self.nodes.push(LNode::placeholder(&name, *span));
                self.nodes[index].synthetic = true;
                let assignments = self.assignments(assignments);
                let next = self.target(&name, next);
                self.nodes[index].node.kind = NodeKind::Set { assignments, next };
                name
            }
        }
    }

    fn fresh_name(&mut self, owner: &str, kind: &str) -> String {
        let base = format!("{owner}:{kind}");
        let mut name = base.clone();
        // Resume counting where the last name of this base stopped: a decide of thousands of
        // in-place arms would otherwise try every taken number again for each arm.
        let mut n = self.fresh_counts.get(&base).copied().unwrap_or(2);
        while self.names.contains_key(&name) {
            name = format!("{base}{n}");
            n += 1;
        }
        self.fresh_counts.insert(base, n);
        self.names.insert(name.clone(), Span::default());
        name
    }
}
fn word(kind: &ast::NodeKind) -> &'static str {
    match kind {
        ast::NodeKind::Start(_) => "start",
        ast::NodeKind::End(_) => "end",
        ast::NodeKind::Task { .. } => "task",
        ast::NodeKind::Approval { .. } => "approval",
        ast::NodeKind::Set(_) => "set",
        ast::NodeKind::Decide(_) => "decide",
        ast::NodeKind::Parallel(_) => "parallel",
        ast::NodeKind::Join => "join",
        ast::NodeKind::First(_) => "wait first",
        ast::NodeKind::Receive { .. } => "receive",
        ast::NodeKind::Wait { .. } => "wait",
        ast::NodeKind::Call { .. } => "call",
    }
}
