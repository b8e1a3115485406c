//! Diagnostics: what went wrong, where, and how to fix it.
//!
//! Every stage of the pipeline reports problems as [`Diagnostic`]s instead of stopping at the first
//! one. A diagnostic points at a [`Span`] of a source file and renders as
//!
//! ```text
//! error[E0101]: unknown node `aprove`
//!   --> processes/order_approval.flow:12:12
//!    |
//! 12 |   start -> aprove
//!    |            ^^^^^^ no node of this name in process `order_approval`
//!    |
//!    = help: did you mean `approve`?
//! ```

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// A byte range of one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Span {
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end` (byte offsets).
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

impl From<pest::Span<'_>> for Span {
    fn from(span: pest::Span<'_>) -> Self {
        Span { start: span.start(), end: span.end() }
    }
}

/// Index of a file in a [`SourceMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct FileId(pub u32);

/// How bad a diagnostic is: errors refuse the process, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The process cannot be compiled or deployed.
    Error,
    /// The process compiles, but something looks wrong.
    Warning,
}

/// A secondary location that explains the primary one (for example the first of two duplicates).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// Where.
    pub span: Span,
    /// What is there.
    pub message: String,
}

/// One problem found in a source file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Stable code, such as `E0101`; the catalogue is in `codes`.
    pub code: &'static str,
    /// Error or warning.
    pub severity: Severity,
    /// The file it is in.
    pub file: FileId,
    /// One-line summary, lowercase, no trailing period.
    pub message: String,
    /// The primary location.
    pub span: Span,
    /// What is wrong at the primary location.
    pub label: String,
    /// Related locations in the same file.
    pub notes: Vec<Note>,
    /// How to fix it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn error(code: &'static str, file: FileId, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: Severity::Error,
            file,
            message: bounded(message.into()),
            span,
            label: String::new(),
            notes: Vec::new(),
            help: None,
        }
    }

    /// A warning at `span`.
    pub fn warning(code: &'static str, file: FileId, span: Span, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, file, span, message) }
    }

    /// Sets the label shown under the caret.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = bounded(label.into());
        self
    }

    /// Sets the help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(bounded(help.into()));
        self
    }

    /// Adds a related location.
    pub fn with_note(mut self, span: Span, message: impl Into<String>) -> Self {
        self.notes.push(Note { span, message: bounded(message.into()) });
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Most characters of a message, label, help or note: a longer one (it quotes a huge name or
/// literal from the source) keeps its start and end around a `…`.
pub const MAX_MESSAGE: usize = 300;

fn bounded(text: String) -> String {
    let len = text.chars().count();
    if len <= MAX_MESSAGE {
        return text;
    }
    let head: String = text.chars().take(MAX_MESSAGE - 61).collect();
    let tail: String = text.chars().skip(len - 60).collect();
    format!("{head}…{tail}")
}

/// One loaded source file.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The name shown in diagnostics (usually the path as given).
    pub name: String,
    /// The text.
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// Wraps a file's name and text.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        let text = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile { name: name.into(), text, line_starts }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let before = self.text.get(start..offset);
        let col = before.map_or(offset - start, |s| if s.is_ascii() { s.len() } else { s.chars().count() }) + 1;
        (line + 1, col)
    }

    /// The text of a 1-based line, without its line break.
    pub fn line_text(&self, line: usize) -> &str {
        let start = self.line_starts[line - 1];
        let end = self.line_starts.get(line).copied().unwrap_or(self.text.len());
        self.text[start..end].trim_end_matches(['\n', '\r'])
    }
}

/// The files of one compilation, so that diagnostics can be rendered with their source lines.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    /// An empty map.
    pub fn new() -> Self {
        SourceMap::default()
    }

    /// Adds a file and returns its id.
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        self.files.push(SourceFile::new(name, text));
        FileId(self.files.len() as u32 - 1)
    }

    /// The file with this id.
    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    /// Every file with its id, in the order added.
    pub fn iter(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files.iter().enumerate().map(|(i, f)| (FileId(i as u32), f))
    }

    /// Renders one diagnostic as plain text (no colour), ending with a newline.
    pub fn render(&self, diag: &Diagnostic) -> String {
        let file = self.get(diag.file);
        let (line, col) = file.line_col(diag.span.start);
        let severity = match diag.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut out = String::new();
        let _ = writeln!(out, "{severity}[{}]: {}", diag.code, diag.message);
        let mut lines = vec![diag.span.start];
        lines.extend(diag.notes.iter().map(|n| n.span.start));
        let width = lines.iter().map(|&o| file.line_col(o).0.to_string().len()).max().unwrap_or(1);
        let pad = " ".repeat(width);
        let _ = writeln!(out, "{pad}--> {}:{line}:{col}", file.name);
        let _ = writeln!(out, "{pad} |");
        render_snippet(&mut out, file, diag.span, '^', &diag.label, width);
        for note in &diag.notes {
            let (nline, ncol) = file.line_col(note.span.start);
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{pad} = note: {}:{nline}:{ncol}", file.name);
            render_snippet(&mut out, file, note.span, '-', &note.message, width);
        }
        if let Some(help) = &diag.help {
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{pad} = help: {help}");
        }
        out
    }

    /// Renders several diagnostics, separated by blank lines.
    pub fn render_all<'a>(&self, diags: impl IntoIterator<Item = &'a Diagnostic>) -> String {
        diags.into_iter().map(|d| self.render(d)).collect::<Vec<_>>().join("\n")
    }
}

/// Most characters of a source line a diagnostic shows; a longer line is cut to an excerpt
/// around the caret, with `…` where it was cut.
pub const MAX_EXCERPT: usize = 120;
/// How many characters of the excerpt come before the caret, when the line is cut.
const EXCERPT_BEFORE: usize = 40;

fn render_snippet(out: &mut String, file: &SourceFile, span: Span, mark: char, label: &str, width: usize) {
    let (line, col) = file.line_col(span.start);
    let text = file.line_text(line);
    let line_len = text.chars().count();
    // A span that runs past its first line is underlined to the end of that line.
    let (end_line, end_col) = file.line_col(span.end);
    let underline_end = if end_line == line { end_col } else { line_len + 1 };
    // The excerpt: characters `first..last` of the line (0-based), never more than MAX_EXCERPT.
    let (first, last) = if line_len <= MAX_EXCERPT {
        (0, line_len)
    } else {
        let first = (col - 1).saturating_sub(EXCERPT_BEFORE).min(line_len - MAX_EXCERPT);
        (first, first + MAX_EXCERPT)
    };
    let cut_before = if first > 0 { "…" } else { "" };
    let cut_after = if last < line_len { "…" } else { "" };
    let shown: String = text.chars().skip(first).take(last - first).map(|c| if c == '\t' { ' ' } else { c }).collect();
    let carets = underline_end.min(last + 1).saturating_sub(col).max(1);
    let _ = writeln!(out, "{line:>width$} | {cut_before}{shown}{cut_after}");
    let marks: String = std::iter::repeat_n(mark, carets).collect();
    let gap = " ".repeat(col - 1 - first + cut_before.chars().count());
    if label.is_empty() {
        let _ = writeln!(out, "{:width$} | {gap}{marks}", "");
    } else {
        let _ = writeln!(out, "{:width$} | {gap}{marks} {label}", "");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_line_col_source_and_caret() {
        let mut map = SourceMap::new();
        let id = map.add("a.flow", "process p {\n  start -> aprove\n}\n");
        let diag = Diagnostic::error("E0101", id, Span::new(23, 29), "unknown node `aprove`")
            .with_label("no node of this name")
            .with_help("did you mean `approve`?");
        let text = map.render(&diag);
        assert_eq!(
            text,
            "error[E0101]: unknown node `aprove`\n --> a.flow:2:12\n  |\n2 |   start -> aprove\n  |            ^^^^^^ no node of this name\n  |\n  = help: did you mean `approve`?\n"
        );
    }

    #[test]
    fn long_lines_show_an_excerpt_around_the_caret() {
        let mut map = SourceMap::new();
        let long = format!("x = \"{}", "a".repeat(5_000_000));
        let id = map.add("a.flow", format!("process p {{\n{long}\n}}\n"));
        let at = 12 + 2_000_000;
        let diag = Diagnostic::error("E0001", id, Span::new(at, at + 3), "unexpected `a`").with_label("here");
        let text = map.render(&diag);
        assert!(text.len() < 1_000, "{}", text.len());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[3], format!("2 | …{}…", "a".repeat(MAX_EXCERPT)));
        assert_eq!(lines[4], format!("  | {}^^^ here", " ".repeat(EXCERPT_BEFORE + 1)));
        // Near the start of a long line: no cut before; near its end: no cut after.
        let diag = Diagnostic::error("E0001", id, Span::new(12, 13), "m");
        let text = map.render(&diag);
        assert!(text.contains(&format!("2 | x = \"{}…\n  | ^\n", "a".repeat(MAX_EXCERPT - 5))), "{text}");
        let end = 12 + long.len() - 1;
        let text = map.render(&Diagnostic::error("E0001", id, Span::new(end, end + 1), "m"));
        assert!(
            text.contains(&format!("2 | …{}\n  | {}^\n", "a".repeat(MAX_EXCERPT), " ".repeat(MAX_EXCERPT))),
            "{text}"
        );
    }

    #[test]
    fn messages_quoting_huge_names_are_shortened() {
        let name = "x".repeat(1_000_000);
        let diag = Diagnostic::error("E0103", FileId(0), Span::new(0, 1), format!("unknown variable `{name}`"))
            .with_label(format!("`{name}`"))
            .with_help(format!("did you mean `{name}`?"))
            .with_note(Span::new(0, 1), name.clone());
        for text in [&diag.message, &diag.label, diag.help.as_ref().unwrap(), &diag.notes[0].message] {
            assert_eq!(text.chars().count(), MAX_MESSAGE, "{}", text.len());
        }
        assert!(diag.message.starts_with("unknown variable `xxx") && diag.message.ends_with("xxx`"));
        assert!(diag.message.contains('…'));
        let short = Diagnostic::error("E0103", FileId(0), Span::new(0, 1), "unknown variable `x`");
        assert_eq!(short.message, "unknown variable `x`");
    }

    #[test]
    fn line_col_counts_characters_not_bytes() {
        let file = SourceFile::new("x", "é = 1\nab");
        assert_eq!(file.line_col(3), (1, 3));
        assert_eq!(file.line_col(8), (2, 2));
        assert_eq!(file.line_col(999), (2, 3));
    }
}
