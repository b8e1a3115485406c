//! The BPMN export of every reference process (and of the valid fixtures, which use every
//! construct) is valid against the OMG BPMN 2.0 XSD and draws every element it declares.
//!
//! Validation runs `xmllint --schema` against the schema files SpiffWorkflow ships
//! (`BPMN20.xsd` and the four it includes), found in `$CLOVERLEAF_BPMN_XSD`, else in
//! `$CARGO_TARGET_DIR/bpmn-xsd` or `target/bpmn-xsd`, where `.ci/run` puts them. Without
//! xmllint or the schema the test says so on stderr and checks only the diagram; under CI
//! (`$CI` set) it fails instead.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use cloverleaf_dsl::{CompiledProcess, Format, Project, export};

fn compile_dir(dir: &Path) -> Vec<CompiledProcess> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("directory exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "flow"))
        .collect();
    files.sort();
    let mut processes = Vec::new();
    // The reference processes call each other, so they compile as one project; each valid
    // fixture stands alone.
    let together = dir.ends_with("processes");
    let mut project = Project::new();
    for file in files {
        if !together {
            project = Project::new();
        }
        project.add(file.display().to_string(), std::fs::read_to_string(&file).expect("readable .flow file"));
        if !together {
            let compilation = project.compile();
            assert!(!compilation.has_errors(), "{}", compilation.render());
            processes.extend(compilation.processes);
        }
    }
    if together {
        let compilation = project.compile();
        assert!(!compilation.has_errors(), "{}", compilation.render());
        processes.extend(compilation.processes);
    }
    processes
}

fn exported() -> Vec<(String, String)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for p in compile_dir(&root.join("../processes")) {
        out.push((p.key.clone(), export(&p, Format::Bpmn)));
    }
    for p in compile_dir(&root.join("tests/fixtures/valid")) {
        out.push((format!("fixture_{}", p.key), export(&p, Format::Bpmn)));
    }
    out
}

/// The directory holding `BPMN20.xsd`, when xmllint and the schema are both there.
fn schema_dir() -> Result<PathBuf, String> {
    let dir = match std::env::var_os("CLOVERLEAF_BPMN_XSD") {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("CARGO_TARGET_DIR") {
            Some(target) => PathBuf::from(target).join("bpmn-xsd"),
            None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bpmn-xsd"),
        },
    };
    if !dir.join("BPMN20.xsd").is_file() {
        return Err(format!(
            "no BPMN20.xsd in {} (set CLOVERLEAF_BPMN_XSD, or run .ci/run, which fetches it)",
            dir.display()
        ));
    }
    match Command::new("xmllint").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(dir),
        _ => Err("xmllint is not installed (Debian: apt-get install libxml2-utils)".to_string()),
    }
}

#[test]
fn bpmn_exports_are_valid_against_the_bpmn_2_0_xsd() {
    let exports = exported();
    assert!(exports.len() >= 5, "expected the reference processes, got {}", exports.len());
    let dir = match schema_dir() {
        Ok(dir) => dir,
        Err(why) if std::env::var_os("CI").is_some() => panic!("BPMN schema validation cannot run under CI: {why}"),
        Err(why) => {
            // Straight to stderr: the harness captures `eprintln!` of passing tests, and a skip
            // must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "\n!!! SKIPPED: BPMN 2.0 XSD validation of {} exports: {why}\n",
                exports.len()
            );
            return;
        }
    };
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bpmn");
    std::fs::create_dir_all(&out_dir).expect("a directory for the exports");
    let mut files = Vec::new();
    for (name, xml) in &exports {
        let file = out_dir.join(format!("{name}.bpmn"));
        std::fs::write(&file, xml).expect("export written");
        files.push(file);
    }
    let output = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(dir.join("BPMN20.xsd"))
        .args(&files)
        .output()
        .expect("xmllint runs");
    let report = String::from_utf8_lossy(&output.stderr);
    eprintln!("{report}");
    assert!(output.status.success(), "xmllint refused the BPMN export:\n{report}");
    for file in &files {
        assert!(
            report.contains(&format!("{} validates", file.display())),
            "{} not validated:\n{report}",
            file.display()
        );
    }
}

/// The ids of the `bpmn:` elements inside `<bpmn:process>` other than the sequence flows,
/// and of the sequence flows.
fn declared(xml: &str) -> (Vec<&str>, Vec<&str>) {
    let mut nodes = Vec::new();
    let mut flows = Vec::new();
    for line in xml.lines() {
        let Some(rest) = line.strip_prefix("    <bpmn:") else { continue };
        let Some((tag, rest)) = rest.split_once(" id=\"") else { continue };
        let id = rest.split('"').next().unwrap_or_default();
        if tag == "sequenceFlow" { flows.push(id) } else { nodes.push(id) }
    }
    (nodes, flows)
}

#[test]
fn bpmn_diagrams_draw_every_flow_node_and_sequence_flow() {
    for (name, xml) in exported() {
        let (nodes, flows) = declared(&xml);
        assert!(!nodes.is_empty() && !flows.is_empty(), "{name}: nothing declared");
        for id in &nodes {
            assert!(
                xml.contains(&format!("<bpmndi:BPMNShape id=\"{id}_di\" bpmnElement=\"{id}\"")),
                "{name}: {id} has no shape"
            );
        }
        for id in &flows {
            assert!(
                xml.contains(&format!("<bpmndi:BPMNEdge id=\"{id}_di\" bpmnElement=\"{id}\">")),
                "{name}: {id} has no edge"
            );
        }
        assert_eq!(xml.matches("<bpmndi:BPMNShape ").count(), nodes.len(), "{name}: shapes");
        assert_eq!(xml.matches("<bpmndi:BPMNEdge ").count(), flows.len(), "{name}: edges");
    }
}

#[test]
fn bpmn_export_is_deterministic() {
    assert_eq!(exported(), exported());
}
