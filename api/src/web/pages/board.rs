//! The finance board: alerts, the month's budgets, aging, the indicator catalogue, invoiced and
//! received by week, gross profit by customer, cycle times and work by role.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cloverleaf_dsl::CompiledProcess;
use cloverleaf_engine::store::Queries as _;
use rust_decimal::Decimal;
use serde::Deserialize;

use super::{CsrfForm, answer, error_page, message_page};
use crate::server::AppState;
use crate::server::access;
use crate::server::error::ApiError;
use crate::web::i18n;
use crate::web::{Viewer, esc, esc_keeping_ids, url_path};

/// What the board may be asked for.
#[derive(Debug, Deserialize)]
pub struct BoardQuery {
    /// The month whose budgets are shown (`2026-03`); this month when absent.
    period: Option<String>,
    /// The cost centre whose budget was just set, confirmed on the page.
    saved: Option<String>,
}

/// `GET /board`: the figures business and finance share, for the roles that read reports.
pub async fn board(State(state): State<AppState>, viewer: Viewer, Query(query): Query<BoardQuery>) -> Response {
    let result: Result<String, ApiError> = async {
        access::may_read_reports(&viewer.caller)?;
        let report = crate::server::reports::report(&state, None).await?;
        let lang = viewer.lang;
        let mut out = format!("<h1>{}</h1>", viewer.t("board"));
        out.push_str(&alerts_section(&state, &viewer).await?);
        out.push_str(&super::budgets::section(&state, &viewer, query.period.as_deref(), query.saved.as_deref()).await?);
        if let Some(ledger) = &report.ledger {
            // Not yet due first, then by days overdue; each bar leads to its invoices.
            let most = ledger.aging.iter().map(|b| b.amount).max().unwrap_or_default().max(Decimal::ONE);
            let _ = write!(out, "<section><h2>{}</h2><svg class=\"bars\" viewBox=\"0 0 480 {}\" role=\"img\" aria-label=\"{}\">", viewer.t("aging"), ledger.aging.len() * 30 + 10, viewer.t("aging"));
            for (i, bucket) in ledger.aging.iter().enumerate() {
                let width = (bucket.amount * Decimal::from(220) / most).round().to_string().parse::<u32>().unwrap_or(0);
                let y = i * 30 + 8;
                let _ = write!(
                    out,
                    "<a href=\"/board/receivables?bucket={}\"><text x=\"0\" y=\"{}\" font-size=\"12\">{}</text><rect x=\"140\" y=\"{y}\" width=\"{width}\" height=\"20\" fill=\"{}\"/>\
                     <text x=\"{}\" y=\"{}\" font-size=\"11\" data-bucket=\"{}\">{}</text></a>",
                    url_path(&bucket.label),
                    y + 15,
                    esc(&super::figures::bucket_name(&viewer, &bucket.label)),
                    if bucket.label == cloverleaf_finance::ledger::NOT_DUE { "#8fa9c4" } else { "#3b6ea8" },
                    146 + width,
                    y + 15,
                    esc(&bucket.label),
                    esc(&i18n::money(bucket.amount, lang)),
                );
            }
            out.push_str("</svg></section>");
            out.push_str(&catalogue_table(&state, &viewer, ledger.as_of).await?);
            out.push_str(&weekly_flow(&state, &viewer, ledger.as_of).await?);
            out.push_str(&profit_by_customer(&state, &viewer, ledger.as_of).await?);
        }
        let _ = write!(
            out,
            "<section><h2>{}</h2><table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>p50 / p95</th><th>{}</th></tr></thead><tbody>",
            viewer.t("cycle_time"),
            viewer.t("process"),
            viewer.t("started"),
            viewer.t("completed"),
            viewer.t("running"),
            viewer.t("sla_breaches")
        );
        let hours =
            |s: Option<i64>| s.map_or("—".to_string(), |s| format!("{:.1} {}", s as f64 / 3600.0, viewer.t("hours")));
        let processes = Processes::deployed(&state).await?;
        for p in &report.processes {
            let _ = write!(
                out,
                "<tr data-process=\"{}\"><td><a href=\"/cases?process={}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td></tr>",
                esc(&p.process),
                url_path(&p.process),
                esc(processes.title(viewer.lang, &p.process)),
                p.started,
                p.completed,
                p.running,
                hours(p.cycle_time_p50_seconds),
                hours(p.cycle_time_p95_seconds),
                p.sla_breaches
            );
        }
        out.push_str("</tbody></table></section>");
        out.push_str(&work_by_role(&state, &viewer, &processes).await?);
        Ok(out)
    }
    .await;
    answer(&viewer, "board", result)
}

/// Gross profit by customer over the last 90 days, largest revenue first.
async fn profit_by_customer(state: &AppState, viewer: &Viewer, to: chrono::NaiveDate) -> Result<String, ApiError> {
    let Some(ledger) = state.ledger() else { return Ok(String::new()) };
    let from = to - chrono::TimeDelta::days(89);
    let report = ledger.gross_profit(from, to).await.map_err(ApiError::internal)?;
    let mut customers = report.customers;
    customers.sort_by_key(|c| std::cmp::Reverse(c.revenue));
    let money = |d: Decimal| i18n::money(d, viewer.lang);
    let mut out = format!(
        "<section><h2>{} <span class=\"muted\">{from} – {to}</span></h2><table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>%</th></tr></thead><tbody>",
        viewer.t("profit_report"),
        viewer.t("customer"),
        viewer.t("revenue"),
        viewer.t("cost_of_goods"),
        viewer.t("gross_profit"),
    );
    for line in customers.iter().take(15) {
        let margin = if line.revenue.is_zero() {
            "—".to_string()
        } else {
            format!("{}%", (line.gross_profit * Decimal::from(100) / line.revenue).round_dp(1))
        };
        let _ = write!(
            out,
            "<tr><td><a href=\"/board/orders?customer={c}\">{c}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{margin}</td></tr>",
            money(line.revenue),
            money(line.cost_of_goods),
            money(line.gross_profit),
            c = esc(&line.customer_id),
        );
    }
    let _ = write!(
        out,
        "<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th></th></tr></tbody></table></section>",
        viewer.t("total"),
        money(report.revenue),
        money(report.cost_of_goods),
        money(report.gross_profit)
    );
    Ok(out)
}

/// The indicator catalogue over the last 90 days, each figure with how it is computed and, where
/// one list holds them, a link to the documents behind it.
async fn catalogue_table(state: &AppState, viewer: &Viewer, as_of: chrono::NaiveDate) -> Result<String, ApiError> {
    use cloverleaf_finance::ledger::kpi::{CATALOGUE, Unit, Window};
    let Some(ledger) = state.ledger() else { return Ok(String::new()) };
    let window = Window::last_90_days(as_of);
    let figures = ledger.figures(window, None).await.map_err(ApiError::internal)?;
    let mut out = format!(
        "<section><h2>{} <span class=\"muted\">{} – {}</span></h2><table class=\"kpis\"><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        viewer.t("kpis"),
        window.from,
        window.as_of,
        viewer.t("kpi"),
        viewer.t("value"),
        viewer.t("definition")
    );
    for (definition, figure) in CATALOGUE.iter().zip(figures) {
        let value = match (definition.unit, figure.value) {
            (_, None) => "—".to_string(),
            (Unit::Money, Some(v)) => i18n::money(v, viewer.lang),
            (Unit::Days, Some(v)) => format!("{} {}", v.round_dp(1), viewer.t("days")),
            (Unit::Ratio, Some(v)) => format!("{}%", (v * Decimal::from(100)).round_dp(1)),
        };
        let behind = match definition.key {
            "open_receivables" | "days_sales_outstanding" => Some("/board/receivables"),
            "overdue_receivables" => Some("/board/receivables?overdue=1"),
            "revenue" | "gross_profit" | "gross_margin" => Some("/board/orders"),
            _ => None,
        };
        let value = match behind {
            Some(href) => format!("<a href=\"{href}\">{}</a>", esc(&value)),
            None => esc(&value),
        };
        let (name, formula) = i18n::kpi(viewer.lang, definition.key);
        let _ = write!(
            out,
            "<tr><td>{}</td><td data-kpi=\"{}\">{value}</td><td class=\"muted\">{}</td></tr>",
            esc(name),
            definition.key,
            esc(formula)
        );
    }
    out.push_str("</tbody></table></section>");
    Ok(out)
}

/// The latest deployed definition of each process, by key: what the board names processes and
/// roles by.
struct Processes(BTreeMap<String, Arc<CompiledProcess>>);

impl Processes {
    /// Every deployed process's latest version.
    async fn deployed(state: &AppState) -> Result<Processes, ApiError> {
        let engine = state.engine();
        let mut out = BTreeMap::new();
        for d in engine.store().deployments().await? {
            let definition = engine.definition(&d.key, d.version).await?;
            out.insert(d.key, definition);
        }
        Ok(Processes(out))
    }

    /// Process `key` by its title in `lang`; by its key when it is no longer deployed.
    fn title<'a>(&'a self, lang: i18n::Lang, key: &'a str) -> &'a str {
        self.0.get(key).map_or(key, |d| i18n::process_title(lang, d))
    }

    /// Role `role` by its title in `lang`, as process `key` carries it from the roles block.
    fn role<'a>(&'a self, lang: i18n::Lang, key: &str, role: &'a str) -> &'a str {
        self.0.get(key).map_or(role, |d| i18n::role_title(lang, d, role))
    }
}

/// The role group of a task assigned to a person rather than offered to a role.
const ASSIGNED: &str = "(assigned)";

/// Open human tasks and those past their due time, by role (an SLA breach still open is work
/// someone can act on now), and open incidents by process.
async fn work_by_role(state: &AppState, viewer: &Viewer, processes: &Processes) -> Result<String, ApiError> {
    let store = state.engine().store();
    let now = state.engine().now();
    // By role, with its title: a role's tasks in every process add up.
    let mut by_role: BTreeMap<String, (String, i64, i64)> = BTreeMap::new();
    for (group, overdue) in store.open_tasks_by_role(None, now).await? {
        let (process, role) = match group.labels.as_slice() {
            [process, role, ..] => (process.as_str(), role.as_str()),
            _ => ("", ""),
        };
        let title = match role {
            ASSIGNED => viewer.t("assigned_role").to_string(),
            role => processes.role(viewer.lang, process, role).to_string(),
        };
        let entry = by_role.entry(role.to_string()).or_insert_with(|| (title, 0, 0));
        entry.1 += group.count;
        entry.2 += overdue;
    }
    let mut out = format!(
        "<section><h2>{}</h2><table class=\"compact\"><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        viewer.t("work_by_role"),
        viewer.t("role"),
        viewer.t("open_tasks"),
        viewer.t("overdue"),
    );
    for (role, (title, open, overdue)) in &by_role {
        let mark = if *overdue > 0 { " class=\"overdue\"" } else { "" };
        let _ = write!(
            out,
            "<tr data-role=\"{}\"><td>{}</td><td>{open}</td><td{mark}>{overdue}</td></tr>",
            esc(role),
            esc(title)
        );
    }
    out.push_str("</tbody></table>");
    let incidents = store.open_incident_counts().await?;
    let _ = write!(out, "<h2>{}</h2>", viewer.t("incidents"));
    if incidents.iter().all(|g| g.count == 0) {
        let _ = write!(out, "<p class=\"muted\" id=\"no-incidents\">{}</p>", viewer.t("no_incidents"));
    } else {
        out.push_str("<ul>");
        for g in incidents.iter().filter(|g| g.count > 0) {
            let process = g.labels.first().cloned().unwrap_or_default();
            let _ = write!(
                out,
                "<li data-process=\"{}\"><a href=\"/cases?process={}&amp;status=running\">{}</a>: {}</li>",
                esc(&process),
                url_path(&process),
                esc(processes.title(viewer.lang, &process)),
                g.count
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");
    Ok(out)
}

/// A figure in its indicator's unit, as a reader of the page writes it.
fn figure_text(viewer: &Viewer, indicator: &str, value: Decimal) -> String {
    use cloverleaf_finance::ledger::kpi::{Unit, definition};
    match definition(indicator).map(|d| d.unit) {
        Some(Unit::Money) => i18n::money(value, viewer.lang),
        Some(Unit::Days) => format!("{} {}", value.round_dp(1), viewer.t("days")),
        Some(Unit::Ratio) => format!("{}%", (value * Decimal::from(100)).round_dp(1)),
        // The process figures: a count, or the oldest incident's age in days.
        None if indicator.ends_with("_age") => format!("{} {}", value.round_dp(1), viewer.t("days")),
        None => value.normalize().to_string(),
    }
}

/// The open alerts, the critical ones first, then those nobody has acknowledged yet, each group
/// most recent first; each with what it judged, the customer it concerns named, and, for those
/// who handle alerts, a button to acknowledge it.
async fn alerts_section(state: &AppState, viewer: &Viewer) -> Result<String, ApiError> {
    let Some(ledger) = state.ledger() else { return Ok(String::new()) };
    let mut alerts = ledger.alerts(true).await.map_err(ApiError::internal)?;
    alerts
        .sort_by_key(|a| (a.severity != "critical", a.acknowledged_by.is_some(), std::cmp::Reverse(a.opened_at), a.id));
    let customers = super::tasks::CustomerNames::of(state).await;
    let handler = crate::server::alerts::ALERT_HANDLERS.iter().any(|r| viewer.caller.has(r));
    let mut out = format!("<section class=\"alerts\"><h2>{}</h2>", viewer.t("alerts"));
    if alerts.is_empty() {
        let _ = write!(out, "<p class=\"muted\">{}</p>", viewer.t("no_alerts"));
    }
    let rules = state.rules();
    for alert in &alerts {
        let (name, _) = i18n::kpi(viewer.lang, &alert.indicator);
        // The title as the rule words it for the reader; the stored one if the rule is gone.
        let title = match viewer.lang {
            i18n::Lang::ZhCn => rules.iter().find(|r| r.name == alert.rule).and_then(|r| r.title_zh.as_deref()),
            i18n::Lang::En => None,
        }
        .unwrap_or(&alert.title);
        let whom = if alert.subject.is_empty() {
            String::new()
        } else {
            format!(
                " · <a href=\"/board/receivables?customer={}\">{}</a>",
                url_path(&alert.subject),
                esc_keeping_ids(&customers.beside(viewer, alert.subject.clone()))
            )
        };
        // Chinese punctuation is full width and takes no space around it.
        let (colon, open, close, gap) = match viewer.lang {
            i18n::Lang::ZhCn => ("：", "（", "）", ""),
            i18n::Lang::En => (": ", " (", ")", " "),
        };
        let seen = match &alert.acknowledged_by {
            Some(who) => format!("<span class=\"muted\">{}{gap}{}</span>", viewer.t("acknowledged_by"), esc(who)),
            None if handler => format!(
                "<form method=\"post\" action=\"/board/alerts/{}/acknowledge\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">{}</button></form>",
                alert.id,
                viewer.csrf,
                viewer.t("acknowledge")
            ),
            None => String::new(),
        };
        let _ = write!(
            out,
            "<div class=\"alert {}\" data-alert=\"{}\"><p><strong>{}</strong> {}{whom}</p><p>{}{colon}{}{open}{} {}{close} · {} {}</p>{seen}</div>",
            esc(&alert.severity),
            alert.id,
            viewer.t(if alert.severity == "critical" { "critical" } else { "warning" }),
            esc(title),
            esc(name),
            esc(&figure_text(viewer, &alert.indicator, alert.last_value)),
            viewer.t("threshold"),
            esc(&figure_text(viewer, &alert.indicator, alert.threshold)),
            viewer.t("since"),
            esc(&i18n::time(alert.opened_at, viewer.zone, viewer.lang)),
        );
    }
    out.push_str("</section>");
    Ok(out)
}

/// `POST /board/alerts/{id}/acknowledge`: the controller, the CFO or an administrator has seen
/// an alert.
pub async fn acknowledge_alert(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !viewer.csrf_ok(form.csrf.as_deref()) {
        return message_page(&viewer, StatusCode::FORBIDDEN, "refused", viewer.t("csrf"));
    }
    let result: Result<(), ApiError> = async {
        viewer.caller.require_any(crate::server::alerts::ALERT_HANDLERS, "acknowledge alerts")?;
        let ledger = state.ledger().ok_or_else(ApiError::no_ledger)?;
        let now = state.engine().now();
        match ledger.acknowledge_alert(id, viewer.caller.name(), now).await.map_err(ApiError::internal)? {
            Some(_) => Ok(()),
            None => Err(ApiError::missing("alert", id.to_string(), format!("no alert {id}"))),
        }
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/board").into_response(),
        Err(e) => error_page(&viewer, &e),
    }
}

/// Weeks the board's chart of invoiced and received amounts covers.
const FLOW_WEEKS: i64 = 12;

/// Invoiced and received per week over the last [`FLOW_WEEKS`] weeks, as paired bars with the
/// figures in a table beneath (the chart for the eye, the table for the exact cents).
async fn weekly_flow(state: &AppState, viewer: &Viewer, to: chrono::NaiveDate) -> Result<String, ApiError> {
    let Some(ledger) = state.ledger() else { return Ok(String::new()) };
    let from = to - chrono::TimeDelta::days(7 * FLOW_WEEKS - 1);
    let weeks = ledger.weekly_flow(from, to).await.map_err(ApiError::internal)?;
    let most = weeks.iter().flat_map(|w| [w.invoiced, w.received]).max().unwrap_or_default().max(Decimal::ONE);
    let height = |amount: Decimal| (amount * Decimal::from(120) / most).round().to_string().parse::<u32>().unwrap_or(0);
    let (width, step) = (30 * weeks.len() + 20, 30);
    let mut out = format!(
        "<section><h2>{}</h2><p class=\"legend\"><span class=\"key invoiced\"></span>{} <span class=\"key received\"></span>{}</p>\
         <svg class=\"flow\" viewBox=\"0 0 {width} 160\" role=\"img\" aria-label=\"{}\">",
        viewer.t("weekly_flow"),
        viewer.t("invoiced"),
        viewer.t("received"),
        viewer.t("weekly_flow"),
    );
    for (i, week) in weeks.iter().enumerate() {
        let x = 10 + i * step;
        let (hi, hr) = (height(week.invoiced), height(week.received));
        let _ = write!(
            out,
            "<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"{hi}\" fill=\"#3b6ea8\"><title>{} {}</title></rect>\
             <rect x=\"{}\" y=\"{}\" width=\"12\" height=\"{hr}\" fill=\"#4f9a6b\"><title>{} {}</title></rect>\
             <text x=\"{x}\" y=\"155\" font-size=\"9\">{}</text>",
            140 - hi,
            viewer.t("invoiced"),
            esc(&i18n::money(week.invoiced, viewer.lang)),
            x + 13,
            140 - hr,
            viewer.t("received"),
            esc(&i18n::money(week.received, viewer.lang)),
            week.week_start.format("%m-%d"),
        );
    }
    let _ = write!(
        out,
        "</svg><table class=\"compact\"><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        viewer.t("week_of"),
        viewer.t("invoiced"),
        viewer.t("received"),
    );
    for week in weeks.iter().rev() {
        let _ = write!(
            out,
            "<tr data-week=\"{}\"><td>{}</td><td>{}</td><td>{}</td></tr>",
            week.week_start,
            week.week_start,
            esc(&i18n::money(week.invoiced, viewer.lang)),
            esc(&i18n::money(week.received, viewer.lang)),
        );
    }
    out.push_str("</tbody></table></section>");
    Ok(out)
}
