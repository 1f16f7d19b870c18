//! export-worker's configuration: environment variables (or flags), each with a local default.

use std::net::SocketAddr;

use clap::Parser;
use platform::avro::RegistryConfig;
use platform::kafka::topics::TopicsConfig;
use platform::{KafkaConfig, TelemetryConfig};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "export-worker",
    version,
    about = "Exports users to CSV from its own projection of user events, written in parallel."
)]
pub struct Config {
    /// Where /health, /ready and /metrics are served.
    #[arg(long, env = "EXPORT_WORKER_ADMIN_ADDR", default_value = "127.0.0.1:9103")]
    pub admin_addr: SocketAddr,

    #[command(flatten)]
    pub kafka: KafkaConfig,

    #[command(flatten)]
    pub topics: TopicsConfig,

    #[command(flatten)]
    pub registry: RegistryConfig,

    #[command(flatten)]
    pub telemetry: TelemetryConfig,
}

impl platform::service::ServiceConfig for Config {
    fn telemetry(&self) -> &TelemetryConfig {
        &self.telemetry
    }
}
