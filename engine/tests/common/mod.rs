//! Helpers shared by the engine's test targets.

/// Every `.flow` file of `processes/` as (file name, text), in name order.
pub fn reference_files() -> Vec<(String, String)> {
    let dir = format!("{}/../processes", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.expect("a readable entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".flow"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let text = std::fs::read_to_string(format!("{dir}/{n}")).unwrap_or_else(|e| panic!("{n}: {e}"));
            (n, text)
        })
        .collect()
}

/// A process that waits for one payment of an invoice and keeps its amount as `received`.
#[allow(dead_code)] // the core tests do not receive messages
pub const PAY: &str = r#"process pay "Pay" {
  input { invoice_id: text }
  var received: money = 0
  start -> wait_pay
  receive wait_pay "Wait for payment" { message "payment.received" key invoice_id  out { received: amount } } -> done
  end done "Done"
}"#;

/// A project holding every reference process (with the roles they use).
#[allow(dead_code)] // not every test target compiles a project itself
pub fn reference_project() -> cloverleaf_dsl::Project {
    let mut project = cloverleaf_dsl::Project::new();
    for (name, text) in reference_files() {
        project.add(name, text);
    }
    project
}

/// Replaces `from` by `to` in `text`, failing loudly when `from` is not there (a fixture that
/// silently stopped changing anything would test nothing).
#[allow(dead_code)] // not every test target builds versions of a process
pub fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the fixture no longer holds {from:?}");
    text.replace(from, to)
}

/// A second version of `order_approval` for migration tests: the manager's reminder comes after
/// 4 hours instead of 8, orders up to 20,000 (not 10,000) of good risk approve themselves, and
/// a `priority` variable is new.
#[allow(dead_code)]
pub fn order_approval_v2() -> String {
    let v1 = reference_files().into_iter().find(|(n, _)| n == "order_approval.flow").expect("order_approval.flow").1;
    let v2 = edit(
        &v1,
        "    remind after 8h\n    escalate after 24h -> director_approval",
        "    remind after 4h\n    escalate after 24h -> director_approval",
    );
    let v2 = edit(&v2, "when amount <= 10_000 and risk in", "when amount <= 20_000 and risk in");
    edit(&v2, "  var comment: text?\n", "  var comment: text?\n  var priority: text = \"normal\"\n")
}

/// The reference files with `order_approval.flow` replaced by `text`.
#[allow(dead_code)]
pub fn reference_files_with_order_approval(text: &str) -> Vec<(String, String)> {
    reference_files()
        .into_iter()
        .map(|(n, t)| if n == "order_approval.flow" { (n, text.to_string()) } else { (n, t) })
        .collect()
}
