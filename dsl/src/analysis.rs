//! Stage 3: checks on the graph of a process (petgraph): reachability, a path to an end,
//! soundness of parallel splits and joins, loops that never wait, exhaustive decides and
//! amount bands, approval SLAs.
//!
//! Soundness is decided by one pass that labels every node with its *branch context*: the stack
//! of parallel branches (split, branch number) a token at that node belongs to. A split pushes
//! one frame per branch, a join pops one, and every other node passes the context on. The
//! process is sound when each node gets one context only (paths of different branches never
//! meet outside a join), every join receives exactly the branches of one split, and no token
//! reaches a normal end while inside a branch. Each node is visited once, so the check is
//! linear in the size of the graph.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use rust_decimal::Decimal;

use crate::codes;
use crate::diag::{Diagnostic, FileId, Span};
use crate::expr::{BinaryOp, Expr, ExprKind, UnaryOp};
use crate::model::{self, BoundaryEvent, EndKind, Node, NodeKind};

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
                kind: NodeKind::Join { split: String::new(), next: String::new() },
            },
            head,
            synthetic: false,
            arm_exprs: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Next,
    Branch(usize),
    Side,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Frame {
    Branch { split: usize, branch: usize },
    Side { owner: usize },
}

type Context = Vec<Frame>;

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

fn soundness(
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

/// An interval of a numeric variable: `(low, high)` with inclusive flags; `None` = unbounded.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Band {
    low: Option<(Decimal, bool)>,
    high: Option<(Decimal, bool)>,
}

impl Band {
    const ALL: Band = Band { low: None, high: None };

    fn intersect(self, other: Band) -> Band {
        let low = match (self.low, other.low) {
            (None, x) | (x, None) => x,
            (Some(a), Some(b)) => Some(if a.0 > b.0 || (a.0 == b.0 && !a.1) { a } else { b }),
        };
        let high = match (self.high, other.high) {
            (None, x) | (x, None) => x,
            (Some(a), Some(b)) => Some(if a.0 < b.0 || (a.0 == b.0 && !a.1) { a } else { b }),
        };
        Band { low, high }
    }

    fn is_empty(self) -> bool {
        match (self.low, self.high) {
            (Some((l, li)), Some((h, hi))) => l > h || (l == h && !(li && hi)),
            _ => false,
        }
    }

    fn describe(self, var: &str) -> String {
        match (self.low, self.high) {
            (Some((l, true)), Some((h, true))) if l == h => format!("{var} = {l}"),
            (None, None) => format!("every {var}"),
            (low, high) => {
                let mut parts = Vec::new();
                if let Some((l, inc)) = low {
                    parts.push(format!("{var} {} {l}", if inc { ">=" } else { ">" }));
                }
                if let Some((h, inc)) = high {
                    parts.push(format!("{var} {} {h}", if inc { "<=" } else { "<" }));
                }
                parts.join(" and ")
            }
        }
    }
}

fn path_of(e: &Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Name(n) => Some(n.clone()),
        ExprKind::Field { target, field } => Some(format!("{}.{field}", path_of(target)?)),
        _ => None,
    }
}

fn constant(e: &Expr) -> Option<Decimal> {
    match &e.kind {
        ExprKind::Number(d) => Some(*d),
        ExprKind::Unary { op: UnaryOp::Neg, operand } => constant(operand).map(|d| -d),
        _ => None,
    }
}

/// The band a condition selects, if it is a comparison of one variable with constants, an
/// interval (`amount in [10_000..100_000)`) or a `between`, or several of them joined by `and`.
fn band(e: &Expr) -> Option<(String, Band)> {
    match &e.kind {
        ExprKind::Binary { op: BinaryOp::In, left, right } => match &right.kind {
            ExprKind::Range { low, high, low_closed, high_closed } => Some((
                path_of(left)?,
                Band { low: Some((constant(low)?, *low_closed)), high: Some((constant(high)?, *high_closed)) },
            )),
            _ => None,
        },
        ExprKind::Binary { op: BinaryOp::And, left, right } => {
            let (a, ba) = band(left)?;
            let (b, bb) = band(right)?;
            (a == b).then(|| (a, ba.intersect(bb)))
        }
        ExprKind::Binary { op, left, right } => {
            let (var, c, op) = match (path_of(left), constant(right), path_of(right), constant(left)) {
                (Some(v), Some(c), _, _) => (v, c, *op),
                (_, _, Some(v), Some(c)) => (v, c, flip(*op)?),
                _ => return None,
            };
            let band = match op {
                BinaryOp::Lt => Band { low: None, high: Some((c, false)) },
                BinaryOp::Le => Band { low: None, high: Some((c, true)) },
                BinaryOp::Gt => Band { low: Some((c, false)), high: None },
                BinaryOp::Ge => Band { low: Some((c, true)), high: None },
                BinaryOp::Eq => Band { low: Some((c, true)), high: Some((c, true)) },
                _ => return None,
            };
            Some((var, band))
        }
        ExprKind::Between { value, low, high } => {
            Some((path_of(value)?, Band { low: Some((constant(low)?, true)), high: Some((constant(high)?, true)) }))
        }
        _ => None,
    }
}

fn flip(op: BinaryOp) -> Option<BinaryOp> {
    Some(match op {
        BinaryOp::Lt => BinaryOp::Gt,
        BinaryOp::Le => BinaryOp::Ge,
        BinaryOp::Gt => BinaryOp::Lt,
        BinaryOp::Ge => BinaryOp::Le,
        BinaryOp::Eq => BinaryOp::Eq,
        _ => return None,
    })
}

/// The parts of the number line no band covers, in order.
fn gaps(bands: &[Band]) -> Vec<Band> {
    let mut sorted: Vec<Band> = bands.iter().copied().filter(|b| !b.is_empty()).collect();
    // Sort by lower bound: unbounded first, then value, inclusive before exclusive.
    sorted.sort_by(|a, b| low_cmp(a.low, b.low));
    let mut out = Vec::new();
    // `covered` is the high end of the union so far; None before the first band.
    let mut covered: Option<Option<(Decimal, bool)>> = None;
    for b in sorted {
        match covered {
            None => {
                if b.low.is_some() {
                    out.push(Band { low: None, high: b.low.map(|(v, inc)| (v, !inc)) });
                }
                covered = Some(b.high);
            }
            Some(None) => break,
            Some(Some((h, hi))) => {
                if let Some((l, li)) = b.low {
                    let gap = Band { low: Some((h, !hi)), high: Some((l, !li)) };
                    if !gap.is_empty() {
                        out.push(gap);
                    }
                }
                covered = Some(b.high.map(|(bh, bhi)| if bh > h || (bh == h && bhi) { (bh, bhi) } else { (h, hi) }));
            }
        }
    }
    match covered {
        None => out.push(Band::ALL),
        Some(Some((h, hi))) => out.push(Band { low: Some((h, !hi)), high: None }),
        Some(None) => {}
    }
    out
}

fn is_literal_true(e: &Expr) -> bool {
    matches!(e.kind, ExprKind::Bool(true))
}

/// The variable an arm negates (`not approve`, `not(approve)`).
fn negated_path(e: &Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Unary { op: UnaryOp::Not, operand } => path_of(operand),
        ExprKind::Call { function, args } if function == "not" && args.len() == 1 => path_of(&args[0]),
        _ => None,
    }
}

/// A variable that some arm tests and another negates (`when approve` and `when not approve`),
/// found in one pass over the arms.
fn tested_and_negated(arms: &[Expr]) -> Option<String> {
    let tested: BTreeSet<String> = arms.iter().filter_map(path_of).collect();
    arms.iter().filter_map(negated_path).find(|p| tested.contains(p))
}

/// True if the variable at the root of `path` is declared optional (`T?`): it may be null.
fn is_nullable(path: &str, optional: &BTreeMap<String, bool>) -> bool {
    let root = path.split('.').next().unwrap_or_default();
    optional.get(root).copied().unwrap_or(false)
}

/// Pairs of arms (later, earlier) whose bands overlap: at most one per later arm, and at least
/// one whenever some bands overlap. Sorting by lower bound makes it O(n log n), not quadratic.
fn overlaps(bands: &[Band]) -> Vec<(usize, usize, Band)> {
    let mut order: Vec<usize> = (0..bands.len()).filter(|&i| !bands[i].is_empty()).collect();
    order.sort_by(|&a, &b| low_cmp(bands[a].low, bands[b].low).then(a.cmp(&b)));
    let mut found: BTreeMap<usize, (usize, Band)> = BTreeMap::new();
    // The band seen so far that reaches highest: any later band that overlaps one of those seen
    // overlaps this one too.
    let mut reach: Option<usize> = None;
    for i in order {
        if let Some(r) = reach {
            let both = bands[i].intersect(bands[r]);
            if !both.is_empty() {
                let (later, earlier) = if i > r { (i, r) } else { (r, i) };
                found.entry(later).or_insert((earlier, both));
            }
            if high_cmp(bands[i].high, bands[r].high) == std::cmp::Ordering::Greater {
                reach = Some(i);
            }
        } else {
            reach = Some(i);
        }
    }
    found.into_iter().map(|(later, (earlier, both))| (later, earlier, both)).collect()
}

/// Orders lower bounds: unbounded first, then by value, inclusive before exclusive.
fn low_cmp(a: Option<(Decimal, bool)>, b: Option<(Decimal, bool)>) -> std::cmp::Ordering {
    match (a, b) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, _) => std::cmp::Ordering::Less,
        (_, None) => std::cmp::Ordering::Greater,
        (Some((x, xi)), Some((y, yi))) => x.cmp(&y).then(yi.cmp(&xi)),
    }
}

/// Orders upper bounds: by value, exclusive before inclusive, unbounded last.
fn high_cmp(a: Option<(Decimal, bool)>, b: Option<(Decimal, bool)>) -> std::cmp::Ordering {
    match (a, b) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, _) => std::cmp::Ordering::Greater,
        (_, None) => std::cmp::Ordering::Less,
        (Some((x, xi)), Some((y, yi))) => x.cmp(&y).then(xi.cmp(&yi)),
    }
}

fn decide_checks(file: FileId, n: &LNode, optional: &BTreeMap<String, bool>, diags: &mut Vec<Diagnostic>) {
    let NodeKind::Decide { otherwise, .. } = &n.node.kind else { return };
    let arms = &n.arm_exprs;
    let bands: Option<Vec<(String, Band)>> = arms.iter().map(band).collect();
    let var = bands.as_ref().and_then(|b| {
        let first = &b.first()?.0;
        b.iter().all(|(v, _)| v == first).then(|| first.clone())
    });
    let mut exhaustive = arms.iter().any(is_literal_true);
    // `when approve` and `when not approve` cover every value but null.
    let negated = tested_and_negated(arms);
    let mut null_gap = None;
    let tests_null = |path: &str| {
        arms.iter().any(|a| match &a.kind {
            ExprKind::Binary { op: BinaryOp::Eq, left, right } => {
                (path_of(left).as_deref() == Some(path) && matches!(right.kind, ExprKind::Null))
                    || (path_of(right).as_deref() == Some(path) && matches!(left.kind, ExprKind::Null))
            }
            _ => false,
        })
    };
    if let Some(path) = negated {
        if is_nullable(&path, optional) && !tests_null(&path) {
            null_gap = Some(path);
        } else {
            exhaustive = true;
        }
    }
    if let (Some(bands), Some(var)) = (&bands, &var) {
        let only: Vec<Band> = bands.iter().map(|(_, b)| *b).collect();
        if arms.len() >= 2 {
            for (k, m, both) in overlaps(&only) {
                diags.push(
                    Diagnostic::warning(
                        codes::BAND_OVERLAP,
                        file,
                        arms[k].span,
                        format!("amount bands of decide `{}` overlap", n.node.name),
                    )
                    .with_label(format!("for {} an earlier arm matches first", both.describe(var)))
                    .with_note(arms[m].span, "the earlier arm")
                    .with_help(
                        "make the bands meet without overlapping, as in `amount <= 10_000` and `amount > 10_000`",
                    ),
                );
            }
        }
        let holes = gaps(&only);
        let nullable = is_nullable(var, optional);
        for hole in &holes {
            if hole.low.is_some() && hole.high.is_some() && arms.len() >= 2 {
                diags.push(
                    Diagnostic::warning(codes::BAND_GAP, file, n.head, format!("amount bands of decide `{}` leave a gap", n.node.name))
                        .with_label(format!("no band covers {}", hole.describe(var)))
                        .with_help("make each band start where the previous one ends, as in `amount <= 10_000` and `amount > 10_000`"),
                );
            }
        }
        if holes.is_empty() && !nullable {
            exhaustive = true;
        }
        if otherwise.is_none() && !exhaustive {
            let what = holes.iter().map(|h| h.describe(var)).collect::<Vec<_>>().join(", ");
            let what = if holes.is_empty() { format!("{var} is null") } else { what };
            diags.push(
                Diagnostic::error(
                    codes::NOT_EXHAUSTIVE,
                    file,
                    n.head,
                    format!("decide `{}` has no `otherwise`, and no arm matches when {what}", n.node.name),
                )
                .with_label("instances could get stuck here")
                .with_help("add `otherwise -> node`, or make the bands cover every value"),
            );
        }
        return;
    }
    if let (None, false, Some(path)) = (otherwise, exhaustive, &null_gap) {
        diags.push(
            Diagnostic::error(
                codes::NOT_EXHAUSTIVE,
                file,
                n.head,
                format!("decide `{}` has no `otherwise`, and no arm matches when {path} is null", n.node.name),
            )
            .with_label("instances could get stuck here")
            .with_help(format!(
                "`{path}` is optional: add `otherwise -> node`, or an arm `when {path} = null -> node`"
            )),
        );
        return;
    }
    if otherwise.is_none() && !exhaustive {
        diags.push(
            Diagnostic::error(
                codes::NOT_EXHAUSTIVE,
                file,
                n.head,
                format!("decide `{}` has no `otherwise`, and its conditions may all be false", n.node.name),
            )
            .with_label("instances could get stuck here")
            .with_help("add `otherwise -> node` as the last arm"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(low: Option<(i64, bool)>, high: Option<(i64, bool)>) -> Band {
        Band { low: low.map(|(v, i)| (Decimal::from(v), i)), high: high.map(|(v, i)| (Decimal::from(v), i)) }
    }

    #[test]
    fn gaps_find_a_missing_boundary_point() {
        let g = gaps(&[b(None, Some((10, false))), b(Some((10, false)), None)]);
        assert_eq!(g, vec![b(Some((10, true)), Some((10, true)))]);
        assert_eq!(g[0].describe("amount"), "amount = 10");
    }

    #[test]
    fn bands_that_meet_leave_no_gap() {
        assert!(
            gaps(&[b(None, Some((10, true))), b(Some((10, false)), Some((100, true))), b(Some((100, false)), None)])
                .is_empty()
        );
    }

    #[test]
    fn unbounded_ends_are_gaps_too() {
        let g = gaps(&[b(Some((0, true)), Some((10, true)))]);
        assert_eq!(g, vec![b(None, Some((0, false))), b(Some((10, false)), None)]);
        assert_eq!(gaps(&[]), vec![Band::ALL]);
    }
}
