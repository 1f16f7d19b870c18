//! The registry's configuration: environment variables (or flags), each with a local default.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use platform::{KafkaConfig, ShutdownConfig, TelemetryConfig};

use crate::schema::Level;

#[derive(Debug, Clone, Parser)]
#[command(name = "schema-registry", version, about = "A Confluent-compatible Avro Schema Registry backed by Kafka")]
pub struct Config {
    /// Where the REST API (and /health, /ready, /metrics) is served.
    #[arg(long, env = "SCHEMA_REGISTRY_HTTP_ADDR", default_value = "127.0.0.1:8081")]
    pub http_addr: SocketAddr,

    /// The compacted topic holding every schema and setting (Confluent's name).
    #[arg(long, env = "SCHEMA_REGISTRY_KAFKASTORE_TOPIC", default_value = "_schemas")]
    pub kafkastore_topic: String,

    /// The compatibility level of subjects without one of their own, until PUT /config sets it.
    #[arg(long, env = "SCHEMA_REGISTRY_COMPATIBILITY_LEVEL", default_value = "backward", value_parser = parse_level)]
    pub compatibility_level: Level,

    /// Replication factor of the schemas topic when it has to be created.
    #[arg(long, env = "KAFKA_TOPIC_REPLICATION_FACTOR", default_value_t = 1)]
    pub replication_factor: i32,

    /// A file holding the admin token. When set, deleting schemas or subjects and changing
    /// compatibility settings need `Authorization: Bearer <token>` (or Basic with the token as
    /// password); registering and reading stay open to the services.
    #[arg(long, env = "SCHEMA_REGISTRY_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,

    #[command(flatten)]
    pub kafka: KafkaConfig,

    #[command(flatten)]
    pub telemetry: TelemetryConfig,

    #[command(flatten)]
    pub shutdown: ShutdownConfig,
}

fn parse_level(text: &str) -> Result<Level, String> {
    text.parse()
}
