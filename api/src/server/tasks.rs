//! The task inbox: `/v1/tasks` and `/v1/users/me/substitute` (GET and PUT).
//!
//! A user sees and acts on the tasks of their roles, the tasks assigned to or claimed by them,
//! and those of someone they substitute for; anything else is 403 with the reason. Separation
//! of duties (`not by`) is the engine's to enforce, on claim and on completion.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use cloverleaf_engine::TaskId;
use cloverleaf_engine::store::{Store as _, TaskInfo, TaskState};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Caller;
use super::config::{ADMIN, canonical_user};
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, Query, RawBody, parse_json};
use super::views::TaskView;

/// A page of the inbox.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InboxParams {
    /// At most this many (1 to 1000; every open task when left out).
    pub limit: Option<i64>,
    /// Skip this many, oldest first.
    pub offset: Option<i64>,
}

/// The caller's inbox: open tasks of their roles, assigned to or claimed by them, or held by
/// someone they substitute for today, oldest first; `limit` and `offset` page it.
#[utoipa::path(
    get, path = "/v1/tasks", tag = "tasks",
    params(InboxParams),
    responses(
        (status = 200, description = "The caller's open tasks", body = Vec<TaskView>),
        (status = 400, description = "An unknown parameter, a limit outside 1..1000 or a negative offset", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn inbox(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<InboxParams>,
) -> Result<axum::Json<Vec<TaskView>>, ApiError> {
    if params.limit.is_some_and(|limit| !(1..=1000).contains(&limit)) {
        return Err(ApiError::bad_request("invalid_query", "limit must be between 1 and 1000"));
    }
    let offset = params.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::bad_request("invalid_query", "offset must not be negative"));
    }
    let tasks = state.engine().inbox(caller.name(), &caller.0.role_refs()).await?;
    let page = tasks
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(params.limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX)));
    Ok(axum::Json(page.map(TaskView::from).collect()))
}

/// The task if the caller may see it: an admin, one of its roles, its assignee, claimant or
/// completer, or a substitute of its holder; else 403 saying why.
pub(crate) async fn visible_task(state: &AppState, caller: &Caller, id: &TaskId) -> Result<TaskInfo, ApiError> {
    let engine = state.engine();
    let task = engine.task(id).await?;
    let name = caller.name();
    let mine = caller.has(ADMIN)
        || task.roles.iter().any(|r| caller.has(r))
        || [&task.assignee, &task.claimed_by, &task.completed_by].iter().any(|u| u.as_deref() == Some(name));
    if mine {
        return Ok(task);
    }
    let principals = engine.store().principals_of(name, engine.now()).await?;
    let holder = task.claimed_by.as_ref().or(task.assignee.as_ref());
    if holder.is_some_and(|h| principals.contains(h)) {
        return Ok(task);
    }
    Err(not_yours(name, &task))
}

/// The refusal names the roles a task is offered to (the organisation's, not a secret) but not
/// the person it is assigned to: who holds whose approvals is not told to whoever asks.
fn not_yours(user: &str, task: &TaskInfo) -> ApiError {
    let assigned = task.assignee.is_some();
    let reason = if assigned {
        format!("it is assigned to someone else, and `{user}` does not stand in for them")
    } else {
        format!("it is offered to {}, and `{user}` holds none of them", roles_list(&task.roles))
    };
    ApiError::forbidden("not_candidate", format!("`{user}` may not see or act on task `{}`: {reason}", task.id))
        .with_details(
            json!({"user": user, "task": task.id.0, "roles": task.roles, "assigned": assigned, "reason": reason}),
        )
}

fn roles_list(roles: &[String]) -> String {
    if roles.is_empty() {
        "no role".to_string()
    } else {
        roles.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", ")
    }
}

/// Reads a task the caller may see.
#[utoipa::path(
    get, path = "/v1/tasks/{id}", tag = "tasks",
    params(("id" = String, Path, description = "The task id (it contains `/`: send it as is or percent-encoded)")),
    responses(
        (status = 200, description = "The task", body = TaskView),
        (status = 403, description = "Not the caller's task: `details.reason`", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(State(state): State<AppState>, caller: Caller, Path(id): Path<TaskId>) -> Result<Response, ApiError> {
    Ok(axum::Json(TaskView::from(visible_task(&state, &caller, &id).await?)).into_response())
}

/// Refines the engine's refusal with the reason the caller is not a candidate.
async fn act<F>(state: &AppState, caller: &Caller, id: &TaskId, action: F) -> Result<Response, ApiError>
where
    F: std::future::Future<Output = Result<(), cloverleaf_engine::runtime::Error>>,
{
    match action.await {
        Ok(()) => Ok(axum::Json(TaskView::from(state.engine().task(id).await?)).into_response()),
        Err(cloverleaf_engine::runtime::Error::NotCandidate { .. }) => {
            let task = state.engine().task(id).await?;
            Err(not_yours(caller.name(), &task))
        }
        Err(e) => Err(e.into()),
    }
}

/// Claims a task: nobody else may complete it until it is released.
#[utoipa::path(
    post, path = "/v1/tasks/{id}/claim", tag = "tasks",
    params(("id" = String, Path, description = "The task id")),
    responses(
        (status = 200, description = "Claimed", body = TaskView),
        (status = 403, description = "Not the caller's task, or a `not by` rule bars the caller", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 409, description = "Claimed by someone else, or closed", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn claim(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<TaskId>,
) -> Result<Response, ApiError> {
    let engine = state.engine();
    act(&state, &caller, &id, engine.claim(&id, caller.name(), &caller.0.role_refs())).await
}

/// Releases a task the caller claimed.
#[utoipa::path(
    post, path = "/v1/tasks/{id}/unclaim", tag = "tasks",
    params(("id" = String, Path, description = "The task id")),
    responses(
        (status = 200, description = "Released", body = TaskView),
        (status = 403, description = "Not the caller's task", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 409, description = "Not claimed by the caller, or closed", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn unclaim(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<TaskId>,
) -> Result<Response, ApiError> {
    let task = visible_task(&state, &caller, &id).await?;
    if task.state == TaskState::Open && task.claimed_by.is_none() {
        return Err(ApiError::conflict("not_claimed", format!("task `{id}` is not claimed")));
    }
    let engine = state.engine();
    act(&state, &caller, &id, engine.unclaim(&id, caller.name())).await
}

/// A completed form.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    /// The form's fields (money as decimal strings).
    #[schema(value_type = Object)]
    pub variables: serde_json::Map<String, Value>,
}

/// Completes a task with its form.
#[utoipa::path(
    post, path = "/v1/tasks/{id}/complete", tag = "tasks",
    params(("id" = String, Path, description = "The task id")),
    request_body = CompleteRequest,
    responses(
        (status = 200, description = "Completed; the task as closed", body = TaskView),
        (status = 400, description = "Malformed JSON or an unknown field", body = ErrorBody),
        (status = 403, description = "Not the caller's task, or separation of duties: `details.rule`", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 409, description = "Completed already, or claimed by someone else", body = ErrorBody),
        (status = 422, description = "A form that does not fit: `details.fields`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<TaskId>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let request: CompleteRequest = parse_json(&body)?;
    let engine = state.engine();
    let form = Value::Object(request.variables);
    act(&state, &caller, &id, engine.complete_task(&id, caller.name(), &caller.0.role_refs(), form)).await
}

/// Hand a task to someone else.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DelegateRequest {
    /// Who completes it, on the caller's behalf.
    pub to: String,
}

/// Delegates a task: `to` completes it on the caller's behalf, so `not by` rules follow it.
#[utoipa::path(
    post, path = "/v1/tasks/{id}/delegate", tag = "tasks",
    params(("id" = String, Path, description = "The task id")),
    request_body = DelegateRequest,
    responses(
        (status = 200, description = "Delegated; the task as it stands", body = TaskView),
        (status = 400, description = "Malformed JSON or an unknown field", body = ErrorBody),
        (status = 403, description = "Not the caller's task, a delegate who holds none of its roles, or a `not by` rule that bars the delegate", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 409, description = "Closed, or claimed by someone else", body = ErrorBody),
        (status = 422, description = "An empty delegate, one who is not a user of this server, or one who held the task before", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delegate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<TaskId>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    delegate_task(state, caller, id, &body).await
}

/// Hands a task on as `caller` (the delegate form of the pages sends the same body).
pub(crate) async fn delegate_task(
    state: AppState,
    caller: Caller,
    id: TaskId,
    body: &[u8],
) -> Result<Response, ApiError> {
    let request: DelegateRequest = parse_json(body)?;
    let to = canonical_user(&request.to).unwrap_or_else(|| request.to.trim().to_string());
    if !to.is_empty() {
        let task = visible_task(&state, &caller, &id).await?;
        known_user(&state, "to", &to)?;
        may_hold(&state, &task, &to)?;
    }
    let engine = state.engine();
    act(&state, &caller, &id, engine.delegate(&id, caller.name(), &caller.0.role_refs(), &to)).await
}

/// 403 unless `user` could act on `task` had it been offered to them: a task offered to roles
/// goes only to someone who holds one of them.
fn may_hold(state: &AppState, task: &TaskInfo, user: &str) -> Result<(), ApiError> {
    let Some(delegate) = state.users().get(user) else { return Ok(()) };
    if task.roles.is_empty() || task.roles.iter().any(|r| delegate.has(r)) {
        return Ok(());
    }
    let reason = format!("it is offered to {}, and `{user}` holds none of them", roles_list(&task.roles));
    Err(ApiError::forbidden(
        "delegate_not_candidate",
        format!("task `{}` cannot be delegated to `{user}`: {reason}", task.id),
    )
    .with_details(json!({"user": user, "task": task.id.0, "roles": task.roles, "reason": reason})))
}

/// 422 unless `name` is a user of this server: a task handed to anyone else could never be
/// completed, since nobody could sign in as its holder.
fn known_user(state: &AppState, field: &str, name: &str) -> Result<(), ApiError> {
    if state.users().contains(name) {
        return Ok(());
    }
    let message = "not a user of this server";
    Err(ApiError::unprocessable("invalid_substitute", format!("`{name}` is {message}"))
        .with_details(json!({"fields": [{"field": field, "message": message}]})))
}

/// `user` names `substitute` (a user of this server, spelt any way) from `from` until `until`
/// (required with a substitute), or withdraws theirs with `None`; the substitution now in force.
/// The API's `PUT /v1/users/me/substitute` and the away page both name one through here.
pub(crate) async fn name_substitute(
    state: &AppState,
    user: &str,
    substitute: Option<&str>,
    from: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
) -> Result<Option<cloverleaf_engine::store::Substitution>, ApiError> {
    let engine = state.engine();
    match substitute {
        Some(name) => {
            let name = canonical_user(name).unwrap_or_else(|| name.trim().to_string());
            if !name.is_empty() && name != user {
                known_user(state, "user", &name)?;
            }
            let until = until.ok_or_else(|| {
                ApiError::unprocessable("invalid_substitute", "`until` is required when naming a substitute")
                    .with_details(json!({"fields": [{"field": "until", "message": "required"}]}))
            })?;
            engine.set_substitute(user, Some(&name), from, until).await?;
        }
        None => engine.set_substitute(user, None, from, until.unwrap_or(from)).await?,
    }
    Ok(engine.substitute_of(user).await?)
}

/// Name a substitute for a period (out of office), or withdraw one with `"user": null`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubstituteRequest {
    /// The substitute; `null` withdraws the current one.
    pub user: Option<String>,
    /// From (RFC 3339); default now.
    pub from: Option<DateTime<Utc>>,
    /// Until (RFC 3339, exclusive); required with a user.
    pub until: Option<DateTime<Utc>>,
}

/// The caller's substitute.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubstituteView {
    /// The caller.
    pub user: String,
    /// Their substitute, if any.
    pub substitute: Option<String>,
    /// From.
    pub from: Option<DateTime<Utc>>,
    /// Until (exclusive).
    pub until: Option<DateTime<Utc>>,
    /// The users whose substitute the caller is now: their tasks are in the caller's inbox.
    pub standing_in_for: Vec<String>,
}

impl SubstituteView {
    /// What `user` has named, and whom they stand in for now.
    async fn of(
        state: &AppState,
        user: &str,
        current: Option<cloverleaf_engine::store::Substitution>,
    ) -> Result<SubstituteView, ApiError> {
        let engine = state.engine();
        let standing_in_for = engine.store().principals_of(user, engine.now()).await?;
        Ok(SubstituteView {
            user: user.to_string(),
            substitute: current.as_ref().map(|c| c.substitute.clone()),
            from: current.as_ref().map(|c| c.from),
            until: current.as_ref().map(|c| c.until),
            standing_in_for,
        })
    }
}

/// The caller's substitute as last named (a period over, in force or to come; none when withdrawn
/// or never named), and the users they stand in for now.
#[utoipa::path(
    get, path = "/v1/users/me/substitute", tag = "tasks",
    responses((status = 200, description = "The caller's substitute, and whom they stand in for", body = SubstituteView)),
    security(("bearer" = []))
)]
pub async fn my_substitute(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<SubstituteView>, ApiError> {
    let current = state.engine().substitute_of(caller.name()).await?;
    Ok(axum::Json(SubstituteView::of(&state, caller.name(), current).await?))
}

/// Names the caller's substitute: for the period, they see and act on the caller's tasks on the
/// caller's behalf (substitutes do not chain).
#[utoipa::path(
    put, path = "/v1/users/me/substitute", tag = "tasks",
    request_body = SubstituteRequest,
    responses(
        (status = 200, description = "The substitute now in force", body = SubstituteView),
        (status = 400, description = "Malformed JSON or an unknown field", body = ErrorBody),
        (status = 422, description = "Oneself, an empty name, someone who is not a user of this server, or a period that ends before it starts", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn substitute(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<SubstituteRequest>,
) -> Result<axum::Json<SubstituteView>, ApiError> {
    let from = request.from.unwrap_or_else(|| state.engine().now());
    let current = name_substitute(&state, caller.name(), request.user.as_deref(), from, request.until).await?;
    Ok(axum::Json(SubstituteView::of(&state, caller.name(), current).await?))
}
