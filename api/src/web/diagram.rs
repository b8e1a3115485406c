//! The process diagram as SVG, drawn from the compiled graph in layers from top to bottom
//! ([`layout`]), the path already walked, the current position and incidents marked.
//!
//! Presentation attributes only (no `style`), so the page's Content-Security-Policy holds.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use cloverleaf_dsl::CompiledProcess;
use cloverleaf_dsl::model::{Node, NodeKind};

use super::esc;
use super::i18n::{self, Lang};
use layout::{BOX_H, BOX_W};

mod layout;

/// How far an instance has come: the nodes it has passed, where its tokens are, where it is stuck.
#[derive(Debug, Default)]
pub struct Progress {
    /// Nodes the history shows it has been at.
    pub done: BTreeSet<String>,
    /// Nodes a token is at now.
    pub current: BTreeSet<String>,
    /// Nodes with an open incident (at the step, or inside the case a call step started).
    pub incidents: BTreeSet<String>,
    /// Where a step leads the reader: a call step to the case it started.
    pub links: BTreeMap<String, String>,
}

/// The SVG of `process` with `progress` marked, its steps titled for a reader of `lang`, each
/// title's placeholders filled by `fill_title` as the instance's tasks fill them; `label` names
/// it for screen readers.
pub fn svg(
    process: &CompiledProcess,
    progress: &Progress,
    label: &str,
    lang: Lang,
    fill_title: &dyn Fn(&str) -> String,
) -> String {
    let edges = process.edges();
    let index: BTreeMap<&str, usize> = process.nodes.iter().enumerate().map(|(i, n)| (n.name.as_str(), i)).collect();
    let starts: Vec<usize> = process
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| matches!(n.kind, NodeKind::Start { .. }))
        .map(|(i, _)| i)
        .collect();
    let joined: Vec<(usize, usize)> =
        edges.iter().filter_map(|e| Some((*index.get(e.from)?, *index.get(e.to)?))).collect();
    let known: Vec<&cloverleaf_dsl::model::Edge<'_>> =
        edges.iter().filter(|e| index.contains_key(e.from) && index.contains_key(e.to)).collect();
    let drawing = layout::draw(process.nodes.len(), &starts, &joined);
    let (width, height) = (drawing.width, drawing.height);

    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"diagram\" viewBox=\"0 0 {width} {height}\" \
         width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"{}\">",
        esc(label)
    );
    out.push_str(
        "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerUnits=\"userSpaceOnUse\" \
         markerWidth=\"8\" markerHeight=\"8\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#667\"/></marker></defs>",
    );
    for route in &drawing.flows {
        // A trunk is walked where any flow it carries was.
        let walked = route.edges.iter().map(|&e| known[e]).any(|edge| {
            progress.done.contains(edge.from) && (progress.done.contains(edge.to) || progress.current.contains(edge.to))
        });
        let class = if walked { "edge walked" } else { "edge" };
        let _ = write!(
            out,
            "<path class=\"{class}\" d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\"{}/>",
            route.path(),
            if walked { "#2f7d32" } else { "#99a" },
            if walked { 2.5 } else { 1.2 },
            if route.arrow { " marker-end=\"url(#arrow)\"" } else { "" },
        );
    }
    for (node, &(x, y)) in process.nodes.iter().zip(&drawing.boxes) {
        let name = node.name.as_str();
        let (class, fill, stroke) = if progress.incidents.contains(name) {
            ("node incident", "#fde2e1", "#c62828")
        } else if progress.current.contains(name) {
            ("node current", "#fff3c4", "#e09b00")
        } else if progress.done.contains(name) {
            ("node done", "#e3f1e4", "#2f7d32")
        } else {
            ("node", "#ffffff", "#99a")
        };
        let rounded = if matches!(node.kind, NodeKind::Start { .. } | NodeKind::End { .. }) { 22 } else { 6 };
        if let Some(href) = progress.links.get(name) {
            let _ = write!(out, "<a href=\"{}\">", esc(href));
        }
        let _ = write!(
            out,
            "<g class=\"{class}\" data-node=\"{}\"><rect x=\"{x}\" y=\"{y}\" width=\"{BOX_W}\" height=\"{BOX_H}\" \
             rx=\"{rounded}\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"1.5\"/>",
            esc(name)
        );
        let title = match i18n::node_title(lang, node) {
            Some(title) => fill_title(title),
            None => untitled(process, node, lang, fill_title),
        };
        let title = title.as_str();
        let kind = i18n::node_kind(lang, &node.kind);
        // A step named by its kind alone (an untitled start, join, split or decision) says it
        // once, in the middle.
        let by_kind = i18n::node_title(lang, node).is_none() && structural_name(lang, node).is_some();
        let title_y = if title == kind || by_kind {
            y + BOX_H / 2 + 4
        } else {
            let _ = write!(
                out,
                "<text x=\"{}\" y=\"{}\" font-size=\"9\" fill=\"#556\" text-anchor=\"middle\">{}</text>",
                x + BOX_W / 2,
                y + 14,
                esc(kind)
            );
            y + 31
        };
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{title_y}\" font-size=\"11\" fill=\"#111\" text-anchor=\"middle\">{}</text>\
             <title>{}</title></g>",
            x + BOX_W / 2,
            esc(&shorten(title, 24)),
            esc(title),
        );
        if progress.links.contains_key(name) {
            out.push_str("</a>");
        }
    }
    out.push_str("</svg>");
    out
}

/// What an untitled step shows: a decision written in place after another step
/// (`approve:decide`) is that step's outcome ("Outcome of Approve the order", as the history
/// says it), any other step written in place is named by the step it follows, which its kind
/// word above it qualifies; an untitled start by its kind; an untitled join, split, decision or
/// race by what it does (see [`structural_name`]); any other by its name.
fn untitled(process: &CompiledProcess, node: &Node, lang: Lang, fill_title: &dyn Fn(&str) -> String) -> String {
    let owner = node.name.split_once(':').and_then(|(owner, _)| process.nodes.iter().find(|n| n.name == owner));
    match owner {
        Some(owner) => {
            let step = i18n::node_title(lang, owner).map_or_else(|| owner.name.clone(), fill_title);
            match node.kind {
                NodeKind::Decide { .. } => lang.t("outcome_of").replace("{step}", &step),
                _ => step,
            }
        }
        // An untitled start reads as its kind, in the reader's language, not as its name.
        None if matches!(node.kind, NodeKind::Start { .. }) => i18n::node_kind(lang, &node.kind).to_string(),
        None => structural_name(lang, node).map_or_else(|| node.name.clone(), str::to_string),
    }
}

/// What a step that only shapes the flow (a join, a parallel split, a decision, a race of
/// waits) is called in `lang` when its designer gave it no title: `汇合` / `Join`, not its name
/// in the source (`billed`); `None` for a step of another kind, or one written in place after
/// another step (`approve:decide`), which that step names.
pub fn structural_name(lang: Lang, node: &Node) -> Option<&'static str> {
    if node.name.contains(':') {
        return None;
    }
    let key = match node.kind {
        NodeKind::Join { .. } => "untitled_join",
        NodeKind::Split { .. } => "untitled_split",
        NodeKind::Decide { .. } => "untitled_decide",
        NodeKind::First { .. } => "untitled_first",
        _ => return None,
    };
    Some(lang.t(key))
}

/// At most `max` columns wide, with an ellipsis when cut: a Chinese, Japanese or Korean
/// character takes two columns, as it takes about twice the width of a Latin letter in the box.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().map(columns).sum::<usize>() <= max {
        return text.to_string();
    }
    let mut cut = String::new();
    let mut used = 0;
    for c in text.chars() {
        // One column is kept for the ellipsis.
        if used + columns(c) > max - 1 {
            break;
        }
        used += columns(c);
        cut.push(c);
    }
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

/// The columns `c` takes: two for East Asian wide and full-width characters, one otherwise.
fn columns(c: char) -> usize {
    let wide = matches!(u32::from(c),
        0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x20000..=0x3FFFD);
    if wide { 2 } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(source: &str) -> CompiledProcess {
        let mut project = cloverleaf_dsl::Project::new();
        project.add("t.flow", source);
        let compiled = project.compile();
        assert!(!compiled.has_errors(), "{}", compiled.render());
        compiled.processes.into_iter().next().unwrap()
    }

    #[test]
    fn the_current_position_and_the_walked_path_are_marked() {
        let process = compile(
            "process p \"P\" {\n  start -> a\n  task a \"Check <credit>\" { job \"x\" } -> b\n  \
             task b { job \"y\" } -> done\n  end done \"Done\"\n}\n",
        );
        let progress = Progress {
            done: ["start".to_string(), "a".to_string()].into(),
            current: ["b".to_string()].into(),
            incidents: BTreeSet::new(),
            links: BTreeMap::new(),
        };
        let svg = svg(&process, &progress, "P", Lang::En, &|t| t.to_string());
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("class=\"node current\" data-node=\"b\""), "{svg}");
        assert!(svg.contains("class=\"node done\" data-node=\"a\""), "{svg}");
        assert!(svg.contains("Check &lt;credit&gt;"), "titles are escaped: {svg}");
        assert!(svg.contains("edge walked"), "{svg}");
        assert!(!svg.contains("style="), "no inline style under the CSP");
    }

    #[test]
    fn a_chinese_reader_reads_the_kinds_and_a_decide_in_place_by_the_step_it_follows() {
        let process = compile(
            "process p \"P\" {\n  var ok: bool = false\n  start -> a\n  \
             task a \"Check\" zh \"检查\" { job \"x\" } -> decide {\n    when ok -> done\n    otherwise -> done\n  }\n  \
             end done \"Done\" zh \"完成\"\n}\n",
        );
        let progress = Progress::default();
        let zh = svg(&process, &progress, "P", Lang::ZhCn, &|t| t.to_string());
        assert!(zh.contains(">判断</text>") && zh.contains(">自动任务</text>") && zh.contains(">结束</text>"), "{zh}");
        assert!(!zh.contains(">a:decide</text>") && !zh.contains(">decide</text>"), "{zh}");
        assert_eq!(zh.matches(">开始</text>").count(), 1, "an untitled start reads as its kind, once: {zh}");
        let en = svg(&process, &progress, "P", Lang::En, &|t| t.to_string());
        assert!(en.contains(">Decision</text>") && !en.contains(">a:decide</text>"), "{en}");
        assert!(
            en.contains(">Outcome of Check</text>") && zh.contains(">检查的结果</text>"),
            "the decide after the task: {en}"
        );
        assert!(en.contains(">Automated step</text>") && en.contains(">End</text>"), "kinds in words: {en}");
        assert_eq!(en.matches(">Start</text>").count(), 1, "not `Start` over `Start`: {en}");
    }

    #[test]
    fn an_untitled_join_and_split_read_as_what_they_do_and_a_linked_step_is_a_link() {
        let process = compile(
            "process p \"P\" {\n  start -> both\n  parallel both {\n    -> a\n    -> b\n  }\n  \
             task a \"A\" { job \"x\" } -> met\n  task b \"B\" { job \"y\" } -> met\n  join met -> done\n  \
             end done \"Done\"\n}\n",
        );
        let progress =
            Progress { links: [("a".to_string(), "/cases/i-1.call.2".to_string())].into(), ..Progress::default() };
        let en = svg(&process, &progress, "P", Lang::En, &|t| t.to_string());
        assert!(en.contains(">Join</text>") && en.contains(">Split</text>"), "{en}");
        assert!(!en.contains(">met</text>") && !en.contains(">both</text>"), "{en}");
        assert!(
            !en.contains(">join</text>") && !en.contains(">parallel</text>"),
            "named once, not by kind over name: {en}"
        );
        let zh = svg(&process, &progress, "P", Lang::ZhCn, &|t| t.to_string());
        assert_eq!(zh.matches(">汇合</text>").count(), 1, "{zh}");
        assert_eq!(zh.matches(">并行分支</text>").count(), 1, "{zh}");
        assert!(zh.contains("<a href=\"/cases/i-1.call.2\"><g class=\"node\" data-node=\"a\""), "{zh}");
        assert_eq!(zh.matches("<a href=").count(), 1, "{zh}");
    }

    /// The `(x, y)` of every box in `svg`.
    fn boxes(svg: &str) -> Vec<(usize, usize)> {
        svg.split("<rect x=\"")
            .skip(1)
            .map(|rest| {
                let x = rest.split('"').next().unwrap().parse().unwrap();
                let y = rest.split("y=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
                (x, y)
            })
            .collect()
    }

    #[test]
    fn a_long_process_reads_down_the_page_one_step_under_the_other() {
        let steps: String = (1..=11).map(|i| format!("  task s{i} {{ job \"x\" }} -> s{}\n", i + 1)).collect();
        let source = format!(
            "process p \"P\" {{\n  start -> s1\n{steps}  task s12 {{ job \"x\" }} -> done\n  end done \"Done\"\n}}\n"
        );
        let process = compile(&source);
        let svg = svg(&process, &Progress::default(), "P", Lang::En, &|t| t.to_string());
        let placed = boxes(&svg);
        assert_eq!(placed.len(), 14);
        // One column, each step below the one before it: as narrow as one box.
        assert_eq!(placed.iter().map(|b| b.0).collect::<BTreeSet<_>>().len(), 1, "{placed:?}");
        assert!(placed.windows(2).all(|p| p[1].1 > p[0].1), "{placed:?}");
        let width: usize = svg.split("width=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
        assert!(width < 2 * BOX_W as usize, "{width}");
    }

    #[test]
    fn titles_are_shortened_by_the_width_they_take() {
        // 24 columns: 24 Latin letters, or 12 Chinese characters.
        assert_eq!(shorten("Send the invoice to him", 24), "Send the invoice to him");
        assert_eq!(shorten("Send the invoice to the customer", 24), "Send the invoice to the…");
        assert_eq!(shorten("将发票寄送客户", 24), "将发票寄送客户");
        assert_eq!(shorten("订单 SO-2001 核销被拒：后续处理", 24), "订单 SO-2001 核销被拒：…");
        assert_eq!(shorten("就发票 INV-2026-000001 致电客户", 24), "就发票 INV-2026-000001…");
    }

    #[test]
    fn titles_are_filled_for_the_instance_shown() {
        let process = compile(
            "process p \"P\" {\n  input { order_id: text }\n  start -> a\n  \
             task a \"Check {order_id}\" zh \"检查 {order_id}\" { job \"x\" } -> done\n  end done \"Done\"\n}\n",
        );
        let progress = Progress::default();
        let fill = |t: &str| t.replace("{order_id}", "SO-7");
        let svg = svg(&process, &progress, "P", Lang::ZhCn, &fill);
        assert!(svg.contains("检查 SO-7") && !svg.contains("{order_id}"), "{svg}");
    }
}
