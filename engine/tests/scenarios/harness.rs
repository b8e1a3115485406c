//! The reference processes on a [`Sim`] (the in-memory engine or the durable runtime, by the
//! scenario's driver), with handlers that compute realistic results.

use std::str::FromStr;

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use cloverleaf_dsl::expr::Value;
use cloverleaf_engine::memory::JobOutcome;
use cloverleaf_engine::{InstanceId, Status};
use rust_decimal::Decimal;
use serde_json::json;

pub use crate::sim::{Job, Sim, Task};

/// Monday 2026-01-05 09:00 UTC: where every scenario starts.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()
}

/// An engine of the scenario's driver at `t0()` with every reference process deployed.
pub fn engine() -> Sim {
    engine_at(t0())
}

/// An engine of the scenario's driver at `start` with every reference process deployed.
pub fn engine_at(start: DateTime<Utc>) -> Sim {
    Sim::new(start)
}

/// An exact decimal.
pub fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

/// A variable of an instance.
pub fn var(engine: &Sim, id: &InstanceId, name: &str) -> Value {
    engine.instance(id).unwrap().variable(name).cloned().unwrap_or_else(|| panic!("no variable {name}"))
}

/// A money variable, as its exact text (`"1190.50"`).
pub fn money(engine: &Sim, id: &InstanceId, name: &str) -> String {
    match var(engine, id, name) {
        Value::Number(n) => n.to_string(),
        other => panic!("{name} is {other:?}, not a number"),
    }
}

/// A date.
pub fn date(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

/// The status of an instance.
pub fn status(engine: &Sim, id: &InstanceId) -> Status {
    engine.instance(id).unwrap().status().clone()
}

/// Completed with this outcome.
pub fn completed(outcome: &str) -> Status {
    Status::Completed { outcome: Some(outcome.into()) }
}

/// The one open task of `instance` at `node`.
pub fn task_at(engine: &Sim, id: &InstanceId, node: &str) -> Task {
    let found: Vec<Task> = engine.tasks().into_iter().filter(|t| t.instance == *id && t.node == node).collect();
    assert_eq!(found.len(), 1, "open tasks of {id} at {node}: {:?}", engine.tasks());
    found[0].clone()
}

/// The nodes of the open tasks of `instance`, oldest first.
pub fn task_nodes(engine: &Sim, id: &InstanceId) -> Vec<String> {
    engine.tasks().into_iter().filter(|t| t.instance == *id).map(|t| t.node.clone()).collect()
}

/// The pending jobs of this type.
pub fn jobs_of(engine: &Sim, job_type: &str) -> Vec<Job> {
    engine.pending_jobs().into_iter().filter(|j| j.job_type == job_type).collect()
}

/// The one pending job of this type.
pub fn job_of(engine: &Sim, job_type: &str) -> Job {
    let found = jobs_of(engine, job_type);
    assert_eq!(found.len(), 1, "pending jobs of type {job_type}: {:?}", engine.pending_jobs());
    found[0].clone()
}

/// How many attempts of this job type completed.
pub fn completions(engine: &Sim, job_type: &str) -> usize {
    engine
        .job_attempts()
        .iter()
        .filter(|a| a.job_type == job_type && matches!(a.outcome, JobOutcome::Complete(_)) && a.rejection.is_none())
        .count()
}

/// The inputs of every accepted attempt of this job type, in order.
pub fn ran_with(engine: &Sim, job_type: &str) -> Vec<serde_json::Value> {
    engine
        .job_attempts()
        .iter()
        .filter(|a| a.job_type == job_type && a.rejection.is_none())
        .map(|a| a.input.clone())
        .collect()
}

/// The standard order (requested by rita).
pub fn order(order_id: &str, amount: &str) -> serde_json::Value {
    json!({"order_id": order_id, "customer_id": "C-7", "amount": amount, "requested_by": "rita"})
}

/// A credit check that answers with this limit, open receivables and rating.
pub fn register_credit(engine: &mut Sim, limit: &str, open_ar: &str, risk: &str) {
    let answer = json!({"credit_limit": limit, "open_ar": open_ar, "risk": risk});
    engine.register("credit.check", move |_| JobOutcome::complete(answer.clone()));
}

/// Issues an invoice: net is the order amount, tax 19% rounded to cents, due 30 days after the
/// issue date; the number comes from the order.
pub fn issue_invoice(job: &cloverleaf_engine::memory::JobInput) -> JobOutcome {
    let net = dec(job.input["amount"].as_str().unwrap());
    let tax = (net * dec("0.19")).round_dp(2);
    let order = job.input["order_id"].as_str().unwrap();
    let issued = job.now.date_naive();
    let due = issued.checked_add_days(Days::new(30)).unwrap();
    JobOutcome::complete(json!({
        "invoice_id": format!("INV-{order}"),
        "invoice_number": format!("2026-{order}"),
        "net": net.to_string(),
        "tax": tax.to_string(),
        "total": (net + tax).to_string(),
        "due_date": due.to_string(),
    }))
}

/// Posts the cost of goods of the test catalogue: 5,000.00 per order.
pub fn post_cost(_job: &cloverleaf_engine::memory::JobInput) -> JobOutcome {
    JobOutcome::complete(json!({"cost_of_goods": "5000.00"}))
}

/// Every automated step of ship-then-invoice.
pub fn register_shipping(engine: &mut Sim) {
    engine.register("invoice.issue", issue_invoice);
    engine.register("ledger.post_cost", post_cost);
    engine.register("outbox.notify", |_| JobOutcome::complete(json!({})));
}

/// Matches a payment: a reference that is not the invoice id is a mismatch.
pub fn match_payment(job: &cloverleaf_engine::memory::JobInput) -> JobOutcome {
    let matched = job.input["reference"] == job.input["invoice_id"];
    JobOutcome::complete(json!({"result": if matched { "matched" } else { "mismatch" }}))
}

/// Every automated step of collect-then-reconcile.
pub fn register_collection(engine: &mut Sim) {
    engine.register("payment.match", match_payment);
    for job_type in ["receipt.post", "payment.refund", "payment.return", "dunning.send", "ledger.write_off"] {
        engine.register(job_type, |_| JobOutcome::complete(json!({})));
    }
}

/// A payment of `amount` for `invoice`, with the invoice id as its reference.
pub fn pay(engine: &mut Sim, invoice: &str, payment: &str, amount: &str) {
    let payload = json!({"amount": amount, "reference": invoice, "payment_id": payment});
    engine.correlate("payment.received", invoice, payload, Some(payment)).unwrap();
}

/// The open tasks offered to any of these roles, oldest first, owned.
pub fn inbox(engine: &Sim, roles: &[&str]) -> Vec<Task> {
    engine.tasks_for(roles)
}
