//! Stage 2: names, types and roles, and lowering of the syntax tree to graph nodes.
//!
//! Everything here works on one project: every file given to the compiler together, so that
//! roles declared in one file and processes called from another resolve. Every problem is
//! collected; a process with errors produces no compiled graph, but its siblings still do.
//!
//! One `ProcessChecker` walks each process; its work is split by concern: `names` for
//! declarations and what they bring into scope, `types` for expressions and the types clauses
//! demand, `mappings` for data moving in and out of nodes, and `lower` for turning each node
//! into its compiled form.

mod calendars;
mod lower;
mod mappings;
mod names;
mod types;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::analysis::{self, LNode};
use crate::ast;
use crate::calendar::Calendar;
use crate::codes;
use crate::diag::{Diagnostic, FileId, SourceMap, Span};
use crate::expr::{Scope, Type};
use crate::model::{CompiledProcess, RoleTitle, VarDef};

/// Checks a parsed project and compiles every process that has no errors.
pub fn check_project(files: &[ast::File], sources: &SourceMap) -> (Vec<CompiledProcess>, Vec<Diagnostic>) {
    let (processes, diags, _) = check_project_and_calendars(files, sources);
    (processes, diags)
}

/// [`check_project`], with the calendars the files declare that compiled without errors, by name
/// (the first declaration of a name): what a tool evaluating an expression outside a process
/// counts business time on.
pub(crate) fn check_project_and_calendars(
    files: &[ast::File],
    sources: &SourceMap,
) -> (Vec<CompiledProcess>, Vec<Diagnostic>, BTreeMap<String, Calendar>) {
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
    let mut calendars: BTreeMap<&str, Declared> = BTreeMap::new();
    for file in files {
        for decl in &file.calendars {
            let (calendar, mut found) = calendars::compile(decl);
            diags.append(&mut found);
            if let Some(first) = calendars.get(decl.name.name.as_str()) {
                let message = format!("calendar `{}` is declared twice", decl.name.name);
                let help = "calendar names are unique in a project: rename one of them, or remove it";
                diags.push(twice_across(
                    sources,
                    decl.file,
                    decl.name.span,
                    (first.file, first.span),
                    message,
                    "declared",
                    help,
                ));
            } else {
                calendars.insert(&decl.name.name, Declared { file: decl.file, span: decl.name.span, calendar });
            }
        }
    }
    // A role's people work on its calendar: the approvals offered to it count business time there.
    let mut role_calendars: BTreeMap<&str, &str> = BTreeMap::new();
    for file in files {
        for role in &file.roles {
            let Some(calendar) = &role.calendar else { continue };
            if calendars.contains_key(calendar.name.as_str()) {
                role_calendars.entry(&role.name.name).or_insert(&calendar.name);
            } else {
                diags.push(names::unknown_calendar(file.file, calendar, &calendars));
            }
        }
    }
    // A role's title, as its first declaration writes it.
    let mut role_titles: BTreeMap<&str, RoleTitle> = BTreeMap::new();
    for role in files.iter().flat_map(|f| &f.roles) {
        if let Some(title) = &role.title {
            role_titles
                .entry(&role.name.name)
                .or_insert_with(|| RoleTitle { title: title.clone(), title_zh: role.title_zh.clone() });
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
            let mut checker = ProcessChecker::new(p, text, &roles, &signatures, &calendars, &role_calendars);
            let result = checker.run();
            let failed = checker.diags.iter().any(Diagnostic::is_error);
            diags.append(&mut checker.diags);
            if let (Some(mut process), false) = (result, failed) {
                process.role_titles = process
                    .roles
                    .iter()
                    .filter_map(|r| role_titles.get(r.as_str()).map(|t| (r.clone(), t.clone())))
                    .collect();
                compiled.push(process);
            }
        }
    }
    let calendars = calendars.into_iter().filter_map(|(name, d)| d.calendar.map(|c| (name.to_string(), c))).collect();
    (compiled, diags, calendars)
}

/// A declared calendar: where its name is, and the calendar when its block has no errors.
struct Declared {
    file: FileId,
    span: Span,
    calendar: Option<Calendar>,
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

/// Checks one process and lowers it to graph nodes, collecting every diagnostic on the way.
struct ProcessChecker<'a> {
    p: &'a ast::Process,
    text: &'a str,
    file: FileId,
    roles: &'a BTreeMap<&'a str, (FileId, Span)>,
    signatures: &'a BTreeMap<&'a str, Signature>,
    calendars: &'a BTreeMap<&'a str, Declared>,
    /// The calendar each role that names one works on.
    role_calendars: &'a BTreeMap<&'a str, &'a str>,
    /// While an approval's timers are checked: the calendar its roles work on, if any.
    task_calendar: Option<String>,
    /// Whether those timers count business time (then the approval keeps that calendar).
    task_calendar_used: bool,
    /// The role calendars the approvals count on, for the compiled process.
    role_calendars_used: BTreeMap<String, Calendar>,
    /// The calendar the process names (`None` also when the one named has errors).
    calendar: Option<Calendar>,
    /// Whether the process names a calendar at all, known or not: business time then needs no
    /// second diagnostic.
    names_calendar: bool,
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
        calendars: &'a BTreeMap<&'a str, Declared>,
        role_calendars: &'a BTreeMap<&'a str, &'a str>,
    ) -> Self {
        ProcessChecker {
            p,
            text,
            file: p.file,
            roles,
            signatures,
            calendars,
            role_calendars,
            task_calendar: None,
            task_calendar_used: false,
            role_calendars_used: BTreeMap::new(),
            calendar: None,
            names_calendar: false,
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
        self.resolve_calendar();
        self.declare_variables();
        self.declare_node_names();
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
            title_zh: p.title_zh.clone(),
            inputs,
            vars,
            roles: self.used_roles.iter().cloned().collect(),
            nodes: nodes.into_iter().map(|n| n.node).collect(),
            access,
            calendar: self.calendar.take(),
            role_calendars: std::mem::take(&mut self.role_calendars_used),
            role_titles: BTreeMap::new(),
        })
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
