//! The documents behind the board's figures: the open invoices, gross profit by order, and the
//! stored month-end reports.

use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::NaiveDate;
use cloverleaf_finance::ledger::{AGING_BUCKETS, AgingLine, NOT_DUE, OrderProfit, aging_bucket};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;

use super::tasks::CustomerNames;
use super::{answer, error_page};
use crate::server::AppState;
use crate::server::access;
use crate::server::error::ApiError;
use crate::web::csv::{self, Cell, Csv};
use crate::web::i18n;
use crate::web::{Viewer, esc, url_path};

/// `GET /reports/{id}`: a stored month-end report (AR aging by invoice, or gross profit by
/// customer), for the roles that read finance reports.
pub async fn report(State(state): State<AppState>, viewer: Viewer, Path(id): Path<String>) -> Response {
    let id = id.trim_matches('/').to_string();
    if let Some(id) = id.strip_suffix(".csv") {
        return report_csv(&state, &viewer, id).await;
    }
    let result: Result<(String, &'static str), ApiError> = async {
        access::may_read_reports(&viewer.caller)?;
        let body = crate::server::reports::stored_report(&state, &id).await?;
        Ok(report_html(&viewer, &id, &body))
    }
    .await;
    // The tab is titled by the kind of report, as its heading is.
    let title = match &result {
        Ok((_, title)) => *title,
        Err(_) => "report",
    };
    answer(&viewer, title, result.map(|(html, _)| html))
}

/// A row of table cells.
fn row(cells: &[String], tag: &str) -> String {
    let cells: String = cells.iter().map(|c| format!("<{tag}>{c}</{tag}>")).collect();
    format!("<tr>{cells}</tr>")
}

/// A stored report as HTML, and the catalogue key of its kind's title.
fn report_html(viewer: &Viewer, id: &str, body: &Value) -> (String, &'static str) {
    let money = |v: &Value| {
        v.as_str().and_then(|s| s.parse::<Decimal>().ok()).map_or_else(String::new, |d| i18n::money(d, viewer.lang))
    };
    let text = |v: &Value| esc(&v.as_str().map_or_else(|| v.to_string(), str::to_string));
    let heads = |keys: &[&'static str]| row(&keys.iter().map(|k| viewer.t(k).to_string()).collect::<Vec<_>>(), "th");
    let mut out = String::new();
    let stored = body["invoices"].is_array() || body["customers"].is_array();
    let back = if stored { links(viewer) } else { format!("<p><a href=\"/board\">{}</a></p>", viewer.t("back")) };
    let title;
    if let Some(invoices) = body["invoices"].as_array() {
        title = "aging_report";
        let _ = write!(
            out,
            "<h1>{} <span class=\"muted\">{}</span></h1>{back}",
            viewer.t("aging_report"),
            text(&body["as_of"])
        );
        let as_of = body["as_of"].as_str().and_then(|d| d.parse::<NaiveDate>().ok());
        let due = |line: &Value| line["due_date"].as_str().and_then(|d| d.parse::<NaiveDate>().ok());
        let stored: Vec<&Value> = body["buckets"].as_array().into_iter().flatten().collect();
        let amount = |line: &Value| line["amount_open"].as_str().and_then(|a| a.parse::<Decimal>().ok());
        let recounted = recounted_on(body);
        let recount = recounted.is_some();
        let bucket_of = |line: &Value| stored_bucket(recounted, line);
        if recount {
            let _ = write!(out, "<p class=\"muted\" data-recounted>{}</p>", viewer.t("aging_recounted"));
        }
        out.push_str("<table class=\"kpis\"><tbody>");
        if recount {
            for label in AGING_BUCKETS {
                let amount: Decimal = invoices.iter().filter(|l| bucket_of(l) == label).filter_map(amount).sum();
                out.push_str(&row(&[esc(&bucket_name(viewer, label)), esc(&i18n::money(amount, viewer.lang))], "td"));
            }
        } else {
            for bucket in stored {
                let label = bucket["label"].as_str().unwrap_or_default();
                out.push_str(&row(&[esc(&bucket_name(viewer, label)), money(&bucket["amount"])], "td"));
            }
        }
        out.push_str(&row(&[viewer.t("total").to_string(), money(&body["total"])], "th"));
        out.push_str("</tbody></table><table class=\"figures\"><thead>");
        out.push_str(&heads(&["invoice", "customer", "due_date", "days_past_due", "amount_open", "bucket"]));
        out.push_str("</thead><tbody>");
        for line in invoices {
            let days = match (as_of, due(line)) {
                (Some(as_of), Some(due)) => days_cell(viewer, as_of, due),
                _ => text(&line["days_past_due"]),
            };
            let cells = [
                text(&line["invoice_id"]),
                text(&line["customer_id"]),
                text(&line["due_date"]),
                days,
                money(&line["amount_open"]),
                esc(&bucket_name(viewer, &bucket_of(line))),
            ];
            out.push_str(&row(&cells, "td"));
        }
        let _ = write!(
            out,
            "</tbody><tfoot><tr><th>{}</th><th></th><th></th><th></th><th data-total=\"open\">{}</th><th></th></tr></tfoot></table>",
            esc(&invoice_count(viewer, invoices.len())),
            money(&body["total"]),
        );
    } else if let Some(customers) = body["customers"].as_array() {
        title = "profit_report";
        let _ = write!(
            out,
            "<h1>{} <span class=\"muted\">{} – {}</span></h1>{back}<table class=\"figures\"><thead>",
            viewer.t("profit_report"),
            text(&body["from"]),
            text(&body["to"])
        );
        out.push_str(&heads(&["customer", "revenue", "cost_of_goods", "gross_profit"]));
        out.push_str("</thead><tbody>");
        for line in customers {
            let cells = [
                text(&line["customer_id"]),
                money(&line["revenue"]),
                money(&line["cost_of_goods"]),
                money(&line["gross_profit"]),
            ];
            out.push_str(&row(&cells, "td"));
        }
        let totals = [
            viewer.t("total").to_string(),
            money(&body["revenue"]),
            money(&body["cost_of_goods"]),
            money(&body["gross_profit"]),
        ];
        out.push_str(&row(&totals, "th"));
        out.push_str("</tbody></table>");
        if customers.is_empty() {
            let _ = write!(out, "<p class=\"empty\">{}</p>", viewer.t("no_sales"));
        }
    } else {
        title = "report";
        let _ = write!(out, "<h1>{}</h1>{back}<pre>{}</pre>", esc(id), esc(&body.to_string()));
    }
    (out, title)
}

/// The day a stored aging report's buckets are counted again on: a report stored before invoices
/// not yet due had a bucket of their own ("0-30" held them), so its buckets are counted again
/// from its invoices, which it holds whole (each with its due date and amount).
fn recounted_on(body: &Value) -> Option<NaiveDate> {
    let old_shape = body["buckets"].as_array().into_iter().flatten().any(|b| b["label"].as_str() == Some("0-30"));
    let as_of = body["as_of"].as_str().and_then(|d| d.parse::<NaiveDate>().ok())?;
    let whole = body["invoices"].as_array().into_iter().flatten().all(|l| {
        l["due_date"].as_str().is_some_and(|d| d.parse::<NaiveDate>().is_ok())
            && l["amount_open"].as_str().is_some_and(|a| a.parse::<Decimal>().is_ok())
    });
    (old_shape && whole).then_some(as_of)
}

/// The aging bucket of a stored report's invoice line: counted again on `recounted` (see
/// [`recounted_on`]), as stored otherwise.
fn stored_bucket(recounted: Option<NaiveDate>, line: &Value) -> String {
    let due = line["due_date"].as_str().and_then(|d| d.parse::<NaiveDate>().ok());
    match (recounted, due) {
        (Some(as_of), Some(due)) => aging_bucket((as_of - due).num_days()).to_string(),
        _ => line["bucket"].as_str().unwrap_or_default().to_string(),
    }
}

/// `GET /reports/{id}.csv`: a stored month-end report as a spreadsheet (the readers of the
/// report): an aging report's invoices, or gross profit by customer; another kind is not a list.
async fn report_csv(state: &AppState, viewer: &Viewer, id: &str) -> Response {
    let body = match async {
        access::may_read_reports(&viewer.caller)?;
        crate::server::reports::stored_report(state, id).await
    }
    .await
    {
        Ok(body) => body,
        Err(e) => return error_page(viewer, &e),
    };
    let text = |v: &Value| Cell::text(v.as_str().map_or_else(|| v.to_string(), str::to_string));
    let amount = |v: &Value| match v.as_str().and_then(|a| a.parse::<Decimal>().ok()) {
        Some(d) => Cell::number(d),
        None => Cell::text(""),
    };
    let mut csv = Csv::default();
    if let Some(invoices) = body["invoices"].as_array() {
        csv.row(
            ["invoice", "customer_no", "due_date", "days_past_due"]
                .iter()
                .map(|k| Cell::text(viewer.t(k)))
                .chain([Cell::text(in_currency(viewer, "amount_open")), Cell::text(viewer.t("bucket"))]),
        );
        let as_of = body["as_of"].as_str().and_then(|d| d.parse::<NaiveDate>().ok());
        let recounted = recounted_on(&body);
        for line in invoices {
            let due = line["due_date"].as_str().and_then(|d| d.parse::<NaiveDate>().ok());
            let days = match (as_of, due) {
                (Some(as_of), Some(due)) => Cell::number((as_of - due).num_days().max(0)),
                _ => text(&line["days_past_due"]),
            };
            let bucket = stored_bucket(recounted, line);
            csv.row([
                text(&line["invoice_id"]),
                text(&line["customer_id"]),
                text(&line["due_date"]),
                days,
                amount(&line["amount_open"]),
                Cell::text(bucket_name(viewer, &bucket)),
            ]);
        }
    } else if let Some(customers) = body["customers"].as_array() {
        csv.row(
            std::iter::once(Cell::text(viewer.t("customer_no")))
                .chain(["revenue", "cost_of_goods", "gross_profit"].iter().map(|k| Cell::text(in_currency(viewer, k)))),
        );
        for line in customers {
            csv.row([
                text(&line["customer_id"]),
                amount(&line["revenue"]),
                amount(&line["cost_of_goods"]),
                amount(&line["gross_profit"]),
            ]);
        }
    } else {
        let refused =
            ApiError::bad_request("not_a_list", format!("report `{id}` is not a list a spreadsheet can hold"));
        return error_page(viewer, &refused);
    }
    csv.download(&format!("{}.csv", id.replace(['/', '\\'], "-")))
}

/// What a reader calls an aging bucket: "Not yet due" (未到期), "1-30 days overdue" (逾期 1-30
/// 天)... A stored report's old `0-30` (which held the invoices not yet due too) says so.
pub(super) fn bucket_name(viewer: &Viewer, label: &str) -> String {
    match label {
        NOT_DUE => viewer.t("bucket_not_due").to_string(),
        "90+" => viewer.t("bucket_over_90").to_string(),
        "0-30" => viewer.t("bucket_old_0_30").to_string(),
        range => viewer.t("bucket_days").replace("{range}", range),
    }
}

/// An invoice's days past due on `as_of`, or, not yet due, when it falls due ("due in 5 days",
/// "5 天后到期"): never a negative number.
fn days_cell(viewer: &Viewer, as_of: NaiveDate, due: NaiveDate) -> String {
    let past = (as_of - due).num_days();
    let until = match past {
        1.. => return past.to_string(),
        0 => viewer.t("due_today").to_string(),
        -1 => viewer.t("due_tomorrow").to_string(),
        _ => viewer.t("due_in_days").replace("{n}", &(-past).to_string()),
    };
    format!("<span class=\"muted\" data-not-due>{}</span>", esc(&until))
}

/// The total row's first cell: "Total · 7 invoices" (合计 · 7 张发票).
fn invoice_count(viewer: &Viewer, n: usize) -> String {
    if n == 1 {
        viewer.t("total_one_invoice").to_string()
    } else {
        viewer.t("total_invoices").replace("{n}", &n.to_string())
    }
}

/// What the figure pages may be narrowed to.
#[derive(Debug, Deserialize)]
pub struct FiguresQuery {
    /// An aging bucket's label (`not_due`, `1-30`, `31-60`, `61-90`, `90+`).
    bucket: Option<String>,
    /// A customer id.
    customer: Option<String>,
    /// Only invoices past their due date.
    overdue: Option<String>,
}

/// The order's case, found by its business key (a page the reader's own rights then filter).
fn order_link(order: &str) -> String {
    format!("<a href=\"/cases?business_key={}\">{}</a>", url_path(order), esc(order))
}

/// The open invoices a receivables list shows, as narrowed, and the words of its narrowing.
struct OpenInvoices {
    as_of: NaiveDate,
    lines: Vec<AgingLine>,
    narrowed: Vec<String>,
}

/// The open invoices behind the aging, DSO and open receivables figures, by bucket, customer or
/// overdue (finance readers; an unknown bucket is refused in words).
async fn open_invoices(state: &AppState, viewer: &Viewer, query: &FiguresQuery) -> Result<OpenInvoices, ApiError> {
    access::may_read_reports(&viewer.caller)?;
    let ledger = state.ledger().ok_or_else(ApiError::no_ledger)?;
    let today = state.books_today().await?;
    let aging = ledger.aging(today).await.map_err(ApiError::internal)?;
    let bucket = query.bucket.as_deref().filter(|b| !b.is_empty());
    if let Some(unknown) = bucket.filter(|b| !aging.buckets.iter().any(|known| known.label == *b)) {
        return Err(ApiError::bad_request(
            "unknown_bucket",
            format!("there is no aging bucket `{unknown}`: choose one on the board"),
        )
        .with_details(serde_json::json!({"bucket": unknown})));
    }
    let customer = query.customer.as_deref().map(str::trim).filter(|c| !c.is_empty());
    let overdue = query.overdue.as_deref().is_some_and(|o| !o.is_empty() && o != "0");
    let lines: Vec<AgingLine> = aging
        .invoices
        .into_iter()
        .filter(|l| bucket.is_none_or(|b| l.bucket == b) && customer.is_none_or(|c| l.customer_id == c))
        .filter(|l| !overdue || l.days_past_due > 0)
        .collect();
    let narrowed = [
        bucket.map(|b| format!("{} {}", viewer.t("bucket"), bucket_name(viewer, b))),
        customer.map(|c| format!("{} {c}", viewer.t("customer"))),
        overdue.then(|| viewer.t("overdue").to_string()),
    ]
    .into_iter()
    .flatten()
    .collect();
    Ok(OpenInvoices { as_of: aging.as_of, lines, narrowed })
}

/// `GET /board/receivables`: the open invoices behind the aging, DSO and open receivables
/// figures, by bucket or customer, each linked to its order (finance readers).
pub async fn receivables(State(state): State<AppState>, viewer: Viewer, Query(query): Query<FiguresQuery>) -> Response {
    let result: Result<String, ApiError> = async {
        let OpenInvoices { as_of, lines, narrowed } = open_invoices(&state, &viewer, &query).await?;
        let customers = CustomerNames::of(&state).await;
        let total: Decimal = lines.iter().map(|l| l.amount_open).sum();
        let mut out = format!(
            "<h1>{} <span class=\"muted\">{as_of}{}</span></h1>{}<table class=\"figures\"><thead>",
            viewer.t("open_receivables"),
            esc(&narrowed.iter().map(|n| format!(" · {n}")).collect::<String>()),
            links(&viewer),
        );
        let heads: Vec<String> =
            ["invoice", "business_key", "customer", "due_date", "days_past_due", "amount_open", "bucket"].iter().map(|k| viewer.t(k).to_string()).collect();
        out.push_str(&row(&heads, "th"));
        out.push_str("</thead><tbody>");
        for line in &lines {
            let cells = [
                esc(&line.invoice_id),
                line.order_id.as_deref().map_or_else(|| "—".to_string(), order_link),
                format!("<a href=\"/board/receivables?customer={}\">{}</a>", url_path(&line.customer_id), esc(&customers.beside(&viewer, line.customer_id.clone()))),
                line.due_date.to_string(),
                days_cell(&viewer, as_of, line.due_date),
                esc(&i18n::money(line.amount_open, viewer.lang)),
                esc(&bucket_name(&viewer, &line.bucket)),
            ];
            out.push_str(&row(&cells, "td"));
        }
        let _ = write!(
            out,
            "</tbody><tfoot><tr><th>{}</th><th></th><th></th><th></th><th></th><th data-total=\"open\">{}</th><th></th></tr></tfoot></table>",
            esc(&invoice_count(&viewer, lines.len())),
            esc(&i18n::money(total, viewer.lang)),
        );
        if lines.is_empty() {
            let _ = write!(out, "<p class=\"empty\">{}</p>", viewer.t("no_open_invoices"));
        }
        Ok(out)
    }
    .await;
    answer(&viewer, "open_receivables", result)
}

/// `GET /board/receivables.csv`: the same open invoices as a spreadsheet (the same readers, the
/// same filters): the customer's id and name apart, days past due or until due as numbers.
pub async fn receivables_csv(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<FiguresQuery>,
) -> Response {
    let OpenInvoices { as_of, lines, .. } = match open_invoices(&state, &viewer, &query).await {
        Ok(found) => found,
        Err(e) => return error_page(&viewer, &e),
    };
    let customers = CustomerNames::of(&state).await;
    let mut csv = Csv::default();
    csv.row(
        ["invoice", "business_key", "customer_no", "customer_name", "due_date", "days_past_due", "days_until_due"]
            .iter()
            .map(|k| Cell::text(viewer.t(k)))
            .chain([Cell::text(in_currency(&viewer, "amount_open")), Cell::text(viewer.t("bucket"))]),
    );
    for line in &lines {
        let until = (line.due_date - as_of).num_days().max(0);
        csv.row([
            Cell::text(&line.invoice_id),
            Cell::text(line.order_id.as_deref().unwrap_or_default()),
            Cell::text(&line.customer_id),
            Cell::text(customers.name(&line.customer_id).unwrap_or_default()),
            Cell::text(line.due_date.to_string()),
            Cell::number((as_of - line.due_date).num_days().max(0)),
            Cell::number(until),
            Cell::number(line.amount_open),
            Cell::text(bucket_name(&viewer, &line.bucket)),
        ]);
    }
    csv.download(&format!("receivables-{as_of}.csv"))
}

/// A column of amounts named with their currency: "Amount open (CNY)", "未收金额（CNY）".
fn in_currency(viewer: &Viewer, key: &'static str) -> String {
    format!("{}{}", viewer.t(key), viewer.lang.bracketed(cloverleaf_finance::ledger::CURRENCY))
}

/// The links under a figure page's heading: back to the board, and the list as a spreadsheet.
fn links(viewer: &Viewer) -> String {
    format!(
        "<p class=\"links\"><a href=\"/board\">{}</a> · <a href=\"{}\" download data-csv>{}</a></p>",
        viewer.t("back"),
        esc(&csv::twin(&viewer.here)),
        viewer.t("download_csv"),
    )
}

/// Gross profit by order over the board's 90 days (the first and last day), optionally of one
/// customer (finance readers).
async fn profit_by_order(
    state: &AppState,
    viewer: &Viewer,
    query: &FiguresQuery,
) -> Result<(NaiveDate, NaiveDate, Vec<OrderProfit>), ApiError> {
    access::may_read_reports(&viewer.caller)?;
    let ledger = state.ledger().ok_or_else(ApiError::no_ledger)?;
    let to = state.books_today().await?;
    let from = to - chrono::TimeDelta::days(89);
    let customer = query.customer.as_deref().map(str::trim).filter(|c| !c.is_empty());
    let orders = ledger
        .gross_profit_by_order(from, to)
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .filter(|o| customer.is_none_or(|c| o.customer_id == c))
        .collect();
    Ok((from, to, orders))
}

/// An order's gross margin in per cent, to one decimal; none without revenue.
fn margin(order: &OrderProfit) -> Option<Decimal> {
    (!order.revenue.is_zero()).then(|| (order.gross_profit * Decimal::from(100) / order.revenue).round_dp(1))
}

/// `GET /board/orders`: gross profit by order over the board's 90 days, optionally of one
/// customer: the orders behind the gross margin and the by-customer table (finance readers).
pub async fn orders(State(state): State<AppState>, viewer: Viewer, Query(query): Query<FiguresQuery>) -> Response {
    let result: Result<String, ApiError> = async {
        let (from, to, orders) = profit_by_order(&state, &viewer, &query).await?;
        let customers = CustomerNames::of(&state).await;
        let customer = query.customer.as_deref().map(str::trim).filter(|c| !c.is_empty());
        let money = |d: Decimal| esc(&i18n::money(d, viewer.lang));
        let mut out = format!(
            "<h1>{} <span class=\"muted\">{from} – {to}{}</span></h1>{}<table class=\"figures\"><thead>",
            viewer.t("profit_by_order"),
            customer.map_or_else(String::new, |c| format!(" · {} {}", viewer.t("customer"), esc(c))),
            links(&viewer),
        );
        let heads: Vec<String> = ["business_key", "customer", "revenue", "cost_of_goods", "gross_profit"]
            .iter()
            .map(|k| viewer.t(k).to_string())
            .chain(["%".to_string()])
            .collect();
        out.push_str(&row(&heads, "th"));
        out.push_str("</thead><tbody>");
        let (mut revenue, mut cost) = (Decimal::ZERO, Decimal::ZERO);
        for o in &orders {
            revenue += o.revenue;
            cost += o.cost_of_goods;
            let cells = [
                order_link(&o.order_id),
                format!("<a href=\"/board/orders?customer={}\">{}</a>", url_path(&o.customer_id), esc(&customers.beside(&viewer, o.customer_id.clone()))),
                money(o.revenue),
                money(o.cost_of_goods),
                money(o.gross_profit),
                margin(o).map_or_else(|| "—".to_string(), |m| format!("{m}%")),
            ];
            out.push_str(&row(&cells, "td"));
        }
        let _ = write!(
            out,
            "</tbody><tfoot><tr><th>{}</th><th></th><th>{}</th><th>{}</th><th data-total=\"gross_profit\">{}</th><th></th></tr></tfoot></table>",
            viewer.t("total"),
            money(revenue),
            money(cost),
            money(revenue - cost),
        );
        Ok(out)
    }
    .await;
    answer(&viewer, "profit_by_order", result)
}

/// `GET /board/orders.csv`: gross profit by order as a spreadsheet (the same readers, the same
/// filter), the margin in per cent as a number.
pub async fn orders_csv(State(state): State<AppState>, viewer: Viewer, Query(query): Query<FiguresQuery>) -> Response {
    let (from, to, orders) = match profit_by_order(&state, &viewer, &query).await {
        Ok(found) => found,
        Err(e) => return error_page(&viewer, &e),
    };
    let customers = CustomerNames::of(&state).await;
    let mut csv = Csv::default();
    csv.row(
        ["business_key", "customer_no", "customer_name"]
            .iter()
            .map(|k| Cell::text(viewer.t(k)))
            .chain(["revenue", "cost_of_goods", "gross_profit"].iter().map(|k| Cell::text(in_currency(&viewer, k))))
            .chain([Cell::text(viewer.t("margin_percent"))]),
    );
    for o in &orders {
        csv.row([
            Cell::text(&o.order_id),
            Cell::text(&o.customer_id),
            Cell::text(customers.name(&o.customer_id).unwrap_or_default()),
            Cell::number(o.revenue),
            Cell::number(o.cost_of_goods),
            Cell::number(o.gross_profit),
            margin(o).map_or_else(|| Cell::text(""), Cell::number),
        ]);
    }
    csv.download(&format!("gross-profit-by-order-{from}-{to}.csv"))
}
