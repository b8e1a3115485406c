//! `/v1/definitions/{key}/migrations` (admin): running instances moved to another deployed
//! version of their definition, planned per instance, refused per instance with the reasons,
//! in batches; a dry run only says what would happen.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use cloverleaf_engine::runtime::{MigrationOutcome, MigrationReport, MigrationRequest};
use cloverleaf_engine::{InstanceId, MigrationPlan};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::Caller;
use super::config::ADMIN;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path};

/// The most instances one request may take.
pub const MAX_LIMIT: usize = 10_000;

/// A migration of running instances from one version to another.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrationBody {
    /// The version the instances run.
    pub from_version: u32,
    /// The version they move to.
    pub to_version: u32,
    /// Renamed nodes, old name → new name (a node of the same name maps to itself).
    #[serde(default)]
    pub mapping: BTreeMap<String, String>,
    /// Only these instances; every running instance of `from_version` when absent.
    #[serde(default)]
    pub instances: Option<Vec<String>>,
    /// Plan only: say what would happen, change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Why: recorded in each instance's history with the caller's name.
    pub reason: String,
    /// Only instances whose id sorts after this one: the `next` of the previous batch.
    #[serde(default)]
    pub after: Option<String>,
    /// Most instances in this batch (default 500, at most 10,000).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// One reason a migration is refused: what it is about, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemView {
    /// A token, a node, a variable, the instance, a field of the request.
    pub at: String,
    /// What is wrong, and how to make it safe.
    pub reason: String,
}

/// A token's node before and after.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenMoveView {
    /// The token.
    pub token: String,
    /// Its node in the version migrated from.
    pub from: String,
    /// Its node in the version migrated to.
    pub to: String,
}

/// A wait of the instance and what the migration does to it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WaitChangeView {
    /// job, task, timer, subscription, call or incident.
    pub kind: String,
    /// Its id.
    pub id: String,
    /// Its node.
    pub node: String,
    /// kept, closed (its node changed) or opened (re-created by the new version's node).
    pub action: String,
}

/// What the migration does to one instance.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanView {
    /// Every token.
    pub tokens: Vec<TokenMoveView>,
    /// Every wait kept, closed or opened.
    pub waits: Vec<WaitChangeView>,
    /// Variables added with their defaults.
    pub added: Vec<String>,
    /// Variables removed.
    pub removed: Vec<String>,
    /// Variables whose values were converted to a new type.
    pub converted: Vec<String>,
}

/// One instance of the batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceMigrationView {
    /// The instance.
    pub instance_id: String,
    /// migrated, would_migrate (a dry run) or refused.
    pub outcome: String,
    /// What was (or would be) done, unless refused.
    pub plan: Option<PlanView>,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ProblemView>,
}

/// What one batch did.
#[derive(Debug, Serialize, ToSchema)]
pub struct MigrationView {
    /// The process key.
    pub process: String,
    /// The version migrated from.
    pub from_version: u32,
    /// The version migrated to.
    pub to_version: u32,
    /// True when nothing was changed.
    pub dry_run: bool,
    /// How many instances moved (or would move).
    pub migrated: usize,
    /// How many were refused.
    pub refused: usize,
    /// Set when more instances are left: send it as `after` for the next batch.
    pub next: Option<String>,
    /// Every instance of the batch, in id order.
    pub instances: Vec<InstanceMigrationView>,
}

fn problems(list: &[(String, String)]) -> Vec<ProblemView> {
    list.iter().map(|(at, reason)| ProblemView { at: at.clone(), reason: reason.clone() }).collect()
}

fn word<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn plan_view(plan: &MigrationPlan) -> PlanView {
    PlanView {
        tokens: plan
            .tokens
            .iter()
            .map(|t| TokenMoveView { token: t.token.to_string(), from: t.from.clone(), to: t.to.clone() })
            .collect(),
        waits: plan
            .waits
            .iter()
            .map(|w| WaitChangeView {
                kind: word(&w.kind),
                id: w.id.clone(),
                node: w.node.clone(),
                action: word(&w.action),
            })
            .collect(),
        added: plan.added.clone(),
        removed: plan.removed.clone(),
        converted: plan.converted.clone(),
    }
}

/// The answer of a migration batch, as the API gives it (the CLI prints a local one alike).
pub fn view(request: &MigrationRequest, report: &MigrationReport) -> MigrationView {
    MigrationView {
        process: request.process.clone(),
        from_version: request.from_version,
        to_version: request.to_version,
        dry_run: request.dry_run,
        migrated: report.migrated(),
        refused: report.refused(),
        next: report.next.as_ref().map(|n| n.0.clone()),
        instances: report
            .instances
            .iter()
            .map(|i| {
                let (outcome, plan, refused) = match &i.outcome {
                    MigrationOutcome::Migrated(plan) => ("migrated", Some(plan_view(plan)), Vec::new()),
                    MigrationOutcome::WouldMigrate(plan) => ("would_migrate", Some(plan_view(plan)), Vec::new()),
                    MigrationOutcome::Refused(list) => ("refused", None, problems(list)),
                };
                InstanceMigrationView {
                    instance_id: i.instance.0.clone(),
                    outcome: outcome.to_string(),
                    plan,
                    problems: refused,
                }
            })
            .collect(),
    }
}

/// Migrates running instances of a process to another deployed version (admin).
///
/// Each instance is planned from the two graphs and its own state, and written in its own
/// transaction: its new version, its re-created waits and a history entry naming the caller and
/// the reason. An instance whose move is unsafe is refused with every reason and stops no other.
/// When every instance of a batch is refused (and it is not a dry run), the answer is 409.
#[utoipa::path(
    post, path = "/v1/definitions/{key}/migrations", tag = "definitions",
    params(("key" = String, Path, description = "The process key")),
    request_body = MigrationBody,
    responses(
        (status = 200, description = "The batch: each instance migrated, would migrate, or refused with its reasons", body = MigrationView),
        (status = 400, description = "The request cannot run as asked (same version, no reason, a mapping naming no node)", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such process or version", body = ErrorBody),
        (status = 409, description = "Every instance of the batch was refused; the details say why", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn migrate(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    Json(body): Json<MigrationBody>,
) -> Result<Response, ApiError> {
    caller.require(ADMIN, "migrate instances")?;
    if body.limit.is_some_and(|l| l == 0 || l > MAX_LIMIT) {
        return Err(ApiError::bad_request("invalid_migration", format!("`limit` must be between 1 and {MAX_LIMIT}")));
    }
    let request = MigrationRequest {
        process: key,
        from_version: body.from_version,
        to_version: body.to_version,
        mapping: body.mapping,
        instances: body.instances.map(|ids| ids.into_iter().map(InstanceId::from).collect()),
        dry_run: body.dry_run,
        by: caller.name().to_string(),
        reason: body.reason.trim().to_string(),
        after: body.after.map(InstanceId::from),
        limit: body.limit,
    };
    let report = state.engine().migrate(&request).await?;
    let view = view(&request, &report);
    if !request.dry_run && view.migrated == 0 && view.refused > 0 {
        let message = format!("no instance could be migrated: {} refused", view.refused);
        let details = serde_json::to_value(&view).map_err(ApiError::internal)?;
        return Err(ApiError::conflict("migration_refused", message).with_details(details));
    }
    Ok(axum::Json(view).into_response())
}
