//! Invoices issued in batches (one transaction numbering several): on two nodes at once the
//! numbers stay gapless and unique and each job is invoiced once; a refusal in a batch leaves the
//! others issued and takes no number; a batch that fails writes nothing, and its retry issues
//! each invoice once.
//!
//! A batch is made deterministic by pausing the ledger's invoicing ([`Ledger::pause_invoices`]):
//! the invoice taken first waits in its batch, and the others queue behind it
//! ([`Ledger::invoice_queue`]) until invoicing resumes, then go in one batch.

use std::collections::{BTreeMap, BTreeSet};

use cloverleaf_finance::ledger::InvoiceIssued;
use cloverleaf_finance::{Error, Ledger};
use cloverleaf_testkit::eventually;
use cloverleaf_testkit::testdb::Backend;
use sqlx::Row;
use tokio::task::JoinHandle;

use crate::harness::{dec, invoice_numbers, t0, two_nodes, within_deadline};

fn spawn_issue(
    ledger: &Ledger,
    key: &str,
    order: &str,
    customer: &str,
    amount: &str,
) -> JoinHandle<Result<InvoiceIssued, Error>> {
    let (ledger, key, order, customer, amount) =
        (ledger.clone(), key.to_string(), order.to_string(), customer.to_string(), dec(amount));
    tokio::spawn(async move { ledger.issue_invoice(&key, t0(), &order, &customer, amount).await })
}

async fn count(ledger: &Ledger, sql: &str) -> i64 {
    sqlx::query(sql).fetch_one(ledger.pool()).await.unwrap().get(0)
}

/// Pauses `ledger`'s invoicing, issues `first` (whose batch then waits), then queues `rest`
/// behind it and waits until all of them wait for the next batch; resumes. Returns the calls,
/// `first`'s first.
async fn one_batch(
    ledger: &Ledger,
    first: (&str, &str, &str, &str),
    rest: &[(String, String, String, String)],
) -> Vec<JoinHandle<Result<InvoiceIssued, Error>>> {
    let paused = ledger.pause_invoices().await;
    let mut calls = vec![spawn_issue(ledger, first.0, first.1, first.2, first.3)];
    eventually("the first invoice is taken into a batch", || async {
        (ledger.invoice_queue().issuing == 1).then_some(())
    })
    .await;
    for (key, order, customer, amount) in rest {
        calls.push(spawn_issue(ledger, key, order, customer, amount));
    }
    eventually("the others wait for the next batch", || async {
        (ledger.invoice_queue().waiting == rest.len()).then_some(())
    })
    .await;
    assert!(!calls[0].is_finished(), "the first invoice went ahead of the pause");
    drop(paused);
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refusal_in_a_batch_leaves_the_others_issued_and_takes_no_number() {
    let Some((_db, a, b)) = two_nodes().await else { return };
    // Issued before: a replay of its key, and an order invoiced already under another key, both
    // answer with this invoice.
    let before = a.issue_invoice("issue-before", t0(), "SO-B", "C-002", dec("80.00")).await.unwrap();
    assert_eq!(before.invoice_number, "2026-000001");

    let mut rest: Vec<(String, String, String, String)> = Vec::new();
    for n in 0..10 {
        rest.push((format!("issue-{n}"), format!("SO-{n}"), format!("C-{:03}", 2 + n % 5), format!("{}.00", 100 + n)));
    }
    rest.insert(3, ("issue-unknown".into(), "SO-U".into(), "C-999".into(), "50.00".into()));
    rest.insert(6, ("issue-fine".into(), "SO-F".into(), "C-003".into(), "50.005".into()));
    rest.push(("issue-before".into(), "SO-B".into(), "C-002".into(), "80.00".into()));
    rest.push(("issue-again".into(), "SO-B".into(), "C-002".into(), "80.00".into()));
    rest.push(("issue-wrong".into(), "SO-B".into(), "C-004".into(), "80.00".into()));
    let calls = one_batch(&b, ("issue-first", "SO-FIRST", "C-001", "10.00"), &rest).await;

    let mut results = Vec::new();
    for call in calls {
        results.push(within_deadline("an invoice", call).await.unwrap());
    }
    let first = results.remove(0).unwrap();
    assert_eq!(first.invoice_number, "2026-000002");
    let by_key: BTreeMap<&str, &Result<InvoiceIssued, Error>> =
        rest.iter().map(|r| r.0.as_str()).zip(results.iter()).collect();
    assert!(
        matches!(by_key["issue-unknown"], Err(Error::InvoiceData(m)) if m.contains("C-999 is not on file")),
        "{:?}",
        by_key["issue-unknown"]
    );
    assert!(matches!(by_key["issue-fine"], Err(Error::InvoiceData(m)) if m.contains("finer than a cent")));
    assert_eq!(by_key["issue-before"].as_ref().unwrap(), &before, "a replay answers with the first output");
    assert_eq!(by_key["issue-again"].as_ref().unwrap(), &before, "an order is invoiced once");
    assert!(matches!(by_key["issue-wrong"], Err(Error::InvoiceData(m)) if m.contains("invoiced to C-002")));

    // The ten new invoices of the batch took the ten numbers after the first's, one each.
    let numbers: BTreeSet<String> =
        (0..10).map(|n| by_key[format!("issue-{n}").as_str()].as_ref().unwrap().invoice_number.clone()).collect();
    let expected: BTreeSet<String> = (3..=12).map(|n| format!("2026-{n:06}")).collect();
    assert_eq!(numbers, expected);
    let all = invoice_numbers(&a, None).await;
    assert_eq!(all, (1..=12).map(|n| format!("2026-{n:06}")).collect::<Vec<_>>(), "gapless, nothing for a refusal");

    // Each answered key is recorded once; a refused one is not (its retry is judged again).
    let recorded = count(&a, "SELECT count(*) FROM idempotency_keys WHERE job_type = 'invoice.issue'").await;
    assert_eq!(recorded, 1 + 1 + 10 + 1, "before, first, ten new, issue-again");
    let unknown = count(&a, "SELECT count(*) FROM idempotency_keys WHERE key IN ('issue-unknown', 'issue-fine')").await;
    assert_eq!(unknown, 0);
    assert_eq!(
        count(&a, "SELECT count(*) FROM orders WHERE id IN ('SO-U', 'SO-F')").await,
        0,
        "refused: nothing recorded"
    );
    assert!(a.trial_balance().await.unwrap().is_balanced());
    a.close().await;
    b.close().await;
}

/// A trigger that fails every journal line written while `fail_batches` holds a row: a failure
/// in the middle of a batch, after its invoices and numbers were written.
async fn install_failure(ledger: &Ledger, backend: Backend) {
    let statements: &[&str] = match backend {
        Backend::Postgres => &[
            "CREATE TABLE fail_batches (on_purpose INTEGER)",
            "CREATE FUNCTION fail_batch() RETURNS trigger AS $$ BEGIN \
             IF EXISTS (SELECT 1 FROM fail_batches) THEN RAISE EXCEPTION 'failed on purpose'; END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER fail_batch BEFORE INSERT ON journal_lines FOR EACH ROW EXECUTE FUNCTION fail_batch()",
            "INSERT INTO fail_batches VALUES (1)",
        ],
        _ => &[
            "CREATE TABLE fail_batches (on_purpose INTEGER)",
            "CREATE TRIGGER fail_batch BEFORE INSERT ON journal_lines WHEN EXISTS (SELECT 1 FROM fail_batches) \
             BEGIN SELECT RAISE(ABORT, 'failed on purpose'); END",
            "INSERT INTO fail_batches VALUES (1)",
        ],
    };
    for sql in statements {
        sqlx::query(sql).execute(ledger.pool()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_that_fails_midway_writes_nothing_and_its_retry_issues_each_invoice_once() {
    let Some((db, a, b)) = two_nodes().await else { return };
    install_failure(&a, db.backend()).await;
    let rest: Vec<(String, String, String, String)> = (0..8)
        .map(|n| (format!("issue-{n}"), format!("SO-{n}"), format!("C-{:03}", 2 + n % 4), format!("{}.00", 200 + n)))
        .collect();
    let calls = one_batch(&b, ("issue-first", "SO-FIRST", "C-001", "10.00"), &rest).await;
    for call in calls {
        let result = within_deadline("an invoice", call).await.unwrap();
        assert!(
            matches!(&result, Err(Error::Retry(m)) if m.contains("failed on purpose")),
            "every caller of a failed batch is told to try again: {result:?}"
        );
    }
    for sql in [
        "SELECT count(*) FROM invoices WHERE order_id IS NOT NULL",
        "SELECT count(*) FROM idempotency_keys",
        "SELECT count(*) FROM journal_entries WHERE document LIKE 'INV-2026-%'",
        "SELECT count(*) FROM orders WHERE id LIKE 'SO-%'",
    ] {
        assert_eq!(count(&a, sql).await, 0, "{sql}: the failed batch wrote nothing");
    }

    // The retries (the worker's, on either node), twice each: one invoice per job, gapless.
    sqlx::query("DELETE FROM fail_batches").execute(a.pool()).await.unwrap();
    let mut retries = Vec::new();
    let all: Vec<(String, String, String, String)> =
        std::iter::once(("issue-first".into(), "SO-FIRST".into(), "C-001".into(), "10.00".into()))
            .chain(rest)
            .collect();
    for (k, (key, order, customer, amount)) in all.iter().enumerate() {
        for node in [&a, &b] {
            retries.push((k, spawn_issue(node, key, order, customer, amount)));
        }
    }
    let mut numbers: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for (k, call) in retries {
        let issued = within_deadline("a retried invoice", call).await.unwrap().unwrap();
        numbers.entry(k).or_default().insert(issued.invoice_number);
    }
    assert!(numbers.values().all(|n| n.len() == 1), "both deliveries of a job answer alike: {numbers:?}");
    assert_eq!(invoice_numbers(&a, None).await, (1..=9).map(|n| format!("2026-{n:06}")).collect::<Vec<_>>());
    assert!(a.trial_balance().await.unwrap().is_balanced());
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_invoices_on_two_nodes_are_numbered_gaplessly_once_each_with_refusals_among_them() {
    let Some((_db, a, b)) = two_nodes().await else { return };
    let nodes = [a.clone(), b.clone()];
    // 240 jobs for 12 customers from both nodes at once, every third delivered twice (to both
    // nodes, or twice to one), every twentieth refused (an unknown customer).
    const JOBS: usize = 240;
    let mut calls = Vec::new();
    for n in 0..JOBS {
        let customer = if n % 20 == 7 { "C-999".to_string() } else { format!("C-{:03}", 1 + n % 12) };
        let amount = format!("{}.{:02}", 100 + n, n % 100);
        let deliveries: &[usize] = match n % 6 {
            0 => &[0, 1],
            3 => &[n % 2, n % 2],
            _ => &[n % 2],
        };
        for &d in deliveries {
            calls.push((n, spawn_issue(&nodes[d], &format!("issue-{n}"), &format!("SO-{n}"), &customer, &amount)));
        }
    }
    let mut by_job: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    let mut refused = 0;
    for (n, call) in calls {
        match within_deadline("an invoice", call).await.unwrap() {
            Ok(issued) => {
                by_job.entry(n).or_default().insert(issued.invoice_number);
            }
            Err(Error::InvoiceData(_)) if n % 20 == 7 => refused += 1,
            Err(e) => panic!("job {n}: {e}"),
        }
    }
    let refused_jobs = (0..JOBS).filter(|n| n % 20 == 7).count();
    assert!(refused >= refused_jobs, "every delivery of a refused job is refused");
    assert_eq!(by_job.len(), JOBS - refused_jobs);
    assert!(by_job.values().all(|n| n.len() == 1), "a job delivered twice answers one invoice: {by_job:?}");
    let issued = JOBS - refused_jobs;
    let numbers = invoice_numbers(&a, None).await;
    assert_eq!(numbers, (1..=issued).map(|n| format!("2026-{n:06}")).collect::<Vec<_>>(), "gapless and unique");
    let entries =
        count(&a, "SELECT count(*) FROM journal_entries WHERE kind = 'invoice' AND document LIKE 'INV-2026-%'").await;
    assert_eq!(entries, issued as i64, "one posting per invoice");
    let tb = b.trial_balance().await.unwrap();
    assert!(tb.is_balanced() && tb.difference().is_zero(), "{tb:#?}");
    a.close().await;
    b.close().await;
}

/// How many connections of the ledgers' invoice batches are open on `ledger`'s database.
async fn batch_connections(ledger: &Ledger) -> i64 {
    count(
        ledger,
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'cloverleaf invoice batches'",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_connection_ended_between_batches_is_replaced_and_the_next_invoice_issued() {
    let Some((db, a, b)) = two_nodes().await else { return };
    if db.backend() != Backend::Postgres {
        // SQLite's batches use the ledger's one writing connection.
        return;
    }
    let first = a.issue_invoice("issue-1", t0(), "SO-1", "C-001", dec("10.00")).await.unwrap();
    assert_eq!(batch_connections(&b).await, 1, "node a's batches have a connection of their own");
    // An operator (or a restarted server) ends it while it sits idle between batches.
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'cloverleaf invoice batches'",
    )
    .execute(b.pool())
    .await
    .unwrap();
    eventually("the batch connection has ended", || async { (batch_connections(&b).await == 0).then_some(()) }).await;
    let second = within_deadline("the next invoice", a.issue_invoice("issue-2", t0(), "SO-2", "C-001", dec("20.00")))
        .await
        .expect("the next batch opens a new connection instead of failing");
    assert_eq!((first.invoice_number.as_str(), second.invoice_number.as_str()), ("2026-000001", "2026-000002"));
    assert_eq!(batch_connections(&b).await, 1);
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn closing_the_ledger_ends_its_batch_connection_and_refuses_later_invoices() {
    let Some((db, a, b)) = two_nodes().await else { return };
    a.issue_invoice("issue-1", t0(), "SO-1", "C-001", dec("10.00")).await.unwrap();
    if db.backend() == Backend::Postgres {
        assert_eq!(batch_connections(&b).await, 1);
    }
    a.close().await;
    if db.backend() == Backend::Postgres {
        eventually("the closed ledger's batch connection has ended", || async {
            (batch_connections(&b).await == 0).then_some(())
        })
        .await;
    }
    let refused =
        within_deadline("an invoice after closing", a.issue_invoice("issue-2", t0(), "SO-2", "C-001", dec("20.00")))
            .await;
    assert!(refused.is_err(), "a closed ledger issues nothing: {refused:?}");
    assert_eq!(invoice_numbers(&b, None).await, ["2026-000001"]);
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_id_holding_a_nul_is_refused_alone_and_the_invoices_beside_it_issued() {
    let Some((_db, a, b)) = two_nodes().await else { return };
    let rest: Vec<(String, String, String, String)> = vec![
        ("issue-nul\0".into(), "SO-2".into(), "C-001".into(), "20.00".into()),
        ("issue-3".into(), "SO-3\0".into(), "C-001".into(), "30.00".into()),
        ("issue-4".into(), "SO-4".into(), "C-001".into(), "40.00".into()),
    ];
    let paused = a.pause_invoices().await;
    let first = spawn_issue(&a, "issue-1", "SO-1", "C-001", "10.00");
    eventually("the first invoice is taken into a batch", || async { (a.invoice_queue().issuing == 1).then_some(()) })
        .await;
    let mut calls: Vec<_> = rest.iter().map(|(k, o, c, amount)| spawn_issue(&a, k, o, c, amount)).collect();
    // Refused before they queue: answered while invoicing is still paused.
    let fourth = calls.pop().unwrap();
    for call in calls {
        let refused = within_deadline("an invoice with a NUL", call).await.unwrap();
        let Err(Error::InvoiceData(why)) = &refused else { panic!("a NUL went through: {refused:?}") };
        assert!(why.contains("NUL"), "{why}");
    }
    drop(paused);
    let first = within_deadline("the first invoice", first).await.unwrap().unwrap();
    let fourth = within_deadline("the fourth invoice", fourth).await.unwrap().unwrap();
    assert_eq!((first.invoice_number.as_str(), fourth.invoice_number.as_str()), ("2026-000001", "2026-000002"));
    assert_eq!(invoice_numbers(&b, None).await, ["2026-000001", "2026-000002"]);
    a.close().await;
    b.close().await;
}
