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

use platform::Shutdown;
use platform::kafka::{Consumer, ConsumerSettings};
use platform::service::{Service, ServiceBase};

pub use config::Config;

use handler::{CommandHandler, Topics};
use state::State;

/// A started user-service: state rebuilt, ready to consume commands.
#[derive(Debug)]
pub struct Application {
    base: ServiceBase,
    config: Config,
    state: State,
}

impl Application {
    pub fn admin_addr(&self) -> SocketAddr {
        self.base.admin_addr()
    }
}

impl Service for Application {
    type Config = Config;

    const NAME: &'static str = "user-service";

    async fn build(config: Config, _shutdown: Shutdown) -> anyhow::Result<Self> {
        let base = ServiceBase::build(Self::NAME, config.admin_addr, &config.common).await?;
        base.health.not_ready("state", "rebuilding from Kafka");
        let state = State::rebuild(&config.common.kafka, &base.topics).await?;
        base.health.ready("state", format!("{} users", state.users.len()));
        Ok(Self { base, config, state })
    }

    /// Consumes commands until shutdown; fails if it had to stop because an event could not
    /// be written (a restart then rebuilds a consistent state).
    async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let failed = Arc::new(AtomicBool::new(false));
        let topics = &self.base.topics;
        let handler = CommandHandler {
            state: self.state,
            producer: self.base.producer.clone(),
            topics: Topics {
                commands: topics.user_commands.clone(),
                events: topics.user_events.clone(),
                replies: topics.user_replies.clone(),
            },
            shutdown: shutdown.clone(),
            failed: Arc::clone(&failed),
        };
        let settings =
            ConsumerSettings::new(&self.config.consumer_group, &[topics.user_commands.name()], &topics.dead_letters);
        let consumer = Consumer::new(&self.config.common.kafka, settings, self.base.producer.clone())?;
        let consuming = consumer.run_batches(&handler, self.config.max_batch, shutdown.clone());
        let (_, admin) = tokio::join!(consuming, self.base.serve_until_stopped(shutdown));
        admin?;
        if failed.load(Ordering::SeqCst) {
            anyhow::bail!("stopped because an event could not be written; restart to rebuild the state from Kafka");
        }
        Ok(())
    }
}
