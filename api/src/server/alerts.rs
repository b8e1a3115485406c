//! Alerts: the rules of the `.rules` files beside the processes, judged against the indicator
//! catalogue on a schedule (and on demand), with what they found kept in the sub-ledger.
//!
//! `GET /v1/alerts` lists them (finance readers), `POST /v1/alerts/{id}/acknowledge` records who
//! saw one and `POST /v1/alerts/evaluate` judges the rules now (the controller, the CFO, admin).

use std::path::{Path as FsPath, PathBuf};

use anyhow::{Context as _, Result, bail};
use axum::extract::State;
use chrono::{DateTime, Utc};
use cloverleaf_dsl::SourceMap;
use cloverleaf_dsl::rules::{Indicator, Rule, RuleUnit, parse_rules};
use cloverleaf_engine::runtime::Engine;
use cloverleaf_engine::store::{NotificationRow, Queries, Store};
use cloverleaf_finance::ledger::alerts::{Alert, AlertChanges, Firing};
use cloverleaf_finance::ledger::kpi::{Breakdown, CATALOGUE, CREDIT_UTILISATION, Unit, Window};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::access::REPORT_READERS;
use super::auth::Caller;
use super::config::ADMIN;
use super::error::{ApiError, ErrorBody};
use super::extract::{Path, Query};

/// Who acknowledges alerts and asks for an evaluation (auditors read, and change nothing).
pub const ALERT_HANDLERS: &[&str] = &[ADMIN, "finance.controller", "finance.cfo"];

/// How often `serve` judges the rules.
pub const EVALUATE_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// Figures of the running processes the rules may judge beside the finance catalogue: (key,
/// unit, what it counts). Judged on the whole (no split).
pub const PROCESS_INDICATORS: &[(&str, RuleUnit, &str)] = &[
    ("approvals_past_due", RuleUnit::Count, "open human tasks past their due time"),
    ("open_incidents", RuleUnit::Count, "open incidents (jobs out of retries, stuck joins)"),
    ("oldest_incident_age", RuleUnit::Days, "days the oldest open incident has waited for an operator"),
];

/// Finance figures the rules may judge beside the catalogue: (key, unit, split by customer, what
/// it is). Credit utilisation is the credit controller's figure, not on the board yet.
pub const LEDGER_INDICATORS: &[(&str, RuleUnit, bool, &str)] =
    &[(CREDIT_UTILISATION, RuleUnit::Ratio, true, "open receivables ÷ credit limit on the day")];

/// The catalogue and the process figures as the rules language sees them: names, units, splits.
pub fn indicators() -> Vec<Indicator<'static>> {
    let finance = CATALOGUE.iter().map(|d| Indicator {
        key: d.key,
        unit: match d.unit {
            Unit::Money => RuleUnit::Money,
            Unit::Days => RuleUnit::Days,
            Unit::Ratio => RuleUnit::Ratio,
        },
        by_customer: d.breakdowns.contains(&Breakdown::Customer),
    });
    let ledger =
        LEDGER_INDICATORS.iter().map(|(key, unit, split, _)| Indicator { key, unit: *unit, by_customer: *split });
    let process = PROCESS_INDICATORS.iter().map(|(key, unit, _)| Indicator { key, unit: *unit, by_customer: false });
    finance.chain(ledger).chain(process).collect()
}

/// The process figures at `now`, read from the engine's store: tasks past due, open incidents
/// and the age of the oldest (none when there is no open incident).
pub async fn process_figures<S: Store + Queries>(
    engine: &Engine<S>,
    now: DateTime<Utc>,
) -> Result<Vec<(&'static str, Option<Decimal>)>, cloverleaf_engine::store::Error> {
    let past_due = engine.store().open_tasks(None).await?.iter().filter(|t| t.due_at.is_some_and(|d| d < now)).count();
    let incidents = engine.store().incidents(false, None).await?;
    let oldest = incidents.iter().map(|i| i.raised_at).min().map(|raised| {
        let minutes = (now - raised).num_minutes().max(0);
        (Decimal::from(minutes) / Decimal::from(24 * 60)).round_dp(2)
    });
    Ok(vec![
        ("approvals_past_due", Some(Decimal::from(past_due))),
        ("open_incidents", Some(Decimal::from(incidents.len()))),
        ("oldest_incident_age", oldest),
    ])
}

/// Checks `files` (name, text) together: every rule, or every diagnostic rendered with its
/// source line and caret.
pub fn check_rules(files: &[(String, String)], roles: Option<&[String]>) -> Result<Vec<Rule>, String> {
    let indicators = indicators();
    let mut map = SourceMap::new();
    let mut rules: Vec<Rule> = Vec::new();
    let mut problems = Vec::new();
    for (name, text) in files {
        let file = map.add(name.clone(), text.clone());
        match parse_rules(file, text, &indicators, roles) {
            Ok(found) => {
                for rule in found {
                    if rules.iter().any(|r| r.name == rule.name) {
                        problems.push(format!(
                            "error: alert `{}` is declared in two files (the second: {name})\n",
                            rule.name
                        ));
                    } else {
                        rules.push(rule);
                    }
                }
            }
            Err(diagnostics) => problems.push(map.render_all(&diagnostics)),
        }
    }
    if problems.is_empty() { Ok(rules) } else { Err(problems.join("\n")) }
}

/// The roles declared by the `.flow` files of `dirs` (their `roles` blocks) and the server's own
/// (`admin`, `auditor`), or none when they hold no `.flow` file: what an alert may `notify`.
pub fn declared_roles(dirs: &[&FsPath]) -> Option<Vec<String>> {
    let mut project = cloverleaf_dsl::Project::new();
    let mut any = false;
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "flow"))
            .collect();
        paths.sort();
        for path in paths {
            if let Ok(text) = std::fs::read_to_string(&path) {
                project.add(path.display().to_string(), text);
                any = true;
            }
        }
    }
    any.then(|| with_server_roles(project.compile().roles))
}

/// `declared` (a project's roles) and the server's own, operators and auditors: whom an alert may
/// `notify`.
pub fn with_server_roles(mut declared: Vec<String>) -> Vec<String> {
    declared.extend([ADMIN.to_string(), super::access::AUDITOR.to_string()]);
    declared.sort();
    declared.dedup();
    declared
}

/// The rules of every `.rules` file of `dir` (none when it has none or does not exist); an error
/// with every diagnostic when one does not check.
pub fn load_rules(dir: &FsPath) -> Result<Vec<Rule>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rules"))
        .collect();
    paths.sort();
    let mut files = Vec::new();
    for path in &paths {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        files.push((path.display().to_string(), text));
    }
    match check_rules(&files, declared_roles(&[dir]).as_deref()) {
        Ok(rules) => Ok(rules),
        Err(rendered) => bail!("the alert rules do not check:\n{rendered}"),
    }
}

/// Judges every rule of the server on the figures of the last 90 days, records what changed,
/// takes the day's KPI snapshot if it is not taken yet and releases the budgets of cancelled
/// orders.
pub async fn evaluate(state: &AppState, now: DateTime<Utc>) -> Result<AlertChanges, ApiError> {
    let ledger = state.ledger().ok_or_else(ApiError::no_ledger)?;
    let rules = state.rules();
    let process = process_figures(state.engine(), now).await.map_err(ApiError::internal)?;
    let changes = judge(ledger, &rules, &process, now).await.map_err(ApiError::internal)?;
    let alerts = ledger.alerts(false).await.map_err(ApiError::internal)?;
    state.engine().notify(alert_notices(&alerts, &rules, now)).await.map_err(ApiError::internal)?;
    // The day's snapshot of the catalogue, for trends: the first evaluation of a day takes it,
    // the later ones find it taken.
    let today = ledger.book_date(now).await.map_err(ApiError::internal)?;
    ledger.snapshot_kpis(today, now).await.map_err(ApiError::internal)?;
    // Approved orders cancelled since the last pass give their budget back.
    for (order, amount) in
        super::budgets::release_cancelled(state.engine(), ledger, now).await.map_err(ApiError::internal)?
    {
        tracing::info!(order, %amount, "budget released: the order was cancelled");
    }
    Ok(changes)
}

/// How long after it closed an alert still gets its `alert_cleared` notification raised (should
/// the server have stopped between closing it and raising it).
const CLEARED_NOTICE_WINDOW_HOURS: i64 = 24;

/// The notifications the alerts owe: `alert_opened` for every open one, `alert_cleared` for every
/// one closed in the last day. Ids are the alert's (`alert.{id}.opened`), so raising them on
/// every evaluation is harmless and one missed by a stop is raised by the next.
pub fn alert_notices(alerts: &[Alert], rules: &[Rule], now: DateTime<Utc>) -> Vec<NotificationRow> {
    let recent = now - chrono::TimeDelta::hours(CLEARED_NOTICE_WINDOW_HOURS);
    let mut rows = Vec::new();
    for alert in alerts {
        let (kind, at) = match alert.closed_at {
            None => ("alert_opened", alert.opened_at),
            Some(closed) if closed >= recent => ("alert_cleared", closed),
            Some(_) => continue,
        };
        let id = format!("alert.{}.{}", alert.id, kind.trim_start_matches("alert_"));
        let notify = rules.iter().find(|r| r.name == alert.rule).map(|r| r.notify.clone()).unwrap_or_default();
        let payload = serde_json::json!({
            "id": id, "kind": kind, "alert": alert.id, "rule": alert.rule, "title": alert.title,
            "severity": alert.severity, "subject": alert.subject, "indicator": alert.indicator,
            "threshold": alert.threshold.to_string(), "value": alert.last_value.to_string(),
            "opened_at": alert.opened_at.to_rfc3339(), "closed_at": alert.closed_at.map(|t| t.to_rfc3339()),
            "notify": notify, "at": at.to_rfc3339(),
        });
        rows.push(NotificationRow {
            id,
            instance_id: None,
            kind: kind.to_string(),
            subject: alert.id.to_string(),
            payload: payload.to_string(),
            created_at: at,
        });
    }
    rows
}

/// Judges `rules` on `ledger`'s figures of the 90 days up to `now` and on the `process` figures
/// (see [`process_figures`]), and records what changed.
pub async fn judge(
    ledger: &cloverleaf_finance::Ledger,
    rules: &[Rule],
    process: &[(&str, Option<Decimal>)],
    now: DateTime<Utc>,
) -> Result<AlertChanges, cloverleaf_finance::ledger::Error> {
    let window = Window::last_90_days(ledger.book_date(now).await?);
    let mut whole = ledger.figures(window, None).await?;
    let mut split = if rules.iter().any(|r| r.by_customer) {
        ledger.figures(window, Some(Breakdown::Customer)).await?
    } else {
        Vec::new()
    };
    if rules.iter().any(|r| r.indicator == CREDIT_UTILISATION) {
        let credit = ledger.credit_utilisation(window.as_of).await?;
        split.push(credit.clone());
        whole.push(credit);
    }
    let mut firing = Vec::new();
    for rule in rules.iter() {
        let fire = |subject: &str, value: Decimal| Firing {
            rule: rule.name.clone(),
            subject: subject.to_string(),
            title: rule.title.clone(),
            severity: rule.severity.name().to_string(),
            indicator: rule.indicator.clone(),
            threshold: rule.threshold,
            value,
        };
        if rule.by_customer {
            let parts = split.iter().find(|f| f.key == rule.indicator).map(|f| f.parts.as_slice()).unwrap_or_default();
            for (customer, value) in parts {
                if let Some(value) = value.filter(|v| rule.comparison.holds(*v, rule.threshold)) {
                    firing.push(fire(customer, value));
                }
            }
        } else if let Some(value) = whole
            .iter()
            .find(|f| f.key == rule.indicator)
            .and_then(|f| f.value)
            .or_else(|| process.iter().find(|(key, _)| *key == rule.indicator).and_then(|(_, v)| *v))
            .filter(|v| rule.comparison.holds(*v, rule.threshold))
        {
            firing.push(fire("", value));
        }
    }
    let names: Vec<String> = rules.iter().map(|r| r.name.clone()).collect();
    ledger.record_alerts(&names, &firing, now).await
}

/// An alert as the API shows it (money and thresholds as decimal strings, in the indicator's unit).
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertView {
    /// Its id.
    pub id: i64,
    /// The rule that opened it.
    pub rule: String,
    /// The customer it concerns; absent for the whole company.
    pub customer: Option<String>,
    /// The rule's title.
    pub title: String,
    /// `warning` or `critical`.
    pub severity: String,
    /// The indicator judged.
    pub indicator: String,
    /// The rule's threshold (a ratio as a fraction).
    #[schema(value_type = String)]
    pub threshold: Decimal,
    /// The value when it opened.
    #[schema(value_type = String)]
    pub opened_value: Decimal,
    /// The value at the latest evaluation while open.
    #[schema(value_type = String)]
    pub last_value: Decimal,
    /// When it opened.
    pub opened_at: DateTime<Utc>,
    /// Who acknowledged it, and when.
    pub acknowledged_by: Option<String>,
    /// When it was acknowledged.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// When its condition cleared; absent while open.
    pub closed_at: Option<DateTime<Utc>>,
}

impl From<Alert> for AlertView {
    fn from(a: Alert) -> AlertView {
        AlertView {
            id: a.id,
            rule: a.rule,
            customer: Some(a.subject).filter(|s| !s.is_empty()),
            title: a.title,
            severity: a.severity,
            indicator: a.indicator,
            threshold: a.threshold,
            opened_value: a.opened_value,
            last_value: a.last_value,
            opened_at: a.opened_at,
            acknowledged_by: a.acknowledged_by,
            acknowledged_at: a.acknowledged_at,
            closed_at: a.closed_at,
        }
    }
}

/// Which alerts.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    /// Closed ones too (the history), not only the open ones.
    #[serde(default)]
    pub all: bool,
}

fn ledger(state: &AppState) -> Result<&cloverleaf_finance::Ledger, ApiError> {
    state.ledger().ok_or_else(ApiError::no_ledger)
}

/// The open alerts, newest first (with `all=true`, the closed ones too).
#[utoipa::path(
    get, path = "/v1/alerts", tag = "reports",
    params(AlertQuery),
    responses(
        (status = 200, description = "The alerts", body = Vec<AlertView>),
        (status = 403, description = "Not admin, auditor, finance controller or CFO", body = ErrorBody),
        (status = 404, description = "No sub-ledger on this server", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<AlertQuery>,
) -> Result<axum::Json<Vec<AlertView>>, ApiError> {
    caller.require_any(REPORT_READERS, "read the alerts")?;
    let alerts = ledger(&state)?.alerts(!query.all).await.map_err(ApiError::internal)?;
    Ok(axum::Json(alerts.into_iter().map(AlertView::from).collect()))
}

/// Records that the caller has seen an alert (the first acknowledgement stands).
#[utoipa::path(
    post, path = "/v1/alerts/{id}/acknowledge", tag = "reports",
    params(("id" = i64, Path, description = "The alert's id")),
    responses(
        (status = 200, description = "The alert", body = AlertView),
        (status = 403, description = "Not admin, finance controller or CFO", body = ErrorBody),
        (status = 404, description = "No such alert, or no sub-ledger on this server", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn acknowledge(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<axum::Json<AlertView>, ApiError> {
    caller.require_any(ALERT_HANDLERS, "acknowledge alerts")?;
    let now = state.engine().now();
    match ledger(&state)?.acknowledge_alert(id, caller.name(), now).await.map_err(ApiError::internal)? {
        Some(alert) => Ok(axum::Json(alert.into())),
        None => Err(ApiError::missing("alert", id.to_string(), format!("no alert {id}"))),
    }
}

/// What an evaluation changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct EvaluationView {
    /// Rules judged.
    pub rules: usize,
    /// Ids of the alerts opened.
    pub opened: Vec<i64>,
    /// Ids of the alerts closed (their condition cleared).
    pub closed: Vec<i64>,
}

/// Judges every rule now, as the schedule does every five minutes.
#[utoipa::path(
    post, path = "/v1/alerts/evaluate", tag = "reports",
    responses(
        (status = 200, description = "What changed", body = EvaluationView),
        (status = 403, description = "Not admin, finance controller or CFO", body = ErrorBody),
        (status = 404, description = "No sub-ledger on this server", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn evaluate_now(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<EvaluationView>, ApiError> {
    caller.require_any(ALERT_HANDLERS, "evaluate the alert rules")?;
    let changes = evaluate(&state, state.engine().now()).await?;
    Ok(axum::Json(EvaluationView { rules: state.rules().len(), opened: changes.opened, closed: changes.closed }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_rules_check_and_a_name_is_unique_across_files() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../processes/alerts.rules")).unwrap();
        let roles = declared_roles(&[FsPath::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../processes"))]);
        assert!(roles.as_ref().is_some_and(|r| r.contains(&"finance.controller".to_string())), "{roles:?}");
        let rules = check_rules(&[("alerts.rules".into(), text.clone())], roles.as_deref()).unwrap();
        assert!(rules.len() >= 4, "{rules:?}");
        let twice = check_rules(&[("a.rules".into(), text.clone()), ("b.rules".into(), text)], None).unwrap_err();
        assert!(twice.contains("declared in two files (the second: b.rules)"), "{twice}");
        let broken =
            check_rules(&[("c.rules".into(), "alert x \"X\" { when revenue > 10% }".into())], None).unwrap_err();
        assert!(broken.contains("c.rules:1:30") && broken.contains("E0602"), "{broken}");
    }

    #[test]
    fn every_indicator_of_the_catalogue_and_every_process_figure_can_be_named_in_a_rule() {
        let names = indicators();
        assert_eq!(names.len(), CATALOGUE.len() + LEDGER_INDICATORS.len() + PROCESS_INDICATORS.len());
        assert!(names.iter().any(|i| i.key == "credit_utilisation" && i.by_customer && i.unit == RuleUnit::Ratio));
        assert!(names.iter().any(|i| i.key == "approvals_past_due" && !i.by_customer && i.unit == RuleUnit::Count));
        assert!(names.iter().any(|i| i.key == "oldest_incident_age" && i.unit == RuleUnit::Days));
        assert!(names.iter().any(|i| i.key == "overdue_receivables" && i.by_customer && i.unit == RuleUnit::Money));
        assert!(names.iter().any(|i| i.key == "auto_match_rate" && !i.by_customer && i.unit == RuleUnit::Ratio));
    }
}
