//! Stock booked: opening stock and goods receipts go into Inventory, each shipment's cost of goods
//! leaves it at the moving average cost, and the Inventory account always equals what the stock
//! on hand is worth; an order the stock cannot serve posts nothing until goods come in.

use rust_decimal::Decimal;
use serde_json::json;

use crate::harness::{Env, dec};

async fn cost(env: &Env, order: &str, customer: &str) -> Result<serde_json::Value, String> {
    let input = json!({"order_id": order, "customer_id": customer, "shipment_id": format!("SH-{order}")});
    env.call("ledger.post_cost", &format!("cost-{order}"), input).await.map_err(|e| format!("{e:?}"))
}

/// Inventory equals the stock's value, no seeded product is below zero, and the books balance.
async fn assert_stock_booked(env: &Env) {
    let tb = env.ledger.trial_balance().await.unwrap();
    assert!(tb.is_balanced(), "{tb:#?}");
    let stock = env.ledger.stock().await.unwrap();
    let value: Decimal = stock.iter().map(|l| l.value).sum();
    assert_eq!(tb.balance("1300"), value, "{stock:#?}");
    for line in &stock {
        assert!(line.on_hand >= Decimal::ZERO && line.value >= Decimal::ZERO, "{line:?}");
    }
}

fn units(stock: &[cloverleaf_finance::ledger::StockLine], sku: &str) -> Decimal {
    stock.iter().find(|l| l.sku == sku).map_or(Decimal::ZERO, |l| l.on_hand)
}

#[tokio::test]
async fn shipments_take_cost_from_booked_stock_and_inventory_never_goes_negative() {
    let Some(env) = Env::new().await else { return };
    // The seed booked opening stock at the catalogue's cost, against opening balance equity.
    let opening = env.ledger.stock().await.unwrap();
    assert_eq!(units(&opening, "CTRL-X"), dec("10"));
    assert!(opening.iter().all(|l| l.sku != "SERV-H"), "a service hour is not stocked");
    assert_eq!(env.entries("opening_balance").await, 15, "14 opening invoices and the opening stock");
    assert_stock_booked(&env).await;

    // 4 controllers leave at the opening cost, 2,310.00 each.
    env.ledger.record_order("SO-1", "C-001", env.today(), &[("CTRL-X", dec("4"))]).await.unwrap();
    assert_eq!(cost(&env, "SO-1", "C-001").await.unwrap()["cost_of_goods"], json!("9240.00"));
    // 10 more than the 6 left: refused, nothing posted, nothing taken; retried after a receipt.
    env.ledger
        .record_order("SO-2", "C-002", env.today(), &[("CTRL-X", dec("10")), ("SERV-H", dec("3"))])
        .await
        .unwrap();
    let refused = cost(&env, "SO-2", "C-002").await.unwrap_err();
    assert!(refused.contains("needs 10 of CTRL-X, only 6 in stock"), "{refused}");
    assert_eq!(units(&env.ledger.stock().await.unwrap(), "CTRL-X"), dec("6"));
    assert_eq!(env.entries("cost_of_goods").await, 1);
    // 12 come in at 2,250.00: 18 on hand worth 6 × 2,310.00 + 12 × 2,250.00 = 40,860.00.
    let receipt = [("CTRL-X", dec("12"), dec("2250.00"))];
    let got = env.ledger.receive_goods("GR-1", "Hydro", env.today(), &receipt, env.now()).await.unwrap();
    assert_eq!((got.total, got.created), (dec("27000.00"), true));
    let again = env.ledger.receive_goods("GR-1", "Hydro", env.today(), &receipt, env.now()).await.unwrap();
    assert!(!again.created, "a receipt is booked once");
    assert_eq!(env.entries("goods_receipt").await, 1);
    let stock = env.ledger.stock().await.unwrap();
    let ctrl = stock.iter().find(|l| l.sku == "CTRL-X").unwrap();
    assert_eq!((ctrl.on_hand, ctrl.value, ctrl.average_cost), (dec("18"), dec("40860.00"), Some(dec("2270.00"))));
    assert_stock_booked(&env).await;
    // Now SO-2 is costed: 10 at the average 2,270.00 from stock, 3 service hours at 41.00 bought in.
    assert_eq!(cost(&env, "SO-2", "C-002").await.unwrap()["cost_of_goods"], json!("22823.00"));
    let tb = env.ledger.trial_balance().await.unwrap();
    assert_eq!(tb.balance("2000"), dec("-27123.00"), "the receipt and the service hours are owed to suppliers");
    // The last 8 take all the value left, to the cent.
    env.ledger.record_order("SO-3", "C-001", env.today(), &[("CTRL-X", dec("8"))]).await.unwrap();
    assert_eq!(cost(&env, "SO-3", "C-001").await.unwrap()["cost_of_goods"], json!("18160.00"));
    let ctrl = env.ledger.stock().await.unwrap().into_iter().find(|l| l.sku == "CTRL-X").unwrap();
    assert_eq!((ctrl.on_hand, ctrl.value, ctrl.average_cost), (Decimal::ZERO, dec("0.00"), None));
    assert_stock_booked(&env).await;
    // Cost of goods is what left Inventory plus what was bought in.
    assert_eq!(tb.balance("5000") + dec("18160.00"), env.ledger.trial_balance().await.unwrap().balance("5000"));
}

#[tokio::test]
async fn a_receipt_of_nothing_or_of_a_service_is_refused_and_books_nothing() {
    let Some(env) = Env::new().await else { return };
    let (today, now) = (env.today(), env.now());
    for (lines, problem) in [
        (vec![("CTRL-X", dec("0"), dec("1.00"))], "invalid amount"),
        (vec![("CTRL-X", dec("1"), dec("-1.00"))], "invalid amount"),
        (vec![("SERV-H", dec("1"), dec("41.00"))], "not a stocked product"),
        (vec![("NOPE", dec("1"), dec("1.00"))], "unknown product"),
        (vec![], "needs a line"),
    ] {
        let refused = env.ledger.receive_goods("GR-X", "Hydro", today, &lines, now).await.unwrap_err();
        assert!(refused.to_string().contains(problem), "{refused}");
    }
    assert_eq!(env.entries("goods_receipt").await, 0);
    assert_stock_booked(&env).await;
}
