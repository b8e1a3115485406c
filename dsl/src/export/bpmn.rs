//! BPMN 2.0 XML with diagram interchange (BPMNDI), for bpmn.io and Camunda Modeler.
//!
//! The export is a picture of the compiled graph for modelling tools, not a second way to run
//! it: the engine runs the compiled JSON. Each node becomes its BPMN element (task → service
//! task with a `camunda:topic`, approval → user task with `camunda:candidateGroups`, set →
//! script task, decide → exclusive gateway, parallel / join → parallel gateways, wait first →
//! event-based gateway and catch events, receive → receive task, wait → timer catch event,
//! call → call activity); boundary events hang on their hosts. Conditions and timers keep their
//! `.flow` text, except duration literals, which become ISO 8601 durations (`48h` → `PT48H`).
//!
//! What BPMN has no engine-neutral place for (declarations, access, input and output mappings,
//! forms, `not by`, due dates and reminders, retries and timeouts, the `.flow` text of timers
//! and correlation keys) goes under the Cloverleaf namespace ([`CLOVERLEAF_NS`], see
//! `extensions.rs`), so that `cloverleaf import` gives the same process back. Conditions carry
//! `language="cloverleaf"`: they are `.flow` expressions, not JUEL or FEEL.
//!
//! The XML is written by hand: the same process always gives the same bytes, and every id is a
//! valid, unique `NCName` derived from the node's name (`route:set` → `route_set`).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::expr::ExprKind;
use crate::model::{
    Boundary, BoundaryEvent, CExpr, CompiledProcess, EndKind, FirstEvent, Flow, Node, NodeKind, TimerSpec, Trigger,
    WaitUntil,
};
use crate::schedule::Schedule;

mod extensions;
mod layout;

use layout::Layout;

pub(crate) const BPMN_NS: &str = "http://www.omg.org/spec/BPMN/20100524/MODEL";
const BPMNDI_NS: &str = "http://www.omg.org/spec/BPMN/20100524/DI";
const DC_NS: &str = "http://www.omg.org/spec/DD/20100524/DC";
const DI_NS: &str = "http://www.omg.org/spec/DD/20100524/DI";
const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";
pub(crate) const CAMUNDA_NS: &str = "http://camunda.org/schema/1.0/bpmn";
pub use extensions::CLOVERLEAF_NS;
pub(crate) use extensions::duration_text;

/// Attributes after `id` and `name`, their values escaped.
type Attrs = Vec<(&'static str, String)>;

/// Renders `process` as a BPMN 2.0 `definitions` document with one executable process and its
/// diagram.
pub fn to_bpmn(process: &CompiledProcess) -> String {
    let model = Model::build(process);
    let layout = Layout::compute(&model);
    let mut out = String::new();
    model.write_semantic(process, &mut out);
    model.write_diagram(&layout, &mut out);
    out.push_str("</bpmn:definitions>\n");
    out
}

/// Hands out ids that are valid `NCName`s and unique within the document.
#[derive(Default)]
struct Ids {
    used: BTreeSet<String>,
}

impl Ids {
    fn fresh(&mut self, wanted: &str) -> String {
        let base = ncname(wanted);
        let mut id = base.clone();
        let mut n = 2;
        while self.used.contains(&id) {
            id = format!("{base}_{n}");
            n += 1;
        }
        self.used.insert(id.clone());
        id
    }
}

/// `wanted` with every character an `NCName` may not hold replaced by `_`, and a leading `_` when
/// it would start with a digit, `-` or `.` (or be empty).
fn ncname(wanted: &str) -> String {
    let mut id: String = wanted
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') { c } else { '_' })
        .collect();
    if !id.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        id.insert(0, '_');
    }
    id
}

/// Escapes text for an XML attribute or element. Line breaks become character references so
/// that attributes keep them; characters XML 1.0 cannot carry at all become U+FFFD.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// `secs` as an ISO 8601 duration in hours, minutes and seconds (`48h` → `PT48H`): a `.flow`
/// day is exactly 24 hours, while an ISO `P1D` is a calendar day that daylight saving stretches.
fn iso_duration(secs: i64) -> String {
    let sign = if secs < 0 { "-" } else { "" };
    let secs = secs.unsigned_abs();
    let (hours, minutes, seconds) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = format!("{sign}PT");
    if hours > 0 {
        let _ = write!(out, "{hours}H");
    }
    if minutes > 0 {
        let _ = write!(out, "{minutes}M");
    }
    if seconds > 0 || secs == 0 {
        let _ = write!(out, "{seconds}S");
    }
    out
}

/// The duration in seconds when `e` is a duration literal.
fn literal_duration(e: &CExpr) -> Option<i64> {
    match e.ast().kind {
        ExprKind::Duration(secs) => Some(secs),
        _ => None,
    }
}

/// When a timer fires, in BPMN's three words for it.
enum Timer {
    /// `timeDuration`: after entry.
    Duration(String),
    /// `timeDate`: at a moment.
    Date(String),
    /// `timeCycle`: repeatedly.
    Cycle(String),
}

impl Timer {
    /// A one-off timer: a duration literal is a duration, and so is business time alone
    /// (`3 business days`, kept as written: its length depends on the calendar); anything else
    /// (`due_date + 7d`) is taken for a date, which is what such expressions compute in the
    /// reference processes.
    fn at(e: &CExpr) -> Timer {
        match literal_duration(e) {
            Some(secs) => Timer::Duration(iso_duration(secs)),
            None if e.ast().business().is_some() => Timer::Duration(e.source().to_string()),
            None => Timer::Date(e.source().to_string()),
        }
    }

    /// A repeating timer: `R/PT10M` for a duration literal.
    fn every(e: &CExpr) -> Timer {
        match literal_duration(e) {
            Some(secs) => Timer::Cycle(format!("R/{}", iso_duration(secs))),
            None => Timer::Cycle(e.source().to_string()),
        }
    }

    fn cron(s: &Schedule) -> Timer {
        Timer::Cycle(s.pattern().to_string())
    }

    fn definition(&self) -> String {
        let (tag, text) = match self {
            Timer::Duration(t) => ("timeDuration", t),
            Timer::Date(t) => ("timeDate", t),
            Timer::Cycle(t) => ("timeCycle", t),
        };
        format!(
            "<bpmn:timerEventDefinition><bpmn:{tag} xsi:type=\"bpmn:tFormalExpression\">{}</bpmn:{tag}></bpmn:timerEventDefinition>",
            xml_escape(text)
        )
    }
}

/// How big an element is drawn.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Event,
    Gateway,
    Activity,
}

impl Shape {
    fn size(self) -> (i64, i64) {
        match self {
            Shape::Event => (36, 36),
            Shape::Gateway => (50, 50),
            Shape::Activity => (100, 80),
        }
    }
}

/// One BPMN flow node, rendered but for its flows.
struct Element {
    id: String,
    /// `bpmn:` element name: `serviceTask`, `boundaryEvent`...
    tag: &'static str,
    name: Option<String>,
    /// Attributes after `id` and `name`, already escaped where needed.
    attrs: Vec<(&'static str, String)>,
    documentation: Option<String>,
    /// Children of `extensionElements`, rendered (see [`extensions`]).
    ext: Vec<String>,
    /// Content after `incoming` / `outgoing`: event definitions, a script.
    body: String,
    shape: Shape,
    /// The host of a boundary event, and its place among the host's boundary events
    /// (`k` of `count`).
    host: Option<usize>,
    slot: (usize, usize),
    /// The default flow of an exclusive gateway.
    default: Option<usize>,
    incoming: Vec<usize>,
    outgoing: Vec<usize>,
}

impl Element {
    fn new(id: String, tag: &'static str, name: Option<String>, shape: Shape) -> Element {
        Element {
            id,
            tag,
            name,
            attrs: Vec::new(),
            documentation: None,
            ext: Vec::new(),
            body: String::new(),
            shape,
            host: None,
            slot: (0, 1),
            default: None,
            incoming: Vec::new(),
            outgoing: Vec::new(),
        }
    }
}

/// A sequence flow.
struct SequenceFlow {
    id: String,
    name: Option<String>,
    source: usize,
    target: usize,
    condition: Option<String>,
}

/// The process as BPMN elements: the nodes first (same index as in the process), then the
/// boundary events and the catch events of event-based gateways.
struct Model {
    process_id: String,
    messages: Vec<(String, String)>,
    errors: Vec<(String, String)>,
    elements: Vec<Element>,
    flows: Vec<SequenceFlow>,
    ids: Ids,
}

impl Model {
    fn build(process: &CompiledProcess) -> Model {
        let mut ids = Ids::default();
        let process_id = ids.fresh(&process.key);
        let node_ids: Vec<String> = process.nodes.iter().map(|n| ids.fresh(&n.name)).collect();
        let mut model = Model {
            process_id,
            messages: Vec::new(),
            errors: Vec::new(),
            elements: Vec::new(),
            flows: Vec::new(),
            ids,
        };
        model.collect_messages_and_errors(process);
        for (node, id) in process.nodes.iter().zip(node_ids) {
            let mut element = model.element(node, id);
            extensions::node(node, &mut element);
            model.elements.push(element);
        }
        let index = process.index();
        for (from, node) in process.nodes.iter().enumerate() {
            model.connect(from, node, &index);
        }
        model
    }

    fn collect_messages_and_errors(&mut self, process: &CompiledProcess) {
        let mut messages = Vec::new();
        let mut errors = Vec::new();
        for node in &process.nodes {
            match &node.kind {
                NodeKind::Start { trigger: Trigger::Message { message }, .. } | NodeKind::Receive { message, .. } => {
                    messages.push(message.clone())
                }
                NodeKind::First { arms } => {
                    for arm in arms {
                        if let FirstEvent::Message { message, .. } = &arm.event {
                            messages.push(message.clone());
                        }
                    }
                }
                NodeKind::End { end: EndKind::Error { code }, .. } => errors.push(code.clone()),
                _ => {}
            }
            if let Some(boundaries) = boundaries(&node.kind) {
                for b in boundaries {
                    if let BoundaryEvent::Error { code: Some(code) } = &b.event {
                        errors.push(code.clone());
                    }
                }
            }
        }
        for message in messages {
            if !self.messages.iter().any(|(name, _)| *name == message) {
                let id = self.ids.fresh(&format!("Message_{message}"));
                self.messages.push((message, id));
            }
        }
        for code in errors {
            if !self.errors.iter().any(|(name, _)| *name == code) {
                let id = self.ids.fresh(&format!("Error_{code}"));
                self.errors.push((code, id));
            }
        }
    }

    fn message_ref(&self, message: &str) -> String {
        self.messages.iter().find(|(name, _)| name == message).map(|(_, id)| id.clone()).unwrap_or_default()
    }

    fn error_definition(&self, code: Option<&str>) -> String {
        match code.and_then(|c| self.errors.iter().find(|(name, _)| name == c)) {
            Some((_, id)) => format!("<bpmn:errorEventDefinition errorRef=\"{id}\" />"),
            None => "<bpmn:errorEventDefinition />".to_string(),
        }
    }

    fn message_definition(&self, message: &str) -> String {
        format!("<bpmn:messageEventDefinition messageRef=\"{}\" />", self.message_ref(message))
    }

    /// The element a node becomes.
    fn element(&self, node: &Node, id: String) -> Element {
        let mut e = self.element_of_kind(node, id);
        if let Some(zh) = &node.title_zh {
            e.attrs.push(extensions::attr("cloverleaf:titleZh", zh));
        }
        e
    }

    fn element_of_kind(&self, node: &Node, id: String) -> Element {
        let anonymous = node.name.contains(':');
        let name = node.title.clone().or_else(|| (!anonymous).then(|| node.name.clone()));
        match &node.kind {
            NodeKind::Start { trigger, .. } => {
                let name = if node.title.is_none() && node.name == "start" { None } else { name };
                let mut e = Element::new(id, "startEvent", name, Shape::Event);
                match trigger {
                    Trigger::Request => {}
                    Trigger::Message { message } => e.body = self.message_definition(message),
                    Trigger::Schedule { schedule } => {
                        e.documentation = Some(format!("every {schedule}"));
                        e.body = Timer::cron(schedule).definition();
                        e.attrs.push(extensions::attr("cloverleaf:zone", schedule.zone().name()));
                    }
                }
                e
            }
            NodeKind::End { end, .. } => {
                let mut e = Element::new(id, "endEvent", name, Shape::Event);
                match end {
                    EndKind::Normal => {}
                    EndKind::Error { code } => e.body = self.error_definition(Some(code)),
                    EndKind::Terminate => e.body = "<bpmn:terminateEventDefinition />".to_string(),
                }
                e
            }
            NodeKind::Task { job, .. } => {
                let mut e = Element::new(id, "serviceTask", name, Shape::Activity);
                e.attrs.push(("camunda:type", "external".to_string()));
                e.attrs.push(("camunda:topic", xml_escape(job)));
                e
            }
            NodeKind::Approval { roles, .. } => {
                let mut e = Element::new(id, "userTask", name, Shape::Activity);
                if !roles.is_empty() {
                    e.attrs.push(("camunda:candidateGroups", xml_escape(&roles.join(","))));
                }
                e
            }
            NodeKind::Set { assignments, .. } => {
                let script: Vec<String> = assignments.iter().map(|m| format!("{} = {}", m.name, m.value)).collect();
                // An anonymous set is named after what it does, so the box is not blank.
                let name =
                    node.title.clone().or_else(|| Some(if anonymous { script.join("; ") } else { node.name.clone() }));
                let mut e = Element::new(id, "scriptTask", name, Shape::Activity);
                e.attrs.push(("scriptFormat", "cloverleaf".to_string()));
                e.body = format!("<bpmn:script>{}</bpmn:script>", xml_escape(&script.join("\n")));
                e
            }
            NodeKind::Decide { .. } => Element::new(id, "exclusiveGateway", name, Shape::Gateway),
            NodeKind::Split { .. } => {
                let mut e = Element::new(id, "parallelGateway", name, Shape::Gateway);
                e.attrs.push(("gatewayDirection", "Diverging".to_string()));
                e
            }
            NodeKind::Join { .. } => {
                let mut e = Element::new(id, "parallelGateway", name, Shape::Gateway);
                e.attrs.push(("gatewayDirection", "Converging".to_string()));
                e
            }
            NodeKind::First { .. } => Element::new(id, "eventBasedGateway", name, Shape::Gateway),
            NodeKind::Receive { message, key, .. } => {
                let mut e = Element::new(id, "receiveTask", name, Shape::Activity);
                e.attrs.push(("messageRef", self.message_ref(message)));
                e.documentation = Some(format!("message {message} key {key}"));
                e
            }
            // BPMN cannot attach events to a catch event, so a wait with boundary events becomes
            // an event-based gateway racing its own timer against theirs (see `connect`). That is
            // exact for interrupting timers; a non-interrupting one is drawn racing too.
            NodeKind::Wait { boundaries, .. } if !boundaries.is_empty() => {
                let mut e = Element::new(id, "eventBasedGateway", name, Shape::Gateway);
                e.attrs.push(("cloverleaf:wait", "true".to_string()));
                e
            }
            NodeKind::Wait { until, .. } => {
                let mut e = Element::new(id, "intermediateCatchEvent", name, Shape::Event);
                e.body = wait_timer(until).definition();
                e.attrs = wait_attrs(until);
                e
            }
            NodeKind::Call { process, .. } => {
                let mut e = Element::new(id, "callActivity", name, Shape::Activity);
                e.attrs.push(("calledElement", ncname(process)));
                e
            }
        }
    }

    fn push(&mut self, element: Element) -> usize {
        self.elements.push(element);
        self.elements.len() - 1
    }

    fn flow(&mut self, source: usize, target: usize, name: Option<String>, condition: Option<String>) -> usize {
        let wanted = format!("{}_to_{}", self.elements[source].id, self.elements[target].id);
        let id = self.ids.fresh(&wanted);
        self.flows.push(SequenceFlow { id, name, source, target, condition });
        let flow = self.flows.len() - 1;
        self.elements[source].outgoing.push(flow);
        self.elements[target].incoming.push(flow);
        flow
    }

    /// A catch event named `name` after the event-based gateway `gateway`, leading to `target`.
    fn catch_event(&mut self, gateway: usize, name: String, body: String, attrs: Attrs, target: usize) -> usize {
        let id = self.ids.fresh(&format!("{}_{}", self.elements[gateway].id, name));
        let mut e = Element::new(id, "intermediateCatchEvent", Some(name), Shape::Event);
        e.body = body;
        e.attrs = attrs;
        let catch = self.push(e);
        self.flow(gateway, catch, None, None);
        self.flow(catch, target, None, None);
        catch
    }

    /// The flows leaving node `from`, with the boundary and catch events they start at.
    fn connect(&mut self, from: usize, node: &Node, index: &std::collections::BTreeMap<&str, usize>) {
        let wait_race = matches!(&node.kind, NodeKind::Wait { boundaries, .. } if !boundaries.is_empty());
        let boundary_count = boundaries(&node.kind).map_or(0, |b| b.len());
        let mut flows = Vec::new();
        node.kind.for_each_flow(|to, flow| flows.push((to.to_string(), flow)));
        let mut boundary_no = 0;
        for (to, flow) in flows {
            // The compiler resolved every target; a dangling one is left out rather than invented.
            let Some(&target) = index.get(to.as_str()) else { continue };
            match flow {
                Flow::Next if wait_race => {
                    if let NodeKind::Wait { until, .. } = &node.kind {
                        let name = match until {
                            WaitUntil::At(e) => format!("at {e}"),
                            WaitUntil::Cron(s) => format!("at {s}"),
                        };
                        let mut attrs = wait_attrs(until);
                        attrs.push(extensions::attr("cloverleaf:event", "wait"));
                        self.catch_event(from, name, wait_timer(until).definition(), attrs, target);
                    }
                }
                Flow::Next | Flow::Branch => {
                    self.flow(from, target, None, None);
                }
                Flow::When(cond) => {
                    let text = cond.source().to_string();
                    self.flow(from, target, Some(text.clone()), Some(text));
                }
                Flow::Otherwise => {
                    let flow = self.flow(from, target, Some("otherwise".to_string()), None);
                    self.elements[from].default = Some(flow);
                }
                Flow::First(arm) => {
                    let (name, body, attrs, ext) = match &arm.event {
                        FirstEvent::Message { message, key, outputs } => (
                            format!("message {message}"),
                            self.message_definition(message),
                            vec![extensions::attr("cloverleaf:key", key.source())],
                            extensions::outputs(outputs),
                        ),
                        FirstEvent::Timer { at } => (
                            format!("after {at}"),
                            Timer::at(at).definition(),
                            vec![extensions::attr("cloverleaf:timer", at.source())],
                            Vec::new(),
                        ),
                    };
                    let catch = self.catch_event(from, name, body, attrs, target);
                    self.elements[catch].ext = ext;
                }
                Flow::Boundary(b) if wait_race => {
                    let (name, body, interrupting) = self.boundary_event(b);
                    let mut attrs = boundary_attrs(b);
                    if !interrupting {
                        attrs.push(("cloverleaf:interrupting", "false".to_string()));
                    }
                    self.catch_event(from, name, body, attrs, target);
                }
                Flow::Boundary(b) => {
                    let (name, body, interrupting) = self.boundary_event(b);
                    let id = self.ids.fresh(&format!("{}_{}", self.elements[from].id, name));
                    let mut e = Element::new(id, "boundaryEvent", Some(name), Shape::Event);
                    e.body = body;
                    e.attrs = boundary_attrs(b);
                    e.host = Some(from);
                    if !interrupting {
                        e.attrs.push(("cancelActivity", "false".to_string()));
                    }
                    e.attrs.push(("attachedToRef", self.elements[from].id.clone()));
                    e.slot = (boundary_no, boundary_count);
                    boundary_no += 1;
                    let event = self.push(e);
                    self.flow(event, target, None, None);
                }
            }
        }
    }

    /// A boundary event's name, event definition and whether it interrupts.
    fn boundary_event(&self, b: &Boundary) -> (String, String, bool) {
        match &b.event {
            BoundaryEvent::Error { code: Some(code) } => {
                (format!("error {code}"), self.error_definition(Some(code)), true)
            }
            BoundaryEvent::Error { code: None } => ("any error".to_string(), self.error_definition(None), true),
            BoundaryEvent::Timer { timer, interrupting } => {
                let (name, timer) = match timer {
                    TimerSpec::At(e) => (format!("after {e}"), Timer::at(e)),
                    TimerSpec::Every(e) => (format!("every {e}"), Timer::every(e)),
                    TimerSpec::Cron(s) => (format!("at {s}"), Timer::cron(s)),
                };
                (name, timer.definition(), *interrupting)
            }
        }
    }

    fn write_semantic(&self, process: &CompiledProcess, out: &mut String) {
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<bpmn:definitions xmlns:bpmn=\"{BPMN_NS}\" xmlns:bpmndi=\"{BPMNDI_NS}\" xmlns:dc=\"{DC_NS}\" \
             xmlns:di=\"{DI_NS}\" xmlns:xsi=\"{XSI_NS}\" xmlns:camunda=\"{CAMUNDA_NS}\" \
             xmlns:cloverleaf=\"{CLOVERLEAF_NS}\" id=\"{}\" \
             targetNamespace=\"urn:cloverleaf:process:{}\" exporter=\"Cloverleaf\">",
            ncname(&format!("Definitions_{}", process.key)),
            xml_escape(&process.key)
        );
        for (name, id) in &self.messages {
            let _ = writeln!(out, "  <bpmn:message id=\"{id}\" name=\"{}\" />", xml_escape(name));
        }
        for (code, id) in &self.errors {
            let code = xml_escape(code);
            let _ = writeln!(out, "  <bpmn:error id=\"{id}\" name=\"{code}\" errorCode=\"{code}\" />");
        }
        let (attrs, ext) = extensions::process(process);
        let _ = write!(
            out,
            "  <bpmn:process id=\"{}\" name=\"{}\" isExecutable=\"true\"",
            self.process_id,
            xml_escape(&process.title)
        );
        if let Some(zh) = &process.title_zh {
            let _ = write!(out, " cloverleaf:titleZh=\"{}\"", xml_escape(zh));
        }
        for (key, value) in &attrs {
            let _ = write!(out, " {key}=\"{value}\"");
        }
        out.push_str(">\n");
        write_extensions(out, "    ", &ext);
        for e in &self.elements {
            let _ = write!(out, "    <bpmn:{} id=\"{}\"", e.tag, e.id);
            if let Some(name) = &e.name {
                let _ = write!(out, " name=\"{}\"", xml_escape(name));
            }
            for (key, value) in &e.attrs {
                let _ = write!(out, " {key}=\"{value}\"");
            }
            if let Some(flow) = e.default {
                let _ = write!(out, " default=\"{}\"", self.flows[flow].id);
            }
            out.push_str(">\n");
            if let Some(doc) = &e.documentation {
                let _ = writeln!(out, "      <bpmn:documentation>{}</bpmn:documentation>", xml_escape(doc));
            }
            write_extensions(out, "      ", &e.ext);
            for &flow in &e.incoming {
                let _ = writeln!(out, "      <bpmn:incoming>{}</bpmn:incoming>", self.flows[flow].id);
            }
            for &flow in &e.outgoing {
                let _ = writeln!(out, "      <bpmn:outgoing>{}</bpmn:outgoing>", self.flows[flow].id);
            }
            if !e.body.is_empty() {
                let _ = writeln!(out, "      {}", e.body);
            }
            let _ = writeln!(out, "    </bpmn:{}>", e.tag);
        }
        for f in &self.flows {
            let _ = write!(
                out,
                "    <bpmn:sequenceFlow id=\"{}\" sourceRef=\"{}\" targetRef=\"{}\"",
                f.id, self.elements[f.source].id, self.elements[f.target].id
            );
            if let Some(name) = &f.name {
                let _ = write!(out, " name=\"{}\"", xml_escape(name));
            }
            match &f.condition {
                Some(cond) => {
                    let _ = writeln!(
                        out,
                        ">\n      <bpmn:conditionExpression xsi:type=\"bpmn:tFormalExpression\" language=\"cloverleaf\">{}</bpmn:conditionExpression>\n    </bpmn:sequenceFlow>",
                        xml_escape(cond)
                    );
                }
                None => out.push_str(" />\n"),
            }
        }
        out.push_str("  </bpmn:process>\n");
    }

    fn write_diagram(&self, layout: &Layout, out: &mut String) {
        let _ = writeln!(out, "  <bpmndi:BPMNDiagram id=\"{}_diagram\">", self.process_id);
        let _ = writeln!(
            out,
            "    <bpmndi:BPMNPlane id=\"{}_plane\" bpmnElement=\"{}\">",
            self.process_id, self.process_id
        );
        for (e, b) in self.elements.iter().zip(&layout.bounds) {
            let marker = if e.tag == "exclusiveGateway" { " isMarkerVisible=\"true\"" } else { "" };
            let _ = writeln!(out, "      <bpmndi:BPMNShape id=\"{}_di\" bpmnElement=\"{}\"{marker}>", e.id, e.id);
            let _ =
                writeln!(out, "        <dc:Bounds x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" />", b.x, b.y, b.w, b.h);
            out.push_str("      </bpmndi:BPMNShape>\n");
        }
        for f in &self.flows {
            let _ = writeln!(out, "      <bpmndi:BPMNEdge id=\"{}_di\" bpmnElement=\"{}\">", f.id, f.id);
            for (x, y) in layout.waypoints(&self.elements, f) {
                let _ = writeln!(out, "        <di:waypoint x=\"{x}\" y=\"{y}\" />");
            }
            out.push_str("      </bpmndi:BPMNEdge>\n");
        }
        out.push_str("    </bpmndi:BPMNPlane>\n  </bpmndi:BPMNDiagram>\n");
    }
}

/// `bpmn:extensionElements` holding `ext`, indented by `pad`; nothing when `ext` is empty.
fn write_extensions(out: &mut String, pad: &str, ext: &[String]) {
    if ext.is_empty() {
        return;
    }
    let _ = writeln!(out, "{pad}<bpmn:extensionElements>");
    for x in ext {
        let _ = writeln!(out, "{pad}  {x}");
    }
    let _ = writeln!(out, "{pad}</bpmn:extensionElements>");
}

fn boundaries(kind: &NodeKind) -> Option<&[Boundary]> {
    match kind {
        NodeKind::Task { boundaries, .. }
        | NodeKind::Approval { boundaries, .. }
        | NodeKind::Receive { boundaries, .. }
        | NodeKind::Wait { boundaries, .. }
        | NodeKind::Call { boundaries, .. } => Some(boundaries),
        _ => None,
    }
}

/// The `.flow` text of a boundary's timer, or its cron schedule's zone.
fn boundary_attrs(b: &Boundary) -> Attrs {
    match &b.event {
        BoundaryEvent::Timer { timer: TimerSpec::At(e) | TimerSpec::Every(e), .. } => {
            vec![extensions::attr("cloverleaf:timer", e.source())]
        }
        BoundaryEvent::Timer { timer: TimerSpec::Cron(s), .. } => {
            vec![extensions::attr("cloverleaf:zone", s.zone().name())]
        }
        BoundaryEvent::Error { .. } => Vec::new(),
    }
}

fn wait_attrs(until: &WaitUntil) -> Attrs {
    match until {
        WaitUntil::At(e) => vec![extensions::attr("cloverleaf:timer", e.source())],
        WaitUntil::Cron(s) => vec![extensions::attr("cloverleaf:zone", s.zone().name())],
    }
}

fn wait_timer(until: &WaitUntil) -> Timer {
    match until {
        WaitUntil::At(e) => Timer::at(e),
        WaitUntil::Cron(s) => Timer::cron(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_ncnames_and_unique() {
        let mut ids = Ids::default();
        assert_eq!(ids.fresh("route:set"), "route_set");
        assert_eq!(ids.fresh("route_set"), "route_set_2");
        assert_eq!(ids.fresh("1st"), "_1st");
        assert_eq!(ids.fresh(""), "_");
        assert_eq!(ids.fresh("größe"), "gr__e");
    }

    #[test]
    fn durations_are_iso_8601() {
        assert_eq!(iso_duration(48 * 3600), "PT48H");
        assert_eq!(iso_duration(7 * 86_400), "PT168H");
        assert_eq!(iso_duration(86_400 + 12 * 3600 + 5), "PT36H5S");
        assert_eq!(iso_duration(90), "PT1M30S");
        assert_eq!(iso_duration(0), "PT0S");
    }

    #[test]
    fn escaping_covers_markup_quotes_and_line_breaks() {
        assert_eq!(xml_escape("a < b & \"c\" 'd'\n"), "a &lt; b &amp; &quot;c&quot; &apos;d&apos;&#10;");
        assert_eq!(xml_escape("bell\u{7}"), "bell\u{fffd}");
    }
}
