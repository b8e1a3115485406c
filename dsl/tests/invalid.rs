//! Every file in `tests/fixtures/invalid/` is refused (or warned about) with the diagnostic its
//! first line names (`# expect: E0405`), and its rendered diagnostics are snapshot-tested.

use std::path::PathBuf;

use cloverleaf_dsl::Project;

#[test]
fn invalid_fixtures_report_their_diagnostics() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures exist")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "flow"))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "expected at least 30 invalid fixtures, found {}", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let stem = file.file_stem().expect("a file name").to_string_lossy().to_string();
        let text = std::fs::read_to_string(file).expect("readable fixture");
        let expected: Vec<&str> = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect:"))
            .map(|codes| codes.split_whitespace().collect())
            .unwrap_or_default();
        assert!(!expected.is_empty(), "{stem}: first line must be `# expect: CODE...`");
        let mut project = Project::new();
        project.add(format!("fixtures/invalid/{stem}.flow"), text.clone());
        let compilation = project.compile();
        let found: Vec<&str> = compilation.diagnostics.iter().map(|d| d.code).collect();
        for code in &expected {
            if !found.contains(code) {
                failures.push(format!("{stem}: expected {code}, found {found:?}\n{}", compilation.render()));
            }
        }
        if expected.iter().any(|c| c.starts_with('E')) && !compilation.has_errors() {
            failures.push(format!("{stem}: compiled although it should be refused"));
        }
        insta::assert_snapshot!(format!("invalid_{stem}"), compilation.render());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_process_defined_in_two_files_names_the_first_file() {
    let mut project = Project::new();
    project.add("a.flow", "process p {\n  start -> done\n  end done \"Done\"\n}\n");
    project.add("b.flow", "\n\nprocess p {\n  start -> done\n  end done \"Done\"\n}\n");
    let compilation = project.compile();
    let rendered = compilation.render();
    assert!(compilation.has_errors());
    assert!(rendered.contains("error[E0102]: process `p` is defined twice (first in a.flow:1:9)"), "{rendered}");
    assert!(rendered.contains("--> b.flow:3:9"), "{rendered}");
}
