//! The idempotent producer: every send resolves only when the broker has acknowledged the
//! record (acks=all) or the delivery definitively failed; `flush` before the process exits.
//!
//! A transactional producer ([`Producer::transactional`]) is the same, with a fixed
//! `transactional.id`: the records sent between [`Producer::begin`] and a commit, and the
//! consumed offsets committed with them, become visible to `read_committed` readers all
//! together or not at all; starting a second producer with the same id fences the first.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::FuturesOrdered;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;

use super::brokers::{BrokerWatch, STATISTICS_INTERVAL_MS};
use crate::config::KafkaConfig;
use crate::trace::TraceHeaders;

/// A cheap `Clone` handle; all clones share one librdkafka producer.
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer<Watched>,
    queue_timeout: Duration,
    /// Set for a transactional producer.
    transactional_id: Option<String>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").finish_non_exhaustive()
    }
}

/// A record to send: topic, optional key, payload (none for a tombstone) and headers.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    topic: &'a str,
    /// None: the partitioner picks by key.
    partition: Option<i32>,
    key: Option<&'a [u8]>,
    payload: Option<&'a [u8]>,
    headers: Vec<(&'a str, &'a [u8])>,
}

impl<'a> Record<'a> {
    pub fn new(topic: &'a str, payload: &'a [u8]) -> Self {
        Self { topic, partition: None, key: None, payload: Some(payload), headers: Vec::new() }
    }

    /// A record without a value: on a compacted topic it deletes its key.
    pub fn tombstone(topic: &'a str, key: &'a [u8]) -> Self {
        Self { topic, partition: None, key: Some(key), payload: None, headers: Vec::new() }
    }

    /// Records with the same key land on the same partition, in order.
    pub fn key(mut self, key: &'a [u8]) -> Self {
        self.key = Some(key);
        self
    }

    /// To this partition, whatever the key: a record that must sit beside another (a user's
    /// state on the partition of its event).
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    pub fn header(mut self, name: &'a str, value: &'a [u8]) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Carries `trace`'s context (`traceparent`, `tracestate`): the record's readers continue
    /// that trace.
    pub fn trace(mut self, trace: &'a TraceHeaders) -> Self {
        for (name, value) in trace.pairs() {
            self.headers.push((name, value));
        }
        self
    }
}

/// Where the broker stored an acknowledged record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("cannot create the Kafka producer: {0}")]
    Create(#[source] KafkaError),
    #[error("delivery to {topic} failed: {source}")]
    Delivery {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("flushing the producer failed: {0}")]
    Flush(#[source] KafkaError),
}

impl ProduceError {
    /// A record the broker refuses for what it is (too large, invalid) is refused again; any
    /// other failure (a broker down, a timeout) may pass later.
    pub fn is_retryable(&self) -> bool {
        use rdkafka::types::RDKafkaErrorCode as Code;
        match self {
            Self::Create(_) => false,
            Self::Flush(_) => true,
            Self::Delivery { source, .. } => !matches!(
                source.rdkafka_error_code(),
                Some(
                    Code::MessageSizeTooLarge
                        | Code::InvalidMessageSize
                        | Code::InvalidMessage
                        | Code::InvalidRecord
                        | Code::TopicAuthorizationFailed
                )
            ),
        }
    }
}

/// Why a transaction did not commit.
#[derive(Debug, thiserror::Error)]
pub enum TransactionError {
    /// Another producer with the same transactional id started: this one may write nothing
    /// more and must stop.
    #[error("fenced: another instance with transactional id {0:?} took over")]
    Fenced(String),
    /// The transaction was aborted: none of its records or offsets took effect.
    #[error("transaction aborted: {0}")]
    Aborted(#[source] KafkaError),
    /// The producer cannot go on (the transaction's outcome is the broker's to decide).
    #[error("transactional producer failed: {0}")]
    Fatal(#[source] KafkaError),
    /// A transactional call did not return long after its own timeout: the producer is
    /// wedged (librdkafka ignores the timeout of `send_offsets_to_transaction` and can wait
    /// for good for a group coordinator it has dropped: confluentinc/librdkafka#5456, #5511).
    /// Its transaction never commits; a new producer with the same transactional id fences it
    /// and aborts the transaction.
    #[error("a transactional call ({call}) did not return within {waited:?}: the producer is wedged")]
    Stuck { call: &'static str, waited: Duration },
}

/// How long past its own timeout a transactional call may run before it is given up as stuck.
const STUCK_MARGIN: Duration = Duration::from_secs(10);

/// Runs `call` on a blocking thread, waiting at most `bound` for it (the thread itself cannot
/// be stopped: a stuck call keeps it until it returns, if ever).
async fn within<T: Send + 'static>(
    bound: Duration,
    name: &'static str,
    call: impl FnOnce() -> T + Send + 'static,
) -> Result<T, TransactionError> {
    let started = std::time::Instant::now();
    match tokio::time::timeout(bound, tokio::task::spawn_blocking(call)).await {
        Ok(joined) => Ok(joined.expect("transactional calls do not panic")),
        Err(_) => Err(TransactionError::Stuck { call: name, waited: started.elapsed() }),
    }
}

impl Producer {
    pub fn new(config: &KafkaConfig, client_id: &str) -> Result<Self, ProduceError> {
        Self::create(config, client_id, None)
    }

    /// A producer whose writes are grouped in transactions under `transactional_id`; call
    /// [`Producer::init_transactions`] before anything else.
    pub fn transactional(config: &KafkaConfig, client_id: &str, transactional_id: &str) -> Result<Self, ProduceError> {
        Self::create(config, client_id, Some(transactional_id))
    }

    fn create(config: &KafkaConfig, client_id: &str, transactional_id: Option<&str>) -> Result<Self, ProduceError> {
        let mut settings = super::client_config(config, client_id);
        // Idempotence implies acks=all, bounded in-flight requests and retries without
        // duplicates or reordering.
        settings
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", config.message_timeout_ms.to_string())
            .set("linger.ms", config.linger_ms.to_string())
            .set("compression.type", &config.compression)
            // For the brokers' watch (Watched).
            .set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
        if let Some(id) = transactional_id {
            // A record's delivery must not outlast its transaction.
            let timeout = config.transaction_timeout_ms.min(config.message_timeout_ms);
            settings
                .set("transactional.id", id)
                .set("transaction.timeout.ms", config.transaction_timeout_ms.to_string())
                .set("message.timeout.ms", timeout.to_string());
        }
        let brokers = Arc::new(BrokerWatch::new(config));
        let inner: FutureProducer<Watched> =
            settings.create_with_context(Watched(Arc::clone(&brokers))).map_err(ProduceError::Create)?;
        brokers.attach(inner.client());
        Ok(Self {
            inner,
            queue_timeout: config.message_timeout(),
            transactional_id: transactional_id.map(str::to_owned),
        })
    }

    /// Registers the transactional id with its coordinator: fences any other producer with the
    /// same id (aborting its open transaction), so from here on this one is the only writer.
    pub async fn init_transactions(&self) -> Result<(), TransactionError> {
        let timeout = self.queue_timeout;
        self.blocking("init_transactions", move |p| p.init_transactions(timeout)).await
    }

    pub async fn begin(&self) -> Result<(), TransactionError> {
        self.blocking("begin_transaction", |p| p.begin_transaction()).await
    }

    /// Commits the open transaction. Any failure leaves it aborted (or the producer fenced):
    /// nothing took effect.
    pub async fn commit(&self) -> Result<(), TransactionError> {
        self.commit_consumed(TopicPartitionList::new(), None).await
    }

    /// Commits the open transaction with `offsets` (the next offsets to consume) for the
    /// consumer group `group`: the batch's writes and its consumption take effect together.
    /// Any failure leaves the transaction aborted (or the producer fenced): nothing took effect.
    pub(crate) async fn commit_consumed(
        &self,
        offsets: TopicPartitionList,
        group: Option<ConsumerGroupMetadata>,
    ) -> Result<(), TransactionError> {
        let timeout = self.queue_timeout;
        let mut committed = Ok(());
        if let Some(group) = group
            && offsets.count() > 0
        {
            committed = self
                .blocking("send_offsets_to_transaction", move |p| {
                    p.send_offsets_to_transaction(&offsets, &group, timeout)
                })
                .await;
        }
        if committed.is_ok() {
            committed = self.blocking("commit_transaction", move |p| p.commit_transaction(timeout)).await;
        }
        match committed {
            Err(TransactionError::Aborted(error)) => {
                self.abort().await?;
                Err(TransactionError::Aborted(error))
            }
            other => other,
        }
    }

    /// Aborts the open transaction: none of its records become visible to `read_committed`
    /// readers.
    pub async fn abort(&self) -> Result<(), TransactionError> {
        let timeout = self.queue_timeout;
        self.blocking("abort_transaction", move |p| p.abort_transaction(timeout)).await
    }

    /// Runs a blocking transactional call off the async workers and sorts its error; gives up
    /// on it as [`TransactionError::Stuck`] once it has overrun its own timeout by a margin.
    async fn blocking<F>(&self, name: &'static str, call: F) -> Result<(), TransactionError>
    where
        F: FnOnce(&FutureProducer<Watched>) -> Result<(), KafkaError> + Send + 'static,
    {
        let inner = self.inner.clone();
        // Every call is given the queue timeout as its own.
        let bound = self.queue_timeout + STUCK_MARGIN;
        match within(bound, name, move || call(&inner)).await {
            Ok(result) => result.map_err(|error| self.classify(error)),
            Err(stuck) => {
                tracing::error!(error = %stuck, "giving up on a wedged transactional producer");
                metrics::counter!("kafka_transactional_calls_stuck_total").increment(1);
                Err(stuck)
            }
        }
    }

    fn classify(&self, error: KafkaError) -> TransactionError {
        let id = self.transactional_id.clone().unwrap_or_default();
        let fenced = |code: RDKafkaErrorCode| {
            matches!(
                code,
                RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch | RDKafkaErrorCode::Fenced
            )
        };
        match &error {
            KafkaError::Transaction(e) if fenced(e.code()) => TransactionError::Fenced(id),
            KafkaError::Transaction(e) if e.is_fatal() => TransactionError::Fatal(error),
            error if error.rdkafka_error_code().is_some_and(fenced) => TransactionError::Fenced(id),
            _ => TransactionError::Aborted(error),
        }
    }

    /// Sends one record and waits for its acknowledgement.
    pub async fn send(&self, record: Record<'_>) -> Result<Delivered, ProduceError> {
        let mut future_record = FutureRecord::<[u8], [u8]>::to(record.topic);
        if let Some(payload) = record.payload {
            future_record = future_record.payload(payload);
        }
        if let Some(key) = record.key {
            future_record = future_record.key(key);
        }
        if let Some(partition) = record.partition {
            future_record = future_record.partition(partition);
        }
        if !record.headers.is_empty() {
            let headers = record.headers.iter().fold(OwnedHeaders::new(), |headers, (name, value)| {
                headers.insert(Header { key: name, value: Some(*value) })
            });
            future_record = future_record.headers(headers);
        }
        let outcome = self.inner.send(future_record, Timeout::After(self.queue_timeout)).await;
        match outcome {
            Ok(delivery) => {
                metrics::counter!("kafka_produced_total", "topic" => record.topic.to_owned()).increment(1);
                Ok(Delivered { partition: delivery.partition, offset: delivery.offset })
            }
            Err((source, _message)) => {
                metrics::counter!("kafka_produce_errors_total", "topic" => record.topic.to_owned()).increment(1);
                Err(ProduceError::Delivery { topic: record.topic.to_owned(), source })
            }
        }
    }

    /// Sends every record at once and waits for every acknowledgement; the results come in the
    /// records' order.
    pub async fn send_all<'a>(
        &self,
        records: impl IntoIterator<Item = Record<'a>>,
    ) -> Vec<Result<Delivered, ProduceError>> {
        records.into_iter().map(|record| self.send(record)).collect::<FuturesOrdered<_>>().collect().await
    }

    /// Waits until every queued record is delivered (or `timeout` passes). Dropping a producer
    /// without flushing discards what is still queued.
    pub async fn flush(&self, timeout: Duration) -> Result<(), ProduceError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.flush(Timeout::After(timeout)))
            .await
            .expect("flush does not panic")
            .map_err(ProduceError::Flush)
    }
}

/// A producer's context: its statistics feed the brokers' watch (see [`super::brokers`]).
pub(crate) struct Watched(Arc<BrokerWatch>);

impl rdkafka::ClientContext for Watched {
    fn stats(&self, statistics: rdkafka::Statistics) {
        self.0.check(&statistics);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_blocking_call_past_its_bound_is_given_up_as_stuck_and_one_within_it_returns() {
        let returned = within(Duration::from_secs(5), "quick", || 7).await;
        assert!(matches!(returned, Ok(7)));
        let stuck =
            within(Duration::from_millis(50), "wedged", || std::thread::sleep(Duration::from_millis(600))).await;
        assert!(
            matches!(stuck, Err(TransactionError::Stuck { call: "wedged", waited }) if waited < Duration::from_millis(500)),
            "{stuck:?}"
        );
    }
}
