//! Infrastructure, not one of the domain services: a Schema Registry speaking Confluent's REST
//! API for Avro, so the services and any Confluent client
//! cannot tell it from Confluent's, for Docker-free runs and CI. With Docker, compose runs
//! Confluent's own registry instead.
//!
//! Like Confluent's, it keeps its state in a compacted Kafka topic (`_schemas`, Confluent's
//! record format) and rebuilds its index from it on start, so ids and versions survive restarts.
//! One instance per topic is supported: there is no leader election between instances.
//!
//! - [`config`]: environment configuration;
//! - `record`: the `_schemas` records; `state`: the in-memory index built from them;
//! - `schema`: Avro parsing, canonical form and compatibility levels (apache-avro's check, with
//!   its "partial" compatibility counted as a refusal);
//! - [`evolution`]: `just schema-check`, the contract against its releases;
//! - [`registry`]: the operations, writes serialised and stored in Kafka before they apply;
//! - `http`: the REST endpoints; [`error`]: Confluent's error codes.

pub mod config;
mod error;
pub mod evolution;
mod http;
mod record;
mod registry;
mod schema;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use platform::Shutdown;
use platform::health::{self, Health, Listening};
use platform::kafka::topics::{self, TopicSpec};
use platform::kafka::{self as kafka, Producer};
use platform::service::Service;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub use config::Config;
pub use schema::Level;

/// A loaded registry with its listener bound.
#[derive(Debug)]
pub struct Application {
    /// Answering since it was bound.
    listener: Listening,
    registry: Arc<Registry>,
    producer: Producer,
    health: Health,
    admin: http::AdminToken,
}

use error::RegistryError;
use registry::Registry;

impl Service for Application {
    type Config = Config;

    const NAME: &'static str = "schema-registry";

    /// Health and readiness are served beside the API, on its one listener.
    fn admin_addr(&self) -> std::net::SocketAddr {
        self.listener.local_addr()
    }

    /// Binds (answering `/health`, `/ready` and 503 for the rest at once), checks Kafka,
    /// ensures the schemas topic and loads every schema from it; keeps readiness true to
    /// whether Kafka answers.
    async fn build(config: Config, shutdown: Shutdown) -> anyhow::Result<Self> {
        let admin = match &config.admin_token_file {
            Some(path) => http::AdminToken::from_file(path)?,
            None => http::AdminToken::Open,
        };
        let listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.http_addr))?;
        let health = Health::new("schema-registry");
        health.not_ready("store", "connecting to Kafka");
        let early = health::router(health.clone()).fallback(|| async { RegistryError::Starting });
        let listener = Listening::start(listener, early, shutdown.clone())?;
        tracing::info!(
            deletes_and_config_changes = admin.describe(),
            "schema registry listening on http://{}",
            listener.local_addr()
        );
        let cluster = kafka::check_connection(&config.kafka).await?;
        tracing::info!(bootstrap = %config.kafka.bootstrap_servers, brokers = cluster.brokers, "connected to Kafka");
        tokio::spawn(kafka::watch_connection(config.kafka.clone(), health.clone(), shutdown));
        let spec = TopicSpec::new(&config.kafkastore_topic)
            .partitions(1)
            .replication_factor(config.replication_factor)
            .compacted();
        topics::ensure_and_log(&config.kafka, &[spec]).await?;
        let producer = Producer::new(&config.kafka, "schema-registry")?;
        health.not_ready("store", format!("loading topic {}", config.kafkastore_topic));
        let registry =
            Registry::load(&config.kafka, &config.kafkastore_topic, producer.clone(), config.compatibility_level)
                .await
                .with_context(|| format!("cannot load schemas from topic {}", config.kafkastore_topic))?;
        health.ready("store", format!("topic {} loaded", config.kafkastore_topic));
        Ok(Self { listener, registry: Arc::new(registry), producer, health, admin })
    }

    /// Serves until shutdown, then flushes the producer.
    async fn run_until_stopped(self, _shutdown: Shutdown) -> anyhow::Result<()> {
        let router = http::router(self.registry, self.admin)
            .merge(health::router(self.health))
            .layer(TraceLayer::new_for_http());
        self.listener.serve(router).await.context("HTTP server failed")?;
        self.producer.flush(std::time::Duration::from_secs(30)).await?;
        Ok(())
    }
}

impl Application {
    pub fn http_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }
}
