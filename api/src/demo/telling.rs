//! The timeline: the engine's history rows told as lines a person reads, in the company's time
//! zone, with money in its currency.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use chrono::{DateTime, Utc};
use cloverleaf_dsl::CompiledProcess;
use cloverleaf_dsl::expr::Value as DslValue;
use cloverleaf_dsl::model::NodeKind;
use cloverleaf_engine::store::Queries as _;
use rust_decimal::Decimal;
use serde_json::Value;

use super::Story;

impl Story {
    /// Prints the history rows written since the last call, in time order, labelled by order.
    pub(super) async fn tell_history(&mut self) -> Result<()> {
        let instances = self.engine.store().instances(None, None, None, 100_000, 0).await?;
        // (at, label, phase, order among instances, seq, text): at one instant, what instances
        // did comes parents first, and how they ended children first (a call ends its parent).
        let mut lines: Vec<(String, String, u8, i64, i64, String)> = Vec::new();
        // Parents before children, so that a child inherits its parent's label.
        let mut instances = instances;
        instances.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        for (rank, summary) in instances.iter().enumerate() {
            if !self.labels.contains_key(summary.id.as_str()) {
                let label = match (&summary.business_key, &summary.parent_id) {
                    (Some(key), _) => key.clone(),
                    (None, Some(parent)) => self.labels.get(parent.as_str()).cloned().unwrap_or_default(),
                    (None, None) if summary.process_key == "month_end_close" => {
                        format!("close {}", summary.created_at.format("%b"))
                    }
                    (None, None) => summary.process_key.clone(),
                };
                self.labels.insert(summary.id.to_string(), label);
            }
            let told = self.told.get(summary.id.as_str()).copied().unwrap_or(0);
            let id = summary.id.clone();
            let definition = self.definition(&summary.process_key, summary.process_version).await?;
            let rows = self.engine.history(&id).await?;
            if rows.last().is_none_or(|r| r.seq <= told) {
                continue;
            }
            let variables = self.engine.instance(&id).await?.variables().clone();
            let label = self.labels.get(summary.id.as_str()).cloned().unwrap_or_default();
            for row in rows.iter().filter(|r| r.seq > told) {
                if let Some(text) = describe(&definition, &variables, row) {
                    let rank = i64::try_from(rank).unwrap_or(i64::MAX);
                    let ending = matches!(row.kind.as_str(), "end_reached" | "completed" | "failed" | "cancelled");
                    let (phase, order) = if ending { (1, -rank) } else { (0, rank) };
                    lines.push((row.at.clone(), label.clone(), phase, order, row.seq, text));
                }
            }
            if let Some(last) = rows.last() {
                self.told.insert(summary.id.to_string(), last.seq);
            }
        }
        lines.sort();
        for (at, label, _, _, _, text) in lines {
            let when = at.parse::<DateTime<Utc>>().map_or_else(|_| at.clone(), local);
            self.line(format!("{when}  {label:<10} {text}"));
        }
        Ok(())
    }

    /// A compiled process, fetched once per version.
    async fn definition(&mut self, key: &str, version: u32) -> Result<Arc<CompiledProcess>> {
        if let Some(d) = self.definitions.get(&(key.to_string(), version)) {
            return Ok(Arc::clone(d));
        }
        let definition = self.engine.definition(key, version).await?;
        self.definitions.insert((key.to_string(), version), Arc::clone(&definition));
        Ok(definition)
    }

    /// A line of the story, at the clock's time.
    pub(super) fn say(&mut self, text: String) {
        let now = local(self.engine.now());
        self.line(format!("{now}  {:<10} {text}", ""));
    }

    /// A heading, after a blank line.
    pub(super) fn heading(&mut self, text: &str) {
        self.line(String::new());
        self.line(format!("== {text}"));
    }

    /// Prints a line when the story is told aloud, and keeps it for the outcome.
    fn line(&mut self, text: String) {
        if self.echo {
            println!("{text}");
        }
        self.timeline.push(text);
    }
}

/// One timeline line for a history row, or `None` for the bookkeeping rows nobody reads.
fn describe(
    definition: &CompiledProcess,
    variables: &BTreeMap<String, DslValue>,
    row: &cloverleaf_engine::store::HistoryRow,
) -> Option<String> {
    let entry: Value = serde_json::from_str(&row.detail).ok()?;
    let node = row.node.as_deref().and_then(|n| definition.nodes.iter().find(|x| x.name == n));
    let title = node.map(|n| n.title.clone().unwrap_or_else(|| n.name.replace('_', " "))).unwrap_or_default();
    let title = render_title(&title, variables);
    let variables = entry.get("variables").and_then(Value::as_object);
    let shown = |keys: &[&str]| -> String {
        let Some(vars) = variables else { return String::new() };
        let parts: Vec<String> = vars
            .iter()
            .filter(|(k, _)| keys.is_empty() || keys.contains(&k.as_str()))
            .filter_map(|(k, v)| plain(v).map(|v| format!("{k} {v}")))
            .collect();
        if parts.is_empty() { String::new() } else { format!(": {}", parts.join(", ")) }
    };
    let detail = entry.get("detail").and_then(Value::as_str).unwrap_or_default();
    let who = match (&row.who, &row.on_behalf_of) {
        (Some(who), Some(principal)) => format!("{who} (for {principal})"),
        (Some(who), None) => who.clone(),
        _ => String::new(),
    };
    let text = match row.kind.as_str() {
        "started" => format!("{} started", definition.title),
        "entered" => match node.map(|n| &n.kind) {
            Some(NodeKind::Approval { roles, .. }) => {
                let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
                format!("task for {}: {title}", roles.join(", "))
            }
            _ => return None,
        },
        "job_completed" => format!("{}{}", title, shown(&[])),
        "business_error" => format!("{title}: {detail}"),
        "task_completed" => format!("{who} completes \"{title}\"{}", shown(&[])),
        "task_delegated" => format!("{who} delegates \"{title}\" {detail}"),
        "timer_fired" => format!("timer: {title}"),
        "message_received" => format!("message: {title}{}", shown(&[])),
        "incident_raised" => format!("INCIDENT at {title}: {detail}"),
        "job_failed" => format!("{title} failed, to be tried again: {detail}"),
        "completed" => format!("{} completed", definition.title),
        "end_reached" => match node.map(|n| &n.kind) {
            Some(NodeKind::End { .. }) => format!("ends: {title}"),
            _ => return None,
        },
        "failed" => format!("{} failed {detail}", definition.title),
        "cancelled" => format!("{} cancelled", definition.title),
        _ => return None,
    };
    Some(text)
}

/// A node title with its `{variable}` placeholders filled from the instance's variables (the
/// ones titles name, order and invoice ids, do not change during an instance).
fn render_title(title: &str, variables: &BTreeMap<String, DslValue>) -> String {
    let mut out = String::with_capacity(title.len());
    let mut rest = title;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                match variables.get(name) {
                    Some(DslValue::Text(text)) => out.push_str(text),
                    Some(DslValue::Number(n)) => out.push_str(&money(*n)),
                    Some(DslValue::Date(d)) => out.push_str(&d.to_string()),
                    Some(other) => out.push_str(&other.to_string()),
                    None => out.push_str(&rest[open..open + close + 2]),
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// A value as a person reads it, or `None` for records and long texts.
fn plain(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if s.len() <= 40 => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => None,
        Value::Object(map) => match (map.get("type").and_then(Value::as_str), map.get("value")) {
            (Some(_), Some(inner)) => plain(inner),
            _ => None,
        },
        _ => None,
    }
}

/// The demo company's zone: the story's times are told in it.
const COMPANY_ZONE: chrono_tz::Tz = chrono_tz::Asia::Shanghai;

/// A time as the demo company reads it.
fn local(at: DateTime<Utc>) -> String {
    at.with_timezone(&COMPANY_ZONE).format("%Y-%m-%d %H:%M").to_string()
}

/// Money as the pages show it, with its currency.
pub(super) fn money(amount: Decimal) -> String {
    crate::web::i18n::money(amount, crate::web::i18n::Lang::En)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_carries_its_currency_and_times_the_companys_zone() {
        assert_eq!(money(Decimal::new(123_456_789, 2)), "CNY 1,234,567.89");
        let close = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 1, 31, 10, 0, 0).unwrap();
        assert_eq!(local(close), "2026-01-31 18:00");
    }
}
