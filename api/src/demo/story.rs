//! The story's days: orders entered, rule breakers refused, shipments dispatched, payments at the
//! bank, inboxes worked, jobs run, alerts judged, and where things stand at the end.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, TimeDelta, Utc};
use cloverleaf_engine::runtime::{Correlation, Engine, EngineOptions, Error as EngineError, Message};
use cloverleaf_engine::store::{Queries as _, Store as _, TaskInfo};
use cloverleaf_engine::{InstanceId, VirtualClock};
use cloverleaf_finance::{self as finance, Ledger};
use cloverleaf_worker::{FetchRequest, HandlerError, Job, JobContext, JobSource, SourceError};
use rust_decimal::Decimal;
use serde_json::json;

use crate::server::config::{DEMO_ZONE, WebhookEntry};
use crate::server::notify::{Notifier, NotifierOptions};

use super::cast::{BUDGET_CENTS, BUDGET_UNIT, BUDGETED, ORDERS, PEOPLE, Paying, RECEIPTS, away, decision};
use super::telling::money;
use super::{DAYS, Outcome, PROCESSES, RULES, SETTLE_LIMIT, Story, clock_date, first_morning};

impl Story {
    /// Opens the engine and the sub-ledger on `path`, seeds the demo company and plays the story
    /// (printing it as it unfolds when `echo`).
    pub(super) async fn tell(path: &Path, echo: bool) -> Result<Outcome> {
        let clock = VirtualClock::new(first_morning());
        let engine = Engine::open(EngineOptions::new(path, Arc::new(clock.clone())))
            .await
            .context("opening the demo database")?;
        engine.deploy(&PROCESSES).await.context("deploying the reference processes")?;
        let ledger = Ledger::open(path).await.context("opening the sub-ledger")?;
        // A demo database kept from an earlier run keeps the zone its books began in.
        if let Err(e) = ledger.set_book_zone(DEMO_ZONE).await {
            tracing::warn!("the demo company's books keep their zone: {e}");
        }
        let seeded = ledger.seed_demo_company(clock_date(&clock)).await.context("seeding the demo company")?;
        // The northern sales unit may commit so much in January: the large order outgrows it.
        for customer in BUDGETED {
            ledger.assign_cost_centre(customer, Some(BUDGET_UNIT)).await.context("assigning a cost centre")?;
        }
        let budget = ledger
            .set_budget(BUDGET_UNIT, "2026-01", Decimal::new(BUDGET_CENTS, 2), first_morning())
            .await
            .context("setting the budget")?;
        let handlers = finance::handlers(&ledger);
        let topics = finance::JOB_TYPES.iter().map(|t| t.to_string()).collect();
        let mut project = cloverleaf_dsl::Project::new();
        for (name, text) in PROCESSES {
            project.add(name, text);
        }
        let roles = crate::server::alerts::with_server_roles(project.compile().roles);
        let sink = super::sink::Sink::start().await?;
        let hook = WebhookEntry { url: sink.url.clone(), secret: super::sink::SECRET.to_string(), kinds: Vec::new() };
        let notifier =
            Notifier::new(engine.clone(), vec![hook], NotifierOptions::default()).map_err(anyhow::Error::msg)?;
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
            rules: crate::server::alerts::check_rules(&[("alerts.rules".to_string(), RULES.to_string())], Some(&roles))
                .map_err(|rendered| anyhow::anyhow!("the alert rules do not check:\n{rendered}"))?,
            alerts_opened: Vec::new(),
            alerts_cleared: Vec::new(),
            sink,
            notifier,
        };
        story.heading("Cloverleaf demo: order to cash at a small wholesaler, on a virtual clock (times in Asia/Shanghai, money in CNY)");
        story.say(format!(
            "the company: {} customers with credit limits, risk ratings A-D and payment terms; {} invoices taken over",
            seeded.customers, seeded.opening_invoices
        ));
        story.say(format!(
            "budgets: {BUDGET_UNIT} ({}) may commit {} of orders in January; an order beyond it goes to the controller",
            BUDGETED.join(", "),
            money(budget.amount)
        ));
        story.say(
            "stock: opening stock taken over at cost; goods receipts add to it and each shipment's cost of goods leaves it at the moving average cost".to_string(),
        );
        story
            .say("fran, the controller, is at a trade fair from 31 January to 3 February: her inbox waits".to_string());
        let outcome = story.play().await?;
        for line in story.ledger.budgets(Some("2026-01")).await? {
            story.say(format!(
                "budget {} {}: {} reserved by {} order(s), {} of it approved over the budget; {} left",
                line.cost_centre,
                line.period,
                money(line.reserved),
                line.orders,
                money(line.over_budget),
                money(line.left)
            ));
        }
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
            self.ledger.set_sales_rep(order.id, order.requested_by).await?;
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
            self.receiving(day).await?;
            self.logistics().await?;
            self.banking().await?;
            self.work_inboxes().await?;
            self.judge_alerts().await?;
            self.deliver_notifications().await?;
            self.ledger.snapshot_kpis(clock_date(&self.clock), self.engine.now()).await?;
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
            if !waiting.iter().any(|i| self.labels.get(i.id.as_str()).is_some_and(|label| label == order)) {
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

    /// The warehouse books the day's goods receipts into stock (Inventory against what the
    /// suppliers are owed).
    async fn receiving(&mut self, day: i64) -> Result<()> {
        let today = clock_date(&self.clock);
        for receipt in RECEIPTS.iter().filter(|r| r.day == day) {
            let (id, supplier) = (receipt.id, receipt.supplier);
            let lines: Vec<(&str, Decimal, Decimal)> = receipt
                .lines
                .iter()
                .map(|(sku, units, cost)| Ok((*sku, Decimal::from(*units), cost.parse::<Decimal>()?)))
                .collect::<Result<_>>()?;
            let received = self.ledger.receive_goods(id, supplier, today, &lines, self.engine.now()).await?;
            let what: Vec<String> =
                lines.iter().map(|(sku, units, cost)| format!("{units} {sku} at {}", money(*cost))).collect();
            self.say(format!(
                "the warehouse receives {id} from {supplier}: {} ({} owed to the supplier)",
                what.join(", "),
                money(received.total)
            ));
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
        let now = self.engine.now();
        let process = crate::server::alerts::process_figures(&self.engine, now).await?;
        let changes = crate::server::alerts::judge(&self.ledger, &self.rules, &process, now).await?;
        let alerts = self.ledger.alerts(false).await?;
        self.engine.notify(crate::server::alerts::alert_notices(&alerts, &self.rules, now)).await?;
        if changes.opened.is_empty() && changes.closed.is_empty() {
            return Ok(());
        }
        for alert in alerts.iter().rev() {
            let whom = if alert.subject.is_empty() { String::new() } else { format!(" ({})", alert.subject) };
            let unit = cloverleaf_finance::ledger::kpi::definition(&alert.indicator)
                .map(|d| d.unit)
                .or((alert.indicator == cloverleaf_finance::ledger::kpi::CREDIT_UTILISATION)
                    .then_some(cloverleaf_finance::ledger::kpi::Unit::Ratio));
            let shown = |v: Decimal| match unit {
                Some(cloverleaf_finance::ledger::kpi::Unit::Money) => money(v),
                Some(cloverleaf_finance::ledger::kpi::Unit::Days) => format!("{} days", v.round_dp(1)),
                Some(cloverleaf_finance::ledger::kpi::Unit::Ratio) => {
                    format!("{}%", (v * Decimal::from(100)).round_dp(1))
                }
                // The process figures: a count, or the oldest incident's age in days.
                None if alert.indicator.ends_with("_age") => format!("{} days", v.round_dp(1)),
                None => v.normalize().to_string(),
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

    /// Delivers the day's notifications to the company's chat bridge and tells how many went.
    async fn deliver_notifications(&mut self) -> Result<()> {
        let before = self.sink.counts();
        let pass = self.notifier.deliver_due().await?;
        if pass.retrying + pass.dead > 0 {
            self.say(format!("notifications: {} not delivered yet", pass.retrying + pass.dead));
        }
        let after = self.sink.counts();
        let sent: Vec<String> = after
            .iter()
            .filter_map(|(kind, n)| {
                let new = n - before.get(kind).copied().unwrap_or(0);
                (new > 0).then(|| format!("{new} {}", kind.replace('_', " ")))
            })
            .collect();
        if !sent.is_empty() {
            self.say(format!("chat bridge received (signed): {}", sent.join(", ")));
        }
        Ok(())
    }

    /// Each person works the tasks in their inbox the way the story has them decide.
    async fn work_inboxes(&mut self) -> Result<()> {
        for _round in 0..5 {
            let mut acted = false;
            for (user, roles) in PEOPLE {
                if away(user, self.engine.now()) {
                    continue;
                }
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
        // Stock as the warehouse holds it, and the Inventory account that booked it: the same sum.
        let stock = self.ledger.stock().await?;
        let held: Decimal = stock.iter().map(|l| l.value).sum();
        let inventory = trial.balance(cloverleaf_finance::ledger::account::INVENTORY);
        let units: Vec<String> = stock.iter().map(|l| format!("{} {}", l.on_hand, l.sku)).collect();
        self.say(format!(
            "stock: {} worth {} at moving average cost; Inventory {} {}",
            units.join(", "),
            money(held),
            money(inventory),
            if held == inventory { "agrees" } else { "DISAGREES" }
        ));
        let aging = self.ledger.aging(today).await?;
        let buckets: Vec<String> = aging
            .buckets
            .iter()
            .map(|b| match b.label.as_str() {
                cloverleaf_finance::ledger::NOT_DUE => format!("not yet due {}", money(b.amount)),
                days => format!("{days} days overdue {}", money(b.amount)),
            })
            .collect();
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
        // The trend, read back from the daily snapshots the story took each evening.
        let series = self
            .ledger
            .kpi_series("days_sales_outstanding", first_morning().with_timezone(&DEMO_ZONE).date_naive(), today)
            .await?;
        let trend: Vec<String> = series
            .iter()
            .step_by(14)
            .map(|p| {
                format!(
                    "{} {}",
                    p.day.format("%d %b"),
                    p.value.map_or("n/a".to_string(), |v| v.round_dp(1).to_string())
                )
            })
            .collect();
        self.say(format!("DSO over the story, from {} daily snapshots: {}", series.len(), trend.join(" → ")));
        let kinds = |alerts: &[(String, String)]| {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for (rule, _) in alerts {
                *counts.entry(rule.as_str()).or_default() += 1;
            }
            let words: Vec<String> =
                counts.iter().map(|(rule, n)| format!("{} ×{n}", rule.replace('_', " "))).collect();
            (counts.len(), words.join(", "))
        };
        let ((opened, opened_words), (cleared, cleared_words)) =
            (kinds(&self.alerts_opened), kinds(&self.alerts_cleared));
        self.say(format!("alerts raised, {opened} kinds: {opened_words}"));
        self.say(format!("alerts cleared when their condition did, {cleared} kinds: {cleared_words}"));
        let delivered = self.sink.counts();
        let by_kind: Vec<String> =
            delivered.iter().map(|(kind, n)| format!("{n} {}", kind.replace('_', " "))).collect();
        self.say(format!(
            "notifications: {} delivered to the chat bridge, each signed and checked ({}); {} refused",
            delivered.values().sum::<usize>(),
            by_kind.join(", "),
            self.sink.refused()
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
            inventory,
            stock: stock.iter().map(|l| (l.sku.clone(), l.on_hand)).collect(),
            stock_value: held,
            history_intact: intact,
            refusals: self.refusals.clone(),
            alerts_opened: self.alerts_opened.clone(),
            alerts_cleared: self.alerts_cleared.clone(),
            notifications: self.sink.counts(),
            notifications_refused: self.sink.refused(),
            notifications_repeated: self.sink.duplicates(),
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
}
