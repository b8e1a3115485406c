//! Arbitrary text as an expression: parse it, and if it parses, type-check it against an empty
//! scope and evaluate it against no variables at a fixed `now`. Errors are fine; panics are not.
//!
//! The expression is evaluated even when the checker refuses it: the evaluator must answer
//! ill-typed input with an error, never a panic.

#![no_main]

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cloverleaf_dsl::SourceMap;
use cloverleaf_dsl::expr::{self, EvalContext, Scope, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let mut sources = SourceMap::new();
    let file = sources.add("<fuzz>", text);
    let parsed = match expr::parse_expr(text, file) {
        Ok(parsed) => parsed,
        Err(diag) => {
            let _ = sources.render(&diag);
            return;
        }
    };
    let (_ty, diags) = expr::check_expr(&parsed, &Scope::new(), file);
    let _ = sources.render_all(&diags);

    let vars: BTreeMap<String, Value> = BTreeMap::new();
    // 2026-11-30T10:00:00Z: a fixed instant, so that a crash reproduces.
    let now: DateTime<Utc> = DateTime::from_timestamp(1_796_032_800, 0).expect("a valid instant");
    if let Ok(value) = expr::eval(&parsed, &EvalContext::new(&vars, now)) {
        let _ = value.to_string();
        let _ = expr::is_true(&value);
    }
});
