//! export-worker: exports users to CSV from its own projection of the user events.
//!
//! It never asks another service for data: its `UserView` is read from the users' state
//! topic on every start and follows the user events from there (`platform::users`). An export request arrives on the
//! export requests topic carrying the requester's position in the user events; the worker waits
//! until its projection is there, snapshots the matching users, formats them in parallel
//! (rayon) into a file in the shared blob storage, and publishes progress and the final status
//! (rows, bytes, SHA-256) on the export status topic. The request's offset is stored only once
//! the export has finished, so an export interrupted by a crash runs again by itself. Files
//! older than the retention are removed and their exports marked expired.
//!
//! - [`config`]: environment configuration;
//! - [`writer`]: the CSV format, formatted in parallel chunks;
//! - `exporter`: one export from request to final status, and expiry.

pub mod config;
mod exporter;
pub mod writer;

use std::net::SocketAddr;
use std::time::Duration;

use contract::exports::ExportRequested;
use domain::export::{ExportBook, ExportRequest, ExportStatus};
use platform::Shutdown;
use platform::blobs::BlobStore;
use platform::kafka::{self, Consumer, ConsumerSettings, HandleError, Handler, Incoming};
use platform::service::{Service, ServiceBase};
use platform::topic::Topic;

pub use config::Config;

use exporter::{Exporter, Limits};

/// A started export-worker: projection and status book caught up.
#[derive(Debug)]
pub struct Application {
    base: ServiceBase,
    config: Config,
    exporter: Exporter,
}

impl Service for Application {
    type Config = Config;

    const NAME: &'static str = "export-worker";

    fn admin_addr(&self) -> SocketAddr {
        self.base.admin_addr()
    }

    async fn build(config: Config, shutdown: Shutdown) -> anyhow::Result<Self> {
        // A blob directory it cannot use fails the start before anything connects.
        let blobs = BlobStore::open(&config.blobs)?;
        let base = ServiceBase::build(Self::NAME, config.admin_addr, &config.common, &shutdown).await?;
        let (users, positions) = base.users_projection(shutdown.clone()).await?;
        let topics = &base.topics;

        let book = ExportBook::default();
        base.read_book("exports", &topics.export_status, &book, shutdown.clone()).await?;

        let exporter = Exporter {
            producer: base.producer.clone(),
            blobs,
            book,
            users,
            positions,
            statuses: topics.export_status.clone(),
            limits: Limits {
                chunk_rows: config.chunk_rows.max(1),
                progress_interval: Duration::from_millis(config.progress_interval_ms.max(50)),
                catch_up_timeout: Duration::from_millis(config.catch_up_timeout_ms),
            },
        };
        Ok(Self { base, config, exporter })
    }

    /// Exports one request at a time and expires old files until shutdown.
    async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let topics = &self.base.topics;
        let settings =
            ConsumerSettings::new(&self.config.consumer_group, &[topics.export_requests.name()], &topics.dead_letters);
        let consumer = Consumer::new(&self.base.kafka, settings, self.base.producer.clone())?
            .ready_while_current(self.base.health.clone(), "export requests");
        let retention = Duration::from_secs(self.config.retention_secs);
        let keep = Duration::from_secs(self.config.job_retention_secs);
        let expiry = expire_old_files(self.exporter.clone(), retention, keep, shutdown.clone());
        let handler = ExportRequests {
            exporter: self.exporter,
            requests: topics.export_requests.clone(),
            shutdown: shutdown.clone(),
        };
        let (_, (), admin) =
            tokio::join!(consumer.run(&handler, shutdown.clone()), expiry, self.base.serve_until_stopped());
        admin
    }
}

struct ExportRequests {
    exporter: Exporter,
    requests: Topic<ExportRequested>,
    shutdown: Shutdown,
}

impl Handler for ExportRequests {
    async fn handle(&self, message: &Incoming) -> Result<(), HandleError> {
        let request: ExportRequest = self.requests.decode(message).await?;
        let what = format!("export {}", request.export_id);
        // The export continues the trace of the request that asked for it; its statuses carry it on.
        let span = tracing::info_span!("export", export_id = %request.export_id, trace_id = tracing::field::Empty);
        platform::trace::within(span, message, kafka::unless_shutdown(&self.shutdown, what, self.exporter.run(request)))
            .await
    }

    /// An export whose request is dead-lettered ends `failed` with the reason, not `running`.
    async fn given_up(&self, message: &Incoming, reason: &kafka::Poison) {
        if let Ok(request) = self.requests.decode::<ExportRequest>(message).await {
            self.exporter.give_up(&request, reason).await;
        }
    }
}

/// Expires export files older than `retention` and forgets exports finished more than
/// `keep` ago, a few times per retention period.
async fn expire_old_files(exporter: Exporter, retention: Duration, keep: Duration, shutdown: Shutdown) {
    let exporter = &exporter;
    platform::jobs::every(platform::jobs::sweep_period(retention.min(keep)), shutdown, || async move {
        if let Err(error) = exporter.expire(retention).await {
            tracing::warn!(%error, "cannot expire old exports yet");
        }
        let remove_file = |status: &ExportStatus| {
            if let Some(blob) = &status.blob {
                exporter.blobs.remove(blob);
            }
        };
        let forgotten =
            platform::jobs::forget_finished(&exporter.book, &exporter.statuses, &exporter.producer, keep, remove_file);
        if let Err(error) = forgotten.await {
            tracing::warn!(%error, "cannot forget finished exports yet");
        }
    })
    .await;
}
