//! The two drivers of the core agree: every reference process runs on the in-memory engine (the
//! one the scenario tests use) and on the durable runtime (the one `serve` runs), driven the same
//! way, and the two must write the same audit trail and the same event log, event by event.
//!
//! The driver plays everyone around the instances, the same way on both: it completes every due
//! job with a canned answer of its type, decides every open task with a canned form of its node,
//! sends the message every waiting instance subscribed to, and when nothing is left to do moves
//! the clock to the next timer. Instance ids differ between the engines; they are compared by
//! their place (the k-th instance started, and the calls it made).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Days, TimeDelta, Utc};
use cloverleaf_engine::HistoryEvent;
use cloverleaf_engine::memory::{MemoryEngine, StartOptions};
use cloverleaf_engine::runtime::Message;
use cloverleaf_engine::{Event, Instance, InstanceId, VirtualClock};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::harness::{Env, t0};

/// How long the driver lets the clock run before it stops (dunning runs for months).
const HORIZON_DAYS: u64 = 200;

/// Most rounds of work before the driver gives up as a runaway.
const MAX_ROUNDS: usize = 500;

/// One instance to start, and how the world around it behaves.
struct Case {
    process: &'static str,
    business_key: &'static str,
    inputs: Value,
    /// The customer pays the invoice in full when asked; otherwise never (dunning runs).
    pays: bool,
    /// What the credit check answers: limit, open receivables, rating.
    credit: (&'static str, &'static str, &'static str),
    /// How long people leave a task open before they decide it (reminders and escalations
    /// fire meanwhile).
    patience: TimeDelta,
}

fn order(id: &str, amount: &str) -> Value {
    json!({"order_id": id, "customer_id": "C-7", "amount": amount, "requested_by": "rita"})
}

fn cases() -> Vec<Case> {
    let good = ("500000.00", "0.00", "A");
    vec![
        Case {
            process: "order_approval",
            business_key: "SO-1",
            inputs: order("SO-1", "8000.00"),
            pays: true,
            credit: good,
            patience: TimeDelta::zero(),
        },
        Case {
            process: "order_approval",
            business_key: "SO-2",
            inputs: order("SO-2", "25000.00"),
            pays: true,
            credit: ("100000.00", "0.00", "B"),
            patience: TimeDelta::zero(),
        },
        Case {
            process: "order_approval",
            business_key: "SO-3",
            inputs: order("SO-3", "180000.00"),
            pays: true,
            credit: good,
            patience: TimeDelta::zero(),
        },
        Case {
            process: "order_approval",
            business_key: "SO-4",
            inputs: order("SO-4", "40000.00"),
            pays: true,
            credit: ("30000.00", "20000.00", "C"),
            patience: TimeDelta::zero(),
        },
        Case {
            process: "order_to_cash",
            business_key: "SO-5",
            inputs: order("SO-5", "20000.00"),
            pays: true,
            credit: good,
            patience: TimeDelta::zero(),
        },
        Case {
            process: "order_to_cash",
            business_key: "SO-6",
            inputs: order("SO-6", "12000.00"),
            pays: false,
            credit: good,
            patience: TimeDelta::zero(),
        },
        Case {
            process: "month_end_close",
            business_key: "2026-01",
            inputs: json!({"as_of": "2026-01-31"}),
            pays: true,
            credit: good,
            patience: TimeDelta::zero(),
        },
        // People who let tasks wait: reminders, escalations and overdue reviews fire first.
        Case {
            process: "order_approval",
            business_key: "SO-7",
            inputs: order("SO-7", "25000.00"),
            pays: true,
            credit: ("100000.00", "0.00", "B"),
            patience: TimeDelta::hours(30),
        },
        Case {
            process: "order_to_cash",
            business_key: "SO-8",
            inputs: order("SO-8", "180000.00"),
            pays: false,
            credit: good,
            patience: TimeDelta::days(3),
        },
        Case {
            process: "month_end_close",
            business_key: "2026-02",
            inputs: json!({"as_of": "2026-02-28"}),
            pays: true,
            credit: good,
            patience: TimeDelta::days(3),
        },
    ]
}

/// What a worker answers for a job of `job_type` with `input` at `now`.
fn job_answer(case: &Case, job_type: &str, input: &Value, now: DateTime<Utc>) -> Value {
    let text = |name: &str| input[name].as_str().unwrap_or_default().to_string();
    match job_type {
        "credit.check" => json!({"credit_limit": case.credit.0, "open_ar": case.credit.1, "risk": case.credit.2}),
        "invoice.issue" => {
            let net: Decimal = text("amount").parse().unwrap_or_default();
            let tax = (net * Decimal::new(19, 2)).round_dp(2);
            let due = now.date_naive().checked_add_days(Days::new(30)).unwrap_or(now.date_naive());
            json!({"invoice_id": format!("INV-{}", text("order_id")), "invoice_number": format!("2026-{}", text("order_id")),
                   "net": net.to_string(), "tax": tax.to_string(), "total": (net + tax).to_string(),
                   "due_date": due.to_string()})
        }
        "ledger.post_cost" => json!({"cost_of_goods": "5000.00"}),
        "payment.match" => {
            let matched = input["reference"] == input["invoice_id"];
            json!({"result": if matched { "matched" } else { "mismatch" }})
        }
        "report.ar_aging" => json!({"report_id": "AR-2026-01", "total": "23800.00"}),
        "report.gross_profit" => {
            json!({"report_id": "GP-2026-01", "revenue": "20000.00", "cost_of_goods": "5000.00", "gross_profit": "15000.00"})
        }
        _ => json!({}),
    }
}

/// The form a person submits on a task at `node`.
fn task_form(node: &str) -> Value {
    match node {
        "credit_review" | "manager_approval" | "director_approval" | "cfo_approval" => {
            json!({"approve": true, "comment": "fine"})
        }
        "reference_review" => json!({"belongs_here": true}),
        "overpayment_review" => json!({"refund": true}),
        "finance_decision" => json!({"write_off": true}),
        "cfo_write_off" => json!({"approve_write_off": true}),
        "review" | "cfo_review" => json!({"approve_close": true}),
        _ => json!({}),
    }
}

/// What a message that an instance waits for carries.
fn message_payload(case: &Case, name: &str, key: &str, instance: &Instance) -> Option<Value> {
    match name {
        "shipment.dispatched" => Some(json!({"shipment_id": format!("SH-{key}")})),
        "payment.received" if case.pays => {
            let amount = instance.variable("amount_due").map(|v| v.to_json()).unwrap_or(json!("0"));
            Some(json!({"amount": amount, "reference": key, "payment_id": format!("PAY-{key}")}))
        }
        _ => None,
    }
}

/// Pending work of one engine, named by place so both engines' can be compared.
#[derive(Debug, Default, PartialEq)]
struct Work {
    /// (job, type, input), by place (the in-memory engine's; the durable one's are locked).
    jobs: Vec<(String, String, Value)>,
    /// (task, node, roles), by place.
    tasks: Vec<(String, String, Vec<String>)>,
    /// (message, key) someone waits for, with the instance (by place).
    waits: BTreeSet<(String, String, String)>,
    /// The next timer.
    next_timer: Option<DateTime<Utc>>,
}

/// Names instances by place: `R` for the started instance, `R.call.N` for what it called (the
/// durable runtime uses the call id as the child's id; the in-memory engine has ids of its own).
struct Places {
    /// (the engine's id, its place), longest id first, so that no id is replaced inside another.
    names: Vec<(String, String)>,
}

impl Places {
    fn new(mut names: Vec<(String, String)>) -> Places {
        names.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        Places { names }
    }

    fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (id, place) in &self.names {
            out = out.replace(id.as_str(), place);
        }
        out
    }
}

/// The in-memory twin.
struct Memory {
    engine: MemoryEngine,
}

impl Memory {
    fn places(&self) -> Places {
        let mut names = Vec::new();
        for id in self.engine.instances() {
            let place = self.place(id);
            names.push((id.to_string(), place));
        }
        Places::new(names)
    }

    fn place(&self, id: &InstanceId) -> String {
        match self.engine.parent(id) {
            Some((parent, call)) => {
                let parent_place = self.place(parent);
                call.to_string().replacen(parent.as_str(), &parent_place, 1)
            }
            None => "R".into(),
        }
    }

    fn work(&self) -> Work {
        let places = self.places();
        let now = self.engine.now();
        let mut jobs: Vec<(String, String, Value)> = self
            .engine
            .pending_jobs()
            .into_iter()
            .filter(|j| j.not_before <= now && j.incident.is_none())
            .map(|j| (places.text(j.id.as_str()), j.job_type.clone(), j.input.clone()))
            .collect();
        jobs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut tasks: Vec<(String, String, Vec<String>)> = self
            .engine
            .tasks()
            .into_iter()
            .map(|t| (places.text(t.id.as_str()), t.node.clone(), t.roles.clone()))
            .collect();
        tasks.sort_by(|a, b| a.0.cmp(&b.0));
        let mut waits = BTreeSet::new();
        let mut next_timer: Option<DateTime<Utc>> = None;
        for id in self.engine.instances() {
            let instance = self.engine.instance(id).expect("a listed instance");
            for s in instance.subscriptions().values() {
                waits.insert((s.message.clone(), s.correlation_key.clone(), places.text(id.as_str())));
            }
            for t in instance.timers().values() {
                next_timer = Some(next_timer.map_or(t.at, |n| n.min(t.at)));
            }
        }
        Work { jobs, tasks, waits, next_timer }
    }
}

/// The durable twin.
struct Durable {
    env: Env,
    roots: Vec<InstanceId>,
}

impl Durable {
    async fn instances(&self) -> Vec<InstanceId> {
        let mut out = Vec::new();
        let mut queue: Vec<InstanceId> = self.roots.clone();
        while let Some(id) = queue.pop() {
            let instance = self.env.engine.instance(&id).await.unwrap();
            for call in instance.calls().keys() {
                queue.push(InstanceId::from(call.to_string()));
            }
            out.push(id);
        }
        // Finished calls leave `calls`: look for their children in the history instead.
        let mut known: BTreeSet<String> = out.iter().map(|i| i.to_string()).collect();
        let mut i = 0;
        while i < out.len() {
            for (event, _) in self.env.engine.events(&out[i]).await.unwrap() {
                let call = match &event {
                    Event::ChildCompleted { call, .. } | Event::ChildFailed { call, .. } => Some(call.to_string()),
                    _ => None,
                };
                if let Some(call) = call
                    && known.insert(call.clone())
                {
                    out.push(InstanceId::from(call));
                }
            }
            i += 1;
        }
        out
    }

    fn places(&self) -> Places {
        Places::new(self.roots.iter().map(|r| (r.to_string(), "R".to_string())).collect())
    }

    async fn work(&self) -> Work {
        let places = self.places();
        let mut tasks = Vec::new();
        let mut waits = BTreeSet::new();
        let mut next_timer: Option<DateTime<Utc>> = None;
        for id in self.instances().await {
            let instance = self.env.engine.instance(&id).await.unwrap();
            for s in instance.subscriptions().values() {
                waits.insert((s.message.clone(), s.correlation_key.clone(), places.text(id.as_str())));
            }
            for t in instance.timers().values() {
                next_timer = Some(next_timer.map_or(t.at, |n| n.min(t.at)));
            }
        }
        for task in self.env.engine.tasks(None).await.unwrap() {
            tasks.push((places.text(task.id.as_str()), task.node.clone(), task.roles.clone()));
        }
        tasks.sort_by(|a, b| a.0.cmp(&b.0));
        Work { jobs: Vec::new(), tasks, waits, next_timer }
    }
}

/// The audit trail and event log of every instance, by place, as comparable text.
type Trail = BTreeMap<String, (Vec<String>, Vec<String>)>;

fn memory_trail(memory: &Memory) -> Trail {
    let places = memory.places();
    let mut trail = Trail::new();
    for id in memory.engine.instances() {
        let history = memory
            .engine
            .history(id)
            .unwrap_or_default()
            .iter()
            .map(|(at, event)| places.text(&format!("{at} {}", serde_json::to_string(event).unwrap())))
            .collect();
        let events = memory
            .engine
            .event_log(id)
            .unwrap_or_default()
            .iter()
            .map(|(event, at)| places.text(&format!("{at} {}", serde_json::to_string(event).unwrap())))
            .collect();
        trail.insert(places.text(id.as_str()), (history, events));
    }
    trail
}

async fn durable_trail(durable: &Durable) -> Trail {
    let places = durable.places();
    let mut trail = Trail::new();
    for id in durable.instances().await {
        let history = durable
            .env
            .engine
            .history(&id)
            .await
            .unwrap()
            .iter()
            .map(|row| {
                let event: HistoryEvent = serde_json::from_str(&row.detail).unwrap();
                let at = cloverleaf_engine::store::parse_ts(&row.at).unwrap();
                places.text(&format!("{at} {}", serde_json::to_string(&event).unwrap()))
            })
            .collect();
        let events = durable
            .env
            .engine
            .events(&id)
            .await
            .unwrap()
            .iter()
            .map(|(event, at)| places.text(&format!("{at} {}", serde_json::to_string(event).unwrap())))
            .collect();
        trail.insert(places.text(id.as_str()), (history, events));
    }
    trail
}

/// Runs `case` on both engines with the same driver; returns both trails.
async fn run_twins(case: &Case) -> Option<(Trail, Trail)> {
    let env = Env::reference().await?;
    let clock = VirtualClock::new(t0());
    let mut memory = Memory { engine: MemoryEngine::with_clock(clock.clone()) };
    memory.engine.deploy_compilation(&crate::common::reference_project().compile()).unwrap();
    let options = StartOptions { business_key: Some(case.business_key.into()), ..StartOptions::default() };
    memory.engine.start_with(case.process, case.inputs.clone(), options).unwrap();
    let root = env.engine.start(case.process, Some(case.business_key), case.inputs.clone()).await.unwrap();
    let durable = Durable { env, roots: vec![root] };
    let horizon = t0() + TimeDelta::days(i64::try_from(HORIZON_DAYS).unwrap_or(200));
    let mut sent: BTreeSet<(String, String)> = BTreeSet::new();

    for _ in 0..MAX_ROUNDS {
        let mine = memory.work();
        let theirs = durable.work().await;
        assert_eq!(mine.tasks, theirs.tasks, "open tasks differ at {}", memory.engine.now());
        assert_eq!(mine.waits, theirs.waits, "waiting subscriptions differ at {}", memory.engine.now());
        assert_eq!(mine.next_timer, theirs.next_timer, "next timers differ at {}", memory.engine.now());
        let mut acted = false;

        // Jobs: the durable side locks what is due; both complete them in place order.
        let now = memory.engine.now();
        let locked = durable.env.engine.fetch_and_lock("twin", &["*"], 1_000, TimeDelta::minutes(5)).await.unwrap();
        let places = durable.places();
        let mut locked: BTreeMap<String, (cloverleaf_engine::JobId, i64)> =
            locked.into_iter().map(|j| (places.text(j.id.as_str()), (j.id.clone(), j.epoch))).collect();
        let memory_jobs = mine.jobs;
        let locked_places: Vec<&String> = locked.keys().collect();
        let memory_places: Vec<&String> = memory_jobs.iter().map(|j| &j.0).collect();
        assert_eq!(memory_places, locked_places, "due jobs differ at {now}");
        let memory_places = memory.places();
        for (place, job_type, input) in &memory_jobs {
            let answer = job_answer(case, job_type, input, now);
            let memory_id = memory
                .engine
                .pending_jobs()
                .into_iter()
                .find(|j| memory_places.text(j.id.as_str()) == *place)
                .map(|j| j.id.clone())
                .expect("the job just listed");
            memory.engine.complete_job(&memory_id, answer.clone()).unwrap();
            let (job, epoch) = locked.remove(place).expect("locked on the durable side");
            durable.env.engine.complete_job(&job, epoch, answer).await.unwrap();
            acted = true;
        }

        // Tasks that have waited long enough: decided by someone holding one of their roles, in
        // place order.
        let memory_places = memory.places();
        let durable_places = durable.places();
        let ready: BTreeSet<String> = memory
            .engine
            .tasks()
            .into_iter()
            .filter(|t| t.created_at + case.patience <= now)
            .map(|t| memory_places.text(t.id.as_str()))
            .collect();
        let patient_until =
            memory.engine.tasks().into_iter().map(|t| t.created_at + case.patience).filter(|at| *at > now).min();
        for (place, node, roles) in mine.tasks.iter().filter(|t| ready.contains(&t.0)) {
            let user = format!("twin-{node}");
            let form = task_form(node);
            let memory_task = memory
                .engine
                .tasks()
                .into_iter()
                .find(|t| memory_places.text(t.id.as_str()) == *place)
                .map(|t| t.id.clone())
                .expect("the task just listed");
            memory.engine.complete_task(&memory_task, &user, None, form.clone()).unwrap();
            let durable_task = durable
                .env
                .engine
                .tasks(None)
                .await
                .unwrap()
                .into_iter()
                .find(|t| durable_places.text(t.id.as_str()) == *place)
                .map(|t| t.id)
                .expect("the same task on the durable side");
            let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
            durable.env.engine.complete_task(&durable_task, &user, &roles, form).await.unwrap();
            acted = true;
        }

        // Messages that someone waits for.
        for (name, key, place) in &mine.waits {
            if sent.contains(&(name.clone(), key.clone())) {
                continue;
            }
            let memory_id = memory
                .engine
                .instances()
                .iter()
                .find(|i| memory_places.text(i.as_str()) == *place)
                .cloned()
                .expect("the waiting instance");
            let instance = memory.engine.instance(&memory_id).expect("a listed instance").clone();
            let Some(payload) = message_payload(case, name, key, &instance) else { continue };
            let message_id = format!("{name}:{key}");
            memory.engine.correlate(name, key, payload.clone(), Some(&message_id)).unwrap();
            let message = Message {
                name: name.clone(),
                correlation_key: key.clone(),
                payload,
                message_id: Some(message_id),
                ttl: TimeDelta::days(30),
            };
            durable.env.engine.correlate(message).await.unwrap();
            sent.insert((name.clone(), key.clone()));
            acted = true;
        }

        if acted {
            continue;
        }
        // Nothing to do: the next timer, or the next task someone decides, on both clocks.
        let next = [mine.next_timer, patient_until].into_iter().flatten().min();
        match next {
            Some(at) if at <= horizon => {
                memory.engine.advance_to(at.max(memory.engine.now())).unwrap();
                durable.env.clock.advance_to(at.max(durable.env.engine.now()));
                while durable.env.engine.fire_due_timers().await.unwrap() > 0 {}
            }
            _ => {
                let mine = memory_trail(&memory);
                let theirs = durable_trail(&durable).await;
                return Some((mine, theirs));
            }
        }
    }
    panic!("{} {} did not settle in {MAX_ROUNDS} rounds", case.process, case.business_key);
}

#[tokio::test]
async fn every_reference_process_leaves_the_same_trail_in_memory_and_on_the_durable_runtime() {
    for case in cases() {
        let Some((memory, durable)) = run_twins(&case).await else { return };
        let label = format!("{} {}", case.process, case.business_key);
        assert_eq!(
            memory.keys().collect::<Vec<_>>(),
            durable.keys().collect::<Vec<_>>(),
            "{label}: the instances differ"
        );
        for (place, (history, events)) in &memory {
            let (their_history, their_events) = &durable[place];
            for (i, (a, b)) in history.iter().zip(their_history).enumerate() {
                assert_eq!(a, b, "{label}: audit trail of {place}, entry {i}");
            }
            assert_eq!(history.len(), their_history.len(), "{label}: audit trail length of {place}");
            for (i, (a, b)) in events.iter().zip(their_events).enumerate() {
                assert_eq!(a, b, "{label}: event log of {place}, event {i}");
            }
            assert_eq!(events.len(), their_events.len(), "{label}: event log length of {place}");
        }
    }
}
