//! user-service, the owner of user state.
//!
//! It consumes commands (create, update, delete), enforces the rules of `domain::decide`
//! (valid fields, unique email ignoring case, expected versions), and for each batch of
//! commands commits in one Kafka transaction: the events (keyed by user id), each changed
//! user's latest state on the compacted state topic, the replies (the outcome and where the
//! event landed) and the consumed offsets. Commands sent again are answered again, never
//! applied twice.
//!
//! It is the single writer of user state, and Kafka enforces it: its transactional id is
//! fixed, so starting a second instance fences the first, which stops. Its state is rebuilt
//! from Kafka on every start (`state`), after the transactions are initialised and before any
//! command is consumed, and again after a transaction that could not commit.
//!
//! - [`config`]: environment configuration;
//! - `state`: users and recent command outcomes, and their rebuild;
//! - `handler`: the batch command handler (decode, decide, events, states, replies).

pub mod config;
mod handler;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use domain::event::UserState;
use platform::Shutdown;
use platform::kafka::{Consumer, Producer};
use platform::kafka::{ConsumerSettings, Record, TransactionError, TransactionalStop};
use platform::service::{Service, ServiceBase};

pub use config::Config;

use handler::{CommandHandler, Topics};
use state::State;

/// How long the consumer waits, idle, before committing its positions in a transaction of
/// its own: how soon a fenced instance finds out when no command comes.
const FENCING_CHECK: Duration = Duration::from_secs(3);

/// A started user-service: transactions initialised, state rebuilt, ready to consume commands.
#[derive(Debug)]
pub struct Application {
    base: ServiceBase,
    config: Config,
    producer: Producer,
    state: State,
}

impl Service for Application {
    type Config = Config;

    const NAME: &'static str = "user-service";

    fn admin_addr(&self) -> SocketAddr {
        self.base.admin_addr()
    }

    async fn build(config: Config, shutdown: Shutdown) -> anyhow::Result<Self> {
        let base = ServiceBase::build(Self::NAME, config.admin_addr, &config.common, &shutdown).await?;
        let producer = Producer::transactional(&base.kafka, Self::NAME, &config.transactional_id)?;
        base.health.not_ready("state", "initialising transactions");
        producer.init_transactions().await.context("initialising Kafka transactions")?;
        tracing::info!(transactional_id = %config.transactional_id, "transactions initialised: any earlier instance is fenced");
        let state = rebuild(&base, &producer).await?;
        Ok(Self { base, config, producer, state })
    }

    /// Consumes commands until shutdown. A batch whose transaction could not commit leaves
    /// memory ahead of the log: the state is rebuilt and consumption resumes from the last
    /// committed offsets. Fails if fenced by a newer instance.
    async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let Self { base, config, producer, state } = self;
        let topics = &base.topics;
        let topics = Topics {
            commands: topics.user_commands.clone(),
            events: topics.user_events.clone(),
            state: topics.user_state.clone(),
            replies: topics.user_replies.clone(),
        };
        // The digest reads whichever state is current (a rebuild replaces it).
        let current = Arc::new(RwLock::new(state.clone()));
        let digest_of = Arc::clone(&current);
        let source = move || {
            let state = digest_of.read().unwrap_or_else(PoisonError::into_inner);
            (state.users.clone(), state.positions.clone())
        };
        base.admin_route("/digest", platform::users::digest_route(Self::NAME, source));
        let consuming = async {
            let (mut state, mut producer) = (state, producer);
            loop {
                let settings =
                    ConsumerSettings::new(&config.consumer_group, &[topics.commands.name()], &base.topics.dead_letters)
                        .max_batch_bytes(config.max_batch_bytes);
                let consumer = Consumer::transactional(&base.kafka, settings, producer.clone())?
                    .ready_while_current(base.health.clone(), "commands");
                let handler =
                    CommandHandler { state: state.clone(), producer: producer.clone(), topics: topics.clone() };
                let consumed = tokio::select! {
                    consumed = consumer.run_transactional(&handler, config.max_batch, FENCING_CHECK, shutdown.clone()) => consumed,
                    never = expire_outcomes(&state) => match never {},
                };
                match consumed {
                    Ok(()) => return Ok(()),
                    Err(TransactionalStop::Transaction(TransactionError::Fenced(id))) => {
                        shutdown.trigger();
                        anyhow::bail!(
                            "fenced: another user-service with transactional id {id:?} started; this one stops"
                        );
                    }
                    Err(TransactionalStop::Transaction(error @ TransactionError::Fatal(_))) => {
                        shutdown.trigger();
                        return Err(error.into());
                    }
                    Err(TransactionalStop::Transaction(stuck @ TransactionError::Stuck { .. })) => {
                        // A new producer under the same transactional id fences the wedged one
                        // and aborts its transaction; the batch is decided again after a rebuild.
                        tracing::warn!(error = %stuck, "replacing the transactional producer and rebuilding the state");
                        metrics::counter!("user_service_rebuilds_total").increment(1);
                        base.health.not_ready("state", "replacing a wedged transactional producer");
                        producer = loop {
                            match replacement(&base.kafka, &config.transactional_id).await {
                                Ok(producer) => break producer,
                                Err(error) => {
                                    tracing::warn!(error = %format!("{error:#}"), "no new transactional producer yet; trying again in 1 s");
                                    tokio::select! {
                                        () = shutdown.wait() => return Ok(()),
                                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                                    }
                                }
                            }
                        };
                        state = rebuild(&base, &producer).await?;
                        *current.write().unwrap_or_else(PoisonError::into_inner) = state.clone();
                    }
                    Err(stopped) => {
                        tracing::warn!(error = %stopped, "a batch did not commit; rebuilding the state from Kafka");
                        metrics::counter!("user_service_rebuilds_total").increment(1);
                        base.health.not_ready("state", "rebuilding after an aborted transaction");
                        state = rebuild(&base, &producer).await?;
                        *current.write().unwrap_or_else(PoisonError::into_inner) = state.clone();
                    }
                }
            }
        };
        let (consumed, admin) = tokio::join!(consuming, base.serve_until_stopped());
        admin?;
        consumed
    }
}

/// A new transactional producer under `transactional_id`, its transactions initialised: it
/// fences whichever producer had the id before (aborting its open transaction).
async fn replacement(kafka: &platform::KafkaConfig, transactional_id: &str) -> anyhow::Result<Producer> {
    let producer = Producer::transactional(kafka, Application::NAME, transactional_id)?;
    producer.init_transactions().await.context("initialising Kafka transactions again")?;
    Ok(producer)
}

/// Rebuilds the state from Kafka; on the first start of a deployment from before the state
/// topic, writes every live user's state to it (one transaction: all or nobody).
async fn rebuild(base: &ServiceBase, producer: &Producer) -> anyhow::Result<State> {
    base.health.not_ready("state", "rebuilding from Kafka");
    let rebuilt = State::rebuild(base).await?;
    let state = rebuilt.state;
    if let Some(partitions) = rebuilt.backfill {
        backfill(base, producer, &state, &partitions).await.context("backfilling the users' state topic")?;
    }
    base.health.ready("state", format!("{} users", state.users.len()));
    Ok(state)
}

/// Writes the state of every live user, each on the partition of its events, saying it
/// reflects everything its partition held when the events were read.
async fn backfill(
    base: &ServiceBase,
    producer: &Producer,
    state: &State,
    partitions: &std::collections::HashMap<uuid::Uuid, i32>,
) -> anyhow::Result<()> {
    let topic = &base.topics.user_state;
    let last = state.positions.last_applied();
    tracing::info!(users = state.users.len(), topic = %topic.name(), "backfilling the users' state from their events");
    producer.begin().await?;
    let written = async {
        // In chunks, so what waits for acknowledgement stays bounded.
        for chunk in state.users.ids().chunks(10_000) {
            let mut records = Vec::with_capacity(chunk.len());
            for user in chunk.iter().filter_map(|id| state.users.get(*id)) {
                let partition = *partitions
                    .get(&user.id)
                    .with_context(|| format!("user {} has no known events partition", user.id))?;
                let offset = last.get(&partition).copied().unwrap_or_default();
                let key = user.id.to_string();
                let event = domain::reply::EventPosition { partition, offset };
                records.push((key, partition, topic.encode(UserState { user, event })?));
            }
            let sends = records.iter().map(|(key, partition, bytes)| {
                Record::new(topic.name(), bytes).key(key.as_bytes()).partition(*partition)
            });
            for sent in producer.send_all(sends).await {
                sent?;
            }
        }
        anyhow::Ok(())
    };
    if let Err(error) = written.await {
        producer.abort().await?;
        return Err(error);
    }
    producer.commit().await?;
    tracing::info!(users = state.users.len(), "users' state backfilled");
    Ok(())
}

/// Forgets outcomes older than the de-duplication window, every minute; never returns.
async fn expire_outcomes(state: &State) -> std::convert::Infallible {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        let forgotten = state.expire();
        metrics::gauge!("user_service_remembered_commands").set(state.remembered() as f64);
        if forgotten > 0 {
            tracing::debug!(forgotten, "outcomes past the de-duplication window forgotten");
        }
    }
}
