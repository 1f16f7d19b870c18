//! What the gateway shares between bulk jobs (imports, exports): announcing a job (its first
//! status, then its request) and reading the job status topic into a book.

use std::time::Duration;

use apache_avro::types::Value;
use domain::avro::AvroRecord;
use domain::book::{JobStatus, StatusBook};
use platform::KafkaConfig;
use platform::Shutdown;
use platform::avro::{Apply, AvroCodec};
use platform::kafka::{Positions, Producer, StartAt, Tail};
use uuid::Uuid;

use crate::error::ApiError;

/// A record to publish: topic, schema and value.
#[derive(Debug)]
pub(crate) struct Outgoing<'a> {
    pub(crate) topic: &'a str,
    pub(crate) schema: &'static str,
    pub(crate) value: Value,
}

#[derive(Debug, Clone)]
pub(crate) struct Jobs<S> {
    pub(crate) book: StatusBook<S>,
    /// How far this gateway's book has read the status topic.
    positions: Positions,
    codec: AvroCodec,
    producer: Producer,
    timeout: Duration,
}

impl<S: JobStatus + AvroRecord + Send + Sync + 'static> Jobs<S> {
    /// Reads the status topic from the beginning into a fresh book, then follows it.
    pub(crate) async fn follow(
        kafka: &KafkaConfig,
        status_topic: &str,
        codec: &AvroCodec,
        producer: &Producer,
        timeout: Duration,
        shutdown: Shutdown,
    ) -> anyhow::Result<Self> {
        let book = StatusBook::<S>::default();
        let tail = Tail::start(kafka, status_topic, StartAt::Beginning).await?;
        let into = book.clone();
        let following =
            tail.follow(Apply::new(codec.clone(), S::parse_value, move |s| into.apply(s)), shutdown).await?;
        Ok(Self { book, positions: following.positions, codec: codec.clone(), producer: producer.clone(), timeout })
    }

    /// Publishes the job's first status, then its request, and waits until this gateway's book
    /// shows the job, so its status URL answers right away.
    pub(crate) async fn announce(&self, id: Uuid, status: Outgoing<'_>, request: Outgoing<'_>) -> Result<(), ApiError> {
        let key = id.to_string();
        let queued = self.publish(&key, status).await?;
        self.publish(&key, request).await?;
        if !self.positions.wait_applied(queued.partition, queued.offset, self.timeout).await {
            tracing::warn!(%id, "the job status view is lagging");
        }
        Ok(())
    }

    async fn publish(&self, key: &str, record: Outgoing<'_>) -> Result<platform::kafka::Delivered, ApiError> {
        let unavailable = |e: &dyn std::fmt::Display| ApiError::Unavailable(format!("cannot announce the job: {e}"));
        self.codec
            .publish(&self.producer, record.topic, record.schema, key.as_bytes(), record.value)
            .await
            .map_err(|e| unavailable(&e))
    }
}
