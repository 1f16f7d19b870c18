//! Exports users to CSV from its own projection of user events, written in parallel.
//!
//! Its role: a projection rebuilt from the user-events topic on start, exports written to shared
//! blob storage (arrives with the export issue). So far it starts, checks Kafka, ensures the
//! topics, serves its admin endpoints and stops cleanly.
//!
//! - [`config`]: environment configuration;
//! - [`Application`]: startup (Kafka checked, topics ensured, admin listener bound) and the
//!   run loop until SIGTERM/Ctrl-C.

pub mod config;

use std::net::SocketAddr;

use platform::Shutdown;
use platform::service::ServiceBase;

pub use config::Config;

/// A started export-worker.
#[derive(Debug)]
pub struct Application {
    base: ServiceBase,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let base =
            ServiceBase::build("export-worker", config.admin_addr, &config.kafka, &config.topics, &config.registry)
                .await?;
        Ok(Self { base })
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.base.admin_addr()
    }

    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        self.base.serve_until_stopped(shutdown).await
    }
}

/// Builds and runs until shutdown (the binary's body).
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    Application::build(config).await?.run_until_stopped(shutdown).await
}
