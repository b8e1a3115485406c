//! The diagram's layout: a layered grid, boundary events on their host's lower border,
//! orthogonal waypoints.

use std::collections::VecDeque;

use super::{Element, Model, SequenceFlow};

/// Layout grid: the width of a column and the height of a row, in diagram units.
const COLUMN: i64 = 170;
const ROW: i64 = 130;
/// Top-left margin of the diagram.
const MARGIN: i64 = 40;

/// A rectangle of the diagram.
#[derive(Clone, Copy, Default)]
pub(super) struct Bounds {
    pub(super) x: i64,
    pub(super) y: i64,
    pub(super) w: i64,
    pub(super) h: i64,
}

impl Bounds {
    fn cx(&self) -> i64 {
        self.x + self.w / 2
    }
    fn cy(&self) -> i64 {
        self.y + self.h / 2
    }
    fn right(&self) -> i64 {
        self.x + self.w
    }
    fn bottom(&self) -> i64 {
        self.y + self.h
    }
}

/// A layered layout: the column of an element is its breadth-first distance from the start
/// events, its row the order in which the search reached it within that column.
pub(super) struct Layout {
    pub(super) bounds: Vec<Bounds>,
}

impl Layout {
    pub(super) fn compute(model: &Model) -> Layout {
        let n = model.elements.len();
        // A flow out of a boundary event counts as leaving its host.
        let placed = |i: usize| model.elements[i].host.unwrap_or(i);
        let mut successors: Vec<Vec<usize>> = vec![Vec::new(); n];
        for f in &model.flows {
            successors[placed(f.source)].push(f.target);
        }
        let mut column: Vec<Option<usize>> = vec![None; n];
        let mut order = Vec::new();
        let mut queue = VecDeque::new();
        for (i, e) in model.elements.iter().enumerate() {
            if e.tag == "startEvent" {
                column[i] = Some(0);
                queue.push_back(i);
            }
        }
        while let Some(u) = queue.pop_front() {
            order.push(u);
            let next = column[u].unwrap_or(0) + 1;
            for &v in &successors[u] {
                if column[v].is_none() {
                    column[v] = Some(next);
                    queue.push_back(v);
                }
            }
        }
        // Whatever no start reaches (the compiler forbids it, but the export must not lose it)
        // goes in a last column.
        let last = column.iter().flatten().max().map_or(0, |c| c + 1);
        for (i, col) in column.iter_mut().enumerate() {
            if col.is_none() && model.elements[i].host.is_none() {
                *col = Some(last);
                order.push(i);
            }
        }
        let mut rows_used: Vec<i64> = Vec::new();
        let mut bounds = vec![Bounds::default(); n];
        for &i in &order {
            let col = column[i].unwrap_or(last);
            if rows_used.len() <= col {
                rows_used.resize(col + 1, 0);
            }
            let row = rows_used[col];
            rows_used[col] += 1;
            let (w, h) = model.elements[i].shape.size();
            let (cx, cy) = (MARGIN + col as i64 * COLUMN + 50, MARGIN + row * ROW + 40);
            bounds[i] = Bounds { x: cx - w / 2, y: cy - h / 2, w, h };
        }
        for (i, e) in model.elements.iter().enumerate() {
            if let Some(host) = e.host {
                // On the host's lower border: one in the middle, several from corner to corner.
                let (k, count) = (e.slot.0 as i64, e.slot.1.max(1) as i64);
                let h = bounds[host];
                let (w, ht) = e.shape.size();
                let cx = if count == 1 { h.cx() } else { h.x + w / 2 + k * (h.w - w) / (count - 1) };
                bounds[i] = Bounds { x: cx - w / 2, y: h.bottom() - ht / 2, w, h: ht };
            }
        }
        Layout { bounds }
    }

    /// Orthogonal waypoints of a flow: right to left between columns, down and around for flows
    /// back to an earlier column, down out of a boundary event.
    pub(super) fn waypoints(&self, elements: &[Element], f: &SequenceFlow) -> Vec<(i64, i64)> {
        let s = self.bounds[f.source];
        let t = self.bounds[f.target];
        if elements[f.source].host.is_some() {
            let lane = s.bottom() + 20;
            let end = if t.bottom() < lane { (t.cx(), t.bottom()) } else { (t.cx(), t.y) };
            return vec![(s.cx(), s.bottom()), (s.cx(), lane), (t.cx(), lane), end];
        }
        if t.x >= s.right() {
            if s.cy() == t.cy() {
                return vec![(s.right(), s.cy()), (t.x, t.cy())];
            }
            let mid = (s.right() + t.x) / 2;
            return vec![(s.right(), s.cy()), (mid, s.cy()), (mid, t.cy()), (t.x, t.cy())];
        }
        if s.cx() == t.cx() && t.y > s.bottom() {
            return vec![(s.cx(), s.bottom()), (t.cx(), t.y)];
        }
        if s.cx() == t.cx() && t.bottom() < s.y {
            return vec![(s.cx(), s.y), (t.cx(), t.bottom())];
        }
        let lane = s.bottom().max(t.bottom()) + 25;
        vec![(s.cx(), s.bottom()), (s.cx(), lane), (t.cx(), lane), (t.cx(), t.bottom())]
    }
}
