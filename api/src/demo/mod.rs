//! `cloverleaf demo`: the order-to-cash story of a small company, told by the real engine.
//!
//! Everything is real but the clock: the reference processes run on the durable engine (a
//! throw-away SQLite file), the built-in finance handlers post to the sub-ledger of the seeded
//! demo company through the engine's job API (fetch and lock, complete, fail, business error: what
//! a worker calls, one job at a time in the story's order), the month-end close starts from its cron
//! schedule, and a virtual clock moves the story from one business morning to the next, so
//! eleven weeks of approvals, shipments, invoices, payments, dunning and closing take seconds.
//! The people are scripted: each morning they work their inboxes, and a few of them try what the
//! engine must refuse (approving their own order, a task of someone else's role).
//!
//! The timeline is read back from the engine's history, so what is printed is what was recorded.
//!
//! `story` plays the days; `cast` holds the people, the orders and what each person decides;
//! `telling` turns the engine's history into the printed timeline.

mod cast;
mod sink;
mod story;
mod telling;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use cloverleaf_dsl::CompiledProcess;
use cloverleaf_engine::runtime::Engine;
use cloverleaf_engine::{InstanceId, VirtualClock};
use cloverleaf_finance::Ledger;
use cloverleaf_worker::Handlers;
use rust_decimal::Decimal;

use crate::server::config::DEMO_ZONE;

/// The reference processes, built in so that the demo runs from any directory.
const PROCESSES: [(&str, &str); 6] = [
    ("roles.flow", include_str!("../../../processes/roles.flow")),
    ("order_approval.flow", include_str!("../../../processes/order_approval.flow")),
    ("ship_then_invoice.flow", include_str!("../../../processes/ship_then_invoice.flow")),
    ("collect_then_reconcile.flow", include_str!("../../../processes/collect_then_reconcile.flow")),
    ("order_to_cash.flow", include_str!("../../../processes/order_to_cash.flow")),
    ("month_end_close.flow", include_str!("../../../processes/month_end_close.flow")),
];

/// The demo company's alert rules, judged each business day once the morning's work is done.
const RULES: &str = include_str!("../../../processes/alerts.rules");

/// Monday 5 January 2026, 09:00 UTC: the first morning of the story.
fn first_morning() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).single().unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// How many business mornings the story runs: into the last week of March, past the day the
/// unpaid invoice is 60 days overdue.
const DAYS: i64 = 80;
/// How long, in real time, the jobs of one moment of the story may take: a guard against a hang, far
/// beyond what the jobs of one business day need even on a busy machine.
const SETTLE_LIMIT: Duration = Duration::from_secs(600);

/// What the story left behind, for the closing lines and for tests.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The printed timeline, one line per event.
    pub timeline: Vec<String>,
    /// Each order's end: order id → outcome of its order-to-cash instance.
    pub orders: BTreeMap<String, String>,
    /// Debits equal credits in the sub-ledger.
    pub balanced: bool,
    /// Open receivables at the end.
    pub open_receivables: Decimal,
    /// The Inventory account's balance at the end.
    pub inventory: Decimal,
    /// Units on hand of each stocked product at the end.
    pub stock: BTreeMap<String, Decimal>,
    /// What the stock on hand is worth at its moving average cost (equal to `inventory`).
    pub stock_value: Decimal,
    /// Every instance's history chain is intact.
    pub history_intact: bool,
    /// Refusals the engine gave to the scripted attempts that break the rules.
    pub refusals: Vec<String>,
    /// Alerts the rules opened (rule, subject), in order.
    pub alerts_opened: Vec<(String, String)>,
    /// Alerts that closed because their condition cleared (rule, subject), in order.
    pub alerts_cleared: Vec<(String, String)>,
    /// Notifications the company's chat bridge received with a valid signature, by kind.
    pub notifications: BTreeMap<String, usize>,
    /// Requests the chat bridge refused for a bad signature.
    pub notifications_refused: usize,
    /// Notifications the chat bridge received more than once.
    pub notifications_repeated: usize,
}

/// Runs the story and prints it to standard output as it unfolds.
pub async fn run() -> Result<Outcome> {
    let db = TempDb::new();
    let outcome = Story::tell(&db.path, true).await;
    drop(db);
    outcome
}

/// Runs the story without printing (tests read the [`Outcome`]).
pub async fn run_quietly() -> Result<Outcome> {
    let db = TempDb::new();
    let outcome = Story::tell(&db.path, false).await;
    drop(db);
    outcome
}

/// The demo's database file, removed when the story ends.
struct TempDb {
    path: PathBuf,
}

impl TempDb {
    fn new() -> TempDb {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        TempDb { path: std::env::temp_dir().join(format!("cloverleaf-demo-{}-{nanos}.db", std::process::id())) }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

/// The story as it runs: the engine and sub-ledger on the virtual clock, what is still to come,
/// and the timeline told so far.
struct Story {
    engine: Engine,
    clock: VirtualClock,
    ledger: Ledger,
    handlers: Handlers,
    topics: Vec<String>,
    echo: bool,
    timeline: Vec<String>,
    refusals: Vec<String>,
    /// History rows already told, per instance.
    told: HashMap<String, i64>,
    /// Instance → what the timeline calls it (the order, or the month being closed).
    labels: HashMap<String, String>,
    definitions: HashMap<(String, u32), Arc<CompiledProcess>>,
    /// Order → its order-to-cash instance.
    roots: BTreeMap<&'static str, InstanceId>,
    /// Order → the day logistics dispatches it.
    dispatch_on: HashMap<&'static str, NaiveDate>,
    /// Payments still to come: (date, order, payment id, amount or the rest).
    payments: Vec<(NaiveDate, &'static str, String, Option<Decimal>)>,
    /// Dispatched orders whose invoice is not booked yet (an invoicing attempt that failed waits
    /// for its retry): their payments are planned once it is.
    awaiting_invoice: Vec<&'static str>,
    /// The alert rules of `processes/alerts.rules`.
    rules: Vec<cloverleaf_dsl::rules::Rule>,
    alerts_opened: Vec<(String, String)>,
    alerts_cleared: Vec<(String, String)>,
    /// The company's chat bridge, which notifications are delivered to.
    sink: sink::Sink,
    notifier: crate::server::notify::Notifier<cloverleaf_engine::store::SqliteStore>,
}

/// Today on the story's clock, as the books read it.
fn clock_date(clock: &VirtualClock) -> NaiveDate {
    use cloverleaf_engine::Clock as _;
    clock.now().with_timezone(&DEMO_ZONE).date_naive()
}
