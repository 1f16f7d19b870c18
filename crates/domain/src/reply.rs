//! The outcome of a command, sent back to its requester.

use std::fmt;

use uuid::Uuid;

use crate::user::{FieldError, User};

/// The Kafka header of a reply naming its requester, so requesters can skip the replies of
/// others without decoding them.
pub const REQUESTER_HEADER: &str = "requester";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub command_id: Uuid,
    pub correlation_id: Uuid,
    pub requester: String,
    pub outcome: Outcome,
    /// The request digest of the command first decided under `command_id`, repeated in every
    /// reply to it: a requester whose own digest differs reused an idempotency key.
    pub request_digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted(Accepted),
    Rejected(Rejection),
    /// One outcome per row of a batch, in the batch's order.
    Batch(Vec<ItemOutcome>),
}

/// What became of one row of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemOutcome {
    pub command_id: Uuid,
    pub line: u64,
    /// The user created or updated, or why the row was refused.
    pub result: Result<Uuid, Rejection>,
}

/// The command took effect (or there was nothing to change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub user_id: Uuid,
    /// The user after the command; `None` once deleted.
    pub user: Option<User>,
    /// Where the resulting event is on the events topic, so a reader can wait until its
    /// projection has applied it (read-your-writes). `None` when nothing changed.
    pub event: Option<EventPosition>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventPosition {
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: RejectionReason,
    pub message: String,
    pub field_errors: Vec<FieldError>,
}

impl Rejection {
    pub fn new(reason: RejectionReason, message: impl Into<String>) -> Self {
        Self { reason, message: message.into(), field_errors: Vec::new() }
    }

    pub fn invalid(field_errors: Vec<FieldError>) -> Self {
        let message = field_errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        Self { reason: RejectionReason::Invalid, message, field_errors }
    }
}

/// Machine-readable rejection reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectionReason {
    EmailTaken,
    NotFound,
    VersionConflict,
    Invalid,
}

impl RejectionReason {
    pub const ALL: [Self; 4] = [Self::EmailTaken, Self::NotFound, Self::VersionConflict, Self::Invalid];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::EmailTaken => "email_taken",
            Self::NotFound => "not_found",
            Self::VersionConflict => "version_conflict",
            Self::Invalid => "invalid",
        }
    }
}

impl fmt::Display for RejectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
