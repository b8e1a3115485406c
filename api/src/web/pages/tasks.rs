//! The inbox (a reader's open tasks with their business context) and a task's page with its
//! decision form and actions.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use cloverleaf_dsl::CompiledProcess;
use cloverleaf_dsl::expr::Value as DslValue;
use cloverleaf_dsl::model::{FormField, NodeKind};
use cloverleaf_engine::store::{TaskInfo, TaskState};
use cloverleaf_engine::{Instance, TaskId};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Shown, answer, error_page, error_text, form_of, message_page, money_variables, page, show_value, sod_text,
    with_lang,
};
use crate::server::AppState;
use crate::server::error::ApiError;
use crate::web::dates::{day_input, read_day};
use crate::web::i18n;
use crate::web::{Viewer, esc, esc_keeping_ids, html, url_path};

/// What the inbox may be narrowed to.
#[derive(Debug, Deserialize)]
pub struct InboxQuery {
    process: Option<String>,
    overdue: Option<String>,
    customer: Option<String>,
    min_amount: Option<String>,
    max_amount: Option<String>,
    /// Set by the redirect after a decision (`1`) or a delegation (`delegated`).
    done: Option<String>,
    /// The page of the list, from 1.
    page: Option<String>,
}

/// Tasks on one page of the inbox.
const INBOX_PAGE: usize = 50;

/// One row of the inbox: the task and what the inbox filters and sorts it by. What a row shows
/// ([`Described`]) is worked out only for the rows of the page read.
struct Row<'a> {
    task: TaskInfo,
    instance: &'a Instance,
    definition: std::sync::Arc<CompiledProcess>,
    facts: Facts,
}

/// What the inbox filters and sorts a task by.
struct Facts {
    customer: Option<String>,
    amount: Option<Decimal>,
    /// The refusal a `not by` rule would give the reader, who may not decide it.
    barred: Option<ApiError>,
}

fn facts_of(
    viewer: &Viewer,
    definition: &CompiledProcess,
    task: &TaskInfo,
    instance: &Instance,
    now: DateTime<Utc>,
) -> Facts {
    let customer = match instance.variables().get("customer_id") {
        Some(DslValue::Text(c)) => Some(c.clone()),
        _ => None,
    };
    let amount = ["amount", "amount_due"].iter().find_map(|name| match instance.variables().get(*name) {
        Some(DslValue::Number(n)) => Some(*n),
        _ => None,
    });
    // As the engine judges a claim: someone standing in acts for the person who holds the task.
    let user = viewer.caller.name();
    let own = task.assignee.as_deref() == Some(user)
        || (task.assignee.is_none() && task.roles.iter().any(|r| viewer.caller.has(r)));
    let principal = if own { None } else { task.claimed_by.as_deref().or(task.assignee.as_deref()) };
    let barred = cloverleaf_engine::check_separation(definition, instance, &task.id, user, principal, now)
        .err()
        .filter(|r| matches!(r, cloverleaf_engine::Rejection::SeparationOfDuties { .. }))
        .map(ApiError::from);
    Facts { customer, amount, barred }
}

/// What a task shows its reader: its title, whom it is offered to, and the variables its approval
/// shows.
struct Described {
    /// The task's title for the reader: the process's Chinese wording where it gives one.
    title: String,
    /// Whom the task is offered to, in the reader's words: "Offered to Sales manager".
    offered_to: String,
    shown: Vec<(String, String)>,
}

fn described(
    viewer: &Viewer,
    definition: &CompiledProcess,
    task: &TaskInfo,
    instance: &Instance,
    customers: &CustomerNames,
    now: DateTime<Utc>,
) -> Described {
    let names = match definition.node(&task.node).map(|n| &n.kind) {
        Some(NodeKind::Approval { show, .. }) => show.as_slice(),
        _ => &[],
    };
    let money = money_variables(definition);
    let shown = names
        .iter()
        .map(|name| {
            let shown = show_value(viewer, instance, name, money.contains(name.as_str()));
            let shown = if name == "customer_id" { customers.beside(viewer, shown) } else { shown };
            (name.clone(), shown)
        })
        .collect();
    Described {
        title: i18n::task_title(viewer.lang, definition, instance, task, now),
        offered_to: viewer.t("offered_to").replace("{roles}", &i18n::role_list(viewer.lang, definition, &task.roles)),
        shown,
    }
}

/// The customers' names by id, from the sub-ledger (none without one, or when it cannot be read:
/// the ids alone are still right).
pub(super) struct CustomerNames(std::collections::HashMap<String, String>);

impl CustomerNames {
    /// No names: ids are shown alone.
    pub(super) fn none() -> CustomerNames {
        CustomerNames(Default::default())
    }

    pub(super) async fn of(state: &AppState) -> CustomerNames {
        let Some(ledger) = state.ledger() else { return CustomerNames::none() };
        match ledger.customer_names().await {
            Ok(names) => CustomerNames(names),
            Err(error) => {
                tracing::warn!(%error, "the customers' names could not be read");
                CustomerNames::none()
            }
        }
    }

    /// Customer `id`'s name, where the sub-ledger knows it.
    pub(super) fn name(&self, id: &str) -> Option<&str> {
        self.0.get(id).map(String::as_str)
    }

    /// Customer `id` with its name after it, as the reader's language brackets it:
    /// `C-004 (Delft Instruments BV)`, `C-004（Delft Instruments BV）`.
    pub(super) fn beside(&self, viewer: &Viewer, id: String) -> String {
        match self.0.get(&id) {
            Some(name) => format!("{id}{}", viewer.lang.bracketed(name)),
            None => id,
        }
    }
}

/// True when `typed` names customer `id`: its id in any case, or a part of its name ("delft" for
/// C-004, Delft Instruments BV).
fn customer_matches(customers: &CustomerNames, id: &str, typed: &str) -> bool {
    id.eq_ignore_ascii_case(typed)
        || customers.name(id).is_some_and(|name| name.to_lowercase().contains(&typed.to_lowercase()))
}

/// A context value as HTML: a stored report's id links to the report.
fn context_html(name: &str, value: &str) -> String {
    if name.ends_with("_report") && !value.is_empty() && value != "—" {
        format!("<a href=\"/reports/{}\">{}</a>", url_path(value), esc(value))
    } else {
        esc_keeping_ids(value)
    }
}

fn due_cell(viewer: &Viewer, due: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match due {
        None => format!("<span class=\"muted\">{}</span>", viewer.t("no_due")),
        Some(at) if at < now => {
            format!("<span class=\"overdue\">{} · {}</span>", viewer.t("overdue"), time_cell(viewer, at))
        }
        Some(at) => time_cell(viewer, at),
    }
}

/// A time in a narrow column: it may break between the day and the hour, never inside the
/// hour and its zone ("20:04（北京时间）").
fn time_cell(viewer: &Viewer, at: DateTime<Utc>) -> String {
    let text = i18n::time(at, viewer.zone, viewer.lang);
    match text.split_once(' ') {
        Some((day, hour)) => {
            format!("<span class=\"nowrap\">{}</span> <span class=\"nowrap\">{}</span>", esc(day), esc(hour))
        }
        None => esc(&text),
    }
}

/// `GET /inbox`: the reader's open tasks with their business context, filtered and sorted.
pub async fn inbox(State(state): State<AppState>, viewer: Viewer, Query(query): Query<InboxQuery>) -> Response {
    answer(&viewer, "inbox", inbox_page(&state, &viewer, &query).await)
}

async fn inbox_page(state: &AppState, viewer: &Viewer, query: &InboxQuery) -> Result<String, ApiError> {
    let engine = state.engine();
    let now = engine.now();
    let tasks = engine.inbox(viewer.caller.name(), &viewer.caller.0.role_refs()).await?;
    // Whom the reader stands in for, told by every open task, before the filters narrow the list.
    let notice = super::away::inbox_notice(state, viewer, now, &tasks).await?;
    let customers = CustomerNames::of(state).await;
    // Every task's case in one read: a credit controller's month-end inbox holds hundreds.
    let ids: Vec<_> = tasks.iter().map(|t| t.instance_id.clone()).collect();
    let instances = engine.instances(&ids).await?;
    let mut rows = Vec::new();
    for task in tasks {
        // A case archived or removed since the inbox was read has no task to show.
        let Some(instance) = instances.get(task.instance_id.as_str()) else { continue };
        let definition = engine.definition(instance.process(), instance.process_version()).await?;
        let facts = facts_of(viewer, &definition, &task, instance, now);
        rows.push(Row { task, instance, definition, facts });
    }
    // Each process once, by key, shown by its title.
    let processes: BTreeMap<&str, String> = rows
        .iter()
        .map(|r| (r.instance.process(), i18n::process_title(viewer.lang, &r.definition).to_string()))
        .collect();
    let only_process = query.process.as_deref().filter(|p| !p.is_empty());
    let only_overdue = query.overdue.is_some();
    let customer = query.customer.as_deref().map(str::trim).filter(|c| !c.is_empty());
    let bound = |text: &Option<String>| text.as_deref().and_then(|t| t.trim().replace(',', "").parse::<Decimal>().ok());
    let (min, max) = (bound(&query.min_amount), bound(&query.max_amount));
    rows.retain(|r| {
        let Facts { customer: row_customer, amount, .. } = &r.facts;
        min.is_none_or(|m| amount.is_some_and(|a| a >= m))
            && max.is_none_or(|m| amount.is_some_and(|a| a <= m))
            && only_process.is_none_or(|p| r.instance.process() == p)
            && (!only_overdue || r.task.due_at.is_some_and(|d| d < now))
            && customer.is_none_or(|c| row_customer.as_deref().is_some_and(|rc| customer_matches(&customers, rc, c)))
    });
    // What the reader may decide first, most urgent first; what a `not by` rule bars them from last.
    rows.sort_by_key(|r| (r.facts.barred.is_some(), r.task.due_at.is_none(), r.task.due_at));
    let mut out = format!("<h1>{}</h1>", viewer.t("inbox"));
    let done = match query.done.as_deref() {
        Some("delegated") => Some("done_delegated"),
        Some(_) => Some("done_task"),
        None => None,
    };
    if let Some(done) = done {
        let _ = write!(out, "<p class=\"notice\" role=\"status\" id=\"done\">{}</p>", viewer.t(done));
    }
    out.push_str(&notice);
    let _ = write!(
        out,
        "<form method=\"get\" action=\"/inbox\" class=\"filters\"><label>{} <select name=\"process\"><option value=\"\">{}</option>",
        viewer.t("process"),
        viewer.t("all_processes")
    );
    for (key, title) in &processes {
        let selected = if only_process == Some(*key) { " selected" } else { "" };
        let _ = write!(out, "<option value=\"{}\"{selected}>{}</option>", esc(key), esc(title));
    }
    let _ = write!(
        out,
        "</select></label><label>{} <input name=\"customer\" value=\"{}\" size=\"8\"></label>\
         <label>{} <input name=\"min_amount\" value=\"{}\" size=\"8\" inputmode=\"decimal\"></label>\
         <label>– <input name=\"max_amount\" value=\"{}\" size=\"8\" inputmode=\"decimal\"></label>\
         <label><input type=\"checkbox\" name=\"overdue\" value=\"1\"{}> {}</label><button type=\"submit\">{}</button></form>",
        viewer.t("customer"),
        esc(customer.unwrap_or("")),
        viewer.t("amount_range"),
        esc(query.min_amount.as_deref().unwrap_or("")),
        esc(query.max_amount.as_deref().unwrap_or("")),
        if only_overdue { " checked" } else { "" },
        viewer.t("only_overdue"),
        viewer.t("filter"),
    );
    if rows.is_empty() {
        let _ = write!(out, "<p class=\"empty\">{}</p>", viewer.t("no_tasks"));
        return Ok(out);
    }
    let _ = write!(
        out,
        "<table class=\"tasks\"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        viewer.t("task"),
        viewer.t("context"),
        viewer.t("due"),
        viewer.t("state")
    );
    let total = rows.len();
    let shown = Shown::of(query.page.as_deref(), total, INBOX_PAGE);
    for row in rows.iter().skip(shown.first).take(INBOX_PAGE) {
        let Described { title, offered_to, shown: context } =
            described(viewer, &row.definition, &row.task, row.instance, &customers, now);
        let context: String = context
            .iter()
            .map(|(k, v)| {
                let label = i18n::label(k, viewer.lang);
                format!(
                    "<span class=\"kv\"><span class=\"k\">{}</span> <span class=\"v\" data-var=\"{}\">{}</span></span>",
                    esc(&label),
                    esc(k),
                    context_html(k, v)
                )
            })
            .collect();
        let mut holder = match (&row.task.claimed_by, &row.task.assignee) {
            (Some(c), _) => format!("{} {}", viewer.t("claimed_by"), esc(c)),
            (None, Some(a)) => format!("{} {}", viewer.t("assigned_to"), esc(a)),
            (None, None) => esc(&offered_to),
        };
        if row.facts.barred.is_some() {
            let _ = write!(holder, "<div class=\"barred\" data-barred>{}</div>", viewer.t("barred_from_task"));
        }
        let _ = write!(
            out,
            "<tr><td><a class=\"task-link\" href=\"/tasks/{}\">{}</a><div class=\"muted\">{}</div></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            url_path(&row.task.id.0),
            esc_keeping_ids(&title),
            esc(i18n::process_title(viewer.lang, &row.definition)),
            context,
            due_cell(viewer, row.task.due_at, now),
            holder
        );
    }
    out.push_str("</tbody></table>");
    out.push_str(&shown.pager(viewer));
    Ok(out)
}

/// `GET /tasks/{id}`: the task, its context and its decision form.
pub async fn task(State(state): State<AppState>, viewer: Viewer, Path(id): Path<TaskId>) -> Response {
    match task_page(&state, &viewer, &id, None).await {
        Ok(body) => with_lang(&viewer, html(StatusCode::OK, body)),
        Err(e) => error_page(&viewer, &e),
    }
}

async fn task_page(
    state: &AppState,
    viewer: &Viewer,
    id: &TaskId,
    problem: Option<&ApiError>,
) -> Result<String, ApiError> {
    let task = crate::server::tasks::visible_task(state, &viewer.caller, id).await?;
    let engine = state.engine();
    let now = engine.now();
    let customers = CustomerNames::of(state).await;
    let instance = engine.instance(&task.instance_id).await?;
    let definition = engine.definition(instance.process(), instance.process_version()).await?;
    let Described { title, shown: context, .. } = described(viewer, &definition, &task, &instance, &customers, now);
    let barred = facts_of(viewer, &definition, &task, &instance, now).barred;
    let process_title = i18n::process_title(viewer.lang, &definition);
    let fields = form_of(&definition, &task.node);
    let mut out = format!(
        "<h1>{}</h1><p class=\"muted\">{} · <a href=\"/cases/{}\">{}</a></p>",
        esc(&title),
        esc(process_title),
        url_path(&task.instance_id.0),
        viewer.t("instance")
    );
    // Someone a `not by` rule bars (the requester, an earlier approver) reads why at once, and
    // gets no form they could only be refused on.
    let barred = match problem {
        Some(problem) => (problem.code() == "separation_of_duties").then(|| problem.clone()),
        None => barred,
    };
    if let Some(problem) = barred.as_ref().or(problem) {
        let _ = write!(
            out,
            "<div class=\"notice refusal\" role=\"alert\" id=\"problem\">{}</div>",
            problem_text(viewer, problem, &definition, &fields, (&instance, now))
        );
    }
    out.push_str("<section><h2>");
    out.push_str(viewer.t("context"));
    out.push_str("</h2><dl class=\"context\">");
    for (k, v) in &context {
        let label = i18n::label(k, viewer.lang);
        let _ = write!(out, "<dt>{}</dt><dd data-var=\"{}\">{}</dd>", esc(&label), esc(k), context_html(k, v));
    }
    let _ = write!(out, "<dt>{}</dt><dd>{}</dd></dl></section>", viewer.t("due"), due_cell(viewer, task.due_at, now));
    if task.state != TaskState::Open {
        let _ = write!(out, "<p class=\"notice\">{}</p>", viewer.t("task_closed"));
        return Ok(page(viewer, &title, &out));
    }
    if barred.is_some() {
        return Ok(page(viewer, &title, &out));
    }
    let action = format!("/tasks/{}", url_path(&task.id.0));
    let csrf = format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", viewer.csrf);
    // Claim or release.
    let mine = task.claimed_by.as_deref() == Some(viewer.caller.name());
    let (verb, label) = if mine { ("unclaim", viewer.t("unclaim")) } else { ("claim", viewer.t("claim")) };
    if task.claimed_by.is_none() || mine {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"{action}/{verb}\" class=\"inline\">{csrf}<button type=\"submit\" id=\"{verb}\">{label}</button></form>"
        );
    }
    // The decision.
    let _ = write!(
        out,
        "<section><h2>{}</h2><form method=\"post\" action=\"{action}/complete\" class=\"decision\">{csrf}",
        viewer.t("form")
    );
    for field in &fields {
        out.push_str(&form_field(viewer, field));
    }
    let _ = write!(out, "<button type=\"submit\" id=\"submit\">{}</button></form></section>", viewer.t("complete"));
    let _ = write!(
        out,
        "<section><form method=\"post\" action=\"{action}/delegate\" class=\"inline\">{csrf}<label>{} <input name=\"to\" size=\"10\" required></label> <button type=\"submit\">{}</button></form></section>",
        viewer.t("delegate"),
        viewer.t("delegate_button")
    );
    Ok(page(viewer, &title, &out))
}

/// One input of a decision form, typed as the process declares it.
fn form_field(viewer: &Viewer, field: &FormField) -> String {
    use cloverleaf_dsl::expr::Type;
    let name = esc(&field.name);
    let label = esc(&i18n::label(&field.name, viewer.lang));
    let optional = if field.optional {
        format!(" <span class=\"muted\">{}</span>", viewer.lang.bracketed(viewer.t("optional")).trim_start())
    } else {
        String::new()
    };
    let required = if field.optional { "" } else { " required" };
    match field.ty {
        Type::Bool => {
            let (yes, no) = if field.name.starts_with("approve") {
                (viewer.t("approve"), viewer.t("reject"))
            } else {
                (viewer.t("yes"), viewer.t("no"))
            };
            // A yes/no field asks a question: "Approve?" over the options "Approve" and "Reject"
            // (its Chinese label, 是否批准, is worded as one already).
            let label = if viewer.lang == i18n::Lang::En { format!("{label}?") } else { label };
            format!(
                "<fieldset><legend>{label}{optional}</legend><label><input type=\"radio\" name=\"f.{name}\" value=\"true\" id=\"{name}-yes\"{required}> {yes}</label> \
                 <label><input type=\"radio\" name=\"f.{name}\" value=\"false\" id=\"{name}-no\"> {no}</label></fieldset>"
            )
        }
        Type::Text => format!(
            "<label for=\"{name}\">{label}{optional}</label><textarea id=\"{name}\" name=\"f.{name}\" rows=\"2\"{required}></textarea>"
        ),
        Type::Date => format!(
            "<label for=\"{name}\">{label}{optional}</label>{}",
            day_input(viewer, &name, &format!("f.{name}"), "", !field.optional)
        ),
        Type::Money | Type::Decimal | Type::Int => format!(
            "<label for=\"{name}\">{label}{optional}</label><input id=\"{name}\" name=\"f.{name}\" inputmode=\"decimal\"{required}>"
        ),
        _ => {
            format!("<label for=\"{name}\">{label}{optional}</label><input id=\"{name}\" name=\"f.{name}\"{required}>")
        }
    }
}

/// A refusal as a sentence for the reader (HTML): a form that does not fit field by field, by
/// the labels the form shows; anything else as the pages word the error.
fn problem_text(
    viewer: &Viewer,
    error: &ApiError,
    definition: &CompiledProcess,
    fields: &[FormField],
    instance: (&Instance, DateTime<Utc>),
) -> String {
    match error.code() {
        "separation_of_duties" => esc(&sod_text(viewer, error, Some(definition), Some(instance))),
        "invalid_form" => {
            let problems = error.details()["fields"].as_array().cloned().unwrap_or_default();
            let items: String = problems
                .iter()
                .map(|problem| {
                    let name = problem["field"].as_str().unwrap_or_default();
                    let message = problem["message"].as_str().unwrap_or_default();
                    let field = fields.iter().find(|f| f.name == name);
                    format!(
                        "<li data-field=\"{}\">{}{}{}</li>",
                        esc(name),
                        esc(&i18n::label(name, viewer.lang)),
                        viewer.lang.colon(),
                        esc(&form_problem(viewer, field, message))
                    )
                })
                .collect();
            format!("{}<ul>{items}</ul>", viewer.t("invalid_form"))
        }
        _ => esc(&error_text(viewer, error, Some(definition))),
    }
}

/// What is wrong with a submitted value, in the reader's words: the engine's finding
/// (`required`, `expected money, found "abc"`, a broken bound) read against the field's
/// declaration; a finding the pages do not word is shown as the engine put it.
fn form_problem(viewer: &Viewer, field: Option<&FormField>, message: &str) -> String {
    use cloverleaf_dsl::expr::Type;
    use cloverleaf_dsl::model::BoundOp;
    if message == "required" {
        return viewer.t("form_required").to_string();
    }
    if message == "not a field of this form" {
        return viewer.t("form_unknown_field").to_string();
    }
    let Some(field) = field else { return message.to_string() };
    if message.starts_with("expected ") {
        let key = match field.ty {
            Type::Money | Type::Decimal => "form_wrong_number",
            Type::Int => "form_wrong_whole",
            Type::Date => "form_wrong_date",
            Type::Bool => "form_wrong_choice",
            _ => "form_wrong_kind",
        };
        return viewer.t(key).to_string();
    }
    if message.starts_with("must have at most") {
        return viewer.t("form_cents").to_string();
    }
    if message.ends_with("in size") {
        return viewer.t("form_too_large").to_string();
    }
    match field.bounds.iter().find(|b| b.rule() == message) {
        Some(bound) => {
            let key = match bound.op {
                BoundOp::Greater => "form_greater",
                BoundOp::AtLeast => "form_at_least",
                BoundOp::Less => "form_less",
                BoundOp::AtMost => "form_at_most",
            };
            viewer.t(key).replace("{n}", &bound.value.to_string())
        }
        None => message.to_string(),
    }
}

/// `POST /tasks/{id}/claim|unclaim|complete|delegate`.
pub async fn task_action(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((id, action)): Path<(TaskId, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let csrf = form.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str());
    if !viewer.csrf_ok(csrf) {
        return message_page(&viewer, StatusCode::FORBIDDEN, "refused", viewer.t("csrf"));
    }
    let engine = state.engine();
    let caller = &viewer.caller;
    let roles = caller.0.role_refs();
    let result: Result<(), ApiError> = match action.as_str() {
        "claim" => engine.claim(&id, caller.name(), &roles).await.map_err(ApiError::from),
        "unclaim" => engine.unclaim(&id, caller.name()).await.map_err(ApiError::from),
        "delegate" => {
            let to = form.iter().find(|(k, _)| k == "to").map(|(_, v)| v.clone()).unwrap_or_default();
            let body = json!({"to": to}).to_string();
            match crate::server::tasks::delegate_task(state.clone(), caller.clone(), id.clone(), body.as_bytes()).await
            {
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            }
        }
        "complete" => match submitted_form(&state, &id, &form).await {
            Ok(values) => engine.complete_task(&id, caller.name(), &roles, values).await.map_err(ApiError::from),
            Err(e) => Err(e),
        },
        _ => {
            return message_page(
                &viewer,
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("/tasks/{}/{action}", url_path(&id.0)),
            );
        }
    };
    match result {
        Ok(()) if action == "complete" => Redirect::to("/inbox?done=1").into_response(),
        Ok(()) if action == "delegate" => Redirect::to("/inbox?done=delegated").into_response(),
        Ok(()) => Redirect::to(&format!("/tasks/{}", url_path(&id.0))).into_response(),
        Err(problem) => {
            let status = problem.status();
            match task_page(&state, &viewer, &id, Some(&problem)).await {
                Ok(body) => html(status, body),
                Err(e) => error_page(&viewer, &e),
            }
        }
    }
}

/// The submitted `f.<field>` values as the form's JSON, typed by the process's declaration; an
/// empty optional field is left out.
async fn submitted_form(state: &AppState, id: &TaskId, form: &[(String, String)]) -> Result<Value, ApiError> {
    use cloverleaf_dsl::expr::Type;
    let task = state.engine().task(id).await?;
    let instance = state.engine().instance(&task.instance_id).await?;
    let definition = state.engine().definition(instance.process(), instance.process_version()).await?;
    let fields = form_of(&definition, &task.node);
    let mut values = serde_json::Map::new();
    for field in fields {
        let Some((_, raw)) = form.iter().find(|(k, _)| k.strip_prefix("f.") == Some(field.name.as_str())) else {
            continue;
        };
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let value = match field.ty {
            Type::Bool => Value::Bool(raw == "true"),
            // A day as people type it (2026/12/6, 2026年12月6日) goes on as the day it names; what
            // names no day goes on as typed, for the engine to refuse by its field.
            Type::Date => Value::String(read_day(raw).map_or_else(|| raw.to_string(), |day| day.to_string())),
            _ => Value::String(raw.to_string()),
        };
        values.insert(field.name, value);
    }
    Ok(Value::Object(values))
}
