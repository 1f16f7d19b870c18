//! api-gateway's configuration: environment variables (or flags), each with a local default.

use std::net::SocketAddr;

use clap::Parser;
use platform::kafka::topics::TopicsConfig;
use platform::{KafkaConfig, TelemetryConfig};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "api-gateway",
    version,
    about = "The public HTTP API of the user-management system"
)]
pub struct Config {
    /// Where the public HTTP API is served.
    #[arg(long, env = "GATEWAY_HTTP_ADDR", default_value = "127.0.0.1:8000")]
    pub http_addr: SocketAddr,

    /// Where /health, /ready and /metrics are served (also answered on the public port).
    #[arg(long, env = "GATEWAY_ADMIN_ADDR", default_value = "127.0.0.1:9100")]
    pub admin_addr: SocketAddr,

    /// Requests taking longer are answered 408 and cancelled.
    #[arg(long, env = "GATEWAY_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,

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
