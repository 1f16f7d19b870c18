//! user-service's configuration: environment variables (or flags), each with a local default.

use std::net::SocketAddr;

use clap::Parser;
use platform::CommonConfig;

#[derive(Debug, Clone, Parser)]
#[command(name = "user-service", version, about = "The owner of user state")]
pub struct Config {
    /// Where /health, /ready and /metrics are served.
    #[arg(long, env = "USER_SERVICE_ADMIN_ADDR", default_value = "127.0.0.1:9101")]
    pub admin_addr: SocketAddr,

    /// The consumer group reading the commands topic.
    #[arg(long, env = "USER_SERVICE_CONSUMER_GROUP", default_value = "user-service")]
    pub consumer_group: String,

    /// The Kafka transactional id: fixed, so a second instance fences the first (one writer,
    /// enforced by Kafka).
    #[arg(long, env = "USER_SERVICE_TRANSACTIONAL_ID", default_value = "user-service")]
    pub transactional_id: String,

    /// Commands decided per batch (their events, states and replies commit together).
    #[arg(long, env = "USER_SERVICE_MAX_BATCH", default_value_t = 500)]
    pub max_batch: usize,

    /// Bytes of commands per batch: an import's batch commands (hundreds of rows each) fill
    /// it long before `max_batch`, so a transaction carries some thousands of rows and the
    /// projections see an import arrive steadily, not in steps of a few hundred thousand
    /// users every few seconds (`just bench`'s import progress).
    #[arg(long, env = "USER_SERVICE_MAX_BATCH_BYTES", default_value_t = 1 << 20)]
    pub max_batch_bytes: usize,

    #[command(flatten)]
    pub common: CommonConfig,
}
