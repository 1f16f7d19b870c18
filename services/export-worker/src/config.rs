//! export-worker's configuration: environment variables (or flags), each with a local default.

use std::net::SocketAddr;

use clap::Parser;
use platform::CommonConfig;
use platform::blobs::BlobConfig;

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

    /// The consumer group reading export requests.
    #[arg(long, env = "EXPORT_WORKER_CONSUMER_GROUP", default_value = "export-worker")]
    pub consumer_group: String,

    /// Rows serialised per parallel task (files are written in waves of 16 such chunks).
    #[arg(long, env = "EXPORT_WORKER_CHUNK_ROWS", default_value_t = 8_192)]
    pub chunk_rows: usize,

    /// How often progress is published while an export runs.
    #[arg(long, env = "EXPORT_WORKER_PROGRESS_INTERVAL_MS", default_value_t = 500)]
    pub progress_interval_ms: u64,

    /// How long an export waits for its projection to reach the requester's position before
    /// the request is retried.
    #[arg(long, env = "EXPORT_WORKER_CATCH_UP_TIMEOUT_MS", default_value_t = 30_000)]
    pub catch_up_timeout_ms: u64,

    /// Finished export files are removed this long after they were written.
    #[arg(long, env = "EXPORT_WORKER_RETENTION_SECS", default_value_t = 86_400)]
    pub retention_secs: u64,

    /// A finished export (its status) is forgotten this long after it finished.
    #[arg(long, env = "EXPORT_WORKER_JOB_RETENTION_SECS", default_value_t = 7 * 86_400)]
    pub job_retention_secs: u64,

    #[command(flatten)]
    pub blobs: BlobConfig,

    #[command(flatten)]
    pub common: CommonConfig,
}
