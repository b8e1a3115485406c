//! What BPMN has no place for, carried under the Cloverleaf namespace so that `cloverleaf import`
//! gives back the same process: declarations, access, mappings, forms, `not by`, due dates,
//! reminders, retries and timeouts, and the exact `.flow` text of every timer.
//!
//! Scalars are attributes (`cloverleaf:due="24h"`), lists are elements inside
//! `bpmn:extensionElements` (`<cloverleaf:in name="amount" value="amount" />`). Values are `.flow`
//! text: types as written (`money?`), expressions as their source. The schema lets any element
//! and attribute of another namespace in these places, so the document stays valid.

use super::{Element, ncname, xml_escape};
use crate::model::{Bound, BoundOp, CompiledProcess, Mapping, Node, NodeKind, Reminder, RetryPolicy, VarDef};

/// The namespace of Cloverleaf's extensions.
pub const CLOVERLEAF_NS: &str = "urn:cloverleaf:bpmn";

/// An attribute in the Cloverleaf namespace, its value escaped.
pub(super) fn attr(name: &'static str, value: &str) -> (&'static str, String) {
    (name, xml_escape(value))
}

/// `> 0 <= 100`: bounds as `.flow` writes them.
pub(crate) fn bounds_text(bounds: &[Bound]) -> String {
    let parts: Vec<String> = bounds
        .iter()
        .map(|b| {
            let op = match b.op {
                BoundOp::Greater => ">",
                BoundOp::AtLeast => ">=",
                BoundOp::Less => "<",
                BoundOp::AtMost => "<=",
            };
            format!("{op} {}", b.value)
        })
        .collect();
    parts.join(" ")
}

fn declaration(tag: &str, v: &VarDef) -> String {
    let mut out = format!(
        "<cloverleaf:{tag} name=\"{}\" type=\"{}{}\"",
        xml_escape(&v.name),
        xml_escape(&v.ty.to_string()),
        if v.optional { "?" } else { "" }
    );
    if !v.bounds.is_empty() {
        out.push_str(&format!(" bounds=\"{}\"", xml_escape(&bounds_text(&v.bounds))));
    }
    if let Some(d) = &v.default {
        out.push_str(&format!(" default=\"{}\"", xml_escape(d.source())));
    }
    out.push_str(" />");
    out
}

fn mappings(tag: &str, list: &[Mapping]) -> impl Iterator<Item = String> {
    list.iter().map(move |m| {
        format!("<cloverleaf:{tag} name=\"{}\" value=\"{}\" />", xml_escape(&m.name), xml_escape(m.value.source()))
    })
}

/// The process's attributes and extension elements: calendar, inputs, variables, access.
pub(super) fn process(process: &CompiledProcess) -> (Vec<(&'static str, String)>, Vec<String>) {
    let mut attrs = Vec::new();
    if let Some(calendar) = &process.calendar {
        attrs.push(attr("cloverleaf:calendar", calendar.name()));
    }
    let mut ext: Vec<String> = process.inputs.iter().map(|v| declaration("input", v)).collect();
    ext.extend(process.vars.iter().map(|v| declaration("var", v)));
    let a = &process.access;
    if *a != Default::default() {
        let mut access = "<cloverleaf:access".to_string();
        for (key, roles) in [("startBy", &a.start_by), ("onBehalfBy", &a.on_behalf_by), ("readBy", &a.read_by)] {
            if !roles.is_empty() {
                access.push_str(&format!(" {key}=\"{}\"", xml_escape(&roles.join(","))));
            }
        }
        if let Some(r) = &a.requester {
            access.push_str(&format!(" requester=\"{}\"", xml_escape(r)));
        }
        if a.called_only {
            access.push_str(" calledOnly=\"true\"");
        }
        access.push_str(" />");
        ext.push(access);
    }
    (attrs, ext)
}

/// Adds to `e` what its node carries beyond BPMN: its name when the id cannot be it, and the
/// clauses of tasks, approvals, sets, receives and calls.
pub(super) fn node(node: &Node, e: &mut Element) {
    if ncname(&node.name) != e.id || node.name.contains(':') {
        e.attrs.push(attr("cloverleaf:name", &node.name));
    }
    match &node.kind {
        NodeKind::Task { inputs, outputs, retry, timeout_secs, .. } => {
            if let Some(secs) = timeout_secs {
                e.attrs.push(attr("cloverleaf:timeout", &duration_text(*secs)));
            }
            if *retry != RetryPolicy::default() {
                e.ext.push(format!(
                    "<cloverleaf:retry attempts=\"{}\" backoff=\"{}\"{} />",
                    retry.attempts,
                    duration_text(retry.backoff_secs),
                    if retry.exponential { "" } else { " fixed=\"true\"" }
                ));
            }
            e.ext.extend(mappings("in", inputs));
            e.ext.extend(mappings("out", outputs));
        }
        NodeKind::Approval { assignee, not_by, form, due, reminders, show, .. } => {
            if let Some(a) = assignee {
                e.attrs.push(attr("cloverleaf:assignee", a.source()));
            }
            if let Some(d) = due {
                e.attrs.push(attr("cloverleaf:due", d.source()));
            }
            for n in not_by {
                e.ext.push(format!("<cloverleaf:notBy value=\"{}\" />", xml_escape(n.source())));
            }
            for f in form {
                let mut field = format!(
                    "<cloverleaf:field name=\"{}\" type=\"{}{}\"",
                    xml_escape(&f.name),
                    xml_escape(&f.ty.to_string()),
                    if f.optional { "?" } else { "" }
                );
                if !f.bounds.is_empty() {
                    field.push_str(&format!(" bounds=\"{}\"", xml_escape(&bounds_text(&f.bounds))));
                }
                field.push_str(" />");
                e.ext.push(field);
            }
            for r in reminders {
                let (key, when) = match r {
                    Reminder::At(w) => ("after", w),
                    Reminder::Every(w) => ("every", w),
                };
                e.ext.push(format!("<cloverleaf:remind {key}=\"{}\" />", xml_escape(when.source())));
            }
            for v in show {
                e.ext.push(format!("<cloverleaf:show name=\"{}\" />", xml_escape(v)));
            }
        }
        NodeKind::Set { assignments, .. } => e.ext.extend(mappings("assign", assignments)),
        NodeKind::Receive { key, outputs, .. } => {
            e.attrs.push(attr("cloverleaf:key", key.source()));
            e.ext.extend(mappings("out", outputs));
        }
        NodeKind::Call { process, inputs, outputs, .. } => {
            if ncname(process) != *process {
                e.attrs.push(attr("cloverleaf:process", process));
            }
            e.ext.extend(mappings("in", inputs));
            e.ext.extend(mappings("out", outputs));
        }
        _ => {}
    }
}

/// A whole number of seconds as a `.flow` duration literal in its largest exact unit.
pub(crate) fn duration_text(secs: i64) -> String {
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs != 0 && secs % size == 0 {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

/// `<cloverleaf:out>` elements for a message's outputs.
pub(super) fn outputs(list: &[Mapping]) -> Vec<String> {
    mappings("out", list).collect()
}
