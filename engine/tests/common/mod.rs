//! Helpers shared by the engine's test targets.

/// Every `.flow` file of `processes/` as (file name, text), in name order.
pub fn reference_files() -> Vec<(String, String)> {
    let dir = format!("{}/../processes", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.expect("a readable entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".flow"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let text = std::fs::read_to_string(format!("{dir}/{n}")).unwrap_or_else(|e| panic!("{n}: {e}"));
            (n, text)
        })
        .collect()
}

/// A project holding every reference process (with the roles they use).
#[allow(dead_code)] // not every test target compiles a project itself
pub fn reference_project() -> cloverleaf_dsl::Project {
    let mut project = cloverleaf_dsl::Project::new();
    for (name, text) in reference_files() {
        project.add(name, text);
    }
    project
}
