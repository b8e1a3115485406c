//! An operator's repair of a running instance: a token cancelled, a token started before a node
//! of the main flow, a declared variable set to a value of its type. Each is one step, recorded in
//! the history chain with the operator and the reason; whatever does not fit is refused with
//! what and why ([`Rejection::CannotModify`]) and changes nothing.

use cloverleaf_dsl::expr::Value;
use cloverleaf_dsl::model::{NodeKind, admit};

use crate::effect::{HistoryEvent, HistoryKind};
use crate::event::Modification;
use crate::rejection::Rejection;

use super::Machine;
use super::migrate::contexts;

fn refuse(what: impl Into<String>, why: impl Into<String>) -> Rejection {
    Rejection::CannotModify { problems: vec![(what.into(), why.into())] }
}

impl Machine<'_> {
    pub(super) fn modify(&mut self, modification: Modification, by: String, reason: String) -> Result<(), Rejection> {
        if reason.trim().is_empty() {
            return Err(refuse("reason", "say why: it goes into the instance's history"));
        }
        let mut h = HistoryEvent::new(HistoryKind::Modified, None);
        h.who = Some(by);
        match modification {
            Modification::CancelToken { token } => {
                let Some(t) = self.inst.tokens.get(&token) else {
                    let live: Vec<String> =
                        self.inst.tokens.iter().map(|(id, t)| format!("{id} at `{}`", t.node)).collect();
                    return Err(refuse(
                        format!("token {token}"),
                        format!("the instance has no such token; its tokens: {}", live.join(", ")),
                    ));
                };
                if self.inst.tokens.len() == 1 {
                    return Err(refuse(
                        format!("token {token}"),
                        "it is the instance's last token: cancel the instance instead",
                    ));
                }
                h.node = Some(t.node.clone());
                h.detail = Some(format!("cancelled token {token} at `{}`: {reason}", t.node));
                self.history(h);
                self.close_waits(token);
                self.inst.tokens.remove(&token);
            }
            Modification::StartBefore { node } => {
                let Some(found) = self.def.node(&node) else {
                    return Err(refuse(format!("node {node}"), "the definition the instance runs has no such node"));
                };
                if matches!(found.kind, NodeKind::Join { .. }) {
                    return Err(refuse(
                        format!("node {node}"),
                        "a join waits for the branches of its split: start a token before a node of a branch instead",
                    ));
                }
                match contexts(self.def).get(node.as_str()) {
                    Some(ctx) if ctx.is_empty() => {}
                    Some(_) => {
                        return Err(refuse(
                            format!("node {node}"),
                            "it lies inside a parallel branch or a side path, where a lone token would never be \
                             joined: start it before a node of the main flow",
                        ));
                    }
                    None => {
                        return Err(refuse(format!("node {node}"), "no start of the definition reaches it"));
                    }
                }
                h.node = Some(node.clone());
                h.detail = Some(format!("started a token before `{node}`: {reason}"));
                self.history(h);
                let token = self.new_token(Vec::new());
                self.move_to(token, &node);
            }
            Modification::SetVariable { name, value } => {
                let declared = self.def.inputs.iter().chain(&self.def.vars).find(|v| v.name == name);
                let Some(ty) = self.types.get(&name).cloned() else {
                    return Err(refuse(
                        format!("variable {name}"),
                        "the definition the instance runs declares no such variable",
                    ));
                };
                let converted = match &value {
                    serde_json::Value::Null if declared.is_some_and(|d| !d.optional) => {
                        return Err(refuse(format!("variable {name}"), "it is not optional (`?`): give a value"));
                    }
                    serde_json::Value::Null => Value::Null,
                    json => {
                        Value::from_json(json, &ty).map_err(|e| refuse(format!("variable {name}"), e.to_string()))?
                    }
                };
                if let Some(d) = declared {
                    admit(&converted, &d.ty, &d.bounds).map_err(|rule| refuse(format!("variable {name}"), rule))?;
                }
                h.detail = Some(format!("set `{name}`: {reason}"));
                h.variables.insert(name.clone(), converted.clone());
                self.history(h);
                self.inst.variables.insert(name, converted);
            }
        }
        Ok(())
    }
}
