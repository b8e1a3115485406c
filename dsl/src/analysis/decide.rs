//! Checks of each decide: that some arm always matches (a null in an optional variable
//! included), and amount bands that overlap or leave gaps.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;

use super::LNode;
use crate::codes;
use crate::diag::{Diagnostic, FileId};
use crate::expr::{BinaryOp, Expr, ExprKind, UnaryOp};
use crate::model::NodeKind;

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

pub(super) fn decide_checks(file: FileId, n: &LNode, optional: &BTreeMap<String, bool>, diags: &mut Vec<Diagnostic>) {
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
