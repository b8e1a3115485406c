//! The away page: a user names a substitute for their days out of office, for themselves only,
//! and the substitute's inbox holds the user's tasks for those days.

use axum::http::{Method, StatusCode};

use crate::harness::Api;
use crate::web::{hidden, page, sign_in};

#[tokio::test]
async fn a_user_names_a_substitute_for_their_days_away_and_ends_it() {
    let Some(api) = Api::new().await else { return };
    let (_, task) = api.order_at_manager("20000.00", "sam").await;
    api.post_empty(&format!("/v1/tasks/{task}/claim"), "mia").await.expect(StatusCode::OK);
    // Without a session, the page is the sign-in's.
    assert_eq!(page(&api, Method::GET, "/away", "", None).await.status, StatusCode::SEE_OTHER);
    let mia = sign_in(&api, "mia").await;
    let carl = sign_in(&api, "carl").await;
    let away = page(&api, Method::GET, "/away", &mia, None).await;
    assert_eq!(away.status, StatusCode::OK);
    assert!(away.text.contains("No substitute is named"), "{}", away.text);
    // The first day offered is today on the reader's clock (17:00 in Shanghai on 5 January).
    // A text field in the one written form the pages use, not the browser's date field (which
    // shows the day in the browser's locale, whatever the page's language).
    assert!(away.text.contains("name=\"first_day\" value=\"2026-01-05\" placeholder=\"YYYY-MM-DD\""), "{}", away.text);
    let csrf = hidden(&away.text, "csrf");
    let inbox_of_carl = || async { page(&api, Method::GET, "/inbox", &carl, None).await.text };
    assert!(!inbox_of_carl().await.contains(&task), "carl holds none of mia's tasks yet");

    // Refused: a forged form, a name nobody signs in with, oneself, days that make no period.
    let send = |body: String| {
        let mia = mia.clone();
        let api = &api;
        async move { page(api, Method::POST, "/away", &mia, Some(&body)).await }
    };
    let days = "first_day=2026-01-05&last_day=2026-01-09";
    assert_eq!(send(format!("csrf=x&substitute=carl&{days}")).await.status, StatusCode::FORBIDDEN);
    let unknown = send(format!("csrf={csrf}&substitute=karl&{days}")).await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(unknown.text.contains("“karl” is not a user of this server"), "{}", unknown.text);
    assert!(
        unknown.text.contains("value=\"karl\"") && unknown.text.contains("value=\"2026-01-09\""),
        "kept: {}",
        unknown.text
    );
    let own = send(format!("csrf={csrf}&substitute=Mia&{days}")).await;
    assert_eq!(own.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(own.text.contains("you cannot stand in for yourself"), "{}", own.text);
    for bad in [
        "first_day=2026-01-09&last_day=2026-01-05",
        "first_day=2025-12-01&last_day=2026-01-04",
        "first_day=2026-01-05&last_day=friday",
        // Day first, as some write it: read two ways, so refused.
        "first_day=2026-01-05&last_day=09%2F01%2F2026",
    ] {
        let refused = send(format!("csrf={csrf}&substitute=carl&{bad}")).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert!(refused.text.contains("Give the first and the last day away as dates"), "{bad}: {}", refused.text);
    }
    assert!(!inbox_of_carl().await.contains(&task), "nothing refused was named");

    // Named: whole days on mia's clock, and carl's inbox holds her task. The days as people type
    // them: 2026/1/5 and 2026年1月9日.
    let typed = "first_day=2026%2F1%2F5&last_day=2026%E5%B9%B41%E6%9C%889%E6%97%A5";
    let named = send(format!("csrf={csrf}&substitute=+Carl+&{typed}")).await;
    assert_eq!(named.status, StatusCode::SEE_OTHER, "{}", named.text);
    let away = page(&api, Method::GET, "/away", &mia, None).await;
    assert!(
        away.text.contains("From 2026-01-05 to 2026-01-09 (Asia/Shanghai), <b>carl</b> sees and decides"),
        "{}",
        away.text
    );
    let zh = page(&api, Method::GET, "/away?lang=zh-CN", &mia, None).await;
    assert!(zh.text.contains("由 <b>carl</b> 代您查看并办理"), "{}", zh.text);
    assert!(inbox_of_carl().await.contains(&task), "carl stands in for mia");
    // Both inboxes say so: carl's whom he stands in for, mia's that she is away and until when.
    assert!(inbox_of_carl().await.contains("Today you stand in for mia"));
    let hers = page(&api, Method::GET, "/inbox", &mia, None).await;
    assert!(
        hers.text.contains("You are away to 2026-01-09, your last day away: carl decides the tasks assigned to you."),
        "{}",
        hers.text
    );
    // Only for oneself: carl's page shows no substitution of his own, and whom he stands in for.
    let his = page(&api, Method::GET, "/away?lang=en", &carl, None).await;
    assert!(his.text.contains("No substitute is named"), "{}", his.text);
    assert!(his.text.contains("Today you stand in for mia"), "{}", his.text);
    // A period named to the minute through the API reads with its times.
    let exact = serde_json::json!({"user": "carl", "from": "2026-01-05T09:30:00Z", "until": "2026-01-06T10:00:00Z"});
    api.call(Method::PUT, "/v1/users/me/substitute", Some("mia"), Some(exact)).await.expect(StatusCode::OK);
    let away = page(&api, Method::GET, "/away", &mia, None).await;
    assert!(
        away.text.contains("From 2026-01-05 17:30 (Asia/Shanghai) to 2026-01-06 18:00 (Asia/Shanghai)"),
        "{}",
        away.text
    );

    // Ended now: the task is mia's alone again.
    let ended = send(format!("csrf={csrf}&end=1")).await;
    assert_eq!(ended.status, StatusCode::SEE_OTHER, "{}", ended.text);
    let away = page(&api, Method::GET, "/away?lang=en", &mia, None).await;
    assert!(away.text.contains("No substitute is named"), "{}", away.text);
    assert!(!inbox_of_carl().await.contains(&task), "the substitution ended");
    assert!(!inbox_of_carl().await.contains("stand in for"));
    assert!(!page(&api, Method::GET, "/inbox", &mia, None).await.text.contains("You are away"));
}
