//! The HTTP API: definitions, instances, messages, the task inbox, the external-job API,
//! incidents, metrics and reports, over one [`Engine`].
//!
//! [`app`] builds the router from an [`AppState`], so tests call it with
//! `tower::ServiceExt::oneshot` and no socket; [`serve`] runs it on a listener with the timer
//! scheduler beside it until SIGINT or SIGTERM.
//!
//! Conventions: JSON in and out; money as decimal strings (`"1234.50"`); times RFC 3339; every
//! error as `{"error": {"code", "message", "details"}}` (see [`error`]). Ids go into a path as
//! they are (`/v1/tasks/i-x-1.task.2/claim`); an id from a store written before ids were safe in
//! a URL path holds `/` and is sent percent-encoded (`i-x-1%2Ftask%2F2`).

pub mod access;
pub mod alerts;
pub mod auth;
pub(crate) mod budgets;
pub mod config;
pub(crate) mod definitions;
pub mod error;
pub mod extract;
mod incidents;
mod instances;
mod jobs;
mod kpis;
mod messages;
pub mod metrics;
pub mod migrations;
pub mod notify;
pub mod openapi;
mod ops;
pub(crate) mod reports;
pub mod run;
pub(crate) mod tasks;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::middleware;
use axum::routing::{get, post, put};
use cloverleaf_engine::Engine;
use cloverleaf_engine::store::AnyStore;
use cloverleaf_finance::Ledger;

pub use run::{ServeOptions, redacted, serve};

use config::Users;
use error::ApiError;
use metrics::RequestMetrics;

/// What every handler shares: a cheap-to-clone handle.
#[derive(Clone)]
pub struct AppState {
    shared: Arc<Shared>,
}

struct Shared {
    engine: Engine<AnyStore>,
    users: Users,
    ledger: Option<Ledger>,
    /// The alert rules, replaced whole when the files are loaded again.
    rules: std::sync::RwLock<Arc<Vec<cloverleaf_dsl::rules::Rule>>>,
    requests: RequestMetrics,
    long_polls: LongPolls,
    session_key: [u8; 32],
    sign_in: crate::web::throttle::Throttle,
    /// Password checks running at once: each takes tens of milliseconds and 19 MiB, so a burst
    /// of sign-ins waits its turn instead of filling the blocking pool and the memory.
    password_checks: tokio::sync::Semaphore,
    /// The titles of the roles the deployed processes use, and when they were read.
    role_titles: tokio::sync::Mutex<Option<(std::time::Instant, Arc<RoleTitles>)>>,
}

/// Role titles by role name, as the deployed processes' roles blocks give them.
pub type RoleTitles = std::collections::BTreeMap<String, cloverleaf_dsl::model::RoleTitle>;

/// How long the deployed role titles are used before they are read again: another node's
/// deployment reaches this node's pages within it.
const ROLE_TITLES_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// The long polls of `fetch-and-lock` that are waiting, and the signal that ends them at shutdown.
struct LongPolls {
    waiting: std::sync::atomic::AtomicUsize,
    stopping: tokio::sync::watch::Sender<bool>,
}

/// Counts a long poll as waiting while it lives.
pub(crate) struct WaitingPoll<'a>(&'a LongPolls);

impl Drop for WaitingPoll<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl AppState {
    /// State over an open engine and the configured users, without a sub-ledger (the KPI report
    /// then leaves its finance figures out).
    pub fn new(engine: Engine<AnyStore>, users: Users) -> AppState {
        AppState::build(engine, users, None)
    }

    /// State with the finance sub-ledger the built-in handlers post to.
    pub fn with_ledger(engine: Engine<AnyStore>, users: Users, ledger: Ledger) -> AppState {
        AppState::build(engine, users, Some(ledger))
    }

    fn build(engine: Engine<AnyStore>, users: Users, ledger: Option<Ledger>) -> AppState {
        let long_polls = LongPolls { waiting: 0.into(), stopping: tokio::sync::watch::Sender::new(false) };
        // Sessions of the pages are signed with a key of this process: they end when it stops.
        let mut session_key = [0u8; 32];
        if getrandom::fill(&mut session_key).is_err() {
            tracing::error!("no randomness from the operating system: page sessions use a weak key");
            session_key = *b"cloverleaf-fallback-session-key!";
        }
        let requests = RequestMetrics::default();
        let rules = std::sync::RwLock::new(Arc::new(Vec::new()));
        let sign_in = crate::web::throttle::Throttle::default();
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        let password_checks = tokio::sync::Semaphore::new(cores);
        AppState {
            shared: Arc::new(Shared {
                engine,
                users,
                ledger,
                rules,
                requests,
                long_polls,
                session_key,
                sign_in,
                password_checks,
                role_titles: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// Ends every waiting long poll (each answers with what it has, usually nothing) and makes
    /// new ones answer at once: called when the server begins to shut down, so that no worker's
    /// poll holds the process up.
    pub fn stop_long_polls(&self) {
        self.shared.long_polls.stopping.send_replace(true);
    }

    /// How many `fetch-and-lock` long polls are waiting for a job right now.
    pub fn long_polls_waiting(&self) -> usize {
        self.shared.long_polls.waiting.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Marks a long poll as waiting until the guard drops; the receiver tells it when to stop.
    pub(crate) fn wait_for_jobs(&self) -> (WaitingPoll<'_>, tokio::sync::watch::Receiver<bool>) {
        let polls = &self.shared.long_polls;
        polls.waiting.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        (WaitingPoll(polls), polls.stopping.subscribe())
    }

    /// The alert rules in force.
    pub fn rules(&self) -> Arc<Vec<cloverleaf_dsl::rules::Rule>> {
        Arc::clone(&self.shared.rules.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Puts `rules` in force (checked ones: see [`alerts::load_rules`]).
    pub fn set_rules(&self, rules: Vec<cloverleaf_dsl::rules::Rule>) {
        *self.shared.rules.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(rules);
    }

    /// The sub-ledger, when the server has one.
    pub fn ledger(&self) -> Option<&Ledger> {
        self.shared.ledger.as_ref()
    }

    /// Today on the books' clock ([`Ledger::book_date`]): the day the finance figures are taken
    /// on when a reader names none. UTC without a sub-ledger.
    pub async fn books_today(&self) -> Result<chrono::NaiveDate, error::ApiError> {
        let now = self.engine().now();
        match self.ledger() {
            Some(ledger) => ledger.book_date(now).await.map_err(error::ApiError::internal),
            None => Ok(now.date_naive()),
        }
    }

    /// The titles of the roles the deployed processes use (the latest version of each process
    /// last), read again after 30 s or a deployment on this node; what was read
    /// before, or nothing, when the deployments cannot be read.
    pub async fn role_titles(&self) -> Arc<RoleTitles> {
        let mut held = self.shared.role_titles.lock().await;
        if let Some((at, titles)) = held.as_ref()
            && at.elapsed() < ROLE_TITLES_FOR
        {
            return Arc::clone(titles);
        }
        let read = async {
            let mut titles = RoleTitles::new();
            let mut deployments = cloverleaf_engine::store::Queries::deployments(self.engine().store()).await?;
            deployments.sort_by_key(|d| d.version);
            for d in deployments {
                let definition = self.engine().definition(&d.key, d.version).await?;
                titles.extend(definition.role_titles.iter().map(|(role, title)| (role.clone(), title.clone())));
            }
            Ok::<_, cloverleaf_engine::runtime::Error>(titles)
        }
        .await;
        let titles = match read {
            Ok(titles) => Arc::new(titles),
            Err(error) => {
                tracing::warn!(%error, "the deployed role titles could not be read");
                held.as_ref().map_or_else(Default::default, |(_, titles)| Arc::clone(titles))
            }
        };
        *held = Some((std::time::Instant::now(), Arc::clone(&titles)));
        titles
    }

    /// Forgets the role titles read, so that the next page reads those just deployed.
    pub async fn forget_role_titles(&self) {
        *self.shared.role_titles.lock().await = None;
    }

    /// The engine.
    pub fn engine(&self) -> &Engine<AnyStore> {
        &self.shared.engine
    }

    /// The users.
    pub fn users(&self) -> &Users {
        &self.shared.users
    }

    /// The key page sessions are signed with.
    pub(crate) fn session_key(&self) -> &[u8; 32] {
        &self.shared.session_key
    }

    /// The brake on password guessing at sign-in.
    pub(crate) fn sign_in_throttle(&self) -> &crate::web::throttle::Throttle {
        &self.shared.sign_in
    }

    /// The permits for password checks running at once.
    pub(crate) fn password_checks(&self) -> &tokio::sync::Semaphore {
        &self.shared.password_checks
    }

    fn requests(&self) -> &RequestMetrics {
        &self.shared.requests
    }
}

/// The router with every route, authentication and request metrics.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route(
            "/v1/definitions",
            post(definitions::deploy).layer(DefaultBodyLimit::max(definitions::MAX_SOURCE)).get(definitions::list),
        )
        .route("/v1/definitions/{key}", get(definitions::get))
        .route("/v1/definitions/{key}/graph", get(definitions::graph))
        .route("/v1/definitions/{key}/migrations", post(migrations::migrate))
        .route("/v1/instances", post(instances::start).get(instances::list))
        .route("/v1/instances/{id}", get(instances::get))
        .route("/v1/instances/{id}/history", get(instances::history))
        .route("/v1/instances/{id}/cancel", post(instances::cancel))
        .route("/v1/instances/{id}/modifications", post(instances::modify))
        .route("/v1/messages", post(messages::correlate))
        .route("/v1/tasks", get(tasks::inbox))
        .route("/v1/tasks/{id}", get(tasks::get))
        .route("/v1/tasks/{id}/claim", post(tasks::claim))
        .route("/v1/tasks/{id}/unclaim", post(tasks::unclaim))
        .route("/v1/tasks/{id}/complete", post(tasks::complete))
        .route("/v1/tasks/{id}/delegate", post(tasks::delegate))
        .route("/v1/users/me/substitute", get(tasks::my_substitute).put(tasks::substitute))
        .route("/v1/jobs/fetch-and-lock", post(jobs::fetch_and_lock))
        .route("/v1/jobs/{id}/complete", post(jobs::complete))
        .route("/v1/jobs/{id}/fail", post(jobs::fail))
        .route("/v1/jobs/{id}/error", post(jobs::error))
        .route("/v1/jobs/{id}/extend-lock", post(jobs::extend_lock))
        .route("/v1/incidents", get(incidents::list))
        .route("/v1/incidents/{id}/retry", post(incidents::retry))
        .route("/v1/notifications", get(notify::list))
        .route("/v1/notifications/{id}/retry", post(notify::retry))
        .route("/v1/outbox", get(notify::outbox::list))
        .route("/v1/outbox/{id}/retry", post(notify::outbox::retry))
        .route("/v1/alerts", get(alerts::list))
        .route("/v1/alerts/evaluate", post(alerts::evaluate_now))
        .route("/v1/alerts/{id}/acknowledge", post(alerts::acknowledge))
        .route("/v1/kpis", get(kpis::catalogue))
        .route("/v1/kpis/{key}", get(kpis::one))
        .route("/v1/kpis/{key}/history", get(kpis::history))
        .route("/v1/reports/kpis", get(reports::kpis))
        .route("/v1/reports/stored/{id}", get(reports::stored))
        .route("/v1/reports/aging", get(reports::aging))
        .route("/v1/reports/gross-profit", get(reports::gross_profit))
        .route("/v1/reports/trial-balance", get(reports::trial_balance))
        .route("/v1/budgets", get(budgets::list))
        .route("/v1/budgets/{cost_centre}/{period}", put(budgets::set))
        .merge(crate::web::router(state.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(middleware::from_fn(extract::refuse_nul))
        .layer(middleware::from_fn_with_state(state.clone(), metrics::track))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::missing("route", uri.path(), format!("no route `{}`", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("`{method}` is not allowed on `{}`", uri.path()),
    )
}
