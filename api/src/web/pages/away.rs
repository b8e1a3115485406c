//! Away (every signed-in user, for themselves only): naming a substitute for the days one is out
//! of office, as `PUT /v1/users/me/substitute` does, and seeing whom one stands in for today.
//! The days are the reader's, in their time zone: from the start of the first day to the end of
//! the last.

use std::fmt::Write as _;

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone as _, Utc};
use chrono_tz::Tz;
use cloverleaf_engine::store::{Store as _, Substitution, TaskInfo};
use serde::Deserialize;

use super::{answer, error_page, message_page, page, with_lang};
use crate::server::AppState;
use crate::server::config::canonical_user;
use crate::server::error::ApiError;
use crate::server::tasks::name_substitute;
use crate::web::dates::{day_input, read_day};
use crate::web::{Viewer, esc, html, i18n};

/// The away form as sent: the substitute and the first and last day away, or `end`.
#[derive(Debug, Default, Deserialize)]
pub struct AwayForm {
    csrf: Option<String>,
    substitute: Option<String>,
    first_day: Option<String>,
    last_day: Option<String>,
    /// Present when the reader ends their substitution now.
    end: Option<String>,
}

/// `GET /away`: the reader's substitution in force or to come, and the form that names one.
pub async fn away(State(state): State<AppState>, viewer: Viewer) -> Response {
    let result = async {
        let engine = state.engine();
        let now = engine.now();
        let current = engine.substitute_of(viewer.caller.name()).await?;
        let standing = standing_in_for(&state, &viewer, now).await?;
        let today = now.with_timezone(&viewer.zone).date_naive().to_string();
        let form = AwayForm { first_day: Some(today), ..AwayForm::default() };
        Ok(away_body(&viewer, current.as_ref(), &standing, now, &form, None))
    }
    .await;
    answer(&viewer, "away", result)
}

/// `POST /away`: names the reader's substitute for the days given, or ends the substitution in
/// force; back to the away page. A name that is not a user, the reader's own name or days that
/// do not make a period are refused with the form kept.
pub async fn set_away(State(state): State<AppState>, viewer: Viewer, Form(form): Form<AwayForm>) -> Response {
    if !viewer.csrf_ok(form.csrf.as_deref()) {
        return message_page(&viewer, StatusCode::FORBIDDEN, "refused", viewer.t("csrf"));
    }
    let engine = state.engine();
    let now = engine.now();
    let user = viewer.caller.name();
    if form.end.is_some() {
        return match name_substitute(&state, user, None, now, None).await {
            Ok(_) => {
                tracing::info!(user, "substitution ended on the away page");
                Redirect::to("/away").into_response()
            }
            Err(e) => error_page(&viewer, &e),
        };
    }
    let name = form.substitute.as_deref().map(str::trim).unwrap_or_default();
    let name = canonical_user(name).unwrap_or_else(|| name.to_string());
    let period = period(&form, viewer.zone, now);
    let problem = if name.is_empty() || !state.users().contains(&name) {
        Some(viewer.t("away_unknown").replace("{name}", &name))
    } else if name == user {
        Some(viewer.t("away_self").to_string())
    } else if period.is_none() {
        Some(viewer.t("away_bad_days").to_string())
    } else {
        None
    };
    let problem = match (problem, period) {
        (None, Some((from, until))) => match name_substitute(&state, user, Some(&name), from, Some(until)).await {
            Ok(_) => {
                tracing::info!(user, substitute = %name, %from, %until, "substitute named on the away page");
                return Redirect::to("/away").into_response();
            }
            Err(e) if e.status() == StatusCode::UNPROCESSABLE_ENTITY => e.message().to_string(),
            Err(e) => return error_page(&viewer, &e),
        },
        (problem, _) => problem.unwrap_or_default(),
    };
    let current = match engine.substitute_of(user).await {
        Ok(current) => current,
        Err(e) => return error_page(&viewer, &ApiError::from(e)),
    };
    let standing = match standing_in_for(&state, &viewer, now).await {
        Ok(standing) => standing,
        Err(e) => return error_page(&viewer, &e),
    };
    let body = away_body(&viewer, current.as_ref(), &standing, now, &form, Some(&problem));
    with_lang(&viewer, html(StatusCode::UNPROCESSABLE_ENTITY, page(&viewer, viewer.t("away"), &body)))
}

/// What the inbox says of substitutions, as HTML: whom the reader stands in for today (and
/// whether those people have tasks open in `inbox`, the reader's open tasks), and that their own
/// substitute decides for them now; empty when neither.
pub(super) async fn inbox_notice(
    state: &AppState,
    viewer: &Viewer,
    now: DateTime<Utc>,
    inbox: &[TaskInfo],
) -> Result<String, ApiError> {
    let engine = state.engine();
    let user = viewer.caller.name();
    let principals = engine.store().principals_of(user, now).await?;
    let mut out = standing_in(viewer, &principals, inbox);
    if let Some(s) = engine.substitute_of(user).await?.filter(|s| s.from <= now && now < s.until) {
        // The end as the away page names it: the last day away, when the period is whole days.
        let text = match whole_days(&s, viewer.zone) {
            Some((_, last)) => viewer.t("away_in_force_days").replace("{last}", &last.to_string()),
            None => viewer.t("away_in_force").replace("{until}", &i18n::time(s.until, viewer.zone, viewer.lang)),
        };
        let text = text.replace("{substitute}", &s.substitute);
        let _ = write!(
            out,
            "<p class=\"notice\" id=\"away-in-force\">{} <a href=\"/away\">{}</a></p>",
            esc(&text),
            viewer.t("away_change")
        );
    }
    Ok(out)
}

/// Whom the reader stands in for today, as HTML, for the away page: [`standing_in`] with the
/// reader's open tasks read here.
async fn standing_in_for(state: &AppState, viewer: &Viewer, now: DateTime<Utc>) -> Result<String, ApiError> {
    let engine = state.engine();
    let principals = engine.store().principals_of(viewer.caller.name(), now).await?;
    if principals.is_empty() {
        return Ok(String::new());
    }
    let inbox = engine.inbox(viewer.caller.name(), &viewer.caller.0.role_refs()).await?;
    Ok(standing_in(viewer, &principals, &inbox))
}

/// Whom the reader stands in for today, as HTML (empty for nobody): those with a task open in
/// `inbox` (assigned to them or claimed by them) as having their tasks in the reader's inbox,
/// the others as having none now, so that the notice never promises tasks the list lacks.
fn standing_in(viewer: &Viewer, principals: &[String], inbox: &[TaskInfo]) -> String {
    if principals.is_empty() {
        return String::new();
    }
    let holds = |p: &String| inbox.iter().any(|t| t.assignee.as_ref() == Some(p) || t.claimed_by.as_ref() == Some(p));
    let (busy, idle): (Vec<&String>, Vec<&String>) = principals.iter().partition(|p| holds(p));
    let names = |people: &[&String]| people.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ");
    let mut sentences = Vec::new();
    if !busy.is_empty() {
        sentences.push(viewer.t("standing_in").replace("{people}", &names(&busy)));
    }
    if !idle.is_empty() {
        sentences.push(viewer.t("standing_in_idle").replace("{people}", &names(&idle)));
    }
    format!("<p class=\"notice\" id=\"standing-in\">{}</p>", esc(&sentences.join(" ")))
}

/// The period the form's days make in `zone`: from the start of the first day until the start
/// of the day after the last; `None` unless both are dates, in order, and the last not past.
fn period(form: &AwayForm, zone: Tz, now: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let day = |text: &Option<String>| read_day(text.as_deref()?);
    let (first, last) = (day(&form.first_day)?, day(&form.last_day)?);
    let start = |d: NaiveDate| zone.from_local_datetime(&d.and_hms_opt(0, 0, 0)?).earliest().map(|t| t.to_utc());
    let (from, until) = (start(first)?, start(last + TimeDelta::days(1))?);
    (first <= last && until > now).then_some((from, until))
}

/// The first and last day of `s` on `zone`'s clock when it spans whole days there (as the page
/// names them); `None` for a period named to the minute through the API.
fn whole_days(s: &Substitution, zone: Tz) -> Option<(NaiveDate, NaiveDate)> {
    let (from, until) = (s.from.with_timezone(&zone), s.until.with_timezone(&zone));
    let midnight = |t: &DateTime<Tz>| t.time() == chrono::NaiveTime::MIN;
    (midnight(&from) && midnight(&until)).then(|| (from.date_naive(), until.date_naive() - TimeDelta::days(1)))
}

/// The page: the substitution in force or to come, the form (keeping what `form` holds) and the
/// refusal `problem`, if any.
fn away_body(
    viewer: &Viewer,
    current: Option<&Substitution>,
    standing: &str,
    now: DateTime<Utc>,
    form: &AwayForm,
    problem: Option<&str>,
) -> String {
    let mut out = format!("<h1>{}</h1>", viewer.t("away_title"));
    if let Some(problem) = problem {
        let _ = write!(out, "<p class=\"notice refusal\" role=\"alert\" id=\"outcome\">{}</p>", esc(problem));
    }
    match current.filter(|s| s.until > now) {
        Some(s) => {
            let text = match whole_days(s, viewer.zone) {
                Some((first, last)) => viewer
                    .t("away_days")
                    .replace("{first}", &first.to_string())
                    .replace("{last}", &last.to_string())
                    .replace("{zone}", i18n::zone_name(viewer.zone, viewer.lang)),
                None => viewer
                    .t("away_now")
                    .replace("{from}", &i18n::time(s.from, viewer.zone, viewer.lang))
                    .replace("{until}", &i18n::time(s.until, viewer.zone, viewer.lang)),
            };
            let (before, after) = text.split_once("{substitute}").unwrap_or((&text, ""));
            let _ = write!(
                out,
                "<section id=\"substitution\"><p>{}<b>{}</b>{}</p>\
                 <form method=\"post\" action=\"/away\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <input type=\"hidden\" name=\"end\" value=\"1\"><button type=\"submit\" id=\"end-away\">{}</button></form></section>",
                esc(before),
                esc(&s.substitute),
                esc(after),
                viewer.csrf,
                viewer.t("away_end"),
            );
        }
        None => {
            let _ = write!(out, "<p id=\"substitution\">{}</p>", viewer.t("away_none"));
        }
    }
    out.push_str(standing);
    let value = |v: &Option<String>| esc(v.as_deref().unwrap_or_default());
    let _ = write!(
        out,
        "<section><h2>{}</h2><p class=\"muted\">{}</p>\
         <form method=\"post\" action=\"/away\" class=\"decision\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label for=\"substitute\">{}</label><input id=\"substitute\" name=\"substitute\" value=\"{}\" required autocomplete=\"off\">\
         <label for=\"first-day\">{}</label>{}\
         <label for=\"last-day\">{}</label>{}\
         <button type=\"submit\" id=\"name-substitute\">{}</button></form></section>",
        viewer.t("away_name"),
        viewer.t("away_roles"),
        viewer.csrf,
        viewer.t("substitute"),
        value(&form.substitute),
        viewer.t("away_first_day"),
        day_input(viewer, "first-day", "first_day", form.first_day.as_deref().unwrap_or_default(), true),
        viewer.t("away_last_day"),
        day_input(viewer, "last-day", "last_day", form.last_day.as_deref().unwrap_or_default(), true),
        viewer.t("away_save"),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(first: &str, last: &str) -> AwayForm {
        AwayForm { first_day: Some(first.into()), last_day: Some(last.into()), ..AwayForm::default() }
    }

    #[test]
    fn the_days_away_are_whole_days_on_the_readers_clock() {
        let zone: Tz = "Asia/Shanghai".parse().unwrap();
        let now = "2026-12-20T02:00:00Z".parse().unwrap();
        let (from, until) = period(&form("2026-12-20", "2026-12-24"), zone, now).unwrap();
        assert_eq!(from.to_rfc3339(), "2026-12-19T16:00:00+00:00");
        assert_eq!(until.to_rfc3339(), "2026-12-24T16:00:00+00:00");
        // One day away is that whole day.
        let (from, until) = period(&form("2026-12-21", " 2026-12-21 "), zone, now).unwrap();
        assert_eq!(until - from, TimeDelta::days(1));
        // The last day before the first, a last day already over, or no date: no period.
        assert_eq!(period(&form("2026-12-24", "2026-12-20"), zone, now), None);
        assert_eq!(period(&form("2026-12-01", "2026-12-19"), zone, now), None);
        assert_eq!(period(&form("2026-12-20", "next friday"), zone, now), None);
        assert_eq!(period(&AwayForm::default(), zone, now), None);
    }
}
