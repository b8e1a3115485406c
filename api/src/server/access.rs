//! Who may do what: the permission model every route applies the same way.
//!
//! A process declares beside its steps who may start it, whether only another process may,
//! which input names the requesting user, who may start it for someone else, and who may read
//! all its instances (`access { ... }` in the `.flow` file). The server adds its own roles:
//! `admin` starts any process that is not `called only`, reads everything and operates;
//! `auditor` reads every instance, history and report; `metrics` scrapes `/metrics`.
//!
//! Reading an instance is allowed to the people who take part in its case (the instance and
//! every instance it calls or is called by): whoever started it, acted in it or was acted for,
//! holds or held one of its tasks, or holds a role one of its tasks was offered to; and to the
//! roles the process names as readers. Lists are filtered by the same rule.

use std::collections::BTreeSet;

use cloverleaf_dsl::CompiledProcess;
use cloverleaf_dsl::expr::Type;
use cloverleaf_engine::InstanceId;
use cloverleaf_engine::ids::case_of;
use cloverleaf_engine::runtime::{Error as EngineError, Starter};
use cloverleaf_engine::store::Queries as _;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::config::{ADMIN, Users, canonical_user};
use super::error::ApiError;

/// The role that reads every instance, history and report, and changes nothing.
pub const AUDITOR: &str = "auditor";
/// The role of a metrics scraper: `/metrics` only.
pub const METRICS: &str = "metrics";
/// Who reads the finance figures of `/v1/reports/kpis`.
pub const REPORT_READERS: &[&str] = &[ADMIN, AUDITOR, "finance.controller", "finance.cfo"];
/// Who reads `/metrics` (instance counts by process, tasks by role, request rates).
pub const METRICS_READERS: &[&str] = &[ADMIN, METRICS];

/// 403 unless `caller` may start `definition` over the API (or with a message).
pub fn may_start(caller: &Caller, definition: &CompiledProcess) -> Result<(), ApiError> {
    let access = &definition.access;
    let key = &definition.key;
    if access.called_only {
        return Err(ApiError::forbidden(
            "called_only",
            format!("`{key}` is started only by another process (it is declared `called only`), never directly"),
        )
        .with_details(json!({"process": key})));
    }
    if caller.has(ADMIN) || access.start_by.iter().any(|r| caller.has(r)) {
        return Ok(());
    }
    let who = if access.start_by.is_empty() {
        "an administrator (it declares no `start by` roles)".to_string()
    } else {
        access.start_by.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(" or ")
    };
    Err(ApiError::forbidden("missing_role", format!("`{}` may not start `{key}`: that needs {who}", caller.name()))
        .with_details(json!({"process": key, "start_by": access.start_by, "user": caller.name()})))
}

/// Makes the inputs trustworthy before a start: every `user` input names a user of this server
/// in its one spelling, and the requester input (`access { requester x }`) is the caller unless
/// one of their roles may start on someone's behalf. The starter to record.
pub fn starter(
    caller: &Caller,
    users: &Users,
    definition: &CompiledProcess,
    variables: &mut serde_json::Map<String, Value>,
) -> Result<Starter, ApiError> {
    let mut bad = Vec::new();
    for input in definition.inputs.iter().filter(|i| i.ty == Type::User) {
        let Some(Value::String(given)) = variables.get(&input.name) else { continue };
        match canonical_user(given) {
            Some(name) if users.contains(&name) => {
                variables.insert(input.name.clone(), Value::String(name));
            }
            _ => bad.push(json!({"field": input.name, "message": format!("`{given}` is not a user of this server")})),
        }
    }
    if !bad.is_empty() {
        return Err(ApiError::unprocessable("invalid_input", "a user input names nobody this server knows")
            .with_details(json!({"fields": bad})));
    }
    let Some(field) = &definition.access.requester else { return Ok(Starter::user(caller.name())) };
    let me = caller.name().to_string();
    let named = match variables.get(field) {
        None | Some(Value::Null) => me.clone(),
        Some(Value::String(name)) => name.clone(),
        Some(_) => me.clone(),
    };
    if named == me {
        variables.insert(field.clone(), Value::String(me.clone()));
        return Ok(Starter::user(me));
    }
    let allowed = caller.has(ADMIN) || definition.access.on_behalf_by.iter().any(|r| caller.has(r));
    if !allowed {
        let reason = if definition.access.on_behalf_by.is_empty() {
            "the process lets nobody start it for someone else".to_string()
        } else {
            format!(
                "that needs {}",
                definition.access.on_behalf_by.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(" or ")
            )
        };
        return Err(ApiError::forbidden(
            "not_on_behalf",
            format!("`{me}` may not start `{}` with `{field}` = `{named}`: {reason}", definition.key),
        )
        .with_details(json!({"field": field, "user": me, "requester": named})));
    }
    Ok(Starter { user: me, on_behalf_of: Some(named) })
}

/// The instances a caller may read.
#[derive(Debug, Clone)]
pub enum Visibility {
    /// Every instance: admins and auditors.
    All,
    /// The cases the caller takes part in, and the processes whose readers they are.
    Some {
        /// (process key, version) of definitions whose `read by` roles the caller holds.
        readable: BTreeSet<(String, u32)>,
        /// The root ids (top-level instances) of the cases the caller takes part in.
        cases: BTreeSet<String>,
    },
}

impl Visibility {
    /// What `caller` may read now.
    pub async fn of(state: &AppState, caller: &Caller) -> Result<Visibility, ApiError> {
        if caller.has(ADMIN) || caller.has(AUDITOR) {
            return Ok(Visibility::All);
        }
        let engine = state.engine();
        let store = engine.store();
        let mut readable = BTreeSet::new();
        for deployment in store.deployments().await? {
            for version in store.deployment_versions(&deployment.key).await? {
                let definition = engine.definition(&deployment.key, version.version).await?;
                if definition.access.read_by.iter().any(|r| caller.has(r)) {
                    readable.insert((deployment.key.clone(), version.version));
                }
            }
        }
        let cases = store
            .participations(caller.name(), &caller.0.roles)
            .await?
            .iter()
            .map(|id| case_of(id).to_string())
            .collect();
        Ok(Visibility::Some { readable, cases })
    }

    /// True when an instance of `process` (`version`) with this id may be read.
    pub fn admits(&self, id: &str, process: &str, version: u32) -> bool {
        match self {
            Visibility::All => true,
            Visibility::Some { readable, cases } => {
                readable.contains(&(process.to_string(), version)) || cases.contains(case_of(id))
            }
        }
    }
}

/// 404 for an unknown instance, 403 with the reason for one the caller may not read, 410 for
/// an archived one the caller may read (see [`archived`]). What the caller may read, when they
/// may read this one, for a caller that judges more instances (a case's called ones).
pub async fn may_read(state: &AppState, caller: &Caller, id: &InstanceId) -> Result<Visibility, ApiError> {
    let instance = match state.engine().instance(id).await {
        Ok(instance) => instance,
        Err(EngineError::UnknownInstance(_)) => return Err(archived(state, caller, id).await?),
        Err(other) => return Err(other.into()),
    };
    let seen = Visibility::of(state, caller).await?;
    if seen.admits(id.as_str(), instance.process(), instance.process_version()) {
        return Ok(seen);
    }
    Err(not_reader(caller, id, instance.process()))
}

fn not_reader(caller: &Caller, id: &InstanceId, process: &str) -> ApiError {
    ApiError::forbidden(
        "not_reader",
        format!(
            "`{}` may not read instance `{id}`: they take no part in its case, and `{process}` does not name any of their roles as readers",
            caller.name(),
        ),
    )
    .with_details(json!({"user": caller.name(), "instance": id.0, "process": process}))
}

/// The answer for an instance that is not in the live database: 410 `archived` (where and
/// when it went) to a caller who could read it before, judged as for a live one (admins and
/// auditors, its process's readers, the participants of its case, from the tombstones of the
/// instance and of its case's root as well as from the live rows); the same 403 as for a live
/// instance to anyone else; 404 when no instance had this id.
pub async fn archived(state: &AppState, caller: &Caller, id: &InstanceId) -> Result<ApiError, ApiError> {
    let engine = state.engine();
    let Some(stone) = engine.archived(id).await? else {
        return Ok(ApiError::missing("instance", id.as_str(), format!("no instance `{id}`")));
    };
    let mut admitted =
        Visibility::of(state, caller).await?.admits(id.as_str(), &stone.process_key, stone.process_version)
            || stone.participants.include(caller.name(), &caller.0.roles);
    let root = InstanceId::from(case_of(id.as_str()).to_string());
    if !admitted
        && root != *id
        && let Some(root) = engine.archived(&root).await?
    {
        admitted = root.participants.include(caller.name(), &caller.0.roles);
    }
    if !admitted {
        return Ok(not_reader(caller, id, &stone.process_key));
    }
    let at = stone.archived_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Ok(ApiError::new(
        axum::http::StatusCode::GONE,
        "archived",
        format!("instance `{id}` was archived on {at} into {}", stone.archive),
    )
    .with_details(json!({
        "instance": id.0,
        "process": stone.process_key,
        "version": stone.process_version,
        "status": stone.status,
        "business_key": stone.business_key,
        "ended_at": stone.ended_at,
        "archived_at": stone.archived_at,
        "archive": stone.archive,
    })))
}

/// 403 unless the caller may read the finance reports.
pub fn may_read_reports(caller: &Caller) -> Result<(), ApiError> {
    caller.require_any(REPORT_READERS, "read the finance reports")
}

/// 403 unless the caller may read `/metrics`.
pub fn may_read_metrics(caller: &Caller) -> Result<(), ApiError> {
    caller.require_any(METRICS_READERS, "read the metrics")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_see_their_processes_and_participants_their_cases() {
        let seen = Visibility::Some {
            readable: BTreeSet::from([("month_end_close".to_string(), 1)]),
            cases: BTreeSet::from(["i-a-1".to_string()]),
        };
        assert!(seen.admits("i-a-1.call.2", "order_approval", 1));
        assert!(seen.admits("i-a-1/call/2", "order_approval", 1), "an id from an older store");
        assert!(!seen.admits("i-a-10.call.2", "order_approval", 1));
        assert!(seen.admits("month_end_close@20260131T100000Z", "month_end_close", 1));
        assert!(!seen.admits("month_end_close@20260131T100000Z", "month_end_close", 2));
        assert!(!seen.admits("i-b-1", "order_to_cash", 1));
        assert!(Visibility::All.admits("i-b-1", "order_to_cash", 1));
    }
}
