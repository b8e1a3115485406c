//! The store's listings and reports ([`Queries`]) after a small workload: every query answers
//! the same on both backends, so the expected values below are exact.

use chrono::TimeDelta;
use cloverleaf_engine::InstanceId;
use cloverleaf_engine::store::query::{Cycle, GroupCount};
use cloverleaf_engine::store::{JobState, Queries, Store};
use serde_json::json;

use crate::harness::{Env, completed, roles, t0};

const REVIEW: &str = r#"process review "Review" {
  input { who: user }
  var ok: bool = false
  start -> approve
  approval approve "Review" { role sales.manager, finance.cfo  form { ok: bool }  due 1h } -> done
  end done "Done"
}"#;

const PERSONAL: &str = r#"process personal "Personal" {
  input { who: user }
  var ok: bool = false
  start -> approve
  approval approve "Personal" { assignee who  form { ok: bool }  due 2h } -> done
  end done "Done"
}"#;

const WORK: &str = r#"process work "Work" {
  start -> pause
  wait pause { for 1h } -> act
  task act { job "qa.work"  retry 0 } -> done
  end done "Done"
}"#;

fn group(labels: &[&str], count: i64) -> GroupCount {
    GroupCount { labels: labels.iter().map(|l| l.to_string()).collect(), count }
}

/// What the workload left behind, by name.
struct Workload {
    env: Env,
    /// Reviews: completed on time, open past its due time, completed late, cancelled.
    r1: InstanceId,
    r2: InstanceId,
    r3: InstanceId,
    r4: InstanceId,
    /// A personal task, open past its due time.
    p1: InstanceId,
    /// Work: its job's lease ran out; its job raised an incident; its timer is late.
    w1: InstanceId,
    w2: InstanceId,
    w3: InstanceId,
}

impl Workload {
    fn all(&self) -> [&InstanceId; 8] {
        [&self.r1, &self.r2, &self.r3, &self.r4, &self.p1, &self.w1, &self.w2, &self.w3]
    }
}

async fn review_task(env: &Env, id: &InstanceId) -> cloverleaf_engine::TaskId {
    env.engine.tasks(Some(id)).await.unwrap().remove(0).id
}

/// Runs the workload; ends at t0 + 3h05m.
async fn workload() -> Option<Workload> {
    let env = Env::new().await?;
    let roles = roles();
    let e = &env.engine;
    e.deploy(&[("roles.flow", &roles), ("review.flow", REVIEW), ("personal.flow", PERSONAL), ("work.flow", WORK)])
        .await
        .unwrap();
    let review_v2 = REVIEW.replace("\"Review\" {", "\"Review the request\" {");
    e.deploy(&[("roles.flow", &roles), ("review.flow", &review_v2)]).await.unwrap();

    let who = json!({"who": "ann"});
    let r1 = e.start("review", Some("R-1"), who.clone()).await.unwrap();
    env.advance(TimeDelta::minutes(1));
    let r2 = e.start("review", Some("R-2"), who.clone()).await.unwrap();
    env.advance(TimeDelta::minutes(1));
    let r3 = e.start("review", Some("R-3"), who.clone()).await.unwrap();
    let p1 = e.start("personal", None, who.clone()).await.unwrap();
    let w1 = e.start("work", None, json!({})).await.unwrap();
    let w2 = e.start("work", None, json!({})).await.unwrap();

    // t0+30m: the first review is done on time.
    env.advance(TimeDelta::minutes(28));
    e.complete_task(&review_task(&env, &r1).await, "max", &["sales.manager"], json!({"ok": true})).await.unwrap();

    // t0+1h05m: both work timers fire (and the due times of the two open reviews); one job is
    // held, the other fails into an incident.
    env.advance(TimeDelta::minutes(35));
    assert_eq!(e.fire_due_timers().await.unwrap(), 4);
    let w3 = e.start("work", None, json!({})).await.unwrap();
    assert!(e.has_due_jobs(&["qa.work".into()]).await.unwrap());
    let jobs = e.fetch_and_lock("w1", &["qa.work"], 10, TimeDelta::seconds(60)).await.unwrap();
    assert_eq!(jobs.len(), 2);
    assert!(!e.has_due_jobs(&["qa.work".into()]).await.unwrap());
    let failing = jobs.iter().find(|j| j.instance_id == w2).unwrap();
    e.fail_job(&failing.id, failing.epoch, "the ledger is closed").await.unwrap();

    // t0+3h05m: the held job's lease ran out, the third timer is late; a review completes late
    // and another is cancelled.
    env.advance(TimeDelta::hours(2));
    e.complete_task(&review_task(&env, &r3).await, "max", &["sales.manager"], json!({"ok": false})).await.unwrap();
    let r4 = e.start("review", Some("R-4"), who).await.unwrap();
    e.cancel(&r4, "ops").await.unwrap();
    Some(Workload { env, r1, r2, r3, r4, p1, w1, w2, w3 })
}

#[tokio::test]
async fn deployments_are_listed_by_key_with_their_versions_and_sources() {
    let Some(w) = workload().await else { return };
    let store = w.env.engine.store();
    let listed = store.deployments().await.unwrap();
    let keys: Vec<(&str, u32, u32)> = listed.iter().map(|d| (d.key.as_str(), d.version, d.versions)).collect();
    assert_eq!(keys, [("personal", 1, 1), ("review", 2, 2), ("work", 1, 1)]);
    assert!(listed.iter().all(|d| d.deployed_at == t0() && d.hash.len() == 64));

    let versions = store.deployment_versions("review").await.unwrap();
    assert_eq!(versions.iter().map(|v| v.version).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(versions[1].hash, listed[1].hash);
    assert!(store.deployment_versions("nope").await.unwrap().is_empty());

    let sources = store.latest_sources().await.unwrap();
    assert_eq!(sources.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["personal", "review", "work"]);
    assert!(sources[1].1.contains("Review the request"), "{}", sources[1].1);
}

#[tokio::test]
async fn instances_are_listed_newest_first_filtered_and_paged() {
    let Some(w) = workload().await else { return };
    let store = w.env.engine.store();
    let all = store.instances(None, None, None, 100, 0).await.unwrap();
    // Newest first; instances started at the same instant by id, descending.
    let mut expected: Vec<(chrono::DateTime<chrono::Utc>, InstanceId)> =
        all.iter().map(|i| (i.created_at, i.id.clone())).collect();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(all.iter().map(|i| (i.created_at, i.id.clone())).collect::<Vec<_>>(), expected);
    let mut ids: Vec<&str> = all.iter().map(|i| i.id.as_str()).collect();
    ids.sort_unstable();
    let mut started: Vec<&str> = w.all().iter().map(|i| i.as_str()).collect();
    started.sort_unstable();
    assert_eq!(ids, started);
    assert_eq!(all[0].id, w.r4);
    assert_eq!(all[1].id, w.w3);

    let running_reviews = store.instances(Some("review"), Some("running"), None, 100, 0).await.unwrap();
    assert_eq!(running_reviews.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), [w.r2.as_str()]);
    let by_key = store.instances(None, None, Some("R-3"), 100, 0).await.unwrap();
    assert_eq!(
        by_key.iter().map(|i| (i.id.as_str(), i.status.as_str())).collect::<Vec<_>>(),
        [(w.r3.as_str(), "completed")]
    );
    let page = store.instances(Some("work"), None, None, 2, 1).await.unwrap();
    let work: Vec<&str> = all.iter().filter(|i| i.process_key == "work").map(|i| i.id.as_str()).collect();
    assert_eq!(page.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), work[1..3]);
    assert!(store.instances(None, None, None, -1, 0).await.unwrap().is_empty());
    assert_eq!(store.instances(None, None, None, 100, -5).await.unwrap(), all);

    let one = store.instance_summary(w.r1.as_str()).await.unwrap().unwrap();
    assert_eq!(
        (one.process_key.as_str(), one.process_version, one.status.as_str(), one.business_key.as_deref()),
        ("review", 2, "completed", Some("R-1"))
    );
    assert_eq!((one.created_at, one.updated_at, one.parent_id), (t0(), t0() + TimeDelta::minutes(30), None));
    assert_eq!(store.instance_summary("nope").await.unwrap(), None);
}

#[tokio::test]
async fn counts_by_process_status_and_job_state() {
    let Some(w) = workload().await else { return };
    let store = w.env.engine.store();
    let now = w.env.engine.now();
    assert_eq!(
        store.instance_counts().await.unwrap(),
        [
            group(&["personal", "running"], 1),
            group(&["review", "cancelled"], 1),
            group(&["review", "completed"], 2),
            group(&["review", "running"], 1),
            group(&["work", "running"], 3),
        ]
    );
    assert_eq!(
        store.job_counts(now).await.unwrap(),
        [group(&["qa.work", "expired"], 1), group(&["qa.work", "incident"], 1)]
    );
    // Before the lease ran out the held job counts as locked.
    let held = now - TimeDelta::hours(2);
    assert_eq!(
        store.job_counts(held).await.unwrap(),
        [group(&["qa.work", "incident"], 1), group(&["qa.work", "locked"], 1)]
    );
}

#[tokio::test]
async fn due_jobs_are_seen_by_exact_type_and_by_pattern_with_specials_matching_literally() {
    let Some(w) = workload().await else { return };
    let store = w.env.engine.store();
    let now = w.env.engine.now();
    let due = |types: &[&str]| {
        let types: Vec<String> = types.iter().map(|t| t.to_string()).collect();
        async move { store.has_due_jobs(&types, now).await.unwrap() }
    };
    assert!(due(&["qa.work"]).await);
    assert!(due(&["other", "qa.work"]).await);
    assert!(due(&["qa.*"]).await);
    assert!(due(&["*"]).await);
    assert!(!due(&["other"]).await);
    assert!(!due(&[]).await);
    assert!(!due(&["QA.*"]).await);
    // `_`, `%` (LIKE) and `?`, `[` (GLOB) are no wildcards.
    assert!(!due(&["qa_work*"]).await);
    assert!(!due(&["qa%"]).await);
    assert!(!due(&["qa?work*"]).await);
    assert!(!due(&["[q]a.*"]).await);
    // An hour before the lease ran out nothing was due.
    assert!(!store.has_due_jobs(&["qa.*".into()], now - TimeDelta::hours(2)).await.unwrap());
    assert!(w.env.engine.has_due_jobs(&["qa.work".into()]).await.unwrap());
}

#[tokio::test]
async fn timers_tasks_and_incidents_are_reported() {
    let Some(w) = workload().await else { return };
    let store = w.env.engine.store();
    let now = w.env.engine.now();
    // Left: p1's due time (t0+2h02m) and w3's wait (t0+2h05m).
    let p1_due = t0() + TimeDelta::minutes(122);

    let stats = store.timer_stats(now, now - TimeDelta::minutes(10)).await.unwrap();
    assert_eq!((stats.pending, stats.due, stats.late, stats.oldest_due), (2, 2, 2, Some(p1_due)));
    let stats = store.timer_stats(now, t0() + TimeDelta::minutes(123)).await.unwrap();
    assert_eq!((stats.due, stats.late), (2, 1));
    let early = store.timer_stats(t0(), t0()).await.unwrap();
    assert_eq!((early.pending, early.due, early.late, early.oldest_due), (2, 0, 0, None));

    // r2's review (two roles) and p1's personal task are open, both past their due time.
    assert_eq!(
        store.open_tasks_by_role(None, now).await.unwrap(),
        [
            (group(&["personal", "(assigned)"], 1), 1),
            (group(&["review", "finance.cfo"], 1), 1),
            (group(&["review", "sales.manager"], 1), 1),
        ]
    );
    assert_eq!(
        store.open_tasks_by_role(Some("personal"), t0()).await.unwrap(),
        [(group(&["personal", "(assigned)"], 1), 0)]
    );
    assert!(store.open_tasks_by_role(Some("work"), now).await.unwrap().is_empty());

    // r2 is open past its due time, r3 was completed after it, p1 is open past it; r1 was on time.
    assert_eq!(store.sla_breaches(None, now).await.unwrap(), [group(&["personal"], 1), group(&["review"], 2)]);
    assert_eq!(
        store.sla_breaches(Some("review"), t0() + TimeDelta::minutes(30)).await.unwrap(),
        [group(&["review"], 1)]
    );

    let incidents = store.incidents(false, None).await.unwrap();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    let incident = &incidents[0];
    assert_eq!(
        (incident.instance_id.as_str(), incident.process_key.as_str(), incident.node.as_str(), incident.state.as_str()),
        (w.w2.as_str(), "work", "act", "open")
    );
    assert_eq!(
        (incident.message.as_str(), incident.raised_at),
        ("job `qa.work` failed once, no retries left: the ledger is closed", t0() + TimeDelta::minutes(65))
    );
    assert!(incident.job_id.is_some());
    assert_eq!(store.incidents(true, Some(w.w2.as_str())).await.unwrap(), incidents);
    assert!(store.incidents(true, Some(w.w1.as_str())).await.unwrap().is_empty());
    assert_eq!(store.open_incident_counts().await.unwrap(), [group(&["work"], 1)]);
}

#[tokio::test]
async fn cycles_events_and_history_heads_match_the_instances() {
    let Some(w) = workload().await else { return };
    let engine = &w.env.engine;
    let store = engine.store();
    assert_eq!(
        store.cycles("review").await.unwrap(),
        [
            Cycle { started: t0(), ended: t0() + TimeDelta::minutes(30) },
            Cycle { started: t0() + TimeDelta::minutes(2), ended: t0() + TimeDelta::minutes(185) },
        ]
    );
    assert!(store.cycles("work").await.unwrap().is_empty());

    let mut events = 0;
    for id in w.all() {
        events += store.events(id).await.unwrap().len();
    }
    assert_eq!(store.event_count().await.unwrap(), i64::try_from(events).unwrap());
    store.ping().await.unwrap();

    let heads = store.history_heads(None, 100).await.unwrap();
    let mut ids: Vec<&str> = w.all().iter().map(|i| i.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(heads.iter().map(|(id, _, _)| id.as_str()).collect::<Vec<_>>(), ids);
    for (id, seq, hash) in &heads {
        let last = store.history(&id.as_str().into()).await.unwrap().pop().unwrap();
        assert_eq!((&last.seq, &last.hash), (seq, hash));
    }
    let page = store.history_heads(Some(ids[2]), 3).await.unwrap();
    assert_eq!(page.iter().map(|(id, _, _)| id.as_str()).collect::<Vec<_>>(), ids[3..6]);

    // A full audit in pages of three.
    let (mut after, mut checked) = (None, 0);
    loop {
        let page = engine.verify_histories(after.as_ref(), 3).await.unwrap();
        let Some((last, _)) = page.last() else { break };
        assert!(page.iter().all(|(_, check)| check.is_intact()), "{page:?}");
        checked += page.len();
        after = Some(last.clone());
    }
    assert_eq!(checked, 8);
    assert_eq!(w.env.status(&w.r1).await, completed("done"));
}

#[tokio::test]
async fn a_failed_attempt_waiting_for_its_retry_is_ready_later_not_due_now() {
    const RETRIED: &str = r#"process retried "Retried" {
  start -> act
  task act { job "qa.retried"  retry 2 backoff 30s } -> done
  end done "Done"
}"#;
    let Some(env) = Env::new().await else { return };
    let e = &env.engine;
    e.deploy(&[("retried.flow", RETRIED)]).await.unwrap();
    let types = ["qa.retried".to_string()];
    assert_eq!(e.store().next_ready_job(&types).await.unwrap(), None, "no job yet");
    e.start("retried", None, json!({})).await.unwrap();
    let now = e.now();
    assert_eq!(e.store().next_ready_job(&types).await.unwrap(), Some(now));
    assert_eq!(e.store().next_ready_job(&["other".to_string()]).await.unwrap(), None);

    let jobs = e.fetch_and_lock("w1", &["qa.retried"], 1, TimeDelta::seconds(60)).await.unwrap();
    assert_eq!(e.store().next_ready_job(&types).await.unwrap(), None, "a locked job is not ready");
    e.fail_job(&jobs[0].id, jobs[0].epoch, "the ledger is busy").await.unwrap();
    let retry = e.store().next_ready_job(&types).await.unwrap().expect("the job waits for its retry");
    assert!(retry > now, "the retry waits for its backoff: {retry} after {now}");
    assert!(!e.has_due_jobs(&types).await.unwrap(), "nothing is due before the backoff ends");
    env.advance(retry - now);
    assert!(e.has_due_jobs(&types).await.unwrap(), "the retry is due once the backoff has passed");
}

#[tokio::test]
async fn open_jobs_list_what_waits_for_a_worker_and_buffered_messages_what_waits_for_an_instance() {
    let Some(env) = Env::reference().await else { return };
    let store = env.engine.store();
    assert!(store.open_jobs(None).await.unwrap().is_empty());
    let early = cloverleaf_engine::runtime::Message {
        name: "shipment.dispatched".into(),
        correlation_key: "SO-9".into(),
        payload: json!({"shipment_id": "SH-9"}),
        message_id: None,
        ttl: TimeDelta::hours(1),
    };
    env.engine.correlate(early).await.unwrap();
    assert_eq!(
        store.buffered_messages(env.engine.now()).await.unwrap(),
        [("shipment.dispatched".into(), "SO-9".into())]
    );
    // Past its time to live it is no longer listed.
    assert!(store.buffered_messages(env.engine.now() + TimeDelta::hours(2)).await.unwrap().is_empty());

    let order = json!({"order_id": "SO-1", "customer_id": "C-7", "amount": "50.00", "requested_by": "rita"});
    let id = env.engine.start("order_approval", Some("SO-1"), order).await.unwrap();
    let jobs = store.open_jobs(None).await.unwrap();
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(
        (job.instance_id.as_str(), job.node.as_str(), job.job_type.as_str()),
        (id.as_str(), "check_credit", "credit.check")
    );
    assert_eq!((job.attempt, job.state, job.due_at), (1, JobState::Ready, t0()));
    assert_eq!(job.input, json!({"order_id": "SO-1", "customer_id": "C-7", "amount": "50.00"}));
    assert_eq!(store.open_jobs(Some(id.as_str())).await.unwrap(), jobs);
    assert!(store.open_jobs(Some("someone-else")).await.unwrap().is_empty());

    // Held by a worker it is still open; a failed attempt waits for its retry; done, it is gone.
    let locked = env.one_job("credit.check").await;
    assert_eq!(store.open_jobs(None).await.unwrap()[0].state, JobState::Locked);
    env.engine.fail_job(&locked.id, locked.epoch, "bureau down").await.unwrap();
    let retry = &store.open_jobs(None).await.unwrap()[0];
    assert_eq!((retry.attempt, retry.state, retry.due_at), (2, JobState::Ready, t0() + TimeDelta::seconds(30)));
    env.advance(TimeDelta::seconds(30));
    let locked = env.one_job("credit.check").await;
    let answer = json!({"credit_limit": "1000.00", "open_ar": "0", "risk": "A"});
    env.engine.complete_job(&locked.id, locked.epoch, answer).await.unwrap();
    assert!(store.open_jobs(None).await.unwrap().is_empty());
}
