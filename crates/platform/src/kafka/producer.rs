//! The idempotent producer: every send resolves only when the broker has acknowledged the
//! record (acks=all) or the delivery definitively failed; `flush` before the process exits.

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::util::Timeout;

use crate::config::KafkaConfig;

/// A cheap `Clone` handle; all clones share one librdkafka producer.
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer,
    queue_timeout: Duration,
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
    key: Option<&'a [u8]>,
    payload: Option<&'a [u8]>,
    headers: Vec<(&'a str, &'a [u8])>,
}

impl<'a> Record<'a> {
    pub fn new(topic: &'a str, payload: &'a [u8]) -> Self {
        Self { topic, key: None, payload: Some(payload), headers: Vec::new() }
    }

    /// A record without a value: on a compacted topic it deletes its key.
    pub fn tombstone(topic: &'a str, key: &'a [u8]) -> Self {
        Self { topic, key: Some(key), payload: None, headers: Vec::new() }
    }

    /// Records with the same key land on the same partition, in order.
    pub fn key(mut self, key: &'a [u8]) -> Self {
        self.key = Some(key);
        self
    }

    pub fn header(mut self, name: &'a str, value: &'a [u8]) -> Self {
        self.headers.push((name, value));
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

impl Producer {
    pub fn new(config: &KafkaConfig, client_id: &str) -> Result<Self, ProduceError> {
        let inner = super::client_config(config, client_id)
            // Idempotence implies acks=all, bounded in-flight requests and retries without
            // duplicates or reordering.
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", config.message_timeout_ms.to_string())
            .set("linger.ms", config.linger_ms.to_string())
            .set("compression.type", &config.compression)
            .create()
            .map_err(ProduceError::Create)?;
        Ok(Self { inner, queue_timeout: config.message_timeout() })
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
