//! Configuration shared by every service, read from environment variables (or flags) with
//! defaults that work against the local infrastructure started by `just infra-up`.
//!
//! Every service flattens [`CommonConfig`] (Kafka, the topics, the schema registry, logs) into
//! its own `clap` struct beside its own settings, so `--help` lists every variable with its
//! default and a bad value fails fast with one clear line.

use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::kafka::topics::TopicsConfig;
use crate::registry::RegistryConfig;

/// The settings every service has.
#[derive(Debug, Clone, Args)]
pub struct CommonConfig {
    #[command(flatten)]
    pub kafka: KafkaConfig,

    #[command(flatten)]
    pub topics: TopicsConfig,

    #[command(flatten)]
    pub registry: RegistryConfig,

    #[command(flatten)]
    pub telemetry: TelemetryConfig,

    #[command(flatten)]
    pub shutdown: ShutdownConfig,
}

/// How to reach Kafka and how clients behave.
#[derive(Debug, Clone, Args)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list of Kafka brokers.
    #[arg(long = "kafka-bootstrap-servers", env = "KAFKA_BOOTSTRAP_SERVERS", default_value = "127.0.0.1:9092")]
    pub bootstrap_servers: String,

    /// How long startup waits for the brokers to answer before giving up.
    #[arg(long = "kafka-startup-timeout-ms", env = "KAFKA_STARTUP_TIMEOUT_MS", default_value_t = 15_000)]
    pub startup_timeout_ms: u64,

    /// Upper bound for a produced message to be acknowledged (retries included).
    #[arg(long = "kafka-message-timeout-ms", env = "KAFKA_MESSAGE_TIMEOUT_MS", default_value_t = 30_000)]
    pub message_timeout_ms: u64,

    /// Producer batching delay, 0 by default: every record this system sends has something
    /// waiting for it (a request, a batch's transaction), and a linger of 5 ms at each of a
    /// create's three sends made it 33 ms instead of 15 (BENCHMARKS.md). Under load, records
    /// batch anyway while earlier requests are in flight.
    #[arg(long = "kafka-linger-ms", env = "KAFKA_LINGER_MS", default_value_t = 0)]
    pub linger_ms: u64,

    /// Compression of produced batches: none, lz4, zstd, snappy or gzip.
    #[arg(long = "kafka-compression", env = "KAFKA_COMPRESSION", default_value = "lz4")]
    pub compression: String,

    /// A fetch waits for this much data (or `fetch-wait-max-ms`): fewer, fuller fetches.
    #[arg(long = "kafka-fetch-min-bytes", env = "KAFKA_FETCH_MIN_BYTES", default_value_t = 1)]
    pub fetch_min_bytes: u32,

    /// The longest a fetch waits for `fetch-min-bytes`: the latency it may add to a hop.
    #[arg(long = "kafka-fetch-wait-max-ms", env = "KAFKA_FETCH_WAIT_MAX_MS", default_value_t = 100)]
    pub fetch_wait_max_ms: u32,

    /// Consumer session timeout: a crashed consumer's partitions move after this long.
    #[arg(long = "kafka-session-timeout-ms", env = "KAFKA_SESSION_TIMEOUT_MS", default_value_t = 10_000)]
    pub session_timeout_ms: u64,

    /// How long a transaction may stay open before the broker aborts it (a writer that died
    /// mid-batch, and is not restarted, blocks `read_committed` readers at most this long).
    #[arg(long = "kafka-transaction-timeout-ms", env = "KAFKA_TRANSACTION_TIMEOUT_MS", default_value_t = 30_000)]
    pub transaction_timeout_ms: u64,

    /// How often stored consumer offsets are committed in the background.
    #[arg(long = "kafka-auto-commit-interval-ms", env = "KAFKA_AUTO_COMMIT_INTERVAL_MS", default_value_t = 1_000)]
    pub auto_commit_interval_ms: u64,

    /// A projection or a consumer group member that falls further behind than this turns
    /// `/ready` 503 (the age of the newest record applied in a partition with more to read, or
    /// of the oldest message in hand); it is ready again once less than half as far behind.
    #[arg(long = "ready-max-lag-secs", env = "READY_MAX_LAG_SECS", default_value_t = 30)]
    pub ready_max_lag_secs: u64,

    /// Tries of a message whose handling fails in a way that may pass (not an outage of Kafka
    /// or the registry, which is waited out however long it lasts) before it goes to the
    /// dead-letter topic: with the backoff of 0.1 s doubling up to 10 s, 8 tries take about
    /// 25 s.
    #[arg(long = "consumer-retry-attempts", env = "CONSUMER_RETRY_ATTEMPTS", default_value_t = 8)]
    pub consumer_retry_attempts: u32,

    /// librdkafka's debug contexts for every client (e.g. `cgrp,eos,broker`), logged at debug
    /// level under the `librdkafka` target (`RUST_LOG=librdkafka=debug`); empty: none.
    #[arg(long = "kafka-debug", env = "KAFKA_DEBUG", default_value = "")]
    pub debug: String,
}

impl KafkaConfig {
    /// The section alone, read from the environment with its defaults (tests and tools).
    pub fn from_env() -> Result<Self, clap::Error> {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            kafka: KafkaConfig,
        }
        <Only as clap::Parser>::try_parse_from(["kafka"]).map(|only| only.kafka)
    }

    pub fn startup_timeout(&self) -> Duration {
        Duration::from_millis(self.startup_timeout_ms)
    }

    pub fn message_timeout(&self) -> Duration {
        Duration::from_millis(self.message_timeout_ms)
    }
}

/// The caps on one CSV record, for the gateway's check of an upload's start and the import
/// worker's parser: both hold at most one record within them, whatever a file holds.
#[derive(Debug, Clone, Copy, Args)]
pub struct CsvLimitsConfig {
    /// A CSV row longer than this (bytes of its fields) is rejected: the row, or the file if it
    /// is the header.
    #[arg(long = "csv-max-line-bytes", env = "CSV_MAX_LINE_BYTES", default_value_t = 64 * 1024)]
    pub max_line_bytes: usize,

    /// A CSV row with a field longer than this is rejected.
    #[arg(long = "csv-max-field-bytes", env = "CSV_MAX_FIELD_BYTES", default_value_t = 8 * 1024)]
    pub max_field_bytes: usize,

    /// A CSV row with more fields than this is rejected.
    #[arg(long = "csv-max-columns", env = "CSV_MAX_COLUMNS", default_value_t = 256)]
    pub max_columns: usize,
}

impl CsvLimitsConfig {
    pub fn limits(&self) -> domain::import_file::Limits {
        domain::import_file::Limits {
            max_line_bytes: self.max_line_bytes.max(1),
            max_field_bytes: self.max_field_bytes.max(1),
            max_columns: self.max_columns.max(1),
        }
    }
}

/// How a process stops.
#[derive(Debug, Clone, Copy, Args)]
pub struct ShutdownConfig {
    /// Seconds a process has, from SIGTERM or Ctrl-C, to stop taking work, finish what it holds,
    /// commit and flush. Past it, it exits with code 1 and what it had not committed is
    /// delivered again after a restart (nothing is lost). Keep it under the orchestrator's grace
    /// period (Kubernetes: 30 s; compose's `stop_grace_period`).
    #[arg(long = "shutdown-drain-secs", env = "SHUTDOWN_DRAIN_SECS", default_value_t = 20)]
    pub drain_secs: u64,
}

impl ShutdownConfig {
    pub fn drain(&self) -> Duration {
        Duration::from_secs(self.drain_secs)
    }
}

/// Log output and span export.
#[derive(Debug, Clone, Args)]
pub struct TelemetryConfig {
    /// `text` for people, `json` for log shippers. Filter with `RUST_LOG`.
    #[arg(long = "log-format", env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Where to export spans over OTLP (HTTP/protobuf; `/v1/traces` is appended), e.g.
    /// `http://127.0.0.1:4318`. Unset or empty: no span leaves the process (trace context is
    /// still passed on in HTTP and Kafka headers, and trace ids still appear in the logs).
    #[arg(long = "otlp-endpoint", env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_parser = otlp_endpoint)]
    pub otlp_endpoint: Option<String>,
}

impl TelemetryConfig {
    /// The OTLP endpoint, if one is set.
    pub fn otlp_endpoint(&self) -> Option<&str> {
        self.otlp_endpoint.as_deref().map(str::trim).filter(|e| !e.is_empty())
    }
}

/// An `http://` or `https://` URL with a host, or nothing.
fn otlp_endpoint(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(String::new());
    }
    let uri: axum::http::Uri = value.parse().map_err(|e| format!("not a URL: {e}"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(value.to_owned()),
        _ => Err("an http:// or https:// URL with a host is needed, such as http://127.0.0.1:4318".into()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        kafka: KafkaConfig,
    }

    #[test]
    fn a_malformed_number_is_refused_naming_the_value_and_the_setting() {
        let err = Probe::try_parse_from(["probe", "--kafka-linger-ms", "soon"]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("'soon'"), "{text}");
        assert!(text.contains("kafka-linger-ms"), "{text}");
    }

    #[test]
    fn an_otlp_endpoint_is_a_url_or_nothing() {
        #[derive(Debug, Parser)]
        struct Telemetry {
            #[command(flatten)]
            telemetry: TelemetryConfig,
        }
        let parse = |value: &str| Telemetry::try_parse_from(["probe", "--otlp-endpoint", value]);
        assert_eq!(parse("http://jaeger:4318").unwrap().telemetry.otlp_endpoint(), Some("http://jaeger:4318"));
        assert_eq!(parse("").unwrap().telemetry.otlp_endpoint(), None);
        for bad in ["jaeger:4318", "ftp://x", "http://"] {
            let text = parse(bad).unwrap_err().to_string();
            assert!(text.contains("otlp-endpoint"), "{bad}: {text}");
        }
    }

    #[test]
    fn every_setting_has_a_default() {
        assert!(KafkaConfig::from_env().is_ok());
    }
}
