//! The BPMN document read into [`Process`]es of `.flow` nodes, with a diagnostic for each
//! element that cannot be translated.

use std::collections::{BTreeMap, HashMap, HashSet};

use roxmltree::{Document, Node as X};

use super::translate::{self, Untranslated};
use crate::codes;
use crate::diag::{Diagnostic, FileId, Span};
use crate::export::{BPMN_NS, CAMUNDA_NS, CLOVERLEAF_NS};

pub(super) const ZEEBE_NS: &str = "http://camunda.org/schema/zeebe/1.0";

/// One process, ready to be written as `.flow`.
pub(super) struct Process {
    pub key: String,
    pub title: Option<String>,
    /// `cloverleaf:titleZh`: the title in Simplified Chinese.
    pub title_zh: Option<String>,
    /// Lines before the nodes: `calendar`, `access { ... }`, `input { ... }`, `var ...`.
    pub head: Vec<String>,
    pub nodes: Vec<FNode>,
}

/// A `.flow` node: its declaration's words, its clauses and where its flows go.
pub(super) struct FNode {
    pub name: String,
    /// Written in place where its owner's flow leads (`-> decide { ... }`).
    pub anonymous: bool,
    pub title: Option<String>,
    /// `cloverleaf:titleZh`: the title in Simplified Chinese.
    pub title_zh: Option<String>,
    pub kind: FKind,
    /// `on error "x"`, `after 5d`, `also after ...`, `every 1d`, each with its target node.
    pub boundaries: Vec<(String, Option<usize>)>,
}

/// What a node is, with its targets as indices into [`Process::nodes`] (`None`: missing, and
/// already reported).
pub(super) enum FKind {
    /// `start [name] [on message "m" | every "cron" in "zone"]`.
    Start {
        trigger: String,
        next: Option<usize>,
    },
    /// `end name "title" [error "code" | terminate]`: the suffix.
    End {
        suffix: String,
    },
    /// `task`, `approval`, `receive`, `wait`, `call`: the keyword and the lines of its block.
    Block {
        keyword: &'static str,
        clauses: Vec<String>,
        next: Option<usize>,
    },
    /// `set`: its assignments.
    Set {
        assignments: Vec<(String, String)>,
        next: Option<usize>,
    },
    /// `decide`: arms in order, `None` for `otherwise`.
    Decide {
        arms: Vec<(Option<String>, Option<usize>)>,
    },
    Split {
        branches: Vec<Option<usize>>,
    },
    Join {
        next: Option<usize>,
    },
    /// `wait first`: each arm's head (`message "m" key k out { ... }`, `after 5d`).
    First {
        arms: Vec<(String, Option<usize>)>,
    },
}

/// Reads every process of `doc`.
pub(super) fn read(doc: &Document<'_>, file: FileId) -> (Vec<Process>, Vec<Diagnostic>) {
    let mut r = Reader { file, diags: Vec::new(), ours: false, messages: HashMap::new(), errors: HashMap::new() };
    let root = doc.root_element();
    if !(root.tag_name().namespace() == Some(BPMN_NS) && root.tag_name().name() == "definitions") {
        r.error(
            codes::BAD_XML,
            root,
            "not a BPMN 2.0 document",
            format!("the root element is `{}`", root.tag_name().name()),
            format!("a BPMN file's root is `definitions` in the namespace {BPMN_NS}"),
        );
        return (Vec::new(), r.diags);
    }
    r.ours = root.namespaces().any(|ns| ns.uri() == CLOVERLEAF_NS);
    for x in root.children().filter(X::is_element) {
        let id = x.attribute("id").unwrap_or_default();
        match bpmn_tag(x) {
            Some("message") => {
                r.messages.insert(id.to_string(), x.attribute("name").unwrap_or(id).to_string());
            }
            Some("error") => {
                let code = x.attribute("errorCode").or(x.attribute("name")).unwrap_or(id);
                r.errors.insert(id.to_string(), code.to_string());
            }
            _ => {}
        }
    }
    let mut processes = Vec::new();
    for x in root.children().filter(|x| bpmn_tag(*x) == Some("process")) {
        if let Some(p) = r.process(x) {
            processes.push(p);
        }
    }
    if processes.is_empty() && r.diags.is_empty() {
        r.error(
            codes::INCOMPLETE,
            root,
            "no process in this BPMN document",
            "no `bpmn:process` here",
            "a collaboration's pools each refer to a `bpmn:process`: export the process itself",
        );
    }
    (processes, r.diags)
}

/// The local name of a BPMN element; `None` for other namespaces.
pub(super) fn bpmn_tag<'a>(x: X<'a, '_>) -> Option<&'a str> {
    (x.is_element() && x.tag_name().namespace() == Some(BPMN_NS)).then(|| x.tag_name().name())
}

pub(super) fn ours<'a>(x: X<'a, '_>, name: &str) -> Option<&'a str> {
    x.attribute((CLOVERLEAF_NS, name))
}

pub(super) fn camunda<'a>(x: X<'a, '_>, name: &str) -> Option<&'a str> {
    x.attribute((CAMUNDA_NS, name))
}

/// The elements inside `x`'s `extensionElements` in namespace `ns` named `name`.
pub(super) fn extensions<'a, 'i>(x: X<'a, 'i>, ns: &'a str, name: &'a str) -> impl Iterator<Item = X<'a, 'i>> + 'a {
    x.children()
        .filter(|c| bpmn_tag(*c) == Some("extensionElements"))
        .flat_map(|e| e.descendants())
        .filter(move |c| c.is_element() && c.tag_name().namespace() == Some(ns) && c.tag_name().name() == name)
}

pub(super) fn child<'a, 'i>(x: X<'a, 'i>, tag: &str) -> Option<X<'a, 'i>> {
    x.children().find(|c| bpmn_tag(*c) == Some(tag))
}

/// The span of `x`'s start tag.
pub(super) fn span_of(x: X<'_, '_>) -> Span {
    let start = x.range().start;
    let text = x.document().input_text();
    let end = text[start..].find('>').map_or(x.range().end, |i| start + i + 1);
    Span::new(start, end)
}

pub(super) struct Reader {
    file: FileId,
    diags: Vec<Diagnostic>,
    /// The document declares the Cloverleaf namespace: names, conditions and timers are `.flow`.
    pub ours: bool,
    pub messages: HashMap<String, String>,
    pub errors: HashMap<String, String>,
}

/// An element of the process that the flows connect.
pub(super) struct El<'a, 'i> {
    pub x: X<'a, 'i>,
    pub tag: &'a str,
    pub out: Vec<usize>,
    pub incoming: usize,
    /// After an event-based gateway: one of its arms, not a node of its own.
    pub arm: bool,
}

pub(super) struct SFlow<'a, 'i> {
    pub x: X<'a, 'i>,
    pub source: usize,
    pub target: usize,
}

impl Reader {
    pub(super) fn error(
        &mut self,
        code: &'static str,
        x: X<'_, '_>,
        message: impl Into<String>,
        label: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.diags.push(Diagnostic::error(code, self.file, span_of(x), message).with_label(label).with_help(help));
    }

    pub(super) fn untranslated(&mut self, x: X<'_, '_>, u: Untranslated) {
        self.diags.push(
            Diagnostic::error(codes::UNTRANSLATED, self.file, span_of(x), u.reason)
                .with_label("here")
                .with_help(u.help),
        );
    }

    fn process<'a, 'i>(&mut self, p: X<'a, 'i>) -> Option<Process> {
        let id = p.attribute("id").unwrap_or("process");
        let key = if translate::is_ident(id) { id.to_string() } else { translate::ident(id) };
        let mut head = Vec::new();
        if let Some(c) = ours(p, "calendar") {
            head.push(format!("calendar {c}"));
        }
        head.extend(self.access(p));
        let declare = |tag: &str| -> Vec<String> {
            extensions(p, CLOVERLEAF_NS, tag)
                .map(|d| {
                    let mut line =
                        format!("{}: {}", d.attribute("name").unwrap_or("_"), d.attribute("type").unwrap_or("text"));
                    if let Some(b) = d.attribute("bounds") {
                        line = format!("{line} {b}");
                    }
                    if let Some(v) = d.attribute("default") {
                        line = format!("{line} = {v}");
                    }
                    line
                })
                .collect()
        };
        let inputs = declare("input");
        if !inputs.is_empty() {
            head.push(format!("input {{\n    {}\n  }}", inputs.join("\n    ")));
        }
        head.extend(declare("var").into_iter().map(|v| format!("var {v}")));

        // The elements and flows, in document order.
        let mut els: Vec<El<'a, 'i>> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut flows_x = Vec::new();
        for x in p.children().filter(X::is_element) {
            let Some(tag) = bpmn_tag(x) else { continue };
            match tag {
                "sequenceFlow" => flows_x.push(x),
                "startEvent"
                | "endEvent"
                | "serviceTask"
                | "userTask"
                | "scriptTask"
                | "exclusiveGateway"
                | "parallelGateway"
                | "eventBasedGateway"
                | "receiveTask"
                | "intermediateCatchEvent"
                | "callActivity"
                | "boundaryEvent" => {
                    if let Some(id) = x.attribute("id") {
                        index.insert(id, els.len());
                    }
                    els.push(El { x, tag, out: Vec::new(), incoming: 0, arm: false });
                }
                // Not part of what runs: drawn or documented only.
                "documentation"
                | "extensionElements"
                | "laneSet"
                | "textAnnotation"
                | "association"
                | "dataObject"
                | "dataObjectReference"
                | "dataStoreReference"
                | "group"
                | "property" => {}
                other => self.unsupported(x, other),
            }
        }
        let mut flows: Vec<SFlow<'a, 'i>> = Vec::new();
        let mut flow_index: HashMap<&str, usize> = HashMap::new();
        for x in flows_x {
            let end = |attr: &str| x.attribute(attr).and_then(|id| index.get(id).copied());
            match (end("sourceRef"), end("targetRef")) {
                (Some(source), Some(target)) => {
                    flow_index.insert(x.attribute("id").unwrap_or_default(), flows.len());
                    flows.push(SFlow { x, source, target });
                }
                _ => self.error(
                    codes::INCOMPLETE,
                    x,
                    "a sequence flow connects an element that is not in this process",
                    "dangling `sourceRef` or `targetRef`",
                    "connect the flow to elements of the process, or delete it",
                ),
            }
        }
        // Each element's ways out in the order its `outgoing` lists them (decide arms are
        // tried in that order), else in document order.
        for f in &flows {
            els[f.target].incoming += 1;
        }
        for (e, el) in els.iter_mut().enumerate() {
            let listed: Vec<usize> =
                el.x.children()
                    .filter(|c| bpmn_tag(*c) == Some("outgoing"))
                    .filter_map(|c| c.text().and_then(|t| flow_index.get(t.trim()).copied()))
                    .filter(|&f| flows[f].source == e)
                    .collect();
            let all: Vec<usize> = (0..flows.len()).filter(|&f| flows[f].source == e).collect();
            el.out = if listed.len() == all.len() { listed } else { all };
        }
        for f in &flows {
            if els[f.source].tag == "eventBasedGateway" {
                els[f.target].arm = true;
            }
        }

        // Node names: Cloverleaf's own, else the id (ours) or the label (Camunda), made unique.
        let mut node_of: Vec<Option<usize>> = vec![None; els.len()];
        let mut names: Vec<String> = Vec::new();
        let mut taken: HashSet<String> = HashSet::new();
        let mut plain_start_named = false;
        for (e, el) in els.iter().enumerate() {
            if !self.is_node(el) {
                continue;
            }
            let x = el.x;
            let id = x.attribute("id").unwrap_or_default();
            let wanted = match ours(x, "name") {
                Some(n) => n.to_string(),
                None if self.ours => translate::ident(id),
                None if el.tag == "startEvent" && !plain_start_named && child_def(x).is_none() => {
                    plain_start_named = true;
                    "start".to_string()
                }
                None => {
                    let label = translate::ident(x.attribute("name").unwrap_or_default());
                    if label.is_empty() { translate::ident(id) } else { label }
                }
            };
            let wanted = if wanted.is_empty() { "node".to_string() } else { wanted };
            let mut name = wanted.clone();
            let mut n = 2;
            while taken.contains(&name) {
                name = format!("{wanted}_{n}");
                n += 1;
            }
            taken.insert(name.clone());
            node_of[e] = Some(names.len());
            names.push(name);
        }

        let mut b = Builder {
            r: self,
            els: &els,
            flows: &flows,
            node_of: &node_of,
            vars: BTreeMap::new(),
            pending: Vec::new(),
        };
        let mut nodes = Vec::new();
        for (e, el) in els.iter().enumerate() {
            let Some(n) = node_of[e] else { continue };
            let name = names[n].clone();
            let title = b.title(el, &name);
            let title_zh = title.as_ref().and(ours(el.x, "titleZh")).map(str::to_string);
            let kind = b.kind(e, el);
            let boundaries = b.boundaries(e);
            nodes.push(FNode { anonymous: name.contains(':'), name, title, title_zh, kind, boundaries });
        }
        let guessed = std::mem::take(&mut b.vars);
        // A label such as "Approved?" names a gateway after the variable it tests; expressions
        // reach nodes by name (`review.completed_by`), so the node gives way.
        for node in &mut nodes {
            if guessed.contains_key(&node.name) {
                let mut name = format!("{}_step", node.name);
                while taken.contains(&name) {
                    name.push('_');
                }
                taken.insert(name.clone());
                node.name = name;
            }
        }
        if !self.ours {
            head.extend(self.guessed_declarations(guessed));
        }
        let title = p.attribute("name").map(str::to_string);
        let title_zh = title.as_ref().and(ours(p, "titleZh")).map(str::to_string);
        Some(Process { key, title, title_zh, head, nodes })
    }

    pub(super) fn unsupported(&mut self, x: X<'_, '_>, tag: &str) {
        let help = match tag {
            "subProcess" | "transaction" | "adHocSubProcess" => {
                "move the sub-process into a process of its own and use a call activity"
            }
            "inclusiveGateway" | "complexGateway" => "use an exclusive or a parallel gateway",
            "task" | "manualTask" | "sendTask" | "businessRuleTask" => {
                "make it a service task with a job type (`camunda:topic`) or a user task"
            }
            "intermediateThrowEvent" => "make it a service task that sends the message",
            _ => "remove it, or express it with the elements the import knows",
        };
        self.error(codes::UNSUPPORTED, x, format!("`bpmn:{tag}` is not translated to `.flow`"), "not translated", help);
    }

    fn is_node(&self, el: &El<'_, '_>) -> bool {
        match el.tag {
            "boundaryEvent" => false,
            "intermediateCatchEvent" => !el.arm,
            // An exclusive gateway with one way out merges flows: `.flow` names the target.
            "exclusiveGateway" => self.ours || ours(el.x, "name").is_some() || el.out.len() != 1,
            _ => true,
        }
    }

    fn access(&mut self, p: X<'_, '_>) -> Option<String> {
        let a = extensions(p, CLOVERLEAF_NS, "access").next()?;
        let mut lines = Vec::new();
        for (attr, words) in [("startBy", "start by"), ("onBehalfBy", "on behalf by"), ("readBy", "read by")] {
            if let Some(roles) = a.attribute(attr) {
                lines.push(format!("{words} {}", roles.split(',').map(str::trim).collect::<Vec<_>>().join(", ")));
            }
        }
        if let Some(r) = a.attribute("requester") {
            lines.push(format!("requester {r}"));
        }
        if a.attribute("calledOnly") == Some("true") {
            lines.push("called only".to_string());
        }
        Some(format!("access {{\n    {}\n  }}", lines.join("\n    ")))
    }

    /// Declarations for the variables a Camunda process uses but never declares: those set by a
    /// job, a form or a call are variables, the rest must come with the start. Their types are
    /// guessed from what they are compared with, and each guess is a warning.
    fn guessed_declarations(&mut self, vars: BTreeMap<String, Guess>) -> Vec<String> {
        let mut inputs = Vec::new();
        let mut lines = Vec::new();
        for (name, g) in vars {
            if g.form {
                continue;
            }
            let ty = g.ty.unwrap_or("text");
            if g.set {
                lines.push(format!("var {name}: {ty}?"));
            } else {
                inputs.push(format!("{name}: {ty}?"));
            }
            if let Some(span) = g.span {
                self.diags.push(
                    Diagnostic::warning(codes::GUESSED, self.file, span, format!("`{name}` declared as `{ty}?`"))
                        .with_label("its type is guessed from this use")
                        .with_help("check the declaration the import wrote, and give it a default if it has one"),
                );
            }
        }
        if !inputs.is_empty() {
            lines.insert(0, format!("input {{\n    {}\n  }}", inputs.join("\n    ")));
        }
        lines
    }
}

/// The first event definition of an event.
pub(super) fn child_def<'a, 'i>(x: X<'a, 'i>) -> Option<X<'a, 'i>> {
    x.children().find(|c| bpmn_tag(*c).is_some_and(|t| t.ends_with("EventDefinition")))
}

/// What a Camunda process tells about one of its variables.
#[derive(Default)]
pub(super) struct Guess {
    pub ty: Option<&'static str>,
    /// A form field declares it.
    pub form: bool,
    /// A job, a call or a message sets it.
    pub set: bool,
    pub span: Option<Span>,
}

/// Builds the nodes of one process.
pub(super) struct Builder<'r, 'a, 'i> {
    pub r: &'r mut Reader,
    pub els: &'r [El<'a, 'i>],
    pub flows: &'r [SFlow<'a, 'i>],
    pub node_of: &'r [Option<usize>],
    pub vars: BTreeMap<String, Guess>,
    /// The racing events of a wait drawn as an event-based gateway: its boundaries.
    pub pending: Vec<(String, Option<usize>)>,
}
