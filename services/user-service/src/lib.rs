//! user-service, the owner of user state.
//!
//! It consumes commands (create, update, delete), enforces the rules of `domain::decide`
//! (valid fields, unique email ignoring case, expected versions), publishes the resulting
//! events (keyed by user id) and replies to the requester with the outcome and where the event
//! landed. Redelivered commands are answered again, never applied twice.
//!
//! It is the single writer of user state: run one instance. Its state is rebuilt from Kafka on
//! every start (`state`), before any command is consumed.
//!
//! - [`config`]: environment configuration;
//! - `state`: users and command outcomes, and their rebuild from the events and replies topics;
//! - `handler`: the batch command handler (decode, decide, publish events, reply).

pub mod config;
mod handler;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use domain::avro::schemas;
use platform::Shutdown;
use platform::kafka::{Consumer, ConsumerSettings};
use platform::service::ServiceBase;

pub use config::Config;

use handler::{CommandHandler, Topics};
use state::State;

/// A started user-service: state rebuilt, ready to consume commands.
#[derive(Debug)]
pub struct Application {
    base: ServiceBase,
    config: Config,
    state: State,
    ids: SchemaIds,
}

/// The registry ids of the schemas this service reads and writes: records with exactly these
/// take the direct codec (`domain::wire`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SchemaIds {
    pub(crate) commands: u32,
    pub(crate) events: u32,
    pub(crate) replies: u32,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let base =
            ServiceBase::build("user-service", config.admin_addr, &config.kafka, &config.topics, &config.registry)
                .await?;
        base.health.not_ready("state", "rebuilding from Kafka");
        let ids = SchemaIds {
            commands: base.codec.prepare(&config.topics.user_commands, schemas::USER_COMMAND).await?,
            events: base.codec.prepare(&config.topics.user_events, schemas::USER_EVENT).await?,
            replies: base.codec.prepare(&config.topics.user_replies, schemas::USER_REPLY).await?,
        };
        let state =
            State::rebuild(&config.kafka, &base.codec, ids, &config.topics.user_events, &config.topics.user_replies)
                .await?;
        base.health.ready("state", format!("{} users", state.users.len()));
        Ok(Self { base, config, state, ids })
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.base.admin_addr()
    }

    /// Consumes commands until shutdown; fails if it had to stop because an event could not
    /// be written (a restart then rebuilds a consistent state).
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let failed = Arc::new(AtomicBool::new(false));
        let handler = CommandHandler {
            state: self.state,
            codec: self.base.codec.clone(),
            ids: self.ids,
            producer: self.base.producer.clone(),
            topics: Topics {
                events: self.config.topics.user_events.clone(),
                replies: self.config.topics.user_replies.clone(),
            },
            shutdown: shutdown.clone(),
            failed: Arc::clone(&failed),
        };
        let settings = ConsumerSettings::new(
            &self.config.consumer_group,
            &[&self.config.topics.user_commands],
            &self.config.topics.dead_letters,
        );
        let consumer = Consumer::new(&self.config.kafka, settings, self.base.producer.clone())?;
        let consuming = consumer.run_batches(&handler, self.config.max_batch, shutdown.clone());
        let (_, admin) = tokio::join!(consuming, self.base.serve_until_stopped(shutdown));
        admin?;
        if failed.load(Ordering::SeqCst) {
            anyhow::bail!("stopped because an event could not be written; restart to rebuild the state from Kafka");
        }
        Ok(())
    }
}

/// Builds and runs until shutdown (the binary's body).
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    Application::build(config).await?.run_until_stopped(shutdown).await
}
