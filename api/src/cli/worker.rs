//! `cloverleaf worker`: automated steps run for a remote server, by the built-in finance
//! handlers on a sub-ledger database and by HTTP endpoints named in an `--endpoints` file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};

/// What `cloverleaf worker` was asked to run.
pub(super) struct WorkerArgs {
    pub(super) server: String,
    pub(super) token: String,
    pub(super) topics: Vec<String>,
    pub(super) concurrency: usize,
    pub(super) worker_id: Option<String>,
    pub(super) lease: Option<std::time::Duration>,
    pub(super) ledger: Option<String>,
    pub(super) endpoints: Option<PathBuf>,
}

/// One entry of the `--endpoints` file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointEntry {
    url: String,
    /// `500ms`, `20s`, `2m`; default 30 s.
    timeout: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Reads the `--endpoints` file: job type → endpoint.
fn read_endpoints(path: &Path) -> Result<BTreeMap<String, cloverleaf_worker::Endpoint>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let entries: BTreeMap<String, EndpointEntry> =
        toml::from_str(&text).with_context(|| format!("{} is not a valid endpoints file", path.display()))?;
    let mut endpoints = BTreeMap::new();
    for (job_type, entry) in entries {
        let url = reqwest::Url::parse(&entry.url)
            .with_context(|| format!("{}: `{job_type}`: invalid url `{}`", path.display(), entry.url))?;
        if url.scheme() != "http" {
            bail!("{}: `{job_type}`: the url must be http:// (this build speaks plain HTTP only)", path.display());
        }
        let mut endpoint = cloverleaf_worker::Endpoint::new(entry.url);
        if let Some(timeout) = &entry.timeout {
            endpoint = endpoint
                .timeout(parse_timeout(timeout).with_context(|| format!("{}: `{job_type}`: timeout", path.display()))?);
        }
        for (name, value) in entry.headers {
            endpoint = endpoint.header(name, value);
        }
        endpoints.insert(job_type, endpoint);
    }
    Ok(endpoints)
}

/// Runs automated steps for the server at `args.server` until stopped: the built-in finance
/// handlers on `--ledger`, job types handed to HTTP endpoints by `--endpoints`.
pub(super) fn worker(args: WorkerArgs) -> Result<ExitCode> {
    use cloverleaf_finance::{self as finance, Ledger};
    use cloverleaf_worker::{Handlers, HttpHandler, SourceError, Worker, WorkerOptions, topic_matches};

    if args.ledger.is_none() && args.endpoints.is_none() {
        bail!(
            "the worker has no handlers: give --ledger DATABASE to run the built-in finance handlers, \
             and/or --endpoints FILE to hand job types to HTTP endpoints"
        );
    }
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let source = cloverleaf::remote::RemoteSource::new(&args.server, &args.token)?;
    let endpoints = args.endpoints.as_deref().map(read_endpoints).transpose()?;
    if endpoints.as_ref().is_some_and(BTreeMap::is_empty) && args.ledger.is_none() {
        bail!("the worker has no handlers: {} names no job type", args.endpoints.unwrap_or_default().display());
    }
    super::init_tracing();
    super::runtime()?.block_on(async move {
        let mut handlers = Handlers::new();
        let ledger = match &args.ledger {
            Some(db) => {
                let ledger = Ledger::connect(db)
                    .await
                    .with_context(|| format!("cannot open the sub-ledger in {}", cloverleaf::server::redacted(db)))?;
                handlers.merge(finance::handlers(&ledger));
                Some(ledger)
            }
            None => None,
        };
        if let Some(endpoints) = endpoints {
            // Configured endpoints take their job types over from the built-in handlers.
            HttpHandler::new(endpoints).context("cannot build the HTTP handler")?.register(&mut handlers);
        }
        let covered = handlers.topics();
        for topic in &args.topics {
            if !covered.iter().any(|t| topic_matches(topic, t) || topic_matches(t, topic)) {
                bail!("topic `{topic}` matches none of the handlers' job types ({})", covered.join(", "));
            }
        }
        let mut options = WorkerOptions::new(args.worker_id.unwrap_or_else(cloverleaf::server::run::node_name));
        options.max_concurrency = args.concurrency;
        if let Some(lease) = args.lease {
            options.lease = chrono::TimeDelta::from_std(lease).context("--lease is too long")?;
        }
        options.topics = if args.topics.is_empty() { None } else { Some(args.topics) };
        // Remote fetches long-poll: the server answers as soon as a job is due.
        options.poll_wait = std::time::Duration::from_secs(30);
        // A token the server refuses will not start working later: say so now rather than in a
        // warning every few seconds. A server that is down may come up: the worker waits for it.
        match source.check(&options.worker_id).await {
            Ok(()) => {}
            Err(SourceError::Refused(reason)) => bail!("{} refused the worker: {reason}", source.server()),
            Err(error) => tracing::warn!(%error, "the server does not answer yet: trying again"),
        }
        let topics = options.topics.clone().unwrap_or_else(|| handlers.topics());
        tracing::info!(
            server = source.server(),
            worker_id = %options.worker_id,
            topics = %topics.join(","),
            concurrency = options.max_concurrency,
            lease_ms = options.lease.num_milliseconds(),
            "worker started"
        );
        let stop = async {
            cloverleaf::server::run::shutdown_signal().await;
            tracing::info!("stopping: jobs in flight finish or are given back");
        };
        let stats = Worker::new(source, handlers, options).run(stop).await;
        if let Some(ledger) = ledger {
            ledger.close().await;
        }
        let stats = stats?;
        tracing::info!(?stats, "worker stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// A handler's timeout: `500ms`, `20s`, `2m`, more than zero.
fn parse_timeout(text: &str) -> Result<std::time::Duration> {
    let duration = super::parse_duration(text)?;
    if duration.is_zero() {
        bail!("`{}`: the timeout must be positive", text.trim());
    }
    Ok(duration)
}
