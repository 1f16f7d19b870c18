//! Liveness, readiness and metrics, served by every service on its admin listener:
//! `/health` (the process is up), `/ready` (every registered check passes: connected, caught
//! up, ...) and `/metrics` (Prometheus text).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::shutdown::Shutdown;

/// Named readiness checks. Cloning shares the same set.
#[derive(Debug, Clone)]
pub struct Health {
    service: &'static str,
    checks: Arc<Mutex<BTreeMap<&'static str, Check>>>,
}

#[derive(Debug, Clone, Serialize)]
struct Check {
    ready: bool,
    detail: String,
}

#[derive(Debug, Serialize)]
struct Report {
    service: &'static str,
    status: &'static str,
    checks: BTreeMap<&'static str, Check>,
}

impl Health {
    pub fn new(service: &'static str) -> Self {
        Self { service, checks: Arc::default() }
    }

    pub fn service(&self) -> &'static str {
        self.service
    }

    /// Marks `check` ready (registering it if new).
    pub fn ready(&self, check: &'static str, detail: impl Into<String>) {
        self.set(check, true, detail.into());
    }

    /// Marks `check` not ready (registering it if new): `/ready` answers 503 until it passes.
    pub fn not_ready(&self, check: &'static str, detail: impl Into<String>) {
        self.set(check, false, detail.into());
    }

    pub fn is_ready(&self) -> bool {
        self.lock().values().all(|c| c.ready)
    }

    fn set(&self, check: &'static str, ready: bool, detail: String) {
        self.lock().insert(check, Check { ready, detail });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Check>> {
        // The map stays consistent even if a holder panicked: every write is a single insert.
        self.checks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn report(&self) -> (bool, Report) {
        let checks = self.lock().clone();
        let ready = checks.values().all(|c| c.ready);
        let status = if ready { "ready" } else { "not_ready" };
        (ready, Report { service: self.service, status, checks })
    }
}

/// `/health`, `/ready` and `/metrics`.
pub fn router(health: Health) -> Router {
    Router::new()
        .route("/health", get(live))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(health)
}

/// Only `/health`: what a public listener answers without credentials (readiness and metrics
/// stay on the admin listener).
pub fn liveness_router(health: Health) -> Router {
    Router::new().route("/health", get(live)).with_state(health)
}

async fn live(State(health): State<Health>) -> impl IntoResponse {
    Json(serde_json::json!({ "service": health.service(), "status": "ok" }))
}

async fn ready(State(health): State<Health>) -> impl IntoResponse {
    let (ready, report) = health.report();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(report))
}

async fn metrics() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], crate::telemetry::render())
}

/// Serves `router` on `listener` until `shutdown`, then lets in-flight requests finish.
pub async fn serve(listener: TcpListener, router: Router, shutdown: Shutdown) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(async move { shutdown.wait().await }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_check_passes() {
        let health = Health::new("test");
        assert!(health.is_ready(), "no checks registered yet");
        health.not_ready("kafka", "connecting");
        health.ready("projection", "caught up");
        assert!(!health.is_ready());
        health.ready("kafka", "connected");
        assert!(health.is_ready());
    }
}
