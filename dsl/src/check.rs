//! Stage 2: names, types and roles, and lowering of the syntax tree to graph nodes.
//!
//! Everything here works on one project: every file given to the compiler together, so that
//! roles declared in one file and processes called from another resolve. Every problem is
//! collected; a process with errors produces no compiled graph, but its siblings still do.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::analysis::{self, LNode};
use crate::ast::{self, Target};
use crate::codes;
use crate::diag::{Diagnostic, FileId, SourceMap, Span};
use crate::expr::{Expr, ExprKind, Scope, Type, check_condition, check_expr};
use crate::model::{
    Access, Arm, Bound, BoundOp, Boundary, BoundaryEvent, CExpr, CompiledProcess, EndKind, FirstArm, FirstEvent,
    FormField, Mapping, NodeKind, Reminder, RetryPolicy, TimerSpec, Trigger, VarDef, WaitUntil,
};
use crate::schedule::{Schedule, ScheduleError};
use crate::suggest::did_you_mean;

/// Checks a parsed project and compiles every process that has no errors.
pub fn check_project(files: &[ast::File], sources: &SourceMap) -> (Vec<CompiledProcess>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut roles: BTreeMap<&str, (FileId, Span)> = BTreeMap::new();
    for file in files {
        for role in &file.roles {
            if let Some((first_file, first)) = roles.get(role.name.name.as_str()) {
                let message = format!("role `{}` is declared twice", role.name.name);
                diags.push(twice_across(
                    sources,
                    file.file,
                    role.name.span,
                    (*first_file, *first),
                    message,
                    "declared",
                    "remove one of the declarations",
                ));
            } else {
                roles.insert(&role.name.name, (file.file, role.name.span));
            }
        }
    }
    let mut processes: BTreeMap<&str, &ast::Process> = BTreeMap::new();
    for file in files {
        for p in &file.processes {
            if let Some(first) = processes.get(p.key.name.as_str()) {
                let message = format!("process `{}` is defined twice", p.key.name);
                let help = "process keys are unique in a project: rename one of them";
                diags.push(twice_across(
                    sources,
                    p.file,
                    p.key.span,
                    (first.file, first.key.span),
                    message,
                    "defined",
                    help,
                ));
            } else {
                processes.insert(&p.key.name, p);
            }
        }
    }
    let signatures: BTreeMap<&str, Signature> = processes.iter().map(|(k, p)| (*k, Signature::of(p))).collect();
    let mut compiled = Vec::new();
    for file in files {
        for p in &file.processes {
            if processes.get(p.key.name.as_str()).is_some_and(|first| !std::ptr::eq(*first, p)) {
                continue;
            }
            let text = &sources.get(p.file).text;
            let mut checker = ProcessChecker::new(p, text, &roles, &signatures);
            let result = checker.run();
            let failed = checker.diags.iter().any(Diagnostic::is_error);
            diags.append(&mut checker.diags);
            if let (Some(process), false) = (result, failed) {
                compiled.push(process);
            }
        }
    }
    (compiled, diags)
}

/// What a caller needs to know about a process it calls.
struct Signature {
    inputs: Vec<(String, Type, bool)>,
    scope: Scope,
}

impl Signature {
    fn of(p: &ast::Process) -> Signature {
        let inputs = p
            .inputs
            .iter()
            .map(|d| (d.name.name.clone(), d.ty.ty.clone(), d.ty.optional || d.default.is_some()))
            .collect();
        let mut scope = Scope::new();
        for d in p.inputs.iter().chain(&p.vars) {
            scope.insert(&d.name.name, d.ty.ty.clone());
        }
        for node in &p.nodes {
            if let ast::NodeKind::Approval { form, .. } = &node.kind {
                for f in form {
                    scope.insert(&f.name.name, f.ty.ty.clone());
                }
            }
        }
        scope.insert("outcome", Type::Text);
        Signature { inputs, scope }
    }
}

struct ProcessChecker<'a> {
    p: &'a ast::Process,
    text: &'a str,
    file: FileId,
    roles: &'a BTreeMap<&'a str, (FileId, Span)>,
    signatures: &'a BTreeMap<&'a str, Signature>,
    scope: Scope,
    declared: BTreeMap<String, (Type, Span)>,
    names: HashMap<String, Span>,
    nodes: Vec<LNode>,
    used_roles: BTreeSet<String>,
    diags: Vec<Diagnostic>,
    /// Set by an error that leaves the graph incomplete (an unknown or duplicate node, a missing
    /// `->`, start or end): the graph checks cannot run on it.
    graph_broken: bool,
    /// The next number to try for each base of anonymous node names (`route:set2`, ...).
    fresh_counts: HashMap<String, usize>,
}

impl<'a> ProcessChecker<'a> {
    fn new(
        p: &'a ast::Process,
        text: &'a str,
        roles: &'a BTreeMap<&'a str, (FileId, Span)>,
        signatures: &'a BTreeMap<&'a str, Signature>,
    ) -> Self {
        ProcessChecker {
            p,
            text,
            file: p.file,
            roles,
            signatures,
            scope: Scope::new(),
            declared: BTreeMap::new(),
            names: HashMap::new(),
            nodes: Vec::new(),
            used_roles: BTreeSet::new(),
            diags: Vec::new(),
            graph_broken: false,
            fresh_counts: HashMap::new(),
        }
    }

    fn err(
        &mut self,
        code: &'static str,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.diags.push(Diagnostic::error(code, self.file, span, message).with_label(label).with_help(help));
    }

    fn run(&mut self) -> Option<CompiledProcess> {
        let p = self.p;
        // Variables: inputs, vars, then form fields (which write variables of the same name).
        for decl in p.inputs.iter().chain(&p.vars) {
            self.declare(&decl.name, &decl.ty.ty, "variable");
        }
        for node in &p.nodes {
            if let ast::NodeKind::Approval { form, .. } = &node.kind {
                for field in form {
                    match self.declared.get(&field.name.name) {
                        Some((ty, first))
                            if *ty != field.ty.ty && !(ty.accepts(&field.ty.ty) && field.ty.ty.accepts(ty)) =>
                        {
                            let d = Diagnostic::error(
                                codes::TYPE_MISMATCH,
                                self.file,
                                field.ty.span,
                                format!("form field `{}` has type `{}`, but the variable of that name is `{ty}`", field.name.name, field.ty.ty),
                            )
                            .with_label(format!("expected `{ty}`"))
                            .with_note(*first, "declared here")
                            .with_help("a form field sets the process variable of the same name: give both the same type, or rename the field");
                            self.diags.push(d);
                        }
                        Some(_) => {}
                        None => {
                            self.declared.insert(field.name.name.clone(), (field.ty.ty.clone(), field.name.span));
                            self.scope.insert(&field.name.name, field.ty.ty.clone());
                        }
                    }
                }
            }
        }
        // Node names; approvals are also records in expressions (`manager_approval.completed_by`).
        for node in &p.nodes {
            if let Some(first) = self.names.get(&node.name.name) {
                let d = twice(
                    self.file,
                    node.name.span,
                    *first,
                    format!("node `{}` is defined twice", node.name.name),
                    "defined",
                    if matches!(node.kind, ast::NodeKind::Start(_)) {
                        "a process may have several starts, each with its own name: `start signed on message \"order.signed\" -> next`"
                    } else {
                        "node names are unique within a process: rename one of them"
                    },
                );
                self.diags.push(d);
                self.graph_broken = true;
            } else {
                self.names.insert(node.name.name.clone(), node.name.span);
            }
            if matches!(node.kind, ast::NodeKind::Approval { .. }) {
                // Who completed it, when, and for whom when they acted as a substitute.
                let fields = BTreeMap::from([
                    ("completed_by".to_string(), Type::User),
                    ("completed_at".to_string(), Type::DateTime),
                    ("on_behalf_of".to_string(), Type::User),
                ]);
                if self.declared.contains_key(&node.name.name) {
                    self.err(
                        codes::DUPLICATE,
                        node.name.span,
                        format!("approval `{}` has the name of a variable", node.name.name),
                        "clashes with a variable",
                        "an approval's name refers to its record (`name.completed_by`): rename the approval or the variable",
                    );
                }
                self.scope.insert(&node.name.name, Type::Record { fields });
            }
        }
        let inputs: Vec<VarDef> = p.inputs.iter().map(|d| self.var_def(d)).collect();
        let vars: Vec<VarDef> = p.vars.iter().map(|d| self.var_def(d)).collect();
        let access = self.access();
        if !p.nodes.iter().any(|n| matches!(n.kind, ast::NodeKind::Start(_))) {
            self.graph_broken = true;
            self.err(
                codes::MISSING,
                p.key.span,
                format!("process `{}` has no start", p.key.name),
                "no `start` in this process",
                "add `start -> first_node`",
            );
        }
        if !p.nodes.iter().any(|n| matches!(n.kind, ast::NodeKind::End(_))) {
            self.graph_broken = true;
            self.err(
                codes::MISSING,
                p.key.span,
                format!("process `{}` has no end", p.key.name),
                "no `end` in this process",
                "add `end done \"Done\"` and lead the flow to it",
            );
        }
        for node in &p.nodes {
            self.lower_node(node);
        }
        // Name and type errors leave the graph whole: its checks still run, so that every
        // diagnostic comes at once. An incomplete graph would only give false alarms.
        // Notes on skipped checks go at the closing brace, after the errors that caused them.
        let close = Span::new(p.span.end.saturating_sub(1), p.span.end);
        if self.graph_broken {
            self.diags.push(analysis::skipped(
                self.file,
                close,
                &format!("the graph checks of process `{}`", p.key.name),
                "every node needs a unique name, every `->` an existing node, and the process a start and an end",
            ));
            return None;
        }
        let mut nodes = std::mem::take(&mut self.nodes);
        let mut declared_optional: BTreeMap<String, bool> =
            p.inputs.iter().chain(&p.vars).map(|d| (d.name.name.clone(), d.ty.optional)).collect();
        // A form field writes the variable of its name: `approve: bool?` may leave it null.
        for node in &p.nodes {
            if let ast::NodeKind::Approval { form, .. } = &node.kind {
                for f in form {
                    *declared_optional.entry(f.name.name.clone()).or_default() |= f.ty.optional;
                }
            }
        }
        let mut found = analysis::analyse(self.file, &mut nodes, &declared_optional, close);
        self.diags.append(&mut found);
        if self.diags.iter().any(Diagnostic::is_error) {
            return None;
        }
        Some(CompiledProcess {
            key: p.key.name.clone(),
            title: p.title.clone().unwrap_or_else(|| p.key.name.clone()),
            inputs,
            vars,
            roles: self.used_roles.iter().cloned().collect(),
            nodes: nodes.into_iter().map(|n| n.node).collect(),
            access,
        })
    }

    /// The `access` block: roles that exist, a requester that is a `user` input, and clauses
    /// that do not contradict each other.
    fn access(&mut self) -> Access {
        let Some(decl) = &self.p.access else { return Access::default() };
        let mut access = Access::default();
        for (roles, out) in [
            (&decl.start_by, &mut access.start_by),
            (&decl.on_behalf_by, &mut access.on_behalf_by),
            (&decl.read_by, &mut access.read_by),
        ] {
            for role in roles {
                self.known_role(role);
                if !out.contains(&role.name) {
                    out.push(role.name.clone());
                }
            }
        }
        if let Some(requester) = &decl.requester {
            match self.p.inputs.iter().find(|i| i.name.name == requester.name) {
                Some(input) if input.ty.ty == Type::User => access.requester = Some(requester.name.clone()),
                Some(input) => self.err(
                    codes::TYPE_MISMATCH,
                    requester.span,
                    format!("the requester `{}` is `{}`, not a user", requester.name, input.ty.ty),
                    "expected an input of type `user`",
                    format!("declare it as `{}: user` in the `input` block", requester.name),
                ),
                None => self.err(
                    codes::UNKNOWN_VARIABLE,
                    requester.span,
                    format!("the requester `{}` is not an input of this process", requester.name),
                    "not in the `input` block",
                    format!(
                        "declare `{}: user` in the `input` block: the server fills it with the starting user",
                        requester.name
                    ),
                ),
            }
        }
        if !decl.on_behalf_by.is_empty() && decl.requester.is_none() {
            self.err(
                codes::MISSING,
                decl.on_behalf_by[0].span,
                "`on behalf by` without a `requester`",
                "on behalf of whom?",
                "name the input that holds the requesting user: `requester requested_by`",
            );
        }
        if let Some(called) = decl.called_only {
            access.called_only = true;
            if let Some(first) = decl.start_by.first().or(decl.on_behalf_by.first()) {
                let d = Diagnostic::error(
                    codes::MISPLACED,
                    self.file,
                    first.span,
                    "a `called only` process names who may start it",
                )
                .with_label("nobody starts a called-only process")
                .with_note(called, "declared `called only` here")
                .with_help("remove `called only` to let these roles start it, or remove the `start by` roles");
                self.diags.push(d);
            }
            if self.p.nodes.iter().any(
                |n| matches!(&n.kind, ast::NodeKind::Start(trigger) if !matches!(trigger, ast::StartTrigger::None)),
            ) {
                self.err(
                    codes::MISPLACED,
                    called,
                    "a `called only` process has a message or schedule start",
                    "only another process starts it",
                    "remove `called only`, or the message or schedule start",
                );
            }
        }
        access
    }

    /// Reports a role that no `roles` block declares.
    fn known_role(&mut self, role: &ast::Ident) {
        if self.roles.contains_key(role.name.as_str()) {
            return;
        }
        let help = match did_you_mean(&role.name, self.roles.keys().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("declare it in a `roles {{ {} \"Title\" }}` block", role.name),
        };
        self.err(
            codes::UNKNOWN_ROLE,
            role.span,
            format!("unknown role `{}`", role.name),
            "not declared in any `roles` block",
            help,
        );
    }

    /// The limits of a declaration: numbers only, each a literal.
    fn bounds(&mut self, decl: &ast::VarDecl) -> Vec<Bound> {
        let mut bounds = Vec::new();
        for b in &decl.bounds {
            if !matches!(decl.ty.ty, Type::Money | Type::Decimal | Type::Int) {
                self.err(
                    codes::TYPE_MISMATCH,
                    b.span,
                    format!("a limit on `{}`, which is `{}`", decl.name.name, decl.ty.ty),
                    "limits apply to numbers only",
                    "limit a `money`, `decimal` or `int` (such as `amount: money > 0`), or remove the limit",
                );
                continue;
            }
            let op = match b.op.as_str() {
                ">" => BoundOp::Greater,
                ">=" => BoundOp::AtLeast,
                "<" => BoundOp::Less,
                _ => BoundOp::AtMost,
            };
            match b.value.replace('_', "").parse::<rust_decimal::Decimal>() {
                Ok(value) => bounds.push(Bound { op, value }),
                Err(_) => self.err(
                    codes::INVALID_LITERAL,
                    b.span,
                    format!("`{}` is not a number a limit can hold", b.value),
                    "out of range",
                    "write a decimal number such as `0` or `1_000_000`",
                ),
            }
        }
        bounds
    }

    fn declare(&mut self, name: &ast::Ident, ty: &Type, what: &str) {
        if let Some((_, first)) = self.declared.get(&name.name) {
            let d = twice(
                self.file,
                name.span,
                *first,
                format!("{what} `{}` is declared twice", name.name),
                "declared",
                "inputs and variables share one namespace: rename one of them",
            );
            self.diags.push(d);
            return;
        }
        self.declared.insert(name.name.clone(), (ty.clone(), name.span));
        self.scope.insert(&name.name, ty.clone());
    }

    fn var_def(&mut self, d: &ast::VarDecl) -> VarDef {
        let default = d.default.as_ref().map(|e| {
            let (c, ty) = self.expr(e);
            self.expect_fits(&d.ty.ty, &ty, e.span, &format!("the default of `{}`", d.name.name));
            c
        });
        let bounds = self.bounds(d);
        VarDef { name: d.name.name.clone(), ty: d.ty.ty.clone(), optional: d.ty.optional, default, bounds }
    }

    /// Type-checks `e` in the process scope and keeps its source text.
    fn expr(&mut self, e: &Expr) -> (CExpr, Type) {
        // Borrow the scope without cloning it: processes have hundreds of names.
        let scope = std::mem::take(&mut self.scope);
        let result = self.expr_in(e, &scope);
        self.scope = scope;
        result
    }

    fn expr_in(&mut self, e: &Expr, scope: &Scope) -> (CExpr, Type) {
        let (ty, mut found) = check_expr(e, scope, self.file);
        self.diags.append(&mut found);
        (self.cexpr(e), ty)
    }

    fn cexpr(&self, e: &Expr) -> CExpr {
        CExpr::from_parsed(self.text.get(e.span.start..e.span.end).unwrap_or_default(), e)
    }

    fn condition(&mut self, e: &Expr) -> CExpr {
        let mut found = check_condition(e, &self.scope, self.file);
        self.diags.append(&mut found);
        self.cexpr(e)
    }

    fn expect_fits(&mut self, want: &Type, got: &Type, span: Span, what: &str) {
        if !want.accepts(got) {
            self.err(
                codes::TYPE_MISMATCH,
                span,
                format!("{what} must be `{want}`, found `{got}`"),
                format!("this is `{got}`"),
                format!("write a value of type `{want}` here"),
            );
        }
    }

    fn timer(&mut self, e: &Expr, what: &str) -> CExpr {
        let (c, ty) = self.expr(e);
        if !matches!(ty, Type::Duration | Type::Date | Type::DateTime | Type::Any | Type::Null) {
            self.err(
                codes::TYPE_MISMATCH,
                e.span,
                format!("{what} needs a duration, a date or a datetime, found `{ty}`"),
                format!("this is `{ty}`"),
                "write a duration such as `24h`, or a date such as `due_date + 7d`",
            );
        }
        c
    }

    fn interval(&mut self, e: &Expr, what: &str) -> CExpr {
        let (c, ty) = self.expr(e);
        if !matches!(ty, Type::Duration | Type::Any) {
            self.err(
                codes::TYPE_MISMATCH,
                e.span,
                format!("{what} needs a duration, found `{ty}`"),
                format!("this is `{ty}`"),
                "write a duration such as `8h` or `1d`",
            );
        }
        c
    }

    fn schedule(&mut self, cron: &str, cron_span: Span, zone: Option<&(String, Span)>) -> Option<Schedule> {
        match Schedule::parse(cron, zone.map(|(z, _)| z.as_str())) {
            Ok(s) => Some(s),
            Err(e) => {
                let help = e.help();
                let (code, span) = match &e {
                    ScheduleError::UnknownZone { .. } => (codes::UNKNOWN_ZONE, zone.map_or(cron_span, |(_, s)| *s)),
                    _ => (codes::INVALID_SCHEDULE, cron_span),
                };
                let label = if code == codes::UNKNOWN_ZONE { "not an IANA time zone" } else { "invalid schedule" };
                self.err(code, span, e.to_string(), label, help);
                None
            }
        }
    }

    fn title(&mut self, title: &Option<String>, head: Span) -> Option<String> {
        let t = title.as_ref()?;
        // `{path}` placeholders must name variables; `\{` is a literal brace.
        let mut rest = t.as_str();
        while let Some(open) = rest.find('{') {
            if open > 0 && rest.as_bytes()[open - 1] == b'\\' {
                rest = &rest[open + 1..];
                continue;
            }
            let Some(close) = rest[open..].find('}') else {
                self.err(
                    codes::SYNTAX,
                    head,
                    "unclosed `{` in a title",
                    "title has `{` without `}`",
                    "close the placeholder, as in `\"Approve order {order_id}\"`",
                );
                break;
            };
            let path = rest[open + 1..open + close].trim();
            let root = path.split('.').next().unwrap_or_default();
            if self.scope.get(root).is_none() {
                let mut help = "placeholders in titles name variables, as in `{order_id}`".to_string();
                if let Some(s) = did_you_mean(root, self.declared.keys().map(String::as_str)) {
                    help = format!("did you mean `{s}`?");
                }
                self.err(
                    codes::UNKNOWN_VARIABLE,
                    head,
                    format!("unknown variable `{root}` in a title"),
                    "title of this node",
                    help,
                );
            }
            rest = &rest[open + close + 1..];
        }
        Some(t.clone())
    }

    fn lower_node(&mut self, node: &ast::Node) {
        let title = self.title(&node.title, node.head);
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
                NodeKind::Approval { roles: role_names, assignee, not_by, form, due, reminders, boundaries, show, next }
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
        self.nodes[index].node.kind = kind;
    }

    fn key(&mut self, e: &Expr) -> CExpr {
        let (c, ty) = self.expr(e);
        if !matches!(ty, Type::Text | Type::User | Type::Int | Type::Any) {
            self.err(
                codes::TYPE_MISMATCH,
                e.span,
                format!("a correlation key must be text or int, found `{ty}`"),
                format!("this is `{ty}`"),
                "correlate on an id, such as `key invoice_id`",
            );
        }
        c
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

    fn assignments(&mut self, assignments: &[ast::Assignment]) -> Vec<Mapping> {
        assignments
            .iter()
            .map(|a| {
                let (value, ty) = self.expr(&a.value);
                match self.declared.get(&a.name.name).cloned() {
                    Some((want, _)) => {
                        self.expect_fits(&want, &ty, a.value.span, &format!("the value assigned to `{}`", a.name.name))
                    }
                    None => self.unknown_variable(&a.name, "is assigned here"),
                }
                Mapping { name: a.name.name.clone(), value }
            })
            .collect()
    }

    fn unknown_variable(&mut self, name: &ast::Ident, label: &str) {
        let help = match did_you_mean(&name.name, self.declared.keys().map(String::as_str)) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("declare it with `var {}: type`", name.name),
        };
        self.err(codes::UNKNOWN_VARIABLE, name.span, format!("unknown variable `{}`", name.name), label, help);
    }

    fn mapping_value(m: &ast::Mapping) -> Expr {
        m.value.clone().unwrap_or(Expr { kind: ExprKind::Name(m.name.name.clone()), span: m.name.span })
    }

    fn input_mappings(&mut self, mappings: &[ast::Mapping]) -> Vec<Mapping> {
        let mut seen = HashMap::new();
        mappings
            .iter()
            .map(|m| {
                self.unique_mapping(&mut seen, m);
                let (value, _) = self.expr(&Self::mapping_value(m));
                Mapping { name: m.name.name.clone(), value }
            })
            .collect()
    }

    fn unique_mapping(&mut self, seen: &mut HashMap<String, Span>, m: &ast::Mapping) {
        if let Some(first) = seen.insert(m.name.name.clone(), m.name.span) {
            let d = twice(
                self.file,
                m.name.span,
                first,
                format!("`{}` is mapped twice", m.name.name),
                "mapped",
                "keep one mapping per name",
            );
            self.diags.push(d);
        }
    }

    /// `out { var: expr }`: `var` is this process's; `expr` reads the job result, the message
    /// payload or (with `source`) the called process's variables.
    fn output_mappings(&mut self, mappings: &[ast::Mapping], source: Option<&Scope>) -> Vec<Mapping> {
        let mut seen = HashMap::new();
        mappings
            .iter()
            .map(|m| {
                self.unique_mapping(&mut seen, m);
                let value_expr = Self::mapping_value(m);
                let (value, ty) = match source {
                    Some(scope) => self.expr_in(&value_expr, scope),
                    None => {
                        let mut open = Scope::new();
                        collect_names(&value_expr, &mut |n| open.insert(n, Type::Any));
                        self.expr_in(&value_expr, &open)
                    }
                };
                match self.declared.get(&m.name.name).cloned() {
                    Some((want, _)) => {
                        self.expect_fits(&want, &ty, value_expr.span, &format!("the value mapped to `{}`", m.name.name))
                    }
                    None => self.unknown_variable(&m.name, "is set by this mapping"),
                }
                Mapping { name: m.name.name.clone(), value }
            })
            .collect()
    }

    fn call_mappings(
        &mut self,
        key: &ast::Ident,
        head: Span,
        inputs: &[ast::Mapping],
        outputs: &[ast::Mapping],
    ) -> (Vec<Mapping>, Vec<Mapping>) {
        let Some(sig) = self.signatures.get(key.name.as_str()) else {
            let help = match did_you_mean(&key.name, self.signatures.keys().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "check the process key, and that its file is part of the project".to_string(),
            };
            self.err(
                codes::UNKNOWN_PROCESS,
                key.span,
                format!("unknown process `{}`", key.name),
                "no process with this key",
                help,
            );
            let ins = self.input_mappings(inputs);
            return (ins, Vec::new());
        };
        let mut seen = HashMap::new();
        let mut ins = Vec::new();
        for m in inputs {
            self.unique_mapping(&mut seen, m);
            let (value, ty) = self.expr(&Self::mapping_value(m));
            match sig.inputs.iter().find(|(n, _, _)| *n == m.name.name) {
                Some((_, want, _)) => {
                    let want = want.clone();
                    self.expect_fits(
                        &want,
                        &ty,
                        Self::mapping_value(m).span,
                        &format!("input `{}` of `{}`", m.name.name, key.name),
                    );
                }
                None => {
                    let help = match did_you_mean(&m.name.name, sig.inputs.iter().map(|(n, _, _)| n.as_str())) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!(
                            "the inputs of `{}` are {}",
                            key.name,
                            sig.inputs.iter().map(|(n, _, _)| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                        ),
                    };
                    self.err(
                        codes::UNKNOWN_VARIABLE,
                        m.name.span,
                        format!("`{}` is not an input of process `{}`", m.name.name, key.name),
                        "unknown input",
                        help,
                    );
                }
            }
            ins.push(Mapping { name: m.name.name.clone(), value });
        }
        let missing: Vec<String> = sig
            .inputs
            .iter()
            .filter(|(n, _, optional)| !optional && !seen.contains_key(n))
            .map(|(n, _, _)| format!("`{n}`"))
            .collect();
        if !missing.is_empty() {
            self.err(
                codes::MISSING,
                head,
                format!("call of `{}` leaves required inputs unset: {}", key.name, missing.join(", ")),
                "missing inputs",
                format!("add them to the `in {{ }}` block, as in `in {{ {} }}`", missing.join(", ").replace('`', "")),
            );
        }
        let scope = sig.scope.clone();
        let outs = self.output_mappings(outputs, Some(&scope));
        (ins, outs)
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

/// A "declared twice" error at `again`, with a note at the first declaration.
fn twice(file: FileId, again: Span, first: Span, message: String, verb: &str, help: &str) -> Diagnostic {
    Diagnostic::error(codes::DUPLICATE, file, again, message)
        .with_label(format!("{verb} again here"))
        .with_note(first, format!("first {verb} here"))
        .with_help(help)
}

/// [`twice`] for names that may clash across files: a note can only point into the same file,
/// so the message names the other one.
fn twice_across(
    sources: &SourceMap,
    file: FileId,
    again: Span,
    (first_file, first): (FileId, Span),
    message: String,
    verb: &str,
    help: &str,
) -> Diagnostic {
    if first_file == file {
        return twice(file, again, first, message, verb, help);
    }
    let (line, col) = sources.get(first_file).line_col(first.start);
    let message = format!("{message} (first in {}:{line}:{col})", sources.get(first_file).name);
    Diagnostic::error(codes::DUPLICATE, file, again, message).with_label(format!("{verb} again here")).with_help(help)
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

/// Calls `f` with every free variable name in `e` (the first segment of each path).
pub(crate) fn collect_names(e: &Expr, f: &mut dyn FnMut(&str)) {
    match &e.kind {
        ExprKind::Name(n) => f(n),
        _ => e.children().into_iter().for_each(|child| collect_names(child, f)),
    }
}
