//! Data moving in and out of nodes: assignments, job and message mappings, and the inputs
//! and outputs of a call checked against the called process's signature.

use std::collections::HashMap;

use super::{ProcessChecker, twice};
use crate::ast;
use crate::codes;
use crate::diag::Span;
use crate::expr::{Expr, ExprKind, Scope, Type};
use crate::model::Mapping;
use crate::suggest::did_you_mean;

impl ProcessChecker<'_> {
    pub(super) fn assignments(&mut self, assignments: &[ast::Assignment]) -> Vec<Mapping> {
        assignments
            .iter()
            .map(|a| {
                let (value, ty) = self.expr(&a.value);
                match self.declared.get(&a.name.name).cloned() {
                    Some((want, _)) => {
                        self.expect_fits(&want, &ty, a.value.span, &format!("the value assigned to `{}`", a.name.name))
                    }
                    None => self.unknown_variable(&a.name, "is assigned here"),
                }
                Mapping { name: a.name.name.clone(), value }
            })
            .collect()
    }

    fn mapping_value(m: &ast::Mapping) -> Expr {
        m.value.clone().unwrap_or(Expr { kind: ExprKind::Name(m.name.name.clone()), span: m.name.span })
    }

    pub(super) fn input_mappings(&mut self, mappings: &[ast::Mapping]) -> Vec<Mapping> {
        let mut seen = HashMap::new();
        mappings
            .iter()
            .map(|m| {
                self.unique_mapping(&mut seen, m);
                let (value, _) = self.expr(&Self::mapping_value(m));
                Mapping { name: m.name.name.clone(), value }
            })
            .collect()
    }

    fn unique_mapping(&mut self, seen: &mut HashMap<String, Span>, m: &ast::Mapping) {
        if let Some(first) = seen.insert(m.name.name.clone(), m.name.span) {
            let d = twice(
                self.file,
                m.name.span,
                first,
                format!("`{}` is mapped twice", m.name.name),
                "mapped",
                "keep one mapping per name",
            );
            self.diags.push(d);
        }
    }

    /// `out { var: expr }`: `var` is this process's; `expr` reads the job result, the message
    /// payload or (with `source`) the called process's variables.
    pub(super) fn output_mappings(&mut self, mappings: &[ast::Mapping], source: Option<&Scope>) -> Vec<Mapping> {
        let mut seen = HashMap::new();
        mappings
            .iter()
            .map(|m| {
                self.unique_mapping(&mut seen, m);
                let value_expr = Self::mapping_value(m);
                let (value, ty) = match source {
                    Some(scope) => self.expr_in(&value_expr, scope),
                    None => {
                        let mut open = Scope::new();
                        collect_names(&value_expr, &mut |n| open.insert(n, Type::Any));
                        self.expr_in(&value_expr, &open)
                    }
                };
                match self.declared.get(&m.name.name).cloned() {
                    Some((want, _)) => {
                        self.expect_fits(&want, &ty, value_expr.span, &format!("the value mapped to `{}`", m.name.name))
                    }
                    None => self.unknown_variable(&m.name, "is set by this mapping"),
                }
                Mapping { name: m.name.name.clone(), value }
            })
            .collect()
    }

    pub(super) fn call_mappings(
        &mut self,
        key: &ast::Ident,
        head: Span,
        inputs: &[ast::Mapping],
        outputs: &[ast::Mapping],
    ) -> (Vec<Mapping>, Vec<Mapping>) {
        let Some(sig) = self.signatures.get(key.name.as_str()) else {
            let help = match did_you_mean(&key.name, self.signatures.keys().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "check the process key, and that its file is part of the project".to_string(),
            };
            self.err(
                codes::UNKNOWN_PROCESS,
                key.span,
                format!("unknown process `{}`", key.name),
                "no process with this key",
                help,
            );
            let ins = self.input_mappings(inputs);
            return (ins, Vec::new());
        };
        let mut seen = HashMap::new();
        let mut ins = Vec::new();
        for m in inputs {
            self.unique_mapping(&mut seen, m);
            let (value, ty) = self.expr(&Self::mapping_value(m));
            match sig.inputs.iter().find(|(n, _, _)| *n == m.name.name) {
                Some((_, want, _)) => {
                    let want = want.clone();
                    self.expect_fits(
                        &want,
                        &ty,
                        Self::mapping_value(m).span,
                        &format!("input `{}` of `{}`", m.name.name, key.name),
                    );
                }
                None => {
                    let help = match did_you_mean(&m.name.name, sig.inputs.iter().map(|(n, _, _)| n.as_str())) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!(
                            "the inputs of `{}` are {}",
                            key.name,
                            sig.inputs.iter().map(|(n, _, _)| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                        ),
                    };
                    self.err(
                        codes::UNKNOWN_VARIABLE,
                        m.name.span,
                        format!("`{}` is not an input of process `{}`", m.name.name, key.name),
                        "unknown input",
                        help,
                    );
                }
            }
            ins.push(Mapping { name: m.name.name.clone(), value });
        }
        let missing: Vec<String> = sig
            .inputs
            .iter()
            .filter(|(n, _, optional)| !optional && !seen.contains_key(n))
            .map(|(n, _, _)| format!("`{n}`"))
            .collect();
        if !missing.is_empty() {
            self.err(
                codes::MISSING,
                head,
                format!("call of `{}` leaves required inputs unset: {}", key.name, missing.join(", ")),
                "missing inputs",
                format!("add them to the `in {{ }}` block, as in `in {{ {} }}`", missing.join(", ").replace('`', "")),
            );
        }
        let scope = sig.scope.clone();
        let outs = self.output_mappings(outputs, Some(&scope));
        (ins, outs)
    }
}

/// Calls `f` with every free variable name in `e` (the first segment of each path).
fn collect_names(e: &Expr, f: &mut dyn FnMut(&str)) {
    match &e.kind {
        ExprKind::Name(n) => f(n),
        _ => e.children().into_iter().for_each(|child| collect_names(child, f)),
    }
}
