//! The nodes of a process: starts and ends, and the clauses of each block node (task,
//! approval, decide, parallel, wait first, receive, wait, call).

use pest::iterators::Pair;

use super::{Cx, assignment, bound_decl, ident, is_keyword, span, string, title as title_of};
use crate::ast::*;
use crate::codes;
use crate::diag::{Diagnostic, Span};
use crate::expr::Expr;
use crate::expr::parse::{build_expr, parse_duration, parse_number};
use crate::grammar::Rule;

impl Cx {
    pub(super) fn node(&mut self, pair: Pair<'_, Rule>) -> Node {
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
        Node { name, title: None, title_zh: None, kind: NodeKind::Start(trigger), next, head }
    }

    fn end(&mut self, parts: Vec<Pair<'_, Rule>>) -> Node {
        let mut parts = parts.into_iter();
        let name = ident(parts.next().expect("end has a name"));
        let (mut title, mut title_zh) = (None, None);
        let mut kind = EndKind::Normal;
        for part in parts {
            match part.as_rule() {
                Rule::title => {
                    let (text, zh) = title_of(part);
                    (title, title_zh) = (Some(text), zh);
                }
                Rule::end_error => {
                    let code = part.into_inner().find(|p| p.as_rule() == Rule::string).expect("error code");
                    kind = EndKind::Error(string(code));
                }
                Rule::end_terminate => kind = EndKind::Terminate,
                _ => {}
            }
        }
        let head = name.span;
        Node { name, title, title_zh, kind: NodeKind::End(kind), next: None, head }
    }

    fn block_node(&mut self, rule: Rule, parts: Vec<Pair<'_, Rule>>, head_start: usize) -> Node {
        let mut parts = parts.into_iter().peekable();
        let name = ident(parts.next().expect("node has a name"));
        let head = Span::new(head_start, name.span.end);
        let (mut title, mut title_zh) = (None, None);
        let mut next = None;
        let mut clauses = Vec::new();
        for part in parts {
            match part.as_rule() {
                Rule::title => {
                    let (text, zh) = title_of(part);
                    (title, title_zh) = (Some(text), zh);
                }
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
        Node { name, title, title_zh, kind, next, head }
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
