//! Customer letters from the sub-ledger's outbox: queued once, mailed to the customer's billing
//! address and posted to the webhooks that ask for their kind, dead at once without an address;
//! the finance routes that show and retry them, and their refusals.

use axum::http::StatusCode;
use chrono::TimeDelta;
use cloverleaf::server::config::{EmailConfig, EmailRoute, WebhookEntry};
use cloverleaf::server::notify::mail::Mailer;
use cloverleaf::server::notify::{DeliveryPass, Notifier};

use crate::email::{SmtpSink, email, options, people};
use crate::harness::{Api, with_ledger};

fn letters_by_mail(port: u16) -> EmailConfig {
    let mut config = email(port, &["invoice_notice", "dunning_letter"]);
    // A copy of every dunning letter for the receivables team's shared mailbox.
    config.routes.push(EmailRoute { kinds: vec!["dunning_letter".into()], to: vec!["ar@example.com".into()] });
    config
}

#[tokio::test]
async fn invoice_notices_and_dunning_letters_reach_the_customer_once_each() {
    let Some(mut api) = Api::new().await else { return };
    let ledger = with_ledger(&mut api).await;
    let sink = SmtpSink::default();
    let port = sink.start().await;
    let now = api.engine.now();
    ledger.notify("k-notice", now, "C-007", "INV-OB-0005", "invoice_issued").await.unwrap();
    let dunning = ledger.send_dunning("k-dunning", now, "INV-OB-0005", "C-007", 1).await.unwrap();
    assert!(dunning.sent);
    // The webhooks ask for dunning letters only; refund notices go nowhere and stay unqueued.
    let hook_sink = crate::notify::Sink::default();
    let hook = WebhookEntry {
        url: hook_sink.start().await,
        secret: "a shared secret of the sink".into(),
        kinds: vec!["dunning_letter".into()],
    };
    let notifier = Notifier::new(api.engine.clone(), vec![hook], options(5))
        .unwrap()
        .with_email(Mailer::new(letters_by_mail(port), people()))
        .with_letters(ledger.clone());
    assert_eq!(notifier.deliver_due().await.unwrap(), DeliveryPass { delivered: 2, retrying: 0, dead: 0 });

    let mails = sink.received();
    let sent: Vec<(String, String)> = mails.iter().map(|m| (m.to.join(","), m.subject())).collect();
    let customer = sent[0].0.clone();
    assert!(customer.starts_with("ap@") && customer.ends_with(".example"), "the billing address: {sent:?}");
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(sent[0].1.starts_with("Invoice "), "{sent:?}");
    assert!(sent[1].1.starts_with("Reminder: invoice ") && sent[1].0 == customer, "{sent:?}");
    assert_eq!(sent[2], ("ar@example.com".to_string(), sent[1].1.clone()), "the shared mailbox's copy");
    assert!(mails[0].body().starts_with("Dear "), "the letter as the ledger wrote it");
    assert!(mails[0].header("Message-ID").unwrap().starts_with("<outbox."));
    let hooked = hook_sink.received();
    assert_eq!(hooked.len(), 1);
    assert_eq!(hooked[0].1, "dunning_letter");
    let body: serde_json::Value = serde_json::from_str(&hooked[0].3).unwrap();
    assert_eq!((body["customer"].as_str(), body["invoice"].as_str()), (Some("C-007"), Some("INV-OB-0005")));

    // Queued once: a crash between queuing and marking them queued queues them again under the
    // same ids, which are taken once.
    sqlx::query("UPDATE outbox SET queued_at = NULL").execute(ledger.pool()).await.unwrap();
    api.advance(TimeDelta::hours(1));
    assert_eq!(notifier.deliver_due().await.unwrap(), DeliveryPass::default());
    assert_eq!(sink.received().len(), 3);

    // Finance reads them with what became of each.
    let listed = api.get("/v1/outbox", "arlo").await;
    let listed = listed.expect(StatusCode::OK).as_array().unwrap().clone();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|l| l["state"] == "delivered" && l["attempts"] == 1), "{listed:?}");
    assert!(listed.iter().any(|l| l["kind"] == "dunning_letter" && l["to"] == customer.as_str()));
    for reader in ["carl", "vera", "ada"] {
        api.get("/v1/outbox?state=delivered", reader).await.expect(StatusCode::OK);
    }
}

#[tokio::test]
async fn a_letter_to_a_customer_without_an_address_is_dead_until_finance_sends_it_again() {
    let Some(mut api) = Api::new().await else { return };
    let ledger = with_ledger(&mut api).await;
    sqlx::query("UPDATE customers SET email = NULL WHERE id = 'C-007'").execute(ledger.pool()).await.unwrap();
    let now = api.engine.now();
    ledger.notify("k-notice", now, "C-007", "INV-OB-0005", "invoice_issued").await.unwrap();
    let sink = SmtpSink::default();
    let notifier = Notifier::new(api.engine.clone(), Vec::new(), options(5))
        .unwrap()
        .with_email(Mailer::new(letters_by_mail(sink.start().await), people()))
        .with_letters(ledger.clone());
    assert_eq!(notifier.deliver_due().await.unwrap().dead, 1, "waiting will not give it an address");
    let dead = api.get("/v1/outbox?state=dead", "arlo").await;
    let dead = dead.expect(StatusCode::OK)[0].clone();
    assert!(dead["last_error"].as_str().unwrap().contains("customer `C-007` has no valid email address"), "{dead}");
    let id = dead["id"].as_str().unwrap().to_string();

    // Who may not see or resend them: outside finance, and the auditor (who reads only).
    for outsider in ["mia", "sam", "cora", "robot"] {
        api.get("/v1/outbox", outsider).await.expect_error(StatusCode::FORBIDDEN, "missing_role");
    }
    for outsider in ["vera", "mia", "sam"] {
        let answer = api.post_empty(&format!("/v1/outbox/{id}/retry"), outsider).await;
        answer.expect_error(StatusCode::FORBIDDEN, "missing_role");
    }
    api.get("/v1/outbox?state=lost", "arlo").await.expect_error(StatusCode::BAD_REQUEST, "invalid_query");
    // The letters' route resends letters only, not the operators' notifications.
    api.order_at_manager("25000.00", "sam").await;
    let task_notice = api.get("/v1/notifications?state=pending", "ada").await;
    let task_notice = task_notice.expect(StatusCode::OK)[0]["id"].as_str().unwrap().to_string();
    api.post_empty(&format!("/v1/outbox/{task_notice}/retry"), "arlo")
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");

    // The address is put right in the customer master data; the AR clerk sends it again.
    sqlx::query("UPDATE customers SET email = 'payables@c7.example' WHERE id = 'C-007'")
        .execute(ledger.pool())
        .await
        .unwrap();
    api.post_empty(&format!("/v1/outbox/{id}/retry"), "arlo").await.expect(StatusCode::OK);
    api.post_empty(&format!("/v1/outbox/{id}/retry"), "arlo").await.expect_error(StatusCode::CONFLICT, "not_dead");
    assert_eq!(notifier.deliver_due().await.unwrap().delivered, 2, "the letter, and the task's notice");
    let mails = sink.received();
    assert_eq!(mails.iter().map(|m| m.to.join(",")).collect::<Vec<_>>(), ["payables@c7.example"]);
    let listed = api.get("/v1/outbox?state=delivered", "carl").await;
    assert_eq!(listed.expect(StatusCode::OK)[0]["id"], id.as_str());
}

#[tokio::test]
async fn without_a_sub_ledger_the_letters_route_says_so() {
    let Some(api) = Api::new().await else { return };
    api.get("/v1/outbox", "arlo").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    api.get("/v1/outbox", "mia").await.expect_error(StatusCode::FORBIDDEN, "missing_role");
}
