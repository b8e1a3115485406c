//! Invoices issued in batches: group commit on a number series.
//!
//! A gapless number is only given once the previous one is known to have committed, so the
//! invoices of one series are numbered one transaction after another, on every node. Rather than
//! one invoice per transaction, each [`Ledger`] handle queues the invoices asked of
//! it to one task that issues all those waiting (up to [`MAX_BATCH`]) in one transaction: the
//! scoped locks of every invoice of the batch taken at once in their one order (its customers
//! shared: a batch writes nothing of a customer's, and two batches of one customer then queue
//! only on the series' row), with every list the batch reads (its keys' records, its orders,
//! their lines and invoices, its customers, its periods) in the same round trip on PostgreSQL,
//! then each invoice checked on its own, then the series' row taken once, last, for as many
//! numbers as there are invoices to number, then every row written in a few multi-row
//! statements, and one commit. While one batch commits, the next gathers.
//!
//! Each invoice keeps what issuing it alone would give: its idempotency record (a key already
//! recorded answers with its output), its checks (a refusal answers that caller only and takes
//! no number: the numbers of the others stay consecutive), its own result, sent only after the
//! commit. A batch that fails (a lost connection, a failed commit) fails every invoice in it
//! with [`Error::Retry`]; nothing of it was written, and the job's retry issues it once.
//!
//! Two requests of one key or of one order never share a batch: the later waits for the next,
//! where it finds the first one's record or invoice. A batch whose locks are not all free within
//! [`db::BATCH_LOCK_WAIT`] (a customer held by an operator, a long write) gives up and issues its
//! invoices one per transaction, so one held customer delays the others once, briefly, and then
//! only itself.
//!
//! On PostgreSQL the batch task runs on a thread of its own, on a connection of its own. A batch
//! is a dozen round trips awaited one after another; on the node's runtime each of them queued
//! behind every task its last commit had woken (the workers completing the jobs it answered),
//! and a batch of 64 took 28 ms, a third of it waiting for its connection and for its locks'
//! round trip. SQLite's batches share the ledger's one writing connection, and run on the
//! runtime.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use cloverleaf_engine::store::pool::Lender;
use rust_decimal::Decimal;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Column, ConnectOptions, Connection, Executor, Row};
use tokio::runtime::Handle;
use tokio::sync::{OwnedRwLockWriteGuard, RwLock, mpsc, oneshot};

use super::db::{self, Backend, Mode, Scope};
use super::records::{
    CustomerRow, InvoiceRow, customers_by_id, customers_select, invoices_by_order, invoices_of_orders_select,
};
use super::{
    Entry, Error, InvoiceIssued, JournalLine, Ledger, account, balanced, cents, date_text, decimal_setting, money_text,
    parse_money, period_of, ts_text,
};

/// The most invoices one transaction issues: each brings three locks (its key, order and
/// customer), and PostgreSQL's lock table is shared by every transaction.
pub(super) const MAX_BATCH: usize = 64;

/// What one invoice asks.
#[derive(Debug)]
struct Request {
    key: String,
    now: DateTime<Utc>,
    /// `now`'s day on the books' clock: the invoice's date, period and series year.
    today: NaiveDate,
    order_id: String,
    customer_id: String,
    amount: Decimal,
    reply: oneshot::Sender<Result<InvoiceIssued, Error>>,
}

/// The queue of a ledger handle's invoices, and the task that issues them (started with the
/// first invoice, ended when the last clone of the handle is dropped).
#[derive(Debug, Clone, Default)]
pub(super) struct Batcher(Arc<Queue>);

#[derive(Debug, Default)]
struct Queue {
    sender: OnceLock<mpsc::UnboundedSender<Ask>>,
    counts: Arc<Counts>,
    /// Read by each batch while it is issued; written by [`InvoicesPaused`].
    gate: Arc<RwLock<()>>,
}

/// Invoicing paused: the batch task issues no batch until this is dropped (the invoices it
/// already took wait in their batch, later ones queue for the next). See
/// [`Ledger::pause_invoices`](super::Ledger::pause_invoices).
#[derive(Debug)]
pub struct InvoicesPaused(#[allow(dead_code)] OwnedRwLockWriteGuard<()>);

/// What the batch task is sent.
#[derive(Debug)]
enum Ask {
    /// An invoice to issue.
    Issue(Request),
    /// The ledger is closing: end the task's own connection, then answer.
    Close(oneshot::Sender<()>),
}

/// What the queue holds, for [`InvoiceQueue`].
#[derive(Debug, Default)]
struct Counts {
    /// Queued, not yet taken into a batch.
    waiting: AtomicUsize,
    /// Taken into a batch, not yet answered.
    issuing: AtomicUsize,
}

/// The invoices asked of one ledger handle and not yet answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InvoiceQueue {
    /// Queued for the next batch: a batch takes those waiting when the one before it has
    /// committed.
    pub waiting: usize,
    /// In the batch being issued (or, after a batch gave up on its locks, issued one by one).
    pub issuing: usize,
}

impl Batcher {
    /// Queues one invoice and waits for its own result, given once its batch has committed.
    pub(super) async fn issue(
        &self,
        ledger: &Ledger,
        key: &str,
        now: DateTime<Utc>,
        order_id: &str,
        customer_id: &str,
        amount: Decimal,
    ) -> Result<InvoiceIssued, Error> {
        let queue = self.0.sender.get_or_init(|| {
            let gate = Arc::clone(&self.0.gate);
            start(ledger.writes.clone(), ledger.backend, Arc::clone(&self.0.counts), gate)
        });
        // A NUL cannot be stored as text on PostgreSQL, nor written in a batch's statements:
        // refused here, for this invoice alone, rather than failing its batch.
        for (what, text) in [("idempotency key", key), ("order", order_id), ("customer", customer_id)] {
            if text.contains('\0') {
                return Err(Error::InvoiceData(format!("the {what} {text:?} holds a NUL character")));
            }
        }
        let today = ledger.book_date(now).await?;
        let (reply, answer) = oneshot::channel();
        let request = Request {
            key: key.to_string(),
            now,
            today,
            order_id: order_id.to_string(),
            customer_id: customer_id.to_string(),
            amount,
            reply,
        };
        self.0.counts.waiting.fetch_add(1, Ordering::SeqCst);
        queue.send(Ask::Issue(request)).map_err(|_| Error::Retry("the ledger's invoice queue has stopped".into()))?;
        answer.await.map_err(|_| Error::Retry("the invoice's batch ended before it committed".into()))?
    }

    /// The invoices queued and being issued.
    pub(super) fn queue(&self) -> InvoiceQueue {
        let counts = &self.0.counts;
        InvoiceQueue { waiting: counts.waiting.load(Ordering::SeqCst), issuing: counts.issuing.load(Ordering::SeqCst) }
    }

    /// Pauses the batches once the one being issued (if any) has committed.
    pub(super) async fn pause(&self) -> InvoicesPaused {
        InvoicesPaused(Arc::clone(&self.0.gate).write_owned().await)
    }

    /// Ends the batch task's own connection, once the batch in flight (if any) has ended. Call
    /// after closing the ledger's pools: later batches then fail as the pools' writes do.
    pub(super) async fn close(&self) {
        if let Some(queue) = self.0.sender.get() {
            let (ack, closed) = oneshot::channel();
            if queue.send(Ask::Close(ack)).is_ok() {
                let _ = closed.await;
            }
        }
    }
}

/// Starts the batch task: on PostgreSQL on a thread of its own, with a runtime of its own (see
/// the module docs), else (or should the thread not start) on the caller's runtime.
fn start(
    writes: Lender<AnyConnection>,
    backend: Backend,
    counts: Arc<Counts>,
    gate: Arc<RwLock<()>>,
) -> mpsc::UnboundedSender<Ask> {
    let (queue, requests) = mpsc::unbounded_channel();
    let main = Handle::current();
    let task = Task { writes, backend, counts, gate, main: main.clone() };
    if backend == Backend::Sqlite {
        main.spawn(run(task, requests));
        return queue;
    }
    let parts = Arc::new(Mutex::new(Some((task, requests))));
    let for_thread = Arc::clone(&parts);
    let on_runtime = main.clone();
    let spawned = std::thread::Builder::new().name("cloverleaf-invoices".into()).spawn(move || {
        let Some((task, requests)) = for_thread.lock().unwrap_or_else(PoisonError::into_inner).take() else {
            return;
        };
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt.block_on(run(task, requests)),
            Err(error) => {
                tracing::warn!(%error, "no runtime of its own for the invoice batches: they run on the node's");
                on_runtime.spawn(run(task, requests));
            }
        }
    });
    if let Err(error) = spawned {
        tracing::warn!(%error, "no thread of its own for the invoice batches: they run on the node's runtime");
        if let Some((task, requests)) = parts.lock().unwrap_or_else(PoisonError::into_inner).take() {
            main.spawn(run(task, requests));
        }
    }
    queue
}

/// What the batch task works with.
struct Task {
    writes: Lender<AnyConnection>,
    backend: Backend,
    counts: Arc<Counts>,
    gate: Arc<RwLock<()>>,
    /// The node's runtime: an invoice issued on its own after its batch gave up on its locks
    /// runs there, on a lent connection.
    main: Handle,
}

/// Gathers the waiting invoices into batches and issues them, one batch at a time. On
/// PostgreSQL each batch runs on the task's own connection.
async fn run(task: Task, mut requests: mpsc::UnboundedReceiver<Ask>) {
    let Task { writes, backend, counts, gate, main } = task;
    let mut carried: Vec<Request> = Vec::new();
    let mut own: Option<AnyConnection> = None;
    let mut closing = Vec::new();
    loop {
        let mut waiting = std::mem::take(&mut carried);
        if waiting.is_empty() {
            match requests.recv().await {
                Some(Ask::Issue(first)) => {
                    counts.taken();
                    waiting.push(first);
                }
                Some(Ask::Close(ack)) => {
                    close_own(&mut own).await;
                    let _ = ack.send(());
                    continue;
                }
                None => {
                    close_own(&mut own).await;
                    return;
                }
            }
        }
        while waiting.len() < MAX_BATCH * 2 {
            match requests.try_recv() {
                Ok(Ask::Issue(request)) => {
                    counts.taken();
                    waiting.push(request);
                }
                Ok(Ask::Close(ack)) => closing.push(ack),
                Err(_) => break,
            }
        }
        let mut batch = Vec::with_capacity(waiting.len().min(MAX_BATCH));
        let (mut keys, mut orders) = (HashSet::new(), HashSet::new());
        for request in waiting {
            if batch.len() < MAX_BATCH && !keys.contains(&request.key) && !orders.contains(&request.order_id) {
                keys.insert(request.key.clone());
                orders.insert(request.order_id.clone());
                batch.push(request);
            } else {
                carried.push(request);
            }
        }
        let open = gate.read().await;
        if backend == Backend::Postgres {
            match commit_own(&mut own, &writes, &batch).await {
                Err(e) if db::is_lock_timeout(&e) => {
                    // Something holds a lock of the batch for long: each invoice on its own, off
                    // this task, so that only those that need it wait for it, and later batches
                    // go ahead.
                    for request in batch {
                        let (writes, counts) = (writes.clone(), Arc::clone(&counts));
                        main.spawn(async move {
                            let one = [request];
                            let result = commit(&writes, backend, &one).await;
                            answer(one, result, &counts);
                        });
                    }
                }
                result => answer(batch, result, &counts),
            }
        } else {
            let result = commit(&writes, backend, &batch).await;
            answer(batch, result, &counts);
        }
        drop(open);
        if !closing.is_empty() {
            close_own(&mut own).await;
            for ack in closing.drain(..) {
                let _ = ack.send(());
            }
        }
    }
}

/// Issues `batch` on PostgreSQL in one transaction on the batch task's own connection (opened
/// when there is none), waiting for its locks only [`db::BATCH_LOCK_WAIT`], its locks and every
/// read in the round trip that begins it. The connection is
/// kept only after a `COMMIT` that succeeded: one left by a failure midway (the lock wait run
/// out, a lost server) is dropped, and the server rolls its transaction back; the next batch
/// opens another. Once the ledger's pools are closed, no batch runs.
async fn commit_own(
    own: &mut Option<AnyConnection>,
    writes: &Lender<AnyConnection>,
    batch: &[Request],
) -> Result<Vec<Result<InvoiceIssued, Error>>, Error> {
    if writes.is_closed() {
        close_own(own).await;
        return Err(sqlx::Error::PoolClosed.into());
    }
    let reused = own.is_some();
    let mut conn = match own.take() {
        Some(conn) => conn,
        None => connect_own(writes).await?,
    };
    let scopes = scopes_of(batch);
    let begin = db::begin_sql(Backend::Postgres, &Mode::Batch(&scopes));
    let reads = match read(&mut conn, Backend::Postgres, batch, &begin).await {
        Err(Error::Database(error)) if reused && is_connection_lost(&error) => {
            // The connection kept since the last batch was ended meanwhile (a restarted server,
            // an operator): nothing of this batch ran on it, so once more on a new one, as a
            // pooled connection found dead is replaced.
            conn = connect_own(writes).await?;
            read(&mut conn, Backend::Postgres, batch, &begin).await?
        }
        reads => reads?,
    };
    let results = issue_all(&mut conn, batch, reads).await?;
    conn.execute("COMMIT").await?;
    *own = Some(conn);
    Ok(results)
}

/// The name the batch task's own connection shows in `pg_stat_activity`.
pub(super) const OWN_CONNECTION_NAME: &str = "cloverleaf invoice batches";

/// Opens the batch task's own connection, with the ledger's write options, named for operators.
async fn connect_own(writes: &Lender<AnyConnection>) -> Result<AnyConnection, Error> {
    let mut conn = writes.options().connect().await?;
    conn.execute(format!("SET application_name = '{OWN_CONNECTION_NAME}'").as_str()).await?;
    Ok(conn)
}

/// Whether `error` says the connection itself is gone rather than that a statement failed: a
/// broken socket, or the server ending the session (class 57P, operator intervention; class
/// 08, connection exception).
fn is_connection_lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| code.starts_with("57P") || code.starts_with("08")),
        _ => false,
    }
}

/// Ends the batch task's own connection, if it has one.
async fn close_own(own: &mut Option<AnyConnection>) {
    if let Some(conn) = own.take() {
        let _ = conn.close().await;
    }
}

/// Sends each request its own result, or the batch's failure.
fn answer<I: IntoIterator<Item = Request>>(
    batch: I,
    result: Result<Vec<Result<InvoiceIssued, Error>>, Error>,
    counts: &Counts,
) {
    let batch: Vec<Request> = batch.into_iter().collect();
    counts.issuing.fetch_sub(batch.len(), Ordering::SeqCst);
    match result {
        Ok(results) => {
            for (request, result) in batch.into_iter().zip(results) {
                let _ = request.reply.send(result);
            }
        }
        Err(e) => {
            let why = format!("the batch of {} invoice(s) it was issued in failed ({e})", batch.len());
            for request in batch {
                let _ = request.reply.send(Err(Error::Retry(why.clone())));
            }
        }
    }
}

impl Counts {
    /// One invoice taken from the queue into a batch.
    fn taken(&self) {
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        self.issuing.fetch_add(1, Ordering::SeqCst);
    }
}

/// Issues `batch` in one transaction on a lent connection: each request's own result, or the
/// batch's failure (nothing written). SQLite's batches, and on PostgreSQL an invoice issued on
/// its own after its batch gave up on its locks (waited for as long as any write waits).
async fn commit(
    writes: &Lender<AnyConnection>,
    backend: Backend,
    batch: &[Request],
) -> Result<Vec<Result<InvoiceIssued, Error>>, Error> {
    let scopes = scopes_of(batch);
    let mut tx = db::begin(writes, backend, Mode::Scoped(&scopes)).await?;
    let reads = read(&mut tx, backend, batch, "").await?;
    let results = issue_all(&mut tx, batch, reads).await?;
    tx.commit().await?;
    Ok(results)
}

/// The scopes a batch locks: each invoice's key and order, and its customer shared.
fn scopes_of(batch: &[Request]) -> Vec<Scope> {
    batch
        .iter()
        .flat_map(|r| {
            [Scope::Key(r.key.clone()), Scope::Order(r.order_id.clone()), Scope::CustomerShared(r.customer_id.clone())]
        })
        .collect()
}

/// A line of an order or invoice: quantity, unit price, description.
type Line = (Decimal, Decimal, String);

/// An invoice checked and ready for its number.
struct New<'a> {
    at: usize,
    request: &'a Request,
    customer: &'a CustomerRow,
    /// (quantity, unit price, description) of each line.
    lines: Vec<Line>,
    /// The unit cost of the one line of an order recorded here (not recorded before).
    standard_cost: Option<Decimal>,
    net: Decimal,
    tax: Decimal,
    total: Decimal,
    issue_date: NaiveDate,
    due_date: NaiveDate,
}

/// One list a batch reads before deciding: `SELECT '<tag>' AS batch_read, <head> IN (<values>)<tail>`.
struct ListRead {
    /// Which list a row answers: the rows of every read come back together on PostgreSQL.
    tag: &'static str,
    /// The columns, the table and the filter, up to the list.
    head: String,
    /// The keys, each once.
    values: Vec<String>,
    tail: &'static str,
}

impl ListRead {
    fn new(tag: &'static str, head: String, values: impl IntoIterator<Item = String>, tail: &'static str) -> ListRead {
        let mut values: Vec<String> = values.into_iter().collect();
        values.sort_unstable();
        values.dedup();
        ListRead { tag, head, values, tail }
    }

    /// The read, its list written as `list` (placeholders, or literals).
    fn sql(&self, list: &str) -> String {
        format!("SELECT '{}' AS batch_read, {} IN ({list}){}", self.tag, self.head, self.tail)
    }
}

/// The name of the first column of every [`ListRead`]'s rows.
const READ_COLUMN: &str = "batch_read";

/// The lists `batch` reads: the idempotency records of its keys, the invoices of its orders,
/// its customers, its orders recorded and their lines, which of its periods are closed, and the
/// standard cost rate (for an order recorded here).
fn reads_of(batch: &[Request]) -> Vec<ListRead> {
    let orders = || batch.iter().map(|r| r.order_id.clone());
    vec![
        ListRead::new(
            "r",
            "key, output FROM idempotency_keys WHERE key".into(),
            batch.iter().map(|r| r.key.clone()),
            "",
        ),
        ListRead::new("i", format!("{} WHERE order_id", invoices_of_orders_select()), orders(), ""),
        ListRead::new("c", format!("{} WHERE id", customers_select()), batch.iter().map(|r| r.customer_id.clone()), ""),
        ListRead::new("o", "id, customer_id FROM orders WHERE id".into(), orders(), ""),
        ListRead::new(
            "l",
            "order_id, quantity, unit_price, description FROM order_lines WHERE order_id".into(),
            orders(),
            " ORDER BY order_id, line_no",
        ),
        // A write holding the ledger lock sees a period's status stand until it ends: closing
        // takes the lock exclusive.
        ListRead::new(
            "p",
            "period FROM periods WHERE status = 'closed' AND period".into(),
            batch.iter().map(|r| period_of(r.today)),
            "",
        ),
        ListRead::new("s", "value FROM ledger_settings WHERE key".into(), ["standard_cost_rate".to_string()], ""),
    ]
}

/// What a batch read, by list.
#[derive(Default)]
struct Reads {
    /// The output recorded under each key already run.
    replays: HashMap<String, String>,
    /// The invoice of each order already invoiced.
    invoiced: HashMap<String, InvoiceRow>,
    /// The customers on file.
    known: HashMap<String, CustomerRow>,
    /// The customer of each order recorded.
    owners: HashMap<String, String>,
    /// The lines of each order recorded, in order.
    order_lines: HashMap<String, Vec<Line>>,
    /// The closed periods.
    closed: HashSet<String>,
    /// The standard cost rate, as stored.
    standard_rate: Option<String>,
}

/// Reads what `batch` is decided on. On PostgreSQL every list goes in one round trip after
/// `prefix` (the statements that begin the transaction, or none), each written with its keys
/// as literals, so that it is planned for them (see [`read_in`]); on SQLite one read after
/// another, on the transaction already begun.
async fn read(conn: &mut AnyConnection, backend: Backend, batch: &[Request], prefix: &str) -> Result<Reads, Error> {
    let reads = reads_of(batch);
    let rows = if backend == Backend::Postgres {
        let mut sql = String::from(prefix);
        for read in &reads {
            if !sql.is_empty() {
                sql.push_str("; ");
            }
            let list = if read.values.is_empty() {
                "NULL".to_string()
            } else {
                read.values.iter().map(|v| db::literal(v)).collect::<Vec<_>>().join(", ")
            };
            sql.push_str(&read.sql(&list));
        }
        conn.fetch_all(sql.as_str()).await?
    } else {
        let mut rows = Vec::new();
        for read in reads.iter().filter(|read| !read.values.is_empty()) {
            let sql = read.sql(&marks(read.values.len()));
            let mut query = read_in(&sql);
            for value in &read.values {
                query = query.bind(value.as_str());
            }
            rows.extend(query.fetch_all(&mut *conn).await?);
        }
        rows
    };
    Reads::of(&rows)
}

impl Reads {
    /// The reads of `rows`, each row sorted by its first column ([`READ_COLUMN`]); rows of other
    /// statements (the locks taken in the same round trip) are passed over.
    fn of(rows: &[AnyRow]) -> Result<Reads, Error> {
        let mut by_tag: HashMap<String, Vec<&AnyRow>> = HashMap::new();
        for row in rows {
            if row.columns().first().is_some_and(|c| c.name() == READ_COLUMN) {
                by_tag.entry(row.try_get::<String, _>(0)?).or_default().push(row);
            }
        }
        let mut tagged = |tag: &str| by_tag.remove(tag).unwrap_or_default();
        let mut reads = Reads::default();
        for r in tagged("r") {
            reads.replays.insert(r.try_get::<String, _>(1)?, r.try_get::<String, _>(2)?);
        }
        reads.invoiced = invoices_by_order(tagged("i"), 1)?;
        reads.known = customers_by_id(tagged("c"), 1)?;
        for r in tagged("o") {
            reads.owners.insert(r.try_get::<String, _>(1)?, r.try_get::<String, _>(2)?);
        }
        for r in tagged("l") {
            let line = (parse_money(r.try_get(2)?)?, parse_money(r.try_get(3)?)?, r.try_get::<String, _>(4)?);
            reads.order_lines.entry(r.try_get::<String, _>(1)?).or_default().push(line);
        }
        for r in tagged("p") {
            reads.closed.insert(r.try_get::<String, _>(1)?);
        }
        reads.standard_rate = tagged("s").first().map(|r| r.try_get::<String, _>(1)).transpose()?;
        Ok(reads)
    }
}

/// Issues every request of `batch` (distinct keys and orders) in the caller's transaction,
/// which holds their locks, on what [`read`] found: each request's result, or a failure of the
/// whole batch.
async fn issue_all(
    conn: &mut AnyConnection,
    batch: &[Request],
    reads: Reads,
) -> Result<Vec<Result<InvoiceIssued, Error>>, Error> {
    let mut results: Vec<Option<Result<InvoiceIssued, Error>>> = batch.iter().map(|_| None).collect();
    let mut recorded: Vec<(usize, InvoiceIssued)> = Vec::new();
    let Reads { replays, invoiced, known, owners, order_lines, closed, standard_rate } = reads;

    // Replays: a key recorded before answers with its output.
    for (at, request) in batch.iter().enumerate() {
        if let Some(text) = replays.get(&request.key) {
            let output = serde_json::from_str(text)
                .map_err(|e| Error::Corrupt(format!("stored output of {}: {e}", request.key)));
            results[at] = Some(output);
        }
    }

    let pending: Vec<usize> = (0..batch.len()).filter(|&at| results[at].is_none()).collect();
    let mut new = Vec::new();
    // The standard cost rate, parsed once the first order recorded here needs it.
    let mut rate: Option<Decimal> = None;
    for at in pending {
        let request = &batch[at];
        if let Some(existing) = invoiced.get(&request.order_id) {
            results[at] = Some(if existing.customer_id == request.customer_id {
                recorded.push((at, existing.issued()));
                Ok(existing.issued())
            } else {
                Err(Error::InvoiceData(format!(
                    "order {} was invoiced to {}, not {}",
                    request.order_id, existing.customer_id, request.customer_id
                )))
            });
            continue;
        }
        let checked = check(request, &known, &owners, &order_lines, &closed);
        match checked {
            Err(refused) => results[at] = Some(Err(refused)),
            Ok((customer, lines)) => {
                let standard_cost = if owners.contains_key(&request.order_id) {
                    None
                } else {
                    let rate = match rate {
                        Some(rate) => rate,
                        None => {
                            let stored = standard_rate
                                .as_deref()
                                .ok_or_else(|| Error::Corrupt("setting standard_cost_rate missing".into()))?;
                            *rate.insert(decimal_setting(stored)?)
                        }
                    };
                    Some(cents(request.amount * rate))
                };
                let issue_date = request.today;
                let net = cents(request.amount);
                let tax = cents(net * customer.tax_rate);
                new.push(New {
                    at,
                    request,
                    customer,
                    lines,
                    standard_cost,
                    net,
                    tax,
                    total: net + tax,
                    issue_date,
                    due_date: issue_date + TimeDelta::days(customer.terms),
                });
            }
        }
    }

    // The numbers: each series' row once, last, in ascending order of the series (two batches
    // spanning a new year take the two rows in one order), bumped by as many as it numbers.
    let mut years: Vec<i32> = new.iter().map(|n| n.issue_date.year()).collect();
    years.sort_unstable();
    years.dedup();
    let mut numbers: HashMap<usize, String> = HashMap::new();
    for year in years {
        let of_year: Vec<&New> = new.iter().filter(|n| n.issue_date.year() == year).collect();
        let count = i64::try_from(of_year.len()).unwrap_or(i64::MAX);
        let first: i64 = sqlx::query(
            "INSERT INTO number_sequences (name, next_value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET next_value = number_sequences.next_value + $3 \
             RETURNING next_value - $3",
        )
        .bind(format!("invoice-{year}"))
        .bind(count + 1)
        .bind(count)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
        for (n, invoice) in (first..).zip(of_year) {
            numbers.insert(invoice.at, format!("{year}-{n:06}"));
        }
    }

    let mut rows = rows_of_new(&new, &numbers, &mut results, &mut recorded)?;

    // The idempotency records of every invoice answered (not of the refused, nor the replayed).
    for (at, output) in &recorded {
        let request = &batch[*at];
        let text = serde_json::to_string(output).map_err(|e| Error::Corrupt(e.to_string()))?;
        rows.keys.extend([
            Cell::Text(request.key.clone()),
            Cell::text("invoice.issue"),
            Cell::Text(text),
            Cell::Text(ts_text(request.now)),
        ]);
    }
    rows.insert(conn).await?;
    results
        .into_iter()
        .map(|r| r.ok_or_else(|| Error::Corrupt("an invoice of the batch was left unanswered".into())))
        .collect()
}

/// `request`'s checks, those issuing it alone makes, in the same order: its customer and lines,
/// or its refusal.
fn check<'a>(
    request: &Request,
    known: &'a HashMap<String, CustomerRow>,
    owners: &HashMap<String, String>,
    order_lines: &HashMap<String, Vec<Line>>,
    closed: &HashSet<String>,
) -> Result<(&'a CustomerRow, Vec<Line>), Error> {
    let (order_id, customer_id, amount) = (&request.order_id, &request.customer_id, request.amount);
    let c =
        known.get(customer_id).ok_or_else(|| Error::InvoiceData(format!("customer {customer_id} is not on file")))?;
    if amount <= Decimal::ZERO {
        return Err(Error::InvoiceData(format!("order {order_id} has amount {amount}")));
    }
    if amount != cents(amount) {
        return Err(Error::InvoiceData(format!("order {order_id} has amount {amount}, finer than a cent")));
    }
    if c.tax_rate < Decimal::ZERO || c.tax_rate >= Decimal::ONE {
        return Err(Error::InvoiceData(format!("customer {customer_id} has tax rate {}", c.tax_rate)));
    }
    let lines = match owners.get(order_id) {
        Some(owner) if owner != customer_id => {
            return Err(Error::InvoiceData(format!("order {order_id} was placed by {owner}, not {customer_id}")));
        }
        Some(_) => {
            let lines = order_lines.get(order_id).cloned().unwrap_or_default();
            let net: Decimal = lines.iter().map(|(q, p, _)| cents(*q * *p)).sum();
            if net != amount {
                return Err(Error::InvoiceData(format!(
                    "order {order_id} lines come to {}, the order says {}",
                    money_text(net),
                    money_text(amount)
                )));
            }
            lines
        }
        None => vec![(Decimal::ONE, amount, format!("Order {order_id}"))],
    };
    let date = request.today;
    let period = period_of(date);
    if closed.contains(&period) {
        return Err(Error::PeriodClosed { period, date });
    }
    Ok((c, lines))
}

/// The rows a batch writes, by table, as cells (a table's columns to a row).
#[derive(Default)]
struct Rows {
    orders: Vec<Cell>,
    order_lines: Vec<Cell>,
    invoices: Vec<Cell>,
    invoice_lines: Vec<Cell>,
    /// The journal entries; the last cell of each, `document`, names its invoice.
    entries: Vec<Cell>,
    /// The journal lines, each led by its entry's document (the invoice) where the table has
    /// the entry's id, known once the entry is written.
    journal_lines: Vec<Cell>,
    /// The idempotency records.
    keys: Vec<Cell>,
}

const ORDERS: (&str, usize) = ("orders (id, customer_id, order_date)", 3);
const ORDER_LINES: (&str, usize) =
    ("order_lines (order_id, line_no, sku, description, quantity, unit_price, unit_cost)", 7);
const INVOICES: (&str, usize) =
    ("invoices (id, number, order_id, customer_id, issue_date, due_date, net, tax, total, amount_open, status)", 11);
const INVOICE_LINES: (&str, usize) =
    ("invoice_lines (invoice_id, line_no, description, quantity, unit_price, net, tax_rate)", 7);
const ENTRIES: (&str, usize) = ("journal_entries (entry_date, period, kind, description, posted_at, document)", 6);
/// The journal lines' columns after the entry's id, which the database gives.
const LINE_COLUMNS: &str = "line_no, account, debit, credit, customer_id, invoice_id";
const KEYS: (&str, usize) = ("idempotency_keys (key, job_type, output, created_at)", 4);

/// The rows of the numbered invoices: the orders recorded here, the invoices, their lines, their
/// journal entries and lines; each invoice's result and record noted.
fn rows_of_new(
    new: &[New<'_>],
    numbers: &HashMap<usize, String>,
    results: &mut [Option<Result<InvoiceIssued, Error>>],
    recorded: &mut Vec<(usize, InvoiceIssued)>,
) -> Result<Rows, Error> {
    let mut rows = Rows::default();
    for invoice in new {
        let request = invoice.request;
        let number = numbers.get(&invoice.at).ok_or_else(|| Error::Corrupt("an invoice left unnumbered".into()))?;
        let id = format!("INV-{number}");
        if let Some(unit_cost) = invoice.standard_cost {
            rows.orders.extend([
                Cell::Text(request.order_id.clone()),
                Cell::Text(request.customer_id.clone()),
                Cell::Text(date_text(request.today)),
            ]);
            rows.order_lines.extend([
                Cell::Text(request.order_id.clone()),
                Cell::Int(1),
                Cell::Null,
                Cell::Text(format!("Order {}", request.order_id)),
                Cell::Text(Decimal::ONE.to_string()),
                Cell::Text(request.amount.to_string()),
                Cell::Text(unit_cost.to_string()),
            ]);
        }
        rows.invoices.extend([
            Cell::Text(id.clone()),
            Cell::Text(number.clone()),
            Cell::Text(request.order_id.clone()),
            Cell::Text(request.customer_id.clone()),
            Cell::Text(date_text(invoice.issue_date)),
            Cell::Text(date_text(invoice.due_date)),
            Cell::Text(money_text(invoice.net)),
            Cell::Text(money_text(invoice.tax)),
            Cell::Text(money_text(invoice.total)),
            Cell::Text(money_text(invoice.total)),
            Cell::text("open"),
        ]);
        for (n, (quantity, unit_price, description)) in invoice.lines.iter().enumerate() {
            rows.invoice_lines.extend([
                Cell::Text(id.clone()),
                Cell::Int(i64::try_from(n + 1).unwrap_or(i64::MAX)),
                Cell::Text(description.clone()),
                Cell::Text(quantity.to_string()),
                Cell::Text(unit_price.to_string()),
                Cell::Text(money_text(*quantity * *unit_price)),
                Cell::Text(invoice.customer.tax_rate.to_string()),
            ]);
        }
        let entry = Entry {
            date: invoice.issue_date,
            kind: "invoice",
            description: format!("invoice {number} to {}", invoice.customer.name),
            document: None,
            lines: vec![
                JournalLine::debit(account::RECEIVABLES, invoice.total).customer(&request.customer_id).invoice(&id),
                JournalLine::credit(account::REVENUE, invoice.net).customer(&request.customer_id),
                JournalLine::credit(account::VAT, invoice.tax),
            ],
        };
        rows.entries.extend([
            Cell::Text(date_text(entry.date)),
            Cell::Text(period_of(entry.date)),
            Cell::text(entry.kind),
            Cell::Text(entry.description.clone()),
            Cell::Text(ts_text(request.now)),
            Cell::Text(id.clone()),
        ]);
        for (n, line) in balanced(&entry)?.into_iter().enumerate() {
            rows.journal_lines.extend([
                Cell::Text(id.clone()),
                Cell::Int(i64::try_from(n + 1).unwrap_or(i64::MAX)),
                Cell::text(line.account),
                Cell::Text(money_text(line.debit)),
                Cell::Text(money_text(line.credit)),
                line.customer_id.clone().map_or(Cell::Null, Cell::Text),
                line.invoice_id.clone().map_or(Cell::Null, Cell::Text),
            ]);
        }
        let issued = InvoiceIssued {
            invoice_id: id,
            invoice_number: number.clone(),
            net: invoice.net,
            tax: invoice.tax,
            total: invoice.total,
            issue_date: invoice.issue_date,
            due_date: invoice.due_date,
        };
        results[invoice.at] = Some(Ok(issued.clone()));
        recorded.push((invoice.at, issued));
    }
    Ok(rows)
}

impl Rows {
    /// Writes the rows: a multi-row statement a table (or as few as the bind limit allows), the
    /// journal entries first, returning their ids for their lines.
    async fn insert(self, conn: &mut AnyConnection) -> Result<(), Error> {
        let tables = [
            (ORDERS, self.orders),
            (ORDER_LINES, self.order_lines),
            (INVOICES, self.invoices),
            (INVOICE_LINES, self.invoice_lines),
        ];
        for ((table, columns), cells) in tables {
            insert(conn, table, columns, cells, "").await?;
        }
        let returned = insert(conn, ENTRIES.0, ENTRIES.1, self.entries, " RETURNING id, document").await?;
        let mut entry_ids = HashMap::new();
        for r in returned {
            entry_ids.insert(r.try_get::<String, _>(1)?, r.try_get::<i64, _>(0)?);
        }
        let mut cells = Vec::with_capacity(self.journal_lines.len());
        for (n, cell) in self.journal_lines.into_iter().enumerate() {
            if n % 7 != 0 {
                cells.push(cell);
                continue;
            }
            let Cell::Text(document) = cell else { return Err(Error::Corrupt("a journal line of no entry".into())) };
            let id =
                entry_ids.get(&document).ok_or_else(|| Error::Corrupt(format!("no journal entry for {document}")))?;
            cells.push(Cell::Int(*id));
        }
        insert(conn, &format!("journal_lines (entry_id, {LINE_COLUMNS})"), 7, cells, "").await?;
        insert(conn, KEYS.0, KEYS.1, self.keys, "").await?;
        Ok(())
    }
}

/// A read of the rows whose key is one of a list (`IN ($1, …, $n)`), planned for the values it
/// is given each time rather than prepared once per connection: every length of list is a
/// statement of its own, and PostgreSQL keeps a generic plan for it made while the books were
/// small, which goes on reading the whole table (invoices, order lines) as the books grow, for as
/// long as the connection lives: about 10 ms a batch of 64 invoices at 20,000 invoices.
pub(super) fn read_in(sql: &str) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
    sqlx::query(sql).persistent(false)
}

/// `$1, $2, …, $n`: the `Any` driver binds no lists.
pub(super) fn marks(n: usize) -> String {
    (1..=n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// One bound value of a multi-row insert.
enum Cell {
    Text(String),
    Int(i64),
    Null,
}

impl Cell {
    fn text(s: &str) -> Cell {
        Cell::Text(s.to_string())
    }
}

/// The most values one statement binds (under SQLite's oldest limit of 999).
const MAX_BINDS: usize = 900;

/// Inserts `cells` (`columns` a row) into `table_and_columns` in as few statements as the bind
/// limit allows, each ending with `tail` (a `RETURNING` clause); the rows returned.
async fn insert(
    conn: &mut AnyConnection,
    table_and_columns: &str,
    columns: usize,
    cells: Vec<Cell>,
    tail: &str,
) -> Result<Vec<sqlx::any::AnyRow>, Error> {
    let mut returned = Vec::new();
    let rows_per = (MAX_BINDS / columns).max(1);
    let mut cells = cells.into_iter().peekable();
    while cells.peek().is_some() {
        let chunk: Vec<Cell> = cells.by_ref().take(rows_per * columns).collect();
        let sql =
            format!("INSERT INTO {table_and_columns} VALUES {}{tail}", super::rows_of(columns, chunk.len() / columns));
        let mut query = sqlx::query(&sql);
        for cell in chunk {
            query = match cell {
                Cell::Text(s) => query.bind(s),
                Cell::Int(n) => query.bind(n),
                Cell::Null => query.bind(Option::<String>::None),
            };
        }
        returned.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(returned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_from_one() {
        assert_eq!(marks(3), "$1, $2, $3");
    }

    #[test]
    fn a_read_of_a_list_is_planned_each_time_not_prepared() {
        // A prepared statement would keep the plan made while the books were small.
        let sql = format!("SELECT id FROM invoices WHERE order_id IN ({})", marks(2));
        assert!(!sqlx::Execute::persistent(&read_in(&sql)));
    }
}
