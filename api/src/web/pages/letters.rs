//! Customer letters: the invoice notices, dunning and refund letters the ledger wrote, with what
//! became of each, and a button that sends one that could not be delivered again.
//!
//! Who may use it: the readers of `GET /v1/outbox` (AR clerk, controller, CFO, auditor, admin)
//! see every letter (there is no narrower share of them); the handlers of
//! `POST /v1/outbox/{id}/retry` (AR clerk, controller, admin) see and use the button. Everyone
//! else is refused.

use std::fmt::Write as _;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cloverleaf_engine::store::Queries as _;
use cloverleaf_finance::ledger::Letter;
use serde::Deserialize;

use super::tasks::CustomerNames;
use super::{CsrfForm, Shown, answer, error_page, message_page, page, with_lang};
use crate::server::AppState;
use crate::server::config::LETTER_KINDS;
use crate::server::error::ApiError;
use crate::server::notify::outbox::{LETTER_HANDLERS, LETTER_READERS, LetterView};
use crate::web::{Viewer, esc, esc_keeping_ids, html, i18n, url_path};

/// Letters on one page of the list.
const LETTERS_PAGE: usize = 100;
/// Letters the list reads at most, newest first; older ones are found by their delivery state.
const LETTERS_READ: i64 = 2_000;

/// The delivery states, with the catalogue key of their word. `unsent`: written, but no delivery
/// channel carries its kind, so the notifier leaves it in the ledger's outbox.
const STATES: [(&str, &str); 4] = [
    ("dead", "letter_dead"),
    ("pending", "letter_pending"),
    ("delivered", "letter_delivered"),
    (UNSENT, "letter_unsent"),
];

/// The state of a letter no delivery channel carries.
const UNSENT: &str = "unsent";

/// How long a letter may wait for the notifier (which looks every few seconds) before the page
/// says that nothing carries it.
const UNSENT_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// What the list may be narrowed to.
#[derive(Debug, Deserialize)]
pub struct LettersQuery {
    state: Option<String>,
    /// The page of the list, from 1.
    page: Option<String>,
}

/// True when `viewer` may read the letters.
pub(super) fn may_read(viewer: &Viewer) -> bool {
    LETTER_READERS.iter().any(|r| viewer.caller.has(r))
}

/// `GET /letters`: the customer letters, newest first, narrowed by delivery state.
pub async fn letters(State(state): State<AppState>, viewer: Viewer, Query(query): Query<LettersQuery>) -> Response {
    let result: Result<String, ApiError> = async {
        viewer.caller.require_any(LETTER_READERS, "read the customer letters")?;
        let Some(ledger) = state.ledger() else {
            return Err(ApiError::no_ledger());
        };
        let chosen = query.state.as_deref().filter(|s| STATES.iter().any(|(v, _)| v == s));
        // Letters no channel carries stay in the ledger's outbox, never handed to delivery: the
        // notifier queues those of the kinds a webhook or an email route carries within seconds.
        let now = state.engine().now();
        let unsent: Vec<LetterView> = ledger
            .letters_to_queue(LETTER_KINDS, LETTERS_READ)
            .await
            .map_err(ApiError::internal)?
            .into_iter()
            .filter(|l| now - l.created_at >= UNSENT_AFTER)
            .map(unsent_view)
            .collect();
        let kinds: Vec<String> = LETTER_KINDS.iter().map(|k| (*k).to_string()).collect();
        let mut found: Vec<LetterView> = if chosen == Some(UNSENT) {
            Vec::new()
        } else {
            state
                .engine()
                .store()
                .notifications_of(&kinds, chosen, LETTERS_READ + 1)
                .await
                .map_err(ApiError::internal)?
                .into_iter()
                .map(LetterView::from)
                .collect()
        };
        let waiting = unsent.len();
        // One more than is listed, to know whether older ones were left unread.
        let read = usize::try_from(LETTERS_READ).unwrap_or(usize::MAX);
        let mut cut = unsent.len() >= read;
        if chosen.is_none() || chosen == Some(UNSENT) {
            found.extend(unsent);
            // Newest first, as the notifications come.
            found.sort_by_key(|l| std::cmp::Reverse(l.created_at.parse::<chrono::DateTime<chrono::Utc>>().ok()));
        }
        cut |= found.len() > read;
        found.truncate(read);
        let shown = Shown::of(query.page.as_deref(), found.len(), LETTERS_PAGE).cut(cut, "shown_range_newest_letters");
        let handler = LETTER_HANDLERS.iter().any(|r| viewer.caller.has(r));
        // The customer links to their open invoices for those who read the board.
        let board = crate::server::access::may_read_reports(&viewer.caller).is_ok();
        let mut options = format!("<option value=\"\">{}</option>", viewer.t("all_letters"));
        for (value, key) in STATES {
            let selected = if Some(value) == chosen { " selected" } else { "" };
            let _ = write!(options, "<option value=\"{value}\"{selected}>{}</option>", viewer.t(key));
        }
        let mut out = format!(
            "<h1>{}</h1><p class=\"muted\">{}</p><form method=\"get\" action=\"/letters\" class=\"filters\">\
             <label>{} <select name=\"state\" id=\"state\">{options}</select></label><button type=\"submit\">{}</button></form>",
            viewer.t("letters"),
            viewer.t("letters_intro"),
            viewer.t("delivery"),
            viewer.t("filter"),
        );
        if waiting > 0 {
            let notice = if waiting == 1 {
                viewer.t("letters_no_channel_one").to_string()
            } else {
                viewer.t("letters_no_channel").replace("{n}", &waiting.to_string())
            };
            let _ = write!(out, "<p class=\"notice\" role=\"status\" data-unsent=\"{waiting}\">{}</p>", esc(&notice));
        }
        if found.is_empty() {
            let _ = write!(out, "<p class=\"empty\">{}</p>", viewer.t("no_letters"));
            return Ok(out);
        }
        let _ = write!(
            out,
            "<table class=\"letters\"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
            viewer.t("written"),
            viewer.t("letter"),
            viewer.t("customer"),
            viewer.t("to_address"),
            viewer.t("delivery"),
        );
        let customers = CustomerNames::of(&state).await;
        for letter in found.into_iter().skip(shown.first).take(LETTERS_PAGE) {
            out.push_str(&row(&viewer, &letter, handler, board, &customers));
        }
        out.push_str("</tbody></table>");
        out.push_str(&shown.pager(&viewer));
        Ok(out)
    }
    .await;
    answer(&viewer, "letters", result)
}

/// One letter as a table row: when, what (its text folded away), to whom, and its delivery.
fn row(viewer: &Viewer, letter: &LetterView, handler: bool, board: bool, customers: &CustomerNames) -> String {
    let written = letter
        .created_at
        .parse::<chrono::DateTime<chrono::Utc>>()
        .map_or_else(|_| letter.created_at.clone(), |at| i18n::time(at, viewer.zone, viewer.lang));
    let kind = match letter.kind.as_str() {
        "invoice_notice" => viewer.t("letter_invoice_notice"),
        "dunning_letter" => viewer.t("letter_dunning_letter"),
        "refund_notice" => viewer.t("letter_refund_notice"),
        other => other,
    };
    let word = STATES.iter().find(|(v, _)| *v == letter.state).map_or(letter.state.as_str(), |(_, k)| viewer.t(k));
    let invoice =
        letter.invoice.as_deref().map(|i| format!(" · <span class=\"nowrap\">{}</span>", esc(i))).unwrap_or_default();
    let to =
        letter.to.as_deref().map_or_else(|| format!("<span class=\"muted\">{}</span>", viewer.t("no_address")), esc);
    let mut delivery = format!(
        "<strong class=\"state {}\">{}</strong><span class=\"muted\">{}</span>",
        esc(&letter.state),
        esc(word),
        viewer.lang.bracketed(&if letter.state == UNSENT {
            viewer.t("letter_no_channel").to_string()
        } else if letter.attempts == 1 {
            viewer.t("attempt_one").to_string()
        } else {
            viewer.t("attempts").replace("{n}", &letter.attempts.to_string())
        }),
    );
    if let Some(error) = letter.last_error.as_deref().filter(|_| letter.state != "delivered") {
        let _ = write!(
            delivery,
            "<br><span class=\"muted\" data-failure>{}</span>",
            esc(&failure(viewer, error, &letter.state))
        );
    }
    if handler && letter.state == "dead" {
        let _ = write!(
            delivery,
            "<form method=\"post\" action=\"/letters/{}/retry\" class=\"again\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">{}</button></form>",
            url_path(&letter.id),
            viewer.csrf,
            viewer.t("send_again"),
        );
    }
    let mark = if letter.state == "dead" { " class=\"dead\"" } else { "" };
    let named = esc_keeping_ids(&customers.beside(viewer, letter.customer.clone()));
    let customer = if board {
        format!("<a href=\"/board/receivables?customer={}\">{named}</a>", url_path(&letter.customer))
    } else {
        named
    };
    format!(
        "<tr data-letter=\"{id}\" data-state=\"{state}\"{mark}><td>{written}</td>\
         <td><details><summary>{kind}{invoice}<br>{subject}</summary><pre class=\"letter\">{body}</pre></details></td>\
         <td>{customer}</td><td>{to}</td><td>{delivery}</td></tr>",
        id = esc(&letter.id),
        state = esc(&letter.state),
        written = esc(&written),
        kind = esc(kind),
        subject = esc(&letter.subject),
        body = esc(&letter.body),
    )
}

/// A letter still in the ledger's outbox, which no delivery channel carries, as the list shows it.
fn unsent_view(letter: Letter) -> LetterView {
    LetterView {
        id: letter.notification_id(),
        kind: letter.kind,
        customer: letter.customer_id,
        to: letter.to,
        invoice: letter.invoice_id,
        subject: letter.subject,
        body: letter.body,
        state: UNSENT.to_string(),
        attempts: 0,
        last_error: None,
        created_at: letter.created_at.to_rfc3339(),
    }
}

/// Why a letter was not delivered, in the reader's words: what kind of failure and whether it
/// is tried again, never the receiver's address or the technical text (operators read that on
/// `GET /v1/notifications`).
fn failure(viewer: &Viewer, error: &str, state: &str) -> String {
    // The notifier's words: "{url} answered 500 Internal Server Error", "{url}: {error}",
    // "smtp {relay}: RCPT TO answered 550 ...", "smtp {relay}: cannot connect: ...", "customer
    // `C-007` has no valid email address: ...".
    let answered = |text: &str| {
        let code = text.rsplit_once(" answered ")?.1.split_whitespace().next()?;
        (code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit())).then(|| code.to_string())
    };
    let reason = if error.contains("has no valid email address") {
        return viewer.t("letter_fail_no_address").to_string() + end_of(viewer, "dead");
    } else if let Some(relay) = error.strip_prefix("smtp ") {
        match answered(relay) {
            Some(code) => viewer.t("letter_fail_mail_refused").replace("{code}", &code),
            None => viewer.t("letter_fail_mail_unreachable").to_string(),
        }
    } else if error.starts_with("http://") || error.starts_with("https://") {
        match answered(error) {
            Some(status) => viewer.t("letter_fail_http").replace("{status}", &status),
            None => viewer.t("letter_fail_unreachable").to_string(),
        }
    } else {
        viewer.t("letter_fail_other").to_string()
    };
    reason + end_of(viewer, state)
}

/// What happens next to a failed letter: tried again by itself while pending, by a person once
/// dead.
fn end_of(viewer: &Viewer, state: &str) -> &'static str {
    if state == "dead" { viewer.t("letter_not_retried") } else { viewer.t("letter_retried") }
}

/// `POST /letters/{id}/retry`: sends a letter that could not be delivered again (AR clerk,
/// controller, admin).
pub async fn retry_letter(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !viewer.csrf_ok(form.csrf.as_deref()) {
        return message_page(&viewer, StatusCode::FORBIDDEN, "refused", viewer.t("csrf"));
    }
    if let Err(e) = viewer.caller.require_any(LETTER_HANDLERS, "send customer letters again") {
        return error_page(&viewer, &e);
    }
    // Letters only: the other notifications are the operators' to retry.
    let row = id.strip_prefix("outbox.").filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if row.is_none() {
        return error_page(
            &viewer,
            &ApiError::missing("letter", id.as_str(), format!("`{id}` is not a customer letter")),
        );
    }
    match state.engine().retry_notification(&id).await {
        Ok(true) => Redirect::to("/letters").into_response(),
        Ok(false) => {
            // Back to the letters, where the reader sees what became of it.
            let body = format!(
                "<h1>{}</h1><p class=\"notice\" role=\"alert\">{}</p><p><a href=\"/letters\">{}</a></p>",
                viewer.t("refused"),
                viewer.t("not_dead"),
                viewer.t("back")
            );
            with_lang(&viewer, html(StatusCode::CONFLICT, page(&viewer, viewer.t("letters"), &body)))
        }
        Err(e) => error_page(&viewer, &ApiError::internal(e)),
    }
}
