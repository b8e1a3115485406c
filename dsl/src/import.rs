//! Imports from other process languages into `.flow` text: BPMN 2.0 ([`bpmn`]).
//!
//! An import is a translation, not a second compiler: it writes `.flow` text, and the project's
//! usual `check` decides whether that text is a sound process.

pub mod bpmn;
