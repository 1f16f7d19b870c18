//! import-worker's configuration: environment variables (or flags), each with a local default.

use std::net::SocketAddr;

use clap::Parser;
use platform::CommonConfig;
use platform::blobs::BlobConfig;
use platform::config::CsvLimitsConfig;

#[derive(Debug, Clone, Parser)]
#[command(name = "import-worker", version, about = "Imports users from uploaded CSV files")]
pub struct Config {
    /// Where /health, /ready and /metrics are served.
    #[arg(long, env = "IMPORT_WORKER_ADMIN_ADDR", default_value = "127.0.0.1:9102")]
    pub admin_addr: SocketAddr,

    /// The consumer group reading import requests.
    #[arg(long, env = "IMPORT_WORKER_CONSUMER_GROUP", default_value = "import-worker")]
    pub consumer_group: String,

    /// Rows per command sent to user-service (each row keeps its own command id).
    #[arg(long, env = "IMPORT_WORKER_BATCH_ROWS", default_value_t = 500)]
    pub batch_rows: usize,

    /// Rows parsed and validated together, in parallel.
    #[arg(long, env = "IMPORT_WORKER_CHUNK_ROWS", default_value_t = 16_384)]
    pub chunk_rows: usize,

    /// Rows sent and not yet answered before reading pauses (bounds memory).
    #[arg(long, env = "IMPORT_WORKER_MAX_IN_FLIGHT_ROWS", default_value_t = 200_000)]
    pub max_in_flight_rows: usize,

    /// A finished import (its status and error report) is forgotten this long after it
    /// finished.
    #[arg(long, env = "IMPORT_WORKER_JOB_RETENTION_SECS", default_value_t = 7 * 86_400)]
    pub job_retention_secs: u64,

    /// How often progress is published while an import runs.
    #[arg(long, env = "IMPORT_WORKER_PROGRESS_INTERVAL_MS", default_value_t = 500)]
    pub progress_interval_ms: u64,

    /// An import with rows sent and no answer from user-service for this long ends `failed`
    /// (user-service down or stuck), instead of waiting with no end.
    #[arg(long, env = "IMPORT_WORKER_REPLY_TIMEOUT_SECS", default_value_t = 120)]
    pub reply_timeout_secs: u64,

    #[command(flatten)]
    pub csv: CsvLimitsConfig,

    #[command(flatten)]
    pub blobs: BlobConfig,

    #[command(flatten)]
    pub common: CommonConfig,
}
