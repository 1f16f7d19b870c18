//! Bulk jobs (imports, exports) as the gateway sees them: announcing a job (its first status,
//! then its request, a claim check on a file in blob storage or the export's spec) and reading
//! the job status topic into a book.

use std::time::Duration;

use contract::{MappingError, Record};
use domain::book::{JobStatus, StatusBook};
use domain::export::ExportStatus;
use domain::import::ImportStatus;
use platform::Shutdown;
use platform::blobs::BlobStore;
use platform::kafka::{Positions, Producer};
use platform::service::ServiceBase;
use platform::topic::Topic;
use uuid::Uuid;

use crate::error::ApiError;

/// One kind of job: its status `S` (`SR` on the wire), read into a book, and its request
/// (`QR` on the wire).
#[derive(Debug, Clone)]
pub(crate) struct Jobs<S, SR, QR> {
    pub(crate) book: StatusBook<S>,
    statuses: Topic<SR>,
    requests: Topic<QR>,
    /// How far this gateway's book has read the status topic.
    positions: Positions,
    producer: Producer,
    timeout: Duration,
}

impl<S, SR, QR> Jobs<S, SR, QR>
where
    S: JobStatus
        + Clone
        + Send
        + Sync
        + TryFrom<SR, Error = MappingError>
        + TryInto<SR, Error = MappingError>
        + 'static,
    SR: Record,
    QR: Record,
{
    /// Reads the status topic from the beginning into a fresh book (the readiness check
    /// `check` until it has), then follows it.
    pub(crate) async fn follow(
        base: &ServiceBase,
        check: &'static str,
        (statuses, requests): (&Topic<SR>, &Topic<QR>),
        timeout: Duration,
        shutdown: &Shutdown,
    ) -> anyhow::Result<Self> {
        let book = StatusBook::<S>::default();
        let following = base.read_book(check, statuses, &book, shutdown.clone()).await?;
        Ok(Self {
            book,
            statuses: statuses.clone(),
            requests: requests.clone(),
            positions: following.positions,
            producer: base.producer.clone(),
            timeout,
        })
    }

    /// Publishes the job's first status, then its request, and waits until this gateway's book
    /// shows the job, so its status URL answers right away.
    pub(crate) async fn announce<Q>(&self, id: Uuid, status: S, request: Q) -> Result<(), ApiError>
    where
        Q: TryInto<QR, Error = MappingError>,
    {
        let key = id.to_string();
        let unavailable =
            |e: platform::topic::PublishError| ApiError::Unavailable(format!("cannot announce the job: {e}"));
        let queued = self.statuses.publish(&self.producer, key.as_bytes(), status).await.map_err(unavailable)?;
        self.requests.publish(&self.producer, key.as_bytes(), request).await.map_err(unavailable)?;
        if !self.positions.wait_applied(queued.partition, queued.offset, self.timeout).await {
            tracing::warn!(%id, "the job status view is lagging");
        }
        Ok(())
    }
}

/// Imports: uploads go to blob storage, announcements and statuses through [`Jobs`].
#[derive(Debug, Clone)]
pub(crate) struct Imports {
    pub(crate) jobs: Jobs<ImportStatus, contract::imports::ImportStatus, contract::imports::ImportRequested>,
    pub(crate) blobs: BlobStore,
    pub(crate) max_bytes: u64,
    pub(crate) limits: domain::import_file::Limits,
}

/// Exports: finished files are served from blob storage.
#[derive(Debug, Clone)]
pub(crate) struct Exports {
    pub(crate) jobs: Jobs<ExportStatus, contract::exports::ExportStatus, contract::exports::ExportRequested>,
    pub(crate) blobs: BlobStore,
}
