//! Exports of a compiled process: JSON, Graphviz DOT, Mermaid and BPMN 2.0 (module `bpmn`).

mod bpmn;

use std::fmt::Write as _;

pub(crate) use bpmn::{BPMN_NS, CAMUNDA_NS, duration_text};
pub use bpmn::{CLOVERLEAF_NS, to_bpmn};

use crate::model::{CompiledProcess, EdgeKind, EndKind, Node, NodeKind};

/// Output formats of `cloverleaf graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The compiled graph as JSON (what the engine stores).
    Json,
    /// Graphviz DOT, for `dot -Tsvg`.
    Dot,
    /// A Mermaid flowchart, for Markdown.
    Mermaid,
    /// BPMN 2.0 XML with diagram interchange, for bpmn.io and Camunda Modeler.
    Bpmn,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(Format::Json),
            "dot" => Ok(Format::Dot),
            "mermaid" => Ok(Format::Mermaid),
            "bpmn" => Ok(Format::Bpmn),
            other => Err(format!("unknown format `{other}`: use json, dot, mermaid or bpmn")),
        }
    }
}

/// Renders `process` in `format`.
pub fn export(process: &CompiledProcess, format: Format) -> String {
    match format {
        Format::Json => process.to_json() + "\n",
        Format::Dot => to_dot(process),
        Format::Mermaid => to_mermaid(process),
        Format::Bpmn => to_bpmn(process),
    }
}

fn label(node: &Node) -> String {
    let kind = node.kind.word();
    let detail = match &node.kind {
        NodeKind::Task { job, .. } => format!("\n[{job}]"),
        NodeKind::Approval { roles, .. } if !roles.is_empty() => format!("\n({})", roles.join(", ")),
        NodeKind::Receive { message, .. } => format!("\n✉ {message}"),
        NodeKind::Call { process, .. } => format!("\n⇒ {process}"),
        NodeKind::End { end: EndKind::Error { code }, .. } => format!("\nerror {code}"),
        NodeKind::End { end: EndKind::Terminate, .. } => "\nterminate".to_string(),
        _ => String::new(),
    };
    match (&node.kind, &node.title) {
        (NodeKind::Split { .. } | NodeKind::Join { .. }, _) => format!("+ {}", node.name),
        (_, Some(title)) => format!("{title}{detail}"),
        (NodeKind::Start { .. } | NodeKind::End { .. } | NodeKind::Decide { .. }, None) => {
            format!("{}{detail}", node.name)
        }
        (_, None) => format!("{kind} {}{detail}", node.name),
    }
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Graphviz DOT: shapes by node kind, conditions and events on the edges, non-interrupting
/// events dashed.
pub fn to_dot(process: &CompiledProcess) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", dot_escape(&process.key));
    let _ = writeln!(out, "  label=\"{}\";", dot_escape(&process.title));
    out.push_str("  labelloc=t;\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=11];\n  edge [fontname=\"Helvetica\", fontsize=9];\n");
    for node in &process.nodes {
        let shape = match &node.kind {
            NodeKind::Start { .. } => "shape=circle, style=filled, fillcolor=\"#d9f2d9\"",
            NodeKind::End { end: EndKind::Normal, .. } => "shape=doublecircle, style=filled, fillcolor=\"#f2d9d9\"",
            NodeKind::End { .. } => "shape=doubleoctagon, style=filled, fillcolor=\"#f2b3b3\"",
            NodeKind::Task { .. } => "shape=box, style=\"rounded,filled\", fillcolor=\"#e6eef9\"",
            NodeKind::Approval { .. } => "shape=box, style=\"rounded,filled\", fillcolor=\"#fff4cc\"",
            NodeKind::Set { .. } => "shape=note",
            NodeKind::Decide { .. } => "shape=diamond",
            NodeKind::Split { .. } | NodeKind::Join { .. } => "shape=diamond, style=filled, fillcolor=\"#eeeeee\"",
            NodeKind::First { .. } => "shape=octagon",
            NodeKind::Receive { .. } => "shape=cds",
            NodeKind::Wait { .. } => "shape=box, style=\"rounded,dashed\"",
            NodeKind::Call { .. } => "shape=box, peripheries=2",
        };
        let _ = writeln!(out, "  \"{}\" [label=\"{}\", {shape}];", dot_escape(&node.name), dot_escape(&label(node)));
    }
    for edge in process.edges() {
        let (text, style) = match &edge.kind {
            EdgeKind::Next | EdgeKind::Branch => (String::new(), ""),
            EdgeKind::When(cond) => (cond.clone(), ""),
            EdgeKind::Otherwise => ("otherwise".to_string(), ""),
            EdgeKind::Event { label, interrupting: true } => (label.clone(), ", color=\"#b36b00\""),
            EdgeKind::Event { label, interrupting: false } => (label.clone(), ", style=dashed, color=\"#b36b00\""),
            EdgeKind::Error(code) => (format!("error {}", code.as_deref().unwrap_or("*")), ", color=\"#b30000\""),
        };
        let label = if text.is_empty() { String::new() } else { format!(" [label=\"{}\"{style}]", dot_escape(&text)) };
        let label = if text.is_empty() && !style.is_empty() { format!(" [{}]", &style[2..]) } else { label };
        let _ = writeln!(out, "  \"{}\" -> \"{}\"{label};", dot_escape(edge.from), dot_escape(edge.to));
    }
    out.push_str("}\n");
    out
}

fn mermaid_id(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

fn mermaid_text(s: &str) -> String {
    s.replace('"', "#quot;").replace('\n', "<br/>")
}

/// A Mermaid flowchart.
pub fn to_mermaid(process: &CompiledProcess) -> String {
    let mut out = String::from("flowchart LR\n");
    for node in &process.nodes {
        let id = mermaid_id(&node.name);
        let text = mermaid_text(&label(node));
        let shaped = match &node.kind {
            NodeKind::Start { .. } => format!("(((\"{text}\")))"),
            NodeKind::End { .. } => format!("((\"{text}\"))"),
            NodeKind::Decide { .. } => format!("{{\"{text}\"}}"),
            NodeKind::Split { .. } | NodeKind::Join { .. } | NodeKind::First { .. } => format!("{{{{\"{text}\"}}}}"),
            NodeKind::Receive { .. } => format!(">\"{text}\"]"),
            NodeKind::Call { .. } => format!("[[\"{text}\"]]"),
            NodeKind::Set { .. } => format!("[/\"{text}\"/]"),
            _ => format!("(\"{text}\")"),
        };
        let _ = writeln!(out, "  {id}{shaped}");
    }
    for edge in process.edges() {
        let (text, arrow) = match &edge.kind {
            EdgeKind::Next | EdgeKind::Branch => (String::new(), "-->"),
            EdgeKind::When(cond) => (cond.clone(), "-->"),
            EdgeKind::Otherwise => ("otherwise".to_string(), "-->"),
            EdgeKind::Event { label, interrupting: true } => (label.clone(), "-->"),
            EdgeKind::Event { label, interrupting: false } => (label.clone(), "-.->"),
            EdgeKind::Error(code) => (format!("error {}", code.as_deref().unwrap_or("*")), "-->"),
        };
        let from = mermaid_id(edge.from);
        let to = mermaid_id(edge.to);
        if text.is_empty() {
            let _ = writeln!(out, "  {from} {arrow} {to}");
        } else {
            let _ = writeln!(out, "  {from} {arrow}|\"{}\"| {to}", mermaid_text(&text));
        }
    }
    out
}
