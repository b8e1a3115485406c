//! The OpenAPI document, generated from the handlers' annotations with utoipa.
//!
//! `api/openapi.json` is a checked-in copy that a test keeps in sync; regenerate it with
//! `CLOVERLEAF_UPDATE_OPENAPI=1 cargo test -p cloverleaf --test server openapi`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    alerts, budgets, definitions, error, incidents, instances, jobs, kpis, messages, migrations, notify, ops, reports,
    tasks, views,
};

/// The API's description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cloverleaf",
        description = "Workflow engine where business and finance meet: definitions, instances, messages, \
                       the task inbox, the external-job API, incidents, metrics and KPIs. JSON in and out; \
                       money as decimal strings; times RFC 3339; errors as {\"error\": {\"code\", \"message\", \"details\"}}. \
                       Ids go into paths as they are; an id from a store written before ids were URL-safe holds `/`, sent as `%2F`."
    ),
    paths(
        ops::healthz, ops::metrics, ops::openapi,
        definitions::deploy, definitions::list, definitions::get, definitions::graph, migrations::migrate,
        instances::start, instances::list, instances::get, instances::history, instances::cancel,
        instances::modify,
        messages::correlate,
        tasks::inbox, tasks::get, tasks::claim, tasks::unclaim, tasks::complete, tasks::delegate, tasks::my_substitute, tasks::substitute,
        jobs::fetch_and_lock, jobs::complete, jobs::fail, jobs::error, jobs::extend_lock,
        incidents::list, incidents::retry,
        kpis::catalogue, kpis::one, kpis::history, reports::kpis, reports::stored,
        reports::aging, reports::gross_profit, reports::trial_balance, budgets::list, budgets::set,
        alerts::list, alerts::acknowledge, alerts::evaluate_now,
        notify::list, notify::retry, notify::outbox::list, notify::outbox::retry,
    ),
    components(schemas(error::ErrorBody, error::ErrorInfo, views::InstanceView, views::TaskView, views::JobView)),
    modifiers(&BearerAuth),
    tags(
        (name = "definitions", description = "Deploy and read processes; migrate instances between versions (admin role)"),
        (name = "instances", description = "Start, inspect, cancel"),
        (name = "messages", description = "Correlate messages from outside"),
        (name = "tasks", description = "The task inbox"),
        (name = "jobs", description = "The external-job API (worker role)"),
        (name = "incidents", description = "Stuck work (admin role)"),
        (name = "reports", description = "The indicator catalogue, alerts, KPIs, the stored month-end reports and the customer letters"),
        (name = "operations", description = "Health, metrics, this document"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A token from cloverleaf.toml (stored there as its sha256)"))
                    .build(),
            ),
        );
    }
}

/// The document as pretty JSON with a final newline (the checked-in copy's form).
pub fn json() -> String {
    let mut text = ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot write the OpenAPI document");
        "{}".to_string()
    });
    text.push('\n');
    text
}
