//! api-gateway's configuration: environment variables (or flags), each with a local default.

use std::net::SocketAddr;

use auth::AuthConfig;
use clap::{Args, Parser};
use platform::CommonConfig;
use platform::blobs::BlobConfig;
use platform::config::CsvLimitsConfig;

#[derive(Debug, Clone, Parser)]
#[command(name = "api-gateway", version, about = "The public HTTP API of the user-management system")]
pub struct Config {
    /// Where the public HTTP API is served.
    #[arg(long, env = "GATEWAY_HTTP_ADDR", default_value = "127.0.0.1:8000")]
    pub http_addr: SocketAddr,

    /// Where /health, /ready and /metrics are served (the public port answers /health only).
    #[arg(long, env = "GATEWAY_ADMIN_ADDR", default_value = "127.0.0.1:9100")]
    pub admin_addr: SocketAddr,

    /// Requests taking longer are answered 408 and cancelled (uploads have their own bound).
    #[arg(long, env = "GATEWAY_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,

    #[command(flatten)]
    pub limits: LimitsConfig,

    /// How long a write waits for user-service's outcome (and this gateway's projection) before
    /// answering 202 with a status URL.
    #[arg(long, env = "GATEWAY_COMMAND_TIMEOUT_MS", default_value_t = 5_000)]
    pub command_timeout_ms: u64,

    /// How long outcomes stay available at /commands/{id}.
    #[arg(long, env = "GATEWAY_COMMAND_STATUS_TTL_SECS", default_value_t = 900)]
    pub command_status_ttl_secs: u64,

    /// Largest JSON request body accepted (413 above).
    #[arg(long, env = "GATEWAY_MAX_JSON_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_json_body_bytes: usize,

    /// Largest CSV upload accepted (413 above), streamed to blob storage.
    #[arg(long, env = "GATEWAY_MAX_IMPORT_BYTES", default_value_t = 1 << 30)]
    pub max_import_bytes: u64,

    /// Origins whose browser pages may call the API (comma-separated, e.g.
    /// `https://admin.example.com`); none by default.
    #[arg(long, env = "GATEWAY_CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub cors_allowed_origins: Vec<String>,

    #[command(flatten)]
    pub auth: AuthConfig,

    #[command(flatten)]
    pub csv: CsvLimitsConfig,

    #[command(flatten)]
    pub blobs: BlobConfig,

    #[command(flatten)]
    pub common: CommonConfig,
}

/// What no client can exceed, whatever it sends. Benchmarks and contract tests raise them.
#[derive(Debug, Clone, Args)]
pub struct LimitsConfig {
    /// An upload (`POST /imports`) taking longer is answered 408 and discarded.
    #[arg(long, env = "GATEWAY_UPLOAD_TIMEOUT_MS", default_value_t = 3_600_000)]
    pub upload_timeout_ms: u64,

    /// Requests handled at once; above it, requests are answered 503 with `Retry-After` at
    /// once rather than queued (0: no limit).
    #[arg(long, env = "GATEWAY_MAX_CONCURRENT_REQUESTS", default_value_t = 512)]
    pub max_concurrent_requests: usize,

    /// Requests per second each principal may make on average; above it, 429 with
    /// `Retry-After` (0: no limit).
    #[arg(long, env = "GATEWAY_RATE_LIMIT_PER_SECOND", default_value_t = 100)]
    pub rate_limit_per_second: u32,

    /// Requests a principal may make in a burst above its rate.
    #[arg(long, env = "GATEWAY_RATE_LIMIT_BURST", default_value_t = 200)]
    pub rate_limit_burst: u32,

    /// How long a `?q=` search scans before answering the matches found so far, with a cursor
    /// to continue from.
    #[arg(long, env = "GATEWAY_SEARCH_BUDGET_MS", default_value_t = 100)]
    pub search_budget_ms: u64,
}
