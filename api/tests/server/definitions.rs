//! Deploying `.flow` source, listing and reading definitions, graphs.

use axum::http::{Method, StatusCode};

use crate::harness::Api;

const SMALL: &str = r#"process small_approval "Small approval" {
  input { amount: money, requested_by: user }
  var approve: bool = false
  start -> review
  approval review "Review {amount}" {
    role sales.manager
    not by requested_by
    form { approve: bool }
    due 24h
  } -> decide {
    when approve -> yes
    otherwise -> no
  }
  end yes "Approved"
  end no "Rejected"
}
"#;

async fn deploy(api: &Api, user: &str, source: &str) -> crate::harness::Answer {
    api.raw(Method::POST, "/v1/definitions?filename=small.flow", Some(user), Some(source), "text/plain").await
}

#[tokio::test]
async fn a_source_compiles_against_the_deployed_roles_and_deploys_idempotently() {
    let Some(api) = Api::new().await else { return };
    let first = deploy(&api, "ada", SMALL).await;
    let body = first.expect(StatusCode::CREATED);
    assert_eq!(body["key"], "small_approval");
    assert_eq!(body["version"], 1);
    assert_eq!(body["created"], true);
    assert_eq!(body["hash"].as_str().unwrap().len(), 64);
    assert_eq!(body["warnings"], serde_json::json!([]));
    let again = deploy(&api, "ada", SMALL).await;
    assert_eq!(again.expect(StatusCode::CREATED)["version"], 1);
    assert_eq!(again.body["created"], false);
    let changed = deploy(&api, "ada", &SMALL.replace("due 24h", "due 48h")).await;
    assert_eq!(changed.expect(StatusCode::CREATED)["version"], 2);
    // The stored source keeps the roles it compiled against, so later deployments still resolve.
    let read = api.get("/v1/definitions/small_approval", "sam").await;
    let body = read.expect(StatusCode::OK);
    assert_eq!((body["version"].as_u64(), body["latest_version"].as_u64()), (Some(2), Some(2)));
    assert!(body["source"].as_str().unwrap().contains("sales.manager"));
    assert_eq!(body["compiled"]["key"], "small_approval");
    let v1 = api.get("/v1/definitions/small_approval?version=1", "sam").await;
    assert_eq!(v1.expect(StatusCode::OK)["version"], 1);
}

#[tokio::test]
async fn a_source_counts_business_days_on_a_deployed_calendar() {
    let Some(api) = Api::new().await else { return };
    // `calendar cn` comes from processes/calendars.flow, deployed with the reference processes.
    let on_calendar = SMALL
        .replace("  start -> review", "  calendar cn\n  start -> review")
        .replace("due 24h", "due 3 business days");
    let body = deploy(&api, "ada", &on_calendar).await.expect(StatusCode::CREATED).clone();
    assert_eq!(body["key"], "small_approval");
    let read = api.get("/v1/definitions/small_approval", "sam").await;
    let body = read.expect(StatusCode::OK);
    assert_eq!(body["compiled"]["calendar"]["zone"], "Asia/Shanghai");
    // The stored source keeps the calendar it compiled against, so later deployments resolve it.
    assert!(body["source"].as_str().unwrap().contains("calendar cn \"China (mainland)\""));
    let unknown = deploy(&api, "ada", &on_calendar.replace("calendar cn", "calendar cnn")).await;
    let body = unknown.expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.to_string().contains("E0109"), "{body}");
}

#[tokio::test]
async fn warnings_come_back_with_a_deployment() {
    let Some(api) = Api::new().await else { return };
    let answer = deploy(&api, "ada", &SMALL.replace("    due 24h\n", "")).await;
    let warnings = answer.expect(StatusCode::CREATED)["warnings"].as_array().unwrap().clone();
    assert_eq!(warnings.len(), 1, "{}", answer.text);
    assert_eq!(warnings[0]["code"], "W0503");
    assert_eq!(warnings[0]["severity"], "warning");
}

#[tokio::test]
async fn a_source_that_does_not_compile_answers_422_with_its_diagnostics() {
    let Some(api) = Api::new().await else { return };
    let broken = SMALL.replace("role sales.manager", "role sales.wizard").replace("-> yes", "-> nowhere");
    let answer = deploy(&api, "ada", &broken).await;
    let error = answer.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "compile_error");
    let diagnostics = error["details"]["diagnostics"].as_array().unwrap();
    assert!(diagnostics.len() >= 2, "{}", answer.text);
    for d in diagnostics {
        assert_eq!(d["file"], "small.flow");
        assert!(d["code"].as_str().unwrap().starts_with('E'), "{d}");
        assert!(d["line"].as_u64().unwrap() > 0 && d["column"].as_u64().unwrap() > 0, "{d}");
        assert!(d["rendered"].as_str().unwrap().contains("small.flow:"), "{d}");
    }
    let role = diagnostics.iter().find(|d| d["message"].as_str().unwrap().contains("sales.wizard")).unwrap();
    assert_eq!((role["line"].as_u64(), role["column"].as_u64()), (Some(6), Some(10)));
    let syntax = deploy(&api, "ada", "process {").await;
    let error = syntax.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "compile_error");
    assert_eq!(error["details"]["diagnostics"][0]["code"], "E0001");
    // Nothing was deployed.
    api.get("/v1/definitions/small_approval", "ada").await.expect_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn deploying_needs_the_admin_role_and_a_process() {
    let Some(api) = Api::new().await else { return };
    let refused = deploy(&api, "mia", SMALL).await;
    let error = refused.expect_error(StatusCode::FORBIDDEN, "missing_role");
    assert_eq!(error["details"]["required_role"], "admin");
    deploy(&api, "ada", "roles {\n  sales.intern \"Intern\"\n}\n")
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "no_process");
    deploy(&api, "ada", "  \n").await.expect_error(StatusCode::BAD_REQUEST, "invalid_body");
    let bad_utf8 = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/v1/definitions")
        .header("authorization", "Bearer token-ada")
        .body(axum::body::Body::from(vec![0xff, 0xfe, 0x41]))
        .unwrap();
    api.send(bad_utf8).await.expect_error(StatusCode::BAD_REQUEST, "invalid_body");
}

#[tokio::test]
async fn definitions_are_listed_read_and_drawn() {
    let Some(api) = Api::new().await else { return };
    let list = api.get("/v1/definitions", "sam").await;
    let keys: Vec<&str> =
        list.expect(StatusCode::OK).as_array().unwrap().iter().map(|d| d["key"].as_str().unwrap()).collect();
    assert_eq!(
        keys,
        ["collect_then_reconcile", "month_end_close", "order_approval", "order_to_cash", "ship_then_invoice"]
    );
    assert_eq!(list.body[2]["title"], "Order approval");
    api.get("/v1/definitions/nope", "sam").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    api.get("/v1/definitions/order_approval?version=7", "sam").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    api.get("/v1/definitions/order_approval?versoin=1", "sam")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_query");
    let dot = api.get("/v1/definitions/order_approval/graph?format=dot", "sam").await;
    assert_eq!(dot.status, StatusCode::OK);
    assert!(dot.text.starts_with("digraph"), "{}", dot.text);
    let mermaid = api.get("/v1/definitions/order_approval/graph?format=mermaid", "sam").await;
    assert!(mermaid.text.starts_with("flowchart"), "{}", mermaid.text);
    let json = api.get("/v1/definitions/order_approval/graph", "sam").await;
    assert_eq!(json.expect(StatusCode::OK)["key"], "order_approval");
    api.get("/v1/definitions/order_approval/graph?format=svg", "sam")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_query");
    api.get("/v1/definitions/nope/graph", "sam").await.expect_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_filename_that_would_break_out_of_its_comment_is_400() {
    let Some(api) = Api::new().await else { return };
    // `# file: {name}` heads the stored source: a line break would make the rest of the name
    // source that later deployments compile against.
    let path = "/v1/definitions?filename=a.flow%0Aroles%20%7B%20intruder%20%7D";
    let answer = api.raw(Method::POST, path, Some("ada"), Some(SMALL), "text/plain").await;
    answer.expect_error(StatusCode::BAD_REQUEST, "invalid_query");
    api.get("/v1/definitions/small_approval", "ada").await.expect_error(StatusCode::NOT_FOUND, "not_found");
}

/// A future whose longest single poll is measured: the time it held its thread at once.
struct LongestPoll<F: std::future::Future> {
    inner: std::pin::Pin<Box<F>>,
    longest: std::time::Duration,
}

impl<F: std::future::Future> std::future::Future for LongestPoll<F> {
    type Output = (F::Output, std::time::Duration);

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let started = std::time::Instant::now();
        let polled = self.inner.as_mut().poll(cx);
        self.longest = self.longest.max(started.elapsed());
        polled.map(|output| (output, self.longest))
    }
}

/// A chain of `n` service tasks that leads to no end.
fn long_broken_source(n: usize) -> String {
    let mut source = String::from("process long_chain \"Long chain\" {\n  start -> t0\n");
    for k in 0..n {
        source.push_str(&format!("  task t{k} \"Step {k}\" {{ job \"step.run\" }} -> t{}\n", k + 1));
    }
    source.push_str("}\n");
    source
}

#[tokio::test]
async fn compiling_a_large_source_does_not_hold_the_async_thread() {
    let Some(api) = Api::new().await else { return };
    let source = long_broken_source(3000);
    let started = std::time::Instant::now();
    let request = api.raw(Method::POST, "/v1/definitions", Some("ada"), Some(&source), "text/plain");
    let (answer, longest) = LongestPoll { inner: Box::pin(request), longest: std::time::Duration::ZERO }.await;
    let total = started.elapsed();
    answer.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "compile_error");
    assert!(longest * 2 < total, "one poll held the thread for {longest:?} of {total:?}: the compile ran on it");
}
