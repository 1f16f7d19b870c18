//! The one Kafka layer every service uses: client settings, the startup connection check, an
//! idempotent [`Producer`], an at-least-once [`Consumer`] with a dead-letter topic, and topic
//! provisioning ([`topics`]).

mod brokers;
mod consumer;
mod dead_letter;
pub mod dlq;
mod exactly_once;
mod lag;
mod producer;
mod replay;
mod tail;
pub mod topics;

use std::sync::Arc;
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
use crate::health::Health;
use crate::shutdown::Shutdown;

/// Settings common to every client this process creates.
pub(crate) fn client_config(config: &KafkaConfig, client_id: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &config.bootstrap_servers)
        .set("client.id", client_id)
        // Do not let a dead broker address linger in the logs as repeated ERROR lines; the
        // startup check and the delivery results carry the errors that matter.
        .set("log.connection.close", "false")
        // A broker back after an outage is tried again within a second (librdkafka's backoff
        // grows to 10 s by default: that long not-ready, and that long a write waits).
        .set("reconnect.backoff.max.ms", "1000");
    if !config.debug.is_empty() {
        cfg.set("debug", &config.debug);
    }
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

/// How often [`watch_connection`] asks, and how long it waits for an answer.
const WATCH_EVERY: Duration = Duration::from_millis(1500);
const WATCH_TIMEOUT: Duration = Duration::from_secs(2);
/// Unanswered questions in a row before Kafka counts as gone: one slow answer under load is
/// not an outage.
const WATCH_MISSES: u32 = 2;

/// Keeps the `kafka` readiness check of `health` true to whether a broker answers, until
/// `shutdown`: a metadata request every 1.5 s, not ready after two in a row go unanswered
/// (within about 6 s of Kafka going away), ready again at the first answer.
pub async fn watch_connection(config: KafkaConfig, health: Health, shutdown: Shutdown) {
    let admin = match admin_client(&config) {
        Ok(admin) => Arc::new(admin),
        Err(error) => {
            tracing::error!(%error, "cannot create the client watching the connection to Kafka");
            return;
        }
    };
    let mut every = tokio::time::interval(WATCH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut misses = 0;
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            _ = every.tick() => {}
        }
        let client = Arc::clone(&admin);
        let asked = tokio::task::spawn_blocking(move || client.inner().fetch_metadata(None, WATCH_TIMEOUT)).await;
        let Ok(answer) = asked else { return };
        match answer {
            Ok(metadata) => {
                if misses >= WATCH_MISSES {
                    tracing::info!(bootstrap = %config.bootstrap_servers, "Kafka answers again");
                }
                misses = 0;
                let brokers = metadata.brokers().len();
                health.ready("kafka", format!("{brokers} broker(s) at {}", config.bootstrap_servers));
            }
            Err(error) => {
                misses += 1;
                if misses == WATCH_MISSES {
                    tracing::warn!(bootstrap = %config.bootstrap_servers, %error, "Kafka does not answer: not ready");
                }
                if misses >= WATCH_MISSES {
                    health.not_ready("kafka", format!("no answer from Kafka at {}: {error}", config.bootstrap_servers));
                }
            }
        }
    }
}
