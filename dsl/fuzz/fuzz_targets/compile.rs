//! Arbitrary text through the whole pipeline: parse, check, compile, render the diagnostics and
//! export every compiled process. None of it may panic: bad input yields diagnostics.

#![no_main]

use cloverleaf_dsl::{Format, Project, export};
use libfuzzer_sys::fuzz_target;

/// The organisation's roles, so that approvals in the input can name real roles.
const ROLES: &str = include_str!("../../../processes/roles.flow");

fuzz_target!(|text: &str| {
    let mut project = Project::new();
    project.add("roles.flow", ROLES);
    project.add("fuzz.flow", text);
    let compilation = project.compile();
    // Rendering slices the source at each span: spans must lie inside the text.
    let _ = compilation.render();
    for process in &compilation.processes {
        for format in [Format::Json, Format::Dot, Format::Mermaid] {
            let _ = export(process, format);
        }
    }
});
