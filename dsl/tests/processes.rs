//! The reference processes in `processes/` compile cleanly, and their compiled graphs are
//! snapshot-tested: a change to a graph is reviewed like code.

use std::path::PathBuf;

use cloverleaf_dsl::{Format, Project, export};

fn reference_project() -> Project {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../processes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("processes/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "flow"))
        .collect();
    files.sort();
    let mut project = Project::new();
    for file in files {
        let name = format!("processes/{}", file.file_name().expect("a file name").to_string_lossy());
        project.add(name, std::fs::read_to_string(&file).expect("readable .flow file"));
    }
    project
}

#[test]
fn reference_processes_compile_without_errors_or_warnings() {
    let compilation = reference_project().compile();
    assert!(compilation.diagnostics.is_empty(), "{}", compilation.render());
    let mut keys: Vec<&str> = compilation.processes.iter().map(|p| p.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["collect_then_reconcile", "month_end_close", "order_approval", "order_to_cash", "ship_then_invoice"]
    );
}

#[test]
fn compiled_graphs_match_their_snapshots() {
    let compilation = reference_project().compile();
    for process in &compilation.processes {
        insta::assert_snapshot!(format!("graph_{}", process.key), process.to_json());
    }
}

#[test]
fn compiled_json_is_deterministic_and_round_trips() {
    let first = reference_project().compile();
    let second = reference_project().compile();
    for (a, b) in first.processes.iter().zip(&second.processes) {
        assert_eq!(a.to_json(), b.to_json(), "{} is not deterministic", a.key);
        let back: cloverleaf_dsl::CompiledProcess = serde_json::from_str(&a.to_json()).expect("compiled JSON loads");
        assert_eq!(&back.to_json(), &a.to_json(), "{} does not round-trip", a.key);
        // Expressions re-parsed from their text equal the ones compiled from the file.
        assert_eq!(&back, a, "{} loads back differently", a.key);
    }
}

#[test]
fn order_approval_exports_as_dot_and_mermaid() {
    let compilation = reference_project().compile();
    let process = compilation.process("order_approval").expect("order_approval compiles");
    insta::assert_snapshot!("dot_order_approval", export(process, Format::Dot));
    insta::assert_snapshot!("mermaid_order_approval", export(process, Format::Mermaid));
}

#[test]
fn order_approval_exports_as_bpmn() {
    let compilation = reference_project().compile();
    let process = compilation.process("order_approval").expect("order_approval compiles");
    insta::assert_snapshot!("bpmn_order_approval", export(process, Format::Bpmn));
}

#[test]
fn splits_are_paired_with_their_joins() {
    let compilation = reference_project().compile();
    let process = compilation.process("ship_then_invoice").expect("compiles");
    match &process.node("bill").expect("bill exists").kind {
        cloverleaf_dsl::model::NodeKind::Split { join, .. } => assert_eq!(join, "billed"),
        other => panic!("bill is {other:?}"),
    }
    match &process.node("billed").expect("billed exists").kind {
        cloverleaf_dsl::model::NodeKind::Join { split, .. } => assert_eq!(split, "bill"),
        other => panic!("billed is {other:?}"),
    }
}

#[test]
fn dunning_ends_are_side_paths_and_give_no_outcome() {
    let compilation = reference_project().compile();
    let process = compilation.process("collect_then_reconcile").expect("compiles");
    let side = |name: &str| match &process.node(name).expect("exists").kind {
        cloverleaf_dsl::model::NodeKind::End { side_path, .. } => *side_path,
        other => panic!("{name} is {other:?}"),
    };
    assert!(side("dunning_done"));
    assert!(!side("paid"));
    assert!(!side("written_off"));
}

#[test]
fn valid_fixtures_compile_without_diagnostics() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("valid fixtures exist")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "flow"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for file in files {
        let mut project = Project::new();
        project.add(file.display().to_string(), std::fs::read_to_string(&file).expect("readable"));
        let compilation = project.compile();
        assert!(compilation.diagnostics.is_empty(), "{}", compilation.render());
        for process in &compilation.processes {
            let name = file.file_stem().expect("a name").to_string_lossy();
            insta::assert_snapshot!(format!("valid_{name}_{}", process.key), process.to_json());
        }
    }
}
