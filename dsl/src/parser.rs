//! Stage 1: text to syntax tree. A file with a syntax error yields no tree and one diagnostic
//! (the grammar cannot resume after an error); type names and literal values are resolved here
//! and every problem with them is reported.

mod nodes;
mod syntax_error;

use std::collections::BTreeMap;

use pest::Parser as _;
use pest::iterators::Pair;

use crate::ast::*;
use crate::codes;
use crate::diag::{Diagnostic, FileId, Span};
use crate::expr::Type;
use crate::expr::parse::{build_expr, unescape_string};
use crate::grammar::{FlowParser, Rule};
use crate::suggest::did_you_mean;

use syntax_error::syntax_error;
pub(crate) use syntax_error::{unterminated_string, unterminated_string_error};

/// Parses one file. Returns the tree (if the syntax was valid) and every diagnostic found.
pub fn parse(file: FileId, text: &str) -> (Option<File>, Vec<Diagnostic>) {
    // Deeply nested brackets would exhaust the stack of the recursive-descent parser.
    if let Err(diag) = crate::expr::check_nesting(text, file) {
        return unparsed(file, text, diag);
    }
    let mut cx = Cx { file, diags: Vec::new() };
    match FlowParser::parse(Rule::file, text) {
        Ok(mut pairs) => {
            let root = pairs.next().expect("the file rule always yields one pair");
            // Everything below recurses along the tree: bound its depth first.
            if let Err(diag) = crate::expr::check_depth(&root, file) {
                return unparsed(file, text, diag);
            }
            let ast = cx.file(root);
            (Some(ast), cx.diags)
        }
        Err(err) => unparsed(file, text, syntax_error(file, text, err)),
    }
}

/// A file that yields no tree: its error, and a word (W0506) that nothing else of it was checked.
fn unparsed(file: FileId, text: &str, error: Diagnostic) -> (Option<File>, Vec<Diagnostic>) {
    // At the last character of the file, after the error.
    let last = text.trim_end().len();
    let at = text[..last].chars().next_back().map_or(Span::new(0, 0), |c| Span::new(last - c.len_utf8(), last));
    let at = if at.start < error.span.start { error.span } else { at };
    let skipped = Diagnostic::warning(codes::CHECKS_SKIPPED, file, at, "the rest of this file was not checked")
        .with_label("names, types and the graph are checked once the file parses")
        .with_help("fix the error above and check again: the parser cannot resume after it");
    (None, vec![error, skipped])
}

struct Cx {
    file: FileId,
    diags: Vec<Diagnostic>,
}

fn ident(pair: Pair<'_, Rule>) -> Ident {
    Ident { name: pair.as_str().to_string(), span: pair.as_span().into() }
}

fn string(pair: Pair<'_, Rule>) -> String {
    unescape_string(pair)
}

/// A `title` pair: the title and its Simplified Chinese wording, if written.
fn title(pair: Pair<'_, Rule>) -> (String, Option<String>) {
    let mut text = String::new();
    let mut zh = None;
    for part in pair.into_inner() {
        match part.as_rule() {
            Rule::string => text = string(part),
            Rule::title_zh => zh = part.into_inner().find(|p| p.as_rule() == Rule::string).map(string),
            _ => {}
        }
    }
    (text, zh)
}

fn span(pair: &Pair<'_, Rule>) -> Span {
    pair.as_span().into()
}

fn bound_decl(pair: Pair<'_, Rule>) -> BoundDecl {
    let whole = span(&pair);
    let mut inner = pair.into_inner();
    let op = inner.next().map(|p| p.as_str().to_string()).unwrap_or_default();
    let value = inner.next().map(|p| p.as_str().to_string()).unwrap_or_default();
    BoundDecl { op, value, span: whole }
}

impl Cx {
    fn file(&mut self, root: Pair<'_, Rule>) -> File {
        let mut out = File { file: self.file, ..File::default() };
        for pair in root.into_inner() {
            match pair.as_rule() {
                Rule::roles_block => {
                    for def in pair.into_inner().filter(|p| p.as_rule() == Rule::role_def) {
                        let mut inner = def.into_inner();
                        let name = ident(inner.next().expect("role_def has a name"));
                        let (mut title, mut title_zh, mut calendar) = (None, None, None);
                        for part in inner {
                            match part.as_rule() {
                                Rule::role_calendar => calendar = part.into_inner().last().map(ident),
                                _ => {
                                    (title, title_zh) = {
                                        let (en, zh) = self::title(part);
                                        (Some(en), zh)
                                    }
                                }
                            }
                        }
                        out.roles.push(RoleDecl { name, title, title_zh, calendar });
                    }
                }
                Rule::process => out.processes.push(self.process(pair)),
                Rule::calendar_block => out.calendars.push(self.calendar(pair)),
                _ => {}
            }
        }
        out
    }

    fn process(&mut self, pair: Pair<'_, Rule>) -> Process {
        let whole = span(&pair);
        let mut inner = pair.into_inner().filter(|p| p.as_rule() != Rule::k_process);
        let key = ident(inner.next().expect("process has a key"));
        let mut process = Process {
            file: self.file,
            key,
            title: None,
            title_zh: None,
            inputs: Vec::new(),
            vars: Vec::new(),
            nodes: Vec::new(),
            access: None,
            calendars: Vec::new(),
            span: whole,
        };
        for item in inner {
            match item.as_rule() {
                Rule::title => {
                    let (text, zh) = title(item);
                    process.title = Some(text);
                    process.title_zh = zh;
                }
                Rule::input_block => {
                    for field in item.into_inner().filter(|p| p.as_rule() == Rule::field_decl) {
                        process.inputs.push(self.field_decl(field));
                    }
                }
                Rule::var_decl => {
                    let field = item.into_inner().find(|p| p.as_rule() == Rule::field_decl);
                    process.vars.push(self.field_decl(field.expect("var has a declaration")));
                }
                Rule::uses_calendar => {
                    let name = item.into_inner().find(|p| p.as_rule() == Rule::ident);
                    process.calendars.push(ident(name.expect("a calendar clause has a name")));
                }
                Rule::access_block => {
                    let access = self.access(item);
                    if let (Some(first), Some(again)) = (&process.access, &access) {
                        let d = Diagnostic::error(codes::DUPLICATE, self.file, again.span, "a second `access` block")
                            .with_label("declared again")
                            .with_note(first.span, "first declared here")
                            .with_help("write every access clause of a process in one `access { ... }` block");
                        self.diags.push(d);
                    } else if access.is_some() {
                        process.access = access;
                    }
                }
                _ => process.nodes.push(self.node(item)),
            }
        }
        process
    }

    fn calendar(&mut self, pair: Pair<'_, Rule>) -> CalendarDecl {
        let whole = span(&pair);
        let mut inner = pair.into_inner().filter(|p| p.as_rule() != Rule::k_calendar);
        let name = ident(inner.next().expect("a calendar has a name"));
        let mut cal = CalendarDecl {
            file: self.file,
            name,
            title: None,
            zones: Vec::new(),
            weeks: Vec::new(),
            hours: Vec::new(),
            days: Vec::new(),
            span: whole,
        };
        for item in inner {
            let item_span = span(&item);
            match item.as_rule() {
                Rule::string => cal.title = Some(string(item)),
                Rule::zone_clause => {
                    if let Some(zone) = item.into_inner().find(|p| p.as_rule() == Rule::string) {
                        let zone_span = span(&zone);
                        cal.zones.push((string(zone), zone_span));
                    }
                }
                Rule::week_clause => {
                    let days = item
                        .into_inner()
                        .filter(|p| p.as_rule() == Rule::day_span)
                        .map(|d| {
                            let mut names = d.into_inner().map(ident);
                            (names.next().expect("a day span has a first day"), names.next())
                        })
                        .collect();
                    cal.weeks.push(WeekClause { days, span: item_span });
                }
                Rule::hours_clause => {
                    let periods = item
                        .into_inner()
                        .filter(|p| p.as_rule() == Rule::clock_span)
                        .map(|p| {
                            let period_span = span(&p);
                            let mut clocks = p.into_inner().map(|c| c.as_str().to_string());
                            let start = clocks.next().unwrap_or_default();
                            ClockPeriod { start, end: clocks.next().unwrap_or_default(), span: period_span }
                        })
                        .collect();
                    cal.hours.push(HoursClause { periods, span: item_span });
                }
                Rule::holiday_clause | Rule::workday_clause => {
                    let working = item.as_rule() == Rule::workday_clause;
                    let mut from = (String::new(), item_span);
                    let mut to = None;
                    let mut title = None;
                    for part in item.into_inner() {
                        match part.as_rule() {
                            Rule::date_span => {
                                let mut dates = part.into_inner().map(|d| (d.as_str().to_string(), span(&d)));
                                from = dates.next().expect("a date span has a first date");
                                to = dates.next();
                            }
                            Rule::string => title = Some(string(part)),
                            _ => {}
                        }
                    }
                    cal.days.push(DayDecl { working, from, to, title, span: item_span });
                }
                _ => {}
            }
        }
        cal
    }

    fn field_decl(&mut self, pair: Pair<'_, Rule>) -> VarDecl {
        let mut inner = pair.into_inner().peekable();
        let name = ident(inner.next().expect("field has a name"));
        let ty = self.type_expr(inner.next().expect("field has a type"));
        let mut bounds = Vec::new();
        while let Some(bound) = inner.next_if(|p| p.as_rule() == Rule::bound) {
            bounds.push(bound_decl(bound));
        }
        let default = inner.next().map(build_expr);
        VarDecl { name, ty, default, bounds }
    }

    fn access(&mut self, pair: Pair<'_, Rule>) -> Option<AccessDecl> {
        let mut access = AccessDecl { span: span(&pair), ..AccessDecl::default() };
        for clause in pair.into_inner() {
            let rule = clause.as_rule();
            let clause_span = span(&clause);
            let roles = || clause.clone().into_inner().filter(|p| p.as_rule() == Rule::role_name).map(ident);
            match rule {
                Rule::start_by => access.start_by.extend(roles()),
                Rule::on_behalf_by => access.on_behalf_by.extend(roles()),
                Rule::read_by => access.read_by.extend(roles()),
                Rule::requester_clause => {
                    access.requester = clause.into_inner().find(|p| p.as_rule() == Rule::ident).map(ident);
                }
                Rule::called_only => access.called_only = Some(clause_span),
                _ => {}
            }
        }
        Some(access)
    }

    fn type_expr(&mut self, pair: Pair<'_, Rule>) -> TypeRef {
        let whole = span(&pair);
        let mut ty = Type::Any;
        let mut optional = false;
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::optional => optional = true,
                Rule::named_type => ty = self.named_type(part),
                Rule::list_type => {
                    let elem = part.into_inner().find(|p| p.as_rule() == Rule::type_expr);
                    let elem = self.type_expr(elem.expect("list has an element type"));
                    ty = Type::List { of: Box::new(elem.ty) };
                }
                Rule::record_type => {
                    let mut fields = BTreeMap::new();
                    for field in part.into_inner().filter(|p| p.as_rule() == Rule::record_field) {
                        let mut inner = field.into_inner();
                        let name = ident(inner.next().expect("record field has a name"));
                        let fty = self.type_expr(inner.next().expect("record field has a type"));
                        if fields.insert(name.name.clone(), fty.ty).is_some() {
                            self.diags.push(
                                Diagnostic::error(
                                    codes::DUPLICATE,
                                    self.file,
                                    name.span,
                                    format!("duplicate field `{}` in record type", name.name),
                                )
                                .with_label("declared twice")
                                .with_help("give each field of a record a different name"),
                            );
                        }
                    }
                    ty = Type::Record { fields };
                }
                _ => {}
            }
        }
        TypeRef { ty, optional, span: whole }
    }

    fn named_type(&mut self, pair: Pair<'_, Rule>) -> Type {
        const NAMES: [&str; 9] = ["text", "money", "decimal", "int", "bool", "date", "datetime", "duration", "user"];
        let name = pair.as_str();
        match name {
            "text" | "string" => Type::Text,
            "money" => Type::Money,
            "decimal" | "number" => Type::Decimal,
            "int" | "integer" => Type::Int,
            "bool" | "boolean" => Type::Bool,
            "date" => Type::Date,
            "datetime" => Type::DateTime,
            "duration" => Type::Duration,
            "user" => Type::User,
            _ => {
                let mut diag =
                    Diagnostic::error(codes::UNKNOWN_TYPE, self.file, span(&pair), format!("unknown type `{name}`"))
                        .with_label("not a type");
                diag = match did_you_mean(name, NAMES.iter().copied()) {
                    Some(s) => diag.with_help(format!("did you mean `{s}`?")),
                    None => diag.with_help(format!(
                        "the types are {}, `list<T>` and `record {{ field: T }}`",
                        NAMES.map(|n| format!("`{n}`")).join(", ")
                    )),
                };
                self.diags.push(diag);
                Type::Any
            }
        }
    }

    fn target(&mut self, pair: Pair<'_, Rule>) -> Target {
        // Accept `next` (arrow + target) or `target` itself.
        let pair =
            if pair.as_rule() == Rule::next { pair.into_inner().next().expect("next has a target") } else { pair };
        let whole = span(&pair);
        let inner = pair.into_inner().next().expect("target has one alternative");
        match inner.as_rule() {
            Rule::node_ref => Target::Node(ident(inner.into_inner().next().expect("node_ref has a name"))),
            Rule::inline_decide => Target::Decide(Box::new(self.decide_body(inner)), whole),
            Rule::inline_set => {
                let mut assignments = Vec::new();
                let mut next = None;
                for part in inner.into_inner() {
                    match part.as_rule() {
                        Rule::assignment => assignments.push(assignment(part)),
                        Rule::target => next = Some(self.target(part)),
                        _ => {}
                    }
                }
                Target::Set(assignments, Box::new(next.expect("inline set has a target")), whole)
            }
            other => unreachable!("target alternative {other:?}"),
        }
    }

    fn decide_body(&mut self, pair: Pair<'_, Rule>) -> DecideBody {
        let mut body = DecideBody::default();
        for arm in pair.into_inner() {
            match arm.as_rule() {
                Rule::when_arm => {
                    let mut inner = arm.into_inner().filter(|p| p.as_rule() != Rule::k_when);
                    let cond = build_expr(inner.next().expect("when has a condition"));
                    let target = self.target(inner.next().expect("when has a target"));
                    body.arms.push((cond, target));
                }
                Rule::otherwise_arm => {
                    let mut inner = arm.into_inner();
                    let kw = span(&inner.next().expect("otherwise keyword"));
                    let target = self.target(inner.next().expect("otherwise has a target"));
                    body.otherwise = Some((kw, target));
                }
                _ => {}
            }
        }
        body
    }

    fn mappings(&mut self, pair: Pair<'_, Rule>) -> Vec<Mapping> {
        pair.into_inner()
            .filter(|p| p.as_rule() == Rule::mapping)
            .map(|m| {
                let mut inner = m.into_inner();
                let name = ident(inner.next().expect("mapping has a name"));
                let value = inner.next().map(build_expr);
                Mapping { name, value }
            })
            .collect()
    }

    fn boundary(&mut self, pair: Pair<'_, Rule>) -> Option<Boundary> {
        let whole = span(&pair);
        let rule = pair.as_rule();
        let parts: Vec<Pair<'_, Rule>> = pair.into_inner().filter(|p| !is_keyword(p.as_rule())).collect();
        let mut exprs = Vec::new();
        let mut code = None;
        let mut target = None;
        for part in parts {
            match part.as_rule() {
                Rule::string => code = Some(string(part)),
                Rule::expr => exprs.push(build_expr(part)),
                Rule::expr_list => exprs.extend(part.into_inner().map(build_expr)),
                Rule::next => target = Some(self.target(part)),
                _ => {}
            }
        }
        let target = target?;
        Some(match rule {
            Rule::error_boundary => Boundary::Error { code, target, span: whole },
            Rule::escalate_boundary | Rule::timer_boundary => {
                Boundary::After { at: exprs.into_iter().next()?, target, span: whole }
            }
            Rule::also_boundary => Boundary::AlsoAfter { at: exprs, target, span: whole },
            Rule::every_boundary => Boundary::Every { interval: exprs.into_iter().next()?, target, span: whole },
            _ => return None,
        })
    }
}

fn assignment(pair: Pair<'_, Rule>) -> Assignment {
    let mut inner = pair.into_inner();
    let name = ident(inner.next().expect("assignment has a name"));
    let value = build_expr(inner.next().expect("assignment has a value"));
    Assignment { name, value }
}

/// True for the keyword rules (`k_*`), which carry no information once matched.
fn is_keyword(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::k_after
            | Rule::k_also
            | Rule::k_approval
            | Rule::k_assignee
            | Rule::k_backoff
            | Rule::k_by
            | Rule::k_calendar
            | Rule::k_call
            | Rule::k_decide
            | Rule::k_due
            | Rule::k_end
            | Rule::k_error
            | Rule::k_escalate
            | Rule::k_every
            | Rule::k_first
            | Rule::k_fixed
            | Rule::k_for
            | Rule::k_form
            | Rule::k_holiday
            | Rule::k_hours
            | Rule::k_in
            | Rule::k_input
            | Rule::k_job
            | Rule::k_join
            | Rule::k_key
            | Rule::k_list
            | Rule::k_message
            | Rule::k_next
            | Rule::k_not
            | Rule::k_on
            | Rule::k_otherwise
            | Rule::k_out
            | Rule::k_parallel
            | Rule::k_process
            | Rule::k_receive
            | Rule::k_record
            | Rule::k_remind
            | Rule::k_retry
            | Rule::k_role
            | Rule::k_roles
            | Rule::k_set
            | Rule::k_start
            | Rule::k_task
            | Rule::k_terminate
            | Rule::k_timeout
            | Rule::k_until
            | Rule::k_var
            | Rule::k_wait
            | Rule::k_week
            | Rule::k_when
            | Rule::k_workday
            | Rule::k_zone
            | Rule::k_zh
    )
}
