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
//! - `replies`: routing user-service's replies to the running import;
//! - [`generate`]: realistic test files (`just gen-csv`).

pub mod config;
pub mod generate;
mod importer;
mod reader;
mod replies;

use std::net::SocketAddr;
use std::time::Duration;

use domain::avro::{AvroRecord, schemas};
use domain::import::{ImportBook, ImportRequest, ImportStatus};
use platform::Shutdown;
use platform::avro::{Apply, AvroCodec};
use platform::blobs::BlobStore;
use platform::kafka::{self, Consumer, ConsumerSettings, HandleError, Handler, Incoming, StartAt, Tail};
use platform::service::ServiceBase;

pub use config::Config;

use importer::{Importer, Limits};
use replies::{Replies, Router};

/// The registry ids of the schemas on the hot path: such records take the direct codec.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SchemaIds {
    pub(crate) commands: u32,
    pub(crate) replies: u32,
}

/// A started import-worker: status book caught up, replies followed.
#[derive(Debug)]
pub struct Application {
    base: ServiceBase,
    config: Config,
    importer: Importer,
}

impl Application {
    pub async fn build(config: Config, shutdown: Shutdown) -> anyhow::Result<Self> {
        let base =
            ServiceBase::build("import-worker", config.admin_addr, &config.kafka, &config.topics, &config.registry)
                .await?;
        let blobs = BlobStore::open(&config.blobs)?;
        tracing::info!(dir = %blobs.root().display(), "blob storage");
        base.codec.prepare(&config.topics.import_status, schemas::IMPORT_STATUS).await?;
        let ids = SchemaIds {
            commands: base.codec.prepare(&config.topics.user_commands, schemas::USER_COMMAND).await?,
            replies: base.codec.prepare(&config.topics.user_replies, schemas::USER_REPLY).await?,
        };
        let book = ImportBook::default();
        let statuses = Tail::start(&config.kafka, &config.topics.import_status, StartAt::Beginning).await?;
        let book_ = book.clone();
        statuses
            .follow(
                Apply::new(base.codec.clone(), ImportStatus::parse_value, move |s| book_.apply(s)),
                shutdown.clone(),
            )
            .await?;
        let router = Router::default();
        let replies = Tail::start(&config.kafka, &config.topics.user_replies, StartAt::End).await?;
        replies
            .follow(Replies { router: router.clone(), codec: base.codec.clone(), id: ids.replies }, shutdown.clone())
            .await?;
        let importer = Importer {
            codec: base.codec.clone(),
            ids,
            producer: base.producer.clone(),
            blobs,
            book,
            router,
            commands_topic: config.topics.user_commands.clone(),
            status_topic: config.topics.import_status.clone(),
            limits: Limits {
                batch_rows: config.batch_rows.max(1),
                chunk_rows: config.chunk_rows.max(1),
                max_in_flight_rows: config.max_in_flight_rows.max(config.batch_rows),
                progress_interval: Duration::from_millis(config.progress_interval_ms.max(50)),
            },
        };
        Ok(Self { base, config, importer })
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.base.admin_addr()
    }

    /// Imports requested files one at a time until shutdown.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let mut settings = ConsumerSettings::new(
            &self.config.consumer_group,
            &[&self.config.topics.import_requests],
            &self.config.topics.dead_letters,
        );
        // An import can take a while; the group must not give its partition away meanwhile.
        settings.max_poll_interval = Duration::from_secs(3600);
        let consumer = Consumer::new(&self.config.kafka, settings, self.base.producer.clone())?;
        let handler =
            ImportRequests { importer: self.importer, codec: self.base.codec.clone(), shutdown: shutdown.clone() };
        let (_, admin) =
            tokio::join!(consumer.run(&handler, shutdown.clone()), self.base.serve_until_stopped(shutdown));
        admin
    }
}

struct ImportRequests {
    importer: Importer,
    codec: AvroCodec,
    shutdown: Shutdown,
}

impl Handler for ImportRequests {
    async fn handle(&self, message: &Incoming) -> Result<(), HandleError> {
        let request =
            ImportRequest::from_avro(self.codec.decode_message(message).await?).map_err(HandleError::permanent)?;
        let what = format!("import {}", request.import_id);
        kafka::unless_shutdown(&self.shutdown, what, self.importer.run(request)).await
    }
}

/// Builds and runs until shutdown (the binary's body).
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    Application::build(config, shutdown.clone()).await?.run_until_stopped(shutdown).await
}
