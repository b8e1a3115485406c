//! The pages in a real browser: headless Chromium driven over WebDriver (chromedriver) against
//! the real `serve` binary with its demo company and in-process workers.
//!
//! Skipped with a loud notice where Chromium or chromedriver is missing, and a failure instead
//! when `CI` is set (`.ci/run` installs Debian's `chromium` and `chromium-driver`). With
//! `CLOVERLEAF_SCREENSHOTS=DIR` the inbox, a case, the finance board, its budgets, a case's
//! history, the customer letters and more are saved as PNG files there (`docs/screenshots/`
//! holds the README's; cargo runs the test in `api/`, so give an absolute path).

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use cloverleaf_testkit::eventually;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// False (after a loud notice) when there is no browser here and `CI` is not set.
fn browser_available() -> bool {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    let notice = format!(
        "Chromium ({CHROMIUM}) or chromedriver ({CHROMEDRIVER}) is missing: apt-get install chromium chromium-driver"
    );
    assert!(std::env::var_os("CI").is_none(), "{notice}; CI is set, so the browser tests must run");
    eprintln!("\n*** SKIPPED: browser tests: {notice} ***\n");
    false
}

/// A fresh directory under the system's temp dir.
fn scratch_dir(name: &str) -> PathBuf {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).unwrap();
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let dir = std::env::temp_dir().join(format!("cloverleaf-{name}-{suffix}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `cloverleaf serve` on a free port in `dir`; the child, its base URL and the demo tokens.
fn serve(dir: &Path) -> (Running, String, std::collections::BTreeMap<String, String>) {
    let processes = format!("{}/../processes", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_cloverleaf"))
        .current_dir(dir)
        .args(["serve", "--processes", &processes, "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let address = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some(rest) = line.split("serving on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    // The demo tokens, when this start wrote them (a configuration given beforehand has none).
    let tokens = std::fs::read_to_string(dir.join("cloverleaf.tokens"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| Some((l.split_whitespace().next()?.to_string(), l.split('"').nth(1)?.to_string())))
        .collect();
    (Running(child), format!("http://{address}"), tokens)
}

/// A free TCP port on the loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A WebDriver session of headless Chromium.
struct Browser {
    http: reqwest::Client,
    base: String,
    _driver: Running,
}

impl Browser {
    async fn start(lang: &str) -> Browser {
        let port = free_port();
        let driver = Running(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver starts"),
        );
        let http = reqwest::Client::new();
        let root = format!("http://127.0.0.1:{port}");
        eventually("chromedriver to answer", || async {
            let status = http.get(format!("{root}/status")).send().await.ok()?.json::<Value>().await.ok()?;
            status["value"]["ready"].as_bool().filter(|r| *r)
        })
        .await;
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", format!("--lang={lang}"), format!("--accept-lang={lang}")
            ]}
        }}});
        let session: Value =
            http.post(format!("{root}/session")).json(&capabilities).send().await.unwrap().json().await.unwrap();
        let id = session["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {session}")).to_string();
        Browser { http, base: format!("{root}/session/{id}"), _driver: driver }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        answer["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    async fn find(&self, css: &str) -> String {
        let found =
            self.call(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await;
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no element `{css}` on the page: {found}"))
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{element}/value"), Some(json!({"text": text}))).await;
    }

    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{element}/click"), Some(json!({}))).await;
    }

    /// The text a person sees on the page.
    async fn text(&self) -> String {
        let body = self.find("body").await;
        self.call(reqwest::Method::GET, &format!("/element/{body}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits until the page (after a click that navigates, say) shows `needle`; its text.
    async fn wait_for(&self, needle: &str) -> String {
        let what = format!("`{needle}` on the page");
        eventually(&what, || async {
            let text = self.text().await;
            text.contains(needle).then_some(text)
        })
        .await
    }

    /// Presses one key (a WebDriver key code: `\u{E004}` Tab, `\u{E007}` Enter).
    async fn press(&self, key: &str) {
        let actions = json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
            {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]}]});
        self.call(reqwest::Method::POST, "/actions", Some(actions)).await;
    }

    /// Presses Tab until the focused element matches `css`; fails after `limit` presses.
    async fn tab_to(&self, css: &str, limit: usize) {
        let probe = format!("return document.activeElement && document.activeElement.matches({css:?});");
        for _ in 0..limit {
            if self.script(&probe).await == Value::Bool(true) {
                return;
            }
            self.press("\u{E004}").await;
        }
        panic!("`{css}` not reached with {limit} presses of Tab");
    }

    /// Runs a script in the page and returns its value.
    async fn script(&self, script: &str) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": []}))).await
    }

    async fn resize(&self, width: u32, height: u32) {
        self.call(reqwest::Method::POST, "/window/rect", Some(json!({"width": width, "height": height}))).await;
    }

    /// Fails unless the page fits the window's width: nothing makes it scroll sideways.
    async fn assert_fits_width(&self, page: &str) {
        let widths = self.script("return [document.documentElement.scrollWidth, window.innerWidth];").await;
        let (page_width, window) = (widths[0].as_i64().unwrap(), widths[1].as_i64().unwrap());
        assert!(page_width <= window, "{page} is {page_width} px wide in a {window} px window");
    }

    async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_string()
    }

    async fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("CLOVERLEAF_SCREENSHOTS") else { return };
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64_decode(png.as_str().unwrap());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(Path::new(&dir).join(format!("{name}.png")), bytes).unwrap();
    }

    async fn sign_in(&self, server: &str, token: &str) {
        self.goto(&format!("{server}/login")).await;
        self.type_into("#token", token).await;
        self.click("#sign-in").await;
    }

    async fn sign_out(&self) {
        self.click("header form button").await;
        self.wait_for("Access token").await;
    }

    async fn close(self) {
        self.call(reqwest::Method::DELETE, "", None).await;
    }
}

/// Standard base64, as WebDriver sends screenshots.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = text.bytes().filter(|c| !matches!(c, b'=' | b'\n' | b'\r')).collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, c)| acc | (u32::from(value(*c)) << (18 - 6 * i)));
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len() - 1]);
    }
    out
}

/// GETs `path` of the API with `token`; the JSON answer, `None` when there is none.
async fn api_get(server: &str, token: &str, path: &str) -> Option<Value> {
    let answer = reqwest::Client::new().get(format!("{server}{path}")).bearer_auth(token).send().await.ok()?;
    answer.json().await.ok()
}

/// POSTs `body` to `path` of the API with `token`; the JSON answer (`null` for an empty one),
/// after checking the status is a success.
async fn api_post(server: &str, token: &str, path: &str, body: Value) -> Value {
    let answer = reqwest::Client::new().post(format!("{server}{path}")).bearer_auth(token).json(&body).send().await;
    let answer = answer.unwrap();
    let status = answer.status();
    let text = answer.text().await.unwrap();
    assert!(status.is_success(), "POST {path}: {status} {text}");
    if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() }
}

/// Starts an order to cash over the API as `user`; its id.
async fn order(server: &str, token: &str, order: &str, amount: &str, requested_by: Option<&str>) -> String {
    let mut variables = json!({"order_id": order, "customer_id": "C-004", "amount": amount});
    if let Some(who) = requested_by {
        variables["requested_by"] = json!(who);
    }
    let body = json!({"process": "order_to_cash", "business_key": order, "variables": variables});
    let answer = api_post(server, token, "/v1/instances", body).await;
    answer["id"].as_str().unwrap_or_else(|| panic!("not started: {answer}")).to_string()
}

/// Waits until the inbox (over the API) of the token's user holds a task whose title contains
/// `title_part`; its id.
async fn task_for(server: &str, token: &str, title_part: &str) -> String {
    eventually("the approval to reach the inbox", || async {
        let tasks = api_get(server, token, "/v1/tasks").await?;
        tasks.as_array()?.iter().find(|t| t["title"].as_str().is_some_and(|s| s.contains(title_part)))?["id"]
            .as_str()
            .map(str::to_string)
    })
    .await
}

/// A process whose only job an operator's test makes fail: no retries, so one failure is an
/// incident.
const FLAKY: &str = r#"process flaky_export "Export the day's invoices" {
  start -> export
  task export "Export to the share" { job "qa.export"  retry 0 } -> done
  end done "Exported"
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_sign_in_decide_and_see_only_what_their_roles_allow() {
    if !browser_available() {
        return;
    }
    let dir = scratch_dir("browser");
    let (server_process, server, tokens) = serve(&dir);
    let token = |user: &str| tokens.get(user).unwrap_or_else(|| panic!("no token for {user}")).clone();
    let browser = Browser::start("en-US").await;

    // A wrong token is refused on the page, in words.
    browser.goto(&format!("{server}/inbox")).await;
    assert!(browser.url().await.ends_with("/login"), "unsigned visitors are sent to sign in");
    browser.sign_in(&server, "not-a-token").await;
    browser.wait_for("That token is not valid").await;

    // The sales manager sees the order awaiting her approval, with its amount and customer.
    let id = order(&server, &token("sam"), "SO-2001", "24500.00", None).await;
    let task = task_for(&server, &token("mia"), "SO-2001").await;
    browser.sign_in(&server, &token("mia")).await;
    let inbox = browser.wait_for("Approve order SO-2001").await;
    assert!(inbox.contains("Approve order SO-2001"), "{inbox}");
    assert!(inbox.contains("CNY 24,500.00") && inbox.contains("C-004"), "amount and customer shown: {inbox}");
    assert!(inbox.contains("Approve order SO-1001"), "the demo order entered at the first start waits too: {inbox}");
    assert!(inbox.contains("(Asia/Shanghai)"), "times in the reader's zone: {inbox}");
    assert!(
        inbox.contains("Order approval") && inbox.contains("Offered to Sales manager"),
        "titles, not keys: {inbox}"
    );
    assert!(!inbox.contains("Finance board"), "no finance board for sales: {inbox}");
    browser.screenshot("inbox").await;

    // She approves it from the inbox with the keyboard alone: the order moves on to shipping.
    browser.tab_to(&format!("a[href='/tasks/{task}']"), 40).await;
    browser.press("\u{E007}").await;
    browser.wait_for("Business context").await;
    browser.tab_to("#approve-yes", 40).await;
    browser.press(" ").await;
    browser.tab_to("#submit", 40).await;
    browser.press("\u{E007}").await;
    browser.wait_for("Inbox").await;
    eventually("the order to wait for its dispatch", || async {
        let case = api_get(&server, &token("sam"), &format!("/v1/instances/{id}")).await?;
        (case["variables"]["approval_outcome"] == "approved").then_some(())
    })
    .await;
    browser.goto(&format!("{server}/cases/{id}")).await;
    let case = browser.wait_for("Where it stands").await;
    assert!(case.contains("Order to cash") && case.contains("Approval outcome"), "{case}");
    browser.screenshot("case").await;

    // An order she entered for the rep: the task's page says at once that she may not decide
    // it, with no form she could only be refused on.
    order(&server, &token("mia"), "SO-2002", "24500.00", Some("sam")).await;
    let task = task_for(&server, &token("mia"), "SO-2002").await;
    browser.goto(&format!("{server}/tasks/{task}")).await;
    let refused = browser.wait_for("You may not decide this task").await;
    let forms = browser.script("return document.querySelectorAll('form.decision, #submit, #claim').length").await;
    assert_eq!(forms, json!(0), "no decision form, claim or submit button: {refused}");
    assert!(refused.contains("You may not decide this task"), "{refused}");
    assert!(
        refused.contains("someone other than the requester or whoever entered the request for them."),
        "the rule is said in words: {refused}"
    );
    browser.screenshot("refusal").await;
    browser.sign_out().await;

    // Logistics reports the dispatch: the invoice is booked.
    let dispatch =
        json!({"name": "shipment.dispatched", "correlation_key": "SO-2001", "variables": {"shipment_id": "SH-1"}});
    let dispatched = api_post(&server, &token("ada"), "/v1/messages", dispatch).await;
    assert_eq!(dispatched["outcome"], "delivered", "{dispatched}");
    eventually("the invoice of SO-2001", || async {
        let case = api_get(&server, &token("sam"), &format!("/v1/instances/{id}")).await?;
        case["variables"]["invoice_id"].as_str().filter(|i| !i.is_empty()).map(str::to_string)
    })
    .await;

    // The sales rep reaches no finance figure: not the board, not his order's ledger entries.
    browser.sign_in(&server, &token("sam")).await;
    browser.wait_for("Signed in as sam").await;
    browser.goto(&format!("{server}/cases/{id}")).await;
    let his = browser.wait_for("Where it stands").await;
    assert!(!his.contains("Ledger entries"), "{his}");
    browser.goto(&format!("{server}/board")).await;
    let board = browser.wait_for("Not allowed").await;
    assert!(board.contains("Not allowed") && !board.contains("Receivables by age"), "{board}");
    browser.sign_out().await;

    // The CFO's board shows the demo company's aging and DSO.
    browser.sign_in(&server, &token("carl")).await;
    browser.wait_for("Signed in as carl").await;
    browser.goto(&format!("{server}/board")).await;
    let board = browser.wait_for("Finance board").await;
    for label in [
        "Receivables by age",
        "Not yet due",
        "1-30 days overdue",
        "Over 90 days overdue",
        "Days sales outstanding",
        "CNY ",
        "Gross profit by customer",
    ] {
        assert!(board.contains(label), "`{label}` on the board: {board}");
    }
    assert!(board.contains("Invoiced and received by week"), "{board}");
    assert!(
        board.contains("Open work by role") && board.contains("Sales manager") && !board.contains("sales.manager"),
        "{board}"
    );
    // The alert rules beside the processes have judged the demo company; the CFO acknowledges one.
    eventually("the alert rules to have judged the demo company", || async {
        browser.goto(&format!("{server}/board")).await;
        let text = browser.text().await;
        text.contains("A customer owes more than CNY 5,000.00 past due").then_some(())
    })
    .await;
    browser.click("div.alert.critical form button").await;
    let seen = browser.wait_for("Seen by carl").await;
    assert!(seen.contains("Days sales outstanding above 60 days"), "{seen}");
    browser.screenshot("board").await;

    // The month's budgets: an order was reserved on cost centre EAST beyond what the controller
    // now budgets from the board, so EAST stands out as over budget.
    let ledger = cloverleaf_finance::Ledger::connect(&dir.join("cloverleaf.db").display().to_string()).await.unwrap();
    let now = chrono::Utc::now();
    ledger.reserve_budget("browser-over", now, "SO-2001", "EAST", "24500.00".parse().unwrap()).await.unwrap();
    browser.type_into("#cost-centre", "EAST").await;
    browser.type_into("#amount", "20,000.00").await;
    browser.click("#set-budget").await;
    let budgets = browser.wait_for("over budget").await;
    assert!(budgets.contains("CNY 20,000.00") && budgets.contains("-CNY 4,500.00"), "{budgets}");
    browser.screenshot("budgets").await;
    browser.goto(&format!("{server}/cases/{id}")).await;
    let booked = browser.wait_for("Ledger entries").await;
    assert!(booked.contains("Accounts receivable") && booked.contains("Revenue"), "{booked}");
    // In Chinese the entries read in Chinese, their descriptions too; then back to English.
    browser.goto(&format!("{server}/cases/{id}?lang=zh-CN")).await;
    let booked = browser.wait_for("会计分录").await;
    assert!(booked.contains("开具发票 ") && !booked.contains("invoice 20"), "{booked}");
    // The diagram's steps are titled for this order, as its tasks are.
    assert!(booked.contains("订单 SO-2001 坏账核销") && !booked.contains("{order_id}"), "{booked}");
    browser.screenshot("case-ledger-zh").await;
    browser.goto(&format!("{server}/cases/{id}?lang=en")).await;
    browser.wait_for("Ledger entries").await;
    // Order to cash's diagram wraps instead of scrolling sideways on a 1280 px screen.
    let diagram = browser
        .script("const w = document.querySelector('.diagram-wrap'); return [w.scrollWidth, w.clientWidth];")
        .await;
    let (wide, frame) = (diagram[0].as_i64().unwrap(), diagram[1].as_i64().unwrap());
    assert!(wide <= frame, "the diagram is {wide} px wide in a {frame} px frame");
    browser.screenshot("case-ledger").await;

    // Figures lead to the documents behind them: the oldest receivables to their invoices, a
    // customer's gross profit to its orders, an order to its case.
    browser.goto(&format!("{server}/board")).await;
    browser.wait_for("Receivables by age").await;
    browser.click("svg.bars a[href='/board/receivables?bucket=90%2B']").await;
    let oldest = browser.wait_for("Open receivables").await;
    assert!(oldest.contains("Age Over 90 days overdue"), "{oldest}");
    let rows: Vec<&str> = oldest.lines().filter(|l| l.starts_with("INV")).collect();
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r.ends_with("Over 90 days overdue")),
        "only invoices over 90 days past due: {oldest}"
    );
    // The list is offered as a spreadsheet with the same filter.
    assert!(oldest.contains("Download as CSV (Excel)"), "{oldest}");
    let csv = browser.script("return document.querySelector('a[data-csv]').getAttribute('href');").await;
    assert_eq!(csv.as_str(), Some("/board/receivables.csv?bucket=90%2B"), "{csv}");
    browser.screenshot("receivables").await;
    browser.goto(&format!("{server}/board")).await;
    browser.wait_for("Gross profit by customer").await;
    browser.click("a[href='/board/orders?customer=C-004']").await;
    let orders = browser.wait_for("Gross profit by order").await;
    assert!(orders.contains("SO-2001") && orders.contains("C-004") && orders.contains("Total"), "{orders}");
    browser.click("a[href='/cases?business_key=SO-2001']").await;
    browser.wait_for("Orders and cases").await;
    browser.click(&format!("a[href='/cases/{id}']")).await;
    browser.wait_for("Where it stands").await;

    // The controller reviews the month-end reports the close produced: the task links them.
    let close =
        api_post(&server, &token("carl"), "/v1/instances", json!({"process": "month_end_close", "variables": {}}))
            .await;
    assert!(close["id"].is_string(), "{close}");
    let review = task_for(&server, &token("carl"), "Review the month-end reports").await;
    browser.goto(&format!("{server}/tasks/{review}")).await;
    browser.wait_for("Review the month-end reports").await;
    browser.click("dd[data-var='aging_report'] a").await;
    let aging = browser.wait_for("Receivables aging").await;
    assert!(aging.contains("Days past due") && aging.contains("Total") && aging.contains("CNY "), "{aging}");
    browser.screenshot("month-end-aging").await;

    browser.sign_out().await;

    // An operator deploys a process from the page, a job of it fails into an incident, and
    // the operator retries it from the operations page: the job is offered again.
    browser.sign_in(&server, &token("ada")).await;
    browser.wait_for("Signed in as ada").await;
    browser.goto(&format!("{server}/ops")).await;
    browser.wait_for("Deploy a process").await;
    browser.type_into("#source", FLAKY).await;
    browser.click("#deploy").await;
    browser.wait_for("Deployed").await;
    let flaky =
        api_post(&server, &token("ada"), "/v1/instances", json!({"process": "flaky_export", "variables": {}})).await;
    let flaky = flaky["id"].as_str().unwrap_or_else(|| panic!("started: {flaky}")).to_string();
    let fetch = json!({"worker_id": "browser-test", "topics": ["qa.export"], "max_jobs": 1, "lock_ms": 60_000});
    let jobs = api_post(&server, &token("robot"), "/v1/jobs/fetch-and-lock", fetch.clone()).await;
    let job = &jobs.as_array().unwrap_or_else(|| panic!("jobs: {jobs}"))[0];
    let failed = json!({"epoch": job["epoch"], "message": "the export share is offline"});
    api_post(&server, &token("robot"), &format!("/v1/jobs/{}/fail", job["id"].as_str().unwrap()), failed).await;
    browser.goto(&format!("{server}/ops")).await;
    let ops = browser.wait_for("the export share is offline").await;
    assert!(ops.contains("Open incidents"), "{ops}");
    assert!(ops.contains("failed once, no retries left"), "the cause in words: {ops}");
    browser.screenshot("incident").await;
    browser.goto(&format!("{server}/ops?lang=zh-CN")).await;
    let zh = browser.wait_for("重试次数已用完").await;
    assert!(zh.contains("自动任务 qa.export 失败 1 次，重试次数已用完：the export share is offline"), "{zh}");
    browser.screenshot("incident-zh").await;
    // A source that does not compile: in Chinese each diagnostic is placed and explained, the
    // compiler's own text below it; the language switch then reloads the operations page.
    browser.type_into("#source", "process broken \"Broken\" {\n  start -> nowhere\n  end done \"Done\"\n}\n").await;
    browser.click("#deploy").await;
    let refused = browser.wait_for("编译器原文").await;
    assert!(refused.contains("第 2 行第 12 列 错误 E0101：`->` 指向的节点不存在"), "{refused}");
    browser.screenshot("deploy-diagnostics-zh").await;
    browser.click("a[hreflang='en']").await;
    browser.wait_for("Open incidents").await;
    assert!(browser.url().await.ends_with("/ops?lang=en"), "{}", browser.url().await);
    browser.goto(&format!("{server}/ops?lang=en")).await;
    browser.wait_for("Open incidents").await;
    browser.click(&format!("form[action^='/ops/incidents/{flaky}.'] button")).await;
    eventually("the incident to be resolved", || async {
        let open = api_get(&server, &token("ada"), "/v1/incidents").await?;
        open.as_array()?.iter().all(|i| i["instance_id"] != flaky.as_str()).then_some(())
    })
    .await;
    let ops = browser.wait_for("Open incidents").await;
    assert!(!ops.contains("the export share is offline"), "retried: {ops}");
    let again = api_post(&server, &token("robot"), "/v1/jobs/fetch-and-lock", fetch).await;
    assert_eq!(again[0]["instance_id"], flaky.as_str(), "the job is offered again: {again}");

    // The operator repairs the order by hand; its history says so in words.
    let repair = json!({"action": "set_variable", "name": "legal_note", "value": "Delivery date disputed by the buyer",
        "reason": "call with C-004's buyer"});
    api_post(&server, &token("ada"), &format!("/v1/instances/{id}/modifications"), repair).await;
    browser.goto(&format!("{server}/cases/{id}#history")).await;
    let history = browser.wait_for("by hand").await;
    assert!(
        history.contains("Set legal note to Delivery date disputed by the buyer by hand: call with C-004's buyer"),
        "{history}"
    );

    // At a phone's width no page scrolls sideways.
    browser.resize(390, 844).await;
    for path in
        ["/inbox", "/cases", &format!("/cases/{id}"), "/board", "/board/receivables", "/letters", "/ops", "/away"]
    {
        browser.goto(&format!("{server}{path}")).await;
        browser.wait_for("Signed in as ada").await;
        browser.assert_fits_width(path).await;
    }
    // The receivables keep an invoice's number and amount on one line: the table scrolls instead.
    browser.goto(&format!("{server}/board/receivables")).await;
    browser.wait_for("Signed in as ada").await;
    let wrap = browser.script("return getComputedStyle(document.querySelector('table.figures td')).whiteSpace").await;
    assert_eq!(wrap, json!("nowrap"));
    browser.goto(&format!("{server}/board")).await;
    browser.wait_for("Finance board").await;
    browser.screenshot("board-phone").await;
    browser.resize(1280, 1000).await;

    // Going away: the administrator names carl for today, sees it in both languages, ends it.
    browser.click("a[href='/away']").await;
    browser.wait_for("No substitute is named").await;
    browser.type_into("#substitute", "carl").await;
    // The last day typed as some write it (2026/12/6 for 2026-12-06): the same day.
    let today = browser.script("return document.querySelector('#first-day').value;").await;
    let today = today.as_str().expect("the first day offered");
    let (year, rest) = today.split_once('-').expect("offered as YYYY-MM-DD");
    let (month, day) = rest.split_once('-').expect("offered as YYYY-MM-DD");
    let typed = format!("{year}/{}/{}", month.trim_start_matches('0'), day.trim_start_matches('0'));
    browser.type_into("#last-day", &typed).await;
    browser.click("#name-substitute").await;
    let away = browser.wait_for("sees and decides").await;
    assert!(away.contains("carl sees and decides the tasks assigned to you"), "{away}");
    browser.screenshot("away").await;
    browser.goto(&format!("{server}/away?lang=zh-CN")).await;
    let zh = browser.wait_for("代您查看并办理").await;
    assert!(zh.contains("由 carl 代您查看并办理") && zh.contains("（北京时间）"), "{zh}");
    browser.screenshot("away-zh").await;
    browser.goto(&format!("{server}/away?lang=en")).await;
    browser.wait_for("sees and decides").await;
    browser.click("#end-away").await;
    browser.wait_for("No substitute is named").await;
    browser.sign_out().await;
    browser.sign_in(&server, &token("carl")).await;
    browser.wait_for("Signed in as carl").await;

    // The same pages in Chinese.
    browser.goto(&format!("{server}/board?lang=zh-CN")).await;
    let zh = browser.wait_for("财务看板").await;
    assert!(zh.contains("财务看板") && zh.contains("应收账龄") && zh.contains("¥"), "{zh}");
    // Alerts read as their rules word them in Chinese.
    assert!(zh.contains("客户逾期欠款超过 ¥5,000.00") && !zh.contains("A customer owes more"), "{zh}");
    browser.screenshot("board-zh").await;
    browser.goto(&format!("{server}/board?lang=zh-CN#budgets")).await;
    let zh = browser.wait_for("已超支").await;
    assert!(zh.contains("各成本中心预算") && zh.contains("-¥4,500.00"), "{zh}");
    browser.screenshot("budgets-zh").await;
    browser.goto(&format!("{server}/cases/{id}#history")).await;
    let zh = browser.wait_for("手工将法务备注改为").await;
    assert!(zh.contains("：call with C-004's buyer") && zh.contains("发起"), "{zh}");
    // Steps and the process are named as the process words them in Chinese.
    assert!(zh.contains("审批订单") && zh.contains("发货并开票") && !zh.contains("Ship and invoice"), "{zh}");
    // The standard chart's accounts by their Chinese names.
    assert!(
        zh.contains("1200 应收账款") && zh.contains("4000 主营业务收入") && !zh.contains("Accounts receivable"),
        "{zh}"
    );
    browser.screenshot("case-history-zh").await;
    browser.goto(&format!("{server}/inbox")).await;
    browser.wait_for("待办").await;
    browser.screenshot("inbox-zh").await;
    browser.goto(&format!("{server}/inbox?lang=en")).await;
    browser.wait_for("Inbox").await;
    browser.sign_out().await;

    // Customer letters: the server starts again with a mail relay (which does not answer) for
    // them. A customer without an address gets nothing: that letter is not delivered until the
    // AR clerk, the address put right, sends it again.
    drop(server_process);
    let relay = free_port();
    let mut config = std::fs::read_to_string(dir.join("cloverleaf.toml")).unwrap();
    config.push_str(&format!(
        "\n[smtp]\nhost = \"127.0.0.1\"\nport = {relay}\nfrom = \"cloverleaf@example.com\"\n\n[[email]]\nkinds = [\"invoice_notice\", \"dunning_letter\"]\n"
    ));
    std::fs::write(dir.join("cloverleaf.toml"), config).unwrap();
    sqlx::query("UPDATE customers SET email = NULL WHERE id = 'C-007'").execute(ledger.pool()).await.unwrap();
    ledger.notify("browser-notice", now, "C-007", "INV-OB-0005", "invoice_issued").await.unwrap();
    ledger.send_dunning("browser-dunning", now, "INV-OB-0005", "C-007", 1).await.unwrap();
    let (_again, server, _) = serve(&dir);
    let dead = eventually("the letters to C-007 to be given up", || async {
        let dead = api_get(&server, &token("arlo"), "/v1/outbox?state=dead").await?;
        let ids: Vec<String> = dead.as_array()?.iter().filter_map(|l| l["id"].as_str().map(str::to_string)).collect();
        (ids.len() >= 2).then_some(ids)
    })
    .await;
    browser.sign_in(&server, &token("arlo")).await;
    browser.wait_for("Signed in as arlo").await;
    browser.goto(&format!("{server}/letters")).await;
    let letters = browser.wait_for("Customer letters").await;
    for shown in ["Dunning letter", "Invoice notice", "Not delivered", "Send again", "has no valid email address"] {
        assert!(letters.contains(shown), "`{shown}` on the letters page: {letters}");
    }
    browser.screenshot("letters").await;
    sqlx::query("UPDATE customers SET email = 'ap@c7.example' WHERE id = 'C-007'")
        .execute(ledger.pool())
        .await
        .unwrap();
    browser.click(&format!("form[action='/letters/{}/retry'] button", dead[0])).await;
    browser.wait_for("Customer letters").await;
    let retried = dead[0].as_str();
    eventually("the letter to be on its way again", || async {
        let pending = api_get(&server, &token("arlo"), "/v1/outbox?state=pending").await?;
        pending.as_array()?.iter().any(|l| l["id"] == retried).then_some(())
    })
    .await;
    browser.goto(&format!("{server}/letters?lang=zh-CN")).await;
    let zh = browser.wait_for("客户函件").await;
    assert!(zh.contains("催款函") && zh.contains("未能送达") && zh.contains("发送中"), "{zh}");
    browser.screenshot("letters-zh").await;
    browser.close().await;
    ledger.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_password_signs_in_and_a_wrong_one_does_not() {
    if !browser_available() {
        return;
    }
    let dir = scratch_dir("password");
    let phc = cloverleaf::server::config::hash_password("correct horse battery").unwrap();
    let token_hash = cloverleaf_engine::store::sha256_hex(b"a-token-nobody-types");
    std::fs::write(
        dir.join("cloverleaf.toml"),
        format!(
            "[[users]]\nname = \"mia\"\nroles = [\"sales.manager\"]\ntoken_sha256 = \"{token_hash}\"\npassword_argon2 = \"{phc}\"\n"
        ),
    )
    .unwrap();
    let (_server, server, _) = serve(&dir);
    let browser = Browser::start("en-US").await;
    browser.goto(&format!("{server}/login")).await;
    browser.type_into("#user", "mia").await;
    browser.type_into("#password", "wrong horse").await;
    browser.click("#sign-in-password").await;
    let refused = browser.wait_for("do not match").await;
    assert!(!refused.contains("Signed in as"), "{refused}");
    browser.goto(&format!("{server}/login")).await;
    browser.type_into("#user", " Mia").await;
    browser.type_into("#password", "correct horse battery").await;
    browser.click("#sign-in-password").await;
    let inbox = browser.wait_for("Signed in as mia").await;
    assert!(inbox.contains("Inbox"), "{inbox}");
    browser.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archived_case_says_where_it_went_in_both_languages() {
    if !browser_available() {
        return;
    }
    let dir = scratch_dir("archived");
    let (_server, server, tokens) = serve(&dir);
    let token = |user: &str| tokens.get(user).unwrap_or_else(|| panic!("no token for {user}")).clone();
    // A small order goes straight through the approval (its checks done by the in-process workers).
    let variables = json!({"order_id": "SO-2077", "customer_id": "C-004", "amount": "100.00", "requested_by": "sam"});
    let body = json!({"process": "order_approval", "business_key": "SO-2077", "variables": variables});
    let answer = api_post(&server, &token("sam"), "/v1/instances", body).await;
    let id = answer["id"].as_str().unwrap_or_else(|| panic!("not started: {answer}")).to_string();
    eventually("the small order to be approved", || async {
        let instance = api_get(&server, &token("ada"), &format!("/v1/instances/{id}")).await?;
        (instance["status"] == "completed").then_some(())
    })
    .await;
    // The operator archives what has ended, beside the running server.
    let tomorrow = (chrono::Utc::now() + chrono::TimeDelta::days(1)).format("%Y-%m-%d").to_string();
    let live = format!("sqlite://{}", dir.join("cloverleaf.db").display());
    let into = format!("sqlite://{}", dir.join("archive-2026.db").display());
    let archived = Command::new(env!("CARGO_BIN_EXE_cloverleaf"))
        .args(["archive", "--db", &live, "--into", &into, "--ended-before", &tomorrow])
        .args(["--operator", "olga", "--label", "archive-2026"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&archived.stdout);
    assert_eq!(archived.status.code(), Some(0), "{printed}{}", String::from_utf8_lossy(&archived.stderr));

    // Its requester opens the case: it says, in each language, that it was archived and where.
    let pages = [
        ("en-US", "SO-2077 has ended and was moved to the archive archive-2026 on", "case-archived"),
        ("zh-CN", "SO-2077 已办结，并于", "case-archived-zh"),
    ];
    for (lang, archived_words, shot) in pages {
        let browser = Browser::start(lang).await;
        browser.sign_in(&server, &token("sam")).await;
        browser.wait_for("sam").await;
        browser.goto(&format!("{server}/cases/{id}")).await;
        let page = browser.wait_for(archived_words).await;
        assert!(page.contains("archive-2026"), "{page}");
        assert!(!page.contains(&id), "the order, not the engine's id: {page}");
        browser.screenshot(shot).await;
        browser.close().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
