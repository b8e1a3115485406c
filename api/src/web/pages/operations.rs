//! Operations (administrators): deploying a `.flow` source and retrying incidents.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cloverleaf_engine::store::{Queries as _, Store as _};
use cloverleaf_engine::{IncidentId, Instance};
use serde::Deserialize;
use serde_json::Value;

use super::history::{Case, incident_text, step};
use super::{CsrfForm, answer, error_page, message_page, page, with_lang};
use crate::server::AppState;
use crate::server::config::ADMIN;
use crate::server::error::ApiError;
use crate::web::i18n::Lang;
use crate::web::{Viewer, diagnostics, esc, html, i18n, url_path};

/// The open incidents the page lists at most, oldest first.
const INCIDENTS_SHOWN: usize = 100;

/// `GET /ops`: open incidents with a retry button (administrators). Each names its case by the
/// process's title and order number, its step by its title, when it was raised in the reader's
/// zone and what went wrong in the reader's words.
pub async fn operations(State(state): State<AppState>, viewer: Viewer) -> Response {
    answer(&viewer, "operations", operations_page(&state, &viewer, "", "").await)
}

/// The operations page: `outcome` (a deployment's answer, as HTML) above the deploy form holding
/// `source`, then the open incidents.
async fn operations_page(state: &AppState, viewer: &Viewer, outcome: &str, source: &str) -> Result<String, ApiError> {
    viewer.caller.require(ADMIN, "operate")?;
    let engine = state.engine();
    let incidents = engine.store().incidents(false, None).await?;
    let mut out = format!(
        "<h1>{}</h1>{}{outcome}{}<h2>{}</h2>",
        viewer.t("operations"),
        unlisted_years(state, viewer).await?,
        deploy_form(viewer, source),
        viewer.t("incidents")
    );
    if incidents.is_empty() {
        let _ = write!(out, "<p class=\"empty\" id=\"no-incidents\">{}</p>", viewer.t("no_incidents"));
    } else {
        let _ = write!(
            out,
            "<table class=\"incidents\"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th></th></tr></thead><tbody>",
            viewer.t("instance"),
            viewer.t("step"),
            viewer.t("when"),
            viewer.t("cause"),
        );
    }
    let now = engine.now();
    let shown = &incidents[..incidents.len().min(INCIDENTS_SHOWN)];
    // The shown rows' cases in one read: a page of them, the rest through the API.
    let mut ids: Vec<_> = shown.iter().map(|i| i.instance_id.clone()).collect();
    ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    ids.dedup();
    let states: HashMap<String, String> =
        engine.store().load_instances(&ids).await?.into_iter().map(|row| (row.id, row.state)).collect();
    for i in shown {
        // An incident whose case cannot be read (its definition gone) still shows, by ids.
        let instance = states.get(i.instance_id.as_str()).and_then(|state| Instance::from_json(state).ok());
        let case = match instance {
            Some(instance) => match engine.definition(instance.process(), instance.process_version()).await {
                Ok(definition) => Some((instance, definition)),
                Err(_) => None,
            },
            None => None,
        };
        let (case_name, step_name) = match &case {
            Some((instance, definition)) => {
                let case = Case { definition, instance, lang: viewer.lang, now, called: HashMap::new() };
                let name = format!(
                    "{} <span class=\"muted nowrap\">{}</span>",
                    esc(i18n::process_title(viewer.lang, definition)),
                    esc(instance.business_key().unwrap_or(i.instance_id.as_str()))
                );
                (name, esc(&step(&case, &i.node)))
            }
            None => (esc(i.instance_id.as_str()), esc(&i.node)),
        };
        let _ = write!(
            out,
            "<tr><td><a href=\"/cases/{}\">{case_name}</a></td><td title=\"{}\">{step_name}</td>\
             <td>{}</td><td class=\"cause\">{}</td><td><form method=\"post\" action=\"/ops/incidents/{}/retry\" class=\"inline\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">{}</button></form></td></tr>",
            url_path(i.instance_id.as_str()),
            esc(&i.node),
            esc(&i18n::time(i.raised_at, viewer.zone, viewer.lang)),
            incident_text(viewer, &i.message),
            url_path(i.id.as_str()),
            viewer.csrf,
            viewer.t("retry"),
        );
    }
    if !incidents.is_empty() {
        out.push_str("</tbody></table>");
    }
    if incidents.len() > INCIDENTS_SHOWN {
        let more = viewer
            .t("incidents_more")
            .replace("{shown}", &INCIDENTS_SHOWN.to_string())
            .replace("{all}", &incidents.len().to_string());
        let _ = write!(out, "<p class=\"muted\" id=\"incidents-more\">{}</p>", esc(&more));
    }
    Ok(out)
}

/// A notice for each deployed calendar that lists no holidays for the current year on its clock
/// (or, near its end, the next): the operator is the one who adds them.
async fn unlisted_years(state: &AppState, viewer: &Viewer) -> Result<String, ApiError> {
    let engine = state.engine();
    let now = engine.now();
    let mut out = String::new();
    for (name, calendar) in engine.calendars().await? {
        let years = calendar.unlisted_years_at(now);
        if years.is_empty() {
            continue;
        }
        let years: Vec<String> = years.iter().map(i32::to_string).collect();
        let years = match viewer.lang {
            i18n::Lang::ZhCn => years.join("、"),
            i18n::Lang::En => years.join(" and "),
        };
        let text = viewer.t("calendar_unlisted").replace("{calendar}", &name).replace("{years}", &years);
        let _ = write!(out, "<p class=\"notice\" id=\"calendar-{}\">{}</p>", esc(&name), esc(&text));
    }
    Ok(out)
}

/// The form that deploys a `.flow` source, holding `source`.
fn deploy_form(viewer: &Viewer, source: &str) -> String {
    format!(
        "<section><h2>{}</h2><form method=\"post\" action=\"/ops/deploy\" class=\"decision\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><label for=\"filename\">{}</label>\
         <input id=\"filename\" name=\"filename\" value=\"definition.flow\"><label for=\"source\">{}</label>\
         <textarea id=\"source\" name=\"source\" rows=\"12\" spellcheck=\"false\" required>{}</textarea>\
         <button type=\"submit\" id=\"deploy\">{}</button></form></section>",
        viewer.t("deploy"),
        viewer.csrf,
        viewer.t("file_name"),
        viewer.t("flow_source"),
        esc(source),
        viewer.t("deploy_button")
    )
}

/// The deploy form: the `.flow` source and the file name its diagnostics carry.
#[derive(Debug, Deserialize)]
pub struct DeployForm {
    csrf: Option<String>,
    filename: Option<String>,
    source: String,
}

/// `POST /ops/deploy`: compiles and deploys a `.flow` source (administrators); diagnostics are
/// shown as the compiler prints them, with the source line and a caret, and the form keeps the text.
pub async fn deploy(State(state): State<AppState>, viewer: Viewer, Form(form): Form<DeployForm>) -> Response {
    if !viewer.csrf_ok(form.csrf.as_deref()) {
        return message_page(&viewer, StatusCode::FORBIDDEN, "refused", viewer.t("csrf"));
    }
    if let Err(e) = viewer.caller.require(ADMIN, "deploy processes") {
        return error_page(&viewer, &e);
    }
    let name = form.filename.filter(|n| !n.trim().is_empty() && !n.chars().any(char::is_control));
    let name = name.unwrap_or_else(|| "definition.flow".to_string());
    let source = form.source.replace("\r\n", "\n");
    let (status, outcome) = match crate::server::definitions::deploy_source(&state, name, source.clone()).await {
        Ok(done) => {
            let versions: Vec<String> =
                done.processes.iter().map(|p| format!("{} v{}", esc(&p.key), p.version)).collect();
            let mut out = format!(
                "<p class=\"notice\" role=\"status\" id=\"outcome\">{}{}{}</p>",
                viewer.t("deployed"),
                viewer.lang.colon(),
                versions.join(viewer.lang.list_separator())
            );
            if !done.warnings.is_empty() {
                let rendered: String = done.warnings.iter().map(|w| esc(&w.rendered)).collect::<Vec<_>>().join("\n");
                let views: Vec<Value> = done.warnings.iter().filter_map(|w| serde_json::to_value(w).ok()).collect();
                let _ = write!(
                    out,
                    "<h3>{}</h3>{}{}<pre class=\"diagnostics\">{rendered}</pre>",
                    viewer.t("warnings"),
                    diagnostics::summary_list(viewer.lang, &views),
                    compiler_text_heading(&viewer, &views)
                );
            }
            (StatusCode::OK, out)
        }
        Err(e) => {
            let views = e.details()["diagnostics"].as_array().cloned().unwrap_or_default();
            let rendered: Vec<String> = views.iter().filter_map(|d| d["rendered"].as_str().map(esc)).collect();
            let body = if rendered.is_empty() { esc(e.message()) } else { rendered.join("\n") };
            let out = format!(
                "<div class=\"notice refusal\" role=\"alert\" id=\"outcome\"><p>{}</p>{}{}<pre class=\"diagnostics\">{body}</pre></div>",
                viewer.t("diagnostics"),
                diagnostics::summary_list(viewer.lang, &views),
                compiler_text_heading(&viewer, &views)
            );
            (e.status(), out)
        }
    };
    // The whole operations page, the incidents included, with the answer above the form.
    match operations_page(&state, &viewer, &outcome, &source).await {
        Ok(body) => with_lang(&viewer, html(status, page(&viewer, viewer.t("deploy"), &body))),
        Err(e) => error_page(&viewer, &e),
    }
}

/// The heading of the compiler's own text where a list in the reader's language comes before
/// it: that the text below is the compiler's, in English.
fn compiler_text_heading(viewer: &Viewer, views: &[Value]) -> String {
    if viewer.lang == Lang::En || views.is_empty() {
        return String::new();
    }
    format!("<p class=\"compiler-text\">{}</p>", viewer.t("compiler_text"))
}

/// `POST /ops/incidents/{id}/retry`.
pub async fn retry_incident(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<IncidentId>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !viewer.csrf_ok(form.csrf.as_deref()) {
        return message_page(&viewer, StatusCode::FORBIDDEN, "refused", viewer.t("csrf"));
    }
    if let Err(e) = viewer.caller.require(ADMIN, "retry incidents") {
        return error_page(&viewer, &e);
    }
    match state.engine().retry_incident(&id).await {
        Ok(()) => Redirect::to("/ops").into_response(),
        Err(e) => error_page(&viewer, &ApiError::from(e)),
    }
}
