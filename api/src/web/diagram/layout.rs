//! Where a diagram's steps and flows go: a layered drawing, read from top to bottom.
//!
//! Each flow that does not loop back goes down: a step sits one layer below the lowest step that
//! leads to it. Flows across several layers into one step share a trunk: a point in each layer
//! between, placed like a narrow step, so that they run between the boxes instead of through
//! them, joining the trunk where they leave their own step (many steps that may each end the
//! process draw one line into its end, not one each). Within a layer
//! the steps are ordered near the steps they connect to (sweeps of barycentres, keeping the order
//! with the fewest crossings), then moved sideways towards those steps as far as their neighbours
//! allow. A flow that loops back leaves its step downwards, turns in the gap below it, runs up a
//! lane of its own on the right of the drawing and enters its target from above.
//!
//! Pure: names and flows in, coordinates out; the SVG is drawn by the caller.

use std::collections::{BTreeMap, BTreeSet};

/// A step's box.
pub(super) const BOX_W: i64 = 150;
pub(super) const BOX_H: i64 = 44;
/// Between two boxes side by side.
const GAP_X: i64 = 32;
/// Between a box and a flow passing beside it, and between two such flows.
const GAP_PASSING: i64 = 14;
/// Between two layers, where the flows turn.
pub(super) const LAYER_GAP: i64 = 40;
pub(super) const MARGIN: i64 = 12;
/// Between two lanes of flows that loop back, and between the drawing and the first.
const LANE_GAP: i64 = 10;
/// Ordering sweeps; the order with the fewest crossings seen is kept.
const SWEEPS: usize = 8;
/// Passes that move the steps of each layer towards the steps they connect to.
const ALIGN_PASSES: usize = 8;

/// The drawing: a box's top-left corner per step, the flows' routes, the size.
#[derive(Debug)]
pub(super) struct Drawing {
    pub boxes: Vec<(i64, i64)>,
    pub flows: Vec<Route>,
    pub width: i64,
    pub height: i64,
}

/// How a line of the drawing goes: the points it passes, in order.
#[derive(Debug)]
pub(super) struct Route {
    /// The flows it carries (indexes of the edges given): one, or a trunk's several.
    pub edges: Vec<usize>,
    pub points: Vec<(i64, i64)>,
    /// It loops back (drawn straight, along its lane).
    pub back: bool,
    /// It ends at a step (with an arrowhead), rather than joining a trunk.
    pub arrow: bool,
}

impl Route {
    /// The SVG path: straight where the route goes straight on (through a layer, along a lane),
    /// curved between layers, leaving and entering vertically.
    pub fn path(&self) -> String {
        let mut points = self.points.iter();
        let Some(&(x, y)) = points.next() else { return String::new() };
        let mut d = format!("M {x} {y}");
        let mut from = (x, y);
        for &(x, y) in points {
            if self.back || from.0 == x {
                d.push_str(&format!(" L {x} {y}"));
            } else {
                let middle = (from.1 + y) / 2;
                d.push_str(&format!(" C {} {middle}, {x} {middle}, {x} {y}", from.0));
            }
            from = (x, y);
        }
        d
    }
}

/// Lays out `nodes` steps (`starts` first in reading order) joined by `edges` (from, to).
pub(super) fn draw(nodes: usize, starts: &[usize], edges: &[(usize, usize)]) -> Drawing {
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); nodes];
    for (e, &(from, _)) in edges.iter().enumerate() {
        out[from].push(e);
    }
    let (back, discovered) = loops_back(nodes, starts, edges, &out);
    let rank = ranks(nodes, edges, &back);

    // Items: the steps, then the points of the trunks: one per layer crossed, shared by the
    // flows into the same step. Past a budget (a process of thousands of steps), a long flow is
    // drawn straight to its step instead, so that the drawing stays linear in size.
    let budget = 4 * nodes + 2_000;
    let mut item_rank: Vec<usize> = rank.clone();
    let mut key: Vec<f64> = discovered.iter().map(|&d| d as f64).collect();
    let mut trunk_point: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    let mut chains: Vec<Vec<usize>> = vec![Vec::new(); edges.len()];
    for (e, &(from, to)) in edges.iter().enumerate() {
        if back[e] {
            continue;
        }
        let missing = (rank[from] + 1..rank[to]).filter(|r| !trunk_point.contains_key(&(to, *r))).count();
        if item_rank.len() - nodes + missing > budget {
            chains[e] = vec![from, to];
            continue;
        }
        let mut chain = vec![from];
        for r in rank[from] + 1..rank[to] {
            let point = *trunk_point.entry((to, r)).or_insert_with(|| {
                item_rank.push(r);
                key.push(discovered[from] as f64 + 0.5);
                item_rank.len() - 1
            });
            chain.push(point);
        }
        chain.push(to);
        chains[e] = chain;
    }
    let items = item_rank.len();
    let mut above: Vec<Vec<usize>> = vec![Vec::new(); items];
    let mut below: Vec<Vec<usize>> = vec![Vec::new(); items];
    let mut linked: BTreeSet<(usize, usize)> = BTreeSet::new();
    for chain in &chains {
        for pair in chain.windows(2) {
            // Between adjacent layers only (a flow drawn straight past the budget is not ordered),
            // each link once (flows into one step share their trunk's links).
            if item_rank[pair[1]] == item_rank[pair[0]] + 1 && linked.insert((pair[0], pair[1])) {
                below[pair[0]].push(pair[1]);
                above[pair[1]].push(pair[0]);
            }
        }
    }
    let layer_count = item_rank.iter().max().map_or(0, |r| r + 1);
    let mut layers: Vec<Vec<usize>> = vec![Vec::new(); layer_count];
    for item in 0..items {
        layers[item_rank[item]].push(item);
    }
    for layer in &mut layers {
        layer.sort_by(|&a, &b| key[a].total_cmp(&key[b]).then(a.cmp(&b)));
    }
    let layers = ordered(layers, &above, &below, items);

    // Sideways: centres, packed, then drawn towards what each item connects to.
    let width_of = |item: usize| if item < nodes { BOX_W } else { 0 };
    let separation = |a: usize, b: usize| {
        let gap = if a < nodes && b < nodes { GAP_X } else { GAP_PASSING };
        (width_of(a) + width_of(b)) as f64 / 2.0 + gap as f64
    };
    let mut x = vec![0.0f64; items];
    for layer in &layers {
        for pair in layer.windows(2) {
            x[pair[1]] = x[pair[0]] + separation(pair[0], pair[1]);
        }
    }
    for pass in 0..ALIGN_PASSES {
        let downwards = pass % 2 == 0;
        let order: Vec<usize> = if downwards { (0..layer_count).collect() } else { (0..layer_count).rev().collect() };
        for r in order {
            let layer = &layers[r];
            let desired: Vec<f64> = layer
                .iter()
                .map(|&item| {
                    let near = if downwards { &above[item] } else { &below[item] };
                    if near.is_empty() { x[item] } else { near.iter().map(|&n| x[n]).sum::<f64>() / near.len() as f64 }
                })
                .collect();
            // As near as the order allows, pushed from the left and from the right, then halfway.
            let mut left = desired.clone();
            for i in 1..layer.len() {
                left[i] = left[i].max(left[i - 1] + separation(layer[i - 1], layer[i]));
            }
            let mut right = desired;
            for i in (0..layer.len().saturating_sub(1)).rev() {
                right[i] = right[i].min(right[i + 1] - separation(layer[i], layer[i + 1]));
            }
            for (i, &item) in layer.iter().enumerate() {
                x[item] = (left[i] + right[i]) / 2.0;
            }
        }
    }
    // A trunk's points on one line where their neighbours leave room: a straight run instead of
    // a wobble.
    let mut slot = vec![0usize; items];
    for layer in &layers {
        for (i, &item) in layer.iter().enumerate() {
            slot[item] = i;
        }
    }
    let mut trunks: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (&(to, _), &point) in &trunk_point {
        trunks.entry(to).or_default().push(point);
    }
    for points in trunks.values().filter(|p| p.len() > 1) {
        let mut line: Vec<f64> = points.iter().map(|&p| x[p]).collect();
        line.sort_by(f64::total_cmp);
        let straight = line[line.len() / 2];
        let fits = points.iter().all(|&p| {
            let layer = &layers[item_rank[p]];
            let i = slot[p];
            let left_ok = i == 0 || straight >= x[layer[i - 1]] + separation(layer[i - 1], p);
            let right_ok = i + 1 == layer.len() || straight <= x[layer[i + 1]] - separation(p, layer[i + 1]);
            left_ok && right_ok
        });
        if fits {
            for &p in points {
                x[p] = straight;
            }
        }
    }
    let leftmost = (0..items).map(|i| x[i] - width_of(i) as f64 / 2.0).fold(f64::INFINITY, f64::min);
    let shift = if leftmost.is_finite() { MARGIN as f64 - leftmost } else { 0.0 };
    let centre: Vec<i64> = x.iter().map(|v| (v + shift).round() as i64).collect();
    let content_right = (0..items).map(|i| centre[i] + width_of(i) / 2).max().unwrap_or(MARGIN);

    // Down the page; room above the first layer when a flow loops back to it, below the last
    // when one leaves from it.
    let back_to_top = edges.iter().enumerate().any(|(e, &(_, to))| back[e] && rank[to] == 0);
    let back_from_bottom = edges.iter().enumerate().any(|(e, &(from, _))| back[e] && rank[from] + 1 == layer_count);
    let top_of = |r: usize| MARGIN + if back_to_top { LAYER_GAP } else { 0 } + r as i64 * (BOX_H + LAYER_GAP);
    let boxes: Vec<(i64, i64)> = (0..nodes).map(|n| (centre[n] - BOX_W / 2, top_of(rank[n]))).collect();

    // Lanes on the right for the flows that loop back, one each.
    let mut lane: Vec<Option<i64>> = vec![None; edges.len()];
    let mut lanes = 0;
    for e in (0..edges.len()).filter(|&e| back[e]) {
        lanes += 1;
        lane[e] = Some(content_right + LANE_GAP * lanes);
    }
    // Where each flow leaves its box and each line enters one: spread along the bottom and the
    // top, in the order of where they head or come from, so that lines out of one step do not
    // cross. A trunk enters its step once, for all the flows it carries.
    let next_x = |e: usize| match lane[e] {
        Some(lane) => lane,
        None => centre[chains[e][1]],
    };
    let mut leaves = vec![0i64; edges.len()];
    for (node, flows) in out.iter().enumerate() {
        let heads: Vec<(usize, i64)> = flows.iter().map(|&e| (e, next_x(e))).collect();
        for (e, at) in spread(&heads, centre[node]) {
            leaves[e] = at;
        }
    }
    // Lines into a step: each flow from the layer above, drawn straight or looping back, by its
    // edge; a trunk by its step (keys past the edges).
    let trunk_key = |to: usize| edges.len() + to;
    let mut coming: Vec<Vec<(usize, i64)>> = vec![Vec::new(); nodes];
    for (e, &(_, to)) in edges.iter().enumerate() {
        let chain = &chains[e];
        let from_x = match lane[e] {
            Some(lane) => lane,
            None if chain.len() > 2 => continue,
            None => centre[chain[0]],
        };
        coming[to].push((e, from_x));
    }
    for (&to, points) in &trunks {
        let last = points.iter().copied().max_by_key(|&p| item_rank[p]).unwrap_or(to);
        coming[to].push((trunk_key(to), centre[last]));
    }
    let mut enters: BTreeMap<usize, i64> = BTreeMap::new();
    for (node, lines) in coming.iter().enumerate() {
        enters.extend(spread(lines, centre[node]));
    }

    let mut flows = Vec::with_capacity(edges.len());
    let mut turning = 0;
    for (e, &(from, to)) in edges.iter().enumerate() {
        let bottom = top_of(rank[from]) + BOX_H;
        let top = top_of(rank[to]);
        let chain = &chains[e];
        let route = match lane[e] {
            Some(lane) => {
                // Turns staggered in the gaps, so that two lanes' turns stay apart.
                let turn = 12 + (turning % 5) * 4;
                turning += 1;
                let enter = enters[&e];
                let points = vec![
                    (leaves[e], bottom),
                    (leaves[e], bottom + turn),
                    (lane, bottom + turn),
                    (lane, top - (LAYER_GAP - turn)),
                    (enter, top - (LAYER_GAP - turn)),
                    (enter, top),
                ];
                Route { edges: vec![e], points, back: true, arrow: true }
            }
            // Onto its step's trunk, at the trunk's point in the next layer.
            None if chain.len() > 2 => {
                let joined = (centre[chain[1]], top_of(item_rank[chain[1]]));
                Route { edges: vec![e], points: vec![(leaves[e], bottom), joined], back: false, arrow: false }
            }
            None => {
                Route { edges: vec![e], points: vec![(leaves[e], bottom), (enters[&e], top)], back: false, arrow: true }
            }
        };
        flows.push(route);
    }
    for (&to, points) in &trunks {
        let mut points = points.clone();
        points.sort_by_key(|&p| item_rank[p]);
        let mut line = Vec::with_capacity(2 * points.len() + 1);
        for &p in &points {
            let y = top_of(item_rank[p]);
            line.push((centre[p], y));
            line.push((centre[p], y + BOX_H));
        }
        line.push((enters[&trunk_key(to)], top_of(rank[to])));
        let carried: Vec<usize> = (0..edges.len()).filter(|&e| edges[e].1 == to && chains[e].len() > 2).collect();
        flows.push(Route { edges: carried, points: line, back: false, arrow: true });
    }
    let width = content_right.max(lane.iter().flatten().copied().max().unwrap_or(0)) + MARGIN;
    let height = if layer_count == 0 {
        2 * MARGIN
    } else {
        top_of(layer_count - 1) + BOX_H + MARGIN + if back_from_bottom { LAYER_GAP } else { 0 }
    };
    Drawing { boxes, flows, width, height }
}

/// The flows that loop back (to a step on the path that led to them, found walking from the
/// starts in reading order), and the order the walk reached each step in.
fn loops_back(nodes: usize, starts: &[usize], edges: &[(usize, usize)], out: &[Vec<usize>]) -> (Vec<bool>, Vec<usize>) {
    const NEW: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let mut back = vec![false; edges.len()];
    let mut state = vec![NEW; nodes];
    let mut discovered = vec![0; nodes];
    let mut reached = 0;
    for root in starts.iter().copied().chain(0..nodes) {
        if state[root] != NEW {
            continue;
        }
        state[root] = ON_PATH;
        discovered[root] = reached;
        reached += 1;
        let mut path = vec![(root, 0usize)];
        while let Some(top) = path.last_mut() {
            let (node, next) = *top;
            let Some(&e) = out[node].get(next) else {
                state[node] = DONE;
                path.pop();
                continue;
            };
            top.1 += 1;
            let to = edges[e].1;
            match state[to] {
                NEW => {
                    state[to] = ON_PATH;
                    discovered[to] = reached;
                    reached += 1;
                    path.push((to, 0));
                }
                ON_PATH => back[e] = true,
                _ => {}
            }
        }
    }
    (back, discovered)
}

/// Each step's layer: one below the lowest step that leads to it by a flow that does not loop
/// back (the longest such path from a step nothing leads to).
fn ranks(nodes: usize, edges: &[(usize, usize)], back: &[bool]) -> Vec<usize> {
    let mut waiting = vec![0usize; nodes];
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); nodes];
    for (e, &(from, to)) in edges.iter().enumerate() {
        if !back[e] {
            waiting[to] += 1;
            out[from].push(to);
        }
    }
    let mut rank = vec![0usize; nodes];
    let mut ready: std::collections::VecDeque<usize> = (0..nodes).filter(|&n| waiting[n] == 0).collect();
    while let Some(node) = ready.pop_front() {
        for &to in &out[node] {
            rank[to] = rank[to].max(rank[node] + 1);
            waiting[to] -= 1;
            if waiting[to] == 0 {
                ready.push_back(to);
            }
        }
    }
    rank
}

/// The layers reordered by sweeps of barycentres, down and up; the order with the fewest
/// crossings wins, the first of equals.
fn ordered(mut layers: Vec<Vec<usize>>, above: &[Vec<usize>], below: &[Vec<usize>], items: usize) -> Vec<Vec<usize>> {
    let mut position = vec![0usize; items];
    let place = |layers: &Vec<Vec<usize>>, position: &mut Vec<usize>| {
        for layer in layers {
            for (i, &item) in layer.iter().enumerate() {
                position[item] = i;
            }
        }
    };
    place(&layers, &mut position);
    let mut best = layers.clone();
    let mut fewest = crossings(&layers, below, &position);
    for sweep in 0..SWEEPS {
        let downwards = sweep % 2 == 0;
        let order: Vec<usize> =
            if downwards { (1..layers.len()).collect() } else { (0..layers.len().saturating_sub(1)).rev().collect() };
        for r in order {
            let near = if downwards { above } else { below };
            let mut keyed: Vec<(f64, usize, usize)> = layers[r]
                .iter()
                .map(|&item| {
                    let next = &near[item];
                    let key = if next.is_empty() {
                        position[item] as f64
                    } else {
                        next.iter().map(|&n| position[n] as f64).sum::<f64>() / next.len() as f64
                    };
                    (key, position[item], item)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            layers[r] = keyed.into_iter().map(|(_, _, item)| item).collect();
            for (i, &item) in layers[r].iter().enumerate() {
                position[item] = i;
            }
        }
        let found = crossings(&layers, below, &position);
        if found < fewest {
            fewest = found;
            best = layers.clone();
        }
    }
    best
}

/// How many pairs of flows cross between adjacent layers: pairs whose ends are in opposite
/// orders above and below, counted with a Fenwick tree (a layer may hold thousands).
fn crossings(layers: &[Vec<usize>], below: &[Vec<usize>], position: &[usize]) -> usize {
    let mut total = 0;
    for pair in layers.windows(2) {
        let mut links: Vec<(usize, usize)> =
            pair[0].iter().flat_map(|&a| below[a].iter().map(move |&b| (position[a], position[b]))).collect();
        links.sort_unstable();
        let size = pair[1].len();
        let mut tree = vec![0usize; size + 1];
        for (seen, &(_, b)) in links.iter().enumerate() {
            // Links seen before that end to the right of this one cross it.
            let mut at_most = 0;
            let mut i = b + 1;
            while i > 0 {
                at_most += tree[i];
                i -= i & i.wrapping_neg();
            }
            total += seen - at_most;
            let mut i = b + 1;
            while i <= size {
                tree[i] += 1;
                i += i & i.wrapping_neg();
            }
        }
    }
    total
}

/// Where each of `lines` (a key and the x it heads to or comes from) meets a box centred at
/// `centre`: spread along its side in the order of those xs, the middle one at the centre.
fn spread(lines: &[(usize, i64)], centre: i64) -> Vec<(usize, i64)> {
    let mut sorted: Vec<(usize, i64)> = lines.to_vec();
    sorted.sort_by_key(|&(key, x)| (x, key));
    let count = sorted.len() as i64;
    let step = if count > 1 { ((BOX_W - 40) / (count - 1)).min(16) } else { 0 };
    sorted.iter().enumerate().map(|(i, &(key, _))| (key, centre + (2 * i as i64 - (count - 1)) * step / 2)).collect()
}

#[cfg(test)]
mod tests;
