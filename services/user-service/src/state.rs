//! user-service's state: the users as it decided them, and the outcome of every command it
//! decided, so a redelivered command gets the same answer and no second effect.
//!
//! Nothing lives only here: on start the state is rebuilt from the events topic (users, and the
//! commands that caused them) and the replies topic (commands that were refused or changed
//! nothing).

use std::sync::Arc;

use dashmap::DashMap;
use domain::avro::AvroRecord;
use domain::event::EventEnvelope;
use domain::reply::{EventPosition, Outcome, Rejection, Reply};
use domain::view::UserView;
use domain::wire::Wire;
use platform::avro::AvroCodec;
use platform::kafka::{HandleError, Handler, Incoming, StartAt, Tail};
use platform::{KafkaConfig, Shutdown};
use uuid::Uuid;

use crate::SchemaIds;

/// What a command came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// It took effect (`event` is where its event is; none if nothing changed).
    Accepted {
        user_id: Uuid,
        event: Option<EventPosition>,
    },
    Rejected(Rejection),
}

#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    pub(crate) users: UserView,
    outcomes: Arc<DashMap<Uuid, Recorded, ahash::RandomState>>,
}

impl State {
    pub(crate) fn outcome(&self, command_id: Uuid) -> Option<Recorded> {
        self.outcomes.get(&command_id).map(|r| r.clone())
    }

    pub(crate) fn record(&self, command_id: Uuid, outcome: Recorded) {
        self.outcomes.insert(command_id, outcome);
    }

    /// Rebuilds from the events and replies topics, returning once both are read to the end.
    pub(crate) async fn rebuild(
        kafka: &KafkaConfig,
        codec: &AvroCodec,
        ids: SchemaIds,
        events_topic: &str,
        replies_topic: &str,
    ) -> anyhow::Result<Self> {
        let state = Self::default();
        let started = std::time::Instant::now();
        // Events first: a reply's outcome only fills in what events do not say.
        read_to_end(kafka, events_topic, FromEvents { state: state.clone(), codec: codec.clone(), id: ids.events })
            .await?;
        read_to_end(kafka, replies_topic, FromReplies { state: state.clone(), codec: codec.clone(), id: ids.replies })
            .await?;
        tracing::info!(
            users = state.users.len(),
            commands = state.outcomes.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "state rebuilt from Kafka"
        );
        Ok(state)
    }
}

/// Applies `topic` from its beginning to where it ends now.
async fn read_to_end<H: Handler + 'static>(kafka: &KafkaConfig, topic: &str, handler: H) -> anyhow::Result<()> {
    let stop = Shutdown::new();
    let following = Tail::start(kafka, topic, StartAt::Beginning).await?.follow(handler, stop.clone()).await?;
    stop.trigger();
    following.task.await?;
    Ok(())
}

/// Decodes a message of `T`, directly when it has exactly the schema `id`.
async fn decode<T: AvroRecord + Wire>(codec: &AvroCodec, id: u32, message: &Incoming) -> Result<T, HandleError> {
    codec.decode_direct(message, id, T::read, T::parse_value).await
}

struct FromEvents {
    state: State,
    codec: AvroCodec,
    id: u32,
}

impl Handler for FromEvents {
    async fn handle(&self, message: &Incoming) -> Result<(), HandleError> {
        let envelope: EventEnvelope = decode(&self.codec, self.id, message).await?;
        self.state.users.apply(&envelope.event);
        let event = Some(EventPosition { partition: message.partition, offset: message.offset });
        self.state.record(envelope.command_id, Recorded::Accepted { user_id: envelope.event.user_id(), event });
        Ok(())
    }
}

struct FromReplies {
    state: State,
    codec: AvroCodec,
    id: u32,
}

impl Handler for FromReplies {
    async fn handle(&self, message: &Incoming) -> Result<(), HandleError> {
        let reply: Reply = decode(&self.codec, self.id, message).await?;
        // An event-backed outcome is authoritative; replies fill in the rest.
        let fill = |command_id, recorded| {
            self.state.outcomes.entry(command_id).or_insert(recorded);
        };
        match reply.outcome {
            Outcome::Rejected(rejection) => fill(reply.command_id, Recorded::Rejected(rejection)),
            Outcome::Accepted(accepted) => {
                fill(reply.command_id, Recorded::Accepted { user_id: accepted.user_id, event: accepted.event })
            }
            Outcome::Batch(items) => {
                for item in items {
                    let recorded = match item.result {
                        Ok(user_id) => Recorded::Accepted { user_id, event: None },
                        Err(rejection) => Recorded::Rejected(rejection),
                    };
                    fill(item.command_id, recorded);
                }
            }
        }
        Ok(())
    }
}
