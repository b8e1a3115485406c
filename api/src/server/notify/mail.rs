//! The email channel: who a notification is mailed to, and the message each of them reads, in
//! their language and time zone.
//!
//! A route with fixed addresses (`to`) sends there. Otherwise the people concerned get it:
//! - a task offered: the users holding one of its roles; a task someone holds (assigned or
//!   claimed): that person and, while it lasts, the substitute they named; a task handed over:
//!   the new holder. Only those who may act on it are told: a user a `not by` rule bars (the
//!   requester of an order, say) is left out, as the inbox would refuse them. A task closed by the
//!   time of delivery is mailed to nobody.
//! - an alert: the users holding a role its rule names in `notify`.
//! - a customer letter: the customer's billing address (`customers.email`).
//!
//! A person without an `email` in `cloverleaf.toml` is not mailed.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cloverleaf_engine::TaskId;
use cloverleaf_engine::runtime::Engine;
use cloverleaf_engine::store::{Notification, Store, TaskInfo, TaskState};
use serde_json::Value;

use super::smtp::Failure;
use crate::server::config::{EmailConfig, LETTER_KINDS, SmtpEntry, User, Users, check_address};
use crate::web::i18n::{self, Lang};

/// One message to send: where, in which language, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The address.
    pub to: String,
    /// The language it is written in.
    pub lang: Lang,
    /// The subject.
    pub subject: String,
    /// The body.
    pub body: String,
}

/// The email channel: the relay, the routes and the people.
#[derive(Debug, Clone)]
pub struct Mailer {
    config: EmailConfig,
    users: Users,
}

impl Mailer {
    /// A mailer for the checked `config`, mailing `users` at their `email`.
    pub fn new(config: EmailConfig, users: Users) -> Mailer {
        Mailer { config, users }
    }

    /// The relay.
    pub fn smtp(&self) -> &SmtpEntry {
        &self.config.smtp
    }

    /// True when some route carries `kind`.
    pub fn carries(&self, kind: &str) -> bool {
        self.config.routes.iter().any(|r| r.carries(kind))
    }

    /// The messages `notice` makes, one per address. A customer letter goes to `billing` (the
    /// customer's address now), else to the address it was written for; without either it is a
    /// permanent failure: nobody can fix it by waiting.
    pub async fn outgoing<S: Store>(
        &self,
        engine: &Engine<S>,
        notice: &Notification,
        billing: Option<&str>,
    ) -> Result<Vec<Outgoing>, Failure> {
        let kind = notice.row.kind.as_str();
        let payload: Value = serde_json::from_str(&notice.row.payload).unwrap_or(Value::Null);
        let mut out: BTreeMap<String, Outgoing> = BTreeMap::new();
        let mut people = None;
        for route in self.config.routes.iter().filter(|r| r.carries(kind)) {
            if !route.to.is_empty() {
                for to in &route.to {
                    let message = self.compose(engine, notice, &payload, None).await?;
                    out.entry(to.clone()).or_insert(Outgoing { to: to.clone(), ..message });
                }
                continue;
            }
            if LETTER_KINDS.contains(&kind) {
                let to = billing.or(payload["to"].as_str()).and_then(|a| check_address(a).ok()).ok_or_else(|| {
                    Failure::Permanent(format!(
                        "customer `{}` has no valid email address: add one to the customer's master data, then retry",
                        payload["customer"].as_str().unwrap_or("?")
                    ))
                })?;
                let message = self.compose(engine, notice, &payload, None).await?;
                out.entry(to.clone()).or_insert(Outgoing { to, ..message });
                continue;
            }
            if people.is_none() {
                people = Some(self.people(engine, notice, &payload).await?);
            }
            for user in people.iter().flatten() {
                let Some(address) = &user.email else { continue };
                let message = self.compose(engine, notice, &payload, Some(user)).await?;
                out.entry(address.clone()).or_insert(Outgoing { to: address.clone(), ..message });
            }
        }
        Ok(out.into_values().collect())
    }

    /// The users `notice` is for (see the module documentation).
    async fn people<S: Store>(
        &self,
        engine: &Engine<S>,
        notice: &Notification,
        payload: &Value,
    ) -> Result<Vec<Arc<User>>, Failure> {
        let kind = notice.row.kind.as_str();
        if kind.starts_with("alert_") {
            let roles: Vec<&str> =
                payload["notify"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            return Ok(self.users.all().into_iter().filter(|u| roles.iter().any(|r| u.has(r))).collect());
        }
        let task = match engine.task(&TaskId(notice.row.subject.clone())).await {
            Ok(task) => task,
            Err(cloverleaf_engine::runtime::Error::UnknownTask(_)) => return Ok(Vec::new()),
            Err(e) => return Err(Failure::Transient(format!("cannot read task `{}`: {e}", notice.row.subject))),
        };
        if task.state != TaskState::Open {
            return Ok(Vec::new());
        }
        let now = engine.now();
        // (user, the holder they act for, if a substitute).
        let mut candidates: Vec<(Arc<User>, Option<String>)> = Vec::new();
        match task.claimed_by.as_ref().or(task.assignee.as_ref()) {
            Some(holder) => {
                if let Some(user) = self.users.get(holder) {
                    candidates.push((user, None));
                }
                let substitute = engine.substitute_of(holder).await.map_err(transient)?;
                if let Some(s) = substitute.filter(|s| s.from <= now && now < s.until)
                    && let Some(user) = self.users.get(&s.substitute)
                {
                    candidates.push((user, Some(holder.clone())));
                }
            }
            None if kind == "task_assigned" => {}
            None => {
                for user in self.users.all().into_iter().filter(|u| task.roles.iter().any(|r| u.has(r))) {
                    candidates.push((user, None));
                }
            }
        }
        let mut allowed = Vec::new();
        for (user, on_behalf_of) in candidates {
            if user.email.is_some() && may_act(engine, &task, &user.name, on_behalf_of.as_deref(), now).await? {
                allowed.push(user);
            }
        }
        Ok(allowed)
    }

    /// The message for `user` (none: a fixed address or a customer, in English without a name).
    async fn compose<S: Store>(
        &self,
        engine: &Engine<S>,
        notice: &Notification,
        payload: &Value,
        user: Option<&User>,
    ) -> Result<Outgoing, Failure> {
        let kind = notice.row.kind.as_str();
        if LETTER_KINDS.contains(&kind) {
            // The sub-ledger wrote the letter: it goes out as written.
            let text = |key: &str| payload[key].as_str().unwrap_or_default().to_string();
            return Ok(Outgoing { to: String::new(), lang: Lang::En, subject: text("subject"), body: text("body") });
        }
        let lang = user.map_or(Lang::En, |u| u.language);
        let zone = user.and_then(|u| u.time_zone).unwrap_or(chrono_tz::UTC);
        let when = |key: &str| {
            payload[key]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| i18n::time(t.with_timezone(&Utc), zone, lang))
        };
        let Some((subject_key, intro_key)) = words(kind) else {
            return Err(Failure::Permanent(format!("no email words for notifications of kind `{kind}`")));
        };
        let mut lines: Vec<(&'static str, String)> = Vec::new();
        let title;
        if kind.starts_with("alert_") {
            title = payload["title"].as_str().unwrap_or_default().to_string();
            let about = payload["subject"].as_str().filter(|s| !s.is_empty());
            let indicator = payload["indicator"].as_str().unwrap_or_default();
            let (name, _) = i18n::kpi(lang, indicator);
            lines.push(("mail_severity", payload["severity"].as_str().unwrap_or_default().to_string()));
            lines.push(("mail_about", about.map_or_else(|| lang.t("mail_whole_company").to_string(), str::to_string)));
            lines.push(("mail_indicator", if name.is_empty() { indicator.to_string() } else { name.to_string() }));
            lines.push(("mail_value", payload["value"].as_str().unwrap_or_default().to_string()));
            lines.push(("mail_threshold", payload["threshold"].as_str().unwrap_or_default().to_string()));
            lines.extend(when("opened_at").map(|t| ("mail_since", t)));
        } else {
            let task = engine.task(&TaskId(notice.row.subject.clone())).await.ok();
            // The process's own words for the reader: its title, the task's Chinese title, its
            // roles' titles (the stored title is the English one).
            let instance = match &task {
                Some(task) => engine.instance(&task.instance_id).await.ok(),
                None => None,
            };
            let definition = match &instance {
                Some(instance) => engine.definition(instance.process(), instance.process_version()).await.ok(),
                None => None,
            };
            title = match (&task, &instance, &definition) {
                (Some(task), Some(instance), Some(definition)) => {
                    i18n::task_title(lang, definition, instance, task, engine.now())
                }
                _ => task
                    .as_ref()
                    .map(|t| t.title.clone())
                    .or_else(|| payload["title"].as_str().map(str::to_string))
                    .unwrap_or_default(),
            };
            lines.push(("task", title.clone()));
            let process = match &definition {
                Some(definition) => i18n::process_title(lang, definition).to_string(),
                None => payload["process"].as_str().unwrap_or_default().to_string(),
            };
            lines.push(("process", process));
            if let Some(key) = payload["business_key"].as_str() {
                lines.push(("mail_case", key.to_string()));
            }
            if let Some(task) = &task {
                if !task.roles.is_empty() {
                    let roles = match &definition {
                        Some(definition) => i18n::role_list(lang, definition, &task.roles),
                        None => task.roles.join(", "),
                    };
                    lines.push(("mail_offered_to", roles));
                }
                if let Some(due) = task.due_at {
                    lines.push(("due", i18n::time(due, zone, lang)));
                }
            }
        }
        let mut body = String::new();
        if let Some(user) = user {
            body.push_str(&lang.t("mail_hello").replace("{name}", &user.name));
            body.push_str("\n\n");
        }
        body.push_str(lang.t(intro_key));
        body.push_str("\n\n");
        let colon = if lang == Lang::ZhCn { "：" } else { ": " };
        for (label, value) in lines.iter().filter(|(_, v)| !v.is_empty()) {
            body.push_str(&format!("  {}{colon}{value}\n", lang.t(label)));
        }
        body.push_str("\n-- \n");
        body.push_str(&lang.t("mail_footer").replace("{id}", &notice.row.id));
        body.push('\n');
        let subject = lang.t(subject_key).replace("{title}", &title);
        Ok(Outgoing { to: String::new(), lang, subject, body })
    }
}

/// The catalogue keys of a kind's subject and opening line.
fn words(kind: &str) -> Option<(&'static str, &'static str)> {
    Some(match kind {
        "task_created" => ("mail_task_created_subject", "mail_task_created"),
        "task_assigned" => ("mail_task_assigned_subject", "mail_task_assigned"),
        "task_reminder" => ("mail_task_reminder_subject", "mail_task_reminder"),
        "task_overdue" => ("mail_task_overdue_subject", "mail_task_overdue"),
        "alert_opened" => ("mail_alert_opened_subject", "mail_alert_opened"),
        "alert_cleared" => ("mail_alert_cleared_subject", "mail_alert_cleared"),
        _ => return None,
    })
}

/// Whether `user` (for `on_behalf_of`) may act on `task`: the `not by` rules the engine applies
/// when someone claims it.
async fn may_act<S: Store>(
    engine: &Engine<S>,
    task: &TaskInfo,
    user: &str,
    on_behalf_of: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool, Failure> {
    let instance = engine.instance(&task.instance_id).await.map_err(transient)?;
    let definition = engine.definition(instance.process(), instance.process_version()).await.map_err(transient)?;
    Ok(cloverleaf_engine::check_separation(&definition, &instance, &task.id, user, on_behalf_of, now).is_ok())
}

fn transient(e: cloverleaf_engine::runtime::Error) -> Failure {
    Failure::Transient(format!("cannot read who the notification is for: {e}"))
}
