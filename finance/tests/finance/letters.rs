//! Letters to customers in the customer's language: a customer whose language is `zh-CN` gets its
//! invoice notice and dunning letter in Simplified Chinese, with the same figures an English
//! customer's letter quotes; an unknown language is refused.

use serde_json::json;

use crate::harness::Env;

async fn letter(env: &Env, customer: &str) -> (String, String) {
    sqlx::query_as("SELECT subject, body FROM outbox WHERE customer_id = $1 ORDER BY id DESC")
        .bind(customer)
        .fetch_one(env.ledger.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_chinese_customer_gets_letters_in_chinese_and_an_english_one_in_english() {
    let Some(env) = Env::new().await else { return };
    env.ledger.set_customer_language("C-004", "zh-CN").await.unwrap();
    let refused = env.ledger.set_customer_language("C-001", "klingon").await.unwrap_err();
    assert!(refused.to_string().contains("not a language letters are written in"), "{refused}");
    assert!(env.ledger.set_customer_language("C-999", "en").await.is_err(), "an unknown customer");
    // C-004's opening invoice INV-OB-0003 (9,317.50) is 45 days overdue; so is C-002's INV-OB-0002.
    for (customer, invoice) in [("C-004", "INV-OB-0003"), ("C-002", "INV-OB-0002")] {
        let input = json!({"invoice_id": invoice, "customer_id": customer, "level": "1"});
        env.call("dunning.send", &format!("d-{customer}"), input).await.unwrap();
    }
    let (subject, body) = letter(&env, "C-004").await;
    assert_eq!(subject, "付款提醒：发票 OB-0003 已逾期");
    assert!(body.starts_with("尊敬的 Delft Instruments BV："), "{body}");
    assert!(body.contains("尚有 ¥9,317.50 未付。付款时请注明发票参考号 INV-OB-0003。"), "{body}");
    let (subject, body) = letter(&env, "C-002").await;
    assert_eq!(subject, "Reminder: invoice OB-0002 is overdue");
    assert!(body.starts_with("Dear Baltic Timber AB,"), "{body}");
    let input = json!({"customer_id": "C-004", "invoice_id": "INV-OB-0003", "template": "invoice_issued"});
    env.call("outbox.notify", "n-C-004", input).await.unwrap();
    let (subject, body) = letter(&env, "C-004").await;
    assert_eq!(subject, "发票 OB-0003");
    assert!(body.contains("金额 ¥9,317.50（不含税 ¥9,317.50，税额 ¥0.00）"), "{body}");
}
