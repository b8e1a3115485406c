//! Pest's syntax errors put in words: what was found, what the grammar expected (by names a
//! user knows, not rule names), and a hint for the usual mistakes.

use pest::error::{ErrorVariant, InputLocation};

use crate::codes;
use crate::diag::{Diagnostic, FileId, Span};
use crate::grammar::Rule;

/// E0001 for a pest error, pointing at what was found instead of what was expected.
pub(super) fn syntax_error(file: FileId, text: &str, err: pest::error::Error<Rule>) -> Diagnostic {
    let pos = match err.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let found = describe_found(text, pos);
    let end = pos + found_len(&text[pos..]);
    if let ErrorVariant::CustomError { message } = &err.variant
        && message.contains("limit reached")
    {
        // pest stops before its recursion exhausts the stack.
        return Diagnostic::error(codes::TOO_DEEP, file, Span::new(pos, end), "the file is nested too deeply to parse")
            .with_label("too deep")
            .with_help(
                "split deeply nested expressions into several assignments, or lead to named nodes instead of nesting",
            );
    }
    if let Some(quote) = unterminated_string(text, pos) {
        return unterminated_string_error(file, quote);
    }
    if text[pos..].trim().is_empty() {
        return Diagnostic::error(codes::SYNTAX, file, Span::new(pos, end), "the file ends inside a block")
            .with_label("expected `}` before the end of the file")
            .with_help("a block is not closed: check that every `{` has its `}`");
    }
    if after_title_zh(&text[..pos]) {
        return Diagnostic::error(codes::SYNTAX, file, Span::new(pos, end), format!("expected the title in Chinese, found {found}"))
            .with_label("expected a quoted title after `zh`")
            .with_help("write the title in Simplified Chinese in double quotes, as in `\"Ship the order\" zh \"订单发货\"`, or leave `zh` out");
    }
    let (message, label) = match &err.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            let mut words: Vec<String> = positives.iter().filter_map(|r| describe_rule(*r)).collect();
            words.sort();
            words.dedup();
            if words.iter().any(|w| w == "an expression") {
                words.retain(|w| w != "a name");
            }
            let expected = join_alternatives(&words);
            if expected.is_empty() {
                (format!("unexpected {found}"), "not valid here".to_string())
            } else {
                (format!("expected {expected}, found {found}"), format!("expected {expected}"))
            }
        }
        ErrorVariant::CustomError { message } => (message.clone(), String::new()),
    };
    Diagnostic::error(codes::SYNTAX, file, Span::new(pos, end), message)
        .with_label(label)
        .with_help(syntax_help(text, pos))
}

/// True when `before` ends with a quoted title and `zh` (`"Ship" zh`): a Chinese title is due.
fn after_title_zh(before: &str) -> bool {
    before
        .trim_end()
        .strip_suffix("zh")
        .is_some_and(|head| head.ends_with(char::is_whitespace) && head.trim_end().ends_with('"'))
}

/// The offset of the opening quote of a string left open on the line of `pos`, if the syntax
/// error at `pos` lies inside it (strings end on their line).
pub(crate) fn unterminated_string(text: &str, pos: usize) -> Option<usize> {
    let pos = pos.min(text.len());
    let line_start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
    let line = &text.as_bytes()[line_start..line_end];
    let mut open = None;
    let mut i = 0;
    while i < line.len() {
        match (line[i], open) {
            (b'#', None) => break,
            (b'"', None) => open = Some(line_start + i),
            (b'"', Some(_)) => open = None,
            (b'\\', Some(_)) => i += 1,
            _ => {}
        }
        i += 1;
    }
    open.filter(|&quote| quote <= pos)
}

/// E0001 for a string without its closing quote, pointing at the opening one.
pub(crate) fn unterminated_string_error(file: FileId, quote: usize) -> Diagnostic {
    Diagnostic::error(codes::SYNTAX, file, Span::new(quote, quote + 1), "unterminated string")
        .with_label("this string has no closing `\"` on its line")
        .with_help("close the string with `\"`; a string cannot span lines (write `\\n` for a line break)")
}

/// Length in bytes of the token at the start of `rest`: a word, `->`, or one character.
fn found_len(rest: &str) -> usize {
    let word: usize = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').map(char::len_utf8).sum();
    if word > 0 {
        word
    } else if rest.starts_with("->") || rest.starts_with("=>") {
        2
    } else {
        rest.chars().next().map_or(0, char::len_utf8)
    }
}

fn describe_found(text: &str, pos: usize) -> String {
    let rest = &text[pos..];
    match rest.chars().next() {
        None => "the end of the file".to_string(),
        Some('\n') => "the end of the line".to_string(),
        Some(_) => format!("`{}`", &rest[..found_len(rest)]),
    }
}

fn syntax_help(text: &str, pos: usize) -> String {
    let before = text[..pos].trim_end();
    let rest = &text[pos..];
    if rest.starts_with("=>") {
        "flows are written with `->`".to_string()
    } else if before.ends_with("->") {
        "after `->` write the name of the next node, `decide { ... }` or `set x = ... -> next`".to_string()
    } else if before.ends_with('=') || rest.starts_with("->") {
        "an expression is missing here, such as `0`, `\"text\"` or `amount * 2`".to_string()
    } else {
        "see the language reference in README.md for the clauses each block takes".to_string()
    }
}

/// Grammar rules that only occur inside expressions: users see "an expression" for all of them.
const EXPRESSION_RULES: &[&str] = &[
    "expr",
    "expr_list",
    "expr_only",
    "add_op",
    "arith",
    "between_tail",
    "bracket",
    "call",
    "cmp_op",
    "field_access",
    "fn_name",
    "if_expr",
    "kw_and",
    "kw_in",
    "kw_or",
    "kw_not",
    "kw_if",
    "kw_between",
    "kw_then",
    "kw_else",
    "lit_false",
    "lit_null",
    "lit_true",
    "mul_op",
    "neg_op",
    "not_call",
    "not_op",
    "paren",
    "pow_op",
    "range_close",
    "range_tail",
    "rev_range",
    "list_tail",
    "number",
    "duration",
    "business",
    "business_count",
    "business_unit",
    "string",
];

/// The words a user sees for a grammar rule; `None` for rules that add nothing to the list.
fn describe_rule(rule: Rule) -> Option<String> {
    let name = format!("{rule:?}");
    if let Some(kw) = name.strip_prefix("k_") {
        return Some(format!("`{kw}`"));
    }
    let word = match name.as_str() {
        "ident" | "node_ref" | "start_name" => "a name",
        "title" => "a quoted string",
        "title_zh" => "`zh` and the title in Simplified Chinese",
        "target" | "next" => "`->`",
        "role_name" => "a role name such as `sales.manager`",
        "type_expr" | "named_type" => "a type",
        "EOI" => "the end of the file",
        "file" | "process" => "`process`, `roles` or `calendar`",
        "day_date" => "a date such as `2026-02-16`",
        "clock" => "a time of day such as `09:00`",
        "clock_span" => "working hours such as `09:00-17:00`",
        "day_span" => "weekdays such as `mon-fri`",
        "optional" | "backoff_fixed" | "string_inner" => return None,
        other if EXPRESSION_RULES.contains(&other) => "an expression",
        other => return Some(other.replace('_', " ")),
    };
    Some(word.to_string())
}

fn join_alternatives(words: &[String]) -> String {
    match words {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}
