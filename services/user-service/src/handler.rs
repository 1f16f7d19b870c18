//! The command handler: a batch of commands in, events, state records and replies out, all
//! in the batch's transaction (the consumer loop begins it and commits it with the batch's
//! offsets: `platform::kafka::Consumer::run_transactional`).
//!
//! 1. Decode every command (nothing changes yet, so a registry outage just retries the batch).
//! 2. Decide each in order against the current users, applying accepted changes at once so the
//!    next command sees them (email uniqueness holds across partitions: one decision at a time).
//!    A command already decided (sent again) is not decided again: its recorded outcome is
//!    replied again.
//! 3. Publish the events, all at once, and wait for every acknowledgement (their positions).
//! 4. Publish each changed user's state (on its event's partition, saying which event it
//!    reflects; a tombstone for a deletion) and the replies, all at once.
//!
//! Each command has a span, from its decoding to its last acknowledged write, continuing the
//! trace its record carried (`platform::trace`); its events and its reply carry that span's
//! context, so their readers continue the trace. A batch command (an import's rows) is one span:
//! its rows' events share its context. The state records carry none: they are read only by a
//! rebuild, which continues no trace, and a header on each costs every imported row (librdkafka
//! allocates every record's header list; `just bench` measured it).
//!
//! A failure after step 2 has changed memory: the batch is abandoned, its transaction aborted
//! (none of its records is ever seen) and the service rebuilds its state from the log.

use contract::MappingError;
use contract::{commands, events, replies, state};
use domain::command::{Command, CommandEnvelope};
use domain::decide::{Decision, decide, decide_item};
use domain::event::{Event, EventEnvelope, UserState};
use domain::reply::{Accepted, EventPosition, ItemOutcome, Outcome, REQUESTER_HEADER, Reply};
use domain::time::Timestamp;
use domain::user::User;
use platform::kafka::{BatchFailed, HandleError, Incoming, Producer, Record, TransactionalHandler};
use platform::topic::Topic;
use platform::trace::{self, Parent, TraceHeaders};
use platform::users::headers as tombstone;
use tracing::Span;
use uuid::Uuid;

use crate::state::{Recorded, State};

#[derive(Debug, Clone)]
pub(crate) struct Topics {
    pub(crate) commands: Topic<commands::UserCommand>,
    pub(crate) events: Topic<events::UserEvent>,
    pub(crate) state: Topic<state::UserState>,
    pub(crate) replies: Topic<replies::UserCommandReply>,
}

#[derive(Debug)]
pub(crate) struct CommandHandler {
    pub(crate) state: State,
    /// The transactional producer of the consumer loop: every send joins the batch's
    /// transaction.
    pub(crate) producer: Producer,
    pub(crate) topics: Topics,
}

/// What to keep of an accepted command's result beyond its outcome.
#[derive(Debug, Clone, Copy)]
enum Keep {
    /// The user right after it: a single command, answered with it again if sent again.
    UserAfter,
    /// Nothing more: an import's row, answered with its user id.
    Outcome,
}

/// A decided command waiting for its writes.
struct Decided {
    envelope: CommandEnvelope,
    /// The events to publish, encoded, for what changed now (one per batch row that did).
    events: Vec<PendingEvent>,
    /// The command's span (ends once the batch's writes are acknowledged) and its context,
    /// which the command's events and reply carry.
    span: Span,
    trace: TraceHeaders,
}

struct PendingEvent {
    /// The command (or batch row) that caused it.
    command_id: Uuid,
    user_id: Uuid,
    bytes: Vec<u8>,
    /// The user after it: `None` once deleted.
    after: Option<User>,
}

/// A state record to send: a user's state, or a deletion's tombstone.
struct PendingState {
    key: String,
    partition: i32,
    /// `None`: a tombstone, with the event's position in its headers.
    bytes: Option<Vec<u8>>,
    offset: String,
}

fn abandon(what: &str, error: impl std::fmt::Display) -> BatchFailed {
    tracing::error!(%error, "{what}: the batch is abandoned and the state rebuilt from Kafka");
    BatchFailed::Abort(format!("{what}: {error}").into())
}

impl CommandHandler {
    fn decide_one(&self, envelope: CommandEnvelope, span: Span, now: Timestamp) -> Result<Decided, MappingError> {
        let _in_command = span.enter();
        let redelivered = self.state.outcome(envelope.command_id).is_some();
        let users = &self.state.users;
        let mut events = Vec::new();
        match &envelope.command {
            // A batch sent again (an import resumed) is answered from its rows' kept outcomes.
            Command::Batch(items) if self.state.batch_results(envelope.command_id, items).is_some() => {
                metrics::counter!("user_commands_total", "outcome" => "redelivered").increment(items.len() as u64);
            }
            Command::Batch(items) => {
                for item in items {
                    let decide = || decide_item(item, users, now, Uuid::now_v7());
                    events.extend(self.settle(item.command_id, &envelope, now, Keep::Outcome, decide)?);
                }
                self.state.keep_batch(envelope.command_id, items);
            }
            command => {
                let decide = || decide(command, users, now, Uuid::now_v7());
                events.extend(self.settle(envelope.command_id, &envelope, now, Keep::UserAfter, decide)?);
            }
        }
        match &envelope.command {
            Command::Batch(items) => tracing::info!(rows = items.len(), changed = events.len(), "batch decided"),
            _ => {
                let outcome = match self.state.outcome(envelope.command_id) {
                    _ if redelivered => "redelivered",
                    Some(Recorded::Accepted { .. }) if events.is_empty() => "unchanged",
                    Some(Recorded::Accepted { .. }) => "applied",
                    Some(Recorded::Rejected(rejection)) => rejection.reason.as_str(),
                    None => "undecided",
                };
                tracing::info!(outcome, "command decided");
            }
        }
        drop(_in_command);
        let trace = TraceHeaders::of(&span);
        Ok(Decided { envelope, events, span, trace })
    }

    /// Decides and applies `command_id` unless it was decided before (a redelivery); returns
    /// its event to publish, if it changed something. The event carries the correlation id and
    /// principal of `envelope`, the command (or batch) `command_id` came in.
    fn settle(
        &self,
        command_id: Uuid,
        envelope: &CommandEnvelope,
        now: Timestamp,
        keep: Keep,
        decide: impl FnOnce() -> Decision,
    ) -> Result<Option<PendingEvent>, MappingError> {
        let digest = envelope.request_digest.as_deref();
        let user_after = |id: Uuid| match keep {
            Keep::UserAfter => self.state.users.get_shared(id),
            Keep::Outcome => None,
        };
        if self.state.outcome(command_id).is_some() {
            metrics::counter!("user_commands_total", "outcome" => "redelivered").increment(1);
            return Ok(None);
        }
        Ok(match decide() {
            Decision::Apply(event) => {
                let user_id = event.user_id();
                let after = match &event {
                    Event::Created(user) | Event::Updated(user) => Some(user.clone()),
                    Event::Deleted { .. } => None,
                };
                let record = EventEnvelope {
                    event_id: Uuid::now_v7(),
                    command_id,
                    correlation_id: envelope.correlation_id,
                    occurred_at: now,
                    principal: envelope.principal.clone(),
                    event,
                };
                self.state.users.apply(&record.event);
                // Provisional until the event's position is known; a duplicate of this command
                // later in the batch already counts as decided.
                let user = user_after(user_id);
                self.state.record(command_id, Recorded::Accepted { user_id, event: None, user }, digest);
                let bytes = self.topics.events.encode(record)?;
                metrics::counter!("user_commands_total", "outcome" => "applied").increment(1);
                Some(PendingEvent { command_id, user_id, bytes, after })
            }
            Decision::Unchanged(user) => {
                let kept = user_after(user.id);
                self.state.record(command_id, Recorded::Accepted { user_id: user.id, event: None, user: kept }, digest);
                metrics::counter!("user_commands_total", "outcome" => "unchanged").increment(1);
                None
            }
            Decision::Reject(rejection) => {
                metrics::counter!("user_commands_total", "outcome" => rejection.reason.as_str()).increment(1);
                self.state.record(command_id, Recorded::Rejected(rejection), digest);
                None
            }
        })
    }

    fn reply_for(&self, envelope: &CommandEnvelope) -> Reply {
        let outcome = match &envelope.command {
            Command::Batch(items) => {
                let results = self.state.batch_results(envelope.command_id, items);
                let results = results.unwrap_or_else(|| unreachable!("every decided batch has its outcomes kept"));
                let outcomes = items.iter().zip(results);
                Outcome::Batch(
                    outcomes
                        .map(|(item, result)| ItemOutcome { command_id: item.command_id, line: item.line, result })
                        .collect(),
                )
            }
            _ => match self.state.outcome(envelope.command_id) {
                Some(Recorded::Accepted { user_id, event, user }) => {
                    Outcome::Accepted(Accepted { user_id, user: user.map(|u| u.to_user()), event })
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
            // The first decision's, so a requester can tell its retry from another request.
            request_digest: self.state.digest(envelope.command_id),
        }
    }
}

impl TransactionalHandler for CommandHandler {
    async fn handle_batch(&self, batch: &[Incoming]) -> Result<Vec<Result<(), HandleError>>, BatchFailed> {
        // 1. Decode everything before changing anything.
        let mut results: Vec<Result<(), HandleError>> = Vec::with_capacity(batch.len());
        let mut commands = Vec::with_capacity(batch.len());
        for message in batch {
            match self.topics.commands.decode::<CommandEnvelope>(message).await {
                Ok(envelope) => {
                    let span = tracing::info_span!("command", command_id = %envelope.command_id,
                        kind = envelope.command.kind(), trace_id = tracing::field::Empty);
                    trace::continue_trace(&span, Parent::from_record(message));
                    commands.push((results.len(), envelope, span));
                    results.push(Ok(()));
                }
                Err(error) if error.is_retryable() => return Err(BatchFailed::Retry(error.into())),
                Err(error) => results.push(Err(error.into())),
            }
        }

        // 1b. A command answered before the last restart: its outcome, from the reply kept then.
        for (_, envelope, _) in &commands {
            if let Err(error) = self.state.restore(envelope.command_id, &self.topics.replies).await {
                if error.is_retryable() {
                    return Err(BatchFailed::Retry(error.into()));
                }
                // Undecodable: the command is decided again, as if never answered.
                tracing::warn!(command_id = %envelope.command_id, %error, "a kept reply cannot be read");
            }
        }

        // 2. Decide, in order.
        let now = Timestamp::now();
        let mut decided: Vec<(usize, Decided)> = Vec::with_capacity(commands.len());
        for (at, command, span) in commands {
            let decision = self.decide_one(command, span, now).map_err(|e| abandon("encoding an event", e))?;
            decided.push((at, decision));
        }

        // 3. Publish the events and wait for all of them: their positions go in the states.
        let events: Vec<_> =
            decided.iter().flat_map(|(_, d)| d.events.iter().map(move |event| (event, &d.trace))).collect();
        let keys: Vec<String> = events.iter().map(|(event, _)| event.user_id.to_string()).collect();
        let records = events.iter().zip(&keys).map(|((event, trace), key)| {
            Record::new(self.topics.events.name(), &event.bytes).key(key.as_bytes()).trace(trace)
        });
        let sent = self.producer.send_all(records).await;
        let mut delivered_events = Vec::with_capacity(sent.len());
        for ((event, _), delivered) in events.iter().zip(sent) {
            let delivered = delivered.map_err(|e| abandon("publishing an event", e))?;
            let position = EventPosition { partition: delivered.partition, offset: delivered.offset };
            self.state.located(event.command_id, position);
            delivered_events.push((event, position));
        }
        // A user's states go out in the order of its events.
        delivered_events.sort_unstable_by_key(|(_, at)| (at.partition, at.offset));
        let mut states = Vec::with_capacity(delivered_events.len());
        for (event, at) in delivered_events {
            self.state.positions.record_applied(at.partition, at.offset);
            let bytes = match &event.after {
                Some(user) => {
                    let state = UserState { user: user.clone(), event: at };
                    Some(self.topics.state.encode(state).map_err(|e| abandon("encoding a user state", e))?)
                }
                None => None,
            };
            states.push(PendingState {
                key: event.user_id.to_string(),
                partition: at.partition,
                bytes,
                offset: at.offset.to_string(),
            });
        }

        // 4. The states and the replies. A reply that cannot be encoded never will be: its
        //    command goes to the dead letters (in this transaction), with the reason.
        let mut replies = Vec::with_capacity(decided.len());
        for (at, d) in &decided {
            let reply = self.reply_for(&d.envelope);
            let (key, requester) = (reply.command_id.to_string(), reply.requester.clone());
            match self.topics.replies.encode(reply) {
                Ok(bytes) => replies.push((key, requester, bytes, &d.trace)),
                Err(error) => {
                    d.span.in_scope(|| tracing::warn!(%error, "the reply cannot be encoded"));
                    results[*at] = Err(HandleError::permanent(error));
                }
            }
        }
        let partitions: Vec<String> = states.iter().map(|state| state.partition.to_string()).collect();
        let state_records = states.iter().zip(&partitions).map(|(state, partition)| {
            let topic = self.topics.state.name();
            let record = match &state.bytes {
                Some(bytes) => Record::new(topic, bytes).key(state.key.as_bytes()),
                None => Record::tombstone(topic, state.key.as_bytes())
                    .header(tombstone::EVENT_PARTITION, partition.as_bytes())
                    .header(tombstone::EVENT_OFFSET, state.offset.as_bytes()),
            };
            record.partition(state.partition)
        });
        let reply_records = replies.iter().map(|(key, requester, bytes, trace)| {
            Record::new(self.topics.replies.name(), bytes)
                .key(key.as_bytes())
                .header(REQUESTER_HEADER, requester.as_bytes())
                .trace(trace)
        });
        let sent = self.producer.send_all(state_records.chain(reply_records)).await;
        for (at, delivered) in sent.into_iter().enumerate() {
            let what = if at < states.len() { "publishing a user state" } else { "publishing a reply" };
            delivered.map_err(|e| abandon(what, e))?;
        }
        Ok(results)
    }
}
