//! Events: what user-service decided, the source of truth every projection rebuilds from.

use uuid::Uuid;

use crate::time::Timestamp;
use crate::user::{Email, User};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventEnvelope {
    pub event_id: Uuid,
    /// The command that caused it: how a redelivered command is recognised as done.
    pub command_id: Uuid,
    pub correlation_id: Uuid,
    pub occurred_at: Timestamp,
    /// Who caused it: the principal of its command.
    pub principal: Option<String>,
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new user, at version 1.
    Created(User),
    /// The full new state after a change.
    Updated(User),
    /// The user is gone; `version` is the version the deletion produced.
    Deleted { user_id: Uuid, email: Email, version: u64 },
}

impl Event {
    /// The events topic's key: one user's events stay ordered on one partition.
    pub fn user_id(&self) -> Uuid {
        match self {
            Self::Created(user) | Self::Updated(user) => user.id,
            Self::Deleted { user_id, .. } => *user_id,
        }
    }

    pub fn version(&self) -> u64 {
        match self {
            Self::Created(user) | Self::Updated(user) => user.version,
            Self::Deleted { version, .. } => *version,
        }
    }
}

/// A user's latest state as the compacted state topic keeps it: the user, and where the event
/// it reflects is on the events topic (same key, same partition), so a reader of the state can
/// follow the events from there without a gap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserState {
    pub user: User,
    pub event: crate::reply::EventPosition,
}
