//! Request/reply over Kafka. A command goes to the commands topic with this instance's
//! requester id; user-service answers on the replies topic, which every gateway instance tails
//! (no consumer group), waking the request that waits for that command id.
//!
//! Outcomes of recent commands from any gateway instance are kept for the status endpoint, so a
//! request that timed out (202) can be followed up on any instance.
//!
//! Several requests can wait for one command id at once (retries under one idempotency key):
//! each has its own place in the waiting list, and the reply wakes them all.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use auth::Principal;
use contract::commands::UserCommand;
use contract::replies::UserCommandReply;
use dashmap::DashMap;
use domain::command::{Command, CommandEnvelope};
use domain::reply::{REQUESTER_HEADER, Reply};
use domain::time::Timestamp;
use platform::kafka::{HandleError, Handler, Incoming, Producer, Record};
use platform::topic::Topic;
use platform::trace::TraceHeaders;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::error::ApiError;
use crate::http::Idempotency;

/// Requester ids of gateway instances start with this.
pub(crate) const REQUESTER_PREFIX: &str = "api-gateway-";

/// What became of a command sent through the bus.
#[derive(Debug)]
pub(crate) enum Sent {
    Replied(Box<Reply>),
    /// No reply within the timeout; the outcome will be at the status endpoint.
    Pending(Uuid),
}

#[derive(Debug, Clone)]
pub(crate) struct CommandBus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    producer: Producer,
    commands: Topic<UserCommand>,
    replies: Topic<UserCommandReply>,
    requester: String,
    timeout: Duration,
    status_ttl: Duration,
    waiting: DashMap<Uuid, Vec<(u64, oneshot::Sender<Reply>)>>,
    /// Tells apart the requests waiting for one command id.
    tickets: AtomicU64,
    /// Commands sent and not yet answered (status "pending").
    pending: DashMap<Uuid, Instant>,
    outcomes: DashMap<Uuid, (Reply, Instant)>,
}

impl CommandBus {
    pub(crate) fn new(
        producer: Producer,
        commands: Topic<UserCommand>,
        replies: Topic<UserCommandReply>,
        timeout: Duration,
        status_ttl: Duration,
    ) -> Self {
        let requester = format!("{REQUESTER_PREFIX}{}", Uuid::new_v4().simple());
        Self {
            inner: Arc::new(Inner {
                producer,
                commands,
                replies,
                requester,
                timeout,
                status_ttl,
                waiting: DashMap::new(),
                tickets: AtomicU64::new(0),
                pending: DashMap::new(),
                outcomes: DashMap::new(),
            }),
        }
    }

    pub(crate) fn requester(&self) -> &str {
        &self.inner.requester
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Sends `command` and waits (up to the configured timeout) for its reply. Under an
    /// idempotency key, the command takes the key's id and carries the request's digest.
    pub(crate) async fn send(
        &self,
        command: Command,
        correlation_id: Uuid,
        caller: &Principal,
        key: Option<&Idempotency>,
    ) -> Result<Sent, ApiError> {
        let envelope = CommandEnvelope {
            command_id: key.map_or_else(Uuid::now_v7, |k| k.id),
            correlation_id,
            requester: self.inner.requester.clone(),
            issued_at: Timestamp::now(),
            principal: Some(caller.id.clone()),
            request_digest: key.map(|k| k.digest.clone()),
            command,
        };
        let command_id = envelope.command_id;
        let key = envelope.command.key();
        let bytes = self
            .inner
            .commands
            .encode(envelope)
            .map_err(|e| ApiError::Internal(format!("cannot encode the command: {e}")))?;
        // Wait before sending: the reply can be faster than the send's acknowledgement. The
        // guard stops waiting however this ends, a client that went away included.
        let (tx, rx) = oneshot::channel();
        let ticket = self.inner.tickets.fetch_add(1, Ordering::Relaxed);
        self.inner.waiting.entry(command_id).or_default().push((ticket, tx));
        let _waiting = Waiting { map: &self.inner.waiting, command_id, ticket };
        self.inner.pending.insert(command_id, Instant::now());
        // Its readers continue the request's trace.
        let trace = TraceHeaders::current();
        let record = Record::new(self.inner.commands.name(), &bytes).key(key.as_bytes()).trace(&trace);
        if let Err(error) = self.inner.producer.send(record).await {
            self.inner.pending.remove(&command_id);
            return Err(ApiError::Unavailable(format!("cannot send the command: {error}")));
        }
        match tokio::time::timeout(self.inner.timeout, rx).await {
            Ok(Ok(reply)) => Ok(Sent::Replied(Box::new(reply))),
            _ => Ok(Sent::Pending(command_id)),
        }
    }

    /// The recorded outcome of a recent command, `Ok(None)` while it is pending, `Err` if unknown.
    pub(crate) fn status(&self, command_id: Uuid) -> Result<Option<Reply>, ApiError> {
        if let Some(outcome) = self.inner.outcomes.get(&command_id) {
            return Ok(Some(outcome.0.clone()));
        }
        if self.inner.pending.contains_key(&command_id) {
            return Ok(None);
        }
        Err(ApiError::NotFound(format!("no recent command {command_id}")))
    }

    /// Forgets outcomes and pending commands older than the status TTL.
    pub(crate) fn expire(&self) {
        let ttl = self.inner.status_ttl;
        self.inner.outcomes.retain(|_, (_, at)| at.elapsed() < ttl);
        self.inner.pending.retain(|_, at| at.elapsed() < ttl);
    }

    fn deliver(&self, reply: Reply) {
        self.inner.pending.remove(&reply.command_id);
        if let Some((_, waiters)) = self.inner.waiting.remove(&reply.command_id) {
            for (_, waiter) in waiters {
                let _ = waiter.send(reply.clone());
            }
        }
        self.inner.outcomes.insert(reply.command_id, (reply, Instant::now()));
    }
}

/// A request's place in the waiting map, given up when the request ends: answered, timed out,
/// failed, or dropped because its client went away.
struct Waiting<'a> {
    map: &'a DashMap<Uuid, Vec<(u64, oneshot::Sender<Reply>)>>,
    command_id: Uuid,
    ticket: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.map.remove_if_mut(&self.command_id, |_, waiters| {
            waiters.retain(|(ticket, _)| *ticket != self.ticket);
            waiters.is_empty()
        });
    }
}

/// Applies the replies topic: replies to gateway instances are recorded, the rest skipped
/// without decoding.
#[derive(Debug)]
pub(crate) struct Replies(pub(crate) CommandBus);

impl Handler for Replies {
    async fn handle(&self, message: &Incoming) -> Result<(), HandleError> {
        let for_gateway = message.header(REQUESTER_HEADER).is_some_and(|r| r.starts_with(REQUESTER_PREFIX.as_bytes()));
        if !for_gateway {
            return Ok(());
        }
        let reply: Reply = self.0.inner.replies.decode(message).await?;
        self.0.deliver(reply);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_request_dropped_while_it_waits_leaves_nothing_waiting() {
        let waiting: DashMap<Uuid, Vec<(u64, oneshot::Sender<Reply>)>> = DashMap::new();
        // Pairs of requests for one command id (a retry beside its first attempt).
        let ids: Vec<Uuid> = (0..50).map(|_| Uuid::now_v7()).collect();
        let requests = (0..100u64).map(|ticket| {
            let waiting = &waiting;
            let command_id = ids[ticket as usize / 2];
            async move {
                let (tx, rx) = oneshot::channel::<Reply>();
                waiting.entry(command_id).or_default().push((ticket, tx));
                let _waiting = Waiting { map: waiting, command_id, ticket };
                // Its client goes away before any reply: the request's future is dropped.
                let _ = tokio::time::timeout(Duration::from_millis(5), rx).await;
                std::future::pending::<()>().await;
            }
        });
        let all = futures::future::join_all(requests);
        assert!(tokio::time::timeout(Duration::from_millis(50), all).await.is_err());
        assert!(waiting.is_empty(), "{} requests still waiting", waiting.len());
    }
}
