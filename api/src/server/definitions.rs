//! `/v1/definitions`: deploy `.flow` source, list and read definitions, export graphs.
//!
//! A posted source compiles together with what is deployed: the role declarations of the
//! latest deployments and the latest version of every process it does not define itself, so
//! `call` and `role` resolve. Only the processes the posted source defines are deployed; the
//! stored source is the posted text plus the role declarations it was compiled against.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use cloverleaf_dsl::{Compilation, CompiledProcess, Diagnostic, FileId, Format, Project, Severity};
use cloverleaf_engine::store::{Queries as _, Store as _};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Caller;
use super::config::ADMIN;
use super::error::ApiError;
use super::extract::{Path, Query, RawBody};

/// Largest `.flow` source accepted.
pub(super) const MAX_SOURCE: usize = 4 * 1024 * 1024;

/// A compiler diagnostic.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiagnosticView {
    /// The code (`E0103`, `W0503`).
    pub code: String,
    /// error or warning.
    pub severity: String,
    /// What is wrong.
    pub message: String,
    /// The file name.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The label under the caret.
    pub label: String,
    /// How to fix it.
    pub help: Option<String>,
    /// The diagnostic as the CLI prints it: source line, caret, help.
    pub rendered: String,
}

fn diagnostic(compilation: &Compilation, d: &Diagnostic) -> DiagnosticView {
    let file = compilation.sources.get(d.file);
    let (line, column) = file.line_col(d.span.start);
    DiagnosticView {
        code: d.code.to_string(),
        severity: match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
        .to_string(),
        message: d.message.clone(),
        file: file.name.clone(),
        line,
        column,
        label: d.label.clone(),
        help: d.help.clone(),
        rendered: compilation.sources.render(d),
    }
}

/// One process deployed.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeployedView {
    /// The process key.
    pub key: String,
    /// Its version.
    pub version: u32,
    /// sha256 of its compiled form.
    pub hash: String,
    /// False when the same definition was deployed before (the version is unchanged).
    pub created: bool,
}

/// The answer to a deployment.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeployResponse {
    /// The first process the source defines.
    pub key: String,
    /// Its version.
    pub version: u32,
    /// sha256 of its compiled form.
    pub hash: String,
    /// False when nothing changed.
    pub created: bool,
    /// Warnings of the compiler (the deployment went ahead).
    pub warnings: Vec<DiagnosticView>,
    /// Every process the source defines, in order.
    pub processes: Vec<DeployedView>,
}

/// Where the posted source came from, for diagnostics.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeployParams {
    /// The file name diagnostics show (default `definition.flow`).
    pub filename: Option<String>,
}

/// Deploys the processes of a `.flow` source (admin).
#[utoipa::path(
    post, path = "/v1/definitions", tag = "definitions",
    params(DeployParams),
    request_body(content = String, content_type = "text/plain", description = "The .flow source"),
    responses(
        (status = 201, description = "Deployed", body = DeployResponse),
        (status = 400, description = "Not UTF-8 text, or a filename with control characters", body = super::error::ErrorBody),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody),
        (status = 413, description = "A source over 4 MiB", body = super::error::ErrorBody),
        (status = 422, description = "The source does not compile: `details.diagnostics`", body = super::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn deploy(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<DeployParams>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(ADMIN, "deploy processes")?;
    let text = String::from_utf8(body.into())
        .map_err(|e| ApiError::bad_request("invalid_body", format!("the source is not UTF-8 text: {e}")))?;
    if text.trim().is_empty() {
        return Err(ApiError::bad_request("invalid_body", "the body is empty: send the .flow source as text"));
    }
    let name = params.filename.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| "definition.flow".to_string());
    // The name heads the stored source as a `# file:` comment: a line break would end the
    // comment and make the rest of the name source.
    if name.chars().any(char::is_control) {
        return Err(ApiError::bad_request("invalid_query", "the filename must be one line without control characters"));
    }
    let response = deploy_source(&state, name, text).await?;
    Ok((StatusCode::CREATED, axum::Json(response)).into_response())
}

/// Compiles `text` (named `name` in diagnostics) against what is deployed and deploys its
/// processes; the caller is an admin. A 422 carries every diagnostic, rendered.
pub(crate) async fn deploy_source(state: &AppState, name: String, text: String) -> Result<DeployResponse, ApiError> {
    let engine = state.engine();
    let context = engine.store().latest_sources().await?;
    // Compiling a large source takes a while: off the async workers, so other requests go on.
    let compiled = tokio::task::spawn_blocking(move || compile_with_context(&name, &text, &context))
        .await
        .map_err(ApiError::internal)?;
    let errors: Vec<DiagnosticView> = compiled
        .compilation
        .diagnostics
        .iter()
        .filter(|d| d.file == FileId(0) && d.is_error())
        .map(|d| diagnostic(&compiled.compilation, d))
        .collect();
    if !errors.is_empty() {
        let count = errors.len();
        return Err(ApiError::unprocessable("compile_error", format!("the source does not compile: {count} error(s)"))
            .with_details(json!({ "diagnostics": errors })));
    }
    let warnings: Vec<DiagnosticView> = compiled
        .compilation
        .diagnostics
        .iter()
        .filter(|d| d.file == FileId(0))
        .map(|d| diagnostic(&compiled.compilation, d))
        .collect();
    let processes: Vec<&CompiledProcess> =
        compiled.keys.iter().filter_map(|k| compiled.compilation.process(k)).collect();
    if processes.is_empty() {
        return Err(ApiError::unprocessable(
            "no_process",
            "the source defines no process: role declarations are deployed with a process",
        ));
    }
    let mut deployed = Vec::new();
    for process in processes {
        let d = engine.deploy_compiled(process, &compiled.stored_source).await?;
        deployed.push(DeployedView { key: d.key, version: d.version, hash: d.hash, created: d.created });
    }
    state.forget_role_titles().await;
    let first = &deployed[0];
    Ok(DeployResponse {
        key: first.key.clone(),
        version: first.version,
        hash: first.hash.clone(),
        created: first.created,
        warnings,
        processes: deployed,
    })
}

/// A posted source compiled in the context of what is deployed.
struct Compiled {
    compilation: Compilation,
    /// The processes the posted source defines, in order.
    keys: Vec<String>,
    /// What a deployment stores: the posted text and the roles it was compiled against.
    stored_source: String,
}

/// Compiles `text` (file 0) with the roles and calendars of `deployed` (key, source of its
/// latest version) that it does not declare itself, and the deployed processes it does not define.
fn compile_with_context(name: &str, text: &str, deployed: &[(String, String)]) -> Compiled {
    let (posted, _) = cloverleaf_dsl::parse(FileId(0), text);
    let keys: Vec<String> =
        posted.as_ref().map(|f| f.processes.iter().map(|p| p.key.name.clone()).collect()).unwrap_or_default();
    let own_roles: BTreeSet<String> =
        posted.as_ref().map(|f| f.roles.iter().map(|r| r.name.name.clone()).collect()).unwrap_or_default();
    let own_calendars: BTreeSet<String> =
        posted.as_ref().map(|f| f.calendars.iter().map(|c| c.name.name.clone()).collect()).unwrap_or_default();
    let mut roles: BTreeMap<String, Option<String>> = BTreeMap::new();
    // Each calendar's block as written, from the first deployed source (by key) that declares it.
    let mut calendars: BTreeMap<String, String> = BTreeMap::new();
    let mut processes: Vec<(String, String)> = Vec::new();
    let mut parsed: HashMap<&str, Option<cloverleaf_dsl::ast::File>> = HashMap::new();
    for (key, source) in deployed {
        let file = parsed.entry(source.as_str()).or_insert_with(|| cloverleaf_dsl::parse(FileId(0), source).0);
        let Some(file) = file else { continue };
        for role in &file.roles {
            if !own_roles.contains(&role.name.name) {
                roles.entry(role.name.name.clone()).or_insert_with(|| role.title.clone());
            }
        }
        for calendar in &file.calendars {
            if !own_calendars.contains(&calendar.name.name)
                && let Some(block) = source.get(calendar.span.start..calendar.span.end)
            {
                calendars.entry(calendar.name.name.clone()).or_insert_with(|| block.to_string());
            }
        }
        if keys.contains(key) {
            continue;
        }
        if let Some(p) = file.processes.iter().find(|p| &p.key.name == key)
            && let Some(block) = source.get(p.span.start..p.span.end)
        {
            processes.push((key.clone(), block.to_string()));
        }
    }
    let mut project = Project::new();
    project.add(name, text);
    let mut stored_source = format!("# file: {name}\n{text}\n");
    if !roles.is_empty() {
        let mut block = String::from("roles {\n");
        for (role, title) in &roles {
            match title {
                Some(t) => block.push_str(&format!("  {role} \"{}\"\n", escape(t))),
                None => block.push_str(&format!("  {role}\n")),
            }
        }
        block.push_str("}\n");
        project.add("deployed roles", block.clone());
        stored_source.push_str(&format!("# file: deployed roles\n{block}"));
    }
    if !calendars.is_empty() {
        let blocks: String = calendars.into_values().map(|block| format!("{block}\n")).collect();
        project.add("deployed calendars", blocks.clone());
        stored_source.push_str(&format!("# file: deployed calendars\n{blocks}"));
    }
    for (key, block) in processes {
        project.add(format!("deployed {key}"), block);
    }
    Compiled { compilation: project.compile(), keys, stored_source }
}

fn escape(title: &str) -> String {
    title.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n").replace('\t', "\\t")
}

/// A deployed process.
#[derive(Debug, Serialize, ToSchema)]
pub struct DefinitionSummary {
    /// The process key.
    pub key: String,
    /// The title.
    pub title: String,
    /// The latest version.
    pub version: u32,
    /// sha256 of the latest version.
    pub hash: String,
    /// When the latest version was deployed.
    pub deployed_at: DateTime<Utc>,
    /// How many versions exist.
    pub versions: u32,
}

/// Lists the deployed processes, latest versions.
#[utoipa::path(
    get, path = "/v1/definitions", tag = "definitions",
    responses((status = 200, description = "The latest version of every process", body = Vec<DefinitionSummary>)),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<axum::Json<Vec<DefinitionSummary>>, ApiError> {
    let engine = state.engine();
    let mut out = Vec::new();
    for d in engine.store().deployments().await? {
        let title = engine.definition(&d.key, d.version).await?.title.clone();
        out.push(DefinitionSummary {
            key: d.key,
            title,
            version: d.version,
            hash: d.hash,
            deployed_at: d.deployed_at,
            versions: d.versions,
        });
    }
    Ok(axum::Json(out))
}

/// Which version.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct VersionParams {
    /// The version; the latest when absent.
    pub version: Option<u32>,
}

/// One version of a deployed process.
#[derive(Debug, Serialize, ToSchema)]
pub struct DefinitionView {
    /// The process key.
    pub key: String,
    /// The title.
    pub title: String,
    /// This version.
    pub version: u32,
    /// The latest version.
    pub latest_version: u32,
    /// sha256 of the compiled form.
    pub hash: String,
    /// When it was deployed.
    pub deployed_at: DateTime<Utc>,
    /// The source it was compiled from.
    pub source: String,
    /// The compiled process (inputs, variables, roles, nodes).
    #[schema(value_type = Object)]
    pub compiled: Value,
}

/// Reads a deployed process.
#[utoipa::path(
    get, path = "/v1/definitions/{key}", tag = "definitions",
    params(("key" = String, Path, description = "The process key"), VersionParams),
    responses(
        (status = 200, description = "The definition", body = DefinitionView),
        (status = 404, description = "No such process or version", body = super::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    _caller: Caller,
    Path(key): Path<String>,
    Query(params): Query<VersionParams>,
) -> Result<axum::Json<DefinitionView>, ApiError> {
    let engine = state.engine();
    let versions = engine.store().deployment_versions(&key).await?;
    if versions.is_empty() {
        return Err(ApiError::missing("process", key.as_str(), format!("process `{key}` is not deployed")));
    }
    let latest = versions.last().map_or(0, |v| v.version);
    let version = params.version.unwrap_or(latest);
    let row = engine.store().deployment(&key, Some(version)).await?.ok_or_else(|| {
        ApiError::not_found(format!("process `{key}` has no version {version}"))
            .with_details(serde_json::json!({"what": "version", "id": key, "version": version}))
    })?;
    let compiled: Value = serde_json::from_str(&row.compiled).map_err(ApiError::internal)?;
    let title = compiled.get("title").and_then(Value::as_str).unwrap_or_default().to_string();
    Ok(axum::Json(DefinitionView {
        key: row.key,
        title,
        version: row.version,
        latest_version: latest,
        hash: row.hash,
        deployed_at: row.at,
        source: row.source,
        compiled,
    }))
}

/// The graph format and version.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct GraphParams {
    /// json (default), dot or mermaid.
    pub format: Option<String>,
    /// The version; the latest when absent.
    pub version: Option<u32>,
}

/// A process's graph as JSON, Graphviz DOT or Mermaid.
#[utoipa::path(
    get, path = "/v1/definitions/{key}/graph", tag = "definitions",
    params(("key" = String, Path, description = "The process key"), GraphParams),
    responses(
        (status = 200, description = "The graph (application/json, text/vnd.graphviz or text/plain)", body = String),
        (status = 400, description = "Unknown format", body = super::error::ErrorBody),
        (status = 404, description = "No such process or version", body = super::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn graph(
    State(state): State<AppState>,
    _caller: Caller,
    Path(key): Path<String>,
    Query(params): Query<GraphParams>,
) -> Result<Response, ApiError> {
    let format: Format = params
        .format
        .as_deref()
        .unwrap_or("json")
        .parse()
        .map_err(|e: String| ApiError::bad_request("invalid_query", e))?;
    let engine = state.engine();
    let version = match params.version {
        Some(v) => v,
        None => engine.latest_version(&key).await?,
    };
    let definition = engine.definition(&key, version).await?;
    let content_type = match format {
        Format::Json => "application/json",
        Format::Dot => "text/vnd.graphviz; charset=utf-8",
        Format::Mermaid => "text/plain; charset=utf-8",
        Format::Bpmn => "application/xml; charset=utf-8",
    };
    Ok(([(header::CONTENT_TYPE, content_type)], cloverleaf_dsl::export(&definition, format)).into_response())
}
