use super::*;

/// Steps `0..nodes` with `edges`, step 0 the start.
fn drawn(nodes: usize, edges: &[(usize, usize)]) -> Drawing {
    let drawing = draw(nodes, &[0], edges);
    assert_eq!(drawing.boxes.len(), nodes);
    assert_eq!(drawing.flows.len(), edges.len());
    well_formed(&drawing, edges);
    drawing
}

/// What every drawing keeps to: boxes apart and inside it, flows that do not loop back going
/// down, never through a box, and every flow from its source's bottom to its target's top.
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
    for route in &drawing.flows {
        let (from, to) = edges[route.edge];
        let (first, last) = (route.points[0], route.points[route.points.len() - 1]);
        assert_eq!(first.1, boxes[from].1 + BOX_H, "flow {} leaves {from} from its bottom", route.edge);
        assert!((boxes[from].0..=boxes[from].0 + BOX_W).contains(&first.0));
        assert_eq!(last.1, boxes[to].1, "flow {} enters {to} from its top", route.edge);
        assert!((boxes[to].0..=boxes[to].0 + BOX_W).contains(&last.0));
        if !route.back {
            assert!(last.1 > first.1, "flow {} goes down: {:?}", route.edge, route.points);
        }
        // Every straight stretch between its ends (through a layer, along a lane) passes beside
        // the boxes, not through them.
        for pair in route.points[1..route.points.len() - 1].windows(2) {
            let ((x1, y1), (x2, y2)) = (pair[0], pair[1]);
            for (n, b) in boxes.iter().enumerate() {
                let inside_x = x1.min(x2) < b.0 + BOX_W && x1.max(x2) > b.0;
                let inside_y = y1.min(y2) < b.1 + BOX_H && y1.max(y2) > b.1;
                assert!(!(inside_x && inside_y), "flow {} runs through box {n}: {:?}", route.edge, route.points);
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
    let skip = drawing.flows.iter().find(|f| f.edge == 5).unwrap();
    assert_eq!(skip.points.len(), 2 + 2 * 3, "one point above and below each of three layers: {:?}", skip.points);
    assert!(skip.path().contains(" C "), "it bends away from the column: {}", skip.path());
}

#[test]
fn a_loop_back_runs_up_a_lane_right_of_every_step() {
    // 0 → 1 → 2 → 3, and 2 back to 1.
    let edges = [(0, 1), (1, 2), (2, 3), (2, 1)];
    let drawing = drawn(4, &edges);
    let back = drawing.flows.iter().find(|f| f.edge == 3).unwrap();
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
