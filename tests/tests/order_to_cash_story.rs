//! `cloverleaf demo` tells the order-to-cash story end to end on the real engine, workers and
//! sub-ledger: every order ends where the script says, the books balance, the rule breakers are
//! refused and the audit trail is intact.

use rust_decimal::Decimal;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_story_ends_with_balanced_books_and_every_order_where_it_should() {
    let outcome = cloverleaf::demo::run_quietly().await.expect("the demo runs");
    let ends: Vec<(&str, &str)> = outcome.orders.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        ends,
        [
            ("SO-1001", "cash_collected"),
            ("SO-1002", "cash_collected"),
            ("SO-1003", "cash_collected"),
            ("SO-1004", "not_approved"),
            ("SO-1005", "bad_debt"),
        ]
    );
    assert!(outcome.balanced, "the trial balance balances");
    assert!(outcome.history_intact);
    assert!(outcome.open_receivables > Decimal::ZERO, "the opening receivables are still open");
    assert_eq!(outcome.refusals.len(), 3, "{:#?}", outcome.refusals);
    assert!(outcome.refusals.iter().all(|r| r.contains(": refused: ")), "{:#?}", outcome.refusals);
    assert!(outcome.refusals.iter().any(|r| r.contains("not by requested_by")));
    // The alert rules beside the processes judge the company every day: several kinds open
    // (customers owing too much past due, DSO, manual matching, bad debt) and some clear.
    let kinds: std::collections::BTreeSet<&str> = outcome.alerts_opened.iter().map(|(rule, _)| rule.as_str()).collect();
    assert!(kinds.len() >= 3, "{:?}", outcome.alerts_opened);
    assert!(outcome.alerts_opened.iter().any(|(rule, customer)| rule == "customer_overdue" && customer == "C-007"));
    assert!(!outcome.alerts_cleared.is_empty(), "an alert clears when its condition does");
    assert!(outcome.alerts_cleared.iter().all(|c| outcome.alerts_opened.contains(c)), "only what opened clears");
    // People heard of their work and of the alerts: delivered to the company's chat bridge,
    // each signed (the bridge checks), each once.
    let delivered = |kind: &str| outcome.notifications.get(kind).copied().unwrap_or(0);
    assert!(delivered("task_created") >= 5, "{:?}", outcome.notifications);
    assert_eq!(delivered("alert_opened"), outcome.alerts_opened.len(), "{:?}", outcome.notifications);
    assert_eq!(delivered("alert_cleared"), outcome.alerts_cleared.len(), "{:?}", outcome.notifications);
    assert_eq!((outcome.notifications_refused, outcome.notifications_repeated), (0, 0));
    let text = outcome.timeline.join("\n");
    for expected in [
        "Check credit and budget: customer_blocked",
        "task for logistics.coordinator: Order SO-1003 not dispatched after 5 days",
        "Match the payment: match_result partial",
        "Match the payment: match_result overpayment",
        "Send the second reminder",
        // 18:00 on the last day of the month, Shanghai time, as the schedule says.
        "2026-01-31 18:00  close Jan  Close the period",
        "2026-02-28 18:00  close Feb  Close the period",
        "ends: Written off as bad debt",
        "ALERT [critical] A customer owes more than 5,000.00 past due (C-007)",
        "alert cleared: ",
    ] {
        assert!(text.contains(expected), "the timeline lacks {expected:?}:\n{text}");
    }
}
