//! What the gateway needs for exports: the export jobs (announcing them, and its view of the
//! export status topic) and blob storage to serve finished files from.

use domain::avro::{AvroRecord, schemas};
use domain::export::{ExportRequest, ExportStatus};
use platform::blobs::BlobStore;

use crate::error::ApiError;
use crate::jobs::{Jobs, Outgoing};

#[derive(Debug, Clone)]
pub(crate) struct Exports {
    pub(crate) jobs: Jobs<ExportStatus>,
    pub(crate) blobs: BlobStore,
    pub(crate) requests_topic: String,
    pub(crate) status_topic: String,
}

impl Exports {
    /// Publishes the export's first status (queued), then its request, and waits until this
    /// gateway's view shows the export.
    pub(crate) async fn announce(&self, request: &ExportRequest) -> Result<(), ApiError> {
        let status = Outgoing {
            topic: &self.status_topic,
            schema: schemas::EXPORT_STATUS,
            value: ExportStatus::queued(request).to_avro(),
        };
        let request_record =
            Outgoing { topic: &self.requests_topic, schema: schemas::EXPORT_REQUEST, value: request.to_avro() };
        self.jobs.announce(request.export_id, status, request_record).await
    }
}
