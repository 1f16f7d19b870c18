//! user-service's state: the users as it decided them, and the outcome of every command it
//! decided, so a redelivered command gets the same answer and no second effect.
//!
//! Nothing lives only here: on start the state is rebuilt from the events topic (users, and the
//! commands that caused them) and the replies topic (commands that were refused or changed
//! nothing).

use std::sync::Arc;

use dashmap::DashMap;
use domain::event::EventEnvelope;
use domain::reply::{EventPosition, Outcome, Rejection, Reply};
use domain::view::UserView;
use platform::kafka::{HandleError, Handler, Incoming, StartAt, Tail};
use platform::topic::{Topic, Topics};
use platform::{KafkaConfig, Shutdown};
use uuid::Uuid;

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
    pub(crate) async fn rebuild(kafka: &KafkaConfig, topics: &Topics) -> anyhow::Result<Self> {
        let state = Self::default();
        let started = std::time::Instant::now();
        // Events first: a reply's outcome only fills in what events do not say.
        let events = FromEvents { state: state.clone(), topic: topics.user_events.clone() };
        read_to_end(kafka, topics.user_events.name(), events).await?;
        let replies = FromReplies { state: state.clone(), topic: topics.user_replies.clone() };
        read_to_end(kafka, topics.user_replies.name(), replies).await?;
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

struct FromEvents {
    state: State,
    topic: Topic<contract::events::UserEvent>,
}

impl Handler for FromEvents {
    async fn handle(&self, message: &Incoming) -> Result<(), HandleError> {
        let envelope: EventEnvelope = self.topic.decode(message).await?;
        self.state.users.apply(&envelope.event);
        let event = Some(EventPosition { partition: message.partition, offset: message.offset });
        self.state.record(envelope.command_id, Recorded::Accepted { user_id: envelope.event.user_id(), event });
        Ok(())
    }
}

struct FromReplies {
    state: State,
    topic: Topic<contract::replies::UserCommandReply>,
}

impl Handler for FromReplies {
    async fn handle(&self, message: &Incoming) -> Result<(), HandleError> {
        let reply: Reply = self.topic.decode(message).await?;
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
