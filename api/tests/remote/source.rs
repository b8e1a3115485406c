//! Each call of the remote source, and the [`SourceError`] each refusal maps to.

use std::time::Duration;

use chrono::TimeDelta;
use cloverleaf_engine::JobId;
use cloverleaf_worker::{FetchRequest, JobSource, SourceError};
use serde_json::json;

use crate::harness::t0;
use crate::server::Server;

fn request(topic: &str, wait: Duration) -> FetchRequest {
    FetchRequest {
        worker_id: "remote-1".into(),
        topics: vec![topic.into()],
        max_jobs: 10,
        lease: TimeDelta::seconds(60),
        wait,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_returns_the_job_created_while_it_waits_and_completes_it() {
    let Some(server) = Server::start().await else { return };
    let source = server.source("robot");
    assert!(source.fetch_and_lock(&request("credit.check", Duration::ZERO)).await.unwrap().is_empty());
    let waiting = tokio::spawn({
        let source = source.clone();
        async move { source.fetch_and_lock(&request("credit.*", Duration::from_secs(60))).await }
    });
    let id = server.start_order("order_approval", "SO-1", "C-7", "20000.00").await;
    // Sooner than the 60 s wait: the server answers as soon as the job exists.
    let jobs = tokio::time::timeout(Duration::from_secs(55), waiting).await.unwrap().unwrap().unwrap();
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!((job.instance_id.as_str(), job.job_type.as_str(), job.epoch), (id.as_str(), "credit.check", 1));
    assert_eq!(job.input["amount"], "20000.00");
    assert_eq!(job.lock_expires_at, t0() + TimeDelta::seconds(60));
    // Handlers' "today" is the server's (virtual) clock, not this machine's.
    assert_eq!(source.now().date_naive(), t0().date_naive());
    assert!(source.now() - t0() < TimeDelta::seconds(10));

    let output = json!({"credit_limit": "500000", "open_ar": "0", "risk": "A"});
    source.complete(&job.id, job.epoch, output.clone()).await.unwrap();
    let tasks = server.engine.tasks(Some(&id.as_str().into())).await.unwrap();
    assert_eq!(tasks[0].node, "manager_approval");
    // Finished: the lock is gone.
    let again = source.complete(&job.id, job.epoch, output).await.unwrap_err();
    assert!(matches!(again, SourceError::StaleLock { epoch: 1, .. }), "{again:?}");
    assert!(again.lock_lost());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_epoch_an_expired_lease_and_an_unknown_job_lose_the_lock() {
    let Some(server) = Server::start().await else { return };
    let source = server.source("robot");
    server.start_order("order_approval", "SO-2", "C-7", "20000.00").await;
    let job = source.fetch_and_lock(&request("credit.check", Duration::ZERO)).await.unwrap().remove(0);
    let output = json!({"credit_limit": "500000", "open_ar": "0", "risk": "A"});

    let stale = source.complete(&job.id, job.epoch + 1, output.clone()).await.unwrap_err();
    assert!(matches!(&stale, SourceError::StaleLock { job: j, epoch } if *j == job.id.0 && *epoch == 2), "{stale:?}");
    let stale = source.extend_lock(&job.id, job.epoch + 1, TimeDelta::seconds(10)).await.unwrap_err();
    assert!(matches!(stale, SourceError::StaleLock { .. }), "{stale:?}");

    let unknown = JobId::from("i-nope-1.job.1");
    let error = source.complete(&unknown, 1, output.clone()).await.unwrap_err();
    assert!(matches!(&error, SourceError::UnknownJob(j) if j == "i-nope-1.job.1"), "{error:?}");
    assert!(matches!(source.fail(&unknown, 1, "boom").await, Err(SourceError::UnknownJob(_))));

    let until = source.extend_lock(&job.id, job.epoch, TimeDelta::minutes(10)).await.unwrap();
    assert_eq!(until, t0() + TimeDelta::minutes(10));
    server.clock.advance(TimeDelta::minutes(11));
    let expired = source.complete(&job.id, job.epoch, output).await.unwrap_err();
    assert!(matches!(expired, SourceError::LeaseExpired { .. }), "{expired:?}");
    assert!(expired.lock_lost());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_business_errors_and_releases_reach_the_engine() {
    let Some(server) = Server::start().await else { return };
    let source = server.source("robot");
    let blocked = server.start_order("order_approval", "SO-3", "C-7", "20000.00").await;
    let job = source.fetch_and_lock(&request("credit.check", Duration::ZERO)).await.unwrap().remove(0);
    source.business_error(&job.id, job.epoch, "customer_blocked").await.unwrap();
    let instance = server.get(&format!("/v1/instances/{blocked}"), "ada").await;
    assert_eq!((instance["status"].as_str(), instance["outcome"].as_str()), (Some("completed"), Some("rejected")));

    server.start_order("order_approval", "SO-4", "C-7", "20000.00").await;
    let job = source.fetch_and_lock(&request("credit.check", Duration::ZERO)).await.unwrap().remove(0);
    source.fail(&job.id, job.epoch, "the credit bureau timed out").await.unwrap();
    assert!(source.fetch_and_lock(&request("credit.check", Duration::ZERO)).await.unwrap().is_empty());
    server.clock.advance(TimeDelta::seconds(30));
    let retry = source.fetch_and_lock(&request("credit.check", Duration::ZERO)).await.unwrap().remove(0);
    assert_eq!((retry.id.as_str(), retry.attempt), (job.id.as_str(), 2));

    // Released: the next fetch takes it (once the server's clock passes the millisecond lease).
    source.release(&retry.id, retry.epoch).await.unwrap();
    server.clock.advance(TimeDelta::milliseconds(2));
    let again = source.fetch_and_lock(&request("credit.check", Duration::ZERO)).await.unwrap().remove(0);
    assert_eq!((again.id.as_str(), again.epoch), (job.id.as_str(), retry.epoch + 1));

    // An output the process cannot read is refused, not lost.
    let refused = source.complete(&again.id, again.epoch, json!({"credit_limit": "plenty"})).await.unwrap_err();
    assert!(matches!(&refused, SourceError::Refused(m) if m.contains("invalid_output")), "{refused:?}");
    assert!(!refused.lock_lost());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_refused_with_the_servers_words_and_a_dead_server_is_unavailable() {
    let Some(server) = Server::start().await else { return };
    server.source("robot").check("remote-1").await.unwrap();
    let wrong = cloverleaf::remote::RemoteSource::new(&server.url(), "not-a-token").unwrap();
    assert!(matches!(wrong.check("remote-1").await, Err(SourceError::Refused(_))));
    let error = wrong.fetch_and_lock(&request("credit.check", Duration::ZERO)).await.unwrap_err();
    assert!(matches!(&error, SourceError::Refused(m) if m.contains("unknown token") && m.contains("401")), "{error:?}");
    // A valid token without the worker role.
    let error = server.source("ada").fetch_and_lock(&request("credit.check", Duration::ZERO)).await.unwrap_err();
    assert!(matches!(&error, SourceError::Refused(m) if m.contains("403") && m.contains("missing_role")), "{error:?}");
    let error = server.source("ada").complete(&JobId::from("i-x-1.job.1"), 1, json!({})).await.unwrap_err();
    assert!(matches!(error, SourceError::Refused(_)), "{error:?}");
    let url = server.url();
    server.stop().await;

    // Nobody listens any more: the worker may try again later.
    let gone = cloverleaf::remote::RemoteSource::new(&url, "token-robot").unwrap();
    let error = gone.fetch_and_lock(&request("credit.check", Duration::ZERO)).await.unwrap_err();
    assert!(matches!(error, SourceError::Unavailable(_)), "{error:?}");
    assert!(matches!(gone.check("remote-1").await, Err(SourceError::Unavailable(_))));
    let error = gone.complete(&JobId::from("i-x-1.job.1"), 1, json!({})).await.unwrap_err();
    assert!(matches!(error, SourceError::Unavailable(_)), "{error:?}");
}
