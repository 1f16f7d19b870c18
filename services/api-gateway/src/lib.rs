//! The public HTTP API of the user-management system (axum).
//!
//! Requests become Avro commands on Kafka; reads are answered from the gateway's own projection
//! of user events. So far it serves the health endpoints and problem+json errors; the user,
//! import and export resources arrive with their issues.
//!
//! - [`config`]: environment configuration;
//! - [`http`]: the public router;
//! - [`error`]: the problem+json error type;
//! - [`Application`]: startup and the run loop until SIGTERM/Ctrl-C.

pub mod config;
pub mod error;
pub mod http;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use platform::Shutdown;
use platform::service::ServiceBase;
use tokio::net::TcpListener;

pub use config::Config;

/// A started gateway: both listeners bound, Kafka reachable.
#[derive(Debug)]
pub struct Application {
    base: ServiceBase,
    listener: TcpListener,
    config: Config,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("cannot listen on {} (public API)", config.http_addr))?;
        let base = ServiceBase::build("api-gateway", config.admin_addr, &config.kafka, &config.topics).await?;
        tracing::info!("api listening on http://{}", listener.local_addr()?);
        Ok(Self { base, listener, config })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.base.admin_addr()
    }

    /// Serves until shutdown: stops accepting, finishes in-flight requests, flushes Kafka.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        let api = platform::health::serve(
            self.listener,
            http::router(self.base.health.clone(), timeout),
            shutdown.clone(),
        );
        let (api, admin) = tokio::join!(api, self.base.serve_until_stopped(shutdown));
        api.context("public API server failed")?;
        admin
    }
}

/// Builds and runs until shutdown (the binary's body).
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    Application::build(config).await?.run_until_stopped(shutdown).await
}
