//! The people of the story, the orders they enter, how each customer pays, and what each person
//! decides when a task reaches them.

use chrono::{DateTime, NaiveDate, Utc};
use cloverleaf_engine::store::TaskInfo;
use serde_json::{Value, json};

use crate::server::config::DEMO_ZONE;

/// The cast: user, roles.
pub(super) const PEOPLE: [(&str, &[&str]); 10] = [
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

/// The cost centre whose January budget the story's orders draw on, its customers and budget.
pub(super) const BUDGET_UNIT: &str = "SALES-NORTH";
pub(super) const BUDGETED: [&str; 3] = ["C-001", "C-004", "C-008"];
pub(super) const BUDGET_CENTS: i64 = 12_000_000;

/// Goods the warehouse receives from a supplier on a business day of the story.
pub(super) struct Receipt {
    pub(super) day: i64,
    pub(super) id: &'static str,
    pub(super) supplier: &'static str,
    /// (sku, units, unit cost).
    pub(super) lines: &'static [(&'static str, u32, &'static str)],
}

/// The controllers and pumps of SO-1003 outgrow the opening stock and come in before it ships.
pub(super) const RECEIPTS: [Receipt; 1] = [Receipt {
    day: 3,
    id: "GR-2001",
    supplier: "Hydro Components Ltd",
    lines: &[("CTRL-X", 30, "2285.00"), ("PUMP-250", 15, "1790.00")],
}];

/// An order of the story: who buys what, who enters it, and how the customer pays.
pub(super) struct Order {
    pub(super) id: &'static str,
    pub(super) customer: &'static str,
    pub(super) customer_name: &'static str,
    pub(super) lines: &'static [(&'static str, u32)],
    pub(super) requested_by: &'static str,
    /// Days after the shipment order is confirmed that logistics dispatches it.
    pub(super) ships_after: i64,
    pub(super) payment: Paying,
}

/// How a customer pays an invoice, relative to its due date.
pub(super) enum Paying {
    /// The whole amount, `days` after the due date (negative: early).
    Full { days: i64 },
    /// Part first, the rest later.
    InTwo { first: &'static str, first_days: i64, rest_days: i64 },
    /// More than the invoice.
    Over { extra: &'static str, days: i64 },
    /// Never.
    Never,
}

pub(super) const ORDERS: [Order; 5] = [
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

/// Whether `user` is away at `now` and leaves their inbox alone: fran is at a trade fair from
/// 31 January to 3 February (days on the company's clock, Shanghai's), so the January close's review waits past its due time
/// (the approvals-late alert opens) until it escalates to the CFO, who closes the month (and the
/// alert clears).
pub(super) fn away(user: &str, now: DateTime<Utc>) -> bool {
    let (from, to) = (NaiveDate::from_ymd_opt(2026, 1, 31), NaiveDate::from_ymd_opt(2026, 2, 3));
    user == "fran"
        && from.zip(to).is_some_and(|(from, to)| (from..=to).contains(&now.with_timezone(&DEMO_ZONE).date_naive()))
}

/// What each person decides when a task reaches them; `None`: not theirs to act on.
pub(super) fn decision(user: &str, task: &TaskInfo) -> Option<Value> {
    let form = match (task.node.as_str(), user) {
        ("manager_approval" | "director_approval", "mia" | "max") => json!({"approve": true}),
        ("credit_review", "cora") => json!({"approve": true, "comment": "secured by a payment plan"}),
        ("budget_review", "fran") => json!({"approve": true, "comment": "framework contract: approved over budget"}),
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    /// Fran's days away are Shanghai's: she is gone from 1 a.m. on 31 January there (still the 30th
    /// in UTC) and back at 1 a.m. on 4 February (still the 3rd in UTC).
    #[test]
    fn fran_is_away_by_the_companys_days() {
        let at = |d, h| {
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::days(d) + chrono::Duration::hours(h)
        };
        let jan_30_17z = at(29, 17);
        let feb_3_17z = at(33, 17);
        assert!(away("fran", jan_30_17z), "31 January 01:00 in Shanghai");
        assert!(!away("fran", jan_30_17z - chrono::Duration::hours(2)), "30 January 23:00 in Shanghai");
        assert!(!away("fran", feb_3_17z), "4 February 01:00 in Shanghai");
        assert!(away("fran", feb_3_17z - chrono::Duration::hours(2)), "3 February 23:00 in Shanghai");
        assert!(!away("carl", jan_30_17z), "only fran travels");
    }
}
