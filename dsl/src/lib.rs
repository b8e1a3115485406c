//! The `.flow` process language of Cloverleaf: parser, checker, compiler and expressions.
//!
//! The pipeline has three public stages, each returning its result together with *every*
//! diagnostic it found:
//!
//! 1. [`parse`]: text → syntax tree ([`ast::File`]) with spans;
//! 2. [`check`](fn@check): the files of a project → names, roles, types and graph soundness checked, and
//!    each sound process lowered to a [`CompiledProcess`];
//! 3. [`export`](fn@export): a compiled process → JSON, Graphviz DOT, Mermaid or BPMN 2.0.
//!
//! [`Project`] runs the stages over several files at once:
//!
//! ```
//! use cloverleaf_dsl::Project;
//!
//! let mut project = Project::new();
//! project.add("hello.flow", r#"
//!     process hello "Hello" {
//!       input { amount: money }
//!       start -> route
//!       decide route {
//!         when amount > 100 -> big
//!         otherwise -> small
//!       }
//!       end big "Big"
//!       end small "Small"
//!     }
//! "#);
//! let compilation = project.compile();
//! assert!(!compilation.has_errors(), "{}", compilation.render());
//! assert_eq!(compilation.processes[0].nodes.len(), 4);
//! ```
//!
//! Architecture invariant: this crate does no IO beyond what its caller hands it, and knows
//! nothing of the engine, databases or HTTP. Expressions are evaluated here ([`expr::eval`])
//! because both the checker and the engine need one meaning for them.

mod analysis;
pub mod ast;
pub mod calendar;
pub mod check;
pub mod codes;
pub mod diag;
pub mod export;
pub mod expr;
pub mod grammar;
pub mod import;
pub mod model;
pub mod parser;
pub mod rules;
pub mod schedule;
pub mod suggest;

use std::collections::BTreeMap;

pub use diag::{Diagnostic, FileId, Severity, SourceMap, Span};
pub use export::{Format, export};
pub use model::CompiledProcess;
pub use parser::parse;

/// Stage 2: checks the parsed files of one project together and compiles each sound process.
pub fn check(files: &[ast::File], sources: &SourceMap) -> (Vec<CompiledProcess>, Vec<Diagnostic>) {
    check::check_project(files, sources)
}

/// A set of `.flow` files compiled together: roles and called processes resolve across them.
#[derive(Debug, Clone, Default)]
pub struct Project {
    sources: SourceMap,
}

/// The outcome of compiling a project.
#[derive(Debug, Clone)]
pub struct Compilation {
    /// Every process without errors, in file order.
    pub processes: Vec<CompiledProcess>,
    /// Every diagnostic, ordered by file and position.
    pub diagnostics: Vec<Diagnostic>,
    /// The sources, for rendering.
    pub sources: SourceMap,
    /// Every role the project declares, sorted.
    pub roles: Vec<String>,
    /// Every calendar the project declares without errors, by name.
    pub calendars: BTreeMap<String, calendar::Calendar>,
}

impl Project {
    /// An empty project.
    pub fn new() -> Self {
        Project::default()
    }

    /// Adds a file; `name` is how diagnostics refer to it.
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        self.sources.add(name, text)
    }

    /// Parses and checks every file.
    pub fn compile(&self) -> Compilation {
        let mut diagnostics = Vec::new();
        let mut files = Vec::new();
        for (id, file) in self.sources.iter() {
            let (ast, mut found) = parse(id, &file.text);
            diagnostics.append(&mut found);
            files.extend(ast);
        }
        let mut roles: Vec<String> = files.iter().flat_map(|f| f.roles.iter().map(|r| r.name.name.clone())).collect();
        roles.sort();
        roles.dedup();
        let (processes, mut found, calendars) = check::check_project_and_calendars(&files, &self.sources);
        diagnostics.append(&mut found);
        diagnostics.sort_by(|a, b| {
            (a.file, a.span.start, a.code, &a.message).cmp(&(b.file, b.span.start, b.code, &b.message))
        });
        diagnostics.dedup();
        limit(&mut diagnostics);
        Compilation { processes, diagnostics, sources: self.sources.clone(), roles, calendars }
    }
}

/// Most diagnostics a compilation lists; the rest are counted in one last diagnostic, so that a
/// huge broken input (a million unknown names) gives a bounded report, quickly rendered.
pub const MAX_DIAGNOSTICS: usize = 500;

fn limit(diagnostics: &mut Vec<Diagnostic>) {
    if diagnostics.len() <= MAX_DIAGNOSTICS {
        return;
    }
    let rest = diagnostics.split_off(MAX_DIAGNOSTICS);
    let last = &diagnostics[MAX_DIAGNOSTICS - 1];
    let message = format!("{} more diagnostics are not listed", rest.len());
    // An error among those not listed still refuses the compilation.
    let summary = if rest.iter().any(Diagnostic::is_error) {
        Diagnostic::error(codes::TOO_MANY, last.file, last.span, message)
    } else {
        Diagnostic::warning(codes::TOO_MANY, last.file, last.span, message)
    };
    let help = format!("only the first {MAX_DIAGNOSTICS} are listed: fix them and check again");
    diagnostics.push(summary.with_label("after this one").with_help(help));
}

impl Compilation {
    /// True if any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// Every diagnostic rendered as text.
    pub fn render(&self) -> String {
        self.sources.render_all(&self.diagnostics)
    }

    /// The compiled process with this key.
    pub fn process(&self, key: &str) -> Option<&CompiledProcess> {
        self.processes.iter().find(|p| p.key == key)
    }
}
