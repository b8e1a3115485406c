//! BPMN 2.0 XML → `.flow` text: the executable subset, from Cloverleaf's own export or from
//! Camunda Modeler.
//!
//! Each flow element becomes its node (start and end events, service tasks with a job type →
//! `task`, user tasks → `approval`, Cloverleaf script tasks → `set`, exclusive gateways →
//! `decide`, parallel gateways → `parallel` / `join`, event-based gateways → `wait first`,
//! receive tasks and message catch events → `receive`, timer catch events → `wait`, call
//! activities → `call`); boundary events become the clauses of their host. An exclusive gateway
//! with one way out only merges flows, which `.flow` does by naming the same target twice, so it
//! is left out. What the document carries under the Cloverleaf namespace (see
//! `export/bpmn/extensions.rs`) is taken as written; Camunda's attributes and extensions
//! (`camunda:topic`, `camunda:candidateGroups`, `camunda:formData`, `camunda:in`, …) and simple
//! JUEL or FEEL conditions are translated. Every element that cannot be translated gets a
//! diagnostic at its place in the XML; layout (BPMNDI), lanes, documentation and annotations
//! are dropped, as `.flow` has no place for them.
//!
//! Pure: the caller reads the file and renders the diagnostics with a [`crate::SourceMap`].

mod nodes;
mod read;
mod timers;
mod translate;
mod write;

use crate::diag::{Diagnostic, FileId, Span};

/// The outcome of an import.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The `.flow` text, when no diagnostic is an error.
    pub flow: Option<String>,
    /// Every problem found, in document order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Imported {
    /// True if any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Translates the BPMN document `xml` (file `file` of the caller's source map) to `.flow` text.
pub fn from_bpmn(file: FileId, xml: &str) -> Imported {
    let doc = match roxmltree::Document::parse(xml) {
        Ok(doc) => doc,
        Err(e) => {
            let pos = e.pos();
            let at = offset_of(xml, pos.row as usize, pos.col as usize);
            let diag = Diagnostic::error(crate::codes::BAD_XML, file, Span::new(at, at + 1), "malformed XML")
                .with_label(e.to_string())
                .with_help(
                    "fix the XML (an editor or `xmllint --noout FILE` shows where it breaks), then import again",
                );
            return Imported { flow: None, diagnostics: vec![diag] };
        }
    };
    let (processes, mut diagnostics) = read::read(&doc, file);
    diagnostics.sort_by_key(|d| d.span.start);
    let flow = (!diagnostics.iter().any(Diagnostic::is_error)).then(|| write::write(&processes));
    Imported { flow, diagnostics }
}

/// The byte offset of a 1-based row and column (in characters).
fn offset_of(text: &str, row: usize, col: usize) -> usize {
    let line_start: usize = text.split_inclusive('\n').take(row.saturating_sub(1)).map(str::len).sum();
    let line = &text[line_start.min(text.len())..];
    let in_line: usize = line.chars().take(col.saturating_sub(1)).map(char::len_utf8).sum();
    (line_start + in_line).min(text.len().saturating_sub(1))
}
