//! `import` of BPMN 2.0: the reference processes round-trip (export → import → the same
//! compiled graph), a Camunda Modeler file imports and compiles, and what cannot be translated
//! (malformed XML, unsupported elements, untranslatable conditions) gets located diagnostics,
//! snapshot-tested as rendered.

use std::path::{Path, PathBuf};

use cloverleaf_dsl::import::bpmn::{Imported, from_bpmn};
use cloverleaf_dsl::{CompiledProcess, Format, Project, SourceMap, export};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `.flow` file of `processes/`, by name.
fn reference_files() -> Vec<(String, String)> {
    let dir = root().join("../processes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("processes/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "flow"))
        .collect();
    files.sort();
    files.iter().map(|f| (f.file_name().expect("a name").to_string_lossy().to_string(), read(f))).collect()
}

fn compile(files: &[(String, String)]) -> Vec<CompiledProcess> {
    let mut project = Project::new();
    for (name, text) in files {
        project.add(name.clone(), text.clone());
    }
    let compilation = project.compile();
    assert!(!compilation.has_errors(), "{}", compilation.render());
    compilation.processes
}

/// Imports `xml` named `name`, failing with the rendered diagnostics when it has errors.
fn import(name: &str, xml: &str) -> (String, Imported) {
    let mut sources = SourceMap::new();
    let file = sources.add(name, xml);
    let imported = from_bpmn(file, xml);
    let rendered = sources.render_all(&imported.diagnostics);
    (rendered, imported)
}

#[test]
fn reference_processes_round_trip_through_bpmn() {
    let files = reference_files();
    let originals = compile(&files);
    assert_eq!(originals.len(), 5, "expected the five reference processes");
    // Roles and calendars are not processes: they come along as they are.
    let mut again: Vec<(String, String)> =
        files.iter().filter(|(_, text)| !text.contains("process ")).cloned().collect();
    for p in &originals {
        let xml = export(p, Format::Bpmn);
        let (rendered, imported) = import(&format!("{}.bpmn", p.key), &xml);
        assert!(imported.diagnostics.is_empty(), "{}:\n{rendered}", p.key);
        let flow = imported.flow.expect("a .flow text when there are no errors");
        again.push((format!("{}.imported.flow", p.key), flow));
    }
    let imported = compile(&again);
    let mut differ = Vec::new();
    for original in &originals {
        let back = imported.iter().find(|p| p.key == original.key).expect("imported under the same key");
        if back.to_json() != original.to_json() {
            let flow = &again.iter().find(|(n, _)| n.starts_with(&format!("{}.", original.key))).expect("its text").1;
            differ.push(format!(
                "{} differs after the round trip\n--- imported .flow\n{flow}\n--- original JSON\n{}\n--- imported JSON\n{}",
                original.key,
                original.to_json(),
                back.to_json()
            ));
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n\n"));
}

#[test]
fn valid_fixtures_round_trip_through_bpmn() {
    let dir = root().join("tests/fixtures/valid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures exist")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "flow"))
        .collect();
    files.sort();
    for file in files {
        let name = file.file_name().expect("a name").to_string_lossy().to_string();
        let originals = compile(&[(name.clone(), read(&file))]);
        let mut again = Vec::new();
        // A fixture may declare its roles and calendars beside its processes.
        let text = read(&file);
        let mut support = Project::new();
        support.add(name.clone(), text.clone());
        for p in &originals {
            let (rendered, imported) = import(&format!("{}.bpmn", p.key), &export(p, Format::Bpmn));
            assert!(!imported.has_errors(), "{name}/{}:\n{rendered}", p.key);
            again.push((format!("{}.flow", p.key), imported.flow.expect("a .flow text")));
        }
        let declarations = strip_processes(&text);
        again.push(("declarations.flow".to_string(), declarations));
        let back = compile(&again);
        for original in &originals {
            let b = back.iter().find(|p| p.key == original.key).expect("same key");
            assert_eq!(b.to_json(), original.to_json(), "{name}: {} differs after the round trip", original.key);
        }
    }
}

/// The `roles` and `calendar` blocks of a file, without its processes.
fn strip_processes(text: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    let mut keep = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if depth == 0 {
            keep = trimmed.starts_with("roles") || trimmed.starts_with("calendar");
        }
        if keep {
            out.push_str(line);
            out.push('\n');
        }
        depth += line.matches('{').count();
        depth = depth.saturating_sub(line.matches('}').count());
    }
    out
}

fn fixture(name: &str) -> (String, String) {
    let path = root().join("tests/fixtures/bpmn").join(name);
    (format!("fixtures/bpmn/{name}"), read(&path))
}

#[test]
fn a_camunda_modeler_file_imports_and_compiles() {
    let (name, xml) = fixture("camunda_invoice.bpmn");
    let (rendered, imported) = import(&name, &xml);
    assert!(!imported.has_errors(), "{rendered}");
    let flow = imported.flow.expect("a .flow text");
    insta::assert_snapshot!("camunda_invoice_flow", flow);
    // The guesses the import made about undeclared variables are warnings, shown where used.
    insta::assert_snapshot!("camunda_invoice_warnings", rendered);
    let roles = read(&root().join("../processes/roles.flow"));
    let processes = compile(&[("roles.flow".to_string(), roles), ("camunda_invoice.flow".to_string(), flow)]);
    let invoice = processes.iter().find(|p| p.key == "invoice_approval").expect("invoice_approval compiles");
    insta::assert_snapshot!("camunda_invoice_graph", invoice.to_json());
}

#[test]
fn unsupported_elements_and_conditions_are_reported_where_they_are() {
    let (name, xml) = fixture("unsupported.bpmn");
    let (rendered, imported) = import(&name, &xml);
    assert!(imported.flow.is_none(), "nothing is written when an element is not translated");
    let codes: Vec<&str> = imported.diagnostics.iter().map(|d| d.code).collect();
    for code in ["E0702", "E0703", "E0704"] {
        assert!(codes.contains(&code), "{code} missing:\n{rendered}");
    }
    insta::assert_snapshot!("unsupported_diagnostics", rendered);
}

#[test]
fn malformed_xml_is_reported_at_the_break() {
    let (name, xml) = fixture("malformed.bpmn");
    let (rendered, imported) = import(&name, &xml);
    assert!(imported.flow.is_none());
    assert_eq!(imported.diagnostics.len(), 1, "{rendered}");
    assert!(rendered.contains("--> fixtures/bpmn/malformed.bpmn:5:"), "{rendered}");
    insta::assert_snapshot!("malformed_diagnostics", rendered);
    // Not BPMN at all, and empty input, are errors too, never a panic.
    for text in ["<html><body/></html>", "", "<?xml version=\"1.0\"?>"] {
        let (_, imported) = import("other.xml", text);
        assert!(imported.has_errors() && imported.flow.is_none(), "{text:?}");
    }
}

#[test]
fn every_truncation_of_an_export_is_reported_never_a_panic() {
    let files = reference_files();
    let originals = compile(&files);
    let xml = export(&originals[0], Format::Bpmn);
    let cuts: Vec<usize> = (0..xml.len()).step_by(97).filter(|&i| xml.is_char_boundary(i)).collect();
    for cut in cuts {
        let (_, imported) = import("cut.bpmn", &xml[..cut]);
        assert!(imported.has_errors(), "a document cut at byte {cut} imported without an error");
    }
}
