//! The command handler: a batch of commands in, events and replies out.
//!
//! 1. Decode every command (nothing changes yet, so a registry outage just retries the batch).
//! 2. Decide each in order against the current users, applying accepted changes at once so the
//!    next command sees them (email uniqueness holds across partitions: one decision at a time).
//!    A command already decided (a redelivery) is not decided again: its recorded outcome is
//!    replied again.
//! 3. Publish the events, all at once, and wait for every acknowledgement.
//! 4. Publish the replies; only then are the offsets stored (by the consumer).
//!
//! If an event cannot be written after its change was applied in memory, memory is ahead of the
//! log: the service stops (fail-stop) and its restart rebuilds the state from the log.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use contract::MappingError;
use contract::{commands, events, replies};
use domain::command::{Command, CommandEnvelope};
use domain::decide::{Decision, decide, decide_item};
use domain::event::EventEnvelope;
use domain::reply::{Accepted, EventPosition, ItemOutcome, Outcome, REQUESTER_HEADER, Reply};
use domain::time::Timestamp;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use platform::Shutdown;
use platform::kafka::{BatchHandler, BatchOutcome, HandleError, Incoming, Producer, Record};
use platform::topic::Topic;
use uuid::Uuid;

use crate::state::{Recorded, State};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone)]
pub(crate) struct Topics {
    pub(crate) commands: Topic<commands::UserCommand>,
    pub(crate) events: Topic<events::UserEvent>,
    pub(crate) replies: Topic<replies::UserCommandReply>,
}

#[derive(Debug)]
pub(crate) struct CommandHandler {
    pub(crate) state: State,
    pub(crate) producer: Producer,
    pub(crate) topics: Topics,
    /// Triggered, with `failed` set, when memory got ahead of the log.
    pub(crate) shutdown: Shutdown,
    pub(crate) failed: Arc<AtomicBool>,
}

/// A decided command waiting for its writes.
struct Decided {
    envelope: CommandEnvelope,
    /// The events to publish, encoded, for what changed now (one per batch row that did).
    events: Vec<PendingEvent>,
}

struct PendingEvent {
    /// The command (or batch row) that caused it.
    command_id: Uuid,
    user_id: Uuid,
    bytes: Vec<u8>,
}

impl CommandHandler {
    fn fail_stop(&self, what: &str, error: &dyn std::fmt::Display) -> BoxError {
        tracing::error!(%error, "{what}: memory is ahead of the log; stopping so a restart rebuilds the state");
        self.failed.store(true, Ordering::SeqCst);
        self.shutdown.trigger();
        format!("{what}: {error}").into()
    }

    fn decide_one(&self, envelope: CommandEnvelope, now: Timestamp) -> Result<Decided, MappingError> {
        let correlation_id = envelope.correlation_id;
        let users = &self.state.users;
        let mut events = Vec::new();
        match &envelope.command {
            Command::Batch(items) => {
                for item in items {
                    let decide = || decide_item(item, users, now, Uuid::now_v7());
                    events.extend(self.settle(item.command_id, correlation_id, now, decide)?);
                }
            }
            command => {
                let decide = || decide(command, users, now, Uuid::now_v7());
                events.extend(self.settle(envelope.command_id, correlation_id, now, decide)?);
            }
        }
        Ok(Decided { envelope, events })
    }

    /// Decides and applies `command_id` unless it was decided before (a redelivery); returns
    /// its event to publish, if it changed something.
    fn settle(
        &self,
        command_id: Uuid,
        correlation_id: Uuid,
        now: Timestamp,
        decide: impl FnOnce() -> Decision,
    ) -> Result<Option<PendingEvent>, MappingError> {
        if self.state.outcome(command_id).is_some() {
            metrics::counter!("user_commands_total", "outcome" => "redelivered").increment(1);
            return Ok(None);
        }
        Ok(match decide() {
            Decision::Apply(event) => {
                let user_id = event.user_id();
                let record =
                    EventEnvelope { event_id: Uuid::now_v7(), command_id, correlation_id, occurred_at: now, event };
                self.state.users.apply(&record.event);
                // Provisional until the event's position is known; a duplicate of this command
                // later in the batch already counts as decided.
                self.state.record(command_id, Recorded::Accepted { user_id, event: None });
                let bytes = self.topics.events.encode(record)?;
                metrics::counter!("user_commands_total", "outcome" => "applied").increment(1);
                Some(PendingEvent { command_id, user_id, bytes })
            }
            Decision::Unchanged(user) => {
                self.state.record(command_id, Recorded::Accepted { user_id: user.id, event: None });
                metrics::counter!("user_commands_total", "outcome" => "unchanged").increment(1);
                None
            }
            Decision::Reject(rejection) => {
                metrics::counter!("user_commands_total", "outcome" => rejection.reason.as_str()).increment(1);
                self.state.record(command_id, Recorded::Rejected(rejection));
                None
            }
        })
    }

    fn reply_for(&self, envelope: &CommandEnvelope) -> Reply {
        let outcome = match &envelope.command {
            Command::Batch(items) => Outcome::Batch(
                items
                    .iter()
                    .map(|item| ItemOutcome {
                        command_id: item.command_id,
                        line: item.line,
                        result: match self.state.outcome(item.command_id) {
                            Some(Recorded::Accepted { user_id, .. }) => Ok(user_id),
                            Some(Recorded::Rejected(rejection)) => Err(rejection),
                            None => unreachable!("every decided row has a recorded outcome"),
                        },
                    })
                    .collect(),
            ),
            _ => match self.state.outcome(envelope.command_id) {
                Some(Recorded::Accepted { user_id, event }) => {
                    Outcome::Accepted(Accepted { user_id, user: self.state.users.get(user_id), event })
                }
                Some(Recorded::Rejected(rejection)) => Outcome::Rejected(rejection),
                None => unreachable!("every decided command has a recorded outcome"),
            },
        };
        Reply {
            command_id: envelope.command_id,
            correlation_id: envelope.correlation_id,
            requester: envelope.requester.clone(),
            outcome,
        }
    }
}

impl BatchHandler for CommandHandler {
    async fn handle_batch(&self, batch: &[Incoming]) -> BatchOutcome {
        // 1. Decode everything before changing anything.
        let mut results: Vec<Result<(), HandleError>> = Vec::with_capacity(batch.len());
        let mut commands = Vec::with_capacity(batch.len());
        for message in batch {
            match self.topics.commands.decode::<CommandEnvelope>(message).await {
                Ok(envelope) => {
                    commands.push((results.len(), envelope));
                    results.push(Ok(()));
                }
                Err(error) if error.is_retryable() => return Err(error.into()),
                Err(error) => results.push(Err(error.into())),
            }
        }

        // 2. Decide, in order.
        let now = Timestamp::now();
        let mut decided: Vec<(usize, Decided)> = Vec::with_capacity(commands.len());
        for (at, command) in commands {
            let decision = self.decide_one(command, now);
            decided.push((at, decision.map_err(|e| HandleError::retryable(self.fail_stop("encoding an event", &e)))?));
        }

        // 3. Publish the events and wait for all of them.
        let sends = decided.iter().flat_map(|(_, d)| &d.events).map(|event| async move {
            let key = event.user_id.to_string();
            let record = Record::new(self.topics.events.name(), &event.bytes).key(key.as_bytes());
            (event, self.producer.send(record).await)
        });
        let mut sends: FuturesUnordered<_> = sends.collect();
        while let Some((event, delivered)) = sends.next().await {
            let delivered = delivered.map_err(|e| HandleError::retryable(self.fail_stop("publishing an event", &e)))?;
            let position = Some(EventPosition { partition: delivered.partition, offset: delivered.offset });
            self.state.record(event.command_id, Recorded::Accepted { user_id: event.user_id, event: position });
        }

        // 4. Reply. A failure to send retries the batch: every command is decided by now, so the
        //    retry only sends the replies again. A reply that cannot be encoded never will be: its
        //    command goes to the dead letters, with the reason.
        let mut replies = Vec::with_capacity(decided.len());
        for (at, d) in &decided {
            let reply = self.reply_for(&d.envelope);
            let (key, requester) = (reply.command_id.to_string(), reply.requester.clone());
            match self.topics.replies.encode(reply) {
                Ok(bytes) => replies.push((key, requester, bytes)),
                Err(error) => results[*at] = Err(HandleError::permanent(error)),
            }
        }
        let sends = replies.iter().map(|(key, requester, bytes)| async move {
            let record = Record::new(self.topics.replies.name(), bytes)
                .key(key.as_bytes())
                .header(REQUESTER_HEADER, requester.as_bytes());
            self.producer.send(record).await
        });
        let mut sends: FuturesUnordered<_> = sends.collect();
        while let Some(delivered) = sends.next().await {
            delivered.map_err(HandleError::retryable)?;
        }
        Ok(results)
    }
}
