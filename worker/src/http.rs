//! The generic HTTP handler: hands a job to an ERP or CRM endpoint.
//!
//! The job's input variables are POSTed as a JSON object to the URL configured for its job type,
//! with the job's idempotency key in the `Idempotency-Key` header (and its id, type and attempt
//! in `Cloverleaf-Job-*` headers). The answer maps to the job's outcome:
//!
//! - 2xx with a JSON object (or an empty body): the output variables;
//! - 4xx with `{"error": {"code": "...", "message": "..."}}`: a business error with that code;
//! - any other 4xx, 5xx, a timeout or a connection failure: a failure, retried by the engine.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::handler::{HandlerError, HandlerFuture, HandlerResult, Handlers, JobContext};

/// Where one job type is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL to POST to.
    pub url: String,
    /// How long a call may take.
    pub timeout: Duration,
    /// Extra headers (an API key, say).
    pub headers: BTreeMap<String, String>,
}

impl Endpoint {
    /// An endpoint with a 30 s timeout and no extra headers.
    pub fn new(url: impl Into<String>) -> Endpoint {
        Endpoint { url: url.into(), timeout: Duration::from_secs(30), headers: BTreeMap::new() }
    }

    /// With another timeout.
    pub fn timeout(mut self, timeout: Duration) -> Endpoint {
        self.timeout = timeout;
        self
    }

    /// With an extra header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Endpoint {
        self.headers.insert(name.into(), value.into());
        self
    }
}

/// Why an HTTP handler could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Calls configured endpoints for their job types.
#[derive(Debug, Clone)]
pub struct HttpHandler {
    client: reqwest::Client,
    endpoints: Arc<BTreeMap<String, Endpoint>>,
}

impl HttpHandler {
    /// A handler for `endpoints` (job type → endpoint).
    pub fn new(endpoints: BTreeMap<String, Endpoint>) -> Result<HttpHandler, Error> {
        let client = reqwest::Client::builder().build()?;
        Ok(HttpHandler { client, endpoints: Arc::new(endpoints) })
    }

    /// Registers this handler for every configured job type.
    pub fn register(&self, handlers: &mut Handlers) {
        for job_type in self.endpoints.keys() {
            let this = self.clone();
            handlers.register(job_type.clone(), move |context: JobContext| -> HandlerFuture {
                let this = this.clone();
                Box::pin(async move { this.call(context).await })
            });
        }
    }

    /// Runs one job against its endpoint.
    pub async fn call(&self, context: JobContext) -> HandlerResult {
        let job = &context.job;
        let endpoint = self
            .endpoints
            .get(&job.job_type)
            .ok_or_else(|| HandlerError::failure(format!("no endpoint for job type {}", job.job_type)))?;
        let mut request = self
            .client
            .post(&endpoint.url)
            .timeout(endpoint.timeout)
            .header("Idempotency-Key", &job.idempotency_key)
            .header("Cloverleaf-Job-Id", job.id.as_str())
            .header("Cloverleaf-Job-Type", &job.job_type)
            .header("Cloverleaf-Job-Attempt", job.attempt.to_string())
            .json(&job.input);
        for (name, value) in &endpoint.headers {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                HandlerError::failure(format!("{}: timed out after {:?}", endpoint.url, endpoint.timeout))
            } else {
                HandlerError::failure(format!("{}: {e}", endpoint.url))
            }
        })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| HandlerError::failure(format!("{}: {e}", endpoint.url)))?;
        let json: Option<Value> =
            if body.iter().all(u8::is_ascii_whitespace) { None } else { serde_json::from_slice(&body).ok() };
        if status.is_success() {
            return match json {
                None => Ok(Value::Object(serde_json::Map::new())),
                Some(Value::Object(map)) => Ok(Value::Object(map)),
                Some(other) => {
                    Err(HandlerError::failure(format!("{}: expected a JSON object, got {other}", endpoint.url)))
                }
            };
        }
        if status.is_client_error() {
            let error = json.as_ref().and_then(|j| j.get("error"));
            if let Some(code) = error.and_then(|e| e.get("code")).and_then(Value::as_str) {
                let message = error.and_then(|e| e.get("message")).and_then(Value::as_str).unwrap_or(code);
                return Err(HandlerError::business(code, message));
            }
        }
        let excerpt: String = String::from_utf8_lossy(&body).chars().take(200).collect();
        Err(HandlerError::failure(format!("{} answered {status}: {excerpt}", endpoint.url)))
    }
}
