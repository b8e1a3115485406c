//! What finance staff read on the receivables and letters pages: invoices not yet due (未到期)
//! kept apart from those overdue, with the days until due instead of negative days past due, in
//! the live aging, the board's chart, the stored month-end reports (those stored in the old
//! shape too) and the API; a failed letter's reason in the reader's words without the
//! receiver's address; and letters no delivery channel carries said to be unsent.

use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode};
use axum::routing::post;
use chrono::TimeDelta;
use cloverleaf::server::config::WebhookEntry;
use cloverleaf::server::notify::{DeliveryPass, Notifier};
use serde_json::{Value, json};

use crate::email::options;
use crate::harness::{Api, t0, with_ledger};
use crate::web::{page, sign_in};

/// The table cells of a page, in order (tags inside a cell kept).
fn cells(html: &str) -> Vec<&str> {
    html.split("<td>").skip(1).map(|c| c.split("</td>").next().unwrap()).collect()
}

/// The `<tfoot>` of a page.
fn foot(html: &str) -> &str {
    html.split("<tfoot>").nth(1).and_then(|f| f.split("</tfoot>").next()).unwrap_or_else(|| panic!("no total: {html}"))
}

/// No cell holds a negative number of days.
fn no_negative_days(html: &str) {
    for cell in cells(html) {
        assert!(!(cell.starts_with('-') && cell[1..].bytes().all(|b| b.is_ascii_digit())), "`{cell}` in {html}");
    }
}

#[tokio::test]
async fn the_board_and_the_open_invoices_keep_invoices_not_yet_due_apart_from_overdue_ones() {
    let Some(mut api) = Api::new().await else { return };
    with_ledger(&mut api).await;
    let carl = sign_in(&api, "carl").await;

    // The chart: not yet due first, then by days overdue, each bar leading to its invoices.
    let board = page(&api, Method::GET, "/board", &carl, None).await;
    assert_eq!(board.status, StatusCode::OK, "{}", board.text);
    let chart = board.text.split("<svg class=\"bars\"").nth(1).unwrap().split("</svg>").next().unwrap();
    let order =
        ["Not yet due", "1-30 days overdue", "31-60 days overdue", "61-90 days overdue", "Over 90 days overdue"];
    let at: Vec<usize> = order.iter().map(|l| chart.find(l).unwrap_or_else(|| panic!("`{l}` in {chart}"))).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{chart}");
    assert!(!chart.contains(">0-30<"), "{chart}");
    assert!(
        chart.contains("href=\"/board/receivables?bucket=not_due\"") && chart.contains("CNY 132,846.90"),
        "{chart}"
    );
    let zh = page(&api, Method::GET, "/board?lang=zh-CN", &carl, None).await;
    for shown in ["未到期", "逾期 1-30 天", "逾期 90 天以上", "¥132,846.90", "¥5,227.45"] {
        assert!(zh.text.contains(shown), "`{shown}` on the board: {}", zh.text);
    }

    // Every open invoice: days past due, or when it falls due; the total says how many.
    let all = page(&api, Method::GET, "/board/receivables", &carl, None).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    no_negative_days(&all.text);
    assert!(all.text.contains("due in ") && all.text.contains("Not yet due"), "{}", all.text);
    assert_eq!(
        foot(&all.text),
        "<tr><th>Total · 14 invoices</th><th></th><th></th><th></th><th></th>\
         <th data-total=\"open\">CNY 175,642.85</th><th></th></tr>",
        "the days column of the total is empty"
    );
    // The not-yet-due bar's invoices: none of them overdue.
    let not_due = page(&api, Method::GET, "/board/receivables?bucket=not_due", &carl, None).await;
    assert!(not_due.text.contains("Age Not yet due"), "{}", not_due.text);
    let rows: Vec<&str> =
        not_due.text.split("<tbody>").nth(1).unwrap().split("</tbody>").next().unwrap().split("<tr>").skip(1).collect();
    assert_eq!(rows.len(), 6, "{}", not_due.text);
    assert!(rows.iter().all(|r| r.contains("data-not-due") && r.contains("Not yet due")), "{rows:?}");
    assert!(foot(&not_due.text).contains("Total · 6 invoices") && foot(&not_due.text).contains("CNY 132,846.90"));
    let overdue = page(&api, Method::GET, "/board/receivables?overdue=1", &carl, None).await;
    assert!(!overdue.text.contains("Not yet due") && !overdue.text.contains("data-not-due"), "{}", overdue.text);
    assert!(foot(&overdue.text).contains("Total · 8 invoices"), "{}", overdue.text);

    // A bucket the aging does not have is refused in words; a list left empty says so.
    let unknown = page(&api, Method::GET, "/board/receivables?bucket=zzz&lang=zh-CN", &carl, None).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.text);
    assert!(unknown.text.contains("没有账龄分组“zzz”，请在财务看板上选择。"), "{}", unknown.text);
    let none = page(&api, Method::GET, "/board/receivables?customer=C-999&lang=en", &carl, None).await;
    assert!(none.text.contains("<p class=\"empty\">No open invoice is left here.</p>"), "{}", none.text);
    assert!(!all.text.contains("class=\"empty\""), "{}", all.text);

    let zh = page(&api, Method::GET, "/board/receivables?lang=zh-CN", &carl, None).await;
    no_negative_days(&zh.text);
    for shown in ["天后到期", "未到期", "逾期 31-60 天", "合计 · 14 张发票", "逾期天数"] {
        assert!(zh.text.contains(shown), "`{shown}` on the page: {}", zh.text);
    }

    // The API: five buckets, not yet due first, and no negative days.
    let aging = api.get("/v1/reports/aging", "carl").await;
    let aging = aging.expect(StatusCode::OK);
    let labels: Vec<&str> = aging["buckets"].as_array().unwrap().iter().map(|b| b["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["not_due", "1-30", "31-60", "61-90", "90+"]);
    assert_eq!(aging["buckets"][0]["amount"], "132846.90");
    for line in aging["invoices"].as_array().unwrap() {
        let (past, until) = (line["days_past_due"].as_i64().unwrap(), line["days_until_due"].as_i64().unwrap());
        assert!(past >= 0 && until >= 0 && (past == 0 || until == 0), "{line}");
        assert_eq!(line["bucket"] == "not_due", past == 0, "{line}");
    }
}

#[tokio::test]
async fn a_stored_month_end_aging_shows_not_yet_due_first_and_one_stored_in_the_old_shape_still_renders() {
    let Some(mut api) = Api::new().await else { return };
    let ledger = with_ledger(&mut api).await;
    let carl = sign_in(&api, "carl").await;
    let made = ledger.aging_report("k-aging", t0(), t0().date_naive()).await.unwrap();
    let shown = page(&api, Method::GET, &format!("/reports/{}", made.report_id), &carl, None).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.text);
    no_negative_days(&shown.text);
    let summary = shown.text.split("<table class=\"kpis\">").nth(1).unwrap().split("</table>").next().unwrap();
    assert!(summary.starts_with("<tbody><tr><td>Not yet due</td><td>CNY 132,846.90</td></tr>"), "{summary}");
    assert!(shown.text.contains("due in ") && !shown.text.contains("data-recounted"), "{}", shown.text);
    assert!(foot(&shown.text).starts_with("<tr><th>Total · 14 invoices</th><th></th><th></th><th></th><th data-total"));
    // Titled by its kind, with the way back to the board.
    assert!(
        shown.text.contains("<title>Receivables aging") && shown.text.contains("<a href=\"/board\">"),
        "{}",
        shown.text
    );
    // A month with no sales: the gross-profit report says so.
    let profit = ledger.gross_profit_report("k-profit", t0(), t0().date_naive()).await.unwrap();
    let zh = page(&api, Method::GET, &format!("/reports/{}?lang=zh-CN", profit.report_id), &carl, None).await;
    assert_eq!(zh.status, StatusCode::OK, "{}", zh.text);
    assert!(zh.text.contains("<p class=\"empty\">本期间没有销售。</p>"), "{}", zh.text);

    // A report stored before not-yet-due had a bucket: "0-30" held them, with negative days.
    let mut old: Value = ledger.report(&made.report_id).await.unwrap().unwrap();
    let as_of = t0().date_naive();
    for line in old["invoices"].as_array_mut().unwrap() {
        let due: chrono::NaiveDate = line["due_date"].as_str().unwrap().parse().unwrap();
        let days = (as_of - due).num_days();
        line["days_past_due"] = json!(days);
        line.as_object_mut().unwrap().remove("days_until_due");
        line["bucket"] = json!(match days {
            ..=30 => "0-30",
            31..=60 => "31-60",
            61..=90 => "61-90",
            _ => "90+",
        });
    }
    old["buckets"] = json!([
        {"label": "0-30", "amount": "138074.35", "invoices": 7},
        {"label": "31-60", "amount": "26033.50", "invoices": 4},
        {"label": "61-90", "amount": "6180.00", "invoices": 1},
        {"label": "90+", "amount": "5355.00", "invoices": 2},
    ]);
    sqlx::query("INSERT INTO reports (id, kind, as_of, body, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind("aging-2026-01-05-old")
        .bind("aging")
        .bind("2026-01-05")
        .bind(old.to_string())
        .bind(t0().to_rfc3339())
        .execute(ledger.pool())
        .await
        .unwrap();
    let shown = page(&api, Method::GET, "/reports/aging-2026-01-05-old", &carl, None).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.text);
    no_negative_days(&shown.text);
    assert!(shown.text.contains("data-recounted") && shown.text.contains("counted again"), "{}", shown.text);
    let summary = shown.text.split("<table class=\"kpis\">").nth(1).unwrap().split("</table>").next().unwrap();
    for bucket in ["<td>Not yet due</td><td>CNY 132,846.90</td>", "<td>1-30 days overdue</td><td>CNY 5,227.45</td>"] {
        assert!(summary.contains(bucket), "{summary}");
    }
    assert!(summary.contains("CNY 175,642.85") && !summary.contains("0-30"), "{summary}");
    let zh = page(&api, Method::GET, "/reports/aging-2026-01-05-old?lang=zh-CN", &carl, None).await;
    no_negative_days(&zh.text);
    for shown in ["未到期", "天后到期", "重新归类", "合计 · 14 张发票"] {
        assert!(zh.text.contains(shown), "`{shown}` on the page: {}", zh.text);
    }
    // Its spreadsheet ages the invoices as its page does, never "0-30".
    let csv = page(&api, Method::GET, "/reports/aging-2026-01-05-old.csv", &carl, None).await;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.text);
    assert!(csv.text.contains(",Not yet due\r\n") && !csv.text.contains("0-30"), "{}", csv.text);
    assert_eq!(csv.text.matches(",Not yet due\r\n").count(), 6, "{}", csv.text);
    // The API gives the record as it was stored.
    let stored = api.get("/v1/reports/stored/aging-2026-01-05-old", "carl").await;
    assert_eq!(stored.expect(StatusCode::OK)["buckets"][0]["label"], "0-30");
}

/// A webhook receiver that answers every request 500.
async fn failing_receiver() -> (String, Arc<Mutex<usize>>) {
    let calls = Arc::new(Mutex::new(0));
    let counted = Arc::clone(&calls);
    let router = axum::Router::new().route(
        "/hook",
        post(move || {
            let counted = Arc::clone(&counted);
            async move {
                *counted.lock().unwrap() += 1;
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{address}/hook"), calls)
}

fn hook(url: &str) -> WebhookEntry {
    WebhookEntry { url: url.to_string(), secret: "a shared secret of the receiver".into(), kinds: Vec::new() }
}

#[tokio::test]
async fn a_failed_letter_says_why_in_the_readers_words_and_never_shows_the_receivers_address() {
    let Some(mut api) = Api::new().await else { return };
    let ledger = with_ledger(&mut api).await;
    let (url, calls) = failing_receiver().await;
    ledger.notify("k-notice", api.engine.now(), "C-004", "INV-OB-0005", "invoice_issued").await.unwrap();
    let notifier =
        Notifier::new(api.engine.clone(), vec![hook(&url)], options(2)).unwrap().with_letters(ledger.clone());
    assert_eq!(notifier.deliver_due().await.unwrap(), DeliveryPass { delivered: 0, retrying: 1, dead: 0 });
    assert_eq!(*calls.lock().unwrap(), 1);

    let arlo = sign_in(&api, "arlo").await;
    let listed = page(&api, Method::GET, "/letters", &arlo, None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert!(
        listed.text.contains("Sending failed: the receiving system answered an error (HTTP 500); it will be retried."),
        "{}",
        listed.text
    );
    // The customer is named beside the id, the id kept on one line.
    assert!(listed.text.contains("<span class=\"nowrap\">C-004</span> (Delft Instruments BV)"), "{}", listed.text);
    let zh = page(&api, Method::GET, "/letters?lang=zh-CN", &arlo, None).await;
    assert!(zh.text.contains("发送失败：接收方返回错误（HTTP 500），系统将自动重试。"), "{}", zh.text);
    assert!(zh.text.contains("<span class=\"nowrap\">C-004</span>（Delft Instruments BV）"), "{}", zh.text);
    for text in [&listed.text, &zh.text] {
        assert!(!text.contains(&url) && !text.contains("127.0.0.1") && !text.contains("/hook"), "{text}");
        assert!(!text.contains("Internal Server Error") && !text.contains("answered 500"), "{text}");
    }
    // The operators' API keeps the whole detail.
    let notices = api.get("/v1/notifications?state=pending", "ada").await;
    let notices = notices.expect(StatusCode::OK).as_array().unwrap().clone();
    let letter = notices.iter().find(|n| n["id"].as_str().unwrap().starts_with("outbox.")).unwrap();
    assert_eq!(letter["last_error"], format!("{url} answered 500 Internal Server Error").as_str());

    // Its last attempt fails too: it is no longer tried by itself, and the page says what to do.
    api.advance(TimeDelta::hours(1));
    assert_eq!(notifier.deliver_due().await.unwrap().dead, 1);
    let dead = page(&api, Method::GET, "/letters?state=dead", &arlo, None).await;
    assert!(
        dead.text.contains(
            "Sending failed: the receiving system answered an error (HTTP 500); it is no longer retried by itself: send it again once the cause is put right."
        ),
        "{}",
        dead.text
    );
    let zh = page(&api, Method::GET, "/letters?state=dead&lang=zh-CN", &arlo, None).await;
    assert!(
        zh.text.contains("发送失败：接收方返回错误（HTTP 500）；系统已停止自动重试，排除原因后请重新发送。"),
        "{}",
        zh.text
    );
    assert!(!zh.text.contains("127.0.0.1"), "{}", zh.text);
}

#[tokio::test]
async fn letters_no_delivery_channel_carries_are_listed_as_not_sent_and_the_page_says_why() {
    let Some(mut api) = Api::new().await else { return };
    let ledger = with_ledger(&mut api).await;
    // A server without a webhook or an email route: the letters are written, never sent.
    ledger.notify("k-notice", api.engine.now(), "C-004", "INV-OB-0005", "invoice_issued").await.unwrap();
    ledger.send_dunning("k-dunning", api.engine.now(), "INV-OB-0005", "C-004", 1).await.unwrap();
    api.advance(TimeDelta::minutes(5));
    let arlo = sign_in(&api, "arlo").await;
    let listed = page(&api, Method::GET, "/letters", &arlo, None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert!(
        listed.text.contains(
            "2 letters were written but are not being sent: no delivery channel (a webhook or an email route of cloverleaf.toml) carries their kind."
        ),
        "{}",
        listed.text
    );
    assert!(!listed.text.contains("No letters here."), "{}", listed.text);
    assert_eq!(listed.text.matches("data-state=\"unsent\"").count(), 2, "{}", listed.text);
    for shown in ["Invoice notice", "Dunning letter", "INV-OB-0005", "Not sent", "no delivery channel carries it"] {
        assert!(listed.text.contains(shown), "`{shown}` on the page: {}", listed.text);
    }
    assert!(!listed.text.contains("action=\"/letters/"), "nothing to send again: {}", listed.text);
    let zh = page(&api, Method::GET, "/letters?lang=zh-CN", &arlo, None).await;
    for shown in ["有 2 封函件已生成但未发送", "未配置发送渠道", "未发送", "催款函"] {
        assert!(zh.text.contains(shown), "`{shown}` on the page: {}", zh.text);
    }
    let unsent = page(&api, Method::GET, "/letters?state=unsent", &arlo, None).await;
    assert_eq!(unsent.text.matches("data-state=\"unsent\"").count(), 2, "{}", unsent.text);
    let dead = page(&api, Method::GET, "/letters?state=dead", &arlo, None).await;
    assert!(dead.text.contains("No letters here.") && dead.text.contains("not being sent"), "{}", dead.text);

    // A channel is set up: the letters go out, and the page no longer warns.
    let notifier =
        Notifier::new(api.engine.clone(), vec![hook(&crate::notify::Sink::default().start().await)], options(2))
            .unwrap()
            .with_letters(ledger.clone());
    assert_eq!(notifier.deliver_due().await.unwrap().delivered, 2);
    let listed = page(&api, Method::GET, "/letters", &arlo, None).await;
    assert!(
        !listed.text.contains("not being sent") && !listed.text.contains("data-state=\"unsent\""),
        "{}",
        listed.text
    );
    assert_eq!(listed.text.matches("data-state=\"delivered\"").count(), 2, "{}", listed.text);
}

#[tokio::test]
async fn a_long_list_of_letters_is_shown_a_hundred_at_a_time() {
    let Some(mut api) = Api::new().await else { return };
    let ledger = with_ledger(&mut api).await;
    for n in 0..103 {
        ledger
            .notify(&format!("k-notice-{n}"), api.engine.now(), "C-004", "INV-OB-0005", "invoice_issued")
            .await
            .unwrap();
    }
    api.advance(TimeDelta::minutes(5));
    let arlo = sign_in(&api, "arlo").await;
    let first = page(&api, Method::GET, "/letters", &arlo, None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.text.matches("<tr data-letter=").count(), 100);
    // The notice counts every letter waiting, not only those on the page.
    assert!(first.text.contains("data-unsent=\"103\""), "{}", first.text);
    assert!(
        first.text.contains("1–100 of 103") && first.text.contains("href=\"/letters?page=2\" rel=\"next\""),
        "{}",
        first.text
    );
    let second = page(&api, Method::GET, "/letters?page=2&state=unsent", &arlo, None).await;
    assert_eq!(second.text.matches("<tr data-letter=").count(), 3, "{}", second.text);
    assert!(second.text.contains("href=\"/letters?state=unsent&amp;page=1\" rel=\"prev\""), "{}", second.text);
    // Nobody outside finance pages through them.
    let sam = sign_in(&api, "sam").await;
    let refused = page(&api, Method::GET, "/letters?page=2", &sam, None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(!refused.text.contains("data-letter"), "{}", refused.text);
}
