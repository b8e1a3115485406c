//! The finance lists as spreadsheets: the open receivables, gross profit by order and the stored
//! month-end reports, downloaded as CSV by the readers of the pages they come from, with the
//! same filters, headers in the reader's language and amounts as plain numbers.

use axum::http::{Method, StatusCode, header};
use rust_decimal::Decimal;

use crate::harness::{Answer, Api, t0, with_ledger};
use crate::web::{page, sign_in};

/// The records of a CSV answer after checking it is one: a download, UTF-8 with a byte-order
/// mark, lines ending in CRLF. Cells are split naively: the tests' cells hold no comma.
#[track_caller]
fn records(answer: &Answer, filename_starts: &str) -> Vec<Vec<String>> {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    let disposition = answer.headers[header::CONTENT_DISPOSITION].to_str().unwrap();
    assert!(disposition.starts_with(&format!("attachment; filename=\"{filename_starts}")), "{disposition}");
    assert!(disposition.ends_with(".csv\""), "{disposition}");
    let body = answer.text.strip_prefix('\u{feff}').unwrap_or_else(|| panic!("no byte-order mark: {}", answer.text));
    assert!(body.ends_with("\r\n") && !body.replace("\r\n", "").contains('\n'), "{body:?}");
    body.lines().map(|l| l.split(',').map(str::to_string).collect()).collect()
}

/// The sum of column `at` of the records after the header.
fn sum(records: &[Vec<String>], at: usize) -> Decimal {
    records[1..].iter().map(|r| r[at].parse::<Decimal>().unwrap_or_else(|_| panic!("`{}` is no number", r[at]))).sum()
}

#[tokio::test]
async fn finance_downloads_the_open_receivables_as_the_page_filters_them() {
    let Some(mut api) = Api::new().await else { return };
    with_ledger(&mut api).await;
    let carl = sign_in(&api, "carl").await;

    // The page offers its list as a spreadsheet, with its filters.
    let shown = page(&api, Method::GET, "/board/receivables?bucket=not_due", &carl, None).await;
    assert!(shown.text.contains("href=\"/board/receivables.csv?bucket=not_due\" download"), "{}", shown.text);

    let all = records(&page(&api, Method::GET, "/board/receivables.csv", &carl, None).await, "receivables-");
    assert_eq!(
        all[0],
        [
            "Invoice",
            "Order",
            "Customer ID",
            "Customer name",
            "Due date",
            "Days past due",
            "Days until due",
            "Open (CNY)",
            "Age"
        ]
    );
    assert_eq!(all.len(), 1 + 14);
    // Amounts as numbers that sum to the page's total; days never negative.
    assert_eq!(sum(&all, 7), "175642.85".parse::<Decimal>().unwrap());
    assert!(all[1..].iter().all(|r| r[5].parse::<u32>().is_ok() && r[6].parse::<u32>().is_ok()), "{all:?}");
    assert!(all[1..].iter().any(|r| r[3] == "Delft Instruments BV"), "{all:?}");

    let not_due =
        records(&page(&api, Method::GET, "/board/receivables.csv?bucket=not_due", &carl, None).await, "receivables-");
    assert_eq!(not_due.len(), 1 + 6);
    assert_eq!(sum(&not_due, 7), "132846.90".parse::<Decimal>().unwrap());
    assert!(not_due[1..].iter().all(|r| r[5] == "0" && r[8] == "Not yet due"), "{not_due:?}");

    // In Chinese, the headers and the ages read in Chinese; the numbers stay numbers.
    let zh = records(&page(&api, Method::GET, "/board/receivables.csv?lang=zh-CN", &carl, None).await, "receivables-");
    assert_eq!(zh[0][0], "发票");
    assert_eq!(zh[0][7], "未收金额（CNY）");
    assert!(zh[1..].iter().any(|r| r[8] == "未到期"), "{zh:?}");
    assert_eq!(sum(&zh, 7), "175642.85".parse::<Decimal>().unwrap());

    // Refused as the page is: an unknown bucket in words, and nobody outside finance.
    let unknown = page(&api, Method::GET, "/board/receivables.csv?bucket=zzz", &carl, None).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.text);
    let sam = sign_in(&api, "sam").await;
    for path in ["/board/receivables.csv", "/board/orders.csv"] {
        let refused = page(&api, Method::GET, path, &sam, None).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}: {}", refused.text);
        assert!(!refused.text.contains("INV-") && refused.headers.get(header::CONTENT_DISPOSITION).is_none());
    }
    // Nor without signing in.
    let anonymous = page(&api, Method::GET, "/board/receivables.csv", "", None).await;
    assert_ne!(anonymous.status, StatusCode::OK);
    assert!(!anonymous.text.contains("INV-"), "{}", anonymous.text);
}

#[tokio::test]
async fn gross_profit_by_order_and_the_stored_month_end_reports_download_for_their_readers() {
    let Some(mut api) = Api::new().await else { return };
    let ledger = with_ledger(&mut api).await;
    let carl = sign_in(&api, "carl").await;

    let orders = records(&page(&api, Method::GET, "/board/orders.csv", &carl, None).await, "gross-profit-by-order-");
    assert_eq!(
        orders[0],
        [
            "Order",
            "Customer ID",
            "Customer name",
            "Revenue (CNY)",
            "Cost of goods (CNY)",
            "Gross profit (CNY)",
            "Gross margin (%)"
        ]
    );

    let aging = ledger.aging_report("k-aging", t0(), t0().date_naive()).await.unwrap();
    let shown = page(&api, Method::GET, &format!("/reports/{}", aging.report_id), &carl, None).await;
    assert!(shown.text.contains(&format!("href=\"/reports/{}.csv\" download", aging.report_id)), "{}", shown.text);
    let stored = records(&page(&api, Method::GET, &format!("/reports/{}.csv", aging.report_id), &carl, None).await, "");
    assert_eq!(stored[0], ["Invoice", "Customer ID", "Due date", "Days past due", "Open (CNY)", "Age"]);
    assert_eq!(stored.len(), 1 + 14);
    assert_eq!(sum(&stored, 4), "175642.85".parse::<Decimal>().unwrap());

    let profit = ledger.gross_profit_report("k-profit", t0(), t0().date_naive()).await.unwrap();
    let zh = page(&api, Method::GET, &format!("/reports/{}.csv?lang=zh-CN", profit.report_id), &carl, None).await;
    let zh = records(&zh, "");
    assert_eq!(zh[0], ["客户编号", "收入（CNY）", "销售成本（CNY）", "毛利（CNY）"]);

    // A report that is not there, and readers who may not read reports.
    let missing = page(&api, Method::GET, "/reports/ar_aging-1999-01-31-1.csv", &carl, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text);
    for user in ["sam", "mia", "lou"] {
        let them = sign_in(&api, user).await;
        let refused = page(&api, Method::GET, &format!("/reports/{}.csv", aging.report_id), &them, None).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{user}: {}", refused.text);
        assert!(refused.headers.get(header::CONTENT_DISPOSITION).is_none());
    }
}
