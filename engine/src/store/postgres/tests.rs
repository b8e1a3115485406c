//! Several engine nodes on one database. They run wherever PostgreSQL is reachable at
//! `CLOVERLEAF_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432`); elsewhere they are
//! skipped with a notice, unless `CI` is set.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};
use serde_json::json;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use super::like_pattern;
use crate::runtime::{Engine, Error, Message};
use crate::store::{AnyStore, Store};
use crate::{Event, InstanceId, VirtualClock};
use cloverleaf_testkit::testdb::ScratchDb;

const NODES: &str = r#"process nodes "Nodes" {
  start -> pause
  wait pause { for 1h } -> work
  task work { job "nodes.work" } -> done
  end done "Done"
}"#;

/// Two engine nodes on one fresh database, sharing a virtual clock.
async fn two_nodes() -> Option<(ScratchDb, VirtualClock, Engine<AnyStore>, Engine<AnyStore>)> {
    let db = ScratchDb::postgres().await?;
    let clock = VirtualClock::new(Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap());
    let a = Engine::connect(&db.url(), Arc::new(clock.clone())).await.unwrap();
    let b = Engine::connect(&db.url(), Arc::new(clock.clone())).await.unwrap();
    a.deploy(&[("nodes.flow", NODES)]).await.unwrap();
    Some((db, clock, a, b))
}

async fn count_events(engine: &Engine<AnyStore>, id: &InstanceId, which: fn(&Event) -> bool) -> usize {
    engine.events(id).await.unwrap().iter().filter(|(e, _)| which(e)).count()
}

#[test]
fn job_type_patterns_escape_like_specials() {
    assert_eq!(like_pattern("finance.*"), "finance.%");
    assert_eq!(like_pattern("a_b%c\\*"), "a\\_b\\%c\\\\%");
}

#[test]
fn only_a_fetch_group_no_other_of_its_batch_may_share_a_job_with_learns_from_finding_few() {
    let set = |types: &[&str]| types.iter().map(|t| t.to_string()).collect::<Vec<_>>();
    let (credit, invoice, both, finance) =
        (set(&["credit.check"]), set(&["invoice.issue"]), set(&["credit.check", "invoice.issue"]), set(&["finance.*"]));
    let overlaps = |sets: &[&Vec<String>], group| {
        let sets: Vec<&[String]> = sets.iter().map(|s| s.as_slice()).collect();
        super::fetch::overlaps_another(&sets, group)
    };
    assert!(!overlaps(&[&credit], 0));
    assert!(!overlaps(&[&credit, &invoice], 0));
    assert!(overlaps(&[&credit, &both], 0) && overlaps(&[&credit, &both], 1));
    // A pattern may match any type.
    assert!(overlaps(&[&credit, &finance], 0) && overlaps(&[&credit, &finance], 1));
}

#[tokio::test]
async fn a_database_the_server_lacks_is_created_on_connect() {
    let Some(db) = ScratchDb::postgres().await else { return };
    let name = db.url().rsplit('/').next().unwrap().to_string();
    let admin = db.url().replace(&format!("/{name}"), "/postgres");
    let mut conn = PgConnection::connect(&admin).await.unwrap();
    sqlx::query(&format!("DROP DATABASE \"{name}\"")).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    let store = super::PgStore::connect(&db.url()).await.unwrap();
    let tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM information_schema.tables WHERE table_name = 'instances'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(tables, 1, "created and migrated");
    store.close().await;
    // A second node starting on it finds it there.
    super::PgStore::connect(&db.url()).await.unwrap().close().await;
}

#[tokio::test]
async fn the_store_connects_with_jit_off() {
    let Some(db) = ScratchDb::postgres().await else { return };
    let store = super::PgStore::connect(&db.url()).await.unwrap();
    let jit: String = sqlx::query_scalar("SHOW jit").fetch_one(store.pool()).await.unwrap();
    assert_eq!(jit, "off", "the tools' pool");
    for lender in [&store.read, &store.write] {
        let mut conn = lender.lend().await.unwrap();
        let jit: String = sqlx::query_scalar("SHOW jit").fetch_one(&mut *conn).await.unwrap();
        assert_eq!(jit, "off", "a lent connection");
        conn.release();
    }
    store.close().await;
}

/// A connection the server ended while it was lent is closed, not lent again: the next read
/// gets a new one, whatever the lender's idle check would have said.
#[tokio::test]
async fn a_connection_that_failed_in_use_is_not_lent_again() {
    let Some(db) = ScratchDb::postgres().await else { return };
    let store = super::PgStore::connect(&db.url()).await.unwrap();
    let mut conn = store.read.lend().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *conn).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)").bind(pid).execute(store.pool()).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let alive: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = $1")
            .bind(pid)
            .fetch_one(store.pool())
            .await
            .unwrap();
        if alive == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "backend {pid} still alive 10 s after its termination");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sqlx::query("SELECT 1").execute(&mut *conn).await.expect_err("the server ended the connection");
    drop(conn);
    let read = store.load_instance(&crate::ids::InstanceId::from("nobody")).await;
    assert!(matches!(read, Ok(None)), "a read after the failure: {read:?}");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shorter_timer_claim_hands_a_dead_nodes_timers_over_sooner() {
    let Some((_db, clock, a, b)) = two_nodes().await else { return };
    for _ in 0..5 {
        a.start("nodes", None, json!({})).await.unwrap();
    }
    clock.advance(TimeDelta::hours(2));
    let now = a.now();
    let pg = a.store().as_postgres().unwrap();
    pg.set_timer_claim(TimeDelta::seconds(5));
    assert_eq!(pg.timer_claim(), TimeDelta::seconds(5));
    assert_eq!(a.store().due_timers(now, 1024).await.unwrap().len(), 5);
    assert_eq!(a.store().next_timer().await.unwrap(), Some(now + TimeDelta::seconds(5)));
    // a dies holding them: b waits out 5 s, not the default 20 s.
    clock.advance(TimeDelta::seconds(4));
    assert!(b.store().due_timers(b.now(), 1024).await.unwrap().is_empty());
    clock.advance(TimeDelta::seconds(2));
    assert_eq!(b.fire_due_timers().await.unwrap(), 5);
    // Below a second a claim would run out while its pass fires: it is held to one second.
    pg.set_timer_claim(TimeDelta::zero());
    assert_eq!(pg.timer_claim(), TimeDelta::seconds(1));
    assert_eq!(b.store().as_postgres().unwrap().timer_claim(), super::DEFAULT_TIMER_CLAIM);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_claim_each_timer_and_each_job_once() {
    let Some((_db, clock, a, b)) = two_nodes().await else { return };
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(a.start("nodes", None, json!({})).await.unwrap());
    }
    clock.advance(TimeDelta::hours(2));
    let now = a.now();

    // Both claim at once: every due timer goes to exactly one of them...
    let (ta, tb) = tokio::join!(a.store().due_timers(now, 1024), b.store().due_timers(now, 1024));
    let (ta, tb) = (ta.unwrap(), tb.unwrap());
    let claimed: HashSet<_> = ta.iter().chain(&tb).map(|(timer, _)| timer.clone()).collect();
    assert_eq!((ta.len() + tb.len(), claimed.len()), (20, 20));
    // ... and is left to it for 20 s.
    assert!(b.store().due_timers(now, 1024).await.unwrap().is_empty());
    assert_eq!(a.store().next_timer().await.unwrap(), Some(now + TimeDelta::seconds(20)));

    // The claims run out (as if their node died): both nodes fire, each timer fires once.
    // (Shorter claims are tested in `a_shorter_timer_claim_hands_a_dead_nodes_timers_over_sooner`.)
    clock.advance(TimeDelta::seconds(21));
    let (fa, fb) = tokio::join!(a.fire_due_timers(), b.fire_due_timers());
    assert_eq!(fa.unwrap() + fb.unwrap(), 20);
    for id in &ids {
        assert_eq!(count_events(&a, id, |e| matches!(e, Event::TimerFired { .. })).await, 1);
    }

    // Both fetch at once, a few at a time: every job is locked by one node only.
    let fetch = |engine: Engine<AnyStore>, worker: &'static str| async move {
        let mut got = Vec::new();
        loop {
            let jobs = engine.fetch_and_lock(worker, &["nodes.work"], 3, TimeDelta::minutes(5)).await.unwrap();
            if jobs.is_empty() {
                return got;
            }
            got.extend(jobs);
        }
    };
    let (ja, jb) = tokio::join!(fetch(a.clone(), "wa"), fetch(b.clone(), "wb"));
    let locked: HashSet<_> = ja.iter().chain(&jb).map(|j| j.id.clone()).collect();
    assert_eq!((ja.len() + jb.len(), locked.len()), (20, 20));

    // Each node completes the jobs it holds; the other node's epoch is refused.
    if let Some(job) = jb.first() {
        assert!(matches!(a.complete_job(&job.id, job.epoch + 1, json!({})).await, Err(Error::StaleLock { .. })));
    }
    for (engine, jobs) in [(&a, &ja), (&b, &jb)] {
        for job in jobs {
            engine.complete_job(&job.id, job.epoch, json!({})).await.unwrap();
        }
    }
    for id in &ids {
        assert!(b.instance(id).await.unwrap().status().is_final());
    }
}

/// A node reads due jobs from its floor up (see `floor`): a job that became visible with a
/// claim time further back than the floor's margin (a step's writes that committed late, another
/// node's clock behind this one's) is skipped by the cheap reads, and fetched, never lost, by the
/// next read from the start of the index, at most `FULL_READ_EVERY` later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_committed_below_a_nodes_floor_is_fetched_by_its_next_full_read() {
    let Some((db, clock, a, b)) = two_nodes().await else { return };
    let id = a.start("nodes", None, json!({})).await.unwrap();
    clock.advance(TimeDelta::hours(2));
    assert_eq!(a.fire_due_timers().await.unwrap(), 1);
    let types = ["nodes.work".to_string()];
    // A full read that found every due job (one, of the three wanted) sets the floor.
    let first = a.fetch_and_lock("wa", &["nodes.work"], 3, TimeDelta::minutes(5)).await.unwrap();
    assert_eq!(first.len(), 1);

    // A job whose due time is ten seconds back commits only now.
    let due = crate::store::ts(a.now() - TimeDelta::seconds(10));
    let store = super::PgStore::connect(&db.url()).await.unwrap();
    sqlx::query(
        "INSERT INTO jobs (id, instance_id, node, job_type, input, idempotency_key, retries, attempt, state, due_at) \
         VALUES ('late', $1, 'work', 'nodes.work', '{}', 'k-late', 3, 0, 'ready', $2)",
    )
    .bind(id.as_str())
    .bind(&due)
    .execute(store.pool())
    .await
    .unwrap();

    clock.advance(TimeDelta::seconds(1));
    assert!(!a.has_due_jobs(&types).await.unwrap(), "below the floor");
    assert!(a.fetch_and_lock("wa", &["nodes.work"], 3, TimeDelta::minutes(5)).await.unwrap().is_empty());
    // A node without a floor for these types reads them all...
    assert!(b.has_due_jobs(&types).await.unwrap());
    // ... and so does this one once its full read is due.
    clock.advance(super::floor::FULL_READ_EVERY);
    assert!(a.has_due_jobs(&types).await.unwrap());
    let late = a.fetch_and_lock("wa", &["nodes.work"], 3, TimeDelta::minutes(5)).await.unwrap();
    assert_eq!(late.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), ["late"]);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_raced_by_two_nodes_is_applied_by_one() {
    let Some((_db, _clock, a, b)) = two_nodes().await else { return };
    let mut ids = Vec::new();
    for _ in 0..10 {
        let id = a.start("nodes", None, json!({})).await.unwrap();
        // Both nodes hold the instance at the same version.
        b.instance(&id).await.unwrap();
        ids.push(id);
    }
    let mut set = tokio::task::JoinSet::new();
    for id in &ids {
        for (engine, by) in [(a.clone(), "ann"), (b.clone(), "bob")] {
            let id = id.clone();
            set.spawn(async move { engine.cancel(&id, by).await.is_ok() });
        }
    }
    let won = set.join_all().await.into_iter().filter(|ok| *ok).count();
    assert_eq!(won, ids.len());
    for id in &ids {
        assert_eq!(count_events(&b, id, |e| matches!(e, Event::Cancel { .. })).await, 1);
        assert!(a.verify_history(id).await.unwrap().is_intact());
    }
}

const PAY: &str = r#"process pay "Pay" {
  input { invoice_id: text }
  var received: money = 0
  start -> wait_pay
  receive wait_pay "Wait" { message "payment.received" key invoice_id  out { received: amount } } -> done
  end done "Done"
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_raced_by_its_subscription_on_another_node_is_never_stranded() {
    let Some((_db, _clock, a, b)) = two_nodes().await else { return };
    a.deploy(&[("pay.flow", PAY)]).await.unwrap();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (a, b) = (a.clone(), b.clone());
        set.spawn(async move {
            let message = Message {
                name: "payment.received".into(),
                correlation_key: format!("INV-{i}"),
                payload: json!({"amount": "100.50"}),
                message_id: Some(format!("m-{i}")),
                ttl: TimeDelta::days(1),
            };
            let input = json!({"invoice_id": format!("INV-{i}")});
            let (started, correlated) = tokio::join!(a.start("pay", None, input.clone()), b.correlate(message));
            correlated.unwrap();
            match started {
                Ok(id) => id,
                // The start's subscription found the message buffered by then: the store
                // refused it (`BufferedMessageWaiting`), which `start` reports as contention.
                // Started again, it takes the message.
                Err(Error::Contention(_)) => a.start("pay", None, input).await.unwrap(),
                Err(e) => panic!("{e}"),
            }
        });
    }
    for id in set.join_all().await {
        // Delivered at once, or buffered and taken when the subscription opened: never both
        // a buffered message and a subscription still waiting for it.
        assert!(a.instance(&id).await.unwrap().status().is_final(), "{id} still waits");
    }
}

/// A new instance as a step would write it, opening a subscription for `key` (the guard the
/// engine adds to such a step), nothing else.
fn start_waiting_for(id: &str, key: &str, now: chrono::DateTime<Utc>) -> crate::store::StepWrite {
    use crate::store::{GENESIS_HASH, Guard, InstanceRow, InstanceState, StepWrite};
    StepWrite {
        instance: InstanceRow {
            id: id.into(),
            process_key: "pay".into(),
            process_version: 1,
            status: InstanceState::of(&crate::instance::Status::Running),
            business_key: None,
            parent_id: None,
            parent_call: None,
            state: "{}".into(),
            version: 1,
            history_seq: 0,
            history_hash: GENESIS_HASH.into(),
            at: now,
        },
        expected_version: None,
        guards: vec![Guard::NoBufferedMessage {
            name: "payment.received".into(),
            key: key.into(),
            now,
            except: Vec::new(),
        }],
        consume_messages: Vec::new(),
        record_message: None,
        consume_pending: None,
        jobs: Vec::new(),
        tasks: Vec::new(),
        timers_upsert: Vec::new(),
        timers_delete: Vec::new(),
        subscriptions_insert: Vec::new(),
        subscriptions_delete: Vec::new(),
        incidents_insert: Vec::new(),
        incidents_close: Vec::new(),
        history: None,
        events: Vec::new(),
        children: Vec::new(),
        started: Vec::new(),
        pending: Vec::new(),
        notifications: Vec::new(),
    }
}

/// A batch of steps that open subscriptions, checked together: the one whose message was
/// buffered meanwhile (by another node, after the step was planned) is refused, the others land.
#[tokio::test]
async fn a_step_opening_a_subscription_its_message_already_waits_for_is_refused_in_a_batch() {
    use crate::store::reads::Backend as _;
    use crate::store::{Write, WriteError};
    let Some((_db, _clock, a, _b)) = two_nodes().await else { return };
    let message = Message {
        name: "payment.received".into(),
        correlation_key: "INV-2".into(),
        payload: json!({"amount": "100.50"}),
        message_id: Some("m-2".into()),
        ttl: TimeDelta::days(1),
    };
    a.correlate(message).await.unwrap();
    let now = a.now();
    let batch = ["INV-1", "INV-2", "INV-3"]
        .iter()
        .enumerate()
        .map(|(n, key)| Write::Step(Box::new(start_waiting_for(&format!("w-{n}"), key, now))))
        .collect();
    let results = a.store().commit(batch).await;
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(matches!(results[1], Err(WriteError::BufferedMessageWaiting)), "{results:?}");
    let pool = a.store().as_postgres().unwrap().pool();
    let written: Vec<String> =
        sqlx::query_scalar("SELECT id FROM instances WHERE id LIKE 'w-%' ORDER BY id").fetch_all(pool).await.unwrap();
    assert_eq!(written, ["w-0", "w-2"]);
}

/// Steps that start children, checked in bulk: each written step's children are written with it;
/// a child whose id exists already breaks only the step that names it.
#[tokio::test]
async fn children_of_steps_checked_in_bulk_are_written_with_them_and_never_twice() {
    use crate::store::reads::Backend as _;
    use crate::store::{Write, WriteError};
    let Some((_db, _clock, a, _b)) = two_nodes().await else { return };
    let now = a.now();
    let with_child = |parent: &str, child: &str| {
        let mut step = start_waiting_for(parent, parent, now);
        step.guards.clear();
        let mut row = start_waiting_for(child, child, now).instance;
        row.parent_id = Some(parent.into());
        row.parent_call = Some(child.into());
        step.children.push(row);
        Write::Step(Box::new(step))
    };
    let results = a.store().commit(vec![with_child("p-1", "c-1"), with_child("p-2", "c-2")]).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    // A parent whose child id is taken: the batch fails, and each write alone tells which.
    let results = a.store().commit(vec![with_child("p-3", "c-3"), with_child("p-4", "c-1")]).await;
    assert!(results[0].is_ok(), "{results:?}");
    assert!(matches!(&results[1], Err(WriteError::Store(e)) if e.to_string().contains("c-1")), "{results:?}");
    let pool = a.store().as_postgres().unwrap().pool();
    let rows: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT id, parent_id FROM instances WHERE id LIKE 'p-%' OR id LIKE 'c-%' ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap();
    let expected =
        [("c-1", Some("p-1")), ("c-2", Some("p-2")), ("c-3", Some("p-3")), ("p-1", None), ("p-2", None), ("p-3", None)];
    assert_eq!(rows, expected.map(|(id, parent)| (id.to_string(), parent.map(str::to_string))));
}

/// An owed event (here a parent's cancel of its child) that two nodes apply at once is applied
/// once: the second finds it gone and drops its step, whichever node that is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owed_event_both_nodes_apply_at_once_is_applied_once() {
    let Some((_db, _clock, a, b)) = two_nodes().await else { return };
    let mut ids = Vec::new();
    for n in 0..20 {
        let id = a.start("nodes", None, json!({})).await.unwrap();
        let event = serde_json::to_string(&Event::Cancel { by: "parent p-1".into() }).unwrap();
        sqlx::query("INSERT INTO pending_events (id, instance_id, event) VALUES ($1, $2, $3)")
            .bind(format!("owed-{n}"))
            .bind(id.as_str())
            .bind(event)
            .execute(a.store().as_postgres().unwrap().pool())
            .await
            .unwrap();
        ids.push(id);
    }
    let (ra, rb) = tokio::join!(a.recover(), b.recover());
    ra.unwrap();
    rb.unwrap();
    for id in &ids {
        assert_eq!(count_events(&a, id, |e| matches!(e, Event::Cancel { .. })).await, 1, "{id}");
    }
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pending_events")
        .fetch_one(a.store().as_postgres().unwrap().pool())
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_and_jobs_created_on_one_node_wake_the_other() {
    let Some((_db, clock, a, b)) = two_nodes().await else { return };
    let wakeups = b.store().listen().await.unwrap().unwrap();
    let (mut timers, mut jobs) = (wakeups.timers(), b.job_signal());
    timers.borrow_and_update();
    jobs.borrow_and_update();
    let bound = Duration::from_secs(10);

    a.start("nodes", None, json!({})).await.unwrap();
    tokio::time::timeout(bound, timers.changed()).await.unwrap().unwrap();

    clock.advance(TimeDelta::hours(2));
    assert_eq!(a.fire_due_timers().await.unwrap(), 1);
    tokio::time::timeout(bound, jobs.changed()).await.unwrap().unwrap();
}

const ON_MESSAGE: &str = r#"process on_message "On message" {
  start on message "order.signed" -> work
  task work { job "nodes.work" } -> done
  end done "Done"
}"#;

/// Waits until `version` is what `read` gives, for at most 10 s.
async fn until_version<F, Fut>(what: &str, version: u32, read: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = u32>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen = read().await;
        if seen == version {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: still version {seen}, expected {version}");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A node keeps the latest versions it read, and drops them when another node deploys: what it
/// starts next by message, and the latest version a call activity starts (`latest_version`), is
/// the version deployed last.
#[tokio::test]
async fn a_version_deployed_on_one_node_is_the_one_another_starts_next() {
    let Some((_db, _clock, a, b)) = two_nodes().await else { return };
    a.deploy(&[("on_message.flow", ON_MESSAGE)]).await.unwrap();
    let signed = |id: &str| Message {
        name: "order.signed".into(),
        correlation_key: id.into(),
        payload: json!({}),
        message_id: Some(id.into()),
        ttl: TimeDelta::hours(1),
    };
    let started_version = |engine: Engine<AnyStore>, id: &'static str| async move {
        match engine.correlate(signed(id)).await.unwrap() {
            crate::runtime::Correlation::Delivered { instance } => {
                engine.instance(&instance).await.unwrap().process_version()
            }
            other => panic!("expected a start, got {other:?}"),
        }
    };
    assert_eq!(started_version(b.clone(), "m-1").await, 1);
    assert_eq!(b.latest_version("nodes").await.unwrap(), 1);

    let changed = ON_MESSAGE.replace("\"On message\"", "\"On message, second\"");
    let nodes_changed = NODES.replace("for 1h", "for 2h");
    let deployed = a.deploy(&[("on_message.flow", &changed), ("nodes.flow", &nodes_changed)]).await.unwrap();
    assert!(deployed.iter().all(|d| d.version == 2 && d.created), "{deployed:?}");

    until_version("the latest version of nodes on the other node", 2, || async {
        b.latest_version("nodes").await.unwrap()
    })
    .await;
    assert_eq!(started_version(b.clone(), "m-2").await, 2, "a message start on the other node");
}

/// On a new database, its tables never analyzed, empty or with a few hundred jobs, the plan
/// PostgreSQL caches for each statement that finds a batch's rows by id reads them by key: a plan
/// that scanned the table, or a whole index, would be kept as the table grew, reading every row,
/// dead ones included, for every batch. Only the fetch reads other indexes (in due order).
#[tokio::test]
async fn plans_cached_on_a_new_database_find_a_batchs_rows_by_key() {
    let Some(db) = ScratchDb::postgres().await else { return };
    let store = super::PgStore::connect(&db.url()).await.unwrap();
    let mut conn = store.pool().acquire().await.unwrap();
    sqlx::raw_sql("SET plan_cache_mode = force_generic_plan").execute(&mut *conn).await.unwrap();
    let mut statements: Vec<String> = super::steps::FLUSH.iter().map(|s| s.to_string()).collect();
    statements.extend([
        super::steps::update_instances_sql(),
        super::steps::LOCK_JOBS.to_string(),
        super::steps::LOCK_PENDING.to_string(),
        super::LOCK_INSTANCES.to_string(),
        super::fetch::FETCH_JOBS.to_string(),
    ]);
    for jobs in [0, 300] {
        sqlx::raw_sql(&format!(
            "INSERT INTO jobs (id, instance_id, node, job_type, input, idempotency_key, retries, attempt, state, due_at) \
             SELECT 'j-' || g, 'i-' || g, 'work', 'finance.x', '{{}}', 'k-' || g, 3, 0, \
             CASE WHEN g % 3 = 0 THEN 'ready' ELSE 'done' END, '2026-01-05T09:00:00.000000Z' \
             FROM generate_series(1, {jobs}) g"
        ))
        .execute(&mut *conn)
        .await
        .unwrap();
        for (n, sql) in statements.iter().enumerate() {
            let (types, args) = if sql.contains("$2") { ("text, text", "'[]', '[]'") } else { ("text", "'[]'") };
            let name = format!("batch_{jobs}_{n}");
            sqlx::raw_sql(&format!("PREPARE {name}({types}) AS {sql}")).execute(&mut *conn).await.unwrap();
            let plan: Vec<String> =
                sqlx::query_scalar(&format!("EXPLAIN EXECUTE {name}({args})")).fetch_all(&mut *conn).await.unwrap();
            let plan = plan.join("\n");
            assert!(!plan.contains("Seq Scan"), "with {jobs} jobs: {sql}\n{plan}");
            if *sql != super::fetch::FETCH_JOBS {
                // Every index read is a primary key (a bitmap heap scan follows its bitmap index scan).
                let by_other_index = plan.lines().find(|line| {
                    let index = match (line.split_once("Scan using "), line.split_once("Bitmap Index Scan on ")) {
                        (Some((_, rest)), _) | (None, Some((_, rest))) => rest.split(' ').next(),
                        (None, None) => return false,
                    };
                    !index.is_some_and(|index| index.ends_with("_pkey"))
                });
                assert!(by_other_index.is_none(), "with {jobs} jobs, not by key: {sql}\n{plan}");
            }
        }
    }
}

/// The generic plan PostgreSQL caches for `sql` on `conn` (prepared as `name` with `types`),
/// executed with `args`.
async fn generic_plan(conn: &mut sqlx::PgConnection, name: &str, types: &str, sql: &str, args: &str) -> String {
    sqlx::raw_sql("SET plan_cache_mode = force_generic_plan").execute(&mut *conn).await.unwrap();
    sqlx::raw_sql(&format!("PREPARE {name}({types}) AS {sql}")).execute(&mut *conn).await.unwrap();
    let plan: Vec<String> =
        sqlx::query_scalar(&format!("EXPLAIN EXECUTE {name}({args})")).fetch_all(&mut *conn).await.unwrap();
    plan.join("\n")
}

/// The line of `plan` that reads `index`, with its condition.
fn index_read<'a>(plan: &'a str, index: &str) -> Option<&'a str> {
    let reads = |line: &&str| line.contains("Index Scan") && line.contains(&format!(" using {index} on "));
    let mut lines = plan.lines().skip_while(|line| !reads(line));
    lines.next()?;
    lines.next().filter(|line| line.contains("Index Cond:"))
}

/// Two lookups a busy node makes many times a second, as their plans are cached on a new
/// database: the check for buffered messages that a batch's new subscriptions take looks each
/// (name, key) up by both, not the whole `messages_buffered` index for `state` alone; the check
/// for due jobs, and a fetch of one type, look each type up in `jobs_due` by type and time, not
/// every due job of every type in `jobs_due_at`. Either would read its whole index on each call
/// as the tables grow.
#[tokio::test]
async fn lookups_cached_on_a_new_database_read_their_index_by_key() {
    let Some(db) = ScratchDb::postgres().await else { return };
    let store = super::PgStore::connect(&db.url()).await.unwrap();
    let mut conn = store.pool().acquire().await.unwrap();

    let sql = super::steps::BUFFERED_WAITING;
    let args = "'{order.paid}', '{SO-1}', '{2026-01-05T09:00:00.000000Z}'";
    let plan = generic_plan(&mut conn, "buffered", "text[], text[], text[]", sql, args).await;
    assert!(!plan.contains("Seq Scan") && !plan.contains("Hash"), "{sql}\n{plan}");
    let lookup = index_read(&plan, "messages_buffered").unwrap_or_default();
    assert!(lookup.contains("message_name = ") && lookup.contains("correlation_key = "), "{sql}\n{plan}");

    // Read from now down to the node's floor (see `floor`), by type.
    let sql = crate::store::query::HAS_DUE_JOBS.postgres;
    let args = "'{finance.invoice,credit.check}', '2026-01-05T09:00:00.000000Z', '2026-01-05T08:59:57.000000Z'";
    let plan = generic_plan(&mut conn, "due", "text[], text, text", sql, args).await;
    assert!(!plan.contains("Seq Scan") && !plan.contains("jobs_due_at"), "{sql}\n{plan}");
    assert!(plan.contains("Index Scan Backward using jobs_due "), "read from now: {sql}\n{plan}");
    let lookup = index_read(&plan, "jobs_due").unwrap_or_default();
    assert!(lookup.contains("job_type = ") && lookup.contains("<= ROW(") && lookup.contains(">= $3"), "{sql}\n{plan}");

    // A fetch of one job type, likewise.
    let sql = super::fetch::FETCH_JOBS;
    let groups = r#"'[{"grp": 0, "types": ["credit.check"], "wildcard": false, "now": "2026-01-05T09:00:00.000000Z", "wanted": 4, "since": "2026-01-05T08:59:57.000000Z"}]'"#;
    let fetches =
        r#"'[{"request": 0, "grp": 0, "worker": "w", "lease": "2026-01-05T09:01:00.000000Z", "first": 0, "max": 4}]'"#;
    let plan = generic_plan(&mut conn, "fetch_one_type", "text, text", sql, &format!("{groups}, {fetches}")).await;
    let lookup = index_read(&plan, "jobs_due").unwrap_or_default();
    // The floor ends the read as a plain comparison (as a row comparison only the type would).
    assert!(
        lookup.contains("job_type = ")
            && lookup.contains("<= ROW(")
            && lookup.contains(" >= g")
            && lookup.contains(".since)"),
        "{sql}\n{plan}"
    );
}
