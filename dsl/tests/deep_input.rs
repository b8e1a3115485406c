//! Deep and long input never aborts the compiler or the evaluator: it is compiled, or refused
//! with a diagnostic (E0002 when too deep). These tests run on the default 2 MiB test thread of
//! a debug build, the stack the server's deploy runs on too (a tokio worker thread).

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use cloverleaf_dsl::expr::{EvalContext, MAX_DEPTH, Scope, Type, Value, check_expr, eval, parse_expr};
use cloverleaf_dsl::{FileId, Format, Project, export};
use proptest::prelude::*;

/// A process whose `set` assigns `expr` to `x: decimal` and whose decide tests `cond`.
fn process_with(expr: &str, cond: &str, types: &str) -> String {
    format!(
        "process p {{\n  input {{ a: decimal, b: bool{types} }}\n  var x: decimal = 0\n  start -> s\n  set s {{ x = {expr} }} -> route\n  decide route {{\n    when {cond} -> done\n    otherwise -> done\n  }}\n  end done \"Done\"\n}}\n"
    )
}

/// Compiles `text`, renders its diagnostics and exports what compiled; the codes found.
fn compile(text: &str) -> Vec<&'static str> {
    let mut project = Project::new();
    project.add("deep.flow", text);
    let compilation = project.compile();
    let rendered = compilation.render();
    // A rendered diagnostic shows an excerpt of a line, never a whole long line.
    assert!(rendered.lines().all(|l| l.chars().count() < 400), "a rendered line is too long");
    for p in &compilation.processes {
        for format in [Format::Json, Format::Dot, Format::Mermaid] {
            let _ = export(p, format);
        }
        let json = p.to_json();
        let back: cloverleaf_dsl::CompiledProcess = serde_json::from_str(&json).expect("round trip");
        assert_eq!(&back, p);
    }
    compilation.diagnostics.iter().map(|d| d.code).collect()
}

/// Parses, checks and evaluates one expression; the error code if it is refused.
fn evaluate(src: &str) -> Option<&'static str> {
    let expr = match parse_expr(src, FileId(0)) {
        Ok(expr) => expr,
        Err(diag) => return Some(diag.code),
    };
    let scope = Scope::new().with("a", Type::Decimal).with("b", Type::Bool);
    let _ = check_expr(&expr, &scope, FileId(0));
    let vars = BTreeMap::from([("a".to_string(), Value::Number(1.into())), ("b".to_string(), Value::Bool(true))]);
    let now = Utc.with_ymd_and_hms(2026, 1, 31, 10, 0, 0).unwrap();
    let _ = eval(&expr, &EvalContext::new(&vars, now));
    let copy = expr.clone();
    assert_eq!(copy, expr);
    None
}

fn nested_if(n: usize) -> String {
    format!("{}a{}", "if b then a else ".repeat(n), "")
}

fn chain(op: &str, term: &str, n: usize) -> String {
    vec![term; n].join(op)
}

fn nested_list_type(n: usize) -> String {
    format!("{}decimal{}", "list<".repeat(n), ">".repeat(n))
}

fn nested_record_type(n: usize) -> String {
    format!("{}decimal{}", "record { f: ".repeat(n), " }".repeat(n))
}

fn nested_decides(n: usize) -> String {
    let mut s = String::from("done");
    for _ in 0..n {
        s = format!("decide {{\n when b -> {s}\n otherwise -> done }}");
    }
    format!("process p {{\n  input {{ b: bool }}\n  start -> {s}\n  end done \"Done\"\n}}\n")
}

fn chained_sets(n: usize) -> String {
    let sets = "set x = x + 1 -> ".repeat(n);
    format!("process p {{\n  var x: int = 0\n  start -> {sets}done\n  end done \"Done\"\n}}\n")
}

#[test]
fn shallow_enough_input_compiles() {
    let depth = MAX_DEPTH / 3;
    assert!(compile(&process_with(&nested_if(depth), "b", "")).is_empty());
    assert!(compile(&process_with(&chain(" + ", "a", depth), &chain(" and ", "b", depth), "")).is_empty());
    assert!(compile(&process_with("a", "b", &format!(", l: {}", nested_list_type(depth)))).is_empty());
    assert!(compile(&process_with("a", "b", &format!(", r: {}", nested_record_type(depth / 2)))).is_empty());
    assert!(compile(&nested_decides(depth / 2)).is_empty());
    assert!(compile(&chained_sets(depth / 2)).is_empty());
    assert_eq!(evaluate(&nested_if(depth)), None);
    assert_eq!(evaluate(&chain(" + ", "a", depth)), None);
    assert_eq!(evaluate(&chain(" ** ", "a", depth)), None);
}

/// The deepest `make(n)` the parser accepts (a binary search, compiling each input it tries
/// and the ones around the limit through every stage).
fn up_to_the_limit(make: impl Fn(usize) -> String) -> usize {
    let refused = |n: usize| compile(&make(n)).contains(&"E0002");
    assert!(refused(MAX_DEPTH + 1), "never refused up to {}", MAX_DEPTH + 1);
    let (mut ok, mut bad) = (1, MAX_DEPTH + 1);
    assert!(!refused(ok));
    while bad - ok > 1 {
        let mid = (ok + bad) / 2;
        if refused(mid) { bad = mid } else { ok = mid }
    }
    for n in ok.saturating_sub(3).max(1)..=ok {
        assert!(!refused(n));
    }
    ok
}

#[test]
fn input_at_the_limit_never_aborts() {
    // Every shape, at every depth up to the deepest the parser accepts, goes through every stage.
    let deepest = [
        up_to_the_limit(|n| process_with(&nested_if(n), "b", "")),
        up_to_the_limit(|n| process_with(&chain(" + ", "a", n), &chain(" or ", "b", n), "")),
        up_to_the_limit(|n| process_with(&chain(" ** ", "a", n), &chain(" and ", "b", n), "")),
        up_to_the_limit(|n| process_with("a", "b", &format!(", l: {}", nested_list_type(n)))),
        up_to_the_limit(|n| process_with("a", "b", &format!(", r: {}", nested_record_type(n)))),
        up_to_the_limit(nested_decides),
        up_to_the_limit(chained_sets),
    ];
    assert!(deepest.iter().all(|&n| n >= 30), "{deepest:?}");
    for n in (MAX_DEPTH / 2 - 8..=MAX_DEPTH / 2 + 1).chain(MAX_DEPTH - 8..=MAX_DEPTH + 1) {
        for src in [nested_if(n), chain(" + ", "a", n), chain(" ** ", "a", n), chain(" and ", "b", n)] {
            let _ = evaluate(&src);
        }
    }
}

#[test]
fn input_deeper_than_the_limit_is_refused_with_e0002() {
    for n in [MAX_DEPTH + 1, 3_000, 10_000] {
        assert!(compile(&process_with(&nested_if(n), "b", "")).contains(&"E0002"), "if {n}");
        assert!(compile(&process_with(&chain(" + ", "a", n), "b", "")).contains(&"E0002"), "+ {n}");
        assert!(compile(&process_with("a", &chain(" and ", "b", n), "")).contains(&"E0002"), "and {n}");
        assert!(compile(&process_with(&chain(" ** ", "a", n), "b", "")).contains(&"E0002"), "** {n}");
        let list = format!(", l: {}", nested_list_type(n));
        assert!(compile(&process_with("a", "b", &list)).contains(&"E0002"), "list {n}");
        let record = format!(", r: {}", nested_record_type(n));
        assert!(compile(&process_with("a", "b", &record)).contains(&"E0002"), "record {n}");
        assert!(compile(&nested_decides(n)).contains(&"E0002"), "decide {n}");
        assert!(compile(&chained_sets(n)).contains(&"E0002"), "set {n}");
        assert_eq!(evaluate(&nested_if(n)), Some("E0002"), "if {n}");
        assert_eq!(evaluate(&chain(" + ", "a", n)), Some("E0002"), "+ {n}");
        assert_eq!(evaluate(&chain(" or ", "b", n)), Some("E0002"), "or {n}");
        assert_eq!(evaluate(&chain(" ** ", "a", n)), Some("E0002"), "** {n}");
    }
}

/// An expression built from `layers` wrapped one around the other (iteratively, so that the
/// generator itself does not recurse): each layer is an operator, a bracket, an `if` or a call.
fn layered(layers: &[u8]) -> String {
    let mut e = String::from("a");
    for layer in layers {
        e = match layer % 10 {
            0 => format!("{e} + a"),
            1 => format!("a ** {e}"),
            2 => format!("if b then {e} else a"),
            3 => format!("({e})"),
            4 => format!("-{e}"),
            5 => format!("[{e}]"),
            6 => format!("max({e}, 1)"),
            7 => format!("{e} and b"),
            8 => format!("not {e}"),
            _ => format!("{e}.f"),
        };
    }
    e
}

/// A type built the same way: `list<...>`, `record { f: ... }` and `?` layers.
fn layered_type(layers: &[u8]) -> String {
    let mut t = String::from("decimal");
    for layer in layers {
        t = match layer % 3 {
            0 => format!("list<{t}>"),
            1 => format!("record {{ f: {t}, g: text }}"),
            _ => format!("list<{t}?>"),
        };
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn deep_and_long_expressions_never_abort(
        layers in proptest::collection::vec(any::<u8>(), 0..3_000),
        repeat in 1usize..1_000,
    ) {
        let e = layered(&layers);
        let _ = evaluate(&e);
        compile(&process_with(&e, &e, ""));
        let long = vec![e.as_str(); repeat].join(" + ");
        let _ = evaluate(&long);
        compile(&process_with(&long, "b", ""));
    }

    #[test]
    fn deep_types_never_abort(layers in proptest::collection::vec(any::<u8>(), 0..10_000)) {
        compile(&process_with("a", "b", &format!(", t: {}", layered_type(&layers))));
    }
}

#[test]
fn a_long_chain_of_tasks_does_not_overflow_the_graph_checks() {
    // The loop check once used a recursive strongly-connected-components search.
    let n = 30_000;
    let mut text = String::from("process p {\n  start -> t0\n");
    for k in 0..n {
        let next = if k + 1 == n { "done".to_string() } else { format!("t{}", k + 1) };
        text.push_str(&format!("  task t{k} {{ job \"j\" }} -> {next}\n"));
    }
    text.push_str("  end done \"Done\"\n}\n");
    assert!(compile(&text).is_empty());
}

#[test]
fn thousands_of_diagnostics_are_listed_up_to_a_bound() {
    let names: Vec<String> = (0..5_000).map(|i| format!("v{i}")).collect();
    let text = format!(
        "process p {{\n  var x: list<int> = [{}]\n  start -> done\n  end done \"Done\"\n}}\n",
        names.join(", ")
    );
    let codes = compile(&text);
    assert_eq!(codes.len(), cloverleaf_dsl::MAX_DIAGNOSTICS + 1);
    assert_eq!(codes.last(), Some(&"W0507"));
    let mut project = Project::new();
    project.add("many.flow", text);
    let compilation = project.compile();
    assert!(compilation.has_errors());
    assert!(
        compilation
            .diagnostics
            .last()
            .is_some_and(|d| d.is_error() && d.message == "4500 more diagnostics are not listed")
    );
}

#[test]
fn thousands_of_joins_fed_by_decides_are_checked_quickly() {
    let mut text = String::from("process p {\n  input { b: bool }\n  start -> d0\n");
    let n = 2_000;
    for k in 0..n {
        text.push_str(&format!(
            "  decide d{k} {{\n    when b -> x{k}\n    otherwise -> y{k}\n  }}\n  task x{k} {{ job \"j\" }} -> j{k}\n  task y{k} {{ job \"j\" }} -> j{k}\n  join j{k} -> d{}\n",
            k + 1
        ));
    }
    text.push_str(&format!(
        "  decide d{n} {{\n    when b -> done\n    otherwise -> done\n  }}\n  end done \"Done\"\n}}\n"
    ));
    let start = std::time::Instant::now();
    let codes = compile(&text);
    assert!(codes.iter().filter(|c| **c == "E0405").count() >= 400);
    assert!(start.elapsed() < std::time::Duration::from_secs(20), "{:?}", start.elapsed());
}

#[test]
fn huge_names_and_literals_are_quoted_in_part() {
    let huge = "x".repeat(1_000_000);
    // An unknown variable, an unknown node and an invalid date, each a megabyte long: every
    // rendered line stays short (`compile` checks it).
    let codes = compile(&process_with(&format!("{huge} + 1"), "b", ""));
    assert!(codes.contains(&"E0103"), "{codes:?}");
    let codes = compile(&format!("process p {{\n  start -> {huge}\n  end done \"Done\"\n}}\n"));
    assert!(codes.contains(&"E0101"), "{codes:?}");
    let codes = compile(&process_with(&format!("days between(date(\"{huge}\"), today())"), "b", ""));
    assert!(codes.contains(&"E0303"), "{codes:?}");
    let codes = compile(&format!("process p {{\n  {huge}\n}}\n"));
    assert!(codes.contains(&"E0001"), "{codes:?}");
}
