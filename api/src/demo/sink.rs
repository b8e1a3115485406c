//! The demo company's chat bridge: a webhook receiver on a local port that checks each
//! notification's signature and counts what arrived, so the story can tell what reached people.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context as _, Result};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

use crate::server::notify::signature;

/// The secret the demo's webhook and its receiver share.
pub(super) const SECRET: &str = "the demo company's chat bridge secret";

/// What the receiver got: (kind, id) in arrival order, and any request it refused.
#[derive(Debug, Default)]
pub(super) struct Received {
    pub(super) accepted: Vec<(String, String)>,
    pub(super) refused: usize,
}

/// A running receiver and what it received.
#[derive(Clone)]
pub(super) struct Sink {
    received: Arc<Mutex<Received>>,
    /// Where it listens.
    pub(super) url: String,
}

impl Sink {
    /// Starts the receiver on a free local port.
    pub(super) async fn start() -> Result<Sink> {
        let received = Arc::new(Mutex::new(Received::default()));
        let router = axum::Router::new().route("/chat", post(receive)).with_state(Arc::clone(&received));
        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.context("no local port for the demo's chat bridge")?;
        let url = format!("http://{}/chat", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(Sink { received, url })
    }

    /// How many of each kind arrived, with a valid signature.
    pub(super) fn counts(&self) -> BTreeMap<String, usize> {
        let received = self.received.lock().unwrap_or_else(PoisonError::into_inner);
        let mut counts = BTreeMap::new();
        for (kind, _) in &received.accepted {
            *counts.entry(kind.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// Requests refused for a bad signature.
    pub(super) fn refused(&self) -> usize {
        self.received.lock().unwrap_or_else(PoisonError::into_inner).refused
    }

    /// Notifications that arrived more than once (the same id).
    pub(super) fn duplicates(&self) -> usize {
        let received = self.received.lock().unwrap_or_else(PoisonError::into_inner);
        let mut ids: Vec<&str> = received.accepted.iter().map(|(_, id)| id.as_str()).collect();
        let all = ids.len();
        ids.sort_unstable();
        ids.dedup();
        all - ids.len()
    }
}

/// Accepts a notification whose signature checks; refuses (401) any other.
async fn receive(State(received): State<Arc<Mutex<Received>>>, headers: HeaderMap, body: String) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let signed = header("x-cloverleaf-signature");
    let timestamp = signed.strip_prefix("t=").and_then(|s| s.split(',').next()).and_then(|t| t.parse::<i64>().ok());
    let mut received = received.lock().unwrap_or_else(PoisonError::into_inner);
    match timestamp {
        Some(t) if signature(SECRET, t, &body) == signed => {
            received.accepted.push((header("x-cloverleaf-kind"), header("x-cloverleaf-id")));
            StatusCode::NO_CONTENT
        }
        _ => {
            received.refused += 1;
            StatusCode::UNAUTHORIZED
        }
    }
}
