//! The built-in handlers of the reference finance processes, on the [`Ledger`].
//!
//! Inputs and outputs follow the `in { }` and `out { }` mappings of `processes/*.flow`: money
//! travels as decimal strings, dates as `"YYYY-MM-DD"`. "Today" is the job source's clock.
//!
//! | job type | in | out |
//! |---|---|---|
//! | `credit.check` | customer_id, amount, order_id (optional) | credit_limit, open_ar, risk, cost_centre, budget, budget_left, budget_ok, budget_reserved (error `customer_blocked`) |
//! | `budget.reserve` | order_id, cost_centre, amount | reserved, over_budget, budget_left |
//! | `budget.release` | order_id | released |
//! | `invoice.issue` | order_id, customer_id, amount | invoice_id, invoice_number, net, tax, total, due_date (error `invoice_data`) |
//! | `ledger.post_cost` | order_id, customer_id, shipment_id, amount (optional) | cost_of_goods |
//! | `outbox.notify` | customer_id, invoice_id, template | outbox_id |
//! | `dunning.send` | invoice_id, customer_id, level | letter_id, sent, amount_open, days_overdue |
//! | `payment.match` | invoice_id, payment_id, received, reference, amount_due, tolerance | result |
//! | `payment.return` | payment_id, customer_id | returned |
//! | `payment.refund` | payment_id, customer_id, amount | refunded |
//! | `receipt.post` | invoice_id, payment_id, received, amount_due | applied, difference, amount_open, status |
//! | `ledger.write_off` | invoice_id, customer_id, amount | written_off, amount_open |
//! | `report.ar_aging` | as_of | report_id, total |
//! | `report.gross_profit` | as_of | report_id, revenue, cost_of_goods, gross_profit |
//! | `ledger.close_period` | as_of | period, closed_at |
//!
//! Errors: a blocked customer and bad invoice data are the business errors the processes catch.
//! Other refusals that a retry cannot cure (an unknown invoice, a bad input) are business errors
//! with their own code, which the engine turns into an incident at once; database failures and
//! an order not recorded yet are failures the engine retries.

use std::future::Future;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::ledger::{self, Ledger, PaymentMatch};
use cloverleaf_worker::{HandlerError, HandlerResult, Handlers, JobContext};

/// Every job type the reference processes use.
pub const JOB_TYPES: [&str; 15] = [
    "credit.check",
    "budget.reserve",
    "budget.release",
    "invoice.issue",
    "ledger.post_cost",
    "outbox.notify",
    "dunning.send",
    "payment.match",
    "payment.return",
    "payment.refund",
    "receipt.post",
    "ledger.write_off",
    "report.ar_aging",
    "report.gross_profit",
    "ledger.close_period",
];

/// The job's input variables, read by name.
struct Input<'a>(&'a Map<String, Value>);

fn input_error(field: &str, problem: impl Into<String>) -> HandlerError {
    HandlerError::business("invalid_input", format!("input `{field}`: {}", problem.into()))
}

impl<'a> Input<'a> {
    fn of(context: &'a JobContext) -> Result<Input<'a>, HandlerError> {
        match &context.job.input {
            Value::Object(map) => Ok(Input(map)),
            other => Err(input_error("*", format!("expected an object, found {other}"))),
        }
    }

    fn text(&self, field: &str) -> Result<String, HandlerError> {
        match self.0.get(field) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Null) | None => Err(input_error(field, "missing")),
            Some(other) => Err(input_error(field, format!("expected text, found {other}"))),
        }
    }

    fn text_or_empty(&self, field: &str) -> Result<String, HandlerError> {
        match self.0.get(field) {
            Some(Value::Null) | None => Ok(String::new()),
            _ => self.text(field),
        }
    }

    fn money(&self, field: &str) -> Result<Decimal, HandlerError> {
        let text = match self.0.get(field) {
            Some(Value::String(s)) => s.trim().to_string(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Null) | None => return Err(input_error(field, "missing")),
            Some(other) => return Err(input_error(field, format!("expected a decimal, found {other}"))),
        };
        Decimal::from_str_exact(&text)
            .or_else(|_| Decimal::from_scientific(&text))
            .map_err(|_| input_error(field, format!("{text:?} is not a decimal")))
    }

    /// A money field that may be absent (or null).
    fn optional_money(&self, field: &str) -> Result<Option<Decimal>, HandlerError> {
        match self.0.get(field) {
            Some(Value::Null) | None => Ok(None),
            _ => self.money(field).map(Some),
        }
    }

    fn int(&self, field: &str) -> Result<i64, HandlerError> {
        let n = self.money(field)?;
        if !n.fract().is_zero() {
            return Err(input_error(field, format!("{n} is not a whole number")));
        }
        i64::try_from(n).map_err(|_| input_error(field, format!("{n} is out of range")))
    }

    fn date(&self, field: &str) -> Result<NaiveDate, HandlerError> {
        let text = self.text(field)?;
        NaiveDate::parse_from_str(&text, "%Y-%m-%d").map_err(|_| input_error(field, format!("{text:?} is not a date")))
    }
}

/// A ledger error as the process sees it.
fn handler_error(job_type: &str, error: ledger::Error) -> HandlerError {
    use ledger::Error as E;
    let message = error.to_string();
    match error {
        E::CustomerBlocked(_) => HandlerError::business("customer_blocked", message),
        E::InvoiceData(_) => HandlerError::business("invoice_data", message),
        E::UnknownCustomer(_) if job_type == "invoice.issue" => HandlerError::business("invoice_data", message),
        E::UnknownCustomer(_) => HandlerError::business("customer_unknown", message),
        E::UnknownInvoice(_) => HandlerError::business("invoice_unknown", message),
        E::UnknownPayment(_) => HandlerError::business("payment_unknown", message),
        E::UnknownProduct(_) => HandlerError::business("product_unknown", message),
        E::PeriodClosed { .. } => HandlerError::business("period_closed", message),
        E::InvalidAmount(_) => HandlerError::business("invalid_amount", message),
        E::Input { .. } => HandlerError::business("invalid_input", message),
        // Not recorded yet: invoicing records it, so a retry may succeed.
        E::UnknownOrder(_) | E::Retry(_) => HandlerError::Failure(message),
        E::Database(_) | E::Migrate(_) | E::Url(_) | E::Unbalanced { .. } | E::Corrupt(_) => {
            HandlerError::Failure(message)
        }
    }
}

fn output<T: Serialize>(value: &T) -> HandlerResult {
    serde_json::to_value(value).map_err(HandlerError::failure)
}

/// Registers one ledger operation under `job_type`.
fn add<F, Fut>(handlers: &mut Handlers, ledger: &Ledger, job_type: &'static str, op: F)
where
    F: Fn(Ledger, JobContext) -> Fut + Send + Sync + Copy + 'static,
    Fut: Future<Output = Result<Value, Result<HandlerError, ledger::Error>>> + Send + 'static,
{
    let ledger = ledger.clone();
    handlers.register(job_type, move |context: JobContext| {
        let ledger = ledger.clone();
        async move {
            op(ledger, context).await.map_err(|e| match e {
                Ok(handler_error) => handler_error,
                Err(ledger_error) => handler_error(job_type, ledger_error),
            })
        }
    });
}

type OpResult = Result<Value, Result<HandlerError, ledger::Error>>;

fn out<T: Serialize>(value: Result<T, ledger::Error>) -> OpResult {
    output(&value.map_err(Err)?).map_err(Ok)
}

/// The built-in handlers for every job type of the reference processes.
pub fn handlers(ledger: &Ledger) -> Handlers {
    let mut h = Handlers::new();
    add(&mut h, ledger, "credit.check", |ledger, cx| async move {
        let input = Input::of(&cx).map_err(Ok)?;
        let customer = input.text("customer_id").map_err(Ok)?;
        let amount = input.money("amount").map_err(Ok)?;
        let order = input.text_or_empty("order_id").map_err(Ok)?;
        let order = (!order.is_empty()).then_some((order.as_str(), amount));
        out(ledger.credit_check(&cx.job.idempotency_key, cx.now, &customer, order).await)
    });
    add(&mut h, ledger, "budget.reserve", |ledger, cx| async move {
        let input = Input::of(&cx).map_err(Ok)?;
        let (order, cost_centre) = (input.text("order_id").map_err(Ok)?, input.text("cost_centre").map_err(Ok)?);
        let amount = input.money("amount").map_err(Ok)?;
        out(ledger.reserve_budget(&cx.job.idempotency_key, cx.now, &order, &cost_centre, amount).await)
    });
    add(&mut h, ledger, "budget.release", |ledger, cx| async move {
        let input = Input::of(&cx).map_err(Ok)?;
        let order = input.text("order_id").map_err(Ok)?;
        out(ledger.release_budget(&cx.job.idempotency_key, cx.now, &order).await)
    });
    add(&mut h, ledger, "invoice.issue", |ledger, cx| async move {
        let input = Input::of(&cx).map_err(Ok)?;
        let order = input.text("order_id").map_err(Ok)?;
        let customer = input.text("customer_id").map_err(Ok)?;
        let amount =
            input.money("amount").map_err(|_| Ok(HandlerError::business("invoice_data", "no valid amount")))?;
        out(ledger.issue_invoice(&cx.job.idempotency_key, cx.now, &order, &customer, amount).await)
    });
    add(&mut h, ledger, "ledger.post_cost", |ledger, cx| async move {
        let input = Input::of(&cx).map_err(Ok)?;
        let (order, customer) = (input.text("order_id").map_err(Ok)?, input.text("customer_id").map_err(Ok)?);
        let shipment = input.text_or_empty("shipment_id").map_err(Ok)?;
        let amount = input.optional_money("amount").map_err(Ok)?;
        out(ledger.post_cost(&cx.job.idempotency_key, cx.now, &order, &customer, &shipment, amount).await)
    });
    add(&mut h, ledger, "outbox.notify", |ledger, cx| async move {
        let input = Input::of(&cx).map_err(Ok)?;
        let (customer, invoice) = (input.text("customer_id").map_err(Ok)?, input.text("invoice_id").map_err(Ok)?);
        let template = input.text("template").map_err(Ok)?;
        out(ledger.notify(&cx.job.idempotency_key, cx.now, &customer, &invoice, &template).await)
    });
    add(&mut h, ledger, "dunning.send", |ledger, cx| async move {
        let input = Input::of(&cx).map_err(Ok)?;
        let (invoice, customer) = (input.text("invoice_id").map_err(Ok)?, input.text("customer_id").map_err(Ok)?);
        let level = input.int("level").map_err(Ok)?;
        out(ledger.send_dunning(&cx.job.idempotency_key, cx.now, &invoice, &customer, level).await)
    });
    add(&mut h, ledger, "payment.match", |ledger, cx| async move {
        let input = Input::of(&cx).map_err(Ok)?;
        let m = PaymentMatch {
            invoice_id: input.text("invoice_id").map_err(Ok)?,
            payment_id: input.text("payment_id").map_err(Ok)?,
            received: input.money("received").map_err(Ok)?,
            reference: input.text_or_empty("reference").map_err(Ok)?,
            amount_due: input.money("amount_due").map_err(Ok)?,
            tolerance: input.money("tolerance").map_err(Ok)?,
        };
        out(ledger.match_payment(&cx.job.idempotency_key, cx.now, &m).await)
    });
    add(&mut h, ledger, "payment.return", |ledger, cx| async move {
        let input = Input::of(&cx).map_err(Ok)?;
        let (payment, customer) = (input.text("payment_id").map_err(Ok)?, input.text("customer_id").map_err(Ok)?);
        out(ledger.return_payment(&cx.job.idempotency_key, cx.now, &payment, &customer).await)
    });
    add(&mut h, ledger, "payment.refund", |ledger, cx| async move {
        let input = Input::of(&cx).map_err(Ok)?;
        let (payment, customer) = (input.text("payment_id").map_err(Ok)?, input.text("customer_id").map_err(Ok)?);
        let amount = input.money("amount").map_err(Ok)?;
        out(ledger.refund(&cx.job.idempotency_key, cx.now, &payment, &customer, amount).await)
    });
    add(&mut h, ledger, "receipt.post", |ledger, cx| async move {
        let input = Input::of(&cx).map_err(Ok)?;
        let (invoice, payment) = (input.text("invoice_id").map_err(Ok)?, input.text("payment_id").map_err(Ok)?);
        let received = input.money("received").map_err(Ok)?;
        out(ledger.post_receipt(&cx.job.idempotency_key, cx.now, &invoice, &payment, received).await)
    });
    add(&mut h, ledger, "ledger.write_off", |ledger, cx| async move {
        let input = Input::of(&cx).map_err(Ok)?;
        let (invoice, customer) = (input.text("invoice_id").map_err(Ok)?, input.text("customer_id").map_err(Ok)?);
        let amount = input.money("amount").map_err(Ok)?;
        out(ledger.write_off(&cx.job.idempotency_key, cx.now, &invoice, &customer, amount).await)
    });
    add(&mut h, ledger, "report.ar_aging", |ledger, cx| async move {
        let as_of = Input::of(&cx).and_then(|i| i.date("as_of")).map_err(Ok)?;
        out(ledger.aging_report(&cx.job.idempotency_key, cx.now, as_of).await)
    });
    add(&mut h, ledger, "report.gross_profit", |ledger, cx| async move {
        let as_of = Input::of(&cx).and_then(|i| i.date("as_of")).map_err(Ok)?;
        out(ledger.gross_profit_report(&cx.job.idempotency_key, cx.now, as_of).await)
    });
    add(&mut h, ledger, "ledger.close_period", |ledger, cx| async move {
        let as_of = Input::of(&cx).and_then(|i| i.date("as_of")).map_err(Ok)?;
        out(ledger.close_period(&cx.job.idempotency_key, cx.now, as_of).await)
    });
    h
}
