//! Each BPMN element translated to its `.flow` node: clauses, targets and boundary events.

use roxmltree::Node as X;

use super::read::{Builder, El, FKind, bpmn_tag, camunda, child, child_def, extensions, ours, span_of};
use super::translate::{self, quote};
use crate::codes;
use crate::export::{CAMUNDA_NS, CLOVERLEAF_NS};

use super::read::ZEEBE_NS;
use super::timers::Timer;

impl<'a, 'i> Builder<'_, 'a, 'i> {
    /// The node's title: the element's label, unless it is the node's name, or the node is a
    /// start (which has none in `.flow`) or written in place.
    pub(super) fn title(&self, el: &El<'a, 'i>, name: &str) -> Option<String> {
        let label = el.x.attribute("name")?;
        // A label that only repeats the name is no title, unless a Chinese one comes with it.
        let repeats_name = label == name && super::read::ours(el.x, "titleZh").is_none();
        let untitled = el.tag == "startEvent" || name.contains(':') || repeats_name || label.trim().is_empty();
        (!untitled).then(|| label.to_string())
    }

    /// The node at the end of flow `f`, through merging gateways.
    pub(super) fn target(&mut self, f: usize) -> Option<usize> {
        let mut e = self.flows[f].target;
        for _ in 0..=self.els.len() {
            if let Some(n) = self.node_of[e] {
                return Some(n);
            }
            let el = &self.els[e];
            match (el.tag, el.out.as_slice()) {
                ("exclusiveGateway", [next]) => e = self.flows[*next].target,
                _ => {
                    self.r.error(
                        codes::UNSUPPORTED,
                        self.flows[f].x,
                        "a sequence flow leads into an event that only its host or gateway may start",
                        "flow into a boundary or gateway event",
                        "let the flow lead to a task, gateway or end event",
                    );
                    return None;
                }
            }
        }
        None
    }

    /// The one flow out of element `e`.
    pub(super) fn next(&mut self, e: usize) -> Option<usize> {
        let el = &self.els[e];
        match el.out.as_slice() {
            [f] => {
                if child(self.flows[*f].x, "conditionExpression").is_some() {
                    self.r.error(
                        codes::UNSUPPORTED,
                        self.flows[*f].x,
                        "a conditional flow out of a task or event",
                        "condition outside a gateway",
                        "put an exclusive gateway after the element and the condition on its flow",
                    );
                }
                self.target(*f)
            }
            [] => {
                let tag = el.tag;
                self.r.error(
                    codes::INCOMPLETE,
                    el.x,
                    format!("no sequence flow leaves this `bpmn:{tag}`"),
                    "nothing after this element",
                    "connect it to the next element",
                );
                None
            }
            _ => {
                self.r.error(
                    codes::UNSUPPORTED,
                    el.x,
                    "several sequence flows leave this element",
                    "an implicit split",
                    "put a parallel or exclusive gateway after it, so the split is explicit",
                );
                None
            }
        }
    }

    /// What element `e` becomes.
    pub(super) fn kind(&mut self, e: usize, el: &El<'a, 'i>) -> FKind {
        let x = el.x;
        let block = |keyword, clauses, next| FKind::Block { keyword, clauses, next };
        match el.tag {
            "startEvent" => {
                let trigger = match child_def(x) {
                    None => String::new(),
                    Some(d) if bpmn_tag(d) == Some("messageEventDefinition") => {
                        format!("on message {}", quote(&self.message(x, d)))
                    }
                    Some(d) if bpmn_tag(d) == Some("timerEventDefinition") => match self.timer(x, d) {
                        Some(Timer::Cron(pattern, zone)) => {
                            let zone = zone.map(|z| format!(" in {}", quote(&z))).unwrap_or_default();
                            format!("every {}{zone}", quote(&pattern))
                        }
                        Some(_) => {
                            self.r.error(
                                codes::UNSUPPORTED,
                                d,
                                "a timer start that is not a schedule",
                                "a one-off or repeating timer start",
                                "start on a cron schedule (`timeCycle` with a cron pattern) or start by request",
                            );
                            String::new()
                        }
                        None => String::new(),
                    },
                    Some(d) => {
                        self.unsupported_event(d);
                        String::new()
                    }
                };
                FKind::Start { trigger, next: self.next(e) }
            }
            "endEvent" => {
                let suffix = match child_def(x) {
                    None => String::new(),
                    Some(d) if bpmn_tag(d) == Some("terminateEventDefinition") => " terminate".to_string(),
                    Some(d) if bpmn_tag(d) == Some("errorEventDefinition") => match self.error_code(d) {
                        Some(code) => format!(" error {}", quote(&code)),
                        None => {
                            self.r.error(
                                codes::INCOMPLETE,
                                d,
                                "an error end event without an error code",
                                "which error?",
                                "refer to a `bpmn:error` with an `errorCode`",
                            );
                            String::new()
                        }
                    },
                    Some(d) => {
                        self.unsupported_event(d);
                        String::new()
                    }
                };
                FKind::End { suffix }
            }
            "serviceTask" => {
                let mut clauses = Vec::new();
                let job = camunda(x, "topic")
                    .or_else(|| extensions(x, ZEEBE_NS, "taskDefinition").next().and_then(|t| t.attribute("type")));
                match job {
                    Some(job) => clauses.push(format!("job {}", quote(job))),
                    None => {
                        let java =
                            ["class", "delegateExpression", "expression"].iter().any(|a| camunda(x, a).is_some());
                        self.r.error(
                            codes::INCOMPLETE,
                            x,
                            "a service task without a job type",
                            if java { "implemented by Java code" } else { "no `camunda:topic`" },
                            "make it an external task (`camunda:type=\"external\"` with a `camunda:topic`): workers fetch jobs by topic",
                        );
                    }
                }
                clauses.extend(self.mappings(x, "in", false));
                clauses.extend(self.mappings(x, "out", false));
                if let Some(r) = extensions(x, CLOVERLEAF_NS, "retry").next() {
                    let fixed = if r.attribute("fixed") == Some("true") { " fixed" } else { "" };
                    clauses.push(format!(
                        "retry {} backoff {}{fixed}",
                        r.attribute("attempts").unwrap_or("3"),
                        r.attribute("backoff").unwrap_or("10s")
                    ));
                }
                if let Some(t) = ours(x, "timeout") {
                    clauses.push(format!("timeout {t}"));
                }
                block("task", clauses, self.next(e))
            }
            "userTask" => block("approval", self.approval(x), self.next(e)),
            "scriptTask" => {
                let assignments: Vec<(String, String)> = extensions(x, CLOVERLEAF_NS, "assign")
                    .map(|a| {
                        (
                            a.attribute("name").unwrap_or("_").to_string(),
                            a.attribute("value").unwrap_or("null").to_string(),
                        )
                    })
                    .collect();
                if assignments.is_empty() {
                    self.r.error(
                        codes::UNSUPPORTED,
                        x,
                        format!("a `{}` script is not translated", x.attribute("scriptFormat").unwrap_or("script")),
                        "script task",
                        "make it a service task whose worker runs the script",
                    );
                }
                FKind::Set { assignments, next: self.next(e) }
            }
            "exclusiveGateway" => FKind::Decide { arms: self.arms(e) },
            "parallelGateway" => {
                let direction = x.attribute("gatewayDirection");
                // Several flows into a split are alternatives in `.flow`, but a BPMN gateway that is
                // not marked diverging waits for all of them first.
                if direction != Some("Diverging") && el.out.len() > 1 && el.incoming > 1 {
                    self.r.error(
                        codes::UNSUPPORTED,
                        x,
                        "a parallel gateway that both joins and splits",
                        "joins and splits",
                        "draw two gateways: a join, then a split",
                    );
                }
                if direction == Some("Diverging") || (direction != Some("Converging") && el.out.len() > 1) {
                    let outs = el.out.clone();
                    FKind::Split { branches: outs.into_iter().map(|f| self.target(f)).collect() }
                } else {
                    FKind::Join { next: self.next(e) }
                }
            }
            "eventBasedGateway" => self.event_gateway(e),
            "receiveTask" => {
                let message = x.attribute("messageRef").and_then(|m| self.r.messages.get(m).cloned());
                let clauses = self.receive(x, message);
                block("receive", clauses, self.next(e))
            }
            "intermediateCatchEvent" => match child_def(x) {
                Some(d) if bpmn_tag(d) == Some("messageEventDefinition") => {
                    let message = Some(self.message(x, d));
                    let clauses = self.receive(x, message);
                    block("receive", clauses, self.next(e))
                }
                Some(d) if bpmn_tag(d) == Some("timerEventDefinition") => {
                    let clause = self.wait_clause(x, d);
                    block("wait", clause.into_iter().collect(), self.next(e))
                }
                Some(d) => {
                    self.unsupported_event(d);
                    block("wait", Vec::new(), None)
                }
                None => {
                    self.r.error(
                        codes::INCOMPLETE,
                        x,
                        "a catch event that waits for nothing",
                        "no event definition",
                        "give it a message or a timer",
                    );
                    block("wait", Vec::new(), None)
                }
            },
            "callActivity" => {
                let process = ours(x, "process").or(x.attribute("calledElement")).unwrap_or_default();
                let mut clauses = Vec::new();
                if translate::is_ident(process) {
                    clauses.push(format!("process {process}"));
                } else {
                    self.r.error(
                        codes::INCOMPLETE,
                        x,
                        format!("`{process}` is not a process key"),
                        "calledElement",
                        "name the called process by its key (letters, digits and `_`)",
                    );
                }
                clauses.extend(self.mappings(x, "in", true));
                clauses.extend(self.mappings(x, "out", true));
                block("call", clauses, self.next(e))
            }
            other => {
                self.r.unsupported(x, other);
                FKind::End { suffix: String::new() }
            }
        }
    }

    pub(super) fn unsupported_event(&mut self, d: X<'_, '_>) {
        let tag = bpmn_tag(d).unwrap_or_default();
        self.r.error(
            codes::UNSUPPORTED,
            d,
            format!("`bpmn:{tag}` is not translated to `.flow`"),
            "not translated",
            "use a message, timer, error or terminate event",
        );
    }

    fn message(&mut self, at: X<'_, '_>, d: X<'_, '_>) -> String {
        match d.attribute("messageRef").and_then(|m| self.r.messages.get(m).cloned()) {
            Some(m) => m,
            None => {
                self.r.error(
                    codes::INCOMPLETE,
                    at,
                    "a message event without a message",
                    "which message?",
                    "refer to a `bpmn:message` with a name",
                );
                String::new()
            }
        }
    }

    pub(super) fn error_code(&self, d: X<'_, '_>) -> Option<String> {
        d.attribute("errorRef").and_then(|e| self.r.errors.get(e).cloned())
    }

    /// `message "m" key k` and the outputs of a receive task or message catch event.
    fn receive(&mut self, x: X<'_, '_>, message: Option<String>) -> Vec<String> {
        let mut clauses = Vec::new();
        let Some(message) = message else {
            self.r.error(
                codes::INCOMPLETE,
                x,
                "a receive task without a message",
                "which message?",
                "refer to a `bpmn:message` with a name",
            );
            return clauses;
        };
        match self.key(x) {
            Some(key) => clauses.push(format!("message {} key {key}", quote(&message))),
            None => self.r.error(
                codes::INCOMPLETE,
                x,
                format!("no correlation key for message `{message}`"),
                "which instance does the message belong to?",
                "add a correlation key (`zeebe:subscription correlationKey=\"=order_id\"`), then import again",
            ),
        }
        clauses.extend(self.mappings(x, "out", false));
        clauses
    }

    fn key(&mut self, x: X<'_, '_>) -> Option<String> {
        if let Some(k) = ours(x, "key") {
            return Some(k.to_string());
        }
        let key = extensions(x, ZEEBE_NS, "subscription").next()?.attribute("correlationKey")?;
        self.expression(x, key)
    }

    /// A Camunda value or expression as `.flow`: `${a}` and `=a` are translated, plain text is
    /// a string (or a number).
    pub(super) fn expression(&mut self, at: X<'_, '_>, text: &str) -> Option<String> {
        if translate::unwrap_expression(text).is_none() {
            let t = text.trim();
            return Some(if t.parse::<f64>().is_ok() { t.to_string() } else { quote(t) });
        }
        match translate::condition(text) {
            Ok((flow, used)) => {
                // A value, not a condition: a name alone says nothing of its type.
                for u in used {
                    self.r_use(at, &u.name, None, false, false);
                }
                Some(flow)
            }
            Err(u) => {
                self.r.untranslated(at, u);
                None
            }
        }
    }

    /// Records a variable a Camunda process uses (see `guessed_declarations`).
    fn r_use(&mut self, at: X<'_, '_>, name: &str, ty: Option<&'static str>, form: bool, set: bool) {
        if self.r.ours {
            return;
        }
        let g = self.vars.entry(name.to_string()).or_default();
        g.ty = g.ty.or(ty);
        g.form |= form;
        g.set |= set;
        g.span.get_or_insert_with(|| span_of(at));
    }

    /// `in { ... }` or `out { ... }` of a task, receive or call (`call`: Camunda's `camunda:in`
    /// and `camunda:out` variable mappings).
    fn mappings(&mut self, x: X<'_, '_>, dir: &str, call: bool) -> Option<String> {
        let mut items: Vec<(String, String)> = extensions(x, CLOVERLEAF_NS, dir)
            .map(|m| {
                (m.attribute("name").unwrap_or("_").to_string(), m.attribute("value").unwrap_or("null").to_string())
            })
            .collect();
        if items.is_empty() && call {
            for m in extensions(x, CAMUNDA_NS, dir) {
                let target = m.attribute("target").unwrap_or_default().to_string();
                let value = match (m.attribute("source"), m.attribute("sourceExpression"), m.attribute("variables")) {
                    (Some(s), _, _) => Some(s.to_string()),
                    (None, Some(e), _) => self.expression(m, e),
                    _ => {
                        self.r.error(
                            codes::UNTRANSLATED,
                            m,
                            "a mapping of all variables",
                            "`variables=\"all\"`",
                            "map each variable the called process needs by name",
                        );
                        None
                    }
                };
                if let Some(v) = value {
                    self.r_use(m, if dir == "in" { &v } else { &target }, None, false, dir == "out");
                    items.push((target, v));
                }
            }
        } else if items.is_empty() {
            let tag = if dir == "in" { "inputParameter" } else { "outputParameter" };
            for m in extensions(x, CAMUNDA_NS, tag) {
                let name = m.attribute("name").unwrap_or_default().to_string();
                if let Some(v) = self.expression(m, m.text().unwrap_or_default()) {
                    if dir == "out" {
                        self.r_use(m, &name, None, false, true);
                    }
                    items.push((name, v));
                }
            }
        }
        if items.is_empty() {
            return None;
        }
        let parts: Vec<String> = items.into_iter().map(|(n, v)| if n == v { n } else { format!("{n}: {v}") }).collect();
        Some(format!("{dir} {{ {} }}", parts.join(", ")))
    }

    /// The clauses of an approval.
    fn approval(&mut self, x: X<'_, '_>) -> Vec<String> {
        let mut clauses = Vec::new();
        let groups = camunda(x, "candidateGroups").or_else(|| {
            extensions(x, ZEEBE_NS, "assignmentDefinition").next().and_then(|a| a.attribute("candidateGroups"))
        });
        let roles: Vec<&str> =
            groups.map(|g| g.split(',').map(str::trim).filter(|r| !r.is_empty()).collect()).unwrap_or_default();
        let bad: Vec<&str> = roles.iter().copied().filter(|r| !r.split('.').all(translate::is_ident)).collect();
        if !bad.is_empty() {
            self.r.error(
                codes::UNTRANSLATED,
                x,
                format!("`{}` is not a role name", bad.join(", ")),
                "candidate groups",
                "name roles with letters, digits, `_` and dots, as in `finance.cfo`",
            );
        } else if !roles.is_empty() {
            clauses.push(format!("role {}", roles.join(", ")));
        }
        let assignee = match ours(x, "assignee") {
            Some(a) => Some(a.to_string()),
            None => camunda(x, "assignee").and_then(|a| self.expression(x, a)),
        };
        if let Some(a) = assignee {
            clauses.push(format!("assignee {a}"));
        }
        let show: Vec<&str> = extensions(x, CLOVERLEAF_NS, "show").filter_map(|s| s.attribute("name")).collect();
        if !show.is_empty() {
            clauses.push(format!("show {{ {} }}", show.join(", ")));
        }
        for n in extensions(x, CLOVERLEAF_NS, "notBy").filter_map(|n| n.attribute("value")) {
            clauses.push(format!("not by {n}"));
        }
        let mut fields: Vec<String> = extensions(x, CLOVERLEAF_NS, "field")
            .map(|f| {
                let mut s =
                    format!("{}: {}", f.attribute("name").unwrap_or("_"), f.attribute("type").unwrap_or("text"));
                if let Some(b) = f.attribute("bounds") {
                    s = format!("{s} {b}");
                }
                s
            })
            .collect();
        if fields.is_empty() {
            fields = self.camunda_form(x);
        }
        if !fields.is_empty() {
            clauses.push(format!("form {{ {} }}", fields.join(", ")));
        }
        if let Some(d) = ours(x, "due") {
            clauses.push(format!("due {d}"));
        }
        for r in extensions(x, CLOVERLEAF_NS, "remind") {
            if let Some(a) = r.attribute("after") {
                clauses.push(format!("remind after {a}"));
            } else if let Some(e) = r.attribute("every") {
                clauses.push(format!("remind every {e}"));
            }
        }
        clauses
    }

    /// Camunda's generated form: `camunda:formField` with its type; a field is optional unless
    /// a `required` constraint says otherwise.
    fn camunda_form(&mut self, x: X<'_, '_>) -> Vec<String> {
        let mut fields = Vec::new();
        for f in extensions(x, CAMUNDA_NS, "formField") {
            let id = f.attribute("id").unwrap_or_default();
            let ty = match f.attribute("type").unwrap_or("string") {
                "boolean" => "bool",
                "string" | "enum" => "text",
                "long" => "int",
                "date" => "date",
                other => {
                    self.r.error(
                        codes::UNTRANSLATED,
                        f,
                        format!("a form field of type `{other}`"),
                        "no `.flow` type for it",
                        "use a boolean, string, long, date or enum field",
                    );
                    continue;
                }
            };
            if !translate::is_ident(id) {
                self.r.error(
                    codes::UNTRANSLATED,
                    f,
                    format!("`{id}` is not a variable name"),
                    "form field id",
                    "use letters, digits and `_`",
                );
                continue;
            }
            let required = f.descendants().any(|c| {
                c.tag_name().namespace() == Some(CAMUNDA_NS)
                    && c.tag_name().name() == "constraint"
                    && c.attribute("name") == Some("required")
            });
            self.r_use(f, id, Some(ty), true, false);
            fields.push(format!("{id}: {ty}{}", if required { "" } else { "?" }));
        }
        fields
    }

    /// The arms of a decide: each flow's condition, the default flow as `otherwise`.
    fn arms(&mut self, e: usize) -> Vec<(Option<String>, Option<usize>)> {
        let x = self.els[e].x;
        let default = x.attribute("default");
        let mut arms = Vec::new();
        let mut otherwise = None;
        for f in self.els[e].out.clone() {
            let fx = self.flows[f].x;
            if default.is_some() && fx.attribute("id") == default {
                otherwise = Some((None, self.target(f)));
                continue;
            }
            let cond = match child(fx, "conditionExpression") {
                Some(c) => {
                    let text = c.text().unwrap_or_default();
                    if c.attribute("language") == Some("cloverleaf") {
                        Some(text.to_string())
                    } else {
                        match translate::condition(text) {
                            Ok((flow, used)) => {
                                for u in used {
                                    self.r_use(c, &u.name, u.ty, false, false);
                                }
                                Some(flow)
                            }
                            Err(u) => {
                                self.r.untranslated(c, u);
                                None
                            }
                        }
                    }
                }
                None => {
                    self.r.error(
                        codes::INCOMPLETE,
                        fx,
                        "a flow out of an exclusive gateway without a condition",
                        "taken when?",
                        "give it a condition, or make it the gateway's default flow",
                    );
                    None
                }
            };
            let target = self.target(f);
            if let Some(c) = cond {
                arms.push((Some(c), target));
            }
        }
        arms.extend(otherwise);
        arms
    }

    /// A wait racing its timer against others (Cloverleaf's export), or a `wait first`.
    fn event_gateway(&mut self, e: usize) -> FKind {
        let wait = ours(self.els[e].x, "wait") == Some("true");
        let mut arms = Vec::new();
        let mut clauses = Vec::new();
        let mut next = None;
        for f in self.els[e].out.clone() {
            let c = self.flows[f].target;
            let cx = self.els[c].x;
            let Some(d) = child_def(cx) else { continue };
            let to = self.next(c);
            if wait && ours(cx, "event") == Some("wait") {
                clauses.extend(self.wait_clause(cx, d));
                next = to;
                continue;
            }
            let head = match bpmn_tag(d) {
                Some("messageEventDefinition") => {
                    let message = self.message(cx, d);
                    let Some(key) = self.key(cx) else {
                        self.r.error(
                            codes::INCOMPLETE,
                            cx,
                            format!("no correlation key for message `{message}`"),
                            "which instance?",
                            "add a correlation key (`zeebe:subscription correlationKey`)",
                        );
                        continue;
                    };
                    let out = self.mappings(cx, "out", false).map(|o| format!(" {o}")).unwrap_or_default();
                    format!("message {} key {key}{out}", quote(&message))
                }
                Some("timerEventDefinition") => match self.timer(cx, d) {
                    Some(Timer::After(t) | Timer::At(t)) if !wait => format!("after {t}"),
                    Some(t) if wait => match self.boundary_timer(cx, t, ours(cx, "interrupting") != Some("false")) {
                        Some(h) => h,
                        None => continue,
                    },
                    Some(_) => {
                        self.r.error(
                            codes::UNSUPPORTED,
                            d,
                            "a repeating timer in an event-based gateway",
                            "fires once at most",
                            "use a one-off timer",
                        );
                        continue;
                    }
                    None => continue,
                },
                _ => {
                    self.unsupported_event(d);
                    continue;
                }
            };
            arms.push((head, to));
        }
        if wait {
            self.pending = arms;
            return FKind::Block { keyword: "wait", clauses, next };
        }
        FKind::First { arms }
    }
}
