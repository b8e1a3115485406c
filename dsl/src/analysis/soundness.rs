//! Soundness of parallel splits and joins.
//!
//! Soundness is decided by one pass that labels every node with its *branch context*: the stack
//! of parallel branches (split, branch number) a token at that node belongs to. A split pushes
//! one frame per branch, a join pops one, and every other node passes the context on. The
//! process is sound when each node gets one context only (paths of different branches never
//! meet outside a join), every join receives exactly the branches of one split, and no token
//! reaches a normal end while inside a branch. Each node is visited once, so the check is
//! linear in the size of the graph.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use super::{Flow, LNode};
use crate::codes;
use crate::diag::{Diagnostic, FileId};
use crate::model::{EndKind, NodeKind};

/// One level of a branch context: a branch of a split, or a side path started by a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Frame {
    Branch { split: usize, branch: usize },
    Side { owner: usize },
}

/// The frames a token at a node is inside, outermost first.
type Context = Vec<Frame>;

/// Labels every node with its branch context and reports where branches meet outside a join;
/// pairs each join of a sound process with its split.
pub(super) fn soundness(
    file: FileId,
    nodes: &mut [LNode],
    graph: &DiGraph<usize, Flow>,
    starts: &[usize],
    diags: &mut Vec<Diagnostic>,
) {
    let n = nodes.len();
    let mut ctx: Vec<Option<Context>> = vec![None; n];
    // For each join: (predecessor, context the token arrives with).
    let mut arrivals: BTreeMap<usize, Vec<(usize, Context)>> = BTreeMap::new();
    let mut conflicts: BTreeSet<usize> = BTreeSet::new();
    let mut unsynced: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    let mut queue = VecDeque::new();
    for &s in starts {
        ctx[s] = Some(Vec::new());
        queue.push_back(s);
    }
    while let Some(i) = queue.pop_front() {
        let here = ctx[i].clone().unwrap_or_default();
        if let NodeKind::End { side_path, .. } = &mut nodes[i].node.kind {
            *side_path = here.iter().any(|f| matches!(f, Frame::Side { .. }));
        }
        if matches!(nodes[i].node.kind, NodeKind::End { .. }) {
            continue;
        }
        let is_join = matches!(nodes[i].node.kind, NodeKind::Join { .. });
        for edge in graph.edges(NodeIndex::new(i)) {
            let j = edge.target().index();
            let mut next = here.clone();
            match edge.weight() {
                Flow::Branch(b) => next.push(Frame::Branch { split: i, branch: *b }),
                Flow::Side => next.push(Frame::Side { owner: i }),
                Flow::Next => {
                    if is_join && matches!(next.last(), Some(Frame::Branch { .. })) {
                        next.pop();
                    }
                }
            }
            // Every arrival at a normal end is judged, not only the first one to label it: an
            // end shared by a branch and the flow after the join hides the branch otherwise.
            // Terminate and error ends stop every branch; a side path may end on its own.
            if let NodeKind::End { end: EndKind::Normal, .. } = &nodes[j].node.kind
                && let Some(Frame::Branch { split, .. }) = next.last()
            {
                unsynced.entry(*split).or_default().insert(j);
            }
            if matches!(nodes[j].node.kind, NodeKind::Join { .. }) {
                arrivals.entry(j).or_default().push((i, next.clone()));
                if ctx[j].is_none() {
                    ctx[j] = Some(next);
                    queue.push_back(j);
                }
                continue;
            }
            match &ctx[j] {
                None => {
                    ctx[j] = Some(next);
                    queue.push_back(j);
                }
                Some(existing) if *existing != next => {
                    // Ends reached from inside branches are reported once, per split, below.
                    let involves_side = existing.iter().chain(&next).any(|f| matches!(f, Frame::Side { .. }));
                    if involves_side || !matches!(nodes[j].node.kind, NodeKind::End { .. }) {
                        conflicts.insert(j);
                    }
                }
                Some(_) => {}
            }
        }
    }
    let name = |i: usize| nodes[i].node.name.clone();
    for j in conflicts {
        let side = side_reaching(&ctx, graph, j);
        let d = match side {
            Some(owner) => {
                let d = Diagnostic::error(
                codes::BRANCH_ESCAPE,
                file,
                nodes[j].head,
                format!("the path of a non-interrupting event of `{}` leads back into the main flow at `{}`", name(owner), name(j)),
            )
            .with_label("reached by the main flow and by a side path")
            .with_help("a side path runs beside the main flow, which goes on waiting: end it with its own `end`");
                if owner == j { d } else { d.with_note(nodes[owner].head, "the side path starts at an `also after` or `every` of this node") }
            }
            None => Diagnostic::error(codes::BRANCH_ESCAPE, file, nodes[j].head, format!("paths from different parallel branches meet at `{}` outside a join", name(j)))
                .with_label("reached from more than one branch")
                .with_help("a node inside a parallel branch may only be reached from that branch: lead the branches into a `join` first, or give each branch its own nodes"),
        };
        diags.push(d);
    }
    for (split, ends) in unsynced {
        let mut d = Diagnostic::error(
            codes::UNSYNCHRONISED,
            file,
            nodes[split].head,
            format!("the branches of parallel `{}` are never joined", name(split)),
        )
        .with_label("a branch of this split reaches an end while the others still run")
        .with_help("lead every branch into one `join name -> next`, and end the flow after the join");
        for e in ends {
            d = d.with_note(nodes[e].head, format!("a branch of `{}` ends here", name(split)));
        }
        diags.push(d);
    }
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    let mut searched = 0usize;
    for (j, incoming) in &arrivals {
        let j = *j;
        let tops: BTreeSet<Option<Frame>> = incoming.iter().map(|(_, c)| c.last().copied()).collect();
        let splits: BTreeSet<usize> = tops
            .iter()
            .filter_map(|f| if let Some(Frame::Branch { split, .. }) = f { Some(*split) } else { None })
            .collect();
        let parents: BTreeSet<&[Frame]> = incoming.iter().map(|(_, c)| &c[..c.len().saturating_sub(1)]).collect();
        if splits.is_empty() {
            let mut d = Diagnostic::error(
                codes::JOIN_DEADLOCK,
                file,
                nodes[j].head,
                format!("join `{}` waits for parallel branches that never come", name(j)),
            );
            // Past the first few hundred, the diagnostics are not listed anyway: spare the search.
            searched += 1;
            let feeding = if searched <= 1_000 { decide_feeding(nodes, graph, j, incoming) } else { None };
            match feeding {
                Some(dec) => {
                    d = d
                        .with_label(format!("its inputs are alternatives of {} `{}`: only one of them ever arrives", nodes[dec].node.kind.word(), name(dec)))
                        .with_note(nodes[dec].head, "only one path out of this node is taken")
                        .with_help("a join synchronises the branches of a `parallel` split; to merge alternatives, lead them straight to the next node");
                }
                None => {
                    d = d
                        .with_label("no parallel split leads here, so a second token never arrives")
                        .with_help("a join synchronises the branches of a `parallel` split; to merge alternatives, lead them straight to the next node");
                }
            }
            diags.push(d);
            continue;
        }
        if splits.len() > 1 || tops.iter().any(|t| !matches!(t, Some(Frame::Branch { .. }))) || parents.len() > 1 {
            let names: Vec<String> = splits.iter().map(|s| format!("`{}`", name(*s))).collect();
            diags.push(
                Diagnostic::error(
                    codes::JOIN_DEADLOCK,
                    file,
                    nodes[j].head,
                    format!("join `{}` mixes paths of different splits", name(j)),
                )
                .with_label(format!("inputs come from {} and from outside them", names.join(" and ")))
                .with_help("give each parallel split its own join, nested inside the branch it belongs to"),
            );
            continue;
        }
        let split = *splits.iter().next().expect("one split");
        let arrived: BTreeSet<usize> = incoming
            .iter()
            .filter_map(|(_, c)| if let Some(Frame::Branch { branch, .. }) = c.last() { Some(*branch) } else { None })
            .collect();
        let NodeKind::Split { branches, .. } = &nodes[split].node.kind else { continue };
        let missing: Vec<String> =
            (0..branches.len()).filter(|b| !arrived.contains(b)).map(|b| format!("`-> {}`", branches[b])).collect();
        if !missing.is_empty() {
            diags.push(
                Diagnostic::error(
                    codes::JOIN_DEADLOCK,
                    file,
                    nodes[j].head,
                    format!("join `{}` waits for a branch of `{}` that never arrives", name(j), name(split)),
                )
                .with_label(format!("branch {} never leads here", missing.join(", ")))
                .with_note(nodes[split].head, "the split starts here")
                .with_help("lead every branch of the split into this join"),
            );
            continue;
        }
        pairs.push((split, j));
    }
    // A split whose branches all end in terminate/error ends needs no join; one with a join gets it.
    let mut joined: BTreeMap<usize, usize> = BTreeMap::new();
    for (split, j) in pairs {
        if let Some(other) = joined.insert(split, j) {
            diags.push(
                Diagnostic::error(
                    codes::JOIN_DEADLOCK,
                    file,
                    nodes[j].head,
                    format!("split `{}` is joined twice", name(split)),
                )
                .with_label("a second join for the same split")
                .with_note(nodes[other].head, "the first join")
                .with_help("join the branches of a split once"),
            );
        }
    }
    for (split, j) in joined {
        let join_name = nodes[j].node.name.clone();
        let split_name = nodes[split].node.name.clone();
        if let NodeKind::Split { join, .. } = &mut nodes[split].node.kind {
            *join = join_name;
        }
        if let NodeKind::Join { split: s, .. } = &mut nodes[j].node.kind {
            *s = split_name;
        }
    }
}

/// The owner of a side path that reaches node `j`, if one does.
fn side_reaching(ctx: &[Option<Context>], graph: &DiGraph<usize, Flow>, j: usize) -> Option<usize> {
    let from_preds = graph
        .neighbors_directed(NodeIndex::new(j), petgraph::Direction::Incoming)
        .filter_map(|p| ctx[p.index()].as_ref());
    from_preds
        .chain(ctx[j].as_ref())
        .flatten()
        .find_map(|f| if let Frame::Side { owner } = f { Some(*owner) } else { None })
}

/// The decide (or wait first) whose different arms lead to different inputs of join `j`, looked
/// for among the nearest nodes before the join. The searches have a budget, so that a process
/// with thousands of such joins is still checked in linear time; past it the diagnostic says
/// less, not something wrong.
fn decide_feeding(
    nodes: &[LNode],
    graph: &DiGraph<usize, Flow>,
    j: usize,
    incoming: &[(usize, Context)],
) -> Option<usize> {
    const BUDGET: usize = 128;
    const CANDIDATES: usize = 3;
    let preds: BTreeSet<usize> = incoming.iter().map(|(p, _)| *p).collect();
    let candidates: Vec<usize> = near(graph, j, petgraph::Direction::Incoming, BUDGET)
        .into_iter()
        .filter(|&d| matches!(nodes[d].node.kind, NodeKind::Decide { .. } | NodeKind::First { .. }))
        .take(CANDIDATES)
        .collect();
    for d in candidates {
        let mut reached_by_arm: Vec<BTreeSet<usize>> = Vec::new();
        for edge in graph.edges(NodeIndex::new(d)) {
            let t = edge.target().index();
            let seen: BTreeSet<usize> = near(graph, t, petgraph::Direction::Outgoing, BUDGET).into_iter().collect();
            let mut hit: BTreeSet<usize> = preds.iter().copied().filter(|p| seen.contains(p)).collect();
            if t == j {
                hit.insert(d);
            }
            reached_by_arm.push(hit);
        }
        let distinct: BTreeSet<usize> = reached_by_arm.iter().flatten().copied().collect();
        if reached_by_arm.iter().filter(|h| !h.is_empty()).count() >= 2 && distinct.len() >= 2 {
            return Some(d);
        }
    }
    None
}

/// The first `budget` nodes a breadth-first walk from `from` meets (`from` included), nearest first.
fn near(graph: &DiGraph<usize, Flow>, from: usize, dir: petgraph::Direction, budget: usize) -> Vec<usize> {
    let mut order = vec![from];
    let mut seen: BTreeSet<usize> = BTreeSet::from([from]);
    let mut next = 0;
    while next < order.len() && order.len() < budget {
        let n = order[next];
        next += 1;
        for m in graph.neighbors_directed(NodeIndex::new(n), dir) {
            if order.len() < budget && seen.insert(m.index()) {
                order.push(m.index());
            }
        }
    }
    order
}
