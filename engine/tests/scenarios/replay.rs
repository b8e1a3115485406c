//! Determinism end to end: every instance of a full order-to-cash run rebuilds from its event log
//! (on the durable side, the log as the database stored it).

use chrono::{DateTime, Utc};
use cloverleaf_engine::{Event, Instance, replay};

use crate::order_to_cash::paid_order;

scenarios! {
    fn the_event_logs_of_a_full_order_to_cash_run_replay_to_the_same_final_state() {
        let (engine, id) = paid_order();
        assert_eq!(engine.instances().len(), 4);
        for instance in engine.instances() {
            let live = engine.instance(&instance).unwrap();
            let rebuilt = engine.replay(&instance);
            assert_eq!(rebuilt.to_json().unwrap(), live.to_json().unwrap(), "{instance}");
        }
        // The log survives a trip through JSON.
        let log = engine.event_log(&id);
        assert!(!log.is_empty());
        let stored = serde_json::to_string(&log).unwrap();
        let read: Vec<(Event, DateTime<Utc>)> = serde_json::from_str(&stored).unwrap();
        let definition = engine.definition("order_to_cash", Some(1)).unwrap();
        let rebuilt =
            replay(&definition, Instance::new(id.clone(), "order_to_cash", 1), read.iter().map(|(e, t)| (e, *t))).unwrap();
        assert_eq!(rebuilt.to_json().unwrap(), engine.instance(&id).unwrap().to_json().unwrap());
    }
}
