//! Month-end close: started by its cron schedule, both reports in parallel, the controller's
//! review, the period closed.

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use cloverleaf_dsl::expr::Value;
use cloverleaf_dsl::model::{NodeKind, Trigger};
use cloverleaf_engine::memory::JobOutcome;
use serde_json::json;

use crate::harness::{Sim, completed, completions, date, engine_at, inbox, job_of, money, status, task_at, var};

fn shanghai(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    FixedOffset::east_opt(8 * 3600).unwrap().with_ymd_and_hms(y, m, d, h, 0, 0).unwrap().with_timezone(&Utc)
}

fn register_reports(engine: &mut Sim) {
    engine.register("report.ar_aging", |job| {
        let as_of = job.input["as_of"].as_str().unwrap_or_default().to_string();
        JobOutcome::complete(json!({"report_id": format!("AR-{as_of}"), "total": "35420.50"}))
    });
    engine.register("report.gross_profit", |job| {
        let as_of = job.input["as_of"].as_str().unwrap_or_default().to_string();
        let revenue = crate::harness::dec("120000.00");
        let cost = crate::harness::dec("71250.25");
        JobOutcome::complete(json!({
            "report_id": format!("GP-{as_of}"),
            "revenue": revenue.to_string(),
            "cost_of_goods": cost.to_string(),
            "gross_profit": (revenue - cost).to_string(),
        }))
    });
    engine.register("ledger.close_period", |_| JobOutcome::complete(json!({})));
}

scenarios! {
    fn the_schedule_of_the_start_node_fires_at_18_00_shanghai_on_the_last_day_of_the_month() {
        let engine = engine_at(Utc.with_ymd_and_hms(2026, 11, 15, 0, 0, 0).unwrap());
        let definition = engine.definition("month_end_close", None).unwrap();
        let schedule = definition
            .nodes
            .iter()
            .find_map(|n| match &n.kind {
                NodeKind::Start { trigger: Trigger::Schedule { schedule }, .. } => Some(schedule.clone()),
                _ => None,
            })
            .expect("a cron start");
        let next = schedule.next_after(engine.now()).unwrap();
        assert_eq!(next.to_rfc3339(), "2026-11-30T18:00:00+08:00");
        assert_eq!(next.with_timezone(&Utc), shanghai(2026, 11, 30, 18));
    }
}

scenarios! {
    fn the_cron_start_runs_both_reports_in_parallel_then_the_controller_closes_the_period() {
        let mut engine = engine_at(Utc.with_ymd_and_hms(2026, 11, 15, 0, 0, 0).unwrap());
        engine.set_schedules(true);
        register_reports(&mut engine);
        engine.advance_to(Utc.with_ymd_and_hms(2026, 11, 30, 9, 59, 0).unwrap()).unwrap();
        assert!(engine.instances().is_empty());
        engine.advance_to(Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()).unwrap();
        assert_eq!(engine.instances().len(), 1);
        let id = engine.instances()[0].clone();
        assert_eq!(engine.instance(&id).unwrap().process(), "month_end_close");
        let started = engine.history(&id)[0].0;
        assert_eq!(started, shanghai(2026, 11, 30, 18));
        assert_eq!(var(&engine, &id, "as_of"), Value::Date(date("2026-11-30")));

        // Both reports were created together, at the fire time.
        let aging = job_of(&engine, "report.ar_aging");
        let profit = job_of(&engine, "report.gross_profit");
        assert_eq!((aging.created_at, profit.created_at), (started, started));
        assert_eq!(aging.input, json!({"as_of": "2026-11-30"}));
        assert_eq!(engine.run_jobs().unwrap(), 2);

        let review = inbox(&engine, &["finance.controller"]);
        assert_eq!(review.len(), 1);
        assert_eq!(review[0].title, "Review the month-end reports as of 2026-11-30");
        assert_eq!(money(&engine, &id, "open_ar"), "35420.50");
        assert_eq!(money(&engine, &id, "gross_profit"), "48749.75");
        assert_eq!(var(&engine, &id, "profit_report"), Value::Text("GP-2026-11-30".into()));
        let task = review[0].id.clone();
        engine.complete_task(&task, "fran", None, json!({"approve_close": true})).unwrap();
        assert_eq!(job_of(&engine, "ledger.close_period").input, json!({"as_of": "2026-11-30"}));
        engine.run_jobs().unwrap();
        assert_eq!(status(&engine, &id), completed("closed"));
        assert_eq!(completions(&engine, "ledger.close_period"), 1);

        // The next month starts another instance at its own last day.
        engine.advance_to(Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()).unwrap();
        let all = engine.instances_of("month_end_close");
        assert_eq!(all.len(), 2);
        assert_eq!(engine.history(&all[1])[0].0, shanghai(2026, 12, 31, 18));
    }
}

scenarios! {
    fn a_refused_close_asks_for_adjustments_and_runs_the_reports_again() {
        let mut engine = engine_at(Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 0).unwrap());
        register_reports(&mut engine);
        let id = engine.start("month_end_close", json!({"as_of": "2026-10-31"})).unwrap();
        engine.run_jobs().unwrap();
        let task = task_at(&engine, &id, "review").id;
        engine.complete_task(&task, "fran", None, json!({"approve_close": false, "comment": "accrual missing"})).unwrap();
        let task = task_at(&engine, &id, "adjustments").id;
        engine.complete_task(&task, "ann", None, json!({"comment": "accrual posted"})).unwrap();
        engine.run_jobs().unwrap();
        assert_eq!(completions(&engine, "report.ar_aging"), 2);
        assert_eq!(completions(&engine, "report.gross_profit"), 2);
        let task = task_at(&engine, &id, "review").id;
        engine.complete_task(&task, "fran", None, json!({"approve_close": true})).unwrap();
        engine.run_jobs().unwrap();
        assert_eq!(status(&engine, &id), completed("closed"));
        assert_eq!(var(&engine, &id, "as_of"), Value::Date(date("2026-10-31")));
    }
}
