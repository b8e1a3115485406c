//! From pest pairs of `expr.pest` to the [`Expr`] tree.
//!
//! Building never fails: the grammar has already accepted the text. A literal that is well
//! formed but unrepresentable (a number beyond 28 significant digits, a duration that is not
//! whole seconds) becomes a call of its constructor on the source text, `number("...")` or
//! `duration("...")`, which the checker reports as an invalid literal (E0303).

use std::sync::LazyLock;

use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};
use rust_decimal::Decimal;

use super::ast::{BinaryOp, BusinessUnit, Expr, ExprKind, UnaryOp};
use crate::diag::Span;
use crate::grammar::Rule;

/// Seconds in one unit of a duration shorthand.
fn unit_seconds(unit: char) -> Option<i64> {
    match unit {
        'w' => Some(7 * 86_400),
        'd' => Some(86_400),
        'h' => Some(3_600),
        'm' => Some(60),
        's' => Some(1),
        _ => None,
    }
}

/// Parses a number literal (`10_000`, `0.01`) exactly; `None` if it does not fit a decimal.
pub(crate) fn parse_number(s: &str) -> Option<Decimal> {
    let digits: String = s.chars().filter(|&c| c != '_').collect();
    if digits.is_empty() || digits.starts_with('.') || digits.ends_with('.') {
        return None;
    }
    if !digits.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    digits.parse::<Decimal>().ok()
}

/// Parses a duration shorthand (`7d`, `24h`, `1.5h`) into whole seconds; `None` if it is not a
/// whole number of seconds or does not fit.
pub(crate) fn parse_duration(s: &str) -> Option<i64> {
    let unit = s.chars().last()?;
    let per_unit = unit_seconds(unit)?;
    let amount = parse_number(&s[..s.len() - 1])?;
    let seconds = amount.checked_mul(Decimal::from(per_unit))?;
    if !seconds.fract().is_zero() {
        return None;
    }
    i64::try_from(seconds.trunc()).ok()
}

/// The text of a `string` (or `string_inner`) pair with its escapes resolved.
pub(crate) fn unescape_string(pair: Pair<'_, Rule>) -> String {
    let raw = match pair.as_rule() {
        Rule::string => pair.into_inner().next().map_or("", |p| p.as_str()),
        _ => pair.as_str(),
    };
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// The canonical (FEEL) name of a built-in function as written: multi-word names have their
/// spacing normalised, snake_case aliases become the FEEL spelling. Unknown names are kept.
pub(crate) fn canonical_function_name(written: &str) -> String {
    let spaced = written.split_whitespace().collect::<Vec<_>>().join(" ");
    let name = match spaced.as_str() {
        "datetime" | "date_and_time" => "date and time",
        "string_length" => "string length",
        "starts_with" => "starts with",
        "ends_with" => "ends with",
        "upper_case" => "upper case",
        "lower_case" => "lower case",
        "list_contains" => "list contains",
        "round_half_even" => "round half even",
        "round_half_up" => "round half up",
        "round_up" => "round up",
        "round_down" => "round down",
        "days_between" => "days between",
        other => other,
    };
    name.to_string()
}

fn node(kind: ExprKind, span: Span) -> Expr {
    Expr { kind, span }
}

fn binary(op: BinaryOp, left: Expr, right: Expr) -> Expr {
    let span = left.span.to(right.span);
    node(ExprKind::Binary { op, left: Box::new(left), right: Box::new(right) }, span)
}

/// Builds the tree of an `expr` pair (or any rule of the expression grammar below it).
pub(crate) fn build_expr(pair: Pair<'_, Rule>) -> Expr {
    let span = Span::from(pair.as_span());
    match pair.as_rule() {
        Rule::expr_only => match pair.into_inner().find(|p| p.as_rule() == Rule::expr) {
            Some(inner) => build_expr(inner),
            None => node(ExprKind::Null, span),
        },
        Rule::expr | Rule::arith => build_operators(pair),
        Rule::lit_true => node(ExprKind::Bool(true), span),
        Rule::lit_false => node(ExprKind::Bool(false), span),
        Rule::lit_null => node(ExprKind::Null, span),
        Rule::number => match parse_number(pair.as_str()) {
            Some(n) => node(ExprKind::Number(n), span),
            None => constructor_call("number", pair.as_str(), span),
        },
        Rule::duration => match parse_duration(pair.as_str()) {
            Some(secs) => node(ExprKind::Duration(secs), span),
            None => constructor_call("duration", pair.as_str(), span),
        },
        Rule::business => {
            let mut parts = pair.into_inner();
            let count = match parts.next() {
                Some(p) if p.as_rule() == Rule::ident => {
                    node(ExprKind::Name(p.as_str().to_string()), p.as_span().into())
                }
                Some(p) => {
                    let digits: String = p.as_str().chars().filter(char::is_ascii_digit).collect();
                    // Digits always parse; an absurd count is the checker's to refuse (MAX_COUNT).
                    let n = Decimal::from_str_exact(&digits).unwrap_or(Decimal::MAX);
                    node(ExprKind::Number(n), p.as_span().into())
                }
                None => node(ExprKind::Null, span),
            };
            let unit = match parts.next().map(|p| p.as_str()) {
                Some(u) if u.starts_with("hour") => BusinessUnit::Hours,
                _ => BusinessUnit::Days,
            };
            node(ExprKind::Business { count: Box::new(count), unit }, span)
        }
        Rule::string | Rule::string_inner => node(ExprKind::Text(unescape_string(pair)), span),
        Rule::ident => node(ExprKind::Name(pair.as_str().to_string()), span),
        Rule::not_call => {
            let operand = pair.into_inner().find(|p| p.as_rule() == Rule::expr).map(build_expr);
            let operand = operand.unwrap_or_else(|| node(ExprKind::Null, span));
            node(ExprKind::Unary { op: UnaryOp::Not, operand: Box::new(operand) }, span)
        }
        Rule::if_expr => {
            let mut parts = pair.into_inner().filter(|p| p.as_rule() == Rule::expr).map(build_expr);
            let mut next = || Box::new(parts.next().unwrap_or_else(|| node(ExprKind::Null, span)));
            let (cond, then, otherwise) = (next(), next(), next());
            // The pair may end with whitespace skipped after the `else` branch.
            let span = Span::new(span.start, otherwise.span.end);
            node(ExprKind::If { cond, then, otherwise }, span)
        }
        Rule::call => {
            let mut function = String::new();
            let mut args = Vec::new();
            for p in pair.into_inner() {
                match p.as_rule() {
                    Rule::fn_name => function = canonical_function_name(p.as_str()),
                    _ => args.push(build_expr(p)),
                }
            }
            node(ExprKind::Call { function, args }, span)
        }
        Rule::paren => {
            let mut inner = pair.into_inner();
            let first = inner.next().map(build_expr).unwrap_or_else(|| node(ExprKind::Null, span));
            match inner.next() {
                Some(tail) => build_range(first, false, tail, span),
                None => Expr { span, ..first },
            }
        }
        Rule::bracket => {
            let mut inner = pair.into_inner();
            let Some(first) = inner.next() else {
                return node(ExprKind::List(Vec::new()), span);
            };
            let first = build_expr(first);
            match inner.next() {
                Some(tail) if tail.as_rule() == Rule::range_tail => build_range(first, true, tail, span),
                Some(tail) => {
                    let mut items = vec![first];
                    items.extend(tail.into_inner().map(build_expr));
                    node(ExprKind::List(items), span)
                }
                None => node(ExprKind::List(vec![first]), span),
            }
        }
        Rule::rev_range => {
            let mut inner = pair.into_inner();
            let first = inner.next().map(build_expr).unwrap_or_else(|| node(ExprKind::Null, span));
            match inner.next() {
                Some(tail) => build_range(first, false, tail, span),
                None => first,
            }
        }
        // Only reached through a misuse of the builder; keep it total rather than panic.
        _ => match pair.into_inner().next() {
            Some(inner) => build_expr(inner),
            None => node(ExprKind::Null, span),
        },
    }
}

/// `number("...")` / `duration("...")` standing in for an unrepresentable literal.
fn constructor_call(function: &str, text: &str, span: Span) -> Expr {
    let arg = node(ExprKind::Text(text.to_string()), span);
    node(ExprKind::Call { function: function.to_string(), args: vec![arg] }, span)
}

fn build_range(low: Expr, low_closed: bool, tail: Pair<'_, Rule>, span: Span) -> Expr {
    let mut high = None;
    let mut high_closed = false;
    for p in tail.into_inner() {
        match p.as_rule() {
            Rule::range_close => high_closed = p.as_str() == "]",
            _ => high = Some(build_expr(p)),
        }
    }
    let high = high.unwrap_or_else(|| node(ExprKind::Null, span));
    node(ExprKind::Range { low: Box::new(low), high: Box::new(high), low_closed, high_closed }, span)
}

/// Operator precedence, lowest first (the grammar lists operands and operators flat).
static PRATT: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    PrattParser::new()
        .op(Op::infix(Rule::kw_or, Assoc::Left))
        .op(Op::infix(Rule::kw_and, Assoc::Left))
        .op(Op::prefix(Rule::not_op))
        .op(Op::infix(Rule::cmp_op, Assoc::Left)
            | Op::infix(Rule::kw_in, Assoc::Left)
            | Op::postfix(Rule::between_tail))
        .op(Op::infix(Rule::add_op, Assoc::Left))
        .op(Op::infix(Rule::mul_op, Assoc::Left))
        .op(Op::infix(Rule::pow_op, Assoc::Right))
        .op(Op::prefix(Rule::neg_op))
        .op(Op::postfix(Rule::field_access))
});

fn build_operators(pair: Pair<'_, Rule>) -> Expr {
    PRATT
        .map_primary(build_expr)
        .map_prefix(|op, operand| {
            let span = Span::new(op.as_span().start(), operand.span.end);
            let op = if op.as_rule() == Rule::neg_op { UnaryOp::Neg } else { UnaryOp::Not };
            node(ExprKind::Unary { op, operand: Box::new(operand) }, span)
        })
        .map_postfix(|target, op| {
            let span = Span::new(target.span.start, op.as_span().end());
            if op.as_rule() == Rule::field_access {
                let field = op.into_inner().next().map_or(String::new(), |f| f.as_str().to_string());
                return node(ExprKind::Field { target: Box::new(target), field }, span);
            }
            let mut bounds = op.into_inner().filter(|p| p.as_rule() == Rule::arith).map(build_expr);
            let mut next = || Box::new(bounds.next().unwrap_or_else(|| node(ExprKind::Null, span)));
            let (low, high) = (next(), next());
            let span = target.span.to(high.span);
            node(ExprKind::Between { value: Box::new(target), low, high }, span)
        })
        .map_infix(|left, op, right| {
            let op = match (op.as_rule(), op.as_str()) {
                (Rule::kw_or, _) => BinaryOp::Or,
                (Rule::kw_and, _) => BinaryOp::And,
                (Rule::kw_in, _) => BinaryOp::In,
                (_, "=" | "==") => BinaryOp::Eq,
                (_, "!=") => BinaryOp::Ne,
                (_, "<") => BinaryOp::Lt,
                (_, "<=") => BinaryOp::Le,
                (_, ">") => BinaryOp::Gt,
                (_, ">=") => BinaryOp::Ge,
                (_, "+") => BinaryOp::Add,
                (_, "-") => BinaryOp::Sub,
                (_, "*") => BinaryOp::Mul,
                (_, "/") => BinaryOp::Div,
                _ => BinaryOp::Pow,
            };
            binary(op, left, right)
        })
        .parse(pair.into_inner())
}

#[cfg(test)]
mod tests {
    use pest::Parser;

    use super::*;
    use crate::grammar::FlowParser;

    /// Parses `src` and renders the tree as S-expressions.
    fn sexp(src: &str) -> String {
        let mut pairs = FlowParser::parse(Rule::expr_only, src).unwrap_or_else(|e| panic!("{src}: {e}"));
        show(&build_expr(pairs.next().unwrap()))
    }

    fn show(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Null => "null".into(),
            ExprKind::Bool(b) => b.to_string(),
            ExprKind::Number(n) => n.to_string(),
            ExprKind::Text(t) => format!("{t:?}"),
            ExprKind::Duration(s) => format!("{s}s"),
            ExprKind::Business { count, unit } => format!("{}b{unit:?}", show(count)),
            ExprKind::Name(n) => n.clone(),
            ExprKind::Field { target, field } => format!("{}.{field}", show(target)),
            ExprKind::List(items) => format!("[{}]", items.iter().map(show).collect::<Vec<_>>().join(" ")),
            ExprKind::Range { low, high, low_closed, high_closed } => format!(
                "{}{}..{}{}",
                if *low_closed { "[" } else { "(" },
                show(low),
                show(high),
                if *high_closed { "]" } else { ")" }
            ),
            ExprKind::Unary { op, operand } => format!("({op:?} {})", show(operand)),
            ExprKind::Binary { op, left, right } => format!("({op:?} {} {})", show(left), show(right)),
            ExprKind::Between { value, low, high } => {
                format!("(between {} {} {})", show(value), show(low), show(high))
            }
            ExprKind::If { cond, then, otherwise } => {
                format!("(if {} {} {})", show(cond), show(then), show(otherwise))
            }
            ExprKind::Call { function, args } => {
                format!("({function:?}{})", args.iter().map(|a| format!(" {}", show(a))).collect::<String>())
            }
        }
    }

    fn check(src: &str, expect: &str) {
        assert_eq!(sexp(src), expect, "{src}");
    }

    fn rejects(rule: Rule, src: &str) {
        assert!(FlowParser::parse(rule, src).is_err(), "{src} should not parse");
    }

    /// What prefix of `src` an embedded `expr` consumes (the span of its tree).
    fn prefix(src: &str) -> &str {
        let pair = FlowParser::parse(Rule::expr, src).unwrap().next().unwrap();
        let span = build_expr(pair).span;
        &src[span.start..span.end]
    }

    #[test]
    fn precedence() {
        check("1 + 2 * 3", "(Add 1 (Mul 2 3))");
        check("1 + 2 * 3 = 7", "(Eq (Add 1 (Mul 2 3)) 7)");
        check("a - b - c", "(Sub (Sub a b) c)");
        check("a / b * c", "(Mul (Div a b) c)");
        check("-2 ** 2", "(Pow (Neg 2) 2)");
        check("2 ** 3 ** 2", "(Pow 2 (Pow 3 2))");
        check("2 * 3 ** 2", "(Mul 2 (Pow 3 2))");
        check("not a and b", "(And (Not a) b)");
        check("not a = b", "(Not (Eq a b))");
        check("not(a) = b", "(Eq (Not a) b)");
        check("not (a) = b", "(Eq (Not a) b)");
        check("not not a", "(Not (Not a))");
        check("a or b and c", "(Or a (And b c))");
        check("a and b or c and d", "(Or (And a b) (And c d))");
        check("a < b and c >= d", "(And (Lt a b) (Ge c d))");
        check("(1 + 2) * 3", "(Mul (Add 1 2) 3)");
        check("--a", "(Neg (Neg a))");
        check("-a.b", "(Neg a.b)");
        check("a == b", "(Eq a b)");
        check("a != b", "(Ne a b)");
        check("a <= b", "(Le a b)");
        check("a > b", "(Gt a b)");
    }

    #[test]
    fn business_counts() {
        check("due_date + 30 business days", "(Add due_date 30bDays)");
        check("d - 1 business day", "(Sub d 1bDays)");
        check("now() + 4 business hours", "(Add (\"now\") 4bHours)");
        check("1_000 business hour", "1000bHours");
        check("3\tbusiness  days", "3bDays");
        // A variable counts too; a name that only starts like the word is still a name.
        check("due_date + n business days", "(Add due_date nbDays)");
        check("grace business hours", "gracebHours");
        check("business + 1", "(Add business 1)");
        check("n + business_days", "(Add n business_days)");
        rejects(Rule::expr_only, "n\nbusiness days");
        // Without `business`, a number followed by a name is not one operand.
        rejects(Rule::expr_only, "3 days");
        rejects(Rule::expr_only, "3 business weeks");
        rejects(Rule::expr_only, "3 business dayz");
        rejects(Rule::expr_only, "3 business");
        // Only spaces between the words: `3` and `business` on two lines are two things.
        rejects(Rule::expr_only, "3\nbusiness days");
        assert_eq!(prefix("3 business days -> next"), "3 business days");
    }

    #[test]
    fn if_between_in() {
        check("if a then 1 else 2", "(if a 1 2)");
        check("if a then 1 else if b then 2 else 3", "(if a 1 (if b 2 3))");
        check("1 + if a then 1 else 2 + 3", "(Add 1 (if a 1 (Add 2 3)))");
        check("x between 1 and 10", "(between x 1 10)");
        check("x between a + 1 and b and c", "(And (between x (Add a 1) b) c)");
        check("x in [1, 2]", "(In x [1 2])");
        check("x in [1..10]", "(In x [1..10])");
        check("x in (1..10]", "(In x (1..10])");
        check("x in [1..10)", "(In x [1..10))");
        check("x in (1..10)", "(In x (1..10))");
        check("x in ]1..10[", "(In x (1..10))");
        check("x in [a..b]", "(In x [a..b])");
        check("x in [1 .. 10]", "(In x [1..10])");
        check("x in list", "(In x list)");
        check("risk in [\"A\", \"B\"]", "(In risk [\"A\" \"B\"])");
        // Chained comparisons parse (left to right); the checker refuses `bool < decimal`.
        check("a < b < c", "(Lt (Lt a b) c)");
        check("x between 1 and 2 = y", "(Eq (between x 1 2) y)");
        check("a + x between 1 and 2 * 3", "(between (Add a x) 1 (Mul 2 3))");
        check("not x between 1 and 2 and y", "(And (Not (between x 1 2)) y)");
        check("x in [1] and y", "(And (In x [1]) y)");
        check("a = not b", "(Eq a (Not b))");
        rejects(Rule::expr_only, "x between 1");
        rejects(Rule::expr_only, "x between 1 or 2");
    }

    #[test]
    fn literals() {
        check("10_000", "10000");
        check("10_000.00", "10000.00");
        check("0.01", "0.01");
        check("7d", "604800s");
        check("2w", "1209600s");
        check("24h", "86400s");
        check("30m", "1800s");
        check("1_000s", "1000s");
        check("1.5h", "5400s");
        check("0.5s", "(\"duration\" \"0.5s\")");
        check("99999999999999999999999999999999", "(\"number\" \"99999999999999999999999999999999\")");
        check("true", "true");
        check("false", "false");
        check("null", "null");
        check(r#""a\"b\\c\nd\te\{""#, r#""a\"b\\c\nd\te{""#);
        check("[]", "[]");
        check("[1, 2,]", "[1 2]");
        check("[[1], []]", "[[1] []]");
        check("truely", "truely");
        check("nullable", "nullable");
        check("order.customer.name", "order.customer.name");
        check("date(\"2026-01-31\").year", "(\"date\" \"2026-01-31\").year");
        rejects(Rule::expr_only, "7x");
        rejects(Rule::expr_only, "10_");
        rejects(Rule::expr_only, "1.5.");
        rejects(Rule::expr_only, "\"unterminated");
        rejects(Rule::expr_only, "\"bad \\q escape\"");
        rejects(Rule::expr_only, "and");
        rejects(Rule::expr_only, "in");
    }

    #[test]
    fn number_and_duration_helpers() {
        assert_eq!(parse_number("10_000"), Some(Decimal::from(10_000)));
        assert_eq!(parse_number("1.50").map(|d| d.to_string()), Some("1.50".into()));
        assert_eq!(parse_number("abc"), None);
        assert_eq!(parse_number("1e3"), None);
        assert_eq!(parse_duration("1.5h"), Some(5400));
        assert_eq!(parse_duration("0.01m"), None);
        assert_eq!(parse_duration("1.5s"), None);
        assert_eq!(parse_duration("7x"), None);
        assert_eq!(parse_duration("99999999999999999999w"), None);
    }

    #[test]
    fn functions_and_aliases() {
        check("string length(s)", "(\"string length\" s)");
        check("string_length(s)", "(\"string length\" s)");
        check("string   length (s)", "(\"string length\" s)");
        check("date and time(\"2026-01-31T10:00:00Z\")", "(\"date and time\" \"2026-01-31T10:00:00Z\")");
        check("datetime(x)", "(\"date and time\" x)");
        check("date_and_time(x)", "(\"date and time\" x)");
        check("starts with(a, \"x\")", "(\"starts with\" a \"x\")");
        check("ends_with(a, \"x\")", "(\"ends with\" a \"x\")");
        check("upper case(a)", "(\"upper case\" a)");
        check("lower_case(a)", "(\"lower case\" a)");
        check("list contains(l, 1)", "(\"list contains\" l 1)");
        check("round half even(x, 2)", "(\"round half even\" x 2)");
        check("round_half_up(x, 2)", "(\"round half up\" x 2)");
        check("days between(a, b)", "(\"days between\" a b)");
        check("days_between(a, b)", "(\"days between\" a b)");
        check("max(1, 2, 3)", "(\"max\" 1 2 3)");
        check("today()", "(\"today\")");
        check("foo(1)", "(\"foo\" 1)");
        // `date and time` is a function name only when a call follows.
        check("date and timely", "(And date timely)");
        check("date and time", "(And date time)");
    }

    #[test]
    fn stops_where_the_flow_grammar_takes_over() {
        assert_eq!(
            prefix("amount <= 10_000 and risk in [\"A\", \"B\"] -> approved"),
            "amount <= 10_000 and risk in [\"A\", \"B\"]"
        );
        assert_eq!(prefix("y - z -> next"), "y - z");
        assert_eq!(prefix("y-z->next"), "y-z");
        assert_eq!(prefix("invoice_id\n    out { paid: amount }"), "invoice_id");
        assert_eq!(prefix("invoice_id\n    in { x }"), "invoice_id");
        assert_eq!(prefix("due_date + 7d, due_date + 30d -> x"), "due_date + 7d");
        assert_eq!(prefix("a +\n  b # comment\n -> x"), "a +\n  b");
        assert_eq!(prefix("initiator not by x"), "initiator");
        assert_eq!(prefix("x = 1\n  y: int"), "x = 1");
        assert_eq!(prefix("x between 1 and 2  # c\n -> y"), "x between 1 and 2");
        assert_eq!(prefix("if a then b else c\n -> y"), "if a then b else c");
    }

    #[test]
    fn spans_point_at_the_right_bytes() {
        let src = "amount + fee.total * 2";
        let mut pairs = FlowParser::parse(Rule::expr_only, src).unwrap();
        let e = build_expr(pairs.next().unwrap());
        assert_eq!(e.span, Span::new(0, 22));
        let ExprKind::Binary { left, right, .. } = &e.kind else { panic!() };
        assert_eq!(&src[left.span.start..left.span.end], "amount");
        let ExprKind::Binary { left, right, .. } = &right.kind else { panic!() };
        assert_eq!(&src[left.span.start..left.span.end], "fee.total");
        assert_eq!(&src[right.span.start..right.span.end], "2");
        // Every node's span covers exactly its text, without surrounding blanks or comments.
        let src = "-x -> a";
        let pair = FlowParser::parse(Rule::expr, src).unwrap().next().unwrap();
        assert_eq!(build_expr(pair).span, Span::new(0, 2));
        for (src, text) in [
            ("not  a # c\n", "not  a"),
            ("(a + b) ", "(a + b)"),
            ("x between 1 and 2 ", "x between 1 and 2"),
            ("if a then b else c  ", "if a then b else c"),
            ("round( x , 2 ) ", "round( x , 2 )"),
            ("[1..2) ", "[1..2)"),
            ("a.b.c ", "a.b.c"),
            ("- a ", "- a"),
        ] {
            let pair = FlowParser::parse(Rule::expr, src).unwrap().next().unwrap();
            let span = build_expr(pair).span;
            assert_eq!(&src[span.start..span.end], text, "{src:?}");
        }
    }

    #[test]
    fn unescapes_string_inner_too() {
        let pair = FlowParser::parse(Rule::string, "\"a\\\"b\"").unwrap().next().unwrap();
        let inner = pair.clone().into_inner().next().unwrap();
        assert_eq!(inner.as_rule(), Rule::string_inner);
        assert_eq!(unescape_string(pair), "a\"b");
        assert_eq!(unescape_string(inner), "a\"b");
    }

    #[test]
    fn ident_is_never_a_keyword() {
        for kw in ["and", "or", "not", "in", "if", "then", "else", "true", "false", "null", "between"] {
            rejects(Rule::ident, kw);
        }
        for ok in ["android", "order", "notes", "int", "iffy", "_x", "a1"] {
            assert_eq!(FlowParser::parse(Rule::ident, ok).unwrap().as_str(), ok);
        }
    }
}
