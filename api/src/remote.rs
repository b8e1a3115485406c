//! [`RemoteSource`]: a [`JobSource`] over a Cloverleaf server's external-job API, so that a
//! [`cloverleaf_worker::Worker`] runs on another machine exactly as it runs in-process.
//!
//! Every call carries the bearer token of a user with the `worker` role. Fetches long-poll
//! (`wait_ms`), and the server's answers map onto [`SourceError`] the way the engine's errors do
//! in-process: a stale epoch is [`SourceError::StaleLock`], a lease that ran out
//! [`SourceError::LeaseExpired`], a job the server does not know [`SourceError::UnknownJob`], a
//! refused token or output [`SourceError::Refused`], and a server that cannot be reached or
//! fails (5xx) [`SourceError::Unavailable`], which the worker tries again. [`OperatorClient`]
//! makes an operator's calls (`cloverleaf migrate`) with the same checks of URL and token.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use cloverleaf::remote::RemoteSource;
//! use cloverleaf_finance::{self as finance, Ledger};
//! use cloverleaf_worker::{Worker, WorkerOptions};
//!
//! let source = RemoteSource::new("http://127.0.0.1:8080", "the-worker-token")?;
//! let ledger = Ledger::open("cloverleaf.db").await?;
//! let worker = Worker::new(source, finance::handlers(&ledger), WorkerOptions::new("billing-1"));
//! worker.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use cloverleaf_engine::{InstanceId, JobId};
use cloverleaf_worker::{FetchRequest, Job, JobSource, SourceError};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::{Value, json};

/// The server's longest long poll (`wait_ms`).
const MAX_WAIT: Duration = Duration::from_secs(60);
/// The server's longest lease (`lock_ms`).
const MAX_LEASE_MS: i64 = 24 * 3600 * 1000;
/// The server's largest fetch (`max_jobs`).
const MAX_JOBS: usize = 1000;
/// How long a call may take beyond its long poll before it counts as unanswered.
const MARGIN: Duration = Duration::from_secs(10);
/// How long a report (complete, fail, error, extend-lock) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The job type [`RemoteSource::check`] fetches: one no process uses.
const PROBE_TOPIC: &str = "cloverleaf.worker.access-check";
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a [`RemoteSource`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server URL does not parse or is not `http://`.
    #[error("invalid server URL `{url}`: {problem}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The token is empty or cannot travel in a header.
    #[error("invalid token: {0}")]
    Token(&'static str),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// A job source on a remote server's `/v1/jobs` API; cheap to clone.
#[derive(Debug, Clone)]
pub struct RemoteSource {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: reqwest::Client,
    /// The base URL, without a trailing `/`.
    base: String,
    /// The server's clock as last seen, and when (on this machine's monotonic clock).
    clock: Mutex<Option<(DateTime<Utc>, Instant)>>,
}

/// A job as the server sends it.
#[derive(Debug, Deserialize)]
struct WireJob {
    id: String,
    instance_id: String,
    node: String,
    job_type: String,
    input: Value,
    idempotency_key: String,
    attempt: i64,
    epoch: i64,
    lock_expires_at: DateTime<Utc>,
    locked_at: Option<DateTime<Utc>>,
}

impl From<WireJob> for Job {
    fn from(job: WireJob) -> Job {
        Job {
            id: JobId::from(job.id),
            instance_id: InstanceId::from(job.instance_id),
            node: job.node,
            job_type: job.job_type,
            input: job.input,
            idempotency_key: job.idempotency_key,
            attempt: job.attempt,
            epoch: job.epoch,
            lock_expires_at: job.lock_expires_at,
        }
    }
}

#[derive(Debug, Deserialize)]
struct LockView {
    lock_expires_at: DateTime<Utc>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorInfo,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorInfo {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// An answer that was not a success: its status and the server's error code and message.
struct Refusal {
    status: StatusCode,
    code: String,
    message: String,
}

impl Refusal {
    async fn read(response: reqwest::Response) -> Refusal {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let body: ErrorBody = serde_json::from_str(&text).unwrap_or_default();
        let message = if body.error.message.is_empty() {
            // Not the server's error shape (a proxy's page, say): show what came back.
            let text = text.trim();
            if text.is_empty() { status.to_string() } else { text.chars().take(200).collect() }
        } else {
            body.error.message
        };
        Refusal { status, code: body.error.code, message }
    }

    /// Worth trying again: the server is busy, failing or in the way of a proxy.
    fn transient(&self) -> bool {
        self.status.is_server_error()
            || self.status == StatusCode::TOO_MANY_REQUESTS
            || self.status == StatusCode::REQUEST_TIMEOUT
    }

    fn describe(&self) -> String {
        if self.code.is_empty() {
            format!("{} ({})", self.message, self.status.as_u16())
        } else {
            format!("{} ({} {})", self.message, self.status.as_u16(), self.code)
        }
    }

    /// The error of a call about `job` presented with `epoch`.
    fn for_job(self, job: &JobId, epoch: i64) -> SourceError {
        match (self.status, self.code.as_str()) {
            (StatusCode::CONFLICT, "stale_lock") => SourceError::StaleLock { job: job.0.clone(), epoch },
            (StatusCode::CONFLICT, "lease_expired") => SourceError::LeaseExpired { job: job.0.clone() },
            // The job is no longer open in its instance (a boundary event took the token away):
            // the lock is as gone as for a job the server does not know.
            (StatusCode::CONFLICT, "job_closed") | (StatusCode::NOT_FOUND, _) => SourceError::UnknownJob(job.0.clone()),
            _ => self.general(),
        }
    }

    /// The error of a call that names no job.
    fn general(self) -> SourceError {
        if self.transient() { SourceError::Unavailable(self.describe()) } else { SourceError::Refused(self.describe()) }
    }
}

/// A transport failure (no connection, a timeout, a broken answer), with its causes.
fn unavailable(url: &str, error: &reqwest::Error) -> SourceError {
    let mut message = format!("{url}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    SourceError::Unavailable(message)
}

/// An id as a path segment: the engine's ids pass as they are; anything else (the `/` of an
/// id from an older store, say) is percent-encoded.
pub fn encode_id(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A lease in the server's milliseconds, within what it accepts.
fn lease_ms(lease: TimeDelta) -> i64 {
    lease.num_milliseconds().clamp(1, MAX_LEASE_MS)
}

/// An HTTP client for the server at `server` (`http://host:8080`) sending the bearer `token`
/// on every call, and the base URL without a trailing `/`.
fn client(server: &str, token: &str, agent: &'static str) -> Result<(reqwest::Client, String), Error> {
    let url_error = |problem: &str| Error::Url { url: server.to_string(), problem: problem.to_string() };
    let url = Url::parse(server.trim()).map_err(|e| url_error(&e.to_string()))?;
    match url.scheme() {
        "http" => {}
        "https" => {
            return Err(url_error(
                "this build speaks plain HTTP only: use http://, behind a TLS-terminating proxy if the \
                 network needs one",
            ));
        }
        other => return Err(url_error(&format!("the scheme must be http, not `{other}`"))),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(url_error("give the server's base URL, with no query or fragment"));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(Error::Token("it is empty"));
    }
    let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| Error::Token("it contains characters a header cannot carry"))?;
    // Kept out of debug output and logs.
    authorization.set_sensitive(true);
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, authorization);
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(agent)
        .build()?;
    Ok((client, url.as_str().trim_end_matches('/').to_string()))
}

impl RemoteSource {
    /// A source on the server at `server` (`http://host:8080`), calling as the user of `token`.
    pub fn new(server: &str, token: &str) -> Result<RemoteSource, Error> {
        let (client, base) = client(server, token, concat!("cloverleaf-worker/", env!("CARGO_PKG_VERSION")))?;
        Ok(RemoteSource { inner: Arc::new(Inner { client, base, clock: Mutex::new(None) }) })
    }

    /// The server's base URL.
    pub fn server(&self) -> &str {
        &self.inner.base
    }

    /// Checks that the server answers and lets this token fetch jobs, locking nothing: a fetch
    /// of a job type no process uses, without waiting.
    pub async fn check(&self, worker_id: &str) -> Result<(), SourceError> {
        let probe = FetchRequest {
            worker_id: worker_id.to_string(),
            topics: vec![PROBE_TOPIC.to_string()],
            max_jobs: 1,
            lease: TimeDelta::seconds(1),
            wait: Duration::ZERO,
        };
        for job in self.fetch(&probe).await? {
            // Only if a process did name that job type: it is not ours to run.
            self.release(&job.id, job.epoch).await?;
        }
        Ok(())
    }

    fn job_url(&self, job: &JobId, action: &str) -> String {
        format!("{}/v1/jobs/{}/{action}", self.inner.base, encode_id(&job.0))
    }

    /// POSTs `body` about `job`; the success answer, or the error it maps to.
    async fn post_job(
        &self,
        job: &JobId,
        epoch: i64,
        action: &str,
        body: Value,
    ) -> Result<reqwest::Response, SourceError> {
        let url = self.job_url(job, action);
        let response = self
            .inner
            .client
            .post(&url)
            .json(&body)
            .timeout(CALL_TIMEOUT)
            .send()
            .await
            .map_err(|e| unavailable(&url, &e))?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(Refusal::read(response).await.for_job(job, epoch))
        }
    }

    /// One fetch-and-lock call; the jobs it locked.
    async fn fetch(&self, request: &FetchRequest) -> Result<Vec<Job>, SourceError> {
        let wait = request.wait.min(MAX_WAIT);
        let url = format!("{}/v1/jobs/fetch-and-lock", self.inner.base);
        let body = json!({
            "worker_id": request.worker_id,
            "topics": request.topics,
            "max_jobs": request.max_jobs.clamp(1, MAX_JOBS),
            "lock_ms": lease_ms(request.lease),
            "wait_ms": u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        });
        let response = self
            .inner
            .client
            .post(&url)
            .json(&body)
            .timeout(wait + MARGIN)
            .send()
            .await
            .map_err(|e| unavailable(&url, &e))?;
        if !response.status().is_success() {
            let refusal = Refusal::read(response).await;
            if refusal.status == StatusCode::NOT_FOUND {
                return Err(SourceError::Refused(format!(
                    "{url} has no job API ({}): is this a Cloverleaf server's base URL?",
                    refusal.message
                )));
            }
            return Err(refusal.general());
        }
        let jobs: Vec<WireJob> = response.json().await.map_err(|e| unavailable(&url, &e))?;
        if let Some(server_now) = jobs.iter().filter_map(|j| j.locked_at).max() {
            *self.inner.clock.lock().unwrap_or_else(PoisonError::into_inner) = Some((server_now, Instant::now()));
        }
        Ok(jobs.into_iter().map(Job::from).collect())
    }
}

impl JobSource for RemoteSource {
    async fn fetch_and_lock(&self, request: &FetchRequest) -> Result<Vec<Job>, SourceError> {
        // The call runs in a task of its own: if the worker drops this future (shutdown, a
        // wake-up) after the server locked jobs, the task gives them back instead of leaving
        // them locked until their leases run out.
        let (this, request) = (self.clone(), request.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let result = this.fetch(&request).await;
            if let Err(Ok(jobs)) = tx.send(result) {
                for job in jobs {
                    if let Err(error) = this.release(&job.id, job.epoch).await {
                        tracing::warn!(job = %job.id, %error, "cannot release a job nobody took");
                    }
                }
            }
        });
        rx.await.unwrap_or_else(|_| Err(SourceError::Unavailable("the fetch task stopped".into())))
    }

    async fn complete(&self, job: &JobId, epoch: i64, output: Value) -> Result<(), SourceError> {
        let variables = match output {
            Value::Object(map) => Value::Object(map),
            Value::Null => json!({}),
            other => return Err(SourceError::Refused(format!("the output must be a JSON object, not {other}"))),
        };
        self.post_job(job, epoch, "complete", json!({"epoch": epoch, "variables": variables})).await.map(drop)
    }

    async fn fail(&self, job: &JobId, epoch: i64, message: &str) -> Result<(), SourceError> {
        self.post_job(job, epoch, "fail", json!({"epoch": epoch, "message": message})).await.map(drop)
    }

    async fn business_error(&self, job: &JobId, epoch: i64, code: &str) -> Result<(), SourceError> {
        self.post_job(job, epoch, "error", json!({"epoch": epoch, "code": code})).await.map(drop)
    }

    async fn extend_lock(&self, job: &JobId, epoch: i64, lease: TimeDelta) -> Result<DateTime<Utc>, SourceError> {
        let url = self.job_url(job, "extend-lock");
        let response =
            self.post_job(job, epoch, "extend-lock", json!({"epoch": epoch, "lock_ms": lease_ms(lease)})).await?;
        let lock: LockView = response.json().await.map_err(|e| unavailable(&url, &e))?;
        Ok(lock.lock_expires_at)
    }

    /// Ends the lease a millisecond from now: the server refuses a lease of zero, and a job
    /// whose lease ran out is handed to the next fetch.
    async fn release(&self, job: &JobId, epoch: i64) -> Result<(), SourceError> {
        self.extend_lock(job, epoch, TimeDelta::milliseconds(1)).await.map(drop)
    }

    /// The server's clock as of the last job it handed out, moved on by the time passed here
    /// since; this machine's clock until then.
    fn now(&self) -> DateTime<Utc> {
        match *self.inner.clock.lock().unwrap_or_else(PoisonError::into_inner) {
            Some((server, seen)) => server + TimeDelta::from_std(seen.elapsed()).unwrap_or(TimeDelta::zero()),
            None => Utc::now(),
        }
    }
}

/// The operator's calls to a server's `/v1` API (`cloverleaf migrate`), with an admin's token.
#[derive(Debug, Clone)]
pub struct OperatorClient {
    client: reqwest::Client,
    base: String,
}

/// How long an operator's call may take: a migration batch may write hundreds of instances.
const OPERATOR_TIMEOUT: Duration = Duration::from_secs(600);

impl OperatorClient {
    /// A client of the server at `server` (`http://host:8080`), calling as the user of `token`.
    pub fn new(server: &str, token: &str) -> Result<OperatorClient, Error> {
        let (client, base) = client(server, token, concat!("cloverleaf-cli/", env!("CARGO_PKG_VERSION")))?;
        Ok(OperatorClient { client, base })
    }

    /// POSTs a JSON body to `path` (`/v1/...`): the answer's status and JSON body (the error
    /// shape's `error` object for a refusal), or why the server could not be reached.
    pub async fn post(&self, path: &str, body: &Value) -> Result<(StatusCode, Value), String> {
        let url = format!("{}{path}", self.base);
        let response =
            self.client.post(&url).json(body).timeout(OPERATOR_TIMEOUT).send().await.map_err(|e| match unavailable(
                &url, &e,
            ) {
                SourceError::Unavailable(message) => message,
                other => other.to_string(),
            })?;
        let status = response.status();
        let text = response.text().await.map_err(|e| format!("{url}: {e}"))?;
        let body = serde_json::from_str(&text).unwrap_or_else(|_| json!({"error": {"message": text.trim()}}));
        Ok((status, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_their_slashes_and_escape_the_rest() {
        assert_eq!(encode_id("i-abc-1.job.2"), "i-abc-1.job.2");
        assert_eq!(encode_id("i-abc-1/job/2"), "i-abc-1%2Fjob%2F2");
        assert_eq!(encode_id("i x?#.job.2"), "i%20x%3F%23.job.2");
    }

    #[test]
    fn only_plain_http_urls_and_usable_tokens_are_taken() {
        assert!(RemoteSource::new("http://127.0.0.1:8080/", "t").is_ok());
        assert_eq!(RemoteSource::new("http://127.0.0.1:8080/", "t").unwrap().server(), "http://127.0.0.1:8080");
        for bad in ["https://example.com", "ftp://example.com", "example.com", "http://h/?x=1"] {
            assert!(matches!(RemoteSource::new(bad, "t"), Err(Error::Url { .. })), "{bad}");
        }
        assert!(matches!(RemoteSource::new("http://h", " "), Err(Error::Token(_))));
        assert!(matches!(RemoteSource::new("http://h", "a\nb"), Err(Error::Token(_))));
    }

    #[test]
    fn leases_stay_within_what_the_server_takes() {
        assert_eq!(lease_ms(TimeDelta::zero()), 1);
        assert_eq!(lease_ms(TimeDelta::seconds(60)), 60_000);
        assert_eq!(lease_ms(TimeDelta::days(3)), MAX_LEASE_MS);
    }
}
