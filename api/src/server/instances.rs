//! `/v1/instances`: start, list, read, history, cancel.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cloverleaf_engine::runtime::Error as EngineError;
use cloverleaf_engine::store::{Queries as _, sha256_hex};
use cloverleaf_engine::{Event, InstanceId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::access::{self, Visibility};
use super::auth::Caller;
use super::config::ADMIN;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, Query};
use super::views::{HistoryEntry, InstanceSummaryView, InstanceView, RowInfo};

/// Start an instance.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The process key.
    pub process: String,
    /// A deployed version; the latest when absent.
    pub version: Option<u32>,
    /// The business key (an order number...).
    pub business_key: Option<String>,
    /// The process's inputs (money as decimal strings or exact JSON numbers).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: serde_json::Map<String, Value>,
}

/// The header that makes a start safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Starts an instance of a deployed process.
///
/// Who may start it is the process's `access` declaration; the requester input is the caller
/// unless their role may start on someone's behalf (then both names are recorded).
///
/// With an `Idempotency-Key` header the start happens once per caller and key: a retry (after a
/// timeout or a lost answer, on any node) gets the instance the first request started, with 200
/// instead of 201; the same key with another body is 409. Keys of different callers never meet.
#[utoipa::path(
    post, path = "/v1/instances", tag = "instances",
    request_body = StartRequest,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Up to 100 letters, digits, `.`, `_`, `:` or `-`; a repeat returns the instance the key started")),
    responses(
        (status = 201, description = "Started; the instance as it stands after its first step", body = InstanceView),
        (status = 200, description = "Started before under this idempotency key; the instance as it stands now", body = InstanceView),
        (status = 400, description = "Malformed JSON, an unknown field, or a malformed idempotency key", body = ErrorBody),
        (status = 403, description = "Not a role that may start the process (an older version: not one that may start the latest either), a called-only process, or a requester other than the caller without an `on behalf by` role", body = ErrorBody),
        (status = 404, description = "No such process or version", body = ErrorBody),
        (status = 409, description = "The idempotency key started another process or business key", body = ErrorBody),
        (status = 410, description = "The idempotency key started an instance that has since been archived (`archived`): when, and into which archive, in `details`", body = ErrorBody),
        (status = 422, description = "Inputs that do not fit the process: `details.fields`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn start(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(request): Json<StartRequest>,
) -> Result<Response, ApiError> {
    let engine = state.engine();
    let latest = engine.latest_version(&request.process).await?;
    let version = request.version.unwrap_or(latest);
    let definition = engine.definition(&request.process, version).await?;
    access::may_start(&caller, &definition)?;
    // An older version is started only by whom the latest still lets start: a role a new
    // version removed, or a process it made `called only`, cannot go round it by naming the old.
    if version != latest {
        access::may_start(&caller, &*engine.definition(&request.process, latest).await?)?;
    }
    let mut inputs = request.variables;
    let starter = access::starter(&caller, state.users(), &definition, &mut inputs)?;
    let variables = Value::Object(inputs);
    let business_key = request.business_key.as_deref();
    let Some(key) = idempotency_key(&headers)? else {
        let (id, _) =
            engine.start_for(&starter, &request.process, Some(version), business_key, variables, None).await?;
        let view = instance_view(&state, &id).await?;
        return Ok((StatusCode::CREATED, axum::Json(view)).into_response());
    };
    // A key is the caller's own (the id derives from both) and stands for one request: the same
    // key with another body is a conflict, never another start or someone else's instance.
    let id = format!("req-{}", &sha256_hex(format!("{}\n{key}", caller.name()).as_bytes())[..32]);
    let (id, created) =
        engine.start_for(&starter, &request.process, Some(version), business_key, variables.clone(), Some(&id)).await?;
    if !created {
        // Started before, and archived since: where it went, to the one who started it.
        let instance = match engine.instance(&id).await {
            Err(EngineError::UnknownInstance(_)) => return Err(access::archived(&state, &caller, &id).await?),
            other => other?,
        };
        let first = engine.events(&id).await?.into_iter().next().map(|(event, _)| event);
        let same = instance.process() == request.process
            && matches!(&first, Some(Event::Start { variables: v, business_key: b, .. })
                if *v == variables && b.as_deref() == business_key);
        if !same {
            return Err(ApiError::conflict(
                "idempotency_key_reused",
                format!(
                    "the idempotency key `{key}` was sent before with another request; use a new key for another start"
                ),
            )
            .with_details(json!({"instance": id.0})));
        }
    }
    let view = instance_view(&state, &id).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, axum::Json(view)).into_response())
}

/// The request's idempotency key, checked: instance ids travel in URLs and logs.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else { return Ok(None) };
    let key = value.to_str().unwrap_or_default().trim();
    let fits = (1..=100).contains(&key.len())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
    if !fits {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "the Idempotency-Key header must be 1 to 100 letters, digits, `.`, `_`, `:` or `-`",
        ));
    }
    Ok(Some(key.to_string()))
}

async fn instance_view(state: &AppState, id: &InstanceId) -> Result<InstanceView, ApiError> {
    let engine = state.engine();
    let instance = engine.instance(id).await?;
    let row = engine.store().instance_summary(id.as_str()).await?.map(|s| RowInfo {
        parent_id: s.parent_id.map(|p| p.to_string()),
        created_at: s.created_at,
        updated_at: s.updated_at,
    });
    Ok(InstanceView::new(&instance, row.as_ref()))
}

/// Filters of the instance list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only this process.
    pub process: Option<String>,
    /// Only this status: created, running, completed, failed or cancelled.
    pub status: Option<String>,
    /// Only this business key.
    pub business_key: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<i64>,
    /// Skip this many (newest first).
    pub offset: Option<i64>,
}

const STATUSES: [&str; 5] = ["created", "running", "completed", "failed", "cancelled"];

/// Lists instances, newest first.
#[utoipa::path(
    get, path = "/v1/instances", tag = "instances",
    params(ListParams),
    responses(
        (status = 200, description = "Matching instances", body = Vec<InstanceSummaryView>),
        (status = 400, description = "An unknown parameter or status", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<Vec<InstanceSummaryView>>, ApiError> {
    if let Some(status) = params.status.as_deref().filter(|s| !STATUSES.contains(s)) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("unknown status `{status}`: use one of {}", STATUSES.join(", ")),
        ));
    }
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("invalid_query", "limit must be between 1 and 1000"));
    }
    let offset = params.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::bad_request("invalid_query", "offset must not be negative"));
    }
    let store = state.engine().store();
    let (process, status, business_key) =
        (params.process.as_deref(), params.status.as_deref(), params.business_key.as_deref());
    let rows = match Visibility::of(&state, &caller).await? {
        Visibility::All => store.instances(process, status, business_key, limit, offset).await?,
        // Filtered before the page is cut, so that a page is full of what the caller may read.
        // This reads every matching row: fine for a desk's list, not for millions of instances.
        seen => store
            .instances(process, status, business_key, i64::MAX, 0)
            .await?
            .into_iter()
            .filter(|r| seen.admits(r.id.as_str(), &r.process_key, r.process_version))
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect(),
    };
    Ok(axum::Json(
        rows.into_iter()
            .map(|r| InstanceSummaryView {
                id: r.id.to_string(),
                process: r.process_key,
                version: r.process_version,
                status: r.status.to_string(),
                business_key: r.business_key,
                parent_id: r.parent_id.map(|p| p.to_string()),
                created_at: r.created_at,
                updated_at: r.updated_at,
            })
            .collect(),
    ))
}

/// Reads an instance: status, variables, tokens and what it waits for.
#[utoipa::path(
    get, path = "/v1/instances/{id}", tag = "instances",
    params(("id" = String, Path, description = "The instance id")),
    responses(
        (status = 200, description = "The instance", body = InstanceView),
        (status = 403, description = "Not a participant of its case nor a reader of its process", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 410, description = "Archived (`archived`): when, and into which archive, in `details`; to callers who may read it", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<InstanceId>,
) -> Result<Response, ApiError> {
    access::may_read(&state, &caller, &id).await?;
    Ok(axum::Json(instance_view(&state, &id).await?).into_response())
}

/// The tamper-evident history of an instance.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryView {
    /// The instance.
    pub instance_id: String,
    /// True when every entry's hash and link check out.
    pub intact: bool,
    /// The entries, in order.
    pub entries: Vec<HistoryEntry>,
}

/// Reads an instance's audit trail, with the result of re-checking its hash chain.
#[utoipa::path(
    get, path = "/v1/instances/{id}/history", tag = "instances",
    params(("id" = String, Path, description = "The instance id")),
    responses(
        (status = 200, description = "The history", body = HistoryView),
        (status = 403, description = "Not a participant of its case nor a reader of its process", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 410, description = "Archived (`archived`): when, and into which archive, in `details`; to callers who may read it", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<InstanceId>,
) -> Result<Response, ApiError> {
    access::may_read(&state, &caller, &id).await?;
    let engine = state.engine();
    let check = engine.verify_history(&id).await?;
    let rows = engine.history(&id).await?;
    let view = HistoryView {
        instance_id: id.0,
        intact: check.is_intact(),
        entries: rows.into_iter().map(HistoryEntry::from).collect(),
    };
    Ok(axum::Json(view).into_response())
}

/// Cancels an instance and everything it has open (admin).
#[utoipa::path(
    post, path = "/v1/instances/{id}/cancel", tag = "instances",
    params(("id" = String, Path, description = "The instance id")),
    responses(
        (status = 200, description = "Cancelled; the instance as it stands", body = InstanceView),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 409, description = "The instance has ended already", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<InstanceId>,
) -> Result<Response, ApiError> {
    caller.require(ADMIN, "cancel instances")?;
    state.engine().cancel(&id, caller.name()).await?;
    Ok(axum::Json(instance_view(&state, &id).await?).into_response())
}

/// An operator's repair of a running instance: one action, with a reason.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModificationBody {
    /// cancel_token, start_before or set_variable.
    pub action: String,
    /// Why: recorded in the instance's history with the caller's name.
    pub reason: String,
    /// The token to cancel (cancel_token).
    pub token: Option<u64>,
    /// The node to start a token before (start_before).
    pub node: Option<String>,
    /// The variable to set (set_variable).
    pub name: Option<String>,
    /// Its new value, as at a start (set_variable; money as a decimal string).
    #[schema(value_type = Object)]
    pub value: Option<Value>,
}

impl ModificationBody {
    /// The engine's modification, or what the body lacks.
    fn modification(self) -> Result<cloverleaf_engine::Modification, ApiError> {
        use cloverleaf_engine::Modification;
        let missing =
            |field: &str| ApiError::bad_request("invalid_modification", format!("`{}` needs `{field}`", self.action));
        match self.action.as_str() {
            "cancel_token" => Ok(Modification::CancelToken {
                token: cloverleaf_engine::TokenId(self.token.ok_or_else(|| missing("token"))?),
            }),
            "start_before" => Ok(Modification::StartBefore { node: self.node.clone().ok_or_else(|| missing("node"))? }),
            "set_variable" => Ok(Modification::SetVariable {
                name: self.name.clone().ok_or_else(|| missing("name"))?,
                value: self.value.clone().unwrap_or(Value::Null),
            }),
            other => Err(ApiError::bad_request(
                "invalid_modification",
                format!("unknown action `{other}`: use cancel_token, start_before or set_variable"),
            )),
        }
    }
}

/// Repairs a running instance by hand (admin): cancels a token, starts one before a node of the
/// main flow, or sets a variable; recorded in its history chain with the caller and the reason.
#[utoipa::path(
    post, path = "/v1/instances/{id}/modifications", tag = "instances",
    params(("id" = String, Path, description = "The instance id")),
    request_body = ModificationBody,
    responses(
        (status = 200, description = "Done; the instance as it stands", body = InstanceView),
        (status = 400, description = "An unknown action, or one missing its field", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 409, description = "The instance is not running", body = ErrorBody),
        (status = 422, description = "No such token, node or variable; a value of the wrong type; the last token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn modify(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<InstanceId>,
    Json(body): Json<ModificationBody>,
) -> Result<Response, ApiError> {
    caller.require(ADMIN, "modify instances")?;
    let reason = body.reason.trim().to_string();
    let modification = body.modification()?;
    state.engine().modify(&id, modification, caller.name(), &reason).await?;
    Ok(axum::Json(instance_view(&state, &id).await?).into_response())
}
