//! The month's budgets on the finance board: per cost centre the budget, what orders reserved,
//! what was approved over it and what is left, a cost centre over its budget marked; and the
//! form with which the controller, the CFO or an administrator sets a month's budget.
//!
//! Who may use it: the board's readers see the budgets (the rule of `GET /v1/budgets`: admin,
//! auditor, controller, CFO); the form is shown to, and its POST taken from, the budget setters
//! of `PUT /v1/budgets/{cost_centre}/{period}` only.

use std::fmt::Write as _;

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{Datelike as _, NaiveDate};
use cloverleaf_dsl::model::{MONEY_DECIMALS, MONEY_LIMIT};
use cloverleaf_finance::Error as LedgerError;
use rust_decimal::Decimal;
use serde::Deserialize;

use super::{error_page, message_page, page, with_lang};
use crate::server::AppState;
use crate::server::budgets::BUDGET_SETTERS;
use crate::server::error::ApiError;
use crate::web::i18n;
use crate::web::{Viewer, esc, html};

/// The month (`2026-03`) of `date`.
fn month_text(date: NaiveDate) -> String {
    format!("{:04}-{:02}", date.year(), date.month())
}

/// The first day of month `period` (`2026-03`), when it is one.
fn month_start(period: &str) -> Option<NaiveDate> {
    if period.len() != 7 || period.as_bytes()[4] != b'-' {
        return None;
    }
    NaiveDate::parse_from_str(&format!("{period}-01"), "%Y-%m-%d").ok()
}

/// The months before and after `first` (a month's first day).
fn neighbours(first: NaiveDate) -> (String, String) {
    let before = first.pred_opt().map_or_else(|| month_text(first), month_text);
    let after = first.checked_add_months(chrono::Months::new(1)).map_or_else(|| month_text(first), month_text);
    (before, after)
}

/// The board's budget section for month `asked` (this month on the books' clock, as orders draw on it, when
/// absent or not a month).
pub(super) async fn section(
    state: &AppState,
    viewer: &Viewer,
    asked: Option<&str>,
    saved: Option<&str>,
) -> Result<String, ApiError> {
    let Some(ledger) = state.ledger() else { return Ok(String::new()) };
    let today = state.books_today().await?;
    let zone = ledger.book_zone().await.map_err(ApiError::internal)?;
    let asked = asked.map(str::trim).filter(|p| !p.is_empty());
    let chosen = asked.and_then(month_start);
    let first = chosen.unwrap_or_else(|| today.with_day(1).unwrap_or(today));
    let period = month_text(first);
    let lines = ledger.budgets(Some(&period)).await.map_err(ApiError::internal)?;
    let (before, after) = neighbours(first);
    let money = |d: Decimal| esc(&i18n::money(d, viewer.lang));
    let mut out = format!(
        "<section id=\"budgets\"><h2>{} <span class=\"muted\" id=\"budget-month\">{period}</span></h2>\
         <p class=\"months\"><a href=\"/board?period={before}#budgets\" rel=\"prev\">‹ {}</a> \
         <a href=\"/board?period={after}#budgets\" rel=\"next\">{} ›</a> <span class=\"muted\">{}</span></p>",
        viewer.t("budgets"),
        viewer.t("previous_month"),
        viewer.t("next_month"),
        esc(&viewer.t("budget_months").replace("{zone}", i18n::zone_name(zone, viewer.lang))),
    );
    if asked.is_some() && chosen.is_none() {
        let _ = write!(out, "<p class=\"notice refusal\" role=\"alert\">{}</p>", viewer.t("bad_period"));
    }
    // The budget just set, confirmed as the ledger now holds it.
    if let Some(line) = saved.and_then(|cc| lines.iter().find(|l| l.cost_centre == cc)) {
        let text = viewer
            .t("budget_saved")
            .replace("{cost_centre}", &line.cost_centre)
            .replace("{month}", &period)
            .replace("{amount}", &i18n::money(line.amount, viewer.lang));
        let _ = write!(out, "<p class=\"notice\" role=\"status\" id=\"budget-saved\">{}</p>", esc(&text));
    }
    if lines.is_empty() {
        let _ = write!(out, "<p class=\"muted\">{}</p>", viewer.t("no_budgets"));
    } else {
        let _ = write!(
            out,
            "<table class=\"budgets\"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
            viewer.t("cost_centre"),
            viewer.t("budget"),
            viewer.t("reserved"),
            viewer.t("over_budget"),
            viewer.t("left"),
            viewer.t("used"),
            viewer.t("orders"),
        );
        for line in &lines {
            // Over budget: more reserved than budgeted, or an order approved beyond it.
            let over = line.left < Decimal::ZERO || line.over_budget > Decimal::ZERO;
            let row = if over { " class=\"over\"" } else { "" };
            let mark = if over {
                format!(" <strong class=\"badge\">{}</strong>", viewer.t("overspent"))
            } else {
                String::new()
            };
            let left_class = if line.left < Decimal::ZERO { " class=\"overdue\"" } else { "" };
            let _ = write!(
                out,
                "<tr data-cost-centre=\"{cc}\"{row}><td>{cc}{mark}</td><td>{}</td><td>{}</td><td>{}</td><td{left_class} data-left=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
                money(line.amount),
                money(line.reserved),
                money(line.over_budget),
                line.left,
                money(line.left),
                meter(line.amount, line.reserved),
                line.orders,
                cc = esc(&line.cost_centre),
            );
        }
        out.push_str("</tbody></table>");
    }
    if BUDGET_SETTERS.iter().any(|r| viewer.caller.has(r)) {
        let known = known_centres(ledger).await.map_err(ApiError::internal)?;
        out.push_str(&form(viewer, &period, &known, None));
    }
    out.push_str("</section>");
    Ok(out)
}

/// Every cost centre that ever had a budget: the form's suggestions.
async fn known_centres(ledger: &cloverleaf_finance::Ledger) -> Result<Vec<String>, LedgerError> {
    let mut known: Vec<String> = ledger.budgets(None).await?.into_iter().map(|l| l.cost_centre).collect();
    known.dedup();
    Ok(known)
}

/// The share of `budget` that `reserved` takes, as a bar and a percentage.
fn meter(budget: Decimal, reserved: Decimal) -> String {
    if budget <= Decimal::ZERO {
        return "—".to_string();
    }
    let share = (reserved * Decimal::from(100) / budget).round_dp(0);
    let width = share.min(Decimal::from(100)).max(Decimal::ZERO);
    let fill = if share > Decimal::from(100) { "#b42318" } else { "#3b6ea8" };
    format!(
        "<svg class=\"meter\" viewBox=\"0 0 100 8\" aria-hidden=\"true\"><rect width=\"100\" height=\"8\" fill=\"#e4e7ec\"/>\
         <rect width=\"{width}\" height=\"8\" fill=\"{fill}\"/></svg> {share}%"
    )
}

/// The form that sets a month's budget, for the budget setters; `entered` (cost centre, amount)
/// fills it again with what a refused submission held.
fn form(viewer: &Viewer, period: &str, known: &[String], entered: Option<(&str, &str)>) -> String {
    let (centre, amount) = entered.unwrap_or_default();
    let options: String = known.iter().map(|c| format!("<option value=\"{}\">", esc(c))).collect();
    format!(
        "<h3>{}</h3><form method=\"post\" action=\"/board/budgets\" class=\"filters budget-form\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label>{} <input id=\"cost-centre\" name=\"cost_centre\" value=\"{}\" list=\"cost-centres\" required maxlength=\"64\" size=\"10\"></label>\
         <datalist id=\"cost-centres\">{options}</datalist>\
         <label>{} <input id=\"period\" name=\"period\" value=\"{}\" required pattern=\"[0-9]{{4}}-[0-9]{{2}}\" size=\"8\"></label>\
         <label>{}{} <input id=\"amount\" name=\"amount\" value=\"{}\" inputmode=\"decimal\" required size=\"14\" placeholder=\"250000.00\"></label>\
         <button type=\"submit\" id=\"set-budget\">{}</button></form>",
        viewer.t("set_budget"),
        viewer.csrf,
        viewer.t("cost_centre"),
        esc(centre),
        viewer.t("month"),
        esc(period),
        viewer.t("amount"),
        viewer.lang.bracketed(i18n::CURRENCY),
        esc(amount),
        viewer.t("save_budget"),
    )
}

/// The budget form as sent.
#[derive(Debug, Deserialize)]
pub struct BudgetForm {
    csrf: Option<String>,
    cost_centre: Option<String>,
    period: Option<String>,
    amount: Option<String>,
}

/// An amount as a person types it (`250000`, `250,000.00`), when it is one a budget may be:
/// not negative, at most two decimals, below 10^15.
fn parse_amount(text: &str) -> Option<Decimal> {
    let clean: String = text.chars().filter(|c| !matches!(c, ',' | '，' | ' ' | '_')).collect();
    let clean = clean.strip_prefix(i18n::CURRENCY).unwrap_or(&clean).trim_start_matches('¥').trim();
    if clean.is_empty() || !clean.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let amount: Decimal = clean.parse().ok()?;
    (amount.scale() <= MONEY_DECIMALS && amount < Decimal::from(MONEY_LIMIT)).then_some(amount)
}

/// `POST /board/budgets`: sets a cost centre's budget for a month (controller, CFO, admin), then
/// back to the board at that month.
pub async fn set_budget(State(state): State<AppState>, viewer: Viewer, Form(form): Form<BudgetForm>) -> Response {
    if !viewer.csrf_ok(form.csrf.as_deref()) {
        return message_page(&viewer, StatusCode::FORBIDDEN, "refused", viewer.t("csrf"));
    }
    if let Err(e) = viewer.caller.require_any(BUDGET_SETTERS, "set a budget") {
        return error_page(&viewer, &e);
    }
    let Some(ledger) = state.ledger() else {
        return error_page(&viewer, &ApiError::no_ledger());
    };
    let cost_centre = form.cost_centre.as_deref().unwrap_or_default().trim().to_string();
    let period = form.period.as_deref().unwrap_or_default().trim().to_string();
    let valid_centre = !cost_centre.is_empty()
        && cost_centre.len() <= 64
        && cost_centre.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let problem = if !valid_centre {
        Some(viewer.t("bad_cost_centre").to_string())
    } else if month_start(&period).is_none() {
        Some(viewer.t("bad_period").to_string())
    } else {
        None
    };
    let amount = form.amount.as_deref().and_then(parse_amount);
    let problem = problem.or_else(|| amount.is_none().then(|| viewer.t("bad_amount").to_string()));
    let outcome = match (problem, amount) {
        (None, Some(amount)) => match ledger.set_budget(&cost_centre, &period, amount, state.engine().now()).await {
            Ok(_) => {
                tracing::info!(user = viewer.caller.name(), %cost_centre, %period, %amount, "budget set on the board");
                let saved = crate::web::url_path(&cost_centre);
                return Redirect::to(&format!("/board?period={period}&saved={saved}#budgets")).into_response();
            }
            Err(e @ (LedgerError::Input { .. } | LedgerError::InvalidAmount(_))) => e.to_string(),
            Err(e) => return error_page(&viewer, &ApiError::internal(e)),
        },
        (problem, _) => problem.unwrap_or_default(),
    };
    let back = month_start(&period).map_or_else(String::new, |_| format!("?period={period}"));
    // The form again, holding what was sent, so that one mistake is mended without typing it all.
    let known = known_centres(ledger).await.unwrap_or_default();
    let entered = (cost_centre.as_str(), form.amount.as_deref().unwrap_or_default());
    let body = format!(
        "<h1>{}</h1><p class=\"notice refusal\" role=\"alert\" id=\"outcome\">{}</p>{}<p><a href=\"/board{back}#budgets\">{}</a></p>",
        viewer.t("refused"),
        esc(&outcome),
        self::form(&viewer, &period, &known, Some(entered)),
        viewer.t("back"),
    );
    with_lang(&viewer, html(StatusCode::UNPROCESSABLE_ENTITY, page(&viewer, viewer.t("set_budget"), &body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_read_as_people_type_them_and_bad_ones_refused() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!(parse_amount("250000"), Some(d("250000")));
        assert_eq!(parse_amount(" 250,000.50 "), Some(d("250000.50")));
        assert_eq!(parse_amount("CNY 1,000"), Some(d("1000")));
        assert_eq!(parse_amount("¥1000.5"), Some(d("1000.5")));
        for bad in ["", "-5", "1.005", "1e9", "abc", "1000000000000000", "NaN"] {
            assert_eq!(parse_amount(bad), None, "{bad}");
        }
    }

    #[test]
    fn months_are_checked_and_stepped_across_years() {
        assert_eq!(month_start("2026-03"), NaiveDate::from_ymd_opt(2026, 3, 1));
        for bad in ["2026-3", "2026-13", "202603", "2026/03", ""] {
            assert_eq!(month_start(bad), None, "{bad}");
        }
        let jan = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        assert_eq!(neighbours(jan), ("2025-12".to_string(), "2026-02".to_string()));
    }
}
