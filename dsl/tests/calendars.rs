//! The reference calendars (`processes/calendars.flow`) compile into the processes that name
//! them, and business-day arithmetic in expressions counts on them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use cloverleaf_dsl::expr::{EvalContext, Value, eval, parse_expr};
use cloverleaf_dsl::{CompiledProcess, FileId, Project};

const PAYMENT: &str = r#"
process supplier_payment "Supplier payment" {
  calendar cn
  input { due_date: date }
  var pay_on: date?
  start -> plan
  set plan { pay_on = due_date + 30 business days } -> pay
  wait pay { for 1 business day } -> done
  end done "Done"
}
"#;

fn calendars_file() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../processes/calendars.flow");
    std::fs::read_to_string(path).expect("processes/calendars.flow")
}

fn payment() -> CompiledProcess {
    let mut project = Project::new();
    project.add("processes/calendars.flow", calendars_file());
    project.add("payment.flow", PAYMENT);
    let compilation = project.compile();
    assert!(compilation.diagnostics.is_empty(), "{}", compilation.render());
    compilation.process("supplier_payment").expect("compiles").clone()
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn instant(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

/// Evaluates `src` with `due_date` set, on the process's calendar, at `now`.
fn eval_on(process: &CompiledProcess, src: &str, due_date: &str, now: &str) -> Value {
    let vars = BTreeMap::from([("due_date".to_string(), Value::Date(date(due_date)))]);
    let ctx = EvalContext::new(&vars, instant(now)).with_calendar(process.calendar.as_ref());
    eval(&parse_expr(src, FileId(0)).expect("parses"), &ctx).unwrap_or_else(|e| panic!("{src}: {e}"))
}

#[test]
fn the_china_calendar_knows_2026_holidays_and_make_up_days() {
    let process = payment();
    let cn = process.calendar.as_ref().expect("the process carries its calendar");
    assert_eq!((cn.name(), cn.zone().name()), ("cn", "Asia/Shanghai"));
    for off in ["2026-01-01", "2026-02-17", "2026-04-06", "2026-05-05", "2026-06-19", "2026-09-25", "2026-10-07"] {
        assert!(!cn.is_working_day(date(off)), "{off} is a holiday");
    }
    for worked in ["2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10"] {
        assert!(cn.is_working_day(date(worked)), "{worked} is a make-up working day");
    }
}

#[test]
fn dates_move_by_business_days_across_holidays() {
    let process = payment();
    let at = "2026-01-05T00:00:00Z";
    // The Friday before Spring Festival: the make-up Saturday, then the week after the holiday.
    assert_eq!(eval_on(&process, "due_date + 3 business days", "2026-02-13", at), Value::Date(date("2026-02-25")));
    assert_eq!(eval_on(&process, "due_date - 3 business days", "2026-02-25", at), Value::Date(date("2026-02-13")));
    // Thirty business days, over Spring Festival, its two make-up Saturdays and Qingming.
    assert_eq!(eval_on(&process, "due_date + 30 business days", "2026-02-13", at), Value::Date(date("2026-04-02")));
    assert_eq!(eval_on(&process, "30 business days + due_date", "2026-02-13", at), Value::Date(date("2026-04-02")));
    // Business hours from a date start at its midnight in Shanghai: 9:00 + 4 working hours,
    // less the lunch hour, is 14:00 (06:00 UTC).
    let hours = eval_on(&process, "due_date + 4 business hours", "2026-03-02", at);
    assert_eq!(hours, Value::DateTime(instant("2026-03-02T06:00:00Z")));
    // Alone, as a timer: from now. Friday 16:00 in Shanghai is 08:00 UTC.
    let due = eval_on(&process, "3 business days", "2026-02-13", "2026-02-13T08:00:00Z");
    assert_eq!(due, Value::DateTime(instant("2026-02-25T08:00:00Z")));
    assert_eq!(eval_on(&process, "null + 3 business days", "2026-02-13", at), Value::Null);
}

#[test]
fn without_a_calendar_business_time_is_an_evaluation_error() {
    let vars = BTreeMap::new();
    let ctx = EvalContext::new(&vars, instant("2026-01-05T00:00:00Z"));
    let e = parse_expr("date(\"2026-02-13\") + 3 business days", FileId(0)).unwrap();
    let err = eval(&e, &ctx).unwrap_err();
    assert_eq!(err.to_string(), "business days need a calendar, and the process names none");
}

#[test]
fn the_calendar_round_trips_with_the_compiled_process() {
    let process = payment();
    let json = process.to_json();
    assert!(json.contains("\"2026-02-14\""), "make-up days are listed: {json}");
    let back: CompiledProcess = serde_json::from_str(&json).expect("compiled JSON loads");
    assert_eq!(back, process);
}

#[test]
fn a_calendar_file_alone_compiles_to_no_process() {
    let mut project = Project::new();
    project.add("processes/calendars.flow", calendars_file());
    let compilation = project.compile();
    assert!(compilation.diagnostics.is_empty(), "{}", compilation.render());
    assert!(compilation.processes.is_empty());
}

/// The compilation lists the calendars declared without errors, whether or not a process names
/// them: the first of a name declared twice, none whose block has errors.
#[test]
fn the_compilation_lists_its_calendars() {
    let compilation = compile_with_calendars(
        r#"
calendar weekdays "Again" { zone "Asia/Tokyo" week mon-fri hours 09:00-17:00 }
calendar broken "Broken" { zone "Mars/Olympus" week mon-fri hours 09:00-17:00 }
"#,
    );
    assert!(compilation.has_errors(), "the duplicate and the unknown zone are errors");
    let names: Vec<&str> = compilation.calendars.keys().map(String::as_str).collect();
    assert_eq!(names, ["cn", "weekdays"]);
    assert_eq!(compilation.calendars["weekdays"].zone(), chrono_tz::UTC, "the first declared");
    assert_eq!(compilation.calendars["cn"].zone(), chrono_tz::Asia::Shanghai);
}

/// A process carries the titles of the roles it offers approvals to, in both languages where the
/// roles block writes both, and no other role's.
#[test]
fn a_process_carries_the_titles_of_its_roles() {
    let compilation = compile_with_calendars(
        r#"
roles { ap.clerk "AP clerk" zh "应付会计" calendar cn  ap.head "AP head"  ap.untitled  ap.other "Other" zh "其他" }
process pay "Pay" {
  start -> review
  approval review "Review" { role ap.clerk, ap.untitled  form { ok: bool } } -> second
  approval second "Second" { role ap.head  form { ok: bool } } -> done
  end done "Done"
}
"#,
    );
    assert!(!compilation.has_errors(), "{}", compilation.render());
    let pay = compilation.process("pay").expect("compiled");
    let titles: Vec<(&str, &str, Option<&str>)> =
        pay.role_titles.iter().map(|(r, t)| (r.as_str(), t.title.as_str(), t.title_zh.as_deref())).collect();
    assert_eq!(titles, [("ap.clerk", "AP clerk", Some("应付会计")), ("ap.head", "AP head", None)]);
}

/// `src` after the reference calendars, compiled.
fn compile_with_calendars(src: &str) -> cloverleaf_dsl::Compilation {
    let mut project = Project::new();
    project.add("processes/calendars.flow", calendars_file());
    project.add("roles.flow", src);
    project.compile()
}

#[test]
fn a_role_names_its_calendar_and_its_approvals_count_on_it() {
    let compilation = compile_with_calendars(
        r#"
roles { ap.clerk "AP clerk" calendar cn  ap.head "AP head" }
process pay "Pay" {
  input { days: int }
  start -> review
  approval review "Review" { role ap.clerk  form { ok: bool }  due days business days } -> second
  approval second "Second" { role ap.head  form { ok: bool }  due 2d } -> done
  end done "Done"
}
"#,
    );
    assert!(!compilation.has_errors(), "{}", compilation.render());
    let pay = compilation.process("pay").unwrap();
    assert!(pay.calendar.is_none(), "the process names none: business time needs no process calendar here");
    assert_eq!(pay.role_calendars.keys().collect::<Vec<_>>(), ["cn"]);
    let json = serde_json::to_value(pay).unwrap();
    let review = json["nodes"].as_array().unwrap().iter().find(|n| n["name"] == "review").unwrap();
    assert_eq!(review["calendar"], "cn", "{review}");
}

#[test]
fn role_calendar_mistakes_are_located_diagnostics() {
    let compilation = compile_with_calendars(
        r#"
roles { ap.clerk "AP clerk" calendar cm  ap.berlin "AP Berlin" calendar weekdays  ap.cn "AP Shanghai" calendar cn }
process pay "Pay" {
  input { note: text }
  start -> review
  approval review "Review" { role ap.berlin, ap.cn  form { ok: bool }  due 2 business days } -> late
  approval late "Late" { role ap.cn  form { ok: bool }  due note business days } -> done
  end done "Done"
}
"#,
    );
    let rendered = compilation.render();
    let codes: Vec<&str> = compilation.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["E0109", "E0305", "E0201"], "{rendered}");
    assert!(rendered.contains("unknown calendar `cm`") && rendered.contains("did you mean `cn`?"), "{rendered}");
    assert!(rendered.contains("roles.flow:2:38"), "the unknown calendar is located in the roles block: {rendered}");
    assert!(rendered.contains("`ap.berlin` on `weekdays`, `ap.cn` on `cn`"), "{rendered}");
    assert!(rendered.contains("must be an `int`, found `text`"), "{rendered}");
}
