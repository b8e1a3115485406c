//! Stage 3: checks on the graph of a process (petgraph): reachability, a path to an end,
//! soundness of parallel splits and joins, loops that never wait, exhaustive decides and
//! amount bands, approval SLAs.

mod decide;
mod soundness;

use std::collections::{BTreeMap, HashMap, VecDeque};

use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::codes;
use crate::diag::{Diagnostic, FileId, Span};
use crate::expr::Expr;
use crate::model::{self, BoundaryEvent, Node, NodeKind};

use decide::decide_checks;
use soundness::soundness;

/// A node on its way to the compiled graph, with what diagnostics need.
#[derive(Debug, Clone)]
pub(crate) struct LNode {
    pub node: Node,
    pub head: Span,
    pub synthetic: bool,
    pub arm_exprs: Vec<Expr>,
}

impl LNode {
    pub(crate) fn placeholder(name: &str, head: Span) -> LNode {
        LNode {
            node: Node {
                name: name.to_string(),
                title: None,
                title_zh: None,
                kind: NodeKind::Join { split: String::new(), next: String::new() },
            },
            head,
            synthetic: false,
            arm_exprs: Vec::new(),
        }
    }
}

/// How an edge leaves its node: the next step, one branch of a split, or a side path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Next,
    Branch(usize),
    Side,
}

/// Runs every graph check; fills in the split/join pairing of sound processes.
/// `close` is where a note on skipped checks goes: the end of the process, after its errors.
pub(crate) fn analyse(
    file: FileId,
    nodes: &mut [LNode],
    optional: &BTreeMap<String, bool>,
    close: Span,
) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.node.name.as_str(), i)).collect();
    let mut graph: DiGraph<usize, Flow> = DiGraph::with_capacity(nodes.len(), nodes.len() * 2);
    for i in 0..nodes.len() {
        graph.add_node(i);
    }
    let mut edges = Vec::with_capacity(nodes.len() * 2);
    for (i, n) in nodes.iter().enumerate() {
        let mut branch = 0;
        n.node.kind.for_each_flow(|to, out| {
            let Some(&j) = index.get(to) else { return };
            let flow = match out {
                model::Flow::Branch => {
                    branch += 1;
                    Flow::Branch(branch - 1)
                }
                out if out.is_side_path() => Flow::Side,
                _ => Flow::Next,
            };
            edges.push((i, j, flow));
        });
    }
    drop(index);
    for (i, j, flow) in edges {
        graph.add_edge(NodeIndex::new(i), NodeIndex::new(j), flow);
    }
    let starts: Vec<usize> =
        (0..nodes.len()).filter(|&i| matches!(nodes[i].node.kind, NodeKind::Start { .. })).collect();
    let reachable = reach(&graph, &starts, petgraph::Direction::Outgoing);
    for (i, n) in nodes.iter().enumerate() {
        if !reachable[i] && !n.synthetic {
            diags.push(
                Diagnostic::error(
                    codes::UNREACHABLE,
                    file,
                    n.head,
                    format!("{} `{}` can never be reached", n.node.kind.word(), n.node.name),
                )
                .with_label("no path from a start leads here")
                .with_help("lead a flow to it with `-> name`, or remove it"),
            );
        }
    }
    let ends: Vec<usize> = (0..nodes.len()).filter(|&i| matches!(nodes[i].node.kind, NodeKind::End { .. })).collect();
    let finishing = reach(&graph, &ends, petgraph::Direction::Incoming);
    for i in 0..nodes.len() {
        if !reachable[i] || finishing[i] {
            continue;
        }
        // Report where a path enters the trap, not every node inside it.
        let entered_from_outside =
            graph.neighbors_directed(NodeIndex::new(i), petgraph::Direction::Incoming).any(|p| finishing[p.index()]);
        if entered_from_outside || starts.contains(&i) {
            let n = &nodes[i];
            diags.push(
                Diagnostic::error(
                    codes::NO_END,
                    file,
                    n.head,
                    format!("no path from {} `{}` leads to an end", n.node.kind.word(), n.node.name),
                )
                .with_label("instances that get here can never finish")
                .with_help("add a way out of this loop, such as a decide arm or a timer that leads to an end"),
            );
        }
    }
    loops(file, nodes, &graph, &mut diags);
    // Soundness is only meaningful on a graph whose nodes all lie between a start and an end;
    // the checks of single nodes below still run.
    if diags.iter().any(Diagnostic::is_error) {
        let has_splits = nodes.iter().any(|n| matches!(n.node.kind, NodeKind::Split { .. } | NodeKind::Join { .. }));
        if has_splits {
            diags.push(skipped(
                file,
                close,
                "the split and join checks",
                "they need every node to lie on a path from a start to an end",
            ));
        }
    } else {
        soundness(file, nodes, &graph, &starts, &mut diags);
    }
    for n in nodes.iter() {
        decide_checks(file, n, optional, &mut diags);
        if let NodeKind::Approval { due, boundaries, .. } = &n.node.kind {
            let escalates =
                boundaries.iter().any(|b| matches!(b.event, BoundaryEvent::Timer { interrupting: true, .. }));
            if due.is_none() && !escalates {
                diags.push(
                    Diagnostic::warning(codes::NO_SLA, file, n.head, format!("approval `{}` has no SLA", n.node.name))
                        .with_label("no `due` and no `escalate after`")
                        .with_help("add `due 24h` or `escalate after 24h -> node` so a stuck approval gets noticed"),
                );
            }
        }
    }
    diags
}

/// W0506: a stage that could not run because of the errors above, so that a process with no
/// further diagnostics is not taken for one that passed them.
pub(crate) fn skipped(file: FileId, span: Span, what: &str, why: &str) -> Diagnostic {
    Diagnostic::warning(codes::CHECKS_SKIPPED, file, span, format!("{what} did not run"))
        .with_label("not checked yet because of the errors above")
        .with_help(format!("fix the errors and check again: {why}"))
}

fn reach(graph: &DiGraph<usize, Flow>, from: &[usize], dir: petgraph::Direction) -> Vec<bool> {
    let mut seen = vec![false; graph.node_count()];
    let mut queue: VecDeque<NodeIndex> = from.iter().map(|&i| NodeIndex::new(i)).collect();
    for &i in from {
        seen[i] = true;
    }
    while let Some(n) = queue.pop_front() {
        for m in graph.neighbors_directed(n, dir) {
            if !seen[m.index()] {
                seen[m.index()] = true;
                queue.push_back(m);
            }
        }
    }
    seen
}

fn loops(file: FileId, nodes: &[LNode], graph: &DiGraph<usize, Flow>, diags: &mut Vec<Diagnostic>) {
    // Loops through nodes that never wait. Tasks and calls take time but do not wait for the
    // world; a loop without them would spin inside one step.
    let moving =
        graph.filter_map(|_, &i| if nodes[i].node.kind.is_wait_state() { None } else { Some(i) }, |_, &f| Some(f));
    for scc in kosaraju_scc(&moving) {
        let cyclic = scc.len() > 1 || scc.iter().any(|&n| moving.contains_edge(n, n));
        if !cyclic {
            continue;
        }
        let mut members: Vec<usize> = scc.iter().map(|&n| moving[n]).collect();
        members.sort_unstable();
        let first = members[0];
        // A loop may run through thousands of nodes: name the first few.
        let mut names: Vec<String> = members.iter().take(8).map(|&m| format!("`{}`", nodes[m].node.name)).collect();
        if members.len() > 8 {
            names.push(format!("… ({} nodes)", members.len()));
        }
        let automated =
            members.iter().any(|&m| matches!(nodes[m].node.kind, NodeKind::Task { .. } | NodeKind::Call { .. }));
        let d = if automated {
            Diagnostic::warning(
                codes::BUSY_LOOP,
                file,
                nodes[first].head,
                format!("the loop through {} never waits", names.join(", ")),
            )
            .with_label("this loop only runs automated steps")
            .with_help(
                "if it repeats until a job succeeds, rely on `retry` instead, or add a `wait for` between rounds",
            )
        } else {
            Diagnostic::error(
                codes::LOOP_WITHOUT_WAIT,
                file,
                nodes[first].head,
                format!("the loop through {} never waits", names.join(", ")),
            )
            .with_label("this loop would spin forever inside one step")
            .with_help(
                "put a wait state in the loop (an approval, a receive, a wait), or lead one of its paths out to an end",
            )
        };
        diags.push(d);
    }
}
