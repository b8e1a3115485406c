//! The finance pages of the features behind `/v1/budgets` and `/v1/outbox`: the month's budgets
//! on the board with the setters' form, and the customer letters with their delivery and the
//! send-again button. Each for whom the API allows it, each refusal writing nothing.

use axum::http::{Method, StatusCode, header};
use cloverleaf::server::notify::Notifier;
use cloverleaf::server::notify::mail::Mailer;
use cloverleaf_finance::Ledger;
use rust_decimal::Decimal;

use crate::email::{SmtpSink, email, options, people};
use crate::harness::{Api, t0, with_ledger};
use crate::web::{hidden, page, sign_in};

/// The budget lines of January 2026 as (cost centre, amount).
async fn january(ledger: &Ledger) -> Vec<(String, Decimal)> {
    ledger.budgets(Some("2026-01")).await.unwrap().into_iter().map(|l| (l.cost_centre, l.amount)).collect()
}

#[tokio::test]
async fn the_controller_sets_a_months_budget_on_the_board_and_sees_it_overspent() {
    let Some(mut api) = Api::new().await else { return };
    let ledger = with_ledger(&mut api).await;
    let carl = sign_in(&api, "carl").await;
    let board = page(&api, Method::GET, "/board", &carl, None).await;
    assert_eq!(board.status, StatusCode::OK, "{}", board.text);
    assert!(board.text.contains("Budgets by cost centre") && board.text.contains("2026-01"), "{}", board.text);
    assert!(board.text.contains("No budget is set for this month"), "{}", board.text);
    assert!(board.text.contains("action=\"/board/budgets\""), "the controller has the form: {}", board.text);
    // The months are the books' (kept in UTC here), and the board says so.
    assert!(board.text.contains("Calendar months on the books&#39; clock (UTC)"), "{}", board.text);
    let csrf = hidden(&board.text, "csrf");

    let form = format!("csrf={csrf}&cost_centre=EAST&period=2026-01&amount=1%2C000.00");
    let set = page(&api, Method::POST, "/board/budgets", &carl, Some(&form)).await;
    assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.text);
    assert_eq!(set.headers[header::LOCATION], "/board?period=2026-01&saved=EAST#budgets");
    assert_eq!(january(&ledger).await, [("EAST".to_string(), Decimal::new(1000, 0))]);
    // The board it leads to confirms what the ledger now holds.
    let saved = page(&api, Method::GET, "/board?period=2026-01&saved=EAST&lang=zh-CN", &carl, None).await;
    assert!(saved.text.contains("id=\"budget-saved\">已保存：EAST 在 2026-01 的预算为 ¥1,000.00。"), "{}", saved.text);
    let elsewhere = page(&api, Method::GET, "/board?period=2026-01&saved=WEST", &carl, None).await;
    assert!(!elsewhere.text.contains("budget-saved"), "nothing saved for WEST: {}", elsewhere.text);
    // An order approved beyond it: the cost centre stands out, with what is left below zero.
    ledger.reserve_budget("k-over", t0(), "SO-9", "EAST", Decimal::new(1500, 0)).await.unwrap();
    let board = page(&api, Method::GET, "/board?period=2026-01", &carl, None).await;
    let row = board.text.split("<tr data-cost-centre=\"EAST\"").nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(row.starts_with(" class=\"over\""), "{row}");
    for shown in ["over budget", "CNY 1,000.00", "CNY 1,500.00", "-CNY 500.00", "150%"] {
        assert!(row.contains(shown), "`{shown}` in the row: {row}");
    }
    let zh = page(&api, Method::GET, "/board?period=2026-01&lang=zh-CN", &carl, None).await;
    assert!(
        zh.text.contains("各成本中心预算") && zh.text.contains("已超支") && zh.text.contains("-¥500.00"),
        "{}",
        zh.text
    );
    // Another month has none; a month that is not one is said so, and this month is shown.
    let february = page(&api, Method::GET, "/board?period=2026-02", &carl, None).await;
    assert!(
        february.text.contains("No budget is set") && !february.text.contains("data-cost-centre"),
        "{}",
        february.text
    );
    let bad = page(&api, Method::GET, "/board?period=march", &carl, None).await;
    assert!(bad.text.contains("Write the month as 2026-03") && bad.text.contains("EAST"), "{}", bad.text);

    // Bad input is a sentence in the reader's language, and nothing is written.
    for (form, says) in [
        ("cost_centre=EAST&period=2026-01&amount=-5", "Write the amount"),
        ("cost_centre=EAST&period=2026-01&amount=1.005", "Write the amount"),
        ("cost_centre=EAST&period=2026-13&amount=5", "Write the month"),
        ("cost_centre=EA%20ST&period=2026-01&amount=5", "A cost centre is"),
        ("cost_centre=EAST&period=2026-01", "Write the amount"),
    ] {
        let refused = page(&api, Method::POST, "/board/budgets", &carl, Some(&format!("csrf={csrf}&{form}"))).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{form}: {}", refused.text);
        assert!(refused.text.contains(says), "{form}: {}", refused.text);
        // The form comes back holding what was sent.
        assert!(refused.text.contains("action=\"/board/budgets\""), "{form}: {}", refused.text);
    }
    let refused = page(
        &api,
        Method::POST,
        "/board/budgets",
        &carl,
        Some(&format!("csrf={csrf}&cost_centre=EAST&period=2026-01&amount=12x")),
    )
    .await;
    assert!(
        refused.text.contains("name=\"cost_centre\" value=\"EAST\"") && refused.text.contains("value=\"12x\""),
        "{}",
        refused.text
    );
    let zh = page(
        &api,
        Method::POST,
        "/board/budgets?lang=zh-CN",
        &carl,
        Some(&format!("csrf={csrf}&cost_centre=EAST&period=2026-01&amount=x")),
    )
    .await;
    assert!(zh.text.contains("金额须为不小于零"), "{}", zh.text);
    assert_eq!(january(&ledger).await, [("EAST".to_string(), Decimal::new(1000, 0))]);
}

#[tokio::test]
async fn an_auditor_reads_the_budgets_but_neither_she_nor_a_rep_may_set_one() {
    let Some(mut api) = Api::new().await else { return };
    let ledger = with_ledger(&mut api).await;
    ledger.set_budget("EAST", "2026-01", Decimal::new(250_000, 0), t0()).await.unwrap();
    let vera = sign_in(&api, "vera").await;
    let board = page(&api, Method::GET, "/board", &vera, None).await;
    assert_eq!(board.status, StatusCode::OK, "{}", board.text);
    assert!(
        board.text.contains("data-cost-centre=\"EAST\"") && board.text.contains("CNY 250,000.00"),
        "{}",
        board.text
    );
    assert!(!board.text.contains("action=\"/board/budgets\""), "no form for the auditor: {}", board.text);
    // Her own valid token on a forged form: refused, and the budget stays.
    let csrf = hidden(&board.text, "csrf");
    let form = format!("csrf={csrf}&cost_centre=EAST&period=2026-01&amount=1");
    let refused = page(&api, Method::POST, "/board/budgets", &vera, Some(&form)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    let sam = sign_in(&api, "sam").await;
    let his = page(&api, Method::GET, "/inbox", &sam, None).await;
    let form = format!("csrf={}&cost_centre=WEST&period=2026-01&amount=1", hidden(&his.text, "csrf"));
    assert_eq!(page(&api, Method::POST, "/board/budgets", &sam, Some(&form)).await.status, StatusCode::FORBIDDEN);
    let refused = page(&api, Method::GET, "/board", &sam, None).await;
    assert!(refused.status == StatusCode::FORBIDDEN && !refused.text.contains("250,000"), "{}", refused.text);
    // The controller without his page's token: refused too.
    let carl = sign_in(&api, "carl").await;
    let forged = "csrf=forged&cost_centre=EAST&period=2026-01&amount=1";
    assert_eq!(page(&api, Method::POST, "/board/budgets", &carl, Some(forged)).await.status, StatusCode::FORBIDDEN);
    assert_eq!(january(&ledger).await, [("EAST".to_string(), Decimal::new(250_000, 0))]);
    // An administrator may set one.
    let ada = sign_in(&api, "ada").await;
    let board = page(&api, Method::GET, "/board", &ada, None).await;
    let form = format!("csrf={}&cost_centre=WEST&period=2026-01&amount=900", hidden(&board.text, "csrf"));
    assert_eq!(page(&api, Method::POST, "/board/budgets", &ada, Some(&form)).await.status, StatusCode::SEE_OTHER);
    assert_eq!(january(&ledger).await.len(), 2);
}

/// A sub-ledger whose customer C-007 has no address, an invoice notice to them (dead at once)
/// and a dunning letter to C-004 (delivered), after one pass of the notifier.
async fn letters(api: &mut Api) -> (Ledger, Notifier<cloverleaf_engine::store::AnyStore>, SmtpSink) {
    let ledger = with_ledger(api).await;
    sqlx::query("UPDATE customers SET email = NULL WHERE id = 'C-007'").execute(ledger.pool()).await.unwrap();
    let now = api.engine.now();
    ledger.notify("k-notice", now, "C-007", "INV-OB-0005", "invoice_issued").await.unwrap();
    let sink = SmtpSink::default();
    let mail = email(sink.start().await, &["invoice_notice", "dunning_letter"]);
    let notifier = Notifier::new(api.engine.clone(), Vec::new(), options(5))
        .unwrap()
        .with_email(Mailer::new(mail, people()))
        .with_letters(ledger.clone());
    assert_eq!(notifier.deliver_due().await.unwrap().dead, 1);
    (ledger, notifier, sink)
}

#[tokio::test]
async fn finance_sees_the_customer_letters_and_the_ar_clerk_sends_a_dead_one_again() {
    let Some(mut api) = Api::new().await else { return };
    let (ledger, notifier, _sink) = letters(&mut api).await;
    let arlo = sign_in(&api, "arlo").await;
    let listed = page(&api, Method::GET, "/letters", &arlo, None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    for shown in ["Customer letters", "Invoice notice", "INV-OB-0005", "C-007", "Not delivered", "no address"] {
        assert!(listed.text.contains(shown), "`{shown}` on the page: {}", listed.text);
    }
    assert!(listed.text.contains("has no valid email address"), "the failure in words: {}", listed.text);
    assert!(listed.text.contains("(Asia/Shanghai)"), "{}", listed.text);
    assert!(!listed.text.contains("href=\"/board"), "the AR clerk has no board to link to: {}", listed.text);
    let action = listed.text.split("action=\"").find(|a| a.starts_with("/letters/")).unwrap();
    let action = action.split('"').next().unwrap().to_string();
    assert!(action.starts_with("/letters/outbox.") && action.ends_with("/retry"), "{action}");
    let zh = page(&api, Method::GET, "/letters?lang=zh-CN", &arlo, None).await;
    assert!(
        zh.text.contains("客户函件") && zh.text.contains("开票通知") && zh.text.contains("未能送达"),
        "{}",
        zh.text
    );

    // The address is put right; the AR clerk sends it again and it is on its way.
    sqlx::query("UPDATE customers SET email = 'payables@c7.example' WHERE id = 'C-007'")
        .execute(ledger.pool())
        .await
        .unwrap();
    let csrf = hidden(&listed.text, "csrf");
    let again = page(&api, Method::POST, &action, &arlo, Some(&format!("csrf={csrf}"))).await;
    assert_eq!((again.status, again.headers[header::LOCATION].to_str().unwrap()), (StatusCode::SEE_OTHER, "/letters"));
    let pending = page(&api, Method::GET, "/letters?state=pending", &arlo, None).await;
    assert!(pending.text.contains("Being sent") && !pending.text.contains("action=\"/letters/"), "{}", pending.text);
    // Twice is once: the second press finds nothing to send again.
    let twice = page(&api, Method::POST, &action, &arlo, Some(&format!("csrf={csrf}"))).await;
    assert_eq!(twice.status, StatusCode::CONFLICT, "{}", twice.text);
    assert!(
        twice.text.contains("needs no second sending") && twice.text.contains("<a href=\"/letters\">Back"),
        "{}",
        twice.text
    );
    assert_eq!(notifier.deliver_due().await.unwrap().delivered, 1);
    let delivered = page(&api, Method::GET, "/letters?state=delivered", &arlo, None).await;
    assert!(
        delivered.text.contains("data-state=\"delivered\"") && !delivered.text.contains("data-state=\"dead\""),
        "{}",
        delivered.text
    );
    assert!(delivered.text.contains("(1 attempt)<"), "{}", delivered.text);
    // Only letters: an operator's notification id is not one.
    let other = page(&api, Method::POST, "/letters/task.1/retry", &arlo, Some(&format!("csrf={csrf}"))).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "{}", other.text);
}

#[tokio::test]
async fn the_letters_are_refused_outside_finance_and_the_cfo_and_auditor_only_read_them() {
    let Some(mut api) = Api::new().await else { return };
    let _kept = letters(&mut api).await;
    let dead = api.get("/v1/outbox?state=dead", "arlo").await;
    let id = dead.expect(StatusCode::OK)[0]["id"].as_str().unwrap().to_string();
    let action = format!("/letters/{id}/retry");
    for outsider in ["sam", "mia", "cora"] {
        let session = sign_in(&api, outsider).await;
        let refused = page(&api, Method::GET, "/letters", &session, None).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{outsider}: {}", refused.text);
        assert!(
            !refused.text.contains("INV-OB-0005") && !refused.text.contains("href=\"/letters\""),
            "{}",
            refused.text
        );
        let csrf = hidden(&refused.text, "csrf");
        let retry = page(&api, Method::POST, &action, &session, Some(&format!("csrf={csrf}"))).await;
        assert_eq!(retry.status, StatusCode::FORBIDDEN, "{outsider}: {}", retry.text);
    }
    // The auditor reads them, with no button, and her forged press is refused.
    let vera = sign_in(&api, "vera").await;
    let listed = page(&api, Method::GET, "/letters", &vera, None).await;
    assert!(listed.text.contains("href=\"/letters\"") && listed.text.contains("INV-OB-0005"), "{}", listed.text);
    assert!(!listed.text.contains("action=\"/letters/"), "no button for the auditor: {}", listed.text);
    let csrf = hidden(&listed.text, "csrf");
    assert_eq!(
        page(&api, Method::POST, &action, &vera, Some(&format!("csrf={csrf}"))).await.status,
        StatusCode::FORBIDDEN
    );
    // The CFO is also the controller here, who may send again.
    let carl = sign_in(&api, "carl").await;
    let his = page(&api, Method::GET, "/letters", &carl, None).await;
    assert!(his.text.contains(&format!("action=\"{action}\"")), "{}", his.text);
    assert!(his.text.contains("href=\"/board/receivables?customer=C-007\""), "{}", his.text);
    assert_eq!(page(&api, Method::POST, &action, &carl, Some("csrf=forged")).await.status, StatusCode::FORBIDDEN);
    let still = api.get("/v1/outbox?state=dead", "arlo").await;
    assert_eq!(still.expect(StatusCode::OK)[0]["id"], id.as_str(), "nothing was sent again");
}

#[tokio::test]
async fn without_a_sub_ledger_the_letters_page_says_so() {
    let Some(api) = Api::new().await else { return };
    let arlo = sign_in(&api, "arlo").await;
    let none = page(&api, Method::GET, "/letters", &arlo, None).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND, "{}", none.text);
    assert!(none.text.contains("sub-ledger"), "{}", none.text);
}
