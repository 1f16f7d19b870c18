//! The users read model, built the same way by every service that holds users (user-service
//! to decide, the gateway to answer reads, export-worker to export).
//!
//! A cold start reads `users.state` to its end: one record per live user (compacted), each
//! saying which event on `users.events` it reflects (same key, same partition), and a
//! tombstone per deleted user whose headers say the same. It then follows `users.events` from
//! the last event each partition's state reflects. Records of one partition come in the order
//! user-service committed them, and applying is idempotent by version, so starting a little
//! early (a tombstone already purged) re-applies events harmlessly; a gap cannot happen
//! because a state record is committed in the same transaction as its event. A cold start
//! therefore costs what the live users cost, not what the history does.
//!
//! A record that cannot be read goes to the dead-letter topic with the reason and is counted
//! (`kafka_tail_dead_lettered_total`, and the rebuild's log line). After an unreadable state
//! record its partition's events are read from their beginning instead, so the user comes back
//! from its events as far as retention keeps them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use contract::{events, state};
use dashmap::DashMap;
use domain::event::{EventEnvelope, UserState};
use domain::reply::EventPosition;
use domain::view::UserView;
use uuid::Uuid;

use crate::kafka::{FollowError, Following, HandleError, Handler, Incoming, Positions, StartAt, Tail};
use crate::service::ServiceBase;
use crate::shutdown::Shutdown;
use crate::topic::Topic;

/// Headers of a tombstone on `users.state`: the deletion's event.
pub mod headers {
    pub const EVENT_PARTITION: &str = "event.partition";
    pub const EVENT_OFFSET: &str = "event.offset";
}

/// What a read of the users found, beside the view it filled.
#[derive(Debug)]
pub struct UsersRead {
    /// The users, followed live until the shutdown `read_users` was given.
    pub view: UserView,
    /// The events tail: its positions say how far the view has applied each partition.
    pub following: Following,
    /// Users read from the state topic (before the events).
    pub from_state: usize,
    /// Nothing was ever written to the state topic: a deployment from before it existed,
    /// whose users came from the events alone (user-service backfills the state).
    pub state_never_written: bool,
    /// Records dead-lettered while catching up (state and events).
    pub dead_lettered: u64,
}

impl ServiceBase {
    /// The users projection of a reader (the gateway, export-worker): a fresh view filled by
    /// [`ServiceBase::read_users`] and followed until `shutdown`, its digest served at
    /// `/digest` on the admin port. Returns the view and how far it has applied the events.
    pub async fn users_projection(&self, shutdown: Shutdown) -> Result<(UserView, Positions), FollowError> {
        let read = self.read_users(|_, _| {}, shutdown).await?;
        let (users, positions) = (read.view, read.following.positions);
        let source = (users.clone(), positions.clone());
        self.admin_route("/digest", digest_route(self.name, move || source.clone()));
        Ok((users, positions))
    }

    /// Fills a view from `users.state` then `users.events` (see the module), handing every
    /// event applied and its position to `on_event`; returns once caught up with where both
    /// topics ended. The readiness check `users` fails until then. The events are followed
    /// until `shutdown`.
    pub async fn read_users<F>(&self, on_event: F, shutdown: Shutdown) -> Result<UsersRead, FollowError>
    where
        F: Fn(&EventEnvelope, EventPosition) + Send + Sync + 'static,
    {
        let started = Instant::now();
        let (state_topic, events_topic) = (&self.topics.user_state, &self.topics.user_events);
        self.health.not_ready("users", format!("reading {}", state_topic.name()));
        let tail =
            Tail::start(&self.kafka, state_topic.name(), StartAt::Beginning).await?.dead_letters(self.dead_letters());
        let state_never_written = tail.never_written();
        // Not sized ahead: the offsets of a compacted topic say little about how many records
        // are left in it (sizing by them held memory for a million users over ten thousand).
        let view = &UserView::new();
        let state_dead_lettered = tail.dead_lettered();
        let from_state = FromState {
            view: view.clone(),
            topic: state_topic.clone(),
            reflected: Arc::default(),
            unreadable: Arc::default(),
        };
        let (reflected, unreadable) = (Arc::clone(&from_state.reflected), Arc::clone(&from_state.unreadable));
        let stop = Shutdown::new();
        let reading = tail.follow(from_state, stop.clone()).await?;
        stop.trigger();
        let _ = reading.task.await;
        let from_state = view.len();

        let mut start: HashMap<i32, i64> = reflected.iter().map(|e| (*e.key(), *e.value())).collect();
        for partition in unreadable.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            tracing::warn!(
                partition,
                "an unreadable state record: reading this partition's events from their beginning"
            );
            start.remove(partition);
        }
        self.health.not_ready("users", format!("following {} from the state's positions", events_topic.name()));
        let tail = Tail::start(&self.kafka, events_topic.name(), StartAt::After(start))
            .await?
            .dead_letters(self.dead_letters())
            .ready_while_current(self.health.clone(), "users");
        let events_dead_lettered = tail.dead_lettered();
        let handler = FromEvents { view: view.clone(), topic: events_topic.clone(), on_event };
        let following = tail.follow(handler, shutdown).await?;
        let dead_lettered = state_dead_lettered.load(std::sync::atomic::Ordering::Relaxed)
            + events_dead_lettered.load(std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            users = view.len(),
            from_state,
            state_never_written,
            dead_lettered,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "users read from {} and {}",
            state_topic.name(),
            events_topic.name()
        );
        metrics::gauge!("projection_users").set(view.len() as f64);
        self.health.ready("users", format!("{} users", view.len()));
        Ok(UsersRead { view: view.clone(), following, from_state, state_never_written, dead_lettered })
    }
}

/// The projection's digest as JSON: `GET /digest` on the admin port of every service that
/// holds users. Two services agree when, at equal `positions` (the last event applied per
/// partition), their `users`, `versions` and `emails` are equal.
pub fn digest_route<F>(service: &'static str, source: F) -> axum::routing::MethodRouter
where
    F: Fn() -> (UserView, Positions) + Clone + Send + Sync + 'static,
{
    axum::routing::get(move || {
        let (view, positions) = source();
        async move {
            // Positions first: the digest then covers at least what they say.
            let applied: std::collections::BTreeMap<String, i64> =
                positions.last_applied().into_iter().map(|(p, o)| (p.to_string(), o)).collect();
            let digest = tokio::task::spawn_blocking(move || view.digest()).await.unwrap_or_default();
            axum::Json(serde_json::json!({
                "service": service,
                "users": digest.users,
                "versions": format!("{:016x}", digest.versions),
                "emails": format!("{:016x}", digest.emails),
                "positions": applied,
            }))
        }
    })
}

/// Applies `users.state`, remembering per partition the last event the state reflects.
struct FromState {
    view: UserView,
    topic: Topic<state::UserState>,
    reflected: Arc<DashMap<i32, i64>>,
    /// Partitions with a state record that could not be read.
    unreadable: Arc<Mutex<HashSet<i32>>>,
}

impl FromState {
    fn reflect(&self, message: &Incoming, event: EventPosition) -> Result<(), HandleError> {
        if event.partition != message.partition {
            return Err(HandleError::permanent(format!(
                "a state record on partition {} reflects an event on partition {}",
                message.partition, event.partition
            )));
        }
        let mut last = self.reflected.entry(event.partition).or_insert(event.offset);
        *last = (*last).max(event.offset);
        Ok(())
    }

    async fn apply(&self, message: &Incoming) -> Result<(), HandleError> {
        let Some(_) = &message.payload else {
            let id = message.key.as_deref().and_then(|key| Uuid::try_parse_ascii(key).ok());
            let id = id.ok_or_else(|| HandleError::permanent("a tombstone whose key is not a user id"))?;
            self.view.remove(id);
            let header = |name| {
                let value = message.header(name).and_then(|v| std::str::from_utf8(v).ok());
                value.and_then(|v| v.parse::<i64>().ok())
            };
            if let (Some(partition), Some(offset)) = (header(headers::EVENT_PARTITION), header(headers::EVENT_OFFSET)) {
                let partition = i32::try_from(partition).map_err(HandleError::permanent)?;
                self.reflect(message, EventPosition { partition, offset })?;
            }
            return Ok(());
        };
        let state: UserState = self.topic.decode(message).await?;
        self.reflect(message, state.event)?;
        self.view.put(state.user);
        Ok(())
    }
}

impl Handler for FromState {
    async fn handle(&self, message: &Incoming) -> Result<(), HandleError> {
        let applied = self.apply(message).await;
        if let Err(HandleError::Permanent(_)) = &applied {
            self.unreadable.lock().unwrap_or_else(PoisonError::into_inner).insert(message.partition);
        }
        applied
    }
}

/// Applies `users.events` and hands each event on.
struct FromEvents<F> {
    view: UserView,
    topic: Topic<events::UserEvent>,
    on_event: F,
}

impl<F: Fn(&EventEnvelope, EventPosition) + Send + Sync> Handler for FromEvents<F> {
    async fn handle(&self, message: &Incoming) -> Result<(), HandleError> {
        let envelope: EventEnvelope = self.topic.decode(message).await?;
        self.view.apply(&envelope.event);
        (self.on_event)(&envelope, EventPosition { partition: message.partition, offset: message.offset });
        metrics::gauge!("projection_users").set(self.view.len() as f64);
        Ok(())
    }
}
