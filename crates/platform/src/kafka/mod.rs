//! The one Kafka layer every service uses: client settings, the startup connection check, an
//! idempotent [`Producer`], an at-least-once [`Consumer`] with a dead-letter topic, and topic
//! provisioning ([`topics`]).

mod consumer;
mod dead_letter;
mod exactly_once;
mod producer;
mod replay;
mod tail;
pub mod topics;

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;

pub use consumer::{
    BatchHandler, BatchOutcome, Consumer, ConsumerSettings, HandleError, Handler, Incoming, unless_shutdown,
};
pub use dead_letter::{Poison, headers as dead_letter_headers};
pub use exactly_once::{BatchFailed, TransactionalHandler, TransactionalStop};
pub use producer::{Delivered, ProduceError, Producer, Record, TransactionError};
pub use replay::replay;
pub use tail::{DeadLetters, FollowError, Following, Positions, StartAt, Tail, TailStopped};

use crate::config::KafkaConfig;

/// Settings common to every client this process creates.
pub(crate) fn client_config(config: &KafkaConfig, client_id: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &config.bootstrap_servers)
        .set("client.id", client_id)
        // Do not let a dead broker address linger in the logs as repeated ERROR lines; the
        // startup check and the delivery results carry the errors that matter.
        .set("log.connection.close", "false");
    cfg
}

/// Settings common to every consumer: fetches wait for some data (up to a bound) instead of
/// returning each record on its own, which keeps the broker's request rate sane under load.
pub(crate) fn consumer_config(config: &KafkaConfig, client_id: &str) -> ClientConfig {
    let mut cfg = client_config(config, client_id);
    cfg.set("fetch.min.bytes", config.fetch_min_bytes.to_string())
        .set("fetch.wait.max.ms", config.fetch_wait_max_ms.to_string())
        // Records of aborted transactions are never seen, nor those of open ones until commit.
        .set("isolation.level", "read_committed")
        // When the local queue is full, fetch again as soon as it drains below the threshold
        // (librdkafka waits a whole second by default): reading a large topic to its end (a
        // cold start) is otherwise mostly spent waiting. Measured by `just bench`.
        .set("fetch.queue.backoff.ms", "10");
    cfg
}

pub(crate) fn admin_client(config: &KafkaConfig) -> Result<AdminClient<DefaultClientContext>, KafkaError> {
    client_config(config, "admin").create()
}

/// Brokers answered the metadata request.
#[derive(Debug, Clone)]
pub struct ClusterInfo {
    pub brokers: usize,
}

/// The brokers could not be reached during startup.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach Kafka at {bootstrap} within {}s: {source}", timeout.as_secs_f32())]
pub struct ConnectError {
    bootstrap: String,
    timeout: Duration,
    #[source]
    source: KafkaError,
}

/// Fails within `startup_timeout` with a clear error if no broker answers, so a service with a
/// wrong address exits instead of hanging.
pub async fn check_connection(config: &KafkaConfig) -> Result<ClusterInfo, ConnectError> {
    let timeout = config.startup_timeout();
    let error = |source| ConnectError { bootstrap: config.bootstrap_servers.clone(), timeout, source };
    let admin = admin_client(config).map_err(error)?;
    let metadata = tokio::task::spawn_blocking(move || admin.inner().fetch_metadata(None, timeout))
        .await
        .expect("metadata fetch does not panic")
        .map_err(error)?;
    Ok(ClusterInfo { brokers: metadata.brokers().len() })
}
