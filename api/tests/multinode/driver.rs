//! The driver: the people and systems around the orders (sales, approvers, logistics, the bank,
//! an operator), over HTTP to whichever serve node is alive.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::task::JoinSet;

use crate::audit::serve_name;
use crate::fixture::{form, order};
use crate::{APPROVERS, LOOP_CONCURRENCY, POLL, START_CONCURRENCY, max_open, orders, stall_limit};

/// A serve node as the driver sees it.
pub(crate) struct Node {
    name: String,
    url: String,
    pub(crate) alive: AtomicBool,
}

/// The serve nodes behind one HTTP client: a request goes to a live node, and one that fails
/// for want of an answer (a dead node, a reset connection) or with a 5xx is sent again to the
/// next live node. Everything the driver sends may be sent twice: starts and messages carry a
/// message id, and a second claim or completion of a task answers 409.
pub(crate) struct Cluster {
    pub(crate) nodes: Vec<Node>,
    http: reqwest::Client,
    next: AtomicUsize,
    /// Requests sent again because their node had died.
    pub(crate) resent: AtomicUsize,
}

impl Cluster {
    pub(crate) fn new(urls: &[String]) -> Cluster {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(30))
            .build()
            .expect("the HTTP client builds");
        let nodes = urls
            .iter()
            .enumerate()
            .map(|(n, url)| Node { name: serve_name(n), url: url.clone(), alive: AtomicBool::new(true) })
            .collect();
        Cluster { nodes, http, next: AtomicUsize::new(0), resent: AtomicUsize::new(0) }
    }

    /// Sends a request to node `prefer` (or the next in turn) if it lives, else to the next one
    /// alive; returns the status and the JSON body of the first answer below 500.
    pub(crate) async fn send(
        &self,
        prefer: Option<usize>,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let first = prefer.unwrap_or_else(|| self.next.fetch_add(1, Ordering::Relaxed));
        let mut last = String::new();
        for attempt in 0..20 {
            // Each attempt starts one node further along.
            let node = (0..self.nodes.len())
                .map(|k| &self.nodes[(first + attempt + k) % self.nodes.len()])
                .find(|n| n.alive.load(Ordering::SeqCst))
                .ok_or("no node is alive")?;
            let mut request = self.http.request(method.clone(), format!("{}{path}", node.url)).bearer_auth(token);
            if let Some(body) = body {
                request = request.json(body);
            }
            let answer = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    response.text().await.map(|text| (status, text))
                }
                Err(e) => Err(e),
            };
            match answer {
                Ok((status, text)) if status < 500 => {
                    return Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))));
                }
                Ok((status, text)) => last = format!("{} answered {status}: {text}", node.name),
                Err(e) => {
                    if !node.alive.load(Ordering::SeqCst) {
                        self.resent.fetch_add(1, Ordering::Relaxed);
                    }
                    last = format!("{}: {e}", node.name);
                }
            }
            tokio::time::sleep(Duration::from_millis(50 * (attempt as u64 + 1).min(10))).await;
        }
        Err(format!("{method} {path}: no answer after 20 attempts; last: {last}"))
    }
}

/// The plain tokens `serve` wrote beside the configuration it created.
pub(crate) struct Tokens(BTreeMap<String, String>);

impl Tokens {
    pub(crate) fn read(path: &Path) -> Tokens {
        let text = std::fs::read_to_string(path).expect("serve wrote the tokens file");
        let tokens = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| Some((l.split_whitespace().next()?.to_string(), l.split('"').nth(1)?.to_string())))
            .collect();
        Tokens(tokens)
    }

    pub(crate) fn get(&self, user: &str) -> String {
        self.0.get(user).unwrap_or_else(|| panic!("no token for {user}")).clone()
    }
}

/// The people and systems around the orders, and what they did (counted for the report).
pub(crate) struct Driver {
    pub(crate) cluster: Cluster,
    pub(crate) db: PgPool,
    pub(crate) tokens: Tokens,
    /// Orders whose start was acknowledged.
    pub(crate) started: AtomicUsize,
    /// Starts answered as duplicates (sent again after a first attempt had started the order).
    pub(crate) duplicate_starts: AtomicUsize,
    /// Orders finished, as last counted.
    pub(crate) finished: AtomicUsize,
    /// Tasks completed, by the node they were at (credit review, manager approval...).
    pub(crate) tasks_done: Mutex<BTreeMap<String, usize>>,
    shipped: Mutex<HashSet<String>>,
    paid: Mutex<HashSet<String>>,
    busy_tasks: Mutex<HashSet<String>>,
    pub(crate) incidents: Mutex<BTreeMap<String, String>>,
    pub(crate) problems: Mutex<Vec<String>>,
    pub(crate) stop: AtomicBool,
    /// When orders last started or finished, and how many had by then.
    progress: Mutex<(Instant, usize)>,
}

/// Runs `work` on each item, at most `limit` at once.
async fn bounded<T, F, Fut>(items: Vec<T>, limit: usize, work: F)
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut set = JoinSet::new();
    for item in items {
        if set.len() >= limit {
            rethrow(set.join_next().await);
        }
        set.spawn(work(item));
    }
    while let Some(joined) = set.join_next().await {
        rethrow(Some(joined));
    }
}

/// Passes a spawned task's panic on.
fn rethrow(joined: Option<Result<(), tokio::task::JoinError>>) {
    if let Some(Err(e)) = joined
        && e.is_panic()
    {
        std::panic::resume_unwind(e.into_panic());
    }
}

impl Driver {
    pub(crate) fn new(cluster: Cluster, db: PgPool, tokens: Tokens) -> Driver {
        Driver {
            cluster,
            db,
            tokens,
            started: AtomicUsize::new(0),
            duplicate_starts: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            tasks_done: Mutex::new(BTreeMap::new()),
            shipped: Mutex::new(HashSet::new()),
            paid: Mutex::new(HashSet::new()),
            busy_tasks: Mutex::new(HashSet::new()),
            incidents: Mutex::new(BTreeMap::new()),
            problems: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            progress: Mutex::new((Instant::now(), 0)),
        }
    }

    fn problem(&self, what: String) {
        self.problems.lock().unwrap_or_else(PoisonError::into_inner).push(what);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Fails with what is stuck when no order has started or finished for [`stall_limit`]: the
    /// run may be slow on a loaded machine, but it must keep moving.
    pub(crate) async fn check_deadline(&self, clock: Instant, doing: &str) {
        let moved = self.started.load(Ordering::SeqCst) + self.finished.load(Ordering::SeqCst);
        {
            let mut progress = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
            if moved != progress.1 {
                *progress = (Instant::now(), moved);
            }
            if progress.0.elapsed() < stall_limit() {
                return;
            }
        }
        let problems = self.problems.lock().unwrap_or_else(PoisonError::into_inner).clone();
        panic!(
            "{doing}: nothing moved for {:?}; {} of {} orders started, {} finished after {:?}\n{}\nproblems: {problems:#?}",
            stall_limit(),
            self.started.load(Ordering::SeqCst),
            orders(),
            self.finished.load(Ordering::SeqCst),
            clock.elapsed(),
            stuck(&self.db).await
        );
    }

    /// Sales signs the orders, round robin across the nodes, keeping at most [`max_open`]
    /// unfinished.
    pub(crate) async fn start_orders(self: Arc<Self>) {
        let mut set = JoinSet::new();
        let (orders, max_open) = (orders(), max_open());
        for n in 0..orders {
            while n >= self.finished.load(Ordering::SeqCst) + max_open && !self.stopped() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if set.len() >= START_CONCURRENCY {
                rethrow(set.join_next().await);
            }
            set.spawn(Arc::clone(&self).start(n));
        }
        while let Some(joined) = set.join_next().await {
            rethrow(Some(joined));
        }
    }

    async fn start(self: Arc<Self>, n: usize) {
        let (order_id, customer, amount) = order(n);
        let body = json!({
            "name": "order.signed",
            "correlation_key": order_id,
            "message_id": format!("signed-{order_id}"),
            "variables": {"order_id": order_id, "customer_id": customer, "amount": amount, "requested_by": "sam"},
        });
        let token = self.tokens.get("ada");
        let answer = self
            .cluster
            .send(Some(n % self.cluster.nodes.len()), Method::POST, "/v1/messages", &token, Some(&body))
            .await;
        match answer {
            Ok((200, reply)) if reply["outcome"] == "delivered" => {}
            Ok((200, reply)) if reply["outcome"] == "duplicate" => {
                self.duplicate_starts.fetch_add(1, Ordering::Relaxed);
            }
            other => return self.problem(format!("start of {order_id}: {other:?}")),
        }
        self.started.fetch_add(1, Ordering::SeqCst);
    }

    /// Counts the orders finished.
    pub(crate) async fn count_finished(self: Arc<Self>) {
        while !self.stopped() {
            let finished: Result<i64, _> = sqlx::query_scalar(
                "SELECT count(*) FROM instances WHERE process_key = 'order_to_cash' AND status <> 'running' \
                 AND status <> 'created'",
            )
            .fetch_one(&self.db)
            .await;
            match finished {
                Ok(n) => self.finished.store(usize::try_from(n).unwrap_or(0), Ordering::SeqCst),
                Err(e) => self.problem(format!("counting finished orders: {e}")),
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Approvers claim and complete what their inboxes show.
    pub(crate) async fn work_inboxes(self: Arc<Self>) {
        while !self.stopped() {
            let mut work = Vec::new();
            for user in APPROVERS {
                let token = self.tokens.get(user);
                match self.cluster.send(None, Method::GET, "/v1/tasks", &token, None).await {
                    Ok((200, Value::Array(tasks))) => {
                        let mut busy = self.busy_tasks.lock().unwrap_or_else(PoisonError::into_inner);
                        for task in tasks {
                            let id = task["id"].as_str().unwrap_or_default().to_string();
                            if task["state"] == "open" && busy.insert(id.clone()) {
                                work.push((
                                    user,
                                    token.clone(),
                                    id,
                                    task["node"].as_str().unwrap_or_default().to_string(),
                                ));
                            }
                        }
                    }
                    other => self.problem(format!("inbox of {user}: {other:?}")),
                }
            }
            let me = Arc::clone(&self);
            bounded(work, LOOP_CONCURRENCY, move |(user, token, id, node)| {
                let me = Arc::clone(&me);
                async move { me.complete_task(user, &token, &id, &node).await }
            })
            .await;
            tokio::time::sleep(POLL).await;
        }
    }

    async fn complete_task(&self, user: &str, token: &str, id: &str, node: &str) {
        let Some(form) = form(node) else {
            return self.problem(format!("{user} got an unexpected task {id} at {node}"));
        };
        let path = format!("/v1/tasks/{id}");
        let claimed = self.cluster.send(None, Method::POST, &format!("{path}/claim"), token, None).await;
        // 409: claimed before (by this user, through a node that died before answering) or closed.
        if !matches!(claimed, Ok((200 | 409, _))) {
            self.busy_tasks.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
            return self.problem(format!("{user} claiming {id}: {claimed:?}"));
        }
        let body = json!({"variables": form});
        match self.cluster.send(None, Method::POST, &format!("{path}/complete"), token, Some(&body)).await {
            Ok((200, _)) => {
                *self.tasks_done.lock().unwrap_or_else(PoisonError::into_inner).entry(node.to_string()).or_default() +=
                    1;
            }
            // Completed already: an earlier attempt went through.
            Ok((409, _)) => {}
            other => {
                self.busy_tasks.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
                self.problem(format!("{user} completing {id}: {other:?}"));
            }
        }
    }

    /// Logistics reports the dispatch of every order that waits for it.
    pub(crate) async fn dispatch_shipments(self: Arc<Self>) {
        let token = self.tokens.get("ada");
        while !self.stopped() {
            let waiting: Vec<String> = match sqlx::query_scalar(
                "SELECT correlation_key FROM subscriptions WHERE message_name = 'shipment.dispatched'",
            )
            .fetch_all(&self.db)
            .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    self.problem(format!("reading subscriptions: {e}"));
                    Vec::new()
                }
            };
            let new: Vec<String> = {
                let mut shipped = self.shipped.lock().unwrap_or_else(PoisonError::into_inner);
                waiting.into_iter().filter(|o| shipped.insert(o.clone())).collect()
            };
            let me = Arc::clone(&self);
            let token = token.clone();
            bounded(new, LOOP_CONCURRENCY, move |order_id| {
                let (me, token) = (Arc::clone(&me), token.clone());
                async move {
                    let body = json!({
                        "name": "shipment.dispatched",
                        "correlation_key": order_id,
                        "message_id": format!("dispatched-{order_id}"),
                        "variables": {"shipment_id": format!("SH-{order_id}"), "carrier": "DHL"},
                    });
                    me.send_message(&token, &body, &me.shipped, &order_id).await;
                }
            })
            .await;
            tokio::time::sleep(POLL).await;
        }
    }

    /// The bank reports the payment of every invoice that waits for it once its first dunning
    /// letter went out.
    pub(crate) async fn pay_invoices(self: Arc<Self>) {
        let token = self.tokens.get("ada");
        while !self.stopped() {
            let waiting: Vec<(String, String)> = match sqlx::query_as(
                "SELECT s.instance_id, s.correlation_key FROM subscriptions s \
                 WHERE s.message_name = 'payment.received' AND EXISTS (SELECT 1 FROM history h \
                 WHERE h.instance_id = s.instance_id AND h.kind = 'end_reached' AND h.node = 'dunning_done')",
            )
            .fetch_all(&self.db)
            .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    self.problem(format!("reading subscriptions: {e}"));
                    Vec::new()
                }
            };
            let new: Vec<(String, String)> = {
                let mut paid = self.paid.lock().unwrap_or_else(PoisonError::into_inner);
                waiting.into_iter().filter(|(_, invoice)| paid.insert(invoice.clone())).collect()
            };
            let me = Arc::clone(&self);
            let token = token.clone();
            bounded(new, LOOP_CONCURRENCY, move |(instance, invoice)| {
                let (me, token) = (Arc::clone(&me), token.clone());
                async move { me.pay(&token, &instance, &invoice).await }
            })
            .await;
            tokio::time::sleep(POLL).await;
        }
    }

    async fn pay(&self, token: &str, instance: &str, invoice: &str) {
        let amount = match self.cluster.send(None, Method::GET, &format!("/v1/instances/{instance}"), token, None).await
        {
            Ok((200, view)) => view["variables"]["amount_due"].clone(),
            other => {
                self.paid.lock().unwrap_or_else(PoisonError::into_inner).remove(invoice);
                return self.problem(format!("reading {instance}: {other:?}"));
            }
        };
        let body = json!({
            "name": "payment.received",
            "correlation_key": invoice,
            "message_id": format!("paid-{invoice}"),
            "variables": {"amount": amount, "reference": invoice, "payment_id": format!("PAY-{invoice}")},
        });
        self.send_message(token, &body, &self.paid, invoice).await;
    }

    /// Sends a message; on failure forgets `key` in `sent` so that the next round sends it again.
    async fn send_message(&self, token: &str, body: &Value, sent: &Mutex<HashSet<String>>, key: &str) {
        match self.cluster.send(None, Method::POST, "/v1/messages", token, Some(body)).await {
            Ok((200 | 202, _)) => {}
            other => {
                sent.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
                self.problem(format!("message {}: {other:?}", body["message_id"]));
            }
        }
    }

    /// An operator retries every incident (and the test reports them).
    pub(crate) async fn retry_incidents(self: Arc<Self>) {
        let token = self.tokens.get("ada");
        while !self.stopped() {
            match self.cluster.send(None, Method::GET, "/v1/incidents", &token, None).await {
                Ok((200, Value::Array(incidents))) => {
                    for incident in incidents {
                        let id = incident["id"].as_str().unwrap_or_default().to_string();
                        let what =
                            format!("{} at {}: {}", incident["instance_id"], incident["node"], incident["message"]);
                        self.incidents.lock().unwrap_or_else(PoisonError::into_inner).insert(id.clone(), what);
                        let path = format!("/v1/incidents/{id}/retry");
                        match self.cluster.send(None, Method::POST, &path, &token, None).await {
                            Ok((200 | 409, _)) => {}
                            other => self.problem(format!("retrying incident {id}: {other:?}")),
                        }
                    }
                }
                other => self.problem(format!("listing incidents: {other:?}")),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// What is left unfinished, for a failure message.
async fn stuck(pool: &PgPool) -> String {
    let queries = [
        (
            "instances by process and status",
            "SELECT process_key || ' ' || status, count(*) FROM instances GROUP BY 1 ORDER BY 1",
        ),
        (
            "jobs by type and state",
            "SELECT job_type || ' ' || state, count(*) FROM jobs WHERE state <> 'done' GROUP BY 1 ORDER BY 1",
        ),
        ("open tasks by node", "SELECT node, count(*) FROM tasks WHERE state = 'open' GROUP BY 1 ORDER BY 1"),
        ("subscriptions by message", "SELECT message_name, count(*) FROM subscriptions GROUP BY 1 ORDER BY 1"),
        ("timers by node", "SELECT node, count(*) FROM timers GROUP BY 1 ORDER BY 1"),
        (
            "open incidents by node",
            "SELECT node || ': ' || min(message), count(*) FROM incidents WHERE state = 'open' GROUP BY node ORDER BY 1",
        ),
    ];
    let mut out = String::new();
    for (title, sql) in queries {
        out.push_str(&format!("{title}:\n"));
        match sqlx::query_as::<_, (String, i64)>(sql).fetch_all(pool).await {
            Ok(rows) => rows.iter().for_each(|(k, n)| out.push_str(&format!("  {k}: {n}\n"))),
            Err(e) => out.push_str(&format!("  ({e})\n")),
        }
    }
    out
}
