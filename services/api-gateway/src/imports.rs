//! What the gateway needs for imports: blob storage for uploads and the import jobs (announcing
//! them, and its view of the import status topic).

use domain::avro::{AvroRecord, schemas};
use domain::import::{ImportRequest, ImportStatus};
use platform::blobs::BlobStore;

use crate::error::ApiError;
use crate::jobs::{Jobs, Outgoing};

#[derive(Debug, Clone)]
pub(crate) struct Imports {
    pub(crate) jobs: Jobs<ImportStatus>,
    pub(crate) blobs: BlobStore,
    pub(crate) requests_topic: String,
    pub(crate) status_topic: String,
    pub(crate) max_bytes: u64,
}

impl Imports {
    /// Publishes the import's first status (queued), then its request, and waits until this
    /// gateway's view shows the import, so its status URL answers right away.
    pub(crate) async fn announce(&self, request: &ImportRequest) -> Result<(), ApiError> {
        let status = Outgoing {
            topic: &self.status_topic,
            schema: schemas::IMPORT_STATUS,
            value: ImportStatus::queued(request).to_avro(),
        };
        let request_record =
            Outgoing { topic: &self.requests_topic, schema: schemas::IMPORT_REQUEST, value: request.to_avro() };
        self.jobs.announce(request.import_id, status, request_record).await
    }
}
