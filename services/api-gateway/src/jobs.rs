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
use crate::http::Idempotency;

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
    ///
    /// Under an idempotency `key` (the job's id is the key's), a job is announced once: the
    /// first status published under its id wins in every book (`JobStatus::not_behind`), so
    /// the request goes out only once this gateway's book shows that the winner asked the same
    /// (the same digest; else 422, and nothing is requested). Requests racing with the same
    /// digest may each send theirs: the worker runs the job once and skips the others (an
    /// import's skipped upload is removed). A retry of a job still queued sends its request
    /// again, which also heals a first attempt cut off between its status and its request.
    pub(crate) async fn announce<Q>(
        &self,
        id: Uuid,
        status: S,
        request: Q,
        key: Option<&Idempotency>,
    ) -> Result<Announced<S>, ApiError>
    where
        Q: TryInto<QR, Error = MappingError>,
    {
        let job = id.to_string();
        let unavailable =
            |e: platform::topic::PublishError| ApiError::Unavailable(format!("cannot announce the job: {e}"));
        if let Some(key) = key
            && let Some(known) = self.book.get(id)
        {
            key.check(known.request_digest())?;
            if known.is_queued() {
                self.requests.publish(&self.producer, job.as_bytes(), request).await.map_err(unavailable)?;
                return Ok(Announced::Queued);
            }
            return Ok(Announced::Before(known));
        }
        let queued = self.statuses.publish(&self.producer, job.as_bytes(), status).await.map_err(unavailable)?;
        let shown = self.positions.wait_applied(queued.partition, queued.offset, self.timeout).await;
        if let Some(key) = key {
            // Which announcement came first is known only once the book has read this one.
            let first = self.book.get(id).filter(|_| shown).ok_or_else(|| {
                ApiError::Unavailable(format!("the job status view is lagging; job {id} cannot be confirmed yet"))
            })?;
            key.check(first.request_digest())?;
        } else if !shown {
            tracing::warn!(%id, "the job status view is lagging");
        }
        self.requests.publish(&self.producer, job.as_bytes(), request).await.map_err(unavailable)?;
        Ok(Announced::Queued)
    }
}

/// What [`Jobs::announce`] did.
#[derive(Debug)]
pub(crate) enum Announced<S> {
    /// The job is queued: its request is sent.
    Queued,
    /// A retry: the job was announced before and is past queued; this is its status.
    Before(S),
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
