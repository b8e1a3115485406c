//! The ledger's scoped locks under concurrency: two `Ledger` handles on one database stand for
//! two nodes. On PostgreSQL writes lock only what they touch (see `Scope`), so these tests show
//! both halves: writes of different customers, invoices and cost centres go ahead side by side,
//! and the guarantees (gapless numbers per series, each job once, balanced books, a budget's last
//! amount taken once) still hold when many run at once. On SQLite (one writer at a time) the
//! guarantees are checked the same way; the "goes ahead while another is held" half needs
//! PostgreSQL.

use cloverleaf_finance::Scope;
use cloverleaf_testkit::testdb::Backend;
use rust_decimal::Decimal;
use sqlx::Row;

use crate::harness::{dec, invoice_numbers, issue, t0, two_nodes, within_deadline};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_held_customer_invoice_or_cost_centre_stops_its_own_writes_and_no_one_elses() {
    let Some((db, a, b)) = two_nodes().await else { return };
    if db.backend() != Backend::Postgres {
        // One writer at a time on SQLite: holding any lock holds every write.
        return;
    }
    let now = t0();

    // Customer C-001 held on node a: C-001's invoice on node b waits, C-002's is issued.
    let held = a.hold(&[Scope::Customer("C-001".into())]).await.unwrap();
    let waiting = issue(&b, "issue-1", "SO-1", "C-001", "100.00");
    let other = within_deadline("C-002's invoice", issue(&b, "issue-2", "SO-2", "C-002", "200.00")).await.unwrap();
    assert_eq!(other, "2026-000001");
    assert!(!waiting.is_finished(), "C-001's invoice was issued while C-001 was held");
    held.release().await.unwrap();
    let first = within_deadline("C-001's invoice", waiting).await.unwrap();
    assert_eq!(first, "2026-000002", "the waiting invoice takes the next number: no gap");

    // An invoice held: a payment to it waits, a payment to another invoice is applied.
    let day = now.date_naive();
    b.record_bank_payment("P-1", Some("C-001"), dec("120.00"), "INV-2026-000002", day, now).await.unwrap();
    b.record_bank_payment("P-2", Some("C-002"), dec("240.00"), "INV-2026-000001", day, now).await.unwrap();
    let held = a.hold(&[Scope::Invoice("INV-2026-000002".into())]).await.unwrap();
    let receipt = |key: &'static str, invoice: &'static str, payment: &'static str, amount: &'static str| {
        let b = b.clone();
        tokio::spawn(async move { b.post_receipt(key, t0(), invoice, payment, dec(amount)).await.unwrap() })
    };
    let waiting = receipt("receipt-1", "INV-2026-000002", "P-1", "120.00");
    let other =
        within_deadline("the receipt of the other invoice", receipt("receipt-2", "INV-2026-000001", "P-2", "240.00"))
            .await
            .unwrap();
    assert_eq!(other.status, "paid");
    assert!(!waiting.is_finished(), "a receipt was applied to a held invoice");
    held.release().await.unwrap();
    assert_eq!(within_deadline("the held invoice's receipt", waiting).await.unwrap().status, "paid");

    // A cost centre held: a credit check drawing on it waits, one on another cost centre reserves.
    for (customer, centre) in [("C-003", "EAST"), ("C-004", "WEST")] {
        a.assign_cost_centre(customer, Some(centre)).await.unwrap();
        a.set_budget(centre, "2026-01", dec("1000.00"), now).await.unwrap();
    }
    let held = a.hold(&[Scope::CostCentre("EAST".into())]).await.unwrap();
    let check = |key: &'static str, customer: &'static str, order: &'static str| {
        let b = b.clone();
        tokio::spawn(async move { b.credit_check(key, t0(), customer, Some((order, dec("400.00")))).await.unwrap() })
    };
    let waiting = check("check-east", "C-003", "SO-EAST");
    let other =
        within_deadline("the other cost centre's check", check("check-west", "C-004", "SO-WEST")).await.unwrap();
    assert!(other.budget.budget_reserved);
    assert!(!waiting.is_finished(), "a budget was reserved on a held cost centre");
    held.release().await.unwrap();
    assert!(within_deadline("the held cost centre's check", waiting).await.unwrap().budget.budget_reserved);

    assert!(a.trial_balance().await.unwrap().is_balanced());
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_writers_on_two_nodes_number_gaplessly_post_once_balance_and_never_overspend_a_budget() {
    let Some((_db, a, b)) = two_nodes().await else { return };
    let now = t0();
    let nodes = [a.clone(), b.clone()];

    // 120 invoices for 12 customers from both nodes at once; every fourth job is delivered to
    // both nodes. Costs are posted beside them, as ship_then_invoice does.
    const ORDERS: usize = 120;
    let mut calls = Vec::new();
    for n in 0..ORDERS {
        let customer = format!("C-{:03}", 1 + n % 12);
        let amount = format!("{}.{:02}", 100 + n, n % 100);
        let deliveries: &[usize] = if n % 4 == 0 { &[0, 1] } else { &[n % 2] };
        for &d in deliveries {
            let key = format!("issue-{n}");
            calls.push(issue(&nodes[d], &key, &format!("SO-{n}"), &customer, &amount));
            let (node, customer, amount) = (nodes[1 - d].clone(), customer.clone(), amount.clone());
            calls.push(tokio::spawn(async move {
                node.post_cost(&format!("cost-{n}"), now, &format!("SO-{n}"), &customer, "SH", Some(dec(&amount)))
                    .await
                    .unwrap()
                    .cost_of_goods
                    .to_string()
            }));
        }
    }
    for call in calls {
        within_deadline("an invoice or a cost posting", call).await.unwrap();
    }
    let numbers = invoice_numbers(&a, None).await;
    let expected: Vec<String> = (1..=ORDERS).map(|n| format!("2026-{n:06}")).collect();
    assert_eq!(numbers, expected, "one invoice per order, gapless and unique");
    let entries: Vec<(String, i64)> =
        sqlx::query("SELECT kind, count(*) FROM journal_entries GROUP BY kind ORDER BY kind")
            .fetch_all(a.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    let count = |kind: &str| entries.iter().find(|(k, _)| k == kind).map_or(0, |(_, n)| *n);
    assert_eq!(count("invoice"), ORDERS as i64, "{entries:?}");
    assert_eq!(count("cost_of_goods"), ORDERS as i64, "{entries:?}");

    // Ten orders of 300.00 checked at once against a budget of 1,000.00 on one cost centre, by
    // five customers on two nodes: three fit, and the last 100.00 is never taken.
    for n in 14..19 {
        a.assign_cost_centre(&format!("C-{n:03}"), Some("NORTH")).await.unwrap();
    }
    a.set_budget("NORTH", "2026-01", dec("1000.00"), now).await.unwrap();
    let mut checks = Vec::new();
    for n in 0..10 {
        let node = nodes[n % 2].clone();
        checks.push(tokio::spawn(async move {
            let customer = format!("C-{:03}", 14 + n % 5);
            let order = format!("BO-{n}");
            node.credit_check(&format!("check-{n}"), now, &customer, Some((&order, dec("300.00")))).await.unwrap()
        }));
    }
    let mut reserved = 0;
    for check in checks {
        reserved += usize::from(within_deadline("a credit check", check).await.unwrap().budget.budget_reserved);
    }
    assert_eq!(reserved, 3, "three orders of 300.00 fit in 1,000.00");
    let line = a.budgets(Some("2026-01")).await.unwrap().into_iter().find(|l| l.cost_centre == "NORTH").unwrap();
    assert_eq!((line.reserved, line.left), (dec("900.00"), dec("100.00")));

    // One payment of 500.00 whose reference names four invoices of the same customer, applied
    // to all four at once from both nodes: never more than the payment.
    let invoices: Vec<String> =
        invoice_numbers(&a, Some("C-001")).await[..4].iter().map(|n| format!("INV-{n}")).collect();
    let reference = invoices.clone();
    a.record_bank_payment("P-9", Some("C-001"), dec("500.00"), &reference.join(" "), now.date_naive(), now)
        .await
        .unwrap();
    let mut receipts = Vec::new();
    for (k, invoice) in invoices.into_iter().enumerate() {
        let node = nodes[k % 2].clone();
        receipts.push(tokio::spawn(async move {
            node.post_receipt(&format!("receipt-{k}"), now, &invoice, "P-9", dec("500.00")).await.unwrap().applied
        }));
    }
    let mut applied = Decimal::ZERO;
    for receipt in receipts {
        applied += within_deadline("a receipt", receipt).await.unwrap();
    }
    assert_eq!(applied, dec("500.00"), "the payment is applied in full and no further");

    let tb = b.trial_balance().await.unwrap();
    assert!(tb.is_balanced() && tb.difference().is_zero(), "{tb:#?}");
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_costing_one_product_on_two_nodes_at_once_all_post_and_the_stock_adds_up() {
    let Some((_db, a, b)) = two_nodes().await else { return };
    let now = t0();
    let nodes = [a.clone(), b.clone()];
    // Twenty orders of two sensors each (300 in stock), recorded first, then all costed at once:
    // each takes the product's lock, so none fails on another's update of the stock row.
    const ORDERS: usize = 20;
    for n in 0..ORDERS {
        let customer = format!("C-{:03}", 1 + n % 6);
        a.record_order(&format!("SO-S{n}"), &customer, now.date_naive(), &[("SENS-T1", dec("2"))]).await.unwrap();
    }
    let before = a.stock().await.unwrap().into_iter().find(|l| l.sku == "SENS-T1").unwrap();
    let mut costs = Vec::new();
    for n in 0..ORDERS {
        let node = nodes[n % 2].clone();
        costs.push(tokio::spawn(async move {
            let customer = format!("C-{:03}", 1 + n % 6);
            node.post_cost(&format!("cost-s{n}"), t0(), &format!("SO-S{n}"), &customer, "SH", None).await
        }));
    }
    let mut total = Decimal::ZERO;
    for cost in costs {
        total += within_deadline("a cost posting", cost).await.unwrap().expect("costing succeeds").cost_of_goods;
    }
    let after = a.stock().await.unwrap().into_iter().find(|l| l.sku == "SENS-T1").unwrap();
    assert_eq!(after.on_hand, before.on_hand - dec("40"), "every order took its two units, once");
    assert_eq!(after.value, before.value - total, "the stock's value fell by what was costed");
    assert!(a.trial_balance().await.unwrap().is_balanced());
    a.close().await;
    b.close().await;
}

/// Writes abandoned while they wait for a lock (their caller gone: a request cancelled, a job's
/// task stopped) leave no connection behind inside their transactions and record nothing: once
/// the lock is free, every write of that node goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_abandoned_while_waiting_for_a_lock_leave_every_connection_usable() {
    let Some((db, a, b)) = two_nodes().await else { return };
    if db.backend() != Backend::Postgres {
        // One writer at a time on SQLite: a wait for the file's lock is a wait for the pool.
        return;
    }
    let check = |key: String| {
        let b = b.clone();
        tokio::spawn(async move { b.credit_check(&key, t0(), "C-001", None).await })
    };
    let held = a.hold(&[Scope::Customer("C-001".into())]).await.unwrap();
    // Four waiting credit checks hold each of node b's four write connections.
    let waiting: Vec<_> = (0..4).map(|n| check(format!("abandoned-{n}"))).collect();
    within_deadline("four writes waiting for C-001's lock", async {
        loop {
            let row = sqlx::query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                .fetch_one(a.pool())
                .await
                .unwrap();
            if row.try_get::<i64, _>(0).unwrap() >= 4 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    for write in &waiting {
        write.abort();
    }
    for write in waiting {
        assert!(write.await.unwrap_err().is_cancelled());
    }
    held.release().await.unwrap();
    for n in 0..8 {
        let checked = within_deadline("a write after the abandoned ones", check(format!("after-{n}"))).await.unwrap();
        assert!(checked.is_ok(), "{checked:?}");
    }
    let recorded = |pattern: &'static str| {
        let a = a.clone();
        async move {
            let row = sqlx::query("SELECT count(*) FROM idempotency_keys WHERE key LIKE $1")
                .bind(pattern)
                .fetch_one(a.pool())
                .await
                .unwrap();
            row.try_get::<i64, _>(0).unwrap()
        }
    };
    assert_eq!((recorded("abandoned-%").await, recorded("after-%").await), (0, 8));
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invoice_batches_and_costing_of_one_customer_share_it_and_a_credit_check_waits_for_them() {
    let Some((db, a, b)) = two_nodes().await else { return };
    if db.backend() != Backend::Postgres {
        // One writer at a time on SQLite.
        return;
    }
    let before = a.credit_check("check-0", t0(), "C-001", None).await.unwrap();
    // Another node's invoice batch of C-001, caught between its locks and its commit: it holds
    // the customer shared, as every batch does.
    let (class, hash) = Scope::Customer("C-001".into()).keys();
    let mut other_batch = b.pool().begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1, $2)")
        .bind(class)
        .bind(hash)
        .execute(&mut *other_batch)
        .await
        .unwrap();

    // This node's batch of the same customer goes ahead (were the customer exclusive, the batch
    // would give up after its lock wait, then its invoice on its own would wait 30 s and fail).
    let issued = within_deadline(
        "C-001's invoice beside another batch of C-001",
        issue(&a, "issue-1", "SO-1", "C-001", "100.00"),
    )
    .await
    .unwrap();
    assert_eq!(issued, "2026-000001");
    // And so does costing an order of the same customer.
    let cost = within_deadline(
        "costing C-001's order beside a batch of C-001",
        a.post_cost("cost-1", t0(), "SO-1", "C-001", "SH-1", None),
    )
    .await
    .unwrap();
    assert!(cost.cost_of_goods > Decimal::ZERO, "{cost:?}");

    // A credit check of C-001 takes the customer exclusive: it waits for the batch, and so sees
    // every invoice issued before it answers.
    let check = {
        let a = a.clone();
        tokio::spawn(async move { a.credit_check("check-1", t0(), "C-001", None).await.unwrap() })
    };
    let waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
                   AND classid::bigint = $1 AND objid::bigint = $2";
    let objid = i64::from(u32::from_ne_bytes(hash.to_ne_bytes()));
    cloverleaf_testkit::eventually("the credit check waits for the customer", || async {
        let row = sqlx::query(waiting).bind(i64::from(class)).bind(objid).fetch_one(b.pool()).await.unwrap();
        (row.try_get::<i64, _>(0).unwrap() == 1).then_some(())
    })
    .await;
    assert!(!check.is_finished(), "the credit check went ahead of a batch holding its customer");
    other_batch.rollback().await.unwrap();
    let checked = within_deadline("the credit check", check).await.unwrap();
    assert_eq!(checked.open_ar, before.open_ar + issued_total(&a, "INV-2026-000001").await);
    a.close().await;
    b.close().await;
}

/// The total of invoice `id`.
async fn issued_total(ledger: &cloverleaf_finance::Ledger, id: &str) -> Decimal {
    let row = sqlx::query("SELECT total FROM invoices WHERE id = $1").bind(id).fetch_one(ledger.pool()).await.unwrap();
    dec(row.try_get::<String, _>(0).unwrap().as_str())
}
