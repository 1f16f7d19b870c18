//! export-worker: exports users to CSV from its own projection of the user events.
//!
//! It never asks another service for data: its [`UserView`] is rebuilt from the beginning of
//! the user events on every start and followed from then on. An export request arrives on the
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

use domain::avro::{AvroRecord, schemas};
use domain::event::EventEnvelope;
use domain::export::{ExportBook, ExportRequest, ExportStatus};
use domain::view::UserView;
use domain::wire::Wire;
use platform::Shutdown;
use platform::avro::{Apply, AvroCodec};
use platform::blobs::BlobStore;
use platform::kafka::{self, Consumer, ConsumerSettings, HandleError, Handler, Incoming, StartAt, Tail};
use platform::service::ServiceBase;

pub use config::Config;

use exporter::{Exporter, Limits};

/// A started export-worker: projection and status book caught up.
#[derive(Debug)]
pub struct Application {
    base: ServiceBase,
    config: Config,
    exporter: Exporter,
}

impl Application {
    pub async fn build(config: Config, shutdown: Shutdown) -> anyhow::Result<Self> {
        let base =
            ServiceBase::build("export-worker", config.admin_addr, &config.kafka, &config.topics, &config.registry)
                .await?;
        let blobs = BlobStore::open(&config.blobs)?;
        tracing::info!(dir = %blobs.root().display(), "blob storage");
        base.codec.prepare(&config.topics.export_status, schemas::EXPORT_STATUS).await?;

        base.health.not_ready("projection", "reading the user events");
        let users = UserView::new();
        let events_id = base.codec.prepare(&config.topics.user_events, schemas::USER_EVENT).await?;
        let into = users.clone();
        let apply = Apply::new(base.codec.clone(), EventEnvelope::parse_value, move |e: EventEnvelope| {
            into.apply(&e.event);
        })
        .direct(events_id, EventEnvelope::read);
        let events = Tail::start(&config.kafka, &config.topics.user_events, StartAt::Beginning).await?;
        let projection = events.follow(apply, shutdown.clone()).await?;
        base.health.ready("projection", "caught up with the user events");
        tracing::info!(users = users.len(), "projection caught up");

        let book = ExportBook::default();
        let into = book.clone();
        let statuses = Tail::start(&config.kafka, &config.topics.export_status, StartAt::Beginning).await?;
        statuses
            .follow(Apply::new(base.codec.clone(), ExportStatus::parse_value, move |s| into.apply(s)), shutdown.clone())
            .await?;

        let exporter = Exporter {
            codec: base.codec.clone(),
            producer: base.producer.clone(),
            blobs,
            book,
            users,
            positions: projection.positions,
            status_topic: config.topics.export_status.clone(),
            limits: Limits {
                chunk_rows: config.chunk_rows.max(1),
                progress_interval: Duration::from_millis(config.progress_interval_ms.max(50)),
                catch_up_timeout: Duration::from_millis(config.catch_up_timeout_ms),
            },
        };
        Ok(Self { base, config, exporter })
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.base.admin_addr()
    }

    /// Exports one request at a time and expires old files until shutdown.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let settings = ConsumerSettings::new(
            &self.config.consumer_group,
            &[&self.config.topics.export_requests],
            &self.config.topics.dead_letters,
        );
        let consumer = Consumer::new(&self.config.kafka, settings, self.base.producer.clone())?;
        let retention = Duration::from_secs(self.config.retention_secs);
        let expiry = expire_old_files(self.exporter.clone(), retention, shutdown.clone());
        let handler =
            ExportRequests { exporter: self.exporter, codec: self.base.codec.clone(), shutdown: shutdown.clone() };
        let (_, (), admin) =
            tokio::join!(consumer.run(&handler, shutdown.clone()), expiry, self.base.serve_until_stopped(shutdown));
        admin
    }
}

struct ExportRequests {
    exporter: Exporter,
    codec: AvroCodec,
    shutdown: Shutdown,
}

impl Handler for ExportRequests {
    async fn handle(&self, message: &Incoming) -> Result<(), HandleError> {
        let request =
            ExportRequest::from_avro(self.codec.decode_message(message).await?).map_err(HandleError::permanent)?;
        let what = format!("export {}", request.export_id);
        kafka::unless_shutdown(&self.shutdown, what, self.exporter.run(request)).await
    }
}

/// Sweeps for expired exports a few times per retention period (at least every minute).
async fn expire_old_files(exporter: Exporter, retention: Duration, shutdown: Shutdown) {
    let period = (retention / 4).clamp(Duration::from_millis(250), Duration::from_secs(60));
    let mut every = tokio::time::interval(period);
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            _ = every.tick() => {
                if let Err(error) = exporter.expire(retention).await {
                    tracing::warn!(%error, "cannot expire old exports yet");
                }
            }
        }
    }
}

/// Builds and runs until shutdown (the binary's body).
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    Application::build(config, shutdown.clone()).await?.run_until_stopped(shutdown).await
}
