//! Notifications delivered to webhooks: signed, tried again with a doubling wait, dead-lettered,
//! retried by an operator; the operators' API and its refusals.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::TimeDelta;
use cloverleaf::server::config::WebhookEntry;
use cloverleaf::server::notify::{DeliveryPass, Notifier, NotifierOptions, signature};
use serde_json::Value;

use crate::harness::Api;

const SECRET: &str = "a shared secret of the sink";

/// One request the sink received: (id header, kind header, signature header, body).
pub type Received = (String, String, String, String);

/// A local webhook receiver: records every request and answers the statuses queued, then 204.
#[derive(Clone, Default)]
pub struct Sink {
    received: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Mutex<VecDeque<StatusCode>>>,
}

impl Sink {
    pub async fn start(&self) -> String {
        async fn receive(State(sink): State<Sink>, headers: HeaderMap, body: String) -> StatusCode {
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            let entry =
                (header("x-cloverleaf-id"), header("x-cloverleaf-kind"), header("x-cloverleaf-signature"), body);
            sink.received.lock().unwrap().push(entry);
            sink.answers.lock().unwrap().pop_front().unwrap_or(StatusCode::NO_CONTENT)
        }
        let router = axum::Router::new().route("/hook", post(receive)).with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{address}/hook")
    }

    fn answer(&self, statuses: &[StatusCode]) {
        self.answers.lock().unwrap().extend(statuses.iter().copied());
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

fn hook(url: &str, kinds: &[&str]) -> WebhookEntry {
    WebhookEntry {
        url: url.to_string(),
        secret: SECRET.to_string(),
        kinds: kinds.iter().map(|k| (*k).to_string()).collect(),
    }
}

fn options(max_attempts: i64) -> NotifierOptions {
    NotifierOptions { max_attempts, first_retry: TimeDelta::seconds(30), ..NotifierOptions::default() }
}

#[tokio::test]
async fn a_task_offered_reaches_the_webhook_signed_and_a_failed_attempt_is_sent_again_under_its_id() {
    let Some(api) = Api::new().await else { return };
    let sink = Sink::default();
    let url = sink.start().await;
    let notifier = Notifier::new(api.engine.clone(), vec![hook(&url, &[])], options(5)).unwrap();
    let (instance, task) = api.order_at_manager("25000.00", "sam").await;

    // The receiver is down for the first attempt.
    sink.answer(&[StatusCode::SERVICE_UNAVAILABLE]);
    assert_eq!(notifier.deliver_due().await.unwrap(), DeliveryPass { delivered: 0, retrying: 1, dead: 0 });
    // Not again before its wait (30 s after the first failure).
    api.advance(TimeDelta::seconds(29));
    assert_eq!(notifier.deliver_due().await.unwrap(), DeliveryPass::default());
    api.advance(TimeDelta::seconds(1));
    assert_eq!(notifier.deliver_due().await.unwrap(), DeliveryPass { delivered: 1, retrying: 0, dead: 0 });

    let received = sink.received();
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!(received[0].0, received[1].0, "the same id both times");
    let (id, kind, signed, body) = &received[1];
    assert_eq!(kind, "task_created");
    let body_json: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body_json["id"], id.as_str());
    assert_eq!(body_json["task"], task.as_str());
    assert_eq!(body_json["instance"], instance.as_str());
    assert_eq!(body_json["title"], "Approve order SO-1");
    // The receiver checks the signature with the shared secret: over the time and the body.
    let t: i64 = signed.strip_prefix("t=").and_then(|s| s.split(',').next()).unwrap().parse().unwrap();
    assert_eq!(signed, &signature(SECRET, t, body));
    assert_ne!(signed, &signature("another secret entirely", t, body));

    let listed = api.get("/v1/notifications?state=delivered", "ada").await;
    let listed = listed.expect(StatusCode::OK).as_array().unwrap().clone();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0]["id"].as_str(), listed[0]["attempts"].as_i64()), (Some(id.as_str()), Some(2)));
}

#[tokio::test]
async fn a_notification_that_keeps_failing_is_dead_until_an_operator_retries_it() {
    let Some(api) = Api::new().await else { return };
    let sink = Sink::default();
    let url = sink.start().await;
    let notifier = Notifier::new(api.engine.clone(), vec![hook(&url, &[])], options(2)).unwrap();
    api.order_at_manager("25000.00", "sam").await;

    sink.answer(&[StatusCode::INTERNAL_SERVER_ERROR, StatusCode::BAD_GATEWAY]);
    assert_eq!(notifier.deliver_due().await.unwrap().retrying, 1);
    api.advance(TimeDelta::seconds(30));
    assert_eq!(notifier.deliver_due().await.unwrap().dead, 1);
    api.advance(TimeDelta::hours(2));
    assert_eq!(notifier.deliver_due().await.unwrap(), DeliveryPass::default(), "dead stays dead");

    let dead = api.get("/v1/notifications?state=dead", "ada").await;
    let dead = dead.expect(StatusCode::OK).as_array().unwrap().clone();
    assert_eq!(dead.len(), 1);
    assert!(dead[0]["last_error"].as_str().unwrap().contains("502"), "{:?}", dead[0]);
    let id = dead[0]["id"].as_str().unwrap().to_string();

    // Only an operator may read or retry them.
    api.get("/v1/notifications", "mia").await.expect_error(StatusCode::FORBIDDEN, "missing_role");
    api.get("/v1/notifications", "vera").await.expect_error(StatusCode::FORBIDDEN, "missing_role");
    api.post_empty(&format!("/v1/notifications/{id}/retry"), "carl")
        .await
        .expect_error(StatusCode::FORBIDDEN, "missing_role");
    api.get("/v1/notifications?state=lost", "ada").await.expect_error(StatusCode::BAD_REQUEST, "invalid_query");

    let retried = api.post_empty(&format!("/v1/notifications/{id}/retry"), "ada").await;
    assert_eq!(retried.expect(StatusCode::OK)["retried"], true);
    api.post_empty(&format!("/v1/notifications/{id}/retry"), "ada")
        .await
        .expect_error(StatusCode::CONFLICT, "not_dead");
    assert_eq!(notifier.deliver_due().await.unwrap().delivered, 1);
    assert_eq!(sink.received().len(), 3);
}

#[tokio::test]
async fn a_webhook_gets_only_the_kinds_it_asked_for() {
    let Some(api) = Api::new().await else { return };
    let everything = Sink::default();
    let overdue_only = Sink::default();
    let hooks = vec![hook(&everything.start().await, &[]), hook(&overdue_only.start().await, &["task_overdue"])];
    let notifier = Notifier::new(api.engine.clone(), hooks, options(5)).unwrap();
    api.order_at_manager("25000.00", "sam").await;
    assert_eq!(notifier.deliver_due().await.unwrap().delivered, 1);
    // The manager's reminder after 8 h, then the task overdue at 24 h.
    api.advance(TimeDelta::hours(8));
    api.engine.fire_due_timers().await.unwrap();
    api.advance(TimeDelta::hours(16));
    api.engine.fire_due_timers().await.unwrap();
    notifier.deliver_due().await.unwrap();
    let kinds = |sink: &Sink| sink.received().into_iter().map(|r| r.1).collect::<Vec<_>>();
    let all = kinds(&everything);
    assert!(all.starts_with(&["task_created".to_string(), "task_reminder".to_string()]), "{all:?}");
    assert!(all.contains(&"task_overdue".to_string()), "{all:?}");
    assert_eq!(kinds(&overdue_only), vec!["task_overdue".to_string()]);
}
