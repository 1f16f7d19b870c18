//! Liveness, readiness and metrics, served by every service on its admin listener:
//! `/health` (the process is up), `/ready` (every registered check passes: connected, caught
//! up, ...; 200 with status `degraded` while a check passes in a lesser way, such as the
//! registry away with every schema cached) and `/metrics` (Prometheus text). A listener answers from the moment it is bound
//! ([`Listening`]): while the service starts, `/ready` says what it is waiting for.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::IncomingStream;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::task::AbortOnDropHandle;

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
    /// Ready, but not fully: said in the report, not a reason for 503.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    degraded: bool,
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
        self.set(check, Check { ready: true, degraded: false, detail: detail.into() });
    }

    /// Marks `check` ready but degraded (registering it if new): `/ready` answers 200 with
    /// status `degraded` and this detail.
    pub fn degraded(&self, check: &'static str, detail: impl Into<String>) {
        self.set(check, Check { ready: true, degraded: true, detail: detail.into() });
    }

    /// Marks `check` not ready (registering it if new): `/ready` answers 503 until it passes.
    pub fn not_ready(&self, check: &'static str, detail: impl Into<String>) {
        self.set(check, Check { ready: false, degraded: false, detail: detail.into() });
    }

    pub fn is_ready(&self) -> bool {
        self.lock().values().all(|c| c.ready)
    }

    fn set(&self, name: &'static str, check: Check) {
        self.lock().insert(name, check);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Check>> {
        // The map stays consistent even if a holder panicked: every write is a single insert.
        self.checks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn report(&self) -> (bool, Report) {
        let checks = self.lock().clone();
        let ready = checks.values().all(|c| c.ready);
        let status = match (ready, checks.values().any(|c| c.degraded)) {
            (false, _) => "not_ready",
            (true, true) => "degraded",
            (true, false) => "ready",
        };
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

/// A listener served from the moment it is bound: by early routes while the service starts
/// (`/health`, `/ready` saying what it waits for, 503 for the rest), then, once
/// [`Listening::serve`] hands them over, by the service's own. A client connected early is
/// told to reconnect (`Connection: close` on every early answer), so no connection keeps the
/// early routes once the service is up. Dropped before it serves (a failed start), it stops.
#[derive(Debug)]
pub struct Listening {
    addr: SocketAddr,
    routes: Arc<OnceLock<Router>>,
    server: AbortOnDropHandle<std::io::Result<()>>,
}

impl Listening {
    /// Starts answering on `listener` with `early` until [`Listening::serve`], and stops at
    /// `shutdown` (letting in-flight requests finish).
    pub fn start(listener: TcpListener, early: Router, shutdown: Shutdown) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let routes = Arc::new(OnceLock::new());
        let early = early.layer(axum::middleware::map_response(close_connection));
        let staged = Staged { early, routes: Arc::clone(&routes) };
        let server = axum::serve(listener, staged).with_graceful_shutdown(async move { shutdown.wait().await });
        Ok(Self { addr, routes, server: AbortOnDropHandle::new(tokio::spawn(async move { server.await })) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every connection from now on gets `router`; returns once shutdown came and the
    /// connections drained.
    pub async fn serve(self, router: Router) -> std::io::Result<()> {
        // Set once: this consumes the only handle that could set it.
        let _ = self.routes.set(router);
        self.server.await.map_err(std::io::Error::other)?
    }
}

async fn close_connection(mut response: Response) -> Response {
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The routes of each new connection: the service's once handed over, the early ones before.
#[derive(Debug, Clone)]
struct Staged {
    early: Router,
    routes: Arc<OnceLock<Router>>,
}

impl<'a, L: axum::serve::Listener> tower::Service<IncomingStream<'a, L>> for Staged {
    type Response = Router;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Router, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: IncomingStream<'a, L>) -> Self::Future {
        std::future::ready(Ok(self.routes.get().unwrap_or(&self.early).clone()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// `GET path` on a connection of its own, asking to keep it alive unless `close`; the whole
    /// answer, once the server closes the connection (or after a second: then it kept it open).
    async fn fetch(addr: SocketAddr, path: &str, close: bool) -> std::io::Result<(String, bool)> {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let connection = if close { "close" } else { "keep-alive" };
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: {connection}\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut answer)).await.is_ok();
        Ok((String::from_utf8_lossy(&answer).into_owned(), closed))
    }

    #[tokio::test]
    async fn a_listener_answers_from_the_start_then_with_the_service_s_routes() {
        let health = Health::new("test");
        health.not_ready("started", "reading its state");
        let shutdown = Shutdown::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listening = Listening::start(listener, router(health.clone()), shutdown.clone()).unwrap();
        let addr = listening.local_addr();

        let (early, closed) = fetch(addr, "/ready", false).await.unwrap();
        assert!(early.starts_with("HTTP/1.1 503") && early.contains("reading its state"), "{early}");
        assert!(closed, "an early answer closes its connection, whatever the client asked: {early}");
        assert!(fetch(addr, "/digest", true).await.unwrap().0.starts_with("HTTP/1.1 404"));

        let service = router(health.clone()).route("/digest", get(|| async { "the digest" }));
        health.ready("started", "started");
        let serving = tokio::spawn(listening.serve(service));
        crate::testing::eventually("the service's routes", Duration::from_secs(5), || async {
            let (answer, _) = fetch(addr, "/digest", true).await.ok()?;
            answer.ends_with("the digest").then_some(())
        })
        .await;
        let (ready, closed) = fetch(addr, "/ready", false).await.unwrap();
        assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
        assert!(!closed, "the service's own answers keep connections alive: {ready}");

        shutdown.trigger();
        serving.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_listener_dropped_before_serving_stops_answering() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listening = Listening::start(listener, router(Health::new("test")), Shutdown::new()).unwrap();
        let addr = listening.local_addr();
        assert!(fetch(addr, "/health", true).await.unwrap().0.starts_with("HTTP/1.1 200"));
        drop(listening);
        crate::testing::eventually("the port to close", Duration::from_secs(5), || async {
            tokio::net::TcpStream::connect(addr).await.is_err().then_some(())
        })
        .await;
    }

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

    #[test]
    fn a_degraded_check_is_ready_and_says_so() {
        let health = Health::new("test");
        health.ready("kafka", "connected");
        health.degraded("registry", "unreachable; every schema cached");
        let (ready, report) = health.report();
        assert!(ready && health.is_ready());
        assert_eq!(report.status, "degraded");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["checks"]["registry"]["degraded"], true, "{json}");
        assert!(json["checks"]["kafka"].get("degraded").is_none(), "said only where it holds: {json}");
        health.not_ready("kafka", "gone");
        assert_eq!(health.report().1.status, "not_ready", "not ready outranks degraded");
        health.ready("kafka", "back");
        health.ready("registry", "answers");
        assert_eq!(health.report().1.status, "ready");
    }
}
