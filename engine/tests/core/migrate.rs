//! Instance migration in the core: a running order moved from version 1 to version 2 of
//! `order_approval`, renamed nodes, and every kind of unsafe move refused with its reason.

use std::collections::BTreeMap;

use cloverleaf_dsl::CompiledProcess;
use cloverleaf_engine::{
    Effect, HistoryKind, Instance, Migration, MigrationPlan, Rejection, Status, TimerPurpose, WaitAction, WaitKind,
    check_mapping, migrate, replay_versions,
};
use serde_json::json;

use crate::common::{edit, order_approval_v2, reference_files_with_order_approval};
use crate::harness::{Run, compile_snippet, order, text};

/// `order_approval` compiled from this text, with the roles and calendars beside it (not the
/// processes calling it, which a new input would break).
fn order_approval(text: &str) -> CompiledProcess {
    let mut project = cloverleaf_dsl::Project::new();
    for (name, t) in reference_files_with_order_approval(text) {
        if ["order_approval.flow", "roles.flow", "calendars.flow"].contains(&name.as_str()) {
            project.add(name, t);
        }
    }
    let compilation = project.compile();
    assert!(!compilation.has_errors(), "{}", compilation.render());
    compilation.processes.into_iter().find(|p| p.key == "order_approval").expect("order_approval")
}

fn v1_text() -> String {
    crate::common::reference_files().into_iter().find(|(n, _)| n == "order_approval.flow").unwrap().1
}

/// An order of 50,000 waiting for the sales manager, one hour after its task opened.
fn at_manager() -> Run {
    let mut run = Run::reference("order_approval");
    run.start(order("50000.00"));
    run.complete_job("credit.check", json!({"credit_limit": "100000.00", "open_ar": "0.00", "risk": "B"}));
    assert_eq!(run.token_nodes(), ["manager_approval"]);
    run.advance(3600);
    run
}

fn apply(
    run: &mut Run,
    to: &CompiledProcess,
    mapping: &BTreeMap<String, String>,
) -> Result<(MigrationPlan, Vec<Effect>), Rejection> {
    let migration = Migration { from: &run.def, to, to_version: 2, mapping, by: "ada", reason: "shorter reminders" };
    let event = migration.event(&run.instance);
    let (t, plan) = migrate(&migration, &run.instance, run.now)?;
    run.instance = t.instance;
    run.def = to.clone();
    run.log.push((event, run.now));
    Ok((plan, t.effects))
}

fn problems(r: Rejection) -> Vec<(String, String)> {
    match r {
        Rejection::CannotMigrate { problems } => problems,
        other => panic!("expected a refused migration, got {other}"),
    }
}

#[test]
fn a_running_order_migrates_from_version_1_to_2_of_order_approval() {
    let mut run = at_manager();
    let v1 = run.def.clone();
    let v2 = order_approval(&order_approval_v2());
    let task = run.task("manager_approval");
    let reminder = run.timer("manager_approval", &TimerPurpose::Reminder { index: 0 });
    let due = run.timer("manager_approval", &TimerPurpose::Due);

    let (plan, effects) = apply(&mut run, &v2, &BTreeMap::new()).unwrap();

    assert_eq!(run.instance.process_version(), 2);
    assert_eq!(plan.tokens.len(), 1);
    assert_eq!((plan.tokens[0].from.as_str(), plan.tokens[0].to.as_str()), ("manager_approval", "manager_approval"));
    assert_eq!(plan.added, ["priority"]);
    assert!(plan.removed.is_empty() && plan.converted.is_empty());
    // The task and its due date stay (claims and inbox untouched); only the reminder changed.
    let action = |id: &str| plan.waits.iter().find(|w| w.id == id).map(|w| w.action);
    assert_eq!(action(&task.0), Some(WaitAction::Kept));
    assert_eq!(action(&due.0), Some(WaitAction::Kept));
    assert_eq!(action(&reminder.0), Some(WaitAction::Closed));
    let opened: Vec<_> = plan.waits.iter().filter(|w| w.action == WaitAction::Opened).collect();
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].kind, WaitKind::Timer);
    let new_reminder = run.timer("manager_approval", &TimerPurpose::Reminder { index: 0 });
    assert_eq!(run.instance.timers()[&new_reminder].at, run.now + chrono::TimeDelta::hours(4));
    assert_eq!(run.var("priority"), text("normal"));
    // One history entry says who moved it, from where to where, and why.
    let history: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::History(h) => Some(h),
            _ => None,
        })
        .collect();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].kind, HistoryKind::Migrated);
    assert_eq!(history[0].who.as_deref(), Some("ada"));
    assert_eq!(history[0].detail.as_deref(), Some("migrated from v1 to v2: shorter reminders"));
    assert!(effects.contains(&Effect::CancelTimer { timer: reminder }));

    // The order goes on on version 2 and ends as version 2 says.
    run.complete_task("manager_approval", "maria", json!({"approve": true})).unwrap();
    assert_eq!(run.status(), &Status::Completed { outcome: Some("approved".into()) });

    // The event log, migration included, replays to the same state.
    let versions = |v: u32| match v {
        1 => Some(&v1),
        2 => Some(&v2),
        _ => None,
    };
    let fresh = Instance::new("i1", "order_approval", 1);
    let replayed = replay_versions(versions, fresh, run.log.iter().map(|(e, t)| (e, *t))).unwrap();
    assert_eq!(replayed, run.instance);
}

#[test]
fn a_renamed_node_needs_a_mapping_and_its_task_is_created_again() {
    let renamed = order_approval(&v1_text().replace("manager_approval", "sales_approval"));
    let mut run = at_manager();
    let before = run.instance.clone();
    let refused = problems(apply(&mut run, &renamed, &BTreeMap::new()).unwrap_err());
    assert_eq!(run.instance, before);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].1.contains("`manager_approval`, which the new version does not have"), "{refused:?}");
    assert!(refused[0].1.contains("\"mapping\""), "{refused:?}");

    let old_task = run.task("manager_approval");
    let mapping = BTreeMap::from([("manager_approval".to_string(), "sales_approval".to_string())]);
    let (plan, _) = apply(&mut run, &renamed, &mapping).unwrap();
    assert_eq!(run.token_nodes(), ["sales_approval"]);
    assert!(plan.waits.iter().any(|w| w.id == old_task.0 && w.action == WaitAction::Closed));
    let new_task = run.task("sales_approval");
    assert_ne!(new_task, old_task);
    run.complete_task("sales_approval", "maria", json!({"approve": true})).unwrap();
    assert_eq!(run.status(), &Status::Completed { outcome: Some("approved".into()) });
}

#[test]
fn a_mapping_must_name_nodes_of_both_versions() {
    let run = at_manager();
    let v2 = order_approval(&order_approval_v2());
    let mapping = BTreeMap::from([("nowhere".to_string(), "manager_approval".to_string())]);
    let found = check_mapping(&run.def, &v2, &mapping);
    assert_eq!(found.len(), 1);
    assert!(found[0].1.contains("`nowhere` is not a node of the version migrated from"), "{found:?}");
    let mapping = BTreeMap::from([("manager_approval".to_string(), "nowhere".to_string())]);
    assert!(check_mapping(&run.def, &v2, &mapping)[0].1.contains("not a node of the version migrated to"));
}

#[test]
fn a_token_keeps_the_kind_of_node_it_waits_at() {
    let mut run = at_manager();
    let v2 = order_approval(&order_approval_v2());
    let mapping = BTreeMap::from([("manager_approval".to_string(), "route".to_string())]);
    let refused = problems(apply(&mut run, &v2, &mapping).unwrap_err());
    assert!(refused[0].1.contains("an approval `manager_approval`, and `route` is a decide"), "{refused:?}");
}

#[test]
fn a_value_that_does_not_convert_to_its_new_type_is_refused() {
    let mut run = at_manager();
    let v2 = order_approval(&edit(
        &edit(&v1_text(), "var risk: text = \"unknown\"", "var risk: int = 0"),
        "risk in [\"A\", \"B\"]",
        "risk < 3",
    ));
    let refused = problems(apply(&mut run, &v2, &BTreeMap::new()).unwrap_err());
    assert_eq!(refused[0].0, "variable risk");
    assert!(refused[0].1.contains("does not convert to `int`"), "{refused:?}");
}

#[test]
fn a_new_required_input_without_a_default_is_refused() {
    let mut run = at_manager();
    let v2 =
        order_approval(&edit(&v1_text(), "    requested_by: user\n", "    requested_by: user\n    region: text\n"));
    let refused = problems(apply(&mut run, &v2, &BTreeMap::new()).unwrap_err());
    assert_eq!(refused[0].0, "variable region");
    assert!(refused[0].1.contains("required input without a default"), "{refused:?}");
}

#[test]
fn only_a_running_instance_migrates() {
    let mut run = at_manager();
    run.complete_task("manager_approval", "maria", json!({"approve": false})).unwrap();
    let v2 = order_approval(&order_approval_v2());
    let refused = problems(apply(&mut run, &v2, &BTreeMap::new()).unwrap_err());
    assert_eq!(refused, [("instance".to_string(), "it is completed: only a running instance migrates".to_string())]);
}

const PARALLEL: &str = r#"process p "P" {
  start -> fork
  parallel fork { -> pack  -> bill }
  task pack { job "pack" } -> done
  task bill { job "bill" } -> done
  join done -> finish
  end finish "Finished"
}"#;

#[test]
fn a_token_inside_a_branch_whose_split_changed_is_refused() {
    let v1 = compile_snippet(PARALLEL).remove(0);
    let v2 = compile_snippet(&edit(
        &edit(PARALLEL, "-> pack  -> bill }", "-> pack  -> bill  -> ship }"),
        "  join done",
        "  task ship { job \"ship\" } -> done\n  join done",
    ))
    .remove(0);
    let mut run = Run::of_definition(v1);
    run.start(json!({}));
    assert_eq!(run.token_nodes(), ["bill", "pack"]);
    let refused = problems(apply(&mut run, &v2, &BTreeMap::new()).unwrap_err());
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused.iter().all(|(_, why)| why.contains("has 3 branches in the new version instead of 2")),
        "{refused:?}"
    );

    // The same split with a changed job in one branch migrates: that job is created again.
    let v3 = compile_snippet(&edit(PARALLEL, "job \"bill\"", "job \"invoice\"")).remove(0);
    let (plan, _) = apply(&mut run, &v3, &BTreeMap::new()).unwrap();
    assert_eq!(plan.waits.iter().filter(|w| w.action == WaitAction::Kept).count(), 1);
    run.complete_job("pack", json!({}));
    run.complete_job("invoice", json!({}));
    assert_eq!(run.status(), &Status::Completed { outcome: Some("finish".into()) });
}

#[test]
fn a_token_moved_into_a_branch_is_refused() {
    let v1 = compile_snippet(
        r#"process p "P" {
      start -> prepare
      task prepare { job "prepare" } -> fork
      parallel fork { -> pack  -> bill }
      task pack { job "pack" } -> done
      task bill { job "bill" } -> done
      join done -> finish
      end finish "Finished"
    }"#,
    )
    .remove(0);
    let mut run = Run::of_definition(v1);
    run.start(json!({}));
    let v2 = compile_snippet(PARALLEL).remove(0);
    let mapping = BTreeMap::from([("prepare".to_string(), "pack".to_string())]);
    let refused = problems(apply(&mut run, &v2, &mapping).unwrap_err());
    assert!(
        refused[0].1.contains("it is in the main flow at `prepare`, but `pack` is in branch 1 of `fork`"),
        "{refused:?}"
    );
}
