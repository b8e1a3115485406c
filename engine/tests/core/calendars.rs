//! Business calendars in the core: due times, reminders, escalations, waits and dates counted in
//! business days and hours on the calendar the definition carries, across holidays, make-up
//! working days and a daylight-saving change; the same again on replay.

use chrono::{DateTime, NaiveDate, Utc};
use cloverleaf_dsl::expr::Value;
use cloverleaf_dsl::{CompiledProcess, Project};
use cloverleaf_engine::memory::MemoryEngine;
use cloverleaf_engine::{Instance, TimerPurpose, replay};
use serde_json::json;

use crate::common::reference_files;
use crate::harness::{Run, lines};

/// A supplier payment approved on China's calendar (`processes/calendars.flow`).
const PAYMENT: &str = r#"
process supplier_payment "Supplier payment" {
  calendar cn
  input { invoice_id: text, due_date: date }
  var pay_on: date?
  start -> review
  approval review "Approve invoice {invoice_id}" {
    role finance.controller
    form { approve: bool }
    due 3 business days
    remind after 4 business hours
    escalate after 5 business days -> cfo_review
  } -> plan
  approval cfo_review "Approve invoice {invoice_id} (escalated)" {
    role finance.cfo
    form { approve: bool }
    due 1 business day
  } -> plan
  set plan { pay_on = due_date + 30 business days } -> pay_run
  wait pay_run "Wait for the payment run" { for 2 business days } -> paid
  end paid "Paid"
}
"#;

/// The same approval in a Berlin office, across the change to summer time on 29 March 2026.
const BERLIN: &str = r#"
calendar berlin "Berlin office" {
  zone "Europe/Berlin"
  week mon-fri
  hours 08:00-16:30
}

process berlin_payment "Supplier payment (Berlin)" {
  calendar berlin
  start -> review
  approval review "Approve" {
    role finance.controller
    form { approve: bool }
    due 2 business days
    remind after 6 business hours
  } -> paid
  end paid "Paid"
}
"#;

/// `src` with the reference roles and calendars.
fn project(src: &str) -> Project {
    let mut project = Project::new();
    for (name, text) in reference_files().into_iter().filter(|(n, _)| n == "roles.flow" || n == "calendars.flow") {
        project.add(name, text);
    }
    project.add("snippet.flow", src);
    project
}

fn compile(src: &str) -> CompiledProcess {
    let compilation = project(src).compile();
    assert!(!compilation.has_errors(), "{}", compilation.render());
    compilation.processes.into_iter().next().expect("a process")
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn timer_at(run: &Run, node: &str, purpose: &TimerPurpose) -> String {
    run.instance.timers()[&run.timer(node, purpose)].at.to_rfc3339()
}

/// Started on Friday 13 February 2026 at 16:00 in Shanghai (08:00 UTC): the working day before
/// the Spring Festival week. Saturday the 14th is a make-up working day; the 15th to the 23rd
/// are off.
fn before_spring_festival() -> (Run, Vec<String>) {
    let mut run = Run::of_definition(compile(PAYMENT));
    run.now = utc("2026-02-13T08:00:00Z");
    let effects = run.start(json!({"invoice_id": "INV-7", "due_date": "2026-02-13"}));
    (run, lines(&effects))
}

#[test]
fn an_approval_due_3_business_days_after_the_friday_before_spring_festival_is_due_on_the_wednesday_after() {
    let (run, lines) = before_spring_festival();
    // Saturday the 14th (make-up), Tuesday the 24th, Wednesday the 25th: at 16:00 in Shanghai.
    assert_eq!(
        lines[0],
        "create task i1.task.2 \"Approve invoice INV-7\" roles=finance.controller assignee=- \
         due=2026-02-25T08:00:00+00:00"
    );
    assert_eq!(timer_at(&run, "review", &TimerPurpose::Due), "2026-02-25T08:00:00+00:00");
    // Four working hours: 16:00-18:00 on Friday, 09:00-11:00 on the make-up Saturday.
    assert_eq!(timer_at(&run, "review", &TimerPurpose::Reminder { index: 0 }), "2026-02-14T03:00:00+00:00");
    // Five business days: the 14th, 24th, 25th, 26th and 27th.
    assert_eq!(timer_at(&run, "review", &TimerPurpose::Boundary { index: 0 }), "2026-02-27T08:00:00+00:00");
}

#[test]
fn an_escalation_after_business_days_opens_a_task_due_on_a_make_up_saturday() {
    let (mut run, _) = before_spring_festival();
    let escalate = run.timer("review", &TimerPurpose::Boundary { index: 0 });
    let effects = run.fire(escalate);
    assert_eq!(run.now, utc("2026-02-27T08:00:00Z"));
    // One business day after Friday the 27th at 16:00 is Saturday the 28th, a make-up day.
    assert!(
        lines(&effects).contains(
            &"create task i1.task.6 \"Approve invoice INV-7 (escalated)\" roles=finance.cfo assignee=- \
              due=2026-02-28T08:00:00+00:00"
                .to_string()
        ),
        "{:#?}",
        lines(&effects)
    );
}

#[test]
fn dates_and_waits_count_business_days_and_replay_gives_the_same_state() {
    let (mut run, _) = before_spring_festival();
    // Completed on Tuesday the 24th at 17:30 in Shanghai.
    run.now = utc("2026-02-24T09:30:00Z");
    run.complete_task("review", "fay", json!({"approve": true})).unwrap();
    // Thirty business days after the 13th, over the holiday, two make-up Saturdays and Qingming.
    assert_eq!(run.var("pay_on"), Value::Date(NaiveDate::from_ymd_opt(2026, 4, 2).unwrap()));
    assert_eq!(run.token_nodes(), ["pay_run"]);
    let wait = run.timer("pay_run", &TimerPurpose::Wait);
    assert_eq!(run.instance.timers()[&wait].at.to_rfc3339(), "2026-02-26T09:30:00+00:00");
    run.fire(wait);
    assert_eq!(run.token_nodes(), Vec::<String>::new());
    let rebuilt =
        replay(&run.def, Instance::new("i1", "supplier_payment", 1), run.log.iter().map(|(e, t)| (e, *t))).unwrap();
    assert_eq!(rebuilt, run.instance);
}

#[test]
fn business_days_keep_the_office_hour_across_the_change_to_summer_time() {
    let mut run = Run::of_definition(compile(BERLIN));
    // Friday 27 March 2026, 15:00 in Berlin (CET, UTC+1).
    run.now = utc("2026-03-27T14:00:00Z");
    run.start(json!({}));
    // Tuesday 31 March, 15:00 in Berlin, now CEST (UTC+2).
    assert_eq!(timer_at(&run, "review", &TimerPurpose::Due), "2026-03-31T13:00:00+00:00");
    // Six working hours: 15:00-16:30 on Friday, then 08:00-12:30 on Monday (CEST).
    assert_eq!(timer_at(&run, "review", &TimerPurpose::Reminder { index: 0 }), "2026-03-30T10:30:00+00:00");
}

#[test]
fn the_memory_engine_fires_business_day_timers_at_their_instants() {
    let mut engine = MemoryEngine::new(utc("2026-02-13T08:00:00Z"));
    engine.deploy_compilation(&project(PAYMENT).compile()).unwrap();
    let id = engine.start("supplier_payment", json!({"invoice_id": "INV-7", "due_date": "2026-02-13"})).unwrap();
    assert_eq!(engine.tasks()[0].due_at, Some(utc("2026-02-25T08:00:00Z")));
    // Through the holiday: the reminder on the make-up Saturday, the overdue notice on Wednesday,
    // the escalation on Friday to a task due on the make-up Saturday after.
    engine.advance_to(utc("2026-02-27T08:00:00Z")).unwrap();
    let reminders: Vec<(String, bool)> = engine.reminders().iter().map(|r| (r.at.to_rfc3339(), r.overdue)).collect();
    assert_eq!(
        reminders,
        [("2026-02-14T03:00:00+00:00".to_string(), false), ("2026-02-25T08:00:00+00:00".to_string(), true)]
    );
    let tasks = engine.tasks();
    assert_eq!(tasks.len(), 1);
    assert_eq!((tasks[0].node.as_str(), tasks[0].due_at), ("cfo_review", Some(utc("2026-02-28T08:00:00Z"))));
    assert_eq!(engine.instance(&id).map(|i| i.tasks().len()), Some(1));
}

/// An approval counts on the calendar its role's people work on; the process's calendar and a
/// variable count of business days.
const ROLE_CALENDARS: &str = r#"
roles {
  shanghai.ap_clerk "Accounts payable clerk, Shanghai" calendar cn
}

process group_payment "Supplier payment, group" {
  calendar weekdays
  input { days: int? }
  start -> shanghai_review
  approval shanghai_review "Approve in Shanghai" {
    role shanghai.ap_clerk
    form { approve: bool }
    due days business days
  } -> head_office_review
  approval head_office_review "Approve at head office" {
    role finance.controller
    form { approve: bool }
    due 3 business days
  } -> paid
  end paid "Paid"
}
"#;

#[test]
fn an_approval_counts_business_days_on_its_roles_calendar_and_a_variable_count() {
    let def = compile(ROLE_CALENDARS);
    assert_eq!(def.role_calendars.keys().collect::<Vec<_>>(), ["cn"], "only the calendar an approval counts on");
    let mut run = Run::of_definition(def.clone());
    run.now = utc("2026-02-13T08:00:00Z");
    run.start(json!({"days": 3}));
    // The Shanghai clerk's 3 business days: over the Spring Festival, as on the cn calendar.
    assert_eq!(timer_at(&run, "shanghai_review", &TimerPurpose::Due), "2026-02-25T08:00:00+00:00");
    run.complete_task("shanghai_review", "lin", json!({"approve": true})).unwrap();
    // Head office works Monday to Friday in UTC with no holidays: 3 business days after
    // Friday 08:00 UTC (before its 09:00 opening) end on Wednesday the 18th at the close.
    let due = timer_at(&run, "head_office_review", &TimerPurpose::Due);
    assert!(due.starts_with("2026-02-1"), "{due}: not the cn calendar's holiday week");
    // No count, no due time: the approval waits without an SLA.
    let mut run = Run::of_definition(def);
    run.now = utc("2026-02-13T08:00:00Z");
    run.start(json!({"days": null}));
    assert!(!run.instance.timers().values().any(|t| t.purpose == TimerPurpose::Due));
}

#[test]
fn a_negative_count_of_business_days_is_an_incident_not_a_panic() {
    let mut run = Run::of_definition(compile(ROLE_CALENDARS));
    run.now = utc("2026-02-13T08:00:00Z");
    let effects = lines(&run.start(json!({"days": -2})));
    assert!(effects.iter().any(|l| l.contains("incident") && l.contains("whole number from 0")), "{effects:#?}");
}
