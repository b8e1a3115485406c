//! The Cloverleaf engine: a pure core `(definition, instance, event, now) → (instance, effects)`,
//! an in-memory driver of it on a virtual clock ([`memory`]), and a durable runtime on SQLite
//! ([`runtime`], over the [`store`] trait). This page describes the core.
//!
//! An [`Instance`] holds its variables, its tokens (each at a node, with its branch context) and
//! every wait it has open (jobs, human tasks, timers, message subscriptions, child calls,
//! incidents), keyed by ids. [`step`](fn@step) applies one [`Event`] at the instant `now` and returns a
//! [`Transition`]: the new instance and the [`Effect`]s the runtime performs *after* committing
//! both in one transaction. An event that does not fit is a typed [`Rejection`] and changes
//! nothing.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use cloverleaf_dsl::Project;
//! use cloverleaf_engine::{Effect, Event, Instance, Status, step};
//!
//! let mut project = Project::new();
//! project.add("p.flow", r#"process p "P" {
//!     input { amount: money }
//!     start -> route
//!     decide route { when amount > 100 -> big  otherwise -> small }
//!     end big "Big"
//!     end small "Small"
//! }"#);
//! let compilation = project.compile();
//! let definition = compilation.process("p").unwrap();
//! let now = Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap();
//! let start = Event::Start { variables: serde_json::json!({"amount": "250.00"}), business_key: None, start: None, started_by: None, on_behalf_of: None };
//! let t = step(definition, &Instance::new("i1", "p", 1), start, now).unwrap();
//! assert_eq!(t.instance.status(), &Status::Completed { outcome: Some("big".into()) });
//! assert!(t.effects.contains(&Effect::Completed { outcome: Some("big".into()) }));
//! ```
//!
//! Architecture Invariant: the core does no IO, reads no clock and draws no random numbers.
//! Time arrives as `now`; every id it creates is `{instance}/{kind}/{n}` from the instance's own
//! sequence counter, and a job's idempotency key is `{instance}:{node}:{activation}`, so the same
//! state, event and time always give byte-identical results, and replaying an event log
//! ([`replay`]) rebuilds the same state.
//!
//! Semantics in brief: BPMN tokens. A split gives each branch a token with a pushed
//! [`Frame::Branch`]; a join waits for one token per branch of the same split activation and
//! goes on with one. A non-interrupting timer starts a side token ([`Frame::Side`]) whose end
//! gives no outcome; an interrupting one closes everything the node had open and moves the
//! token. A failed job is retried per its [`cloverleaf_dsl::model::RetryPolicy`], then raises an
//! incident; a business error (or a child's error end) goes to the matching `on error`, else
//! raises an incident. Expression failures (a division by zero in a decide) raise incidents too.
//! The instance completes when no token is left, with the name of the last main-flow end as
//! its outcome.

#![warn(missing_docs)]

pub mod clock;
mod effect;
mod event;
pub mod ids;
mod instance;
pub mod memory;
mod rejection;
pub mod runtime;
mod step;
pub mod store;
pub mod value_serde;

pub use clock::{Clock, SystemClock, VirtualClock};
pub use effect::{Effect, HistoryEvent, HistoryKind};
pub use event::{Event, Modification, START_REFUSED};
pub use ids::{CallId, IncidentId, InstanceId, JobId, SubscriptionId, TaskId, TimerId, TokenId};
pub use instance::{
    CallWait, Delegation, Frame, Incident, Instance, JobWait, Status, Subscription, SubscriptionPurpose, TaskWait,
    TimerPurpose, TimerWait, Token, TokenState,
};
pub use memory::MemoryEngine;
pub use rejection::Rejection;
pub use runtime::{Engine, EngineOptions};
pub use step::{
    Migration, MigrationPlan, STEP_LIMIT, TokenMove, Transition, WaitAction, WaitChange, WaitKind, check_mapping,
    check_separation, migrate, render_title, render_title_with, replay, replay_versions, step,
};
