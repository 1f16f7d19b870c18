//! Bulk jobs (imports, exports) as the gateway sees them: announcing a job (its first status,
//! then its request, a claim check on a file in blob storage or the export's spec) and reading
//! the job status topic into a book.

use std::time::Duration;

use apache_avro::types::Value;
use domain::avro::AvroRecord;
use domain::book::{JobStatus, StatusBook};
use domain::export::ExportStatus;
use domain::import::ImportStatus;
use platform::KafkaConfig;
use platform::Shutdown;
use platform::avro::{Apply, AvroCodec};
use platform::blobs::BlobStore;
use platform::kafka::{Positions, Producer, StartAt, Tail};
use platform::service::ServiceBase;
use uuid::Uuid;

use crate::error::ApiError;

/// Where one kind of job travels: its requests and its statuses, with their schemas.
#[derive(Debug, Clone)]
pub(crate) struct JobTopics {
    pub(crate) requests: String,
    pub(crate) request_schema: &'static str,
    pub(crate) status: String,
    pub(crate) status_schema: &'static str,
}

#[derive(Debug, Clone)]
pub(crate) struct Jobs<S> {
    pub(crate) book: StatusBook<S>,
    topics: JobTopics,
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
        topics: JobTopics,
        base: &ServiceBase,
        timeout: Duration,
        shutdown: Shutdown,
    ) -> anyhow::Result<Self> {
        let book = StatusBook::<S>::default();
        let tail = Tail::start(kafka, &topics.status, StartAt::Beginning).await?;
        let into = book.clone();
        let following =
            tail.follow(Apply::new(base.codec.clone(), S::parse_value, move |s| into.apply(s)), shutdown).await?;
        let (codec, producer) = (base.codec.clone(), base.producer.clone());
        Ok(Self { book, topics, positions: following.positions, codec, producer, timeout })
    }

    /// Publishes the job's first status, then its request, and waits until this gateway's book
    /// shows the job, so its status URL answers right away.
    pub(crate) async fn announce(&self, id: Uuid, status: &S, request: &impl AvroRecord) -> Result<(), ApiError> {
        let key = id.to_string();
        let topics = &self.topics;
        let queued = self.publish(&key, &topics.status, topics.status_schema, status.to_avro()).await?;
        self.publish(&key, &topics.requests, topics.request_schema, request.to_avro()).await?;
        if !self.positions.wait_applied(queued.partition, queued.offset, self.timeout).await {
            tracing::warn!(%id, "the job status view is lagging");
        }
        Ok(())
    }

    async fn publish(
        &self,
        key: &str,
        topic: &str,
        schema: &'static str,
        value: Value,
    ) -> Result<platform::kafka::Delivered, ApiError> {
        self.codec
            .publish(&self.producer, topic, schema, key.as_bytes(), value)
            .await
            .map_err(|e| ApiError::Unavailable(format!("cannot announce the job: {e}")))
    }
}

/// Imports: uploads go to blob storage, announcements and statuses through [`Jobs`].
#[derive(Debug, Clone)]
pub(crate) struct Imports {
    pub(crate) jobs: Jobs<ImportStatus>,
    pub(crate) blobs: BlobStore,
    pub(crate) max_bytes: u64,
}

/// Exports: finished files are served from blob storage.
#[derive(Debug, Clone)]
pub(crate) struct Exports {
    pub(crate) jobs: Jobs<ExportStatus>,
    pub(crate) blobs: BlobStore,
}
