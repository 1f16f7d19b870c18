//! import-worker's configuration: environment variables (or flags), each with a local default.

use std::net::SocketAddr;

use clap::Parser;
use platform::avro::RegistryConfig;
use platform::kafka::topics::TopicsConfig;
use platform::{KafkaConfig, TelemetryConfig};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "import-worker",
    version,
    about = "Imports users from uploaded CSV files: parallel parsing and validation, per-row errors, progress."
)]
pub struct Config {
    /// Where /health, /ready and /metrics are served.
    #[arg(long, env = "IMPORT_WORKER_ADMIN_ADDR", default_value = "127.0.0.1:9102")]
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
