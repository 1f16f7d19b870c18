//! user-service's configuration: environment variables (or flags), each with a local default.

use std::net::SocketAddr;

use clap::Parser;
use platform::kafka::topics::TopicsConfig;
use platform::{KafkaConfig, TelemetryConfig};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "user-service",
    version,
    about = "The owner of user state: consumes user commands, enforces the rules, emits events and replies."
)]
pub struct Config {
    /// Where /health, /ready and /metrics are served.
    #[arg(long, env = "USER_SERVICE_ADMIN_ADDR", default_value = "127.0.0.1:9101")]
    pub admin_addr: SocketAddr,

    #[command(flatten)]
    pub kafka: KafkaConfig,

    #[command(flatten)]
    pub topics: TopicsConfig,

    #[command(flatten)]
    pub telemetry: TelemetryConfig,
}

impl platform::service::ServiceConfig for Config {
    fn telemetry(&self) -> &TelemetryConfig {
        &self.telemetry
    }
}
