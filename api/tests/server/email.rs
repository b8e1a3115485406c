//! Notifications by email, against an SMTP sink each test starts: who is mailed, in which
//! language, under which `Message-ID`; tried again on a 4xx or a relay that is down, dead after
//! the last attempt or at once on a 5xx; and a notifier killed between the relay's acceptance and
//! the record of it, which sends one more copy under the same id and no more.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::TimeDelta;
use cloverleaf::server::config::{ConfigFile, EmailConfig, EmailRoute, SmtpEntry, UserEntry, Users, hash_token};
use cloverleaf::server::notify::mail::Mailer;
use cloverleaf::server::notify::{DeliveryPass, Notifier, NotifierOptions};
use cloverleaf_engine::store::Store;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;

use crate::harness::Api;

/// Where in a session the sink may be told to answer otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Greeting,
    Rcpt,
    /// The answer to the message itself, after its closing dot.
    Message,
}

/// A message the sink accepted: the envelope and the text, dot-stuffing undone.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

impl Received {
    /// The value of header `name` (continuation lines unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = self.data.split_once("\r\n\r\n")?;
        let unfolded = head.replace("\r\n ", " ");
        unfolded.split("\r\n").find_map(|line| {
            let (key, value) = line.split_once(": ")?;
            key.eq_ignore_ascii_case(name).then(|| value.to_string())
        })
    }

    /// The subject as a reader sees it: RFC 2047 words decoded.
    pub fn subject(&self) -> String {
        let raw = self.header("Subject").unwrap_or_default();
        if !raw.starts_with("=?UTF-8?B?") {
            return raw;
        }
        raw.split(' ')
            .map(|w| {
                let inner = w.strip_prefix("=?UTF-8?B?").and_then(|w| w.strip_suffix("?=")).unwrap();
                String::from_utf8(STANDARD.decode(inner).unwrap()).unwrap()
            })
            .collect()
    }

    /// The body, decoded from base64.
    pub fn body(&self) -> String {
        let (_, body) = self.data.split_once("\r\n\r\n").unwrap();
        String::from_utf8(STANDARD.decode(body.replace("\r\n", "")).unwrap()).unwrap()
    }
}

/// A local SMTP server: records every message it accepts; answers as told at a stage, then
/// `250`; can hold its answer to `QUIT` once, as a relay that accepted a message and was then
/// cut off from the sender.
#[derive(Clone, Default)]
pub struct SmtpSink {
    received: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Mutex<HashMap<Stage, VecDeque<String>>>>,
    hold_quit_once: Arc<AtomicBool>,
}

impl SmtpSink {
    /// Starts the sink on a free local port; the port.
    pub async fn start(&self) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sink = self.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(sink.clone().session(socket));
            }
        });
        port
    }

    pub fn answer(&self, stage: Stage, reply: &str) {
        self.answers.lock().unwrap().entry(stage).or_default().push_back(reply.to_string());
    }

    pub fn hold_quit_once(&self) {
        self.hold_quit_once.store(true, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn reply(&self, stage: Stage, otherwise: &str) -> String {
        let told = self.answers.lock().unwrap().get_mut(&stage).and_then(VecDeque::pop_front);
        format!("{}\r\n", told.unwrap_or_else(|| otherwise.to_string()))
    }

    async fn session(self, socket: tokio::net::TcpStream) {
        let (read, mut write) = socket.into_split();
        let mut read = BufReader::new(read);
        let greeting = self.reply(Stage::Greeting, "220 sink.test ESMTP");
        let _ = write.write_all(greeting.as_bytes()).await;
        if !greeting.starts_with('2') {
            return;
        }
        let (mut from, mut to) = (String::new(), Vec::new());
        loop {
            let mut line = String::new();
            if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let command = line.trim_end().to_string();
            let upper = command.to_ascii_uppercase();
            let answer = if upper.starts_with("EHLO ") {
                "250-sink.test\r\n250 8BITMIME\r\n".to_string()
            } else if let Some(path) = upper.strip_prefix("MAIL FROM:") {
                from = command[command.len() - path.len()..].trim_matches(['<', '>']).to_string();
                "250 ok\r\n".to_string()
            } else if let Some(path) = upper.strip_prefix("RCPT TO:") {
                let answer = self.reply(Stage::Rcpt, "250 ok");
                if answer.starts_with('2') {
                    to.push(command[command.len() - path.len()..].trim_matches(['<', '>']).to_string());
                }
                answer
            } else if upper == "DATA" {
                let _ = write.write_all(b"354 end with a dot\r\n").await;
                let mut data = String::new();
                loop {
                    let mut line = String::new();
                    if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                let answer = self.reply(Stage::Message, "250 queued");
                if answer.starts_with('2') {
                    let message = Received { from: from.clone(), to: std::mem::take(&mut to), data };
                    self.received.lock().unwrap().push(message);
                }
                answer
            } else if upper == "QUIT" {
                if self.hold_quit_once.swap(false, Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            } else {
                "500 unknown command\r\n".to_string()
            };
            if write.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
    }
}

/// A person of these tests: (name, roles, email, language).
type Person = (&'static str, &'static [&'static str], Option<&'static str>, Option<&'static str>);

/// The people of these tests.
const PEOPLE: &[Person] = &[
    ("sam", &["sales.rep"], Some("sam@example.com"), None),
    ("mia", &["sales.manager"], Some("mia@example.com"), Some("zh-CN")),
    ("max", &["sales.manager"], Some("max@example.com"), Some("en")),
    ("dora", &["sales.director"], None, None),
    ("carl", &["finance.cfo", "finance.controller"], Some("carl@example.com"), Some("zh-CN")),
];

pub fn people() -> Users {
    let users = PEOPLE
        .iter()
        .map(|(name, roles, email, language)| UserEntry {
            name: (*name).to_string(),
            roles: roles.iter().map(|r| (*r).to_string()).collect(),
            token_sha256: hash_token(&format!("mail-{name}")),
            password_argon2: None,
            time_zone: Some("Asia/Shanghai".to_string()),
            email: email.map(str::to_string),
            language: language.map(str::to_string),
        })
        .collect();
    Users::from_config(&ConfigFile { users, ..ConfigFile::default() }).unwrap()
}

pub fn email(port: u16, kinds: &[&str]) -> EmailConfig {
    EmailConfig {
        smtp: SmtpEntry {
            host: "127.0.0.1".into(),
            port,
            from: "cloverleaf@example.com".into(),
            from_name: None,
            hello: Some("cloverleaf.test".into()),
        },
        routes: vec![EmailRoute { kinds: kinds.iter().map(|k| (*k).to_string()).collect(), to: Vec::new() }],
    }
}

pub fn options(max_attempts: i64) -> NotifierOptions {
    NotifierOptions { max_attempts, first_retry: TimeDelta::seconds(30), ..NotifierOptions::default() }
}

/// A notifier that mails `kinds` through the relay on `port`, and nothing else.
pub fn mailer<S: Store>(engine: &cloverleaf_engine::Engine<S>, port: u16, kinds: &[&str], max: i64) -> Notifier<S> {
    Notifier::new(engine.clone(), Vec::new(), options(max))
        .unwrap()
        .with_email(Mailer::new(email(port, kinds), people()))
}

/// A local port nothing listens on: bound, then let go.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_task_offered_is_mailed_to_each_holder_of_its_role_in_their_language() {
    let Some(api) = Api::new().await else { return };
    let sink = SmtpSink::default();
    let notifier = mailer(&api.engine, sink.start().await, &["task_created"], 5);
    let (_, task) = api.order_at_manager("25000.00", "sam").await;
    assert_eq!(notifier.deliver_due().await.unwrap(), DeliveryPass { delivered: 1, retrying: 0, dead: 0 });

    let received = sink.received();
    let to: Vec<&str> = received.iter().map(|m| m.to[0].as_str()).collect();
    assert_eq!(to, ["max@example.com", "mia@example.com"], "the sales managers, one message each");
    let (max, mia) = (&received[0], &received[1]);
    assert_eq!(max.from, "cloverleaf@example.com");
    assert_eq!(max.subject(), "New task: Approve order SO-1");
    assert!(max.body().starts_with("Hello max,\r\n"), "{}", max.body());
    // Each reads the process's own words in their language: the task's, the process's and the
    // role's titles, never their keys.
    assert!(max.body().contains("Process: Order approval") && max.body().contains("Offered to: Sales manager"));
    assert_eq!(mia.subject(), "新任务：审批订单 SO-1");
    assert!(mia.header("Subject").unwrap().starts_with("=?UTF-8?B?"), "encoded per RFC 2047");
    assert_eq!(mia.header("Content-Language").as_deref(), Some("zh-CN"));
    let body = mia.body();
    assert!(body.starts_with("mia，您好：\r\n"), "{body}");
    for line in ["任务：审批订单 SO-1", "流程：订单审批", "办理角色：销售经理"] {
        assert!(body.contains(line), "{line}: {body}");
    }
    assert!(!body.contains("sales.manager") && !body.contains("order_approval"), "{body}");
    assert!(body.contains("（北京时间）"), "the due time in mia's zone, named as she calls it: {body}");
    // One notification, one Message-ID, derived from its id.
    let id = format!("{task}.task_created.");
    assert!(mia.header("X-Cloverleaf-Id").unwrap().starts_with(&id));
    assert_eq!(mia.header("Message-ID"), max.header("Message-ID"));
    assert!(mia.header("Message-ID").unwrap().ends_with("@example.com>"));
}

#[tokio::test]
async fn the_requester_is_not_mailed_the_approval_of_their_own_order() {
    let Some(api) = Api::new().await else { return };
    let sink = SmtpSink::default();
    let notifier = mailer(&api.engine, sink.start().await, &["task_created"], 5);
    // max is a sales manager too, but `not by requested_by` bars him from his own order.
    api.order_at_manager("25000.00", "max").await;
    assert_eq!(notifier.deliver_due().await.unwrap().delivered, 1);
    let to: Vec<String> = sink.received().iter().map(|m| m.to.join(",")).collect();
    assert_eq!(to, ["mia@example.com"]);
}

#[tokio::test]
async fn a_relay_that_answers_4xx_or_is_down_is_tried_again_with_a_doubling_wait_then_dead() {
    let Some(api) = Api::new().await else { return };
    let sink = SmtpSink::default();
    let port = sink.start().await;
    api.order_at_manager("25000.00", "max").await;

    // A 4xx: tried again after 30 s, and then it goes through.
    sink.answer(Stage::Rcpt, "451 4.3.0 mailbox busy, try later");
    let notifier = mailer(&api.engine, port, &["task_created"], 3);
    assert_eq!(notifier.deliver_due().await.unwrap(), DeliveryPass { delivered: 0, retrying: 1, dead: 0 });
    let pending = api.get("/v1/notifications?state=pending", "ada").await;
    let error = pending.expect(StatusCode::OK)[0]["last_error"].as_str().unwrap().to_string();
    assert!(error.contains("RCPT TO answered 451"), "{error}");
    api.advance(TimeDelta::seconds(29));
    assert_eq!(notifier.deliver_due().await.unwrap(), DeliveryPass::default(), "not before its wait");
    api.advance(TimeDelta::seconds(1));
    assert_eq!(notifier.deliver_due().await.unwrap().delivered, 1);
    assert_eq!(sink.received().len(), 1);

    // The next task's relay is down: refused connections, a doubling wait, dead after 3 attempts.
    api.engine.fire_due_timers().await.unwrap();
    api.advance(TimeDelta::hours(8));
    api.engine.fire_due_timers().await.unwrap();
    let down = mailer(&api.engine, closed_port().await, &["task_reminder"], 3);
    assert_eq!(down.deliver_due().await.unwrap().retrying, 1);
    api.advance(TimeDelta::seconds(30));
    assert_eq!(down.deliver_due().await.unwrap().retrying, 1);
    api.advance(TimeDelta::seconds(59));
    assert_eq!(down.deliver_due().await.unwrap(), DeliveryPass::default(), "the second wait is 60 s");
    api.advance(TimeDelta::seconds(1));
    assert_eq!(down.deliver_due().await.unwrap().dead, 1);
    let dead = api.get("/v1/notifications?state=dead", "ada").await;
    let dead = dead.expect(StatusCode::OK)[0].clone();
    assert_eq!((dead["kind"].as_str(), dead["attempts"].as_i64()), (Some("task_reminder"), Some(3)));
    assert!(dead["last_error"].as_str().unwrap().contains("cannot connect"), "{dead}");

    // An operator sends it again once the relay is back.
    let id = dead["id"].as_str().unwrap();
    api.post_empty(&format!("/v1/notifications/{id}/retry"), "ada").await.expect(StatusCode::OK);
    let back = mailer(&api.engine, port, &["task_reminder"], 3);
    assert_eq!(back.deliver_due().await.unwrap().delivered, 1);
    let last = sink.received().pop().unwrap();
    assert_eq!((last.to[0].as_str(), last.subject().as_str()), ("mia@example.com", "提醒：审批订单 SO-1"));
}

#[tokio::test]
async fn a_relay_that_refuses_for_good_makes_the_notification_dead_at_once() {
    let Some(api) = Api::new().await else { return };
    let sink = SmtpSink::default();
    let notifier = mailer(&api.engine, sink.start().await, &["task_created"], 8);
    api.order_at_manager("25000.00", "max").await;
    sink.answer(Stage::Message, "554 5.7.1 rejected by policy");
    assert_eq!(notifier.deliver_due().await.unwrap(), DeliveryPass { delivered: 0, retrying: 0, dead: 1 });
    let dead = api.get("/v1/notifications?state=dead", "ada").await;
    let dead = dead.expect(StatusCode::OK)[0].clone();
    assert_eq!(dead["attempts"], 1, "no second attempt against a 5xx");
    assert!(dead["last_error"].as_str().unwrap().contains("554 5.7.1"), "{dead}");
    assert!(sink.received().is_empty());
    // Sent again by an operator to a relay that refuses to talk at all: a 5xx too.
    let id = dead["id"].as_str().unwrap();
    api.post_empty(&format!("/v1/notifications/{id}/retry"), "ada").await.expect(StatusCode::OK);
    let refusing = SmtpSink::default();
    refusing.answer(Stage::Greeting, "554 no service for you");
    let notifier = mailer(&api.engine, refusing.start().await, &["task_created"], 8);
    assert_eq!(notifier.deliver_due().await.unwrap().dead, 1);
    let dead = api.get("/v1/notifications?state=dead", "ada").await;
    assert!(dead.expect(StatusCode::OK)[0]["last_error"].as_str().unwrap().contains("greeting answered 554"));
}

#[tokio::test]
async fn a_notifier_killed_after_the_relay_accepted_sends_one_more_copy_under_the_same_id() {
    let Some(api) = Api::new().await else { return };
    let sink = SmtpSink::default();
    let port = sink.start().await;
    api.order_at_manager("25000.00", "max").await;
    // The relay accepts the message and then never answers the goodbye: the notifier hangs
    // between "sent" and "marked sent", and is killed there.
    sink.hold_quit_once();
    let patient = NotifierOptions { timeout: std::time::Duration::from_secs(3600), ..options(8) };
    let first = Notifier::new(api.engine.clone(), Vec::new(), patient.clone())
        .unwrap()
        .with_email(Mailer::new(email(port, &["task_created"]), people()));
    let running = tokio::spawn(async move { first.deliver_due().await });
    cloverleaf_testkit::eventually("the relay has the message", || {
        let sink = sink.clone();
        async move { (!sink.received().is_empty()).then_some(()) }
    })
    .await;
    running.abort();
    assert!(running.await.unwrap_err().is_cancelled());

    // Nothing was recorded: the notification is still pending, left to the dead notifier until
    // its lease runs out, and then taken again.
    let pending = api.get("/v1/notifications?state=pending", "ada").await;
    assert_eq!(pending.expect(StatusCode::OK)[0]["attempts"], 0);
    let second = mailer(&api.engine, port, &["task_created"], 8);
    assert_eq!(second.deliver_due().await.unwrap(), DeliveryPass::default(), "leased to the first");
    api.advance(patient.lease);
    assert_eq!(second.deliver_due().await.unwrap().delivered, 1);
    api.advance(TimeDelta::hours(2));
    assert_eq!(second.deliver_due().await.unwrap(), DeliveryPass::default(), "delivered is delivered");

    let received = sink.received();
    assert_eq!(received.len(), 2, "one duplicate, no more");
    assert_eq!(received[0].header("Message-ID"), received[1].header("Message-ID"));
    assert_eq!(received[0].body(), received[1].body());
    let delivered = api.get("/v1/notifications?state=delivered", "ada").await;
    assert_eq!(delivered.expect(StatusCode::OK).as_array().unwrap().len(), 1);
}
