//! The processes: the reference ones with the waits that take days turned into seconds, and the
//! orders and approval forms the driver sends.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::CUSTOMERS;

/// The reference processes this test runs (`month_end_close` would only add a cron start).
const REFERENCE: [&str; 5] = [
    "roles.flow",
    "order_approval.flow",
    "ship_then_invoice.flow",
    "collect_then_reconcile.flow",
    "order_to_cash.flow",
];

/// What changes in them: (file, reference text, replacement). The first dunning comes 5 s after
/// an invoice starts waiting for payment, the later steps of dunning never during the test; a
/// dispatch is chased after 30 s instead of 5 days; `order_to_cash` also starts on a message.
const CHANGES: [(&str, &str, &str); 5] = [
    ("collect_then_reconcile.flow", "also after due_date + 7d -> first_dunning", "also after 5s -> first_dunning"),
    ("collect_then_reconcile.flow", "also after due_date + 30d -> second_dunning", "also after 1h -> second_dunning"),
    ("collect_then_reconcile.flow", "after due_date + 60d -> finance_decision", "after 2h -> finance_decision"),
    ("ship_then_invoice.flow", "after 5d -> chase_shipment", "after 30s -> chase_shipment"),
    (
        "order_to_cash.flow",
        "  start -> approve\n",
        "  start -> approve\n  start signed on message \"order.signed\" -> approve\n",
    ),
];

/// Writes the reference processes with [`CHANGES`] into `dir`, and checks them with the binary.
pub(crate) fn fixture_processes(dir: &Path) {
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("../processes");
    std::fs::create_dir_all(dir).expect("the processes directory is created");
    for file in REFERENCE {
        let mut text = std::fs::read_to_string(reference.join(file)).expect("the reference process reads");
        for (_, from, to) in CHANGES.iter().filter(|(f, _, _)| *f == file) {
            assert!(text.contains(from), "processes/{file} no longer contains `{from}`: update this test's CHANGES");
            text = text.replacen(from, to, 1);
        }
        std::fs::write(dir.join(file), text).expect("the fixture process writes");
    }
    let files: Vec<PathBuf> = REFERENCE.iter().map(|f| dir.join(f)).collect();
    let output = Command::new(env!("CARGO_BIN_EXE_cloverleaf")).arg("check").args(&files).output().expect("check runs");
    assert!(
        output.status.success(),
        "the fixture processes do not check:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// One order: its id, customer and amount. One in ten is above 10,000 and needs a sales
/// manager's approval; the orders of the customer without credit a credit controller's review
/// first (see `REVIEWED_CUSTOMER`); the others are approved straight through.
pub(crate) fn order(n: usize) -> (String, &'static str, String) {
    let spread = (n * 7_919) % 145_000;
    let cents = if n % 10 == 9 { 1_050_000 + spread } else { 5_000 + spread };
    (format!("SO-{:05}", n + 1), CUSTOMERS[n % CUSTOMERS.len()], format!("{}.{:02}", cents / 100, cents % 100))
}

/// The form an approver sends for a task at `node`.
pub(crate) fn form(node: &str) -> Option<Value> {
    match node {
        "credit_review" | "manager_approval" | "director_approval" | "cfo_approval" => Some(json!({"approve": true})),
        "chase_shipment" => Some(json!({"chase_note": "dispatch confirmed by the warehouse"})),
        _ => None,
    }
}
