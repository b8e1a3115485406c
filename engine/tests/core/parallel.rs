//! Parallel split and join.

use cloverleaf_engine::{Event, Frame, Status, TokenState};
use serde_json::json;

use crate::harness::{Run, lines, text};

fn shipped() -> Run {
    let mut run = Run::reference("ship_then_invoice");
    run.start(json!({"order_id": "SO-1", "customer_id": "C-7", "amount": "1190.00"}));
    let subscription = run.subscription("await_shipment");
    run.ok(Event::MessageCorrelated { subscription, payload: json!({"shipment_id": "SH-9", "carrier": "DHL"}) });
    run
}

#[test]
fn split_starts_every_branch_and_join_waits_for_all() {
    let mut run = shipped();
    assert_eq!(run.token_nodes(), ["issue_invoice", "post_cost"]);
    let frames: Vec<Vec<Frame>> = run.instance.tokens().values().map(|t| t.frames.clone()).collect();
    assert!(frames.iter().all(|f| matches!(f.as_slice(), [Frame::Branch { split, .. }] if split == "bill")));
    // Cost posted first: the join holds that branch's token and waits.
    let effects = run.complete_job("ledger.post_cost", json!({"cost_of_goods": "700.00"}));
    assert_eq!(lines(&effects), Vec::<String>::new());
    assert_eq!(run.token_nodes(), ["billed", "issue_invoice"]);
    let at_join = run.instance.tokens().values().find(|t| t.node == "billed").unwrap();
    assert_eq!(at_join.state, TokenState::AtJoin);
    // The invoice completes the join: one token goes on, out of the branch.
    let effects = run.complete_job(
        "invoice.issue",
        json!({"invoice_id": "INV-1", "invoice_number": "2026-0001", "net": "1000.00", "tax": "190.00",
               "total": "1190.00", "due_date": "2026-02-04"}),
    );
    assert_eq!(lines(&effects).len(), 1);
    assert!(lines(&effects)[0].contains("outbox.notify"), "{effects:?}");
    assert_eq!(run.token_nodes(), ["notify"]);
    assert!(run.instance.tokens().values().all(|t| t.frames.is_empty()));
    assert_eq!(run.var("due_date").to_json(), json!("2026-02-04"));
    assert_eq!(run.var("invoice_total").to_json(), json!("1190.00"));
    run.complete_job("outbox.notify", json!({}));
    assert_eq!(run.status(), &Status::Completed { outcome: Some("invoiced".into()) });
}

#[test]
fn a_branch_may_hold_a_decide_whose_arms_both_reach_the_join() {
    let src = r#"process p "P" {
      input { express: bool }
      var route: text = ""
      start -> fork
      parallel fork { -> pack  -> choose }
      task pack { job "pack" } -> done
      decide choose { when express -> fast  otherwise -> slow }
      set fast { route = "air" } -> done
      set slow { route = "sea" } -> done
      join done -> finish
      end finish "Finished"
    }"#;
    for (express, route) in [(true, "air"), (false, "sea")] {
        let mut run = Run::snippet(src);
        run.start(json!({ "express": express }));
        // The decide branch is already at the join; the task branch is not.
        assert_eq!(run.token_nodes(), ["done", "pack"]);
        run.complete_job("pack", json!({}));
        assert_eq!(run.var("route"), text(route));
        assert_eq!(run.status(), &Status::Completed { outcome: Some("finish".into()) });
    }
}

#[test]
fn nested_splits_join_inner_then_outer() {
    let mut run = Run::snippet(
        r#"process p "P" {
          start -> outer
          parallel outer { -> inner  -> c }
          parallel inner { -> a  -> b }
          task a { job "a" } -> inner_done
          task b { job "b" } -> inner_done
          join inner_done -> outer_done
          task c { job "c" } -> outer_done
          join outer_done -> finish
          end finish "Finished"
        }"#,
    );
    run.start(json!({}));
    assert_eq!(run.token_nodes(), ["a", "b", "c"]);
    run.complete_job("c", json!({}));
    run.complete_job("a", json!({}));
    assert_eq!(run.token_nodes(), ["b", "inner_done", "outer_done"]);
    run.complete_job("b", json!({}));
    assert_eq!(run.status(), &Status::Completed { outcome: Some("finish".into()) });
}

#[test]
fn a_join_that_can_never_complete_raises_an_incident_naming_it() {
    // Sound as written; then one branch is rewired past the join, as a definition the checker
    // never saw (or a checker bug) could be: the engine must not wait in silence.
    let source = "process p \"P\" {\n  start -> split\n  parallel split { -> a  -> b }\n  \
                  task a { job \"x\" } -> together\n  task b { job \"y\" } -> together\n  \
                  join together -> done\n  end done \"Done\"\n}\n";
    let mut def = crate::harness::compile_snippet(source).remove(0);
    for node in &mut def.nodes {
        if let cloverleaf_dsl::model::NodeKind::Task { job, next, .. } = &mut node.kind
            && job == "y"
        {
            *next = "done".to_string();
        }
    }
    let mut run = Run::of_definition(def);
    run.start(json!({}));
    run.complete_job("y", json!({}));
    assert!(run.instance.incidents().is_empty(), "one branch still runs: nothing is stuck yet");
    run.complete_job("x", json!({}));
    let incidents: Vec<_> = run.instance.incidents().values().collect();
    assert_eq!(incidents.len(), 1, "{:?}", run.instance);
    assert_eq!(incidents[0].node, "together");
    assert!(incidents[0].message.contains("stuck at `together`"), "{}", incidents[0].message);
    assert_eq!(run.instance.status(), &Status::Running);
}
