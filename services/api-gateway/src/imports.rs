//! What the gateway needs for imports: blob storage for uploads, its view of the import status
//! topic, and announcing a new import (its first status, then the request for the worker).

use std::time::Duration;

use domain::avro::{AvroRecord, schemas};
use domain::import::{ImportBook, ImportRequest, ImportStatus};
use platform::avro::AvroCodec;
use platform::blobs::BlobStore;
use platform::kafka::{HandleError, Handler, Incoming, Positions, Producer, Record};

use crate::error::ApiError;

#[derive(Debug, Clone)]
pub(crate) struct Imports {
    pub(crate) book: ImportBook,
    pub(crate) positions: Positions,
    pub(crate) blobs: BlobStore,
    pub(crate) codec: AvroCodec,
    pub(crate) producer: Producer,
    pub(crate) requests_topic: String,
    pub(crate) status_topic: String,
    pub(crate) max_bytes: u64,
    pub(crate) timeout: Duration,
}

impl Imports {
    /// Publishes the import's first status (queued), then its request, and waits until this
    /// gateway's view shows the import, so its status URL answers right away.
    pub(crate) async fn announce(&self, request: &ImportRequest) -> Result<(), ApiError> {
        let unavailable = |e: &dyn std::fmt::Display| ApiError::Unavailable(format!("cannot announce the import: {e}"));
        let key = request.import_id.to_string();
        let status = ImportStatus::queued(request);
        let bytes = self
            .codec
            .encode(&self.status_topic, schemas::IMPORT_STATUS, status.to_avro())
            .await
            .map_err(|e| unavailable(&e))?;
        let queued = self
            .producer
            .send(Record::new(&self.status_topic, &bytes).key(key.as_bytes()))
            .await
            .map_err(|e| unavailable(&e))?;
        let bytes = self
            .codec
            .encode(&self.requests_topic, schemas::IMPORT_REQUEST, request.to_avro())
            .await
            .map_err(|e| unavailable(&e))?;
        self.producer
            .send(Record::new(&self.requests_topic, &bytes).key(key.as_bytes()))
            .await
            .map_err(|e| unavailable(&e))?;
        if !self.positions.wait_applied(queued.partition, queued.offset, self.timeout).await {
            tracing::warn!(import_id = %request.import_id, "the import status view is lagging");
        }
        Ok(())
    }
}

/// Applies the import status topic to the gateway's book.
#[derive(Debug)]
pub(crate) struct ApplyStatus {
    pub(crate) book: ImportBook,
    pub(crate) codec: AvroCodec,
}

impl Handler for ApplyStatus {
    async fn handle(&self, message: &Incoming) -> Result<(), HandleError> {
        let status =
            ImportStatus::from_avro(self.codec.decode_message(message).await?).map_err(HandleError::permanent)?;
        self.book.apply(status);
        Ok(())
    }
}
