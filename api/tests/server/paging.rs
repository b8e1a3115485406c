//! Long lists on the pages: the inbox and the cases list shown a page at a time, with where the
//! reader is and links to the pages around that keep the filters.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::harness::{Api, visible};
use crate::web::{page, sign_in};

/// Starts `count` orders of `amount` that wait for the sales manager, numbered from `from`.
async fn orders_at_manager(api: &Api, from: usize, count: usize, amount: &str) {
    for n in from..from + count {
        let body = json!({"process": "order_approval", "business_key": format!("SO-{n}"), "variables": {
            "order_id": format!("SO-{n}"), "customer_id": "C-7", "amount": amount, "requested_by": "sam"}});
        api.post("/v1/instances", "sam", body).await.expect(StatusCode::CREATED);
        api.pass_credit_check().await;
    }
}

/// The tasks a page lists.
fn task_rows(html: &str) -> usize {
    html.matches("class=\"task-link\"").count()
}

#[tokio::test]
async fn a_long_inbox_is_shown_fifty_tasks_at_a_time_and_its_pages_keep_the_filters() {
    let Some(api) = Api::new().await else { return };
    orders_at_manager(&api, 1, 53, "20000.00").await;
    orders_at_manager(&api, 54, 2, "30000.00").await;
    let mia = sign_in(&api, "mia").await;

    let first = page(&api, Method::GET, "/inbox?done=1", &mia, None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(task_rows(&first.text), 50);
    assert!(visible(&first.text).contains("1–50 of 55"), "{}", first.text);
    // The next page's link keeps the page's own parameters but not the notice of a decision.
    assert!(first.text.contains("href=\"/inbox?page=2\" rel=\"next\""), "{}", first.text);
    assert!(!first.text.contains("rel=\"prev\""), "{}", first.text);

    let second = page(&api, Method::GET, "/inbox?page=2&lang=zh-CN", &mia, None).await;
    assert_eq!(task_rows(&second.text), 5);
    assert!(visible(&second.text).contains("第 51–55 条，共 55 条"), "{}", second.text);
    assert!(second.text.contains("href=\"/inbox?lang=zh-CN&amp;page=1\" rel=\"prev\">‹ 上一页</a>"), "{}", second.text);
    assert!(!second.text.contains("rel=\"next\""), "{}", second.text);
    // A page past the end shows the last one; a page that is no number, the first.
    let past = page(&api, Method::GET, "/inbox?page=99", &mia, None).await;
    assert_eq!(task_rows(&past.text), 5);
    let odd = page(&api, Method::GET, "/inbox?page=x", &mia, None).await;
    assert_eq!(task_rows(&odd.text), 50);

    // Narrowed to what fits on one page: no pager at all.
    let narrowed = page(&api, Method::GET, "/inbox?min_amount=25000", &mia, None).await;
    assert_eq!(task_rows(&narrowed.text), 2);
    assert!(!narrowed.text.contains("class=\"pager\""), "{}", narrowed.text);

    // Someone the tasks are not offered to pages through nothing of them.
    let cora = sign_in(&api, "cora").await;
    let hers = page(&api, Method::GET, "/inbox?page=2", &cora, None).await;
    assert_eq!(hers.status, StatusCode::OK);
    assert_eq!(task_rows(&hers.text), 0, "{}", hers.text);
    assert!(!hers.text.contains("class=\"pager\""), "{}", hers.text);
}

#[tokio::test]
async fn the_cases_list_is_shown_a_hundred_at_a_time() {
    let Some(api) = Api::new().await else { return };
    for n in 1..=103 {
        let body = json!({"process": "order_approval", "business_key": format!("SO-{n}"), "variables": {
            "order_id": format!("SO-{n}"), "customer_id": "C-7", "amount": "100.00", "requested_by": "sam"}});
        api.post("/v1/instances", "sam", body).await.expect(StatusCode::CREATED);
    }
    let cases = |html: &str| html.matches("<tr data-status=").count();
    let ada = sign_in(&api, "ada").await;
    let first = page(&api, Method::GET, "/cases?process=order_approval", &ada, None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(cases(&first.text), 100);
    assert!(visible(&first.text).contains("1–100 of 103"), "{}", first.text);
    assert!(first.text.contains("href=\"/cases?process=order_approval&amp;page=2\" rel=\"next\""), "{}", first.text);
    let second = page(&api, Method::GET, "/cases?process=order_approval&page=2", &ada, None).await;
    assert_eq!(cases(&second.text), 3);
    // The rep sees his own orders, paged the same way; a warehouse clerk, none of them.
    let sam = sign_in(&api, "sam").await;
    let his = page(&api, Method::GET, "/cases?page=2", &sam, None).await;
    assert_eq!(cases(&his.text), 3, "{}", his.text);
    let lou = sign_in(&api, "lou").await;
    let none = page(&api, Method::GET, "/cases?page=2", &lou, None).await;
    assert_eq!(cases(&none.text), 0, "{}", none.text);
    assert!(!none.text.contains("class=\"pager\""), "{}", none.text);
}

#[tokio::test]
async fn the_cases_list_narrows_to_the_cases_the_reader_took_part_in() {
    let Some(api) = Api::new().await else { return };
    orders_at_manager(&api, 1, 2, "20000.00").await;
    // The sales manager decides SO-1; SO-2 is only offered to her role.
    let task = api.engine.inbox("mia", &["sales.manager"]).await.unwrap();
    let first = task.iter().find(|t| t.title.contains("SO-1")).unwrap();
    api.post(&format!("/v1/tasks/{}/complete", first.id), "mia", json!({"variables": {"approve": true}}))
        .await
        .expect(StatusCode::OK);
    let cases = |html: &str| -> Vec<String> {
        html.split("<tr data-status=").skip(1).map(|r| visible(r.split("</a>").next().unwrap())).collect()
    };
    let mia = sign_in(&api, "mia").await;
    let all = page(&api, Method::GET, "/cases", &mia, None).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    let listed = cases(&all.text);
    assert!(listed.iter().any(|c| c.ends_with("SO-1")) && listed.iter().any(|c| c.ends_with("SO-2")), "{listed:?}");
    let mine = page(&api, Method::GET, "/cases?mine=1", &mia, None).await;
    let listed = cases(&mine.text);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].ends_with("SO-1"), "{listed:?}");
    assert!(mine.text.contains("name=\"mine\" value=\"1\" checked"), "{}", mine.text);
    let zh = page(&api, Method::GET, "/cases?mine=1&lang=zh-CN", &mia, None).await;
    assert!(zh.text.contains("仅显示我经手的"), "{}", zh.text);
    // The rep entered both: both are his.
    let sam = sign_in(&api, "sam").await;
    let his = page(&api, Method::GET, "/cases?mine=1", &sam, None).await;
    assert_eq!(cases(&his.text).len(), 2, "{}", his.text);
    // Someone who took part in neither has none of them, even with a role that may read them.
    let carl = sign_in(&api, "carl").await;
    let none = page(&api, Method::GET, "/cases?mine=1", &carl, None).await;
    assert_eq!(cases(&none.text).len(), 0, "{}", none.text);
}

#[tokio::test]
async fn an_order_number_typed_in_part_finds_the_numbers_that_contain_it() {
    let Some(api) = Api::new().await else { return };
    for key in ["SO-1", "SO-2", "SO-1001"] {
        let body = json!({"process": "order_approval", "business_key": key, "variables": {
            "order_id": key, "customer_id": "C-7", "amount": "100.00", "requested_by": "sam"}});
        api.post("/v1/instances", "sam", body).await.expect(StatusCode::CREATED);
    }
    // The case numbers the list links to.
    let listed = |html: &str| -> Vec<String> {
        let mut keys: Vec<String> = html
            .split("<tr data-status=")
            .skip(1)
            .map(|r| {
                r.split("<a href=\"/cases/")
                    .nth(1)
                    .unwrap()
                    .split('>')
                    .nth(1)
                    .unwrap()
                    .split('<')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        keys.sort();
        keys
    };
    let sam = sign_in(&api, "sam").await;
    // Typed whole: that order alone, and nothing to explain.
    let exact = page(&api, Method::GET, "/cases?business_key=SO-1001", &sam, None).await;
    assert_eq!(listed(&exact.text), ["SO-1001"], "{}", exact.text);
    assert!(!exact.text.contains("data-partly"), "{}", exact.text);
    // Typed in part, in any case: the numbers that contain it, and the page says why.
    let part = page(&api, Method::GET, "/cases?business_key=100", &sam, None).await;
    assert_eq!(listed(&part.text), ["SO-1001"], "{}", part.text);
    assert!(part.text.contains("No order you may see is numbered “100”; these numbers contain it."), "{}", part.text);
    let lower = page(&api, Method::GET, "/cases?business_key=so-1&lang=zh-CN", &sam, None).await;
    assert_eq!(listed(&lower.text), ["SO-1", "SO-1001"], "{}", lower.text);
    assert!(lower.text.contains("以下订单号包含该内容"), "{}", lower.text);
    let none = page(&api, Method::GET, "/cases?business_key=zzz", &sam, None).await;
    assert!(none.text.contains("No order or case matches this search.") && !none.text.contains("data-partly"));
    // A reader who may see none of them learns nothing, whether the number exists or not.
    let lou = sign_in(&api, "lou").await;
    for typed in ["SO-1001", "100", "zzz"] {
        let theirs = page(&api, Method::GET, &format!("/cases?business_key={typed}"), &lou, None).await;
        assert!(listed(&theirs.text).is_empty() && !theirs.text.contains("data-partly"), "{}", theirs.text);
        assert!(theirs.text.contains("No order or case matches this search."), "{}", theirs.text);
    }
}
