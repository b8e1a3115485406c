//! [`Process`]es written as `.flow` text: declarations first, then the nodes in document order,
//! with anonymous decides and sets written in place where their owner's flow leads.

use std::fmt::Write as _;

use super::read::{FKind, FNode, Process};
use super::translate::quote;

/// The `.flow` text of `processes`.
pub(super) fn write(processes: &[Process]) -> String {
    let mut out = String::new();
    for (i, p) in processes.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let title = title_text(&p.title, &p.title_zh);
        let _ = writeln!(out, "process {}{title} {{", p.key);
        for line in &p.head {
            let _ = writeln!(out, "  {line}");
        }
        for node in p.nodes.iter().filter(|n| !n.anonymous) {
            out.push('\n');
            node_text(p, node, &mut out);
        }
        out.push_str("}\n");
    }
    out
}

/// A flow's target: the node's name, or the anonymous node written in place.
fn target(p: &Process, to: Option<usize>, indent: &str) -> String {
    let Some(node) = to.and_then(|t| p.nodes.get(t)) else { return "missing".to_string() };
    if !node.anonymous {
        return node.name.clone();
    }
    match &node.kind {
        FKind::Decide { arms } => {
            let inner = format!("{indent}  ");
            let mut s = "decide {\n".to_string();
            for arm in arms {
                let _ = writeln!(s, "{inner}{}", arm_text(p, arm, &inner));
            }
            let _ = write!(s, "{indent}}}");
            s
        }
        FKind::Set { assignments, next } => {
            let list: Vec<String> = assignments.iter().map(|(n, v)| format!("{n} = {v}")).collect();
            format!("set {} -> {}", list.join(", "), target(p, *next, indent))
        }
        // Only decides and sets are written in place; anything else keeps its name.
        _ => node.name.clone(),
    }
}

/// ` "Title" zh "标题"` after a declaration's name, or nothing.
fn title_text(title: &Option<String>, zh: &Option<String>) -> String {
    let Some(title) = title else { return String::new() };
    match zh {
        Some(zh) => format!(" {} zh {}", quote(title), quote(zh)),
        None => format!(" {}", quote(title)),
    }
}

fn arm_text(p: &Process, (cond, to): &(Option<String>, Option<usize>), indent: &str) -> String {
    match cond {
        Some(c) => format!("when {c} -> {}", target(p, *to, indent)),
        None => format!("otherwise -> {}", target(p, *to, indent)),
    }
}

fn node_text(p: &Process, node: &FNode, out: &mut String) {
    let title = title_text(&node.title, &node.title_zh);
    let name = &node.name;
    let ind = "  ";
    let boundaries = |out: &mut String| {
        for (head, to) in &node.boundaries {
            let _ = writeln!(out, "    {head} -> {}", target(p, *to, "    "));
        }
    };
    match &node.kind {
        FKind::Start { trigger, next } => {
            let mut head = "start".to_string();
            if name != "start" {
                head = format!("{head} {name}");
            }
            if !trigger.is_empty() {
                head = format!("{head} {trigger}");
            }
            let _ = writeln!(out, "{ind}{head} -> {}", target(p, *next, ind));
        }
        FKind::End { suffix } => {
            let _ = writeln!(out, "{ind}end {name}{title}{suffix}");
        }
        FKind::Block { keyword, clauses, next } => {
            let _ = writeln!(out, "{ind}{keyword} {name}{title} {{");
            for c in clauses {
                let _ = writeln!(out, "    {c}");
            }
            boundaries(out);
            let _ = writeln!(out, "{ind}}} -> {}", target(p, *next, ind));
        }
        FKind::Set { assignments, next } => {
            let _ = writeln!(out, "{ind}set {name}{title} {{");
            for (n, v) in assignments {
                let _ = writeln!(out, "    {n} = {v}");
            }
            let _ = writeln!(out, "{ind}}} -> {}", target(p, *next, ind));
        }
        FKind::Decide { arms } => {
            let _ = writeln!(out, "{ind}decide {name}{title} {{");
            for arm in arms {
                let _ = writeln!(out, "    {}", arm_text(p, arm, "    "));
            }
            let _ = writeln!(out, "{ind}}}");
        }
        FKind::Split { branches } => {
            let _ = writeln!(out, "{ind}parallel {name}{title} {{");
            for b in branches {
                let _ = writeln!(out, "    -> {}", target(p, *b, "    "));
            }
            let _ = writeln!(out, "{ind}}}");
        }
        FKind::Join { next } => {
            let _ = writeln!(out, "{ind}join {name}{title} -> {}", target(p, *next, ind));
        }
        FKind::First { arms } => {
            let _ = writeln!(out, "{ind}wait first {name}{title} {{");
            for (head, to) in arms {
                let _ = writeln!(out, "    {head} -> {}", target(p, *to, "    "));
            }
            let _ = writeln!(out, "{ind}}}");
        }
    }
}
