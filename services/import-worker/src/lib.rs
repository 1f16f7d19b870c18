//! import-worker: imports users from uploaded CSV files.
//!
//! An import request (a claim check on a file in blob storage) arrives on the import requests
//! topic; the worker reads the file, validates rows in parallel (rayon, off the async runtime),
//! sends valid rows to user-service as batches of create (or upsert) commands, tallies every
//! row's outcome from the replies, publishes progress on the import status topic, and writes an
//! error report (line, field, reason per rejected row) to blob storage. The request's offset is
//! stored only once the import has finished, so a crashed import resumes by itself.
//!
//! - [`config`]: environment configuration;
//! - `reader`: parsing and parallel validation of the file;
//! - `importer`: one import from file to final status;
//! - `replies`: routing user-service's replies to the running import.

pub mod config;
mod importer;
mod reader;
mod replies;

use std::net::SocketAddr;
use std::time::Duration;

use contract::imports::ImportRequested;
use domain::import::{ImportBook, ImportRequest, ImportStatus};
use platform::Shutdown;
use platform::blobs::BlobStore;
use platform::kafka::{self, Consumer, ConsumerSettings, HandleError, Handler, Incoming, StartAt, Tail};
use platform::service::{Service, ServiceBase};
use platform::topic::Topic;

pub use config::Config;

use importer::{Importer, Limits};
use replies::{Replies, Router};

/// A started import-worker: status book caught up, replies followed.
#[derive(Debug)]
pub struct Application {
    base: ServiceBase,
    config: Config,
    importer: Importer,
}

impl Service for Application {
    type Config = Config;

    fn admin_addr(&self) -> SocketAddr {
        self.base.admin_addr()
    }

    const NAME: &'static str = "import-worker";

    async fn build(config: Config, shutdown: Shutdown) -> anyhow::Result<Self> {
        let base = ServiceBase::build(Self::NAME, config.admin_addr, &config.common, &shutdown).await?;
        let blobs = BlobStore::open(&config.blobs)?;
        let topics = &base.topics;
        let book = ImportBook::default();
        base.read_book("imports", &topics.import_status, &book, shutdown.clone()).await?;
        let router = Router::default();
        let replies = Tail::start(&base.kafka, topics.user_replies.name(), StartAt::End).await?;
        replies
            .follow(Replies { router: router.clone(), topic: topics.user_replies.clone() }, shutdown.clone())
            .await?;
        let importer = Importer {
            producer: base.producer.clone(),
            blobs,
            book,
            router,
            commands: topics.user_commands.clone(),
            statuses: topics.import_status.clone(),
            limits: Limits {
                batch_rows: config.batch_rows.max(1),
                chunk_rows: config.chunk_rows.max(1),
                csv: config.csv.limits(),
                max_in_flight_rows: config.max_in_flight_rows.max(config.batch_rows),
                progress_interval: Duration::from_millis(config.progress_interval_ms.max(50)),
                reply_timeout: Duration::from_secs(config.reply_timeout_secs.max(1)),
            },
        };
        Ok(Self { base, config, importer })
    }

    /// Imports requested files one at a time until shutdown.
    async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let topics = &self.base.topics;
        let mut settings =
            ConsumerSettings::new(&self.config.consumer_group, &[topics.import_requests.name()], &topics.dead_letters);
        // An import can take a while; the group must not give its partition away meanwhile.
        settings.max_poll_interval = Duration::from_secs(3600);
        let consumer = Consumer::new(&self.base.kafka, settings, self.base.producer.clone())?
            .ready_while_current(self.base.health.clone(), "import requests");
        let handler = ImportRequests {
            importer: self.importer,
            requests: topics.import_requests.clone(),
            shutdown: shutdown.clone(),
        };
        let keep = Duration::from_secs(self.config.job_retention_secs);
        let forgetting = forget_finished_imports(&handler.importer, keep, shutdown.clone());
        let (_, (), admin) =
            tokio::join!(consumer.run(&handler, shutdown.clone()), forgetting, self.base.serve_until_stopped());
        admin
    }
}

/// Forgets imports finished more than `keep` ago, and their error reports.
async fn forget_finished_imports(importer: &Importer, keep: Duration, shutdown: Shutdown) {
    let remove_report = |status: &ImportStatus| {
        if let Some(blob) = &status.errors_blob {
            importer.blobs.remove(blob);
        }
    };
    platform::jobs::every(platform::jobs::sweep_period(keep), shutdown, || async {
        let forgotten = platform::jobs::forget_finished(
            &importer.book,
            &importer.statuses,
            &importer.producer,
            keep,
            remove_report,
        );
        if let Err(error) = forgotten.await {
            tracing::warn!(%error, "cannot forget finished imports yet");
        }
    })
    .await;
}

struct ImportRequests {
    importer: Importer,
    requests: Topic<ImportRequested>,
    shutdown: Shutdown,
}

impl Handler for ImportRequests {
    async fn handle(&self, message: &Incoming) -> Result<(), HandleError> {
        let request: ImportRequest = self.requests.decode(message).await?;
        let what = format!("import {}", request.import_id);
        // The import continues the trace of the request that asked for it; its statuses and commands carry it on.
        let span = tracing::info_span!("import", import_id = %request.import_id, trace_id = tracing::field::Empty);
        platform::trace::within(span, message, kafka::unless_shutdown(&self.shutdown, what, self.importer.run(request)))
            .await
    }

    /// An import whose request is dead-lettered ends `failed` with the reason, not `running`.
    async fn given_up(&self, message: &Incoming, reason: &kafka::Poison) {
        if let Ok(request) = self.requests.decode::<ImportRequest>(message).await {
            self.importer.give_up(&request, reason).await;
        }
    }
}
