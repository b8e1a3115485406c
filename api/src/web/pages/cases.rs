//! The cases: the instances a reader may see, and one case with its diagram, data, history and
//! the journal lines of its order.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use cloverleaf_dsl::CompiledProcess;
use cloverleaf_dsl::expr::Type;
use cloverleaf_dsl::expr::Value as DslValue;
use cloverleaf_dsl::model::NodeKind;
use cloverleaf_engine::runtime::Error as EngineError;
use cloverleaf_engine::store::query::InstanceSummary;
use cloverleaf_engine::store::{HistoryRow, Queries as _, TaskInfo};
use cloverleaf_engine::{HistoryEvent, Instance, InstanceId, Status};
use rust_decimal::Decimal;
use serde::Deserialize;

use super::{Shown, answer, error_page, money_variables, page, show_value, with_lang};
use crate::server::AppState;
use crate::server::access::{self, Visibility};
use crate::server::error::ApiError;
use crate::web::diagram::{self, Progress};
use crate::web::{Viewer, esc, html, url_path};
use crate::web::{i18n, journal};

/// What the case list may be narrowed to.
#[derive(Debug, Deserialize)]
pub struct CasesQuery {
    business_key: Option<String>,
    status: Option<String>,
    process: Option<String>,
    /// The page of the list, from 1.
    page: Option<String>,
    /// Only the cases the reader took part in themselves (started, decided, was decided for).
    mine: Option<String>,
}

/// Cases on one page of the list.
const CASES_PAGE: usize = 100;
/// Instances the list reads at most, newest first; older ones are found by narrowing it.
const CASES_READ: i64 = 5_000;

/// `GET /cases`: the instances the reader may see, newest first, searchable by order number.
pub async fn cases(State(state): State<AppState>, viewer: Viewer, Query(query): Query<CasesQuery>) -> Response {
    let result: Result<String, ApiError> = async {
        let key = query.business_key.as_deref().map(str::trim).filter(|k| !k.is_empty());
        let status = query.status.as_deref().filter(|s| STATUS_WORDS.iter().any(|(v, _)| v == s));
        let seen = Visibility::of(&state, &viewer.caller).await?;
        let process = query.process.as_deref().filter(|p| !p.is_empty());
        // One more than is listed, to know whether older ones were left unread.
        let store = state.engine().store();
        let mut rows = store.instances(process, status, key, CASES_READ + 1, 0).await?;
        let admitted = |r: &InstanceSummary| seen.admits(r.id.as_str(), &r.process_key, r.process_version);
        // An order number typed in part ("1001" for SO-1001): when the reader may see no case
        // numbered so exactly, the newest cases whose number contains it are listed, and the page
        // says so.
        let partly = match key {
            Some(typed) if !rows.iter().any(admitted) => {
                rows = store.instances(process, status, None, CASES_READ + 1, 0).await?;
                Some(typed.to_lowercase())
            }
            _ => None,
        };
        let cut = rows.len() as i64 > CASES_READ;
        rows.truncate(usize::try_from(CASES_READ).unwrap_or(usize::MAX));
        let rows: Vec<_> = rows
            .into_iter()
            .filter(admitted)
            .filter(|r| {
                partly.as_deref().is_none_or(|typed| {
                    r.business_key.as_deref().is_some_and(|k| k.to_lowercase().contains(typed))
                })
            })
            .collect();
        // The reader's own cases: those they took part in in person, not those merely offered to
        // their roles.
        let mine = query.mine.as_deref().is_some_and(|m| !m.is_empty() && m != "0");
        let rows: Vec<_> = if mine {
            let own: BTreeSet<String> = state
                .engine()
                .store()
                .participations(viewer.caller.name(), &[])
                .await?
                .iter()
                .map(|id| cloverleaf_engine::ids::case_of(id).to_string())
                .collect();
            rows.into_iter().filter(|r| own.contains(cloverleaf_engine::ids::case_of(r.id.as_str()))).collect()
        } else {
            rows
        };
        // One row per case: a called process is listed under its caller's case page, where the
        // reader can read the caller too; alone when they cannot, or when the list is narrowed
        // to its process.
        let listed: BTreeSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let callers_listed: BTreeSet<String> = rows
            .iter()
            .filter(|r| r.parent_id.as_ref().is_some_and(|p| listed.contains(p.as_str())))
            .map(|r| r.id.as_str().to_string())
            .collect();
        let rows: Vec<_> = rows.into_iter().filter(|r| !callers_listed.contains(r.id.as_str())).collect();
        let shown = Shown::of(query.page.as_deref(), rows.len(), CASES_PAGE).cut(cut, "shown_range_more");
        let rows: Vec<_> = rows.into_iter().skip(shown.first).take(CASES_PAGE).collect();
        // Processes by the title their designer gave them, as the inbox names them.
        let mut titles = std::collections::BTreeMap::new();
        for d in state.engine().store().deployments().await? {
            let title = i18n::process_title(viewer.lang, &*state.engine().definition(&d.key, d.version).await?).to_string();
            titles.insert(d.key, title);
        }
        let mut process_options = format!("<option value=\"\">{}</option>", viewer.t("all_processes"));
        for (key, title) in &titles {
            let selected = if Some(key.as_str()) == process { " selected" } else { "" };
            let _ = write!(process_options, "<option value=\"{}\"{selected}>{}</option>", esc(key), esc(title));
        }
        let mut status_options = format!("<option value=\"\">{}</option>", viewer.t("all_states"));
        for (value, key) in STATUS_WORDS {
            let selected = if Some(value) == status { " selected" } else { "" };
            let _ = write!(status_options, "<option value=\"{value}\"{selected}>{}</option>", viewer.t(key));
        }
        let partly_notice = match (key, &partly) {
            (Some(typed), Some(_)) if !rows.is_empty() => format!(
                "<p class=\"notice\" role=\"status\" data-partly>{}</p>",
                esc(&viewer.t("cases_containing").replace("{key}", typed))
            ),
            _ => String::new(),
        };
        let mut out = format!(
            "<h1>{}</h1><form method=\"get\" action=\"/cases\" class=\"filters\"><label>{} <input name=\"business_key\" value=\"{}\"></label>\
             <label>{} <select name=\"process\" id=\"process\">{process_options}</select></label>\
             <label>{} <select name=\"status\" id=\"status\">{status_options}</select></label>\
             <label><input type=\"checkbox\" name=\"mine\" value=\"1\"{}> {}</label>\
             <button type=\"submit\">{}</button></form>{partly_notice}<table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
            viewer.t("instances"),
            viewer.t("business_key"),
            esc(key.unwrap_or("")),
            viewer.t("process"),
            viewer.t("status"),
            if mine { " checked" } else { "" },
            viewer.t("only_mine"),
            viewer.t("search"),
            viewer.t("instance"),
            viewer.t("process"),
            viewer.t("status"),
            viewer.t("started_at"),
        );
        let empty = rows.is_empty();
        for r in rows {
            let status_word = status_word(&viewer, r.status.as_str());
            let _ = write!(
                out,
                "<tr data-status=\"{}\"><td><a href=\"/cases/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(r.status.as_str()),
                url_path(r.id.as_str()),
                esc(r.business_key.as_deref().unwrap_or(r.id.as_str())),
                esc(titles.get(&r.process_key).unwrap_or(&r.process_key)),
                esc(status_word),
                esc(&i18n::time(r.created_at, viewer.zone, viewer.lang)),
            );
        }
        out.push_str("</tbody></table>");
        if empty {
            let _ = write!(out, "<p class=\"empty\">{}</p>", viewer.t("no_cases"));
        }
        out.push_str(&shown.pager(&viewer));
        Ok(out)
    }
    .await;
    answer(&viewer, "instances", result)
}

/// The statuses an instance list can be narrowed to, with the catalogue key of their word.
const STATUS_WORDS: [(&str, &str); 4] =
    [("running", "running"), ("completed", "completed"), ("failed", "failed"), ("cancelled", "cancelled")];

/// An instance status in the reader's words; one the page does not know, as written.
fn status_word<'a>(viewer: &Viewer, status: &'a str) -> &'a str {
    STATUS_WORDS.iter().find(|(v, _)| *v == status).map_or(status, |(_, k)| viewer.t(k))
}

/// Where an instance is, in the reader's words, with the end a completed one reached by that
/// end's title in the reader's language.
fn instance_status(viewer: &Viewer, case: &super::history::Case<'_>) -> String {
    match case.instance.status() {
        Status::Created | Status::Running => viewer.t("running").to_string(),
        Status::Completed { outcome: Some(end) } => {
            format!("{}{}", viewer.t("completed"), viewer.lang.bracketed(&super::history::step(case, end)))
        }
        Status::Completed { outcome: None } => viewer.t("completed").to_string(),
        Status::Failed { .. } => viewer.t("failed").to_string(),
        Status::Cancelled { .. } => viewer.t("cancelled").to_string(),
    }
}

/// `GET /cases/{id}`: the diagram with where the instance stands, its data and its history.
pub async fn case(State(state): State<AppState>, viewer: Viewer, Path(id): Path<InstanceId>) -> Response {
    let result: Result<String, ApiError> = async {
        let seen = access::may_read(&state, &viewer.caller, &id).await?;
        let engine = state.engine();
        let instance = engine.instance(&id).await?;
        let definition = engine.definition(instance.process(), instance.process_version()).await?;
        let history = engine.history(&id).await?;
        let mut progress = Progress::default();
        for h in &history {
            if let Some(node) = &h.node {
                progress.done.insert(node.clone());
            }
        }
        for node in definition.nodes.iter().filter(|n| matches!(n.kind, NodeKind::Start { .. })) {
            if !history.is_empty() {
                progress.done.insert(node.name.clone());
            }
        }
        for token in instance.tokens().values() {
            progress.current.insert(token.node.clone());
        }
        for incident in instance.incidents().values() {
            progress.incidents.insert(incident.node.clone());
        }
        // The cases its call steps started, as far as the reader may read them: each call step
        // links to the latest, and trouble inside one shows at the step that waits for it.
        let calls = called_cases(&state, &seen, &instance, &definition, &history).await?;
        for call in &calls {
            let Some(inside) = &call.inside else { continue };
            progress.links.insert(call.node.clone(), format!("/cases/{}", url_path(call.id.as_str())));
            if !inside.instance.incidents().is_empty() {
                progress.incidents.insert(call.node.clone());
            }
        }
        let money = money_variables(&definition);
        let now = engine.now();
        let fill = |template: &str| i18n::render_title(viewer.lang, &definition, template, instance.variables(), now);
        let mut called = HashMap::new();
        for node in &definition.nodes {
            if let NodeKind::Call { process, .. } = &node.kind {
                // A called process no longer deployed leaves its outcomes as written.
                let version = engine.latest_version(process).await;
                if let Ok(child) = async { engine.definition(process, version?).await }.await {
                    called.insert(node.name.clone(), child);
                }
            }
        }
        let case = super::history::Case { definition: &definition, instance: &instance, lang: viewer.lang, now, called };
        let mut out = format!(
            "<h1>{} <span class=\"muted\">{}</span></h1><p>{}{}<b id=\"status\">{}</b></p>{}<section><h2>{}</h2><div class=\"diagram-wrap\">{}</div></section>",
            esc(i18n::process_title(viewer.lang, &definition)),
            esc(instance.business_key().unwrap_or(id.as_str())),
            viewer.t("status"),
            viewer.lang.colon(),
            esc(&instance_status(&viewer, &case)),
            called_trouble(&viewer, &case, &calls),
            viewer.t("diagram"),
            diagram::svg(&definition, &progress, i18n::process_title(viewer.lang, &definition), viewer.lang, &fill),
        );
        out.push_str(&called_section(&viewer, &case, &calls));
        let set = set_after_start(&history);
        // The sub-ledger's customers are read only for a case that names one.
        let customers = if instance.variables().contains_key("customer_id") {
            super::tasks::CustomerNames::of(&state).await
        } else {
            super::tasks::CustomerNames::none()
        };
        let undecided = undecided(&definition, &instance, &set);
        // A sum no step has worked out yet (an invoice's total before invoicing) is not yet
        // known: its declared default of zero would read as an amount. A default that is an
        // amount (a tolerance of ¥0.01) is shown as it is.
        let unknown_yet = |name: &str| {
            money.contains(name) && !set.contains(name) && definition.vars.iter().any(|v| v.name == name)
        };
        let _ = write!(out, "<section><h2>{}</h2><dl class=\"context\">", viewer.t("variables"));
        // In the order the process declares them (inputs, then variables), as its designer wrote
        // them; a value no declaration names any more (kept from an earlier version) after them.
        let declared: Vec<&str> = definition.inputs.iter().chain(&definition.vars).map(|v| v.name.as_str()).collect();
        let mut values: Vec<(&String, &DslValue)> = instance.variables().iter().collect();
        values.sort_by_key(|(name, _)| declared.iter().position(|d| d == name).unwrap_or(usize::MAX));
        for (name, raw) in values {
            if definition.node(name).is_some() {
                continue;
            }
            let outcome = match raw {
                DslValue::Text(text) => super::history::outcome_value(&case, name, text),
                DslValue::Bool(_) if undecided.contains(name.as_str()) => Some("—".to_string()),
                DslValue::Number(n) if n.is_zero() && unknown_yet(name) => Some("—".to_string()),
                _ => None,
            };
            let value =
                outcome.unwrap_or_else(|| show_value(&viewer, &instance, name, money.contains(name.as_str())));
            let value = if name == "customer_id" { customers.beside(&viewer, value) } else { value };
            let _ = write!(out, "<dt>{}</dt><dd data-var=\"{}\">{}</dd>", esc(&i18n::label(name, viewer.lang)), esc(name), esc(&value));
        }
        let _ = write!(
            out,
            "</dl></section><section id=\"history\"><h2>{}</h2><table class=\"history\"><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
            viewer.t("history"),
            viewer.t("when"),
            viewer.t("what"),
            viewer.t("who")
        );
        for h in history.iter().filter(|h| super::history::worth_showing(&case, h)) {
            let at = h.at.parse::<DateTime<Utc>>().map(|at| i18n::time(at, viewer.zone, viewer.lang)).unwrap_or_else(|_| h.at.clone());
            let who = match (&h.who, &h.on_behalf_of) {
                (Some(w), Some(b)) => format!("{}{}", esc(w), viewer.lang.bracketed(&format!("{} {}", viewer.t("for_whom"), esc(b)))),
                (Some(w), None) => esc(w),
                _ => String::new(),
            };
            let what = super::history::what(&viewer, &case, h);
            let _ = write!(out, "<tr><td>{}</td><td>{what}</td><td>{who}</td></tr>", esc(&at));
        }
        out.push_str("</tbody></table></section>");
        out.push_str(&ledger_section(&state, &viewer, &instance).await?);
        Ok(page(&viewer, i18n::process_title(viewer.lang, &definition), &out))
    }
    .await;
    match result {
        Ok(body) => with_lang(&viewer, html(StatusCode::OK, body)),
        Err(e) => error_page(&viewer, &e),
    }
}

/// A case a call step of the case shown started: its instance id is the call's.
struct Called {
    /// The call step.
    node: String,
    /// The called instance.
    id: InstanceId,
    /// The called process's key.
    process: String,
    /// What is inside, for a reader who may read the called case; `None` for anyone else, who
    /// gets neither its link nor its status.
    inside: Option<Inside>,
}

/// A called case as its reader sees it.
struct Inside {
    instance: Instance,
    definition: Arc<CompiledProcess>,
    /// Its open tasks.
    tasks: Vec<TaskInfo>,
}

/// The cases `instance`'s call steps started, oldest first, each with the step that started it;
/// what is inside one only where `seen` admits it.
///
/// The engine records a called instance with its caller (`parent_id`) and its caller's business
/// key, and a running call in the caller's state; a finished call leaves no id in the caller,
/// so the called instances are found by the business key and matched, process by process, to
/// the call steps' entries in the history in the order they were started. An instance without
/// a business key shows its running calls only.
async fn called_cases(
    state: &AppState,
    seen: &Visibility,
    instance: &Instance,
    definition: &CompiledProcess,
    history: &[HistoryRow],
) -> Result<Vec<Called>, ApiError> {
    let engine = state.engine();
    let store = engine.store();
    let running: HashMap<&str, &str> = instance.calls().iter().map(|(c, w)| (c.0.as_str(), w.node.as_str())).collect();
    let mut children: Vec<InstanceSummary> = match instance.business_key() {
        Some(key) => store
            .instances(None, None, Some(key), 1_000, 0)
            .await?
            .into_iter()
            .filter(|c| c.parent_id.as_ref() == Some(instance.id()))
            .collect(),
        None => Vec::new(),
    };
    for id in running.keys() {
        if !children.iter().any(|c| c.id.as_str() == *id)
            && let Some(child) = store.instance_summary(id).await?
        {
            children.push(child);
        }
    }
    // Started in the order of the sequence number that ends a call's id (`i-x-1.call.7`).
    let number = |id: &InstanceId| id.as_str().rsplit(['.', '/']).next().and_then(|n| n.parse::<u64>().ok());
    children.sort_by_key(|c| (number(&c.id), c.created_at));
    // The call steps entered, in order, by the process each one calls.
    let calls_of = |node: &str| match definition.node(node).map(|n| &n.kind) {
        Some(NodeKind::Call { process, .. }) => Some(process.clone()),
        _ => None,
    };
    let mut entered: HashMap<String, VecDeque<String>> = HashMap::new();
    for row in history.iter().filter(|h| h.kind == "entered") {
        let Some(node) = row.node.as_deref() else { continue };
        if let Some(process) = calls_of(node) {
            entered.entry(process).or_default().push_back(node.to_string());
        }
    }
    let mut out = Vec::new();
    for child in children {
        let queued = entered.get_mut(&child.process_key).and_then(VecDeque::pop_front);
        let only = || {
            let mut steps =
                definition.nodes.iter().filter(|n| calls_of(&n.name).as_deref() == Some(&child.process_key));
            match (steps.next(), steps.next()) {
                (Some(step), None) => Some(step.name.clone()),
                _ => None,
            }
        };
        let Some(node) = running.get(child.id.as_str()).map(|n| n.to_string()).or(queued).or_else(only) else {
            continue;
        };
        let inside = if seen.admits(child.id.as_str(), &child.process_key, child.process_version) {
            match engine.instance(&child.id).await {
                Ok(called) => Some(Inside {
                    definition: engine.definition(called.process(), called.process_version()).await?,
                    tasks: engine.tasks(Some(&child.id)).await?,
                    instance: called,
                }),
                // Archived meanwhile: its page says so.
                Err(EngineError::UnknownInstance(_)) => None,
                Err(other) => return Err(other.into()),
            }
        } else {
            None
        };
        out.push(Called { node, id: child.id, process: child.process_key, inside });
    }
    Ok(out)
}

/// The open incidents and tasks inside the called cases the reader may read, as HTML lines that
/// link to the case they are in ("审批订单中有未处理故障"): the caller's status alone says only
/// that it runs.
fn called_trouble(viewer: &Viewer, case: &super::history::Case<'_>, calls: &[Called]) -> String {
    let mut out = String::new();
    for call in calls {
        let Some(inside) = &call.inside else { continue };
        let step = super::history::step(case, &call.node);
        let href = format!("/cases/{}", url_path(call.id.as_str()));
        if !inside.instance.incidents().is_empty() {
            let _ = write!(
                out,
                "<p class=\"notice refusal\" data-call-incident=\"{}\"><a href=\"{href}\">{}</a></p>",
                esc(&call.node),
                esc(&viewer.t("call_incident").replace("{step}", &step)),
            );
        }
        for task in &inside.tasks {
            let title = i18n::task_title(viewer.lang, &inside.definition, &inside.instance, task, case.now);
            let text = viewer.t("call_task").replace("{step}", &step).replace("{task}", &title);
            let _ = write!(
                out,
                "<p class=\"notice\" data-call-task=\"{}\"><a href=\"{href}\">{}</a></p>",
                esc(&call.node),
                esc(&text)
            );
        }
    }
    out
}

/// The called cases as a table: the call step, the called process linked to its case, and the
/// case's status; a case the reader may not read by its step and process only.
fn called_section(viewer: &Viewer, case: &super::history::Case<'_>, calls: &[Called]) -> String {
    if calls.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "<section id=\"calls\"><h2>{}</h2><table class=\"calls\"><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        viewer.t("calls"),
        viewer.t("step"),
        viewer.t("process"),
        viewer.t("status"),
    );
    for call in calls {
        let step = super::history::step(case, &call.node);
        let (process, status) = match &call.inside {
            Some(inside) => {
                let called = super::history::Case {
                    definition: &inside.definition,
                    instance: &inside.instance,
                    lang: viewer.lang,
                    now: case.now,
                    called: HashMap::new(),
                };
                (
                    format!(
                        "<a href=\"/cases/{}\">{}</a>",
                        url_path(call.id.as_str()),
                        esc(i18n::process_title(viewer.lang, &inside.definition))
                    ),
                    esc(&instance_status(viewer, &called)),
                )
            }
            None => {
                let title =
                    case.called.get(&call.node).map_or(call.process.as_str(), |d| i18n::process_title(viewer.lang, d));
                (esc(title), format!("<span class=\"muted\">{}</span>", viewer.t("call_unreadable")))
            }
        };
        let _ = write!(
            out,
            "<tr data-call=\"{}\"><td>{}</td><td>{process}</td><td>{status}</td></tr>",
            esc(&call.node),
            esc(&step)
        );
    }
    out.push_str("</tbody></table></section>");
    out
}

/// The variables some step after the start has set (a completed task, a job's answer, a called
/// process's outcome, a repair by hand).
fn set_after_start(history: &[HistoryRow]) -> BTreeSet<String> {
    history
        .iter()
        .filter(|h| h.kind != "started")
        .filter_map(|h| serde_json::from_str::<HistoryEvent>(&h.detail).ok())
        .flat_map(|e| e.variables.into_keys())
        .collect()
}

/// The yes/no questions of the decision forms that nobody has answered for the case yet: a
/// field of a task still open, or one no step after the start has set (a completed task, a
/// job's answer, a repair by hand). Its value is the default the process declares, which would
/// read as a refusal ("No") before anyone decided.
fn undecided<'a>(definition: &'a CompiledProcess, instance: &Instance, set: &BTreeSet<String>) -> BTreeSet<&'a str> {
    let open: BTreeSet<&str> = instance.tasks().values().map(|t| t.node.as_str()).collect();
    let mut out = BTreeSet::new();
    for node in &definition.nodes {
        let NodeKind::Approval { form, .. } = &node.kind else { continue };
        for field in form.iter().filter(|f| f.ty == Type::Bool) {
            if open.contains(node.name.as_str()) || !set.contains(&field.name) {
                out.insert(field.name.as_str());
            }
        }
    }
    out
}

/// The journal lines the case's order produced, for the roles that read finance figures.
async fn ledger_section(state: &AppState, viewer: &Viewer, instance: &Instance) -> Result<String, ApiError> {
    let (Some(ledger), Ok(())) = (state.ledger(), access::may_read_reports(&viewer.caller)) else {
        return Ok(String::new());
    };
    let Some(DslValue::Text(order)) = instance.variables().get("order_id") else { return Ok(String::new()) };
    let lines = ledger.entries_of_order(order).await.map_err(ApiError::internal)?;
    if lines.is_empty() {
        return Ok(String::new());
    }
    let money = |d: Decimal| if d.is_zero() { String::new() } else { i18n::money(d, viewer.lang) };
    let mut out = format!(
        "<section><h2>{}</h2><table class=\"ledger\"><thead><tr><th>#</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        viewer.t("ledger"),
        viewer.t("when"),
        viewer.t("what"),
        viewer.t("account"),
        viewer.t("debit"),
        viewer.t("credit"),
    );
    for l in lines {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td></tr>",
            l.entry,
            l.date,
            esc(&journal::description(viewer.lang, &l.description)),
            esc(&l.account),
            esc(i18n::account_name(viewer.lang, &l.account, &l.account_name)),
            money(l.debit),
            money(l.credit)
        );
    }
    out.push_str("</tbody></table></section>");
    Ok(out)
}
