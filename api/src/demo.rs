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

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use cloverleaf_dsl::CompiledProcess;
use cloverleaf_dsl::expr::Value as DslValue;
use cloverleaf_dsl::model::NodeKind;
use cloverleaf_engine::runtime::{Correlation, Engine, EngineOptions, Error as EngineError, Message};
use cloverleaf_engine::store::{Queries as _, Store as _, TaskInfo};
use cloverleaf_engine::{InstanceId, VirtualClock};
use cloverleaf_finance::{self as finance, Ledger};
use cloverleaf_worker::{FetchRequest, HandlerError, Handlers, Job, JobContext, JobSource, SourceError};
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// The reference processes, built in so that the demo runs from any directory.
const PROCESSES: [(&str, &str); 6] = [
    ("roles.flow", include_str!("../../processes/roles.flow")),
    ("order_approval.flow", include_str!("../../processes/order_approval.flow")),
    ("ship_then_invoice.flow", include_str!("../../processes/ship_then_invoice.flow")),
    ("collect_then_reconcile.flow", include_str!("../../processes/collect_then_reconcile.flow")),
    ("order_to_cash.flow", include_str!("../../processes/order_to_cash.flow")),
    ("month_end_close.flow", include_str!("../../processes/month_end_close.flow")),
];

/// The demo company's alert rules, judged each business day once the morning's work is done.
const RULES: &str = include_str!("../../processes/alerts.rules");

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

/// The cast: user, roles.
const PEOPLE: [(&str, &[&str]); 10] = [
    ("sam", &["sales.rep"]),
    ("mia", &["sales.manager"]),
    ("max", &["sales.manager"]),
    ("cora", &["finance.credit_controller"]),
    ("lou", &["logistics.coordinator"]),
    ("ida", &["finance.ar_clerk"]),
    ("alex", &["finance.accountant"]),
    ("ann", &["sales.account_manager"]),
    ("fran", &["finance.controller"]),
    ("carl", &["finance.cfo"]),
];

/// An order of the story: who buys what, who enters it, and how the customer pays.
struct Order {
    id: &'static str,
    customer: &'static str,
    customer_name: &'static str,
    lines: &'static [(&'static str, u32)],
    requested_by: &'static str,
    /// Days after the shipment order is confirmed that logistics dispatches it.
    ships_after: i64,
    payment: Paying,
}

/// How a customer pays an invoice, relative to its due date.
enum Paying {
    /// The whole amount, `days` after the due date (negative: early).
    Full { days: i64 },
    /// Part first, the rest later.
    InTwo { first: &'static str, first_days: i64, rest_days: i64 },
    /// More than the invoice.
    Over { extra: &'static str, days: i64 },
    /// Never.
    Never,
}

const ORDERS: [Order; 5] = [
    Order {
        id: "SO-1001",
        customer: "C-001",
        customer_name: "Alpenrose Feinkost GmbH",
        lines: &[("PUMP-100", 2), ("VALVE-12", 6)],
        requested_by: "sam",
        ships_after: 1,
        payment: Paying::Full { days: -2 },
    },
    Order {
        id: "SO-1002",
        customer: "C-004",
        customer_name: "Delft Instruments BV",
        lines: &[("CTRL-X", 4), ("PUMP-250", 3)],
        requested_by: "sam",
        ships_after: 1,
        payment: Paying::InTwo { first: "10000.00", first_days: 9, rest_days: 12 },
    },
    Order {
        id: "SO-1003",
        customer: "C-008",
        customer_name: "Hanse Maschinenbau AG",
        lines: &[("CTRL-X", 30), ("PUMP-250", 20), ("KIT-INST", 40)],
        requested_by: "sam",
        ships_after: 7,
        payment: Paying::Over { extra: "150.00", days: -1 },
    },
    Order {
        id: "SO-1004",
        customer: "C-013",
        customer_name: "Moselwein Kellerei eG (blocked)",
        lines: &[("SENS-T1", 20)],
        requested_by: "sam",
        ships_after: 1,
        payment: Paying::Never,
    },
    Order {
        id: "SO-1005",
        customer: "C-019",
        customer_name: "Salzburg Events GmbH (risk D)",
        lines: &[("PUMP-100", 3), ("SERV-H", 8)],
        requested_by: "mia",
        ships_after: 1,
        payment: Paying::Never,
    },
];

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
    /// Every instance's history chain is intact.
    pub history_intact: bool,
    /// Refusals the engine gave to the scripted attempts that break the rules.
    pub refusals: Vec<String>,
    /// Alerts the rules opened (rule, subject), in order.
    pub alerts_opened: Vec<(String, String)>,
    /// Alerts that closed because their condition cleared (rule, subject), in order.
    pub alerts_cleared: Vec<(String, String)>,
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
}

impl Story {
    async fn tell(path: &Path, echo: bool) -> Result<Outcome> {
        let clock = VirtualClock::new(first_morning());
        let engine = Engine::open(EngineOptions::new(path, Arc::new(clock.clone())))
            .await
            .context("opening the demo database")?;
        engine.deploy(&PROCESSES).await.context("deploying the reference processes")?;
        let ledger = Ledger::open(path).await.context("opening the sub-ledger")?;
        let seeded = ledger.seed_demo_company(clock_date(&clock)).await.context("seeding the demo company")?;
        let handlers = finance::handlers(&ledger);
        let topics = finance::JOB_TYPES.iter().map(|t| t.to_string()).collect();
        let mut story = Story {
            engine,
            clock,
            ledger,
            handlers,
            topics,
            echo,
            timeline: Vec::new(),
            refusals: Vec::new(),
            told: HashMap::new(),
            labels: HashMap::new(),
            definitions: HashMap::new(),
            roots: BTreeMap::new(),
            dispatch_on: HashMap::new(),
            payments: Vec::new(),
            awaiting_invoice: Vec::new(),
            rules: crate::server::alerts::check_rules(&[("alerts.rules".to_string(), RULES.to_string())])
                .map_err(|rendered| anyhow::anyhow!("the alert rules do not check:\n{rendered}"))?,
            alerts_opened: Vec::new(),
            alerts_cleared: Vec::new(),
        };
        story.heading("Cloverleaf demo: order to cash at a small wholesaler, on a virtual clock (times in Asia/Shanghai, money in CNY)");
        story.say(format!(
            "the company: {} customers with credit limits, risk ratings A-D and payment terms; {} invoices taken over",
            seeded.customers, seeded.opening_invoices
        ));
        let outcome = story.play().await?;
        story.engine.store().close().await;
        story.ledger.close().await;
        Ok(outcome)
    }

    async fn play(&mut self) -> Result<Outcome> {
        let today = clock_date(&self.clock);
        for order in &ORDERS {
            let quantities: Vec<(&str, Decimal)> =
                order.lines.iter().map(|(sku, n)| (*sku, Decimal::from(*n))).collect();
            let amount = self.ledger.record_order(order.id, order.customer, today, &quantities).await?;
            self.say(format!(
                "{} enters order {} for {}, {}: {}",
                order.requested_by,
                order.id,
                order.customer,
                order.customer_name,
                money(amount)
            ));
            let variables = json!({"order_id": order.id, "customer_id": order.customer,
                "amount": amount.to_string(), "requested_by": order.requested_by});
            let id = self.engine.start("order_to_cash", Some(order.id), variables).await?;
            self.roots.insert(order.id, id);
            self.dispatch_on.insert(order.id, today + TimeDelta::days(order.ships_after));
        }
        self.settle().await?;
        self.rule_breakers().await?;
        for day in 0..=DAYS {
            if day > 0 {
                self.run_until(first_morning() + TimeDelta::days(day)).await?;
            }
            self.logistics().await?;
            self.banking().await?;
            self.work_inboxes().await?;
            self.judge_alerts().await?;
        }
        self.finish().await
    }

    /// Moves the clock to `morning` through every timer and cron start due before it, each at
    /// its own time, so that the month-end close runs at 18:00 Shanghai time on the last day.
    async fn run_until(&mut self, morning: DateTime<Utc>) -> Result<()> {
        loop {
            let timer = self.engine.store().next_timer().await?;
            let schedule = self.engine.store().next_schedule().await?;
            let next = [timer, schedule].into_iter().flatten().filter(|at| *at < morning).min();
            let Some(at) = next else { break };
            self.clock.advance_to(at);
            self.engine.fire_due_timers().await?;
            self.engine.fire_due_schedules().await?;
            self.settle().await?;
            self.work_inboxes().await?;
        }
        self.clock.advance_to(morning);
        self.engine.fire_due_timers().await?;
        self.engine.fire_due_schedules().await?;
        self.settle().await
    }

    /// The attempts the engine must refuse, made on the first morning.
    async fn rule_breakers(&mut self) -> Result<()> {
        let sam = self.inbox("sam").await?;
        if let Some(task) = self.tasks_at("manager_approval").await?.into_iter().next() {
            let refused = self.engine.complete_task(&task.id, "sam", &["sales.rep"], json!({"approve": true})).await;
            self.refused("sam tries to approve an order himself", refused);
        }
        self.say(format!("sam's inbox holds {} task(s): a sales rep approves nothing", sam.len()));
        let own = self.tasks_at("manager_approval").await?.into_iter().find(|t| t.title.contains("SO-1005"));
        if let Some(task) = own {
            let refused =
                self.engine.complete_task(&task.id, "mia", &["sales.manager"], json!({"approve": true})).await;
            self.refused("mia tries to approve SO-1005, her own order", refused);
        }
        let wrong = self.tasks_at("manager_approval").await?.into_iter().next();
        if let Some(task) = wrong {
            let refused =
                self.engine.complete_task(&task.id, "max", &["sales.manager"], json!({"approve": "yes"})).await;
            self.refused("max answers an approval with \"yes\" instead of true", refused);
        }
        Ok(())
    }

    /// Dispatches every order due to ship today (a shipment.dispatched message from logistics).
    async fn logistics(&mut self) -> Result<()> {
        let today = clock_date(&self.clock);
        let mut due: Vec<&'static str> =
            self.dispatch_on.iter().filter(|(_, d)| **d <= today).map(|(o, _)| *o).collect();
        due.sort_unstable();
        let waiting = self.engine.store().instances(Some("ship_then_invoice"), Some("running"), None, 1000, 0).await?;
        for order in due {
            // Only an order whose shipping has started can be dispatched; a rejected one never will.
            if !waiting.iter().any(|i| self.labels.get(&i.id).is_some_and(|label| label == order)) {
                if self.finished(order).await? {
                    self.dispatch_on.remove(order);
                }
                continue;
            }
            self.dispatch_on.remove(order);
            let shipment = format!("SH-{}", &order[3..]);
            self.say(format!("logistics dispatches {order} as {shipment}"));
            let message = Message {
                name: "shipment.dispatched".into(),
                correlation_key: order.to_string(),
                payload: json!({"shipment_id": shipment, "carrier": "Rhenus"}),
                message_id: Some(format!("dispatch-{order}")),
                ttl: TimeDelta::days(30),
            };
            self.engine.correlate(message).await?;
            self.settle().await?;
            self.awaiting_invoice.push(order);
        }
        self.plan_payments().await
    }

    /// Plans the customers' payments of the dispatched orders whose invoice is booked; the others
    /// are looked at again the next morning.
    async fn plan_payments(&mut self) -> Result<()> {
        for order in std::mem::take(&mut self.awaiting_invoice) {
            let Some(invoice) = self.ledger.invoice_of_order(order).await? else {
                self.awaiting_invoice.push(order);
                continue;
            };
            let plan = ORDERS.iter().find(|o| o.id == order).map(|o| &o.payment);
            let due = invoice.due_date;
            let pid = |n: u32| format!("BANK-{}-{n}", &order[3..]);
            match plan {
                Some(Paying::Full { days }) => self.payments.push((due + TimeDelta::days(*days), order, pid(1), None)),
                Some(Paying::InTwo { first, first_days, rest_days }) => {
                    self.payments.push((due + TimeDelta::days(*first_days), order, pid(1), Some(first.parse()?)));
                    self.payments.push((due + TimeDelta::days(*rest_days), order, pid(2), None));
                }
                Some(Paying::Over { extra, days }) => {
                    let amount = invoice.total + extra.parse::<Decimal>()?;
                    self.payments.push((due + TimeDelta::days(*days), order, pid(1), Some(amount)));
                }
                Some(Paying::Never) | None => {}
            }
        }
        Ok(())
    }

    /// Customers' payments arrive at the bank; each goes to the ledger and to the waiting process.
    async fn banking(&mut self) -> Result<()> {
        let today = clock_date(&self.clock);
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.payments).into_iter().partition(|p| p.0 <= today);
        self.payments = later;
        for (_, order, payment_id, amount) in due {
            let Some(invoice) = self.ledger.invoice_of_order(order).await? else { continue };
            let (open, _) = self.ledger.invoice_open(&invoice.invoice_id).await?;
            let amount = amount.unwrap_or(open);
            let customer = ORDERS.iter().find(|o| o.id == order).map(|o| o.customer);
            let now = self.engine.now();
            self.ledger.record_bank_payment(&payment_id, customer, amount, &invoice.invoice_id, today, now).await?;
            self.say(format!("the bank reports {payment_id}: {} referencing {}", money(amount), invoice.invoice_id));
            let message = Message {
                name: "payment.received".into(),
                correlation_key: invoice.invoice_id.clone(),
                payload: json!({"amount": amount.to_string(), "reference": invoice.invoice_id, "payment_id": payment_id}),
                message_id: Some(payment_id.clone()),
                ttl: TimeDelta::days(90),
            };
            if self.engine.correlate(message).await? == Correlation::Buffered {
                self.say(format!("{payment_id} is buffered until the invoice waits for it"));
            }
            self.settle().await?;
        }
        Ok(())
    }

    /// Judges the alert rules on the day's figures and tells what opened and what cleared.
    async fn judge_alerts(&mut self) -> Result<()> {
        let changes = crate::server::alerts::judge(&self.ledger, &self.rules, self.engine.now()).await?;
        if changes.opened.is_empty() && changes.closed.is_empty() {
            return Ok(());
        }
        let alerts = self.ledger.alerts(false).await?;
        for alert in alerts.iter().rev() {
            let whom = if alert.subject.is_empty() { String::new() } else { format!(" ({})", alert.subject) };
            let unit = cloverleaf_finance::ledger::kpi::definition(&alert.indicator).map(|d| d.unit);
            let shown = |v: Decimal| match unit {
                Some(cloverleaf_finance::ledger::kpi::Unit::Money) => money(v),
                Some(cloverleaf_finance::ledger::kpi::Unit::Days) => format!("{} days", v.round_dp(1)),
                _ => format!("{}%", (v * Decimal::from(100)).round_dp(1)),
            };
            if changes.opened.contains(&alert.id) {
                self.say(format!(
                    "ALERT [{}] {}{whom}: {} is {}",
                    alert.severity,
                    alert.title,
                    alert.indicator.replace('_', " "),
                    shown(alert.last_value)
                ));
                self.alerts_opened.push((alert.rule.clone(), alert.subject.clone()));
            }
            if changes.closed.contains(&alert.id) {
                self.say(format!("alert cleared: {}{whom}", alert.title));
                self.alerts_cleared.push((alert.rule.clone(), alert.subject.clone()));
            }
        }
        Ok(())
    }

    /// Each person works the tasks in their inbox the way the story has them decide.
    async fn work_inboxes(&mut self) -> Result<()> {
        for _round in 0..5 {
            let mut acted = false;
            for (user, roles) in PEOPLE {
                for task in self.engine.inbox(user, roles).await? {
                    let Some(form) = decision(user, &task) else { continue };
                    match self.engine.complete_task(&task.id, user, roles, form).await {
                        Ok(()) => acted = true,
                        // Somebody else's rule (separation of duties): another colleague takes it.
                        Err(EngineError::Rejected(_)) => {}
                        Err(e) => return Err(e.into()),
                    }
                    self.settle().await?;
                }
            }
            if !acted {
                break;
            }
        }
        Ok(())
    }

    /// Runs every job that is due, one at a time, until none is; then tells what happened. Jobs
    /// are fetched through the engine's writer, so "none" is the committed truth, not a reading
    /// that a job locked a moment later could contradict. A job whose attempt failed waits for
    /// its retry's backoff: the clock moves on to it, as time would, so that the story never goes
    /// on past work that is merely waiting to be tried again.
    async fn settle(&mut self) -> Result<()> {
        let request = FetchRequest {
            worker_id: "demo-worker".into(),
            topics: self.topics.clone(),
            max_jobs: 32,
            lease: TimeDelta::seconds(60),
            wait: Duration::ZERO,
        };
        let deadline = tokio::time::Instant::now() + SETTLE_LIMIT;
        while tokio::time::Instant::now() < deadline {
            let jobs = JobSource::fetch_and_lock(&self.engine, &request).await?;
            if jobs.is_empty() {
                match self.engine.store().next_ready_job(&self.topics).await? {
                    Some(retry) if retry > self.engine.now() => {
                        self.tell_history().await?;
                        self.clock.advance_to(retry);
                        continue;
                    }
                    _ => {
                        self.tell_history().await?;
                        return Ok(());
                    }
                }
            }
            for job in jobs {
                self.run_job(job).await?;
            }
        }
        bail!("the jobs did not finish within {} s", SETTLE_LIMIT.as_secs())
    }

    /// Runs one job's handler and reports its outcome as a worker does: a result, a business
    /// error the process may catch, or a failure the engine retries.
    async fn run_job(&self, job: Job) -> Result<()> {
        let context = JobContext { job: job.clone(), now: self.engine.now() };
        let outcome = match self.handlers.get(&job.job_type) {
            Some(handler) => handler.call(context).await,
            None => Err(HandlerError::failure(format!("no handler for job type {}", job.job_type))),
        };
        let reported = match outcome {
            Ok(output) => JobSource::complete(&self.engine, &job.id, job.epoch, output).await,
            Err(HandlerError::Business { code, .. }) => {
                JobSource::business_error(&self.engine, &job.id, job.epoch, &code).await
            }
            Err(HandlerError::Failure(message)) => JobSource::fail(&self.engine, &job.id, job.epoch, &message).await,
        };
        match reported {
            // An output the process cannot take: a failure, which an incident then shows.
            Err(SourceError::Refused(reason)) => Ok(JobSource::fail(&self.engine, &job.id, job.epoch, &reason).await?),
            other => Ok(other?),
        }
    }

    async fn finish(&mut self) -> Result<Outcome> {
        self.settle().await?;
        let today = clock_date(&self.clock);
        self.heading(&format!("Where things stand on {today}"));
        let mut orders = BTreeMap::new();
        for (order, id) in self.roots.clone() {
            let instance = self.engine.instance(&id).await?;
            let end = match instance.status() {
                cloverleaf_engine::Status::Completed { outcome } => {
                    outcome.clone().unwrap_or_else(|| "completed".into())
                }
                other => format!("{other:?}").to_lowercase(),
            };
            self.say(format!("{order}: {}", end.replace('_', " ")));
            orders.insert(order.to_string(), end);
        }
        let trial = self.ledger.trial_balance().await?;
        let balanced = trial.total_debit == trial.total_credit && trial.unbalanced_entries.is_empty();
        self.say(format!(
            "trial balance: debits {} = credits {}{}",
            money(trial.total_debit),
            money(trial.total_credit),
            if balanced { "" } else { "  << NOT BALANCED" }
        ));
        // Debit balances in one column, credit balances in the other, as an accountant reads them.
        self.say(format!("  {:<6} {:<34} {:>18} {:>18}", "", "", "debit", "credit"));
        for line in trial.accounts.iter().filter(|l| !l.balance.is_zero()) {
            let (debit, credit) = if line.balance > Decimal::ZERO {
                (money(line.balance), String::new())
            } else {
                (String::new(), money(-line.balance))
            };
            self.say(format!("  {:<6} {:<34} {debit:>18} {credit:>18}", line.account, line.name));
        }
        let aging = self.ledger.aging(today).await?;
        let buckets: Vec<String> = aging.buckets.iter().map(|b| format!("{} {}", b.label, money(b.amount))).collect();
        self.say(format!("AR aging as of {today}: {} (total {})", buckets.join(" | "), money(aging.total)));
        let kpis = self.ledger.kpis(today).await?;
        let rate =
            |r: Option<Decimal>| r.map_or("n/a".to_string(), |r| format!("{}%", (r * Decimal::from(100)).round_dp(1)));
        self.say(format!(
            "payments matched automatically {} | DSO {} days | bad-debt rate {} | gross margin {}",
            rate(kpis.auto_match_rate),
            kpis.days_sales_outstanding.map_or("n/a".to_string(), |d| d.round_dp(1).to_string()),
            rate(kpis.bad_debt_rate),
            rate(kpis.gross_margin),
        ));
        let mut intact = true;
        let mut after: Option<InstanceId> = None;
        let mut checked = 0;
        loop {
            let page = self.engine.verify_histories(after.as_ref(), 500).await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            checked += page.len();
            intact &= page.iter().all(|(_, check)| check.is_intact());
        }
        self.say(format!(
            "audit: history hash chains of {checked} instances {}",
            if intact { "verified intact" } else { "ALTERED" }
        ));
        Ok(Outcome {
            timeline: self.timeline.clone(),
            orders,
            balanced,
            open_receivables: aging.total,
            history_intact: intact,
            refusals: self.refusals.clone(),
            alerts_opened: self.alerts_opened.clone(),
            alerts_cleared: self.alerts_cleared.clone(),
        })
    }

    async fn inbox(&self, user: &str) -> Result<Vec<TaskInfo>> {
        let roles = PEOPLE.iter().find(|(u, _)| *u == user).map_or(&[][..], |(_, r)| *r);
        Ok(self.engine.inbox(user, roles).await?)
    }

    async fn tasks_at(&self, node: &str) -> Result<Vec<TaskInfo>> {
        Ok(self.engine.tasks(None).await?.into_iter().filter(|t| t.node == node).collect())
    }

    async fn finished(&self, order: &str) -> Result<bool> {
        match self.roots.get(order) {
            Some(id) => Ok(self.engine.instance(id).await?.status().is_final()),
            None => Ok(true),
        }
    }

    fn refused(&mut self, attempt: &str, result: Result<(), EngineError>) {
        let text = match result {
            Ok(()) => format!("{attempt}: ACCEPTED, which the engine should have refused"),
            Err(e) => format!("{attempt}: refused: {e}"),
        };
        self.refusals.push(text.clone());
        self.say(text);
    }

    /// Prints the history rows written since the last call, in time order, labelled by order.
    async fn tell_history(&mut self) -> Result<()> {
        let instances = self.engine.store().instances(None, None, None, 100_000, 0).await?;
        // (at, label, phase, order among instances, seq, text): at one instant, what instances
        // did comes parents first, and how they ended children first (a call ends its parent).
        let mut lines: Vec<(String, String, u8, i64, i64, String)> = Vec::new();
        // Parents before children, so that a child inherits its parent's label.
        let mut instances = instances;
        instances.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        for (rank, summary) in instances.iter().enumerate() {
            if !self.labels.contains_key(&summary.id) {
                let label = match (&summary.business_key, &summary.parent_id) {
                    (Some(key), _) => key.clone(),
                    (None, Some(parent)) => self.labels.get(parent).cloned().unwrap_or_default(),
                    (None, None) if summary.process_key == "month_end_close" => {
                        format!("close {}", summary.created_at.format("%b"))
                    }
                    (None, None) => summary.process_key.clone(),
                };
                self.labels.insert(summary.id.clone(), label);
            }
            let told = self.told.get(&summary.id).copied().unwrap_or(0);
            let id = InstanceId(summary.id.clone());
            let definition = self.definition(&summary.process_key, summary.process_version).await?;
            let rows = self.engine.history(&id).await?;
            if rows.last().is_none_or(|r| r.seq <= told) {
                continue;
            }
            let variables = self.engine.instance(&id).await?.variables().clone();
            let label = self.labels.get(&summary.id).cloned().unwrap_or_default();
            for row in rows.iter().filter(|r| r.seq > told) {
                if let Some(text) = describe(&definition, &variables, row) {
                    let rank = i64::try_from(rank).unwrap_or(i64::MAX);
                    let ending = matches!(row.kind.as_str(), "end_reached" | "completed" | "failed" | "cancelled");
                    let (phase, order) = if ending { (1, -rank) } else { (0, rank) };
                    lines.push((row.at.clone(), label.clone(), phase, order, row.seq, text));
                }
            }
            if let Some(last) = rows.last() {
                self.told.insert(summary.id.clone(), last.seq);
            }
        }
        lines.sort();
        for (at, label, _, _, _, text) in lines {
            let when = at.parse::<DateTime<Utc>>().map_or_else(|_| at.clone(), local);
            self.line(format!("{when}  {label:<10} {text}"));
        }
        Ok(())
    }

    async fn definition(&mut self, key: &str, version: u32) -> Result<Arc<CompiledProcess>> {
        if let Some(d) = self.definitions.get(&(key.to_string(), version)) {
            return Ok(Arc::clone(d));
        }
        let definition = self.engine.definition(key, version).await?;
        self.definitions.insert((key.to_string(), version), Arc::clone(&definition));
        Ok(definition)
    }

    fn say(&mut self, text: String) {
        let now = local(self.engine.now());
        self.line(format!("{now}  {:<10} {text}", ""));
    }

    fn heading(&mut self, text: &str) {
        self.line(String::new());
        self.line(format!("== {text}"));
    }

    fn line(&mut self, text: String) {
        if self.echo {
            println!("{text}");
        }
        self.timeline.push(text);
    }
}

/// What each person decides when a task reaches them; `None`: not theirs to act on.
fn decision(user: &str, task: &TaskInfo) -> Option<Value> {
    let form = match (task.node.as_str(), user) {
        ("manager_approval" | "director_approval", "mia" | "max") => json!({"approve": true}),
        ("credit_review", "cora") => json!({"approve": true, "comment": "secured by a payment plan"}),
        ("cfo_approval", "carl") => json!({"approve": true}),
        ("chase_shipment", "lou") => json!({"chase_note": "carrier booked, dispatch tomorrow"}),
        ("fix_invoice_data", "ida") => json!({"fix_note": "tax number corrected"}),
        ("reference_review", "ida") => json!({"belongs_here": true}),
        ("overpayment_review", "alex") => json!({"refund": true, "comment": "refund to the customer's account"}),
        ("call_customer", "ann") => json!({"comment": "customer disputes the service hours; escalated to finance"}),
        ("finance_decision", "fran") => json!({"write_off": true, "comment": "customer insolvent"}),
        ("cfo_write_off", "carl") => json!({"approve_write_off": true}),
        ("review" | "cfo_review", "fran" | "carl") => json!({"approve_close": true}),
        ("adjustments", "alex") => json!({}),
        ("legal_review", "fran") => json!({"legal_note": "handed to the collection agency"}),
        _ => return None,
    };
    Some(form)
}

/// One timeline line for a history row, or `None` for the bookkeeping rows nobody reads.
fn describe(
    definition: &CompiledProcess,
    variables: &BTreeMap<String, DslValue>,
    row: &cloverleaf_engine::store::HistoryRow,
) -> Option<String> {
    let entry: Value = serde_json::from_str(&row.detail).ok()?;
    let node = row.node.as_deref().and_then(|n| definition.nodes.iter().find(|x| x.name == n));
    let title = node.map(|n| n.title.clone().unwrap_or_else(|| n.name.replace('_', " "))).unwrap_or_default();
    let title = render_title(&title, variables);
    let variables = entry.get("variables").and_then(Value::as_object);
    let shown = |keys: &[&str]| -> String {
        let Some(vars) = variables else { return String::new() };
        let parts: Vec<String> = vars
            .iter()
            .filter(|(k, _)| keys.is_empty() || keys.contains(&k.as_str()))
            .filter_map(|(k, v)| plain(v).map(|v| format!("{k} {v}")))
            .collect();
        if parts.is_empty() { String::new() } else { format!(": {}", parts.join(", ")) }
    };
    let detail = entry.get("detail").and_then(Value::as_str).unwrap_or_default();
    let who = match (&row.who, &row.on_behalf_of) {
        (Some(who), Some(principal)) => format!("{who} (for {principal})"),
        (Some(who), None) => who.clone(),
        _ => String::new(),
    };
    let text = match row.kind.as_str() {
        "started" => format!("{} started", definition.title),
        "entered" => match node.map(|n| &n.kind) {
            Some(NodeKind::Approval { roles, .. }) => {
                let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
                format!("task for {}: {title}", roles.join(", "))
            }
            _ => return None,
        },
        "job_completed" => format!("{}{}", title, shown(&[])),
        "business_error" => format!("{title}: {detail}"),
        "task_completed" => format!("{who} completes \"{title}\"{}", shown(&[])),
        "task_delegated" => format!("{who} delegates \"{title}\" {detail}"),
        "timer_fired" => format!("timer: {title}"),
        "message_received" => format!("message: {title}{}", shown(&[])),
        "incident_raised" => format!("INCIDENT at {title}: {detail}"),
        "job_failed" => format!("{title} failed, to be tried again: {detail}"),
        "completed" => format!("{} completed", definition.title),
        "end_reached" => match node.map(|n| &n.kind) {
            Some(NodeKind::End { .. }) => format!("ends: {title}"),
            _ => return None,
        },
        "failed" => format!("{} failed {detail}", definition.title),
        "cancelled" => format!("{} cancelled", definition.title),
        _ => return None,
    };
    Some(text)
}

/// A node title with its `{variable}` placeholders filled from the instance's variables (the
/// ones titles name, order and invoice ids, do not change during an instance).
fn render_title(title: &str, variables: &BTreeMap<String, DslValue>) -> String {
    let mut out = String::with_capacity(title.len());
    let mut rest = title;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                match variables.get(name) {
                    Some(DslValue::Text(text)) => out.push_str(text),
                    Some(DslValue::Number(n)) => out.push_str(&money(*n)),
                    Some(DslValue::Date(d)) => out.push_str(&d.to_string()),
                    Some(other) => out.push_str(&other.to_string()),
                    None => out.push_str(&rest[open..open + close + 2]),
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// A value as a person reads it, or `None` for records and long texts.
fn plain(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if s.len() <= 40 => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => None,
        Value::Object(map) => match (map.get("type").and_then(Value::as_str), map.get("value")) {
            (Some(_), Some(inner)) => plain(inner),
            _ => None,
        },
        _ => None,
    }
}

/// The demo company's zone: the story's times are told in it.
const COMPANY_ZONE: chrono_tz::Tz = chrono_tz::Asia::Shanghai;

/// A time as the demo company reads it.
fn local(at: DateTime<Utc>) -> String {
    at.with_timezone(&COMPANY_ZONE).format("%Y-%m-%d %H:%M").to_string()
}

/// Money as the pages show it, with its currency.
fn money(amount: Decimal) -> String {
    crate::web::i18n::money(amount, crate::web::i18n::Lang::En)
}

fn clock_date(clock: &VirtualClock) -> NaiveDate {
    use cloverleaf_engine::Clock as _;
    clock.now().date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_carries_its_currency_and_times_the_companys_zone() {
        assert_eq!(money(Decimal::new(123_456_789, 2)), "CNY 1,234,567.89");
        let close = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 1, 31, 10, 0, 0).unwrap();
        assert_eq!(local(close), "2026-01-31 18:00");
    }
}
