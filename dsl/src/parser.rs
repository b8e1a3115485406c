//! Stage 1: text to syntax tree. A file with a syntax error yields no tree and one diagnostic
//! (the grammar cannot resume after an error); type names and literal values are resolved here
//! and every problem with them is reported.

use std::collections::BTreeMap;

use pest::Parser as _;
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;

use crate::ast::*;
use crate::codes;
use crate::diag::{Diagnostic, FileId, Span};
use crate::expr::parse::{build_expr, parse_duration, parse_number, unescape_string};
use crate::expr::{Expr, Type};
use crate::grammar::{FlowParser, Rule};
use crate::suggest::did_you_mean;

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

fn syntax_error(file: FileId, text: &str, err: pest::error::Error<Rule>) -> Diagnostic {
    let pos = match err.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let found = describe_found(text, pos);
    let end = pos + found_len(&text[pos..]);
    if let ErrorVariant::CustomError { message } = &err.variant
        && message.contains("limit reached")
    {
        // pest stops before its recursion exhausts the stack.
        return Diagnostic::error(codes::TOO_DEEP, file, Span::new(pos, end), "the file is nested too deeply to parse")
            .with_label("too deep")
            .with_help(
                "split deeply nested expressions into several assignments, or lead to named nodes instead of nesting",
            );
    }
    if let Some(quote) = unterminated_string(text, pos) {
        return unterminated_string_error(file, quote);
    }
    if text[pos..].trim().is_empty() {
        return Diagnostic::error(codes::SYNTAX, file, Span::new(pos, end), "the file ends inside a block")
            .with_label("expected `}` before the end of the file")
            .with_help("a block is not closed: check that every `{` has its `}`");
    }
    let (message, label) = match &err.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            let mut words: Vec<String> = positives.iter().filter_map(|r| describe_rule(*r)).collect();
            words.sort();
            words.dedup();
            if words.iter().any(|w| w == "an expression") {
                words.retain(|w| w != "a name");
            }
            let expected = join_alternatives(&words);
            if expected.is_empty() {
                (format!("unexpected {found}"), "not valid here".to_string())
            } else {
                (format!("expected {expected}, found {found}"), format!("expected {expected}"))
            }
        }
        ErrorVariant::CustomError { message } => (message.clone(), String::new()),
    };
    Diagnostic::error(codes::SYNTAX, file, Span::new(pos, end), message)
        .with_label(label)
        .with_help(syntax_help(text, pos))
}

/// The offset of the opening quote of a string left open on the line of `pos`, if the syntax
/// error at `pos` lies inside it (strings end on their line).
pub(crate) fn unterminated_string(text: &str, pos: usize) -> Option<usize> {
    let pos = pos.min(text.len());
    let line_start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
    let line = &text.as_bytes()[line_start..line_end];
    let mut open = None;
    let mut i = 0;
    while i < line.len() {
        match (line[i], open) {
            (b'#', None) => break,
            (b'"', None) => open = Some(line_start + i),
            (b'"', Some(_)) => open = None,
            (b'\\', Some(_)) => i += 1,
            _ => {}
        }
        i += 1;
    }
    open.filter(|&quote| quote <= pos)
}

/// E0001 for a string without its closing quote, pointing at the opening one.
pub(crate) fn unterminated_string_error(file: FileId, quote: usize) -> Diagnostic {
    Diagnostic::error(codes::SYNTAX, file, Span::new(quote, quote + 1), "unterminated string")
        .with_label("this string has no closing `\"` on its line")
        .with_help("close the string with `\"`; a string cannot span lines (write `\\n` for a line break)")
}

/// Length in bytes of the token at the start of `rest`: a word, `->`, or one character.
fn found_len(rest: &str) -> usize {
    let word: usize = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').map(char::len_utf8).sum();
    if word > 0 {
        word
    } else if rest.starts_with("->") || rest.starts_with("=>") {
        2
    } else {
        rest.chars().next().map_or(0, char::len_utf8)
    }
}

fn describe_found(text: &str, pos: usize) -> String {
    let rest = &text[pos..];
    match rest.chars().next() {
        None => "the end of the file".to_string(),
        Some('\n') => "the end of the line".to_string(),
        Some(_) => format!("`{}`", &rest[..found_len(rest)]),
    }
}

fn syntax_help(text: &str, pos: usize) -> String {
    let before = text[..pos].trim_end();
    let rest = &text[pos..];
    if rest.starts_with("=>") {
        "flows are written with `->`".to_string()
    } else if before.ends_with("->") {
        "after `->` write the name of the next node, `decide { ... }` or `set x = ... -> next`".to_string()
    } else if before.ends_with('=') || rest.starts_with("->") {
        "an expression is missing here, such as `0`, `\"text\"` or `amount * 2`".to_string()
    } else {
        "see the language reference in README.md for the clauses each block takes".to_string()
    }
}

/// Grammar rules that only occur inside expressions: users see "an expression" for all of them.
const EXPRESSION_RULES: &[&str] = &[
    "expr",
    "expr_list",
    "expr_only",
    "add_op",
    "arith",
    "between_tail",
    "bracket",
    "call",
    "cmp_op",
    "field_access",
    "fn_name",
    "if_expr",
    "kw_and",
    "kw_in",
    "kw_or",
    "kw_not",
    "kw_if",
    "kw_between",
    "kw_then",
    "kw_else",
    "lit_false",
    "lit_null",
    "lit_true",
    "mul_op",
    "neg_op",
    "not_call",
    "not_op",
    "paren",
    "pow_op",
    "range_close",
    "range_tail",
    "rev_range",
    "list_tail",
    "number",
    "duration",
    "string",
];

/// The words a user sees for a grammar rule; `None` for rules that add nothing to the list.
fn describe_rule(rule: Rule) -> Option<String> {
    let name = format!("{rule:?}");
    if let Some(kw) = name.strip_prefix("k_") {
        return Some(format!("`{kw}`"));
    }
    let word = match name.as_str() {
        "ident" | "node_ref" | "start_name" => "a name",
        "title" => "a quoted string",
        "target" | "next" => "`->`",
        "role_name" => "a role name such as `sales.manager`",
        "type_expr" | "named_type" => "a type",
        "EOI" => "the end of the file",
        "file" | "process" => "`process` or `roles`",
        "optional" | "backoff_fixed" | "string_inner" => return None,
        other if EXPRESSION_RULES.contains(&other) => "an expression",
        other => return Some(other.replace('_', " ")),
    };
    Some(word.to_string())
}

fn join_alternatives(words: &[String]) -> String {
    match words {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
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
                        let title = inner.next().map(string);
                        out.roles.push(RoleDecl { name, title });
                    }
                }
                Rule::process => out.processes.push(self.process(pair)),
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
            inputs: Vec::new(),
            vars: Vec::new(),
            nodes: Vec::new(),
            access: None,
            span: whole,
        };
        for item in inner {
            match item.as_rule() {
                Rule::string => process.title = Some(string(item)),
                Rule::input_block => {
                    for field in item.into_inner().filter(|p| p.as_rule() == Rule::field_decl) {
                        process.inputs.push(self.field_decl(field));
                    }
                }
                Rule::var_decl => {
                    let field = item.into_inner().find(|p| p.as_rule() == Rule::field_decl);
                    process.vars.push(self.field_decl(field.expect("var has a declaration")));
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

    fn node(&mut self, pair: Pair<'_, Rule>) -> Node {
        let rule = pair.as_rule();
        let whole = span(&pair);
        let mut inner = pair.into_inner().peekable();
        // Leading keywords.
        let mut head_start = whole.start;
        let mut head_end = whole.start;
        while let Some(p) = inner.peek() {
            if is_keyword(p.as_rule()) {
                head_end = p.as_span().end();
                if head_start == whole.start {
                    head_start = p.as_span().start();
                }
                inner.next();
            } else {
                break;
            }
        }
        let rest: Vec<Pair<'_, Rule>> = inner.collect();
        match rule {
            Rule::start_decl => self.start(rest, Span::new(head_start, head_end)),
            Rule::end_decl => self.end(rest),
            _ => self.block_node(rule, rest, head_start),
        }
    }

    fn start(&mut self, parts: Vec<Pair<'_, Rule>>, kw: Span) -> Node {
        let mut name = Ident { name: "start".to_string(), span: kw };
        let mut trigger = StartTrigger::None;
        let mut next = None;
        for part in parts {
            match part.as_rule() {
                Rule::start_name => name = ident(part.into_inner().next().expect("start name")),
                Rule::message_start => {
                    let s = part.into_inner().find(|p| p.as_rule() == Rule::string).expect("message name");
                    trigger = StartTrigger::Message(string(s.clone()), span(&s));
                }
                Rule::schedule_start => {
                    let mut strings = part.into_inner().filter(|p| p.as_rule() == Rule::string);
                    let cron = strings.next().expect("cron pattern");
                    let zone = strings.next().map(|z| (string(z.clone()), span(&z)));
                    trigger = StartTrigger::Schedule { cron: string(cron.clone()), cron_span: span(&cron), zone };
                }
                Rule::next => next = Some(self.target(part)),
                _ => {}
            }
        }
        let head = kw.to(name.span);
        Node { name, title: None, kind: NodeKind::Start(trigger), next, head }
    }

    fn end(&mut self, parts: Vec<Pair<'_, Rule>>) -> Node {
        let mut parts = parts.into_iter();
        let name = ident(parts.next().expect("end has a name"));
        let mut title = None;
        let mut kind = EndKind::Normal;
        for part in parts {
            match part.as_rule() {
                Rule::title => title = Some(string(part.into_inner().next().expect("title string"))),
                Rule::end_error => {
                    let code = part.into_inner().find(|p| p.as_rule() == Rule::string).expect("error code");
                    kind = EndKind::Error(string(code));
                }
                Rule::end_terminate => kind = EndKind::Terminate,
                _ => {}
            }
        }
        let head = name.span;
        Node { name, title, kind: NodeKind::End(kind), next: None, head }
    }

    fn block_node(&mut self, rule: Rule, parts: Vec<Pair<'_, Rule>>, head_start: usize) -> Node {
        let mut parts = parts.into_iter().peekable();
        let name = ident(parts.next().expect("node has a name"));
        let head = Span::new(head_start, name.span.end);
        let mut title = None;
        let mut next = None;
        let mut clauses = Vec::new();
        for part in parts {
            match part.as_rule() {
                Rule::title => title = Some(string(part.into_inner().next().expect("title string"))),
                Rule::string if title.is_none() && clauses.is_empty() => title = Some(string(part)),
                Rule::next if rule != Rule::parallel_node => next = Some(self.target(part)),
                _ => clauses.push(part),
            }
        }
        let kind = match rule {
            Rule::task_node => self.task(clauses),
            Rule::approval_node => self.approval(clauses),
            Rule::set_node => {
                NodeKind::Set(clauses.into_iter().filter(|p| p.as_rule() == Rule::assignment).map(assignment).collect())
            }
            Rule::decide_node => {
                let mut body = DecideBody::default();
                for clause in clauses {
                    let sub = self.decide_body_from_arm(clause);
                    body.arms.extend(sub.arms);
                    if sub.otherwise.is_some() {
                        body.otherwise = sub.otherwise;
                    }
                }
                NodeKind::Decide(body)
            }
            Rule::parallel_node => NodeKind::Parallel(
                clauses.into_iter().filter(|p| p.as_rule() == Rule::next).map(|p| self.target(p)).collect(),
            ),
            Rule::join_node => NodeKind::Join,
            Rule::first_node => NodeKind::First(clauses.into_iter().filter_map(|p| self.first_arm(p)).collect()),
            Rule::receive_node => self.receive(clauses),
            Rule::wait_node => self.wait(clauses),
            Rule::call_node => self.call(clauses),
            other => unreachable!("node rule {other:?}"),
        };
        Node { name, title, kind, next, head }
    }

    fn decide_body_from_arm(&mut self, arm: Pair<'_, Rule>) -> DecideBody {
        let span_all = span(&arm);
        let rule = arm.as_rule();
        let mut body = DecideBody::default();
        let mut inner = arm.into_inner();
        match rule {
            Rule::when_arm => {
                inner.next();
                let cond = build_expr(inner.next().expect("when condition"));
                let target = self.target(inner.next().expect("when target"));
                body.arms.push((cond, target));
            }
            Rule::otherwise_arm => {
                let kw = span(&inner.next().expect("otherwise keyword"));
                let target = self.target(inner.next().expect("otherwise target"));
                body.otherwise = Some((kw, target));
            }
            _ => {
                let _ = span_all;
            }
        }
        body
    }

    fn task(&mut self, clauses: Vec<Pair<'_, Rule>>) -> NodeKind {
        let mut job = None;
        let mut inputs = Vec::new();
        let mut outputs = Vec::new();
        let mut retry = None;
        let mut timeout = None;
        let mut boundaries = Vec::new();
        for clause in clauses {
            let clause_span = span(&clause);
            match clause.as_rule() {
                Rule::job_clause => {
                    let s = clause.into_inner().find(|p| p.as_rule() == Rule::string).expect("job type");
                    job = Some((string(s.clone()), span(&s)));
                }
                Rule::in_mapping => inputs.extend(self.mappings(clause)),
                Rule::out_mapping => outputs.extend(self.mappings(clause)),
                Rule::retry_clause => {
                    let mut attempts = 0;
                    let mut backoff_secs = 0;
                    let mut fixed = false;
                    for part in clause.into_inner() {
                        match part.as_rule() {
                            Rule::number => attempts = self.count(&part),
                            Rule::duration => backoff_secs = self.duration(&part),
                            Rule::backoff_fixed => fixed = true,
                            _ => {}
                        }
                    }
                    retry = Some(Retry { attempts, backoff_secs, fixed, span: clause_span });
                }
                Rule::timeout_clause => {
                    let d = clause.into_inner().find(|p| p.as_rule() == Rule::duration).expect("timeout duration");
                    timeout = Some((self.duration(&d), span(&d)));
                }
                _ => boundaries.extend(self.boundary(clause)),
            }
        }
        NodeKind::Task { job, inputs, outputs, retry, timeout, boundaries }
    }

    fn count(&mut self, pair: &Pair<'_, Rule>) -> u32 {
        let value = parse_number(pair.as_str()).and_then(|d| {
            if d.fract().is_zero() { u32::try_from(d.mantissa() / 10i128.pow(d.scale())).ok() } else { None }
        });
        value.unwrap_or_else(|| {
            self.diags.push(
                Diagnostic::error(
                    codes::INVALID_LITERAL,
                    self.file,
                    span(pair),
                    format!("`{}` is not a whole number of attempts", pair.as_str()),
                )
                .with_label("expected a whole number")
                .with_help("write the number of retries, such as `retry 3 backoff 30s`"),
            );
            0
        })
    }

    fn duration(&mut self, pair: &Pair<'_, Rule>) -> i64 {
        parse_duration(pair.as_str()).unwrap_or_else(|| {
            self.diags.push(
                Diagnostic::error(
                    codes::INVALID_LITERAL,
                    self.file,
                    span(pair),
                    format!("invalid duration `{}`", pair.as_str()),
                )
                .with_label("not a whole number of seconds")
                .with_help("write a duration such as `30s`, `15m`, `24h`, `7d` or `2w`"),
            );
            0
        })
    }

    fn approval(&mut self, clauses: Vec<Pair<'_, Rule>>) -> NodeKind {
        let mut roles = Vec::new();
        let mut assignee = None;
        let mut not_by = Vec::new();
        let mut form = Vec::new();
        let mut due = None;
        let mut reminders = Vec::new();
        let mut outputs = Vec::new();
        let mut boundaries = Vec::new();
        let mut show = Vec::new();
        for clause in clauses {
            match clause.as_rule() {
                Rule::role_clause => {
                    roles.extend(clause.into_inner().filter(|p| p.as_rule() == Rule::role_name).map(ident))
                }
                Rule::assignee_clause => {
                    assignee = clause.into_inner().find(|p| p.as_rule() == Rule::expr).map(build_expr)
                }
                Rule::not_by_clause => {
                    not_by.extend(clause.into_inner().find(|p| p.as_rule() == Rule::expr).map(build_expr))
                }
                Rule::form_clause => {
                    for field in clause.into_inner().filter(|p| p.as_rule() == Rule::form_field) {
                        let mut inner = field.into_inner();
                        let name = ident(inner.next().expect("form field name"));
                        let ty = self.type_expr(inner.next().expect("form field type"));
                        let bounds = inner.filter(|p| p.as_rule() == Rule::bound).map(bound_decl).collect();
                        form.push(VarDecl { name, ty, default: None, bounds });
                    }
                }
                Rule::due_clause => due = clause.into_inner().find(|p| p.as_rule() == Rule::expr).map(build_expr),
                Rule::remind_clause => {
                    let which = clause
                        .into_inner()
                        .find(|p| matches!(p.as_rule(), Rule::remind_after | Rule::remind_every))
                        .expect("remind kind");
                    let rule = which.as_rule();
                    let mut exprs = Vec::new();
                    for part in which.into_inner() {
                        match part.as_rule() {
                            Rule::expr => exprs.push(build_expr(part)),
                            Rule::expr_list => exprs.extend(part.into_inner().map(build_expr)),
                            _ => {}
                        }
                    }
                    if rule == Rule::remind_after {
                        reminders.push(Remind::After(exprs));
                    } else if let Some(e) = exprs.into_iter().next() {
                        reminders.push(Remind::Every(e));
                    }
                }
                Rule::out_mapping => outputs.extend(self.mappings(clause)),
                Rule::show_clause => show.extend(clause.into_inner().filter(|p| p.as_rule() == Rule::ident).map(ident)),
                _ => boundaries.extend(self.boundary(clause)),
            }
        }
        NodeKind::Approval { roles, assignee, not_by, form, due, reminders, outputs, boundaries, show }
    }

    fn first_arm(&mut self, pair: Pair<'_, Rule>) -> Option<FirstArm> {
        let whole = span(&pair);
        let rule = pair.as_rule();
        let mut name = None;
        let mut expr: Option<Expr> = None;
        let mut outputs = Vec::new();
        let mut target = None;
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::string => name = Some(string(part)),
                Rule::expr => expr = Some(build_expr(part)),
                Rule::out_mapping => outputs = self.mappings(part),
                Rule::next => target = Some(self.target(part)),
                _ => {}
            }
        }
        match rule {
            Rule::first_message => {
                Some(FirstArm::Message { name: name?, key: expr?, outputs, target: target?, span: whole })
            }
            Rule::first_timer => Some(FirstArm::After { at: expr?, target: target?, span: whole }),
            _ => None,
        }
    }

    fn receive(&mut self, clauses: Vec<Pair<'_, Rule>>) -> NodeKind {
        let mut message = None;
        let mut key = None;
        let mut outputs = Vec::new();
        let mut boundaries = Vec::new();
        for clause in clauses {
            match clause.as_rule() {
                Rule::message_clause => {
                    for part in clause.into_inner() {
                        match part.as_rule() {
                            Rule::string => message = Some((string(part.clone()), span(&part))),
                            Rule::expr => key = Some(build_expr(part)),
                            _ => {}
                        }
                    }
                }
                Rule::out_mapping => outputs.extend(self.mappings(clause)),
                _ => boundaries.extend(self.boundary(clause)),
            }
        }
        NodeKind::Receive { message, key, outputs, boundaries }
    }

    fn wait(&mut self, clauses: Vec<Pair<'_, Rule>>) -> NodeKind {
        let mut spec = None;
        let mut boundaries = Vec::new();
        for clause in clauses {
            match clause.as_rule() {
                Rule::wait_for => {
                    spec = clause.into_inner().find(|p| p.as_rule() == Rule::expr).map(|e| WaitSpec::For(build_expr(e)))
                }
                Rule::wait_until => {
                    spec =
                        clause.into_inner().find(|p| p.as_rule() == Rule::expr).map(|e| WaitSpec::Until(build_expr(e)))
                }
                Rule::wait_cron => {
                    let mut strings = clause.into_inner().filter(|p| p.as_rule() == Rule::string);
                    let cron = strings.next().expect("cron pattern");
                    let zone = strings.next().map(|z| (string(z.clone()), span(&z)));
                    spec = Some(WaitSpec::Cron { cron: string(cron.clone()), cron_span: span(&cron), zone });
                }
                _ => boundaries.extend(self.boundary(clause)),
            }
        }
        NodeKind::Wait { spec: spec.expect("the grammar requires a wait clause"), boundaries }
    }

    fn call(&mut self, clauses: Vec<Pair<'_, Rule>>) -> NodeKind {
        let mut process = None;
        let mut inputs = Vec::new();
        let mut outputs = Vec::new();
        let mut boundaries = Vec::new();
        for clause in clauses {
            match clause.as_rule() {
                Rule::process_clause => process = clause.into_inner().find(|p| p.as_rule() == Rule::ident).map(ident),
                Rule::in_mapping => inputs.extend(self.mappings(clause)),
                Rule::out_mapping => outputs.extend(self.mappings(clause)),
                _ => boundaries.extend(self.boundary(clause)),
            }
        }
        NodeKind::Call { process, inputs, outputs, boundaries }
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
            | Rule::k_when
    )
}
