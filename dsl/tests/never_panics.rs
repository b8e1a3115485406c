//! Arbitrary input never panics the parser or the checker: it yields diagnostics.

use cloverleaf_dsl::Project;
use proptest::prelude::*;

const SEED: &str = include_str!("../../processes/collect_then_reconcile.flow");
const ROLES: &str = include_str!("../../processes/roles.flow");

fn compile(text: &str) {
    let mut project = Project::new();
    project.add("roles.flow", ROLES);
    project.add("fuzz.flow", text);
    let compilation = project.compile();
    // Rendering must not panic either (spans must lie inside the text).
    let _ = compilation.render();
}

proptest! {
    #[test]
    fn random_text_never_panics(text in "\\PC{0,200}") {
        compile(&text);
    }

    #[test]
    fn mutated_processes_never_panic(cuts in proptest::collection::vec((0usize..SEED.len(), 0usize..40, "[ -~\\n{}>-]{0,6}"), 1..4)) {
        let mut text = SEED.to_string();
        for (at, len, insert) in cuts {
            let mut at = at.min(text.len());
            while !text.is_char_boundary(at) { at -= 1; }
            let mut end = (at + len).min(text.len());
            while !text.is_char_boundary(end) { end -= 1; }
            text.replace_range(at..end, &insert);
        }
        compile(&text);
    }
}
