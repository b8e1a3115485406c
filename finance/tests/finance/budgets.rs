//! Budget review at order time: the credit check reserves an order's amount on its cost centre's
//! budget for the month, a breach goes to the controller, and a rejected order releases what it
//! reserved; on the handlers and through `order_approval` with the built-in handlers.

use serde_json::json;

use crate::harness::{Env, completed, dec, options};

/// C-001 and C-002 under the cost centre EAST, with 10,000.00 for January 2026.
async fn budgeted(env: &Env) {
    env.ledger.assign_cost_centre("C-001", Some("EAST")).await.unwrap();
    env.ledger.assign_cost_centre("C-002", Some("EAST")).await.unwrap();
    let line = env.ledger.set_budget("EAST", "2026-01", dec("10000"), env.now()).await.unwrap();
    assert_eq!((line.amount, line.reserved, line.left, line.orders), (dec("10000.00"), dec("0"), dec("10000.00"), 0));
}

#[tokio::test]
async fn the_check_reserves_what_fits_refuses_what_does_not_and_a_release_gives_it_back() {
    let Some(env) = Env::new().await else { return };
    budgeted(&env).await;
    let check = |key: &'static str, customer: &'static str, order: &'static str, amount: &'static str| {
        env.call("credit.check", key, json!({"customer_id": customer, "order_id": order, "amount": amount}))
    };
    let first = check("k1", "C-001", "SO-1", "6000.00").await.unwrap();
    assert_eq!(
        (
            &first["cost_centre"],
            &first["budget"],
            &first["budget_left"],
            &first["budget_ok"],
            &first["budget_reserved"]
        ),
        (&json!("EAST"), &json!("10000.00"), &json!("4000.00"), &json!(true), &json!(true))
    );
    // Another customer of the same cost centre sees what is left; too much is not reserved.
    let second = check("k2", "C-002", "SO-2", "4000.01").await.unwrap();
    assert_eq!((&second["budget_left"], &second["budget_ok"]), (&json!("4000.00"), &json!(false)));
    assert_eq!(second["budget_reserved"], json!(false));
    // A redelivered check sees its first answer and reserves nothing again.
    assert_eq!(check("k1", "C-001", "SO-1", "6000.00").await.unwrap(), first);
    let lines = env.ledger.budgets(Some("2026-01")).await.unwrap();
    assert_eq!((lines[0].reserved, lines[0].left, lines[0].orders), (dec("6000.00"), dec("4000.00"), 1));

    // Finance approves SO-2 over the budget: reserved, marked over.
    let over = env
        .call("budget.reserve", "k3", json!({"order_id": "SO-2", "cost_centre": "EAST", "amount": "4000.01"}))
        .await
        .unwrap();
    assert_eq!(over, json!({"reserved": "4000.01", "over_budget": true, "budget_left": "-0.01"}));
    let line = &env.ledger.budgets(None).await.unwrap()[0];
    assert_eq!(
        (line.reserved, line.over_budget, line.left, line.orders),
        (dec("10000.01"), dec("4000.01"), dec("-0.01"), 2)
    );

    // SO-1 is rejected: its reservation is released once, however often the job runs.
    let released = env.call("budget.release", "k4", json!({"order_id": "SO-1"})).await.unwrap();
    assert_eq!(released, json!({"released": "6000.00"}));
    assert_eq!(env.call("budget.release", "k5", json!({"order_id": "SO-1"})).await.unwrap(), json!({"released": "0"}));
    let line = &env.ledger.budgets(Some("2026-01")).await.unwrap()[0];
    assert_eq!((line.reserved, line.left, line.orders), (dec("4000.01"), dec("5999.99"), 1));

    // A customer outside budget control, or a month without a budget, is not controlled.
    let free = check("k6", "C-003", "SO-3", "99999.00").await.unwrap();
    assert_eq!(
        (&free["cost_centre"], &free["budget_ok"], &free["budget_reserved"]),
        (&json!(null), &json!(true), &json!(false))
    );
    // Bad budgets are refused with what is wrong.
    let bad = env.ledger.set_budget("EAST", "2026-13", dec("1"), env.now()).await.unwrap_err();
    assert!(bad.to_string().contains("2026-13"), "{bad}");
    assert!(env.ledger.set_budget("EAST", "2026-02", dec("-1"), env.now()).await.is_err());
    // Whole cents below a quadrillion, as any money from outside: never rounded on the way in.
    let cent_and_a_half = env.ledger.set_budget("EAST", "2026-02", dec("100.005"), env.now()).await.unwrap_err();
    assert!(cent_and_a_half.to_string().contains("more than two decimals"), "{cent_and_a_half}");
    let huge = env.ledger.set_budget("EAST", "2026-02", dec("1000000000000000"), env.now()).await.unwrap_err();
    assert!(huge.to_string().contains("too large"), "{huge}");
    assert!(env.ledger.budgets(Some("2026-02")).await.unwrap().is_empty(), "nothing was written");
    let exact = env.ledger.set_budget("EAST", "2026-02", dec("100.500"), env.now()).await.unwrap();
    assert_eq!(exact.amount, dec("100.50"));
    assert!(env.ledger.assign_cost_centre("C-999", Some("EAST")).await.is_err());
}

#[tokio::test]
async fn an_order_over_budget_goes_to_the_controller_and_a_rejected_one_releases_its_reservation() {
    let Some(env) = Env::new().await else { return };
    budgeted(&env).await;
    let worker = env.worker(Default::default(), options());
    let start = |order: &'static str, amount: &'static str| {
        env.engine.start(
            "order_approval",
            Some(order),
            json!({"order_id": order, "customer_id": "C-001", "amount": amount, "requested_by": "rita"}),
        )
    };
    // 9,000.00 fits: reserved, and small enough to pass without people.
    let fits = start("SO-10", "9000.00").await.unwrap();
    worker.until_status(&env, &fits, &completed("approved")).await;
    // 2,000.00 more does not fit the 1,000.00 left: the controller sees the figures.
    let over = start("SO-11", "2000.00").await.unwrap();
    let review = worker.until_task(&env, "budget_review").await;
    assert_eq!(review.roles, ["finance.controller"]);
    assert_eq!(review.title, "Budget review of order SO-11");
    let vars = env.variables(&over).await;
    assert_eq!((&vars["cost_centre"], &vars["budget_left"]), (&json!("EAST"), &json!("1000.00")));
    // Approved over the budget: reserved and marked, then on as a small order.
    env.engine.complete_task(&review.id, "fran", &["finance.controller"], json!({"approve": true})).await.unwrap();
    worker.until_status(&env, &over, &completed("approved")).await;
    let line = &env.ledger.budgets(Some("2026-01")).await.unwrap()[0];
    assert_eq!((line.reserved, line.over_budget, line.left), (dec("11000.00"), dec("2000.00"), dec("-1000.00")));

    // A larger order fits a raised budget, is reserved, and the manager rejects it: released.
    env.ledger.set_budget("EAST", "2026-01", dec("30000"), env.now()).await.unwrap();
    let rejected = start("SO-12", "12000.00").await.unwrap();
    let task = worker.until_task(&env, "manager_approval").await;
    assert_eq!(env.ledger.budgets(Some("2026-01")).await.unwrap()[0].reserved, dec("23000.00"));
    env.engine.complete_task(&task.id, "mia", &["sales.manager"], json!({"approve": false})).await.unwrap();
    worker.until_status(&env, &rejected, &completed("rejected")).await;
    assert_eq!(env.ledger.budgets(Some("2026-01")).await.unwrap()[0].reserved, dec("11000.00"));
    worker.stop().await;
}
