//! Handlers: async functions registered by job type, and what they may answer.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

use crate::source::Job;

/// What a handler gets: the job and the source's "now".
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The locked job.
    pub job: Job,
    /// The job source's current time when the job started (the engine's clock).
    pub now: DateTime<Utc>,
}

impl JobContext {
    /// Today's date on the source's clock (UTC).
    pub fn today(&self) -> NaiveDate {
        self.now.date_naive()
    }
}

/// Why a handler did not complete its job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// A business outcome the process handles with `on error "code"`; never retried.
    #[error("business error {code}: {message}")]
    Business {
        /// The code the process catches.
        code: String,
        /// What happened, for people.
        message: String,
    },
    /// A technical failure: the engine retries with the process's backoff, then raises an incident.
    #[error("{0}")]
    Failure(String),
}

impl HandlerError {
    /// A business error with `code`.
    pub fn business(code: impl Into<String>, message: impl Into<String>) -> HandlerError {
        HandlerError::Business { code: code.into(), message: message.into() }
    }

    /// A technical failure.
    pub fn failure(message: impl fmt::Display) -> HandlerError {
        HandlerError::Failure(message.to_string())
    }
}

/// What a handler returns: the job's output variables (a JSON object), or why not.
pub type HandlerResult = Result<serde_json::Value, HandlerError>;

/// A boxed handler future.
pub type HandlerFuture = Pin<Box<dyn Future<Output = HandlerResult> + Send + 'static>>;

/// Runs one job.
pub trait Handler: Send + Sync + 'static {
    /// Handles the job of `context`.
    fn call(&self, context: JobContext) -> HandlerFuture;
}

impl<F, Fut> Handler for F
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    fn call(&self, context: JobContext) -> HandlerFuture {
        Box::pin(self(context))
    }
}

/// Handlers by job type. A pattern ending in `*` (`finance.*`, or `*` alone) handles every type
/// with that prefix; an exact name wins over a pattern, and a longer pattern over a shorter one.
#[derive(Clone, Default)]
pub struct Handlers {
    by_type: BTreeMap<String, Arc<dyn Handler>>,
}

impl fmt::Debug for Handlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handlers").field("job_types", &self.by_type.keys().collect::<Vec<_>>()).finish()
    }
}

impl Handlers {
    /// No handlers.
    pub fn new() -> Handlers {
        Handlers::default()
    }

    /// Registers `handler` for `job_type` (an exact type or a `prefix*` pattern), replacing any
    /// handler registered for it before.
    pub fn register(&mut self, job_type: impl Into<String>, handler: impl Handler) -> &mut Handlers {
        self.by_type.insert(job_type.into(), Arc::new(handler));
        self
    }

    /// Registers a shared handler.
    pub fn register_arc(&mut self, job_type: impl Into<String>, handler: Arc<dyn Handler>) -> &mut Handlers {
        self.by_type.insert(job_type.into(), handler);
        self
    }

    /// Adds every handler of `other`, replacing those with the same job type.
    pub fn merge(&mut self, other: Handlers) -> &mut Handlers {
        self.by_type.extend(other.by_type);
        self
    }

    /// The registered job types and patterns: what a worker fetches.
    pub fn topics(&self) -> Vec<String> {
        self.by_type.keys().cloned().collect()
    }

    /// True when nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.by_type.is_empty()
    }

    /// The handler for `job_type`.
    pub fn get(&self, job_type: &str) -> Option<&Arc<dyn Handler>> {
        if let Some(handler) = self.by_type.get(job_type) {
            return Some(handler);
        }
        self.by_type
            .iter()
            .filter(|(pattern, _)| topic_matches(pattern, job_type))
            .max_by_key(|(pattern, _)| pattern.len())
            .map(|(_, handler)| handler)
    }
}

/// True when the topic `pattern` matches `job_type`: equal, or a `prefix*` pattern.
pub fn topic_matches(pattern: &str, job_type: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => job_type.starts_with(prefix),
        None => pattern == job_type,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_win_over_patterns_and_longer_patterns_over_shorter() {
        let mut handlers = Handlers::new();
        let answer = |v: &'static str| move |_: JobContext| async move { Ok(serde_json::json!(v)) };
        handlers.register("*", answer("any")).register("finance.*", answer("finance"));
        handlers.register("finance.close", answer("close"));
        assert!(handlers.get("finance.close").is_some());
        assert!(topic_matches("finance.*", "finance.x"));
        assert!(!topic_matches("finance.*", "financex"));
        assert!(topic_matches("*", "a.b"));
        assert!(!topic_matches("a.b", "a.bc"));
        assert_eq!(handlers.topics(), vec!["*", "finance.*", "finance.close"]);
        let picks = |t: &str, pattern: &str| match (handlers.get(t), handlers.by_type.get(pattern)) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        assert!(picks("finance.x", "finance.*"));
        assert!(picks("sales.x", "*"));
        assert!(picks("finance.close", "finance.close"));
    }
}
