use super::*;

/// Steps `0..nodes` with `edges`, step 0 the start.
fn drawn(nodes: usize, edges: &[(usize, usize)]) -> Drawing {
    let drawing = draw(nodes, &[0], edges);
    assert_eq!(drawing.boxes.len(), nodes);
    well_formed(&drawing, edges);
    drawing
}

/// The routes carrying flow `e`: its own, and the trunk it joins if any.
fn routes_of(drawing: &Drawing, e: usize) -> Vec<&Route> {
    drawing.flows.iter().filter(|f| f.edges.contains(&e)).collect()
}

/// What every drawing keeps to: boxes apart and inside it; every flow drawn, leaving its
/// source's bottom and reaching its target's top (by itself or along the trunk it joins);
/// flows that do not loop back going down; no line through a box.
fn well_formed(drawing: &Drawing, edges: &[(usize, usize)]) {
    let boxes = &drawing.boxes;
    for (i, a) in boxes.iter().enumerate() {
        assert!(a.0 >= MARGIN && a.1 >= MARGIN, "box {i} at {a:?}");
        assert!(a.0 + BOX_W <= drawing.width && a.1 + BOX_H <= drawing.height, "box {i} at {a:?} outside");
        for (j, b) in boxes.iter().enumerate().skip(i + 1) {
            let apart = a.0.abs_diff(b.0) >= BOX_W as u64 || a.1.abs_diff(b.1) >= BOX_H as u64;
            assert!(apart, "boxes {i} and {j} overlap at {a:?} and {b:?}");
        }
    }
    for (e, &(from, to)) in edges.iter().enumerate() {
        let routes = routes_of(drawing, e);
        // Its own line leaves its source's bottom; a trunk it joins starts lower down.
        let leaves = |r: &&&Route| {
            let (x, y) = r.points[0];
            y == boxes[from].1 + BOX_H && (boxes[from].0..=boxes[from].0 + BOX_W).contains(&x)
        };
        let own: Vec<&&Route> = routes.iter().filter(leaves).collect();
        assert_eq!(own.len(), 1, "flow {e} is drawn once: {routes:?}");
        let own = own[0];
        let first = own.points[0];
        assert_eq!(first.1, boxes[from].1 + BOX_H, "flow {e} leaves {from} from its bottom");
        assert!((boxes[from].0..=boxes[from].0 + BOX_W).contains(&first.0));
        let end = if own.arrow {
            *own.points.last().unwrap()
        } else {
            // It joins a trunk into its target, at one of the trunk's points.
            let trunk = routes.iter().find(|r| !std::ptr::eq(**r, *own)).unwrap();
            assert!(trunk.arrow && trunk.points.contains(own.points.last().unwrap()), "{own:?} joins {trunk:?}");
            *trunk.points.last().unwrap()
        };
        assert_eq!(end.1, boxes[to].1, "flow {e} enters {to} from its top");
        assert!((boxes[to].0..=boxes[to].0 + BOX_W).contains(&end.0));
        if !own.back {
            assert!(end.1 > first.1, "flow {e} goes down: {:?}", own.points);
        }
    }
    // Every straight stretch between a line's ends (through a layer, along a lane) passes beside
    // the boxes, not through them.
    for route in &drawing.flows {
        if route.points.len() < 3 {
            continue;
        }
        for pair in route.points[1..route.points.len() - 1].windows(2) {
            let ((x1, y1), (x2, y2)) = (pair[0], pair[1]);
            for (n, b) in boxes.iter().enumerate() {
                let inside_x = x1.min(x2) < b.0 + BOX_W && x1.max(x2) > b.0;
                let inside_y = y1.min(y2) < b.1 + BOX_H && y1.max(y2) > b.1;
                assert!(!(inside_x && inside_y), "a line runs through box {n}: {:?}", route.points);
            }
        }
    }
}

#[test]
fn a_chain_is_one_column_read_downwards() {
    let drawing = drawn(4, &[(0, 1), (1, 2), (2, 3)]);
    assert!(drawing.boxes.iter().all(|b| b.0 == drawing.boxes[0].0), "{:?}", drawing.boxes);
    assert!(drawing.boxes.windows(2).all(|p| p[1].1 == p[0].1 + BOX_H + LAYER_GAP), "{:?}", drawing.boxes);
    assert_eq!(drawing.width, BOX_W + 2 * MARGIN);
    assert!(drawing.flows.iter().all(|f| f.path().starts_with("M ") && !f.path().contains(" C ")));
}

#[test]
fn a_split_puts_its_branches_side_by_side_and_their_join_below_both() {
    // 0 → 1 → {2, 3} → 4 → 5
    let drawing = drawn(6, &[(0, 1), (1, 2), (1, 3), (2, 4), (3, 4), (4, 5)]);
    let b = &drawing.boxes;
    assert_eq!(b[2].1, b[3].1, "the branches share a layer: {b:?}");
    assert!(b[4].1 > b[2].1 && b[4].0 > b[2].0 && b[4].0 < b[3].0, "the join below, between them: {b:?}");
    assert_eq!(crossings_of(&drawing, &[(0, 1), (1, 2), (1, 3), (2, 4), (3, 4), (4, 5)]), 0);
}

#[test]
fn a_flow_that_skips_layers_passes_beside_the_steps_it_skips() {
    // A decision straight to the end, or through three steps first.
    let edges = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (1, 5)];
    let drawing = drawn(6, &edges);
    let trunk = drawing.flows.iter().find(|f| f.edges == [5] && f.arrow).unwrap();
    assert_eq!(trunk.points.len(), 2 * 3 + 1, "above and below each of three layers, then in: {:?}", trunk.points);
    let feeder = drawing.flows.iter().find(|f| f.edges == [5] && !f.arrow).unwrap();
    assert!(feeder.path().contains(" C "), "it bends away from the column: {}", feeder.path());
}

#[test]
fn flows_from_many_steps_into_one_share_one_trunk() {
    // A chain of eight steps, each of which may also end the process at step 9.
    let mut edges: Vec<(usize, usize)> = (0..9).map(|i| (i, i + 1)).collect();
    edges.extend((1..8).map(|i| (i, 9)));
    let drawing = drawn(10, &edges);
    let trunks: Vec<&Route> = drawing.flows.iter().filter(|f| f.edges.len() > 1).collect();
    assert_eq!(trunks.len(), 1, "{:?}", drawing.flows);
    assert_eq!(trunks[0].edges.len(), 7, "every flow but the one from the layer above: {:?}", trunks[0]);
    // One arrow into the end for them all, besides the chain's own.
    let arrows_in =
        drawing.flows.iter().filter(|f| f.arrow && f.points.last().unwrap().1 == drawing.boxes[9].1).count();
    assert_eq!(arrows_in, 2, "the trunk and the chain's last flow: {:?}", drawing.flows);
}

#[test]
fn a_huge_process_is_drawn_in_linear_size() {
    // Two thousand steps, each of which may end the process: the drawing's points stay a few
    // per flow.
    let n = 2_000;
    let mut edges: Vec<(usize, usize)> = (0..n).map(|i| (i, i + 1)).collect();
    edges.extend((1..n).map(|i| (i, n + 1)));
    edges.push((n, n + 1));
    let drawing = draw(n + 2, &[0], &edges);
    let points: usize = drawing.flows.iter().map(|f| f.points.len()).sum();
    assert!(points < 20 * edges.len(), "{points} points for {} flows", edges.len());
    let path: usize = drawing.flows.iter().map(|f| f.path().len()).sum();
    assert!(path < 200 * edges.len(), "{path} bytes of path for {} flows", edges.len());
}

#[test]
fn a_loop_back_runs_up_a_lane_right_of_every_step() {
    // 0 → 1 → 2 → 3, and 2 back to 1.
    let edges = [(0, 1), (1, 2), (2, 3), (2, 1)];
    let drawing = drawn(4, &edges);
    let back = drawing.flows.iter().find(|f| f.edges == [3]).unwrap();
    assert!(back.back && drawing.flows.iter().filter(|f| f.back).count() == 1);
    let right = drawing.boxes.iter().map(|b| b.0 + BOX_W).max().unwrap();
    let lane = back.points[2].0;
    assert!(lane > right && lane < drawing.width, "lane at {lane}, steps end at {right}: {:?}", back.points);
    // Loops do not stretch the steps: still one column.
    assert!(drawing.boxes.iter().all(|b| b.0 == drawing.boxes[0].0), "{:?}", drawing.boxes);
    // A step that loops to itself, and a loop to the first step, stay inside the drawing.
    drawn(2, &[(0, 1), (1, 1)]);
    drawn(3, &[(0, 1), (1, 2), (1, 0)]);
}

#[test]
fn crossings_are_counted_between_adjacent_layers() {
    // Two flows in an X: one crossing; side by side: none.
    let below = vec![vec![3], vec![2], vec![], vec![]];
    let layers = vec![vec![0, 1], vec![2, 3]];
    assert_eq!(crossings(&layers, &below, &[0, 1, 0, 1]), 1);
    let below = vec![vec![2], vec![3], vec![], vec![]];
    assert_eq!(crossings(&layers, &below, &[0, 1, 0, 1]), 0);
    // A step fanning out does not cross itself; three into one do not either.
    let below = vec![vec![1, 2, 3], vec![], vec![], vec![]];
    assert_eq!(crossings(&[vec![0], vec![1, 2, 3]], &below, &[0, 0, 1, 2]), 0);
    let below = vec![vec![3], vec![3], vec![3], vec![]];
    assert_eq!(crossings(&[vec![0, 1, 2], vec![3]], &below, &[0, 1, 2, 0]), 0);
}

#[test]
fn an_empty_or_unreachable_graph_draws_without_panicking() {
    let empty = draw(0, &[], &[]);
    assert!(empty.boxes.is_empty() && empty.width > 0 && empty.height > 0);
    // A step nothing reaches still gets a place of its own.
    drawn(3, &[(0, 1)]);
}

#[test]
fn the_reference_processes_are_drawn_well_formed_and_fit_the_case_page() {
    let mut project = cloverleaf_dsl::Project::new();
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../processes")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "flow") {
            project.add(path.display().to_string(), std::fs::read_to_string(&path).unwrap());
        }
    }
    let processes = project.compile().processes;
    assert!(processes.len() >= 5);
    for process in processes {
        let index: std::collections::BTreeMap<&str, usize> =
            process.nodes.iter().enumerate().map(|(i, n)| (n.name.as_str(), i)).collect();
        let edges: Vec<(usize, usize)> = process.edges().iter().map(|e| (index[e.from], index[e.to])).collect();
        let starts: Vec<usize> = process
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| matches!(n.kind, cloverleaf_dsl::model::NodeKind::Start { .. }))
            .map(|(i, _)| i)
            .collect();
        let drawing = draw(process.nodes.len(), &starts, &edges);
        well_formed(&drawing, &edges);
        // The case page's frame on a 1280 px screen holds about 1,060 px; a wider diagram is
        // drawn smaller there, at nine tenths of its size at least.
        assert!(drawing.width <= 1_170, "{} is {} px wide", process.key, drawing.width);
    }
}

/// Crossings of the drawn order, from the boxes' places.
fn crossings_of(drawing: &Drawing, edges: &[(usize, usize)]) -> usize {
    let mut count = 0;
    for (i, &(a1, b1)) in edges.iter().enumerate() {
        for &(a2, b2) in &edges[i + 1..] {
            let same_layers = drawing.boxes[a1].1 == drawing.boxes[a2].1 && drawing.boxes[b1].1 == drawing.boxes[b2].1;
            let above = drawing.boxes[a1].0.cmp(&drawing.boxes[a2].0);
            let below = drawing.boxes[b1].0.cmp(&drawing.boxes[b2].0);
            if same_layers && above != below && above.is_ne() && below.is_ne() {
                count += 1;
            }
        }
    }
    count
}
