//! Expressions: the FEEL-flavoured language of conditions, assignments and mappings.
//!
//! Process designers coming from Camunda write what they know: `amount <= 10_000 and risk in
//! ["A", "B"]`, `if vip then 30d else 14d`, `x between 1 and 10`, `string length(name) > 3`,
//! `date("2026-01-31") + 7d`. The pipeline is parse ([`parse_expr`], or the flow parser through
//! `build_expr`), check ([`check_expr`], [`check_condition`]) and [`eval`](fn@eval).
//!
//! ```text
//! let e = parse_expr("round(amount * 1.19, 2)", file)?;
//! let (ty, diags) = check_expr(&e, &Scope::new().with("amount", Type::Money), file);
//! let v = eval(&e, &EvalContext::new(&vars, now))?;
//! ```
//!
//! # Semantics
//!
//! - Numbers are exact decimals (`rust_decimal`, 28 significant digits), never floats:
//!   `0.1 + 0.2 = 0.3` is true. A result keeps the scale arithmetic gives it (`1.50 * 2` is
//!   `3.00`; a quotient drops trailing zeros: `7 / 2` is `3.5`), while `=` compares by value
//!   (`1.50 = 1.5`, `10_000.00 = 10000`).
//! - **Deliberate deviations from FEEL**, for finance: arithmetic overflow and division by zero
//!   are evaluation *errors*, not `null` (a silent null would send a decision to `otherwise`);
//!   comparing values of unrelated kinds (`1 = "1"`) is an error too; `sum([])` is 0.
//! - `null` follows FEEL: arithmetic and `<`-style comparisons with null give null; `=` treats
//!   null as a value; `and`/`or` are three-valued; `if` takes `else` on null; only `true` is
//!   true for `decide` ([`is_true`]).
//! - `round(n, scale)` rounds half away from zero (commercial rounding; also `round half up`);
//!   `decimal(n, scale)` and `round half even` round half to even, as FEEL's `decimal` does.
//!   A rounded number shows `scale` places: `round(1234.5, 2)` is `1234.50`.
//! - Durations are whole seconds: `7d`, `24h`, `30m`, `45s`, `2w`, `1.5h`, `duration("P1DT2H")`.
//!   date ± duration is a date when the duration is whole days, else a datetime (from midnight
//!   UTC); date − date is a duration; a date compares with a datetime at its midnight UTC.
//! - Calendar months and years (`duration("P1M")`, `"P1Y"`, `"P1Y6M"`, `"-P3M"`) move a date or
//!   datetime: `invoice_date + duration("P1M")`, `due - duration("P1Y")`. End-of-month rule: a
//!   day that does not exist in the target month becomes its last day (Jan 31 + P1M = Feb 28,
//!   Feb 29 in a leap year; Mar 31 − P1M = Feb 28); the day is never carried into the next
//!   month, and a month end does not stay one (Feb 28 + P1M = Mar 28). A datetime keeps its
//!   time of day (UTC). Months have no fixed length, so such a duration is not a value: it is
//!   only written as a literal beside a date (the checker refuses it elsewhere, E0303).
//! - Business days and hours count on the process's calendar ([`crate::calendar`]):
//!   `due_date + 30 business days` is a date, `now() + 4 business hours` a datetime,
//!   `due_date - 2 business days` counts back. `3 business days` is not a value: alone it is
//!   only written as a timer (`due 3 business days`), where it counts from the node's entry.
//! - Dates have fields `.year`, `.month`, `.day`, `.weekday` (1 = Monday), datetimes also
//!   `.hour`, `.minute`, `.second`, durations `.days`, `.hours`, `.minutes`, `.seconds`.
//!
//! # Syntax choices
//!
//! Precedence, lowest first: `if`, `or`, `and`, prefix `not`, comparisons (`=`, `==`, `!=`,
//! `<`, `<=`, `>`, `>=`, `between`, `in`; a chain `a < b < c` parses left to right and the
//! checker refuses it), `+ -`, `* /`, `**` (right-associative), prefix `-`, `.field`. The
//! grammar is flat and a Pratt parser applies the precedence, so nesting costs little stack
//! (brackets or prefix operators deeper than 64 levels are refused, and so is any tree deeper
//! than [`MAX_DEPTH`], a chain of operators counting one level per operator: E0002). Hence `-2 ** 2` is `(-2) ** 2 = 4`, and
//! `not a = b` is `not (a = b)` as in SQL; `not(x)` directly followed by a parenthesis is
//! FEEL's function and binds like a value: `not(a) = b` is `(not a) = b`.
//!
//! Multi-word built-ins (`string length`, `date and time`, `days between`, ...) are names only
//! when a call follows; their snake_case spelling (`string_length`, `datetime`) is an alias.

pub mod ast;
mod builtins;
mod check;
mod eval;
pub(crate) mod parse;
pub mod types;
mod value;

pub use ast::*;
pub use check::{Scope, check_condition, check_expr, check_timer};
pub use eval::{EvalContext, EvalError, eval, is_true};
pub use types::Type;
pub use value::{Value, ValueError};

use pest::Parser as _;
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;

use crate::codes;
use crate::diag::{Diagnostic, FileId, Span};
use crate::grammar::{FlowParser, Rule};

/// Deepest bracket nesting [`parse_expr`] accepts (deeper input is refused, not overflowed).
const MAX_NESTING: usize = 64;

/// Deepest syntax tree the compiler builds: every stage after the grammar (building the tree,
/// type checking, graph lowering, evaluation, export, and dropping the tree) recurses along
/// it, so this bound is what keeps them within a 2 MiB thread stack on a debug build. Each
/// bracket, `if`, call, list, type, in-place decide or set counts one level or two, and each
/// operator of a chain one (`a + b + c` is a tree two levels deep).
pub const MAX_DEPTH: usize = 256;

/// Parses a whole string as one expression (as `cloverleaf eval` does). Spans are byte offsets
/// into `src`; a syntax error is diagnostic `E0001`.
#[allow(clippy::result_large_err)] // one diagnostic, on a path that is never hot
pub fn parse_expr(src: &str, file: FileId) -> Result<Expr, Diagnostic> {
    check_nesting(src, file)?;
    match FlowParser::parse(Rule::expr_only, src) {
        Ok(mut pairs) => match pairs.next() {
            Some(pair) => {
                check_depth(&pair, file)?;
                Ok(parse::build_expr(pair))
            }
            None => Err(Diagnostic::error(codes::SYNTAX, file, Span::new(0, src.len()), "expected an expression")),
        },
        Err(error) => Err(syntax_error(&error, src, file)),
    }
}

/// Refuses text nested deeper than the parser's stack allows: brackets, and runs of prefix
/// `-` / `not`. The flow parser runs it on a file before parsing it.
#[allow(clippy::result_large_err)] // one diagnostic, on a path that is never hot
pub(crate) fn check_nesting(src: &str, file: FileId) -> Result<(), Diagnostic> {
    let bytes = src.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let (mut depth, mut prefix_run) = (0usize, 0usize);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        // Brackets inside strings and comments nest nothing: skip them (a string ends at its
        // closing quote or at the end of its line, a comment at the end of its line).
        if b == b'"' || b == b'#' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'\n' && !(b == b'"' && bytes[i] == b'"') {
                i += if b == b'"' && bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += usize::from(b == b'"');
            prefix_run = 0;
            continue;
        }
        let mut width = 1;
        match b {
            b'(' | b'[' => depth += 1,
            b')' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        let not_word = bytes[i..].starts_with(b"not")
            && (i == 0 || !is_word(bytes[i - 1]))
            && bytes.get(i + 3).is_none_or(|&c| !is_word(c));
        if b == b'-' || not_word {
            prefix_run += 1;
            width = if not_word { 3 } else { 1 };
        } else if !b.is_ascii_whitespace() {
            prefix_run = 0;
        }
        if depth > MAX_NESTING || prefix_run > MAX_NESTING {
            let message = format!("expression nested more than {MAX_NESTING} levels deep");
            return Err(Diagnostic::error(codes::TOO_DEEP, file, Span::new(i, i + width), message)
                .with_label("too deep")
                .with_help("split it into several assignments"));
        }
        i += width;
    }
    Ok(())
}

/// Operators of the flat `expr` rule: each one adds a level to the tree the Pratt parser builds.
fn is_operator(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::kw_or
            | Rule::kw_and
            | Rule::cmp_op
            | Rule::kw_in
            | Rule::add_op
            | Rule::mul_op
            | Rule::pow_op
            | Rule::neg_op
            | Rule::not_op
            | Rule::field_access
            | Rule::between_tail
    )
}

/// Refuses a parse tree whose syntax tree would be deeper than [`MAX_DEPTH`], before anything
/// recursive walks it. The walk is iterative, and linear in the size of the tree: an upper
/// bound of the depth of every expression, type and in-place node below `root`.
#[allow(clippy::result_large_err)] // one diagnostic, on a path that is never hot
pub(crate) fn check_depth(root: &Pair<'_, Rule>, file: FileId) -> Result<(), Diagnostic> {
    let mut stack = vec![(root.clone(), 1usize)];
    while let Some((pair, depth)) = stack.pop() {
        let step = match pair.as_rule() {
            Rule::expr | Rule::arith => 1 + pair.clone().into_inner().filter(|p| is_operator(p.as_rule())).count(),
            _ => 1,
        };
        let mut children = pair.clone().into_inner().peekable();
        if depth + step > MAX_DEPTH && children.peek().is_some() {
            // Point at the construct whose parts would be too deep: the start of a long chain
            // of operators, or the innermost level of nesting that still fits.
            let start = pair.as_span().start();
            let width = pair.as_str().chars().next().map_or(0, char::len_utf8);
            let message = format!("nesting deeper than {MAX_DEPTH} levels");
            let label = if step > 1 {
                format!("this expression chains {} operators: each is a level", step - 1)
            } else {
                "too deep: each bracket, `if`, type, in-place node and chained operator is a level".to_string()
            };
            return Err(Diagnostic::error(codes::TOO_DEEP, file, Span::new(start, start + width), message)
                .with_label(label)
                .with_help(
                    "nest less: split a long expression into several assignments, name an in-place decide, or flatten the type",
                ));
        }
        stack.extend(children.map(|child| (child, depth + step)));
    }
    Ok(())
}

/// Words for what the parser expected, instead of grammar rule names.
fn expected_word(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::expr | Rule::arith => "an expression",
        Rule::ident | Rule::number | Rule::duration | Rule::string | Rule::lit_true | Rule::lit_false => "a value",
        Rule::lit_null | Rule::call | Rule::paren | Rule::bracket | Rule::rev_range | Rule::if_expr => "a value",
        Rule::not_call | Rule::neg_op | Rule::not_op => "a value",
        Rule::cmp_op | Rule::add_op | Rule::mul_op | Rule::pow_op | Rule::kw_and | Rule::kw_or => "an operator",
        Rule::kw_in | Rule::field_access | Rule::between_tail => "an operator",
        Rule::kw_then => "`then`",
        Rule::kw_else => "`else`",
        Rule::range_tail | Rule::range_close => "`..` or a closing bracket",
        Rule::list_tail => "`,` or `]`",
        Rule::field_name => "a field name",
        Rule::EOI => "the end of the expression",
        _ => return None,
    })
}

fn syntax_error(error: &pest::error::Error<Rule>, src: &str, file: FileId) -> Diagnostic {
    let (start, end) = match error.location {
        InputLocation::Pos(p) => (p, p),
        InputLocation::Span((s, e)) => (s, e),
    };
    if let ErrorVariant::CustomError { message } = &error.variant
        && message.contains("limit reached")
    {
        // pest stops before its recursion exhausts the stack.
        return Diagnostic::error(
            codes::TOO_DEEP,
            file,
            Span::new(start, end),
            "expression nested too deeply to parse",
        )
        .with_label("too deep")
        .with_help("split it into several assignments");
    }
    if let Some(quote) = crate::parser::unterminated_string(src, start) {
        return crate::parser::unterminated_string_error(file, quote);
    }
    let found = src[start.min(src.len())..].chars().next();
    let message = match found {
        Some(c) => format!("unexpected `{c}` in expression"),
        None => "unexpected end of expression".to_string(),
    };
    let end = match found {
        Some(c) if end == start => start + c.len_utf8(),
        _ => end,
    };
    let mut words: Vec<&str> = match &error.variant {
        ErrorVariant::ParsingError { positives, .. } => positives.iter().filter_map(|r| expected_word(*r)).collect(),
        ErrorVariant::CustomError { .. } => Vec::new(),
    };
    words.sort_unstable();
    words.dedup();
    let label = match words.as_slice() {
        [] => "not valid here".to_string(),
        [one] => format!("expected {one}"),
        [init @ .., last] => format!("expected {} or {last}", init.join(", ")),
    };
    Diagnostic::error(codes::SYNTAX, file, Span::new(start, end), message).with_label(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_syntax_error(src: &str, message: &str, label: &str, span: (usize, usize)) {
        let diag = parse_expr(src, FileId(0)).unwrap_err();
        assert_eq!((diag.code, diag.message.as_str(), diag.label.as_str()), ("E0001", message, label), "{src}");
        assert_eq!(diag.span, Span::new(span.0, span.1), "{src}");
    }

    #[test]
    fn syntax_errors_speak_words() {
        check_syntax_error("1 +", "unexpected end of expression", "expected a value", (3, 3));
        check_syntax_error(
            "a b",
            "unexpected `b` in expression",
            "expected an operator or the end of the expression",
            (2, 3),
        );
        check_syntax_error("if a then b", "unexpected end of expression", "expected `else`", (11, 11));
        check_syntax_error("(1 + 2", "unexpected end of expression", "expected `..` or a closing bracket", (6, 6));
        check_syntax_error("", "unexpected end of expression", "expected an expression", (0, 0));
    }

    #[test]
    fn junk_never_panics() {
        let junk = [
            "",
            " ",
            "(((",
            ")))",
            "[..]",
            "]]",
            "1..2",
            "\"",
            "\\",
            "é",
            "1 ++ 2",
            "->",
            "not",
            "if",
            "date and time(",
            "a.",
            ".a",
            "[1..",
            "(1..2",
            "x in",
            "x between 1",
            "7dd",
            "1__0",
            "#",
            "a = = b",
            "**",
            "- -> x",
            "\u{0}",
            "🦀 + 1",
            "round(,)",
            "f(1,,2)",
        ];
        for src in junk {
            let _ = parse_expr(src, FileId(0));
        }
        let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(parse_expr(&deep, FileId(0)).is_err());
        let negs = format!("{}1", "-".repeat(10_000));
        assert!(parse_expr(&negs, FileId(0)).is_err());
        let nots = format!("{}true", "not ".repeat(10_000));
        assert!(parse_expr(&nots, FileId(0)).is_err());
        assert!(parse_expr(&format!("{}true", "not ".repeat(MAX_NESTING)), FileId(0)).is_ok());
        assert!(parse_expr("nothing - notes - - 1", FileId(0)).is_ok());
        // Brackets in strings and comments are not nesting.
        let quoted = format!("\"{}\" + \"\\\"{}\"", "(".repeat(100), "[".repeat(100));
        assert!(parse_expr(&quoted, FileId(0)).is_ok(), "{quoted}");
        assert!(parse_expr(&format!("1 # {}\n + 2", "(".repeat(100)), FileId(0)).is_ok());
        let ok = format!("{}1{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
        assert!(parse_expr(&ok, FileId(0)).is_ok());
        // Unclosed nesting of every kind parses in linear time (a regression would hang here).
        let units = ["f(", "[", "(", "(1..", "[1, ", "if a then ", "date and time(", "days between(", "x between ("];
        for unit in units {
            assert!(parse_expr(&unit.repeat(60), FileId(0)).is_err(), "{unit}");
        }
        // Every byte prefix of a realistic expression.
        let src = "if amount >= 10_000.00 and risk in [\"A\", \"B\"] then round(amount * 1.19, 2) else [1..2)";
        for end in 0..=src.len() {
            if src.is_char_boundary(end) {
                let _ = parse_expr(&src[..end], FileId(0));
            }
        }
    }
}
