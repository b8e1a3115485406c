//! Declarations and the names they bring into scope: variables and their limits, form fields,
//! node names, roles, the `access` block and placeholders in titles.

use std::collections::BTreeMap;

use super::{ProcessChecker, twice};
use crate::ast;
use crate::codes;
use crate::diag::{Diagnostic, FileId, Span};
use crate::expr::Type;
use crate::model::{Access, Bound, BoundOp, VarDef};
use crate::suggest::did_you_mean;

impl ProcessChecker<'_> {
    /// Declares inputs, vars, then form fields (which write variables of the same name).
    pub(super) fn declare_variables(&mut self) {
        let p = self.p;
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
    }

    /// Declares node names; approvals are also records in expressions
    /// (`manager_approval.completed_by`).
    pub(super) fn declare_node_names(&mut self) {
        let p = self.p;
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
    }

    /// The `access` block: roles that exist, a requester that is a `user` input, and clauses
    /// that do not contradict each other.
    pub(super) fn access(&mut self) -> Access {
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

    /// The calendars `roles` work on, as (role, calendar) in the order written; roles that
    /// name none are left out.
    pub(super) fn role_calendars_of(&self, roles: &[ast::Ident]) -> Vec<(String, String)> {
        roles
            .iter()
            .filter_map(|r| self.role_calendars.get(r.name.as_str()).map(|c| (r.name.clone(), c.to_string())))
            .collect()
    }

    /// An approval whose business time counts on its roles' calendar must find one calendar
    /// there: roles on two calendars leave it undecided.
    pub(super) fn roles_on_one_calendar(&mut self, node: &str, head: Span, role_calendars: &[(String, String)]) {
        let Some((first_role, first)) = role_calendars.first() else { return };
        if let Some((role, other)) = role_calendars.iter().find(|(_, c)| c != first) {
            self.err(
                codes::CALENDAR_CONFLICT,
                head,
                format!(
                    "approval `{node}` counts business time, and its roles work on two calendars:                      `{first_role}` on `{first}`, `{role}` on `{other}`"
                ),
                "counted on which calendar?",
                "offer the approval to roles on one calendar, or count its times in plain hours and days (`due 72h`)",
            );
        }
    }

    /// Resolves `calendar name`: one clause at most, naming a declared calendar.
    pub(super) fn resolve_calendar(&mut self) {
        let p = self.p;
        if let [first, again, ..] = p.calendars.as_slice() {
            let d = twice(
                self.file,
                again.span,
                first.span,
                "a second `calendar` clause in one process".to_string(),
                "written",
                "a process counts business time on one calendar: keep one `calendar` clause",
            );
            self.diags.push(d);
        }
        let Some(name) = p.calendars.first() else { return };
        self.names_calendar = true;
        match self.calendars.get(name.name.as_str()) {
            Some(declared) => self.calendar = declared.calendar.clone(),
            None => self.diags.push(unknown_calendar(self.file, name, self.calendars)),
        }
    }

    /// Reports a role that no `roles` block declares.
    pub(super) fn known_role(&mut self, role: &ast::Ident) {
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
    pub(super) fn bounds(&mut self, decl: &ast::VarDecl) -> Vec<Bound> {
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

    pub(super) fn var_def(&mut self, d: &ast::VarDecl) -> VarDef {
        let default = d.default.as_ref().map(|e| {
            let (c, ty) = self.expr(e);
            self.expect_fits(&d.ty.ty, &ty, e.span, &format!("the default of `{}`", d.name.name));
            c
        });
        let bounds = self.bounds(d);
        VarDef { name: d.name.name.clone(), ty: d.ty.ty.clone(), optional: d.ty.optional, default, bounds }
    }

    pub(super) fn unknown_variable(&mut self, name: &ast::Ident, label: &str) {
        let help = match did_you_mean(&name.name, self.declared.keys().map(String::as_str)) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("declare it with `var {}: type`", name.name),
        };
        self.err(codes::UNKNOWN_VARIABLE, name.span, format!("unknown variable `{}`", name.name), label, help);
    }

    pub(super) fn title(&mut self, title: &Option<String>, head: Span) -> Option<String> {
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
}

/// "unknown calendar" at `name` (in a process's or a role's `calendar` clause), with the closest
/// declared one or what the project declares.
pub(super) fn unknown_calendar(
    file: FileId,
    name: &ast::Ident,
    calendars: &BTreeMap<&str, super::Declared>,
) -> Diagnostic {
    let help = match did_you_mean(&name.name, calendars.keys().copied()) {
        Some(s) => format!("did you mean `{s}`?"),
        None if calendars.is_empty() => format!(
            "declare it in a `calendar {} {{ zone \"...\"  week mon-fri  hours 09:00-17:00 }}` block in a file of \
             the project",
            name.name
        ),
        None => format!(
            "the project declares {}",
            calendars.keys().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
        ),
    };
    Diagnostic::error(codes::UNKNOWN_CALENDAR, file, name.span, format!("unknown calendar `{}`", name.name))
        .with_label("not declared in any `calendar` block")
        .with_help(help)
}
