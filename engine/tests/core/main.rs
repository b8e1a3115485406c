//! The engine core, scenario by scenario: compile a flow, feed events, check effects and state.

mod approvals;
mod calendars;
mod calls;
#[path = "../common/mod.rs"]
mod common;
mod flow;
mod harness;
mod jobs;
mod lifecycle;
mod messages;
mod migrate;
mod modify;
mod parallel;
mod replay;
mod timers;
