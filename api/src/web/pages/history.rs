//! A case's history in words: each entry's kind in the reader's language, the step by its title,
//! and an operator's move to another version or repair by hand as a sentence with its reason.
//!
//! The engine records a migration's versions and reason, and a repair's action and reason, in
//! the entry's detail sentence (`migrated from v1 to v2: REASON`, `set `risk`: REASON`); the
//! page reads them back from there and falls back to the sentence as written when it does not
//! have that shape.

use std::collections::HashMap;
use std::sync::Arc;

use cloverleaf_dsl::CompiledProcess;
use cloverleaf_dsl::model::NodeKind;
use cloverleaf_engine::store::HistoryRow;
use cloverleaf_engine::{HistoryEvent, Instance};

use super::show;
use crate::web::{Viewer, esc, i18n};

/// The catalogue key of each history kind's word.
const KIND_WORDS: &[(&str, &str)] = &[
    ("started", "kind_started"),
    ("entered", "kind_entered"),
    ("assigned", "kind_assigned"),
    ("decided", "kind_decided"),
    ("job_completed", "kind_job_completed"),
    ("job_failed", "kind_job_failed"),
    ("business_error", "kind_business_error"),
    ("task_completed", "kind_task_completed"),
    ("task_delegated", "kind_task_delegated"),
    ("timer_fired", "kind_timer_fired"),
    ("message_received", "kind_message_received"),
    ("child_completed", "kind_child_completed"),
    ("child_failed", "kind_child_failed"),
    ("end_reached", "kind_end_reached"),
    ("incident_raised", "kind_incident_raised"),
    ("incident_resolved", "kind_incident_resolved"),
    ("completed", "kind_completed"),
    ("failed", "kind_failed"),
    ("cancelled", "kind_cancelled"),
    ("migrated", "kind_migrated"),
    ("modified", "kind_modified"),
];

/// The word for history kind `kind`; a kind this page does not know, as written.
pub(super) fn kind_word(viewer: &Viewer, kind: &str) -> String {
    KIND_WORDS.iter().find(|(k, _)| *k == kind).map_or_else(|| kind.replace('_', " "), |(_, key)| viewer.t(key).into())
}

/// A step as people know it: its title, with the case's values in its placeholders
/// (`Approve order {order_id}`), else its name.
pub(super) fn step(case: &Case<'_>, name: &str) -> String {
    // A node without a name of its own (`approve:decide`) belongs to the step it is named after;
    // a decision written there is that step's outcome ("Outcome of Approve the order").
    if let Some((owner, _)) = name.split_once(':')
        && case.definition.node(owner).is_some()
    {
        let owner_step = step(case, owner);
        return match case.definition.node(name).map(|n| &n.kind) {
            Some(NodeKind::Decide { .. }) => case.lang.t("outcome_of").replace("{step}", &owner_step),
            _ => owner_step,
        };
    }
    let Some(node) = case.definition.node(name) else { return name.to_string() };
    let Some(template) = i18n::node_title(case.lang, node) else {
        // An untitled join, split or decision by what it does, not by its name in the source.
        return crate::web::diagram::structural_name(case.lang, node).map_or_else(|| name.to_string(), str::to_string);
    };
    i18n::render_title(case.lang, case.definition, template, case.instance.variables(), case.now)
}

/// The case whose history is shown: its instance and the definition it runs.
pub(super) struct Case<'a> {
    /// The definition the instance runs now.
    pub definition: &'a CompiledProcess,
    /// The instance.
    pub instance: &'a Instance,
    /// The reader's language: steps are named in it where the process words them so.
    pub lang: i18n::Lang,
    /// The time the page is read at, for titles whose placeholders read it.
    pub now: chrono::DateTime<chrono::Utc>,
    /// The process each call step starts (its latest version), by the call step's name: an
    /// outcome the child reached is the name of its end, shown by that end's title.
    pub called: HashMap<String, Arc<CompiledProcess>>,
}

/// The end `outcome` of the process call step `call` starts, by its title in the reader's
/// language (`approved` is 订单已批准 to a Chinese reader); `None` when it names no end of it.
fn outcome_title(case: &Case<'_>, call: &str, outcome: &str) -> Option<String> {
    let end = case.called.get(call)?.node(outcome)?;
    matches!(end.kind, NodeKind::End { .. }).then(|| i18n::node_title(case.lang, end).map(str::to_string))?
}

/// Variable `name`'s value `value` in words, where a call step set it to the outcome its child
/// reached: that end's title (see [`outcome_title`]).
pub(super) fn outcome_value(case: &Case<'_>, name: &str, value: &str) -> Option<String> {
    case.definition.nodes.iter().find_map(|node| match &node.kind {
        NodeKind::Call { outputs, .. } => outputs
            .iter()
            .any(|m| m.name == name && m.value.source().trim() == "outcome")
            .then(|| outcome_title(case, &node.name, value))
            .flatten(),
        _ => None,
    })
}

/// Where decision `node` led when it took the arm `why` (an arm's condition as written, or
/// `otherwise`): the step's name, if the definition still has that arm.
fn decided_next<'a>(case: &'a Case<'_>, node: &str, why: &str) -> Option<&'a str> {
    let NodeKind::Decide { arms, otherwise } = &case.definition.node(node)?.kind else { return None };
    if why == "otherwise" {
        return otherwise.as_deref();
    }
    arms.iter().find(|arm| arm.when.source() == why).map(|arm| arm.next.as_str())
}

/// False for the entries that only say a token passed through the start, a step's inner node
/// (`approve:decide`) or an untitled join, split or decision (once per branch at a join): the
/// machine's bookkeeping, which the next entry says in words. The history API keeps every entry.
pub(super) fn worth_showing(case: &Case<'_>, row: &HistoryRow) -> bool {
    let Some(node) = row.node.as_deref().filter(|_| row.kind == "entered") else { return true };
    let Some(found) = case.definition.node(node) else { return true };
    let start = matches!(found.kind, NodeKind::Start { .. });
    let structural = found.title.is_none() && crate::web::diagram::structural_name(case.lang, found).is_some();
    !start && !structural && !node.contains(':')
}

/// Fills the `{key}` placeholders of a catalogue sentence with escaped values, in one pass (a
/// value that holds `{reason}` stays as written).
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&esc(&rest[..open]));
        let after = &rest[open + 1..];
        match after.find('}').and_then(|close| values.iter().find(|(k, _)| *k == &after[..close]).map(|v| (close, v))) {
            Some((close, (_, value))) => {
                out.push_str(&esc(value));
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(&esc(rest));
    out
}

/// The "what" cell of history entry `row`, as HTML.
pub(super) fn what(viewer: &Viewer, case: &Case<'_>, row: &HistoryRow) -> String {
    let entry: Option<HistoryEvent> = serde_json::from_str(&row.detail).ok();
    let detail = entry.as_ref().and_then(|e| e.detail.as_deref()).unwrap_or_default();
    let sentence = match row.kind.as_str() {
        "migrated" => migrated(viewer, detail),
        "modified" => entry.as_ref().and_then(|e| modified(viewer, case, e, detail)),
        "task_delegated" => detail.strip_prefix("to ").map(|to| fill(viewer.t("delegated_text"), &[("to", to)])),
        _ => None,
    };
    let node = row.node.as_deref().map(|n| format!(" · {}", esc(&step(case, n)))).unwrap_or_default();
    match sentence {
        Some(sentence) => format!("<span class=\"event\" data-kind=\"{}\">{sentence}</span>", esc(&row.kind)),
        None => {
            let word = kind_word(viewer, &row.kind);
            let node_name = row.node.as_deref().unwrap_or_default();
            let next = (row.kind == "decided").then(|| decided_next(case, node_name, detail)).flatten();
            let outcome = (row.kind == "child_completed").then(|| outcome_title(case, node_name, detail)).flatten();
            let decided = (row.kind == "task_completed")
                .then(|| entry.as_ref().and_then(|e| decided_values(viewer, case, node_name, e)))
                .flatten();
            // What the machine noted besides: a decision by the step it led to (its condition,
            // written in the process's language, on hover), a child's outcome by its end's
            // title, an error in the machine's own words.
            let note = if row.kind == "incident_raised" && !detail.is_empty() {
                format!(" <span class=\"muted\">{}</span>", incident_text(viewer, detail))
            } else if let Some(next) = next {
                format!(" <span class=\"muted\" title=\"{}\">→ {}</span>", esc(detail), esc(&step(case, next)))
            } else if let Some(outcome) = outcome {
                format!(" <span class=\"muted\">{}</span>", esc(&outcome))
            } else if let Some(decided) = decided {
                format!(" <span class=\"decided\">{decided}</span>")
            } else if row.kind == "message_received" && titled(case, node_name) {
                // The step's title says what arrived; the message's technical name stays in the
                // history API, for those who wire systems together.
                String::new()
            } else if detail.is_empty() {
                String::new()
            } else {
                format!(" <span class=\"muted\">{}</span>", esc(detail))
            };
            format!("<span class=\"event\" data-kind=\"{}\">{}</span>{node}{note}", esc(&row.kind), esc(&word))
        }
    }
}

/// What a person answered at a task, as its completion entry recorded it (HTML): each field of
/// the step's form they filled, by its label, in the form's order. Later steps may overwrite the
/// variables a form sets (a second approver's comment); the entry keeps each person's own.
fn decided_values(viewer: &Viewer, case: &Case<'_>, node: &str, entry: &HistoryEvent) -> Option<String> {
    let NodeKind::Approval { form, .. } = &case.definition.node(node)?.kind else { return None };
    let money = super::money_variables(case.definition);
    let answers: Vec<String> = form
        .iter()
        .filter_map(|field| {
            let value = entry.variables.get(&field.name)?;
            let shown = show(viewer, value, money.contains(field.name.as_str()));
            (shown != "—").then(|| {
                format!("{}{}{}", esc(&i18n::label(&field.name, viewer.lang)), viewer.lang.colon(), esc(&shown))
            })
        })
        .collect();
    (!answers.is_empty()).then(|| answers.join(" · "))
}

/// True when step `name` has a title of its own in the definition.
fn titled(case: &Case<'_>, name: &str) -> bool {
    case.definition.node(name).is_some_and(|node| node.title.is_some())
}

/// `migrated from v1 to v2: REASON` in the reader's words.
fn migrated(viewer: &Viewer, detail: &str) -> Option<String> {
    let rest = detail.strip_prefix("migrated from v")?;
    let (from, rest) = rest.split_once(" to v")?;
    let (to, reason) = rest.split_once(": ")?;
    let numbers = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (numbers(from) && numbers(to))
        .then(|| fill(viewer.t("migrated_text"), &[("from", from), ("to", to), ("reason", reason)]))
}

/// A repair by hand (a token withdrawn, a token started before a step, a variable set) in the
/// reader's words.
fn modified(viewer: &Viewer, case: &Case<'_>, entry: &HistoryEvent, detail: &str) -> Option<String> {
    if detail.starts_with("cancelled token ") {
        let node = entry.node.as_deref()?;
        let (_, reason) = detail.split_once("`: ")?;
        return Some(fill(viewer.t("modified_cancel"), &[("node", &step(case, node)), ("reason", reason)]));
    }
    if let Some(rest) = detail.strip_prefix("started a token before `") {
        let (node, reason) = rest.split_once("`: ")?;
        return Some(fill(viewer.t("modified_start"), &[("node", &step(case, node)), ("reason", reason)]));
    }
    let rest = detail.strip_prefix("set `")?;
    let (name, reason) = rest.split_once("`: ")?;
    let value = entry.variables.get(name)?;
    let money = super::money_variables(case.definition).contains(name);
    let label = i18n::label_in_sentence(name, viewer.lang);
    Some(fill(
        viewer.t("modified_set"),
        &[("name", &label), ("value", &show(viewer, value, money)), ("reason", reason)],
    ))
}

/// An incident's cause in the reader's words, as HTML: a job out of retries or a business error
/// nobody catches; any other cause (a decision with no true arm, an expression that failed) in
/// the engine's own words, which name the process's variables and steps as written.
pub(super) fn incident_text(viewer: &Viewer, message: &str) -> String {
    job_out_of_retries(viewer, message).or_else(|| uncaught_error(viewer, message)).unwrap_or_else(|| esc(message))
}

/// `job `T` failed N times, no retries left: REASON` (also the older `N time(s)` and `once`).
fn job_out_of_retries(viewer: &Viewer, message: &str) -> Option<String> {
    let rest = message.strip_prefix("job `")?;
    let (job, rest) = rest.split_once("` failed ")?;
    let (count, reason) = rest.split_once(", no retries left: ")?;
    let failures = if count == "once" {
        1
    } else {
        count.strip_suffix(" time(s)").or_else(|| count.strip_suffix(" times"))?.parse::<u64>().ok()?
    };
    let times = if failures == 1 {
        viewer.t("failed_once").to_string()
    } else {
        viewer.t("failed_times").replace("{n}", &failures.to_string())
    };
    Some(fill(viewer.t("incident_retries_out"), &[("job", job), ("times", &times), ("reason", reason)]))
}

/// `business error `CODE` is not caught by an `on error` of `NODE``.
fn uncaught_error(viewer: &Viewer, message: &str) -> Option<String> {
    let rest = message.strip_prefix("business error `")?;
    let (code, rest) = rest.split_once("` is not caught by an `on error` of `")?;
    rest.strip_suffix('`')?;
    let named =
        i18n::business_error(viewer.lang, code).map(|words| format!("“{words}”{}", viewer.lang.bracketed(code)));
    Some(fill(viewer.t("incident_uncaught"), &[("code", named.as_deref().unwrap_or(code))]))
}

#[cfg(test)]
mod tests {
    use super::fill;

    #[test]
    fn a_sentence_is_filled_once_and_escaped() {
        let filled =
            fill("moved from {from} to {to}: {reason}", &[("from", "1"), ("to", "{reason}"), ("reason", "<b>")]);
        assert_eq!(filled, "moved from 1 to {reason}: &lt;b&gt;");
        assert_eq!(fill("{unknown} {", &[]), "{unknown} {");
    }
}
