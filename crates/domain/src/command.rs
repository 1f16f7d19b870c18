//! Commands to user-service, as requested: raw field values (user-service validates them, it
//! is the authority) plus the ids that make them traceable and idempotent.

use uuid::Uuid;

use crate::time::Timestamp;

/// A command with its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandEnvelope {
    /// Unique per intent: the same command id delivered twice has one effect.
    pub command_id: Uuid,
    /// Ties the command to the request (or import) it serves; echoed in events and replies.
    pub correlation_id: Uuid,
    /// Who waits for the reply (a gateway instance, the import worker): replies carry it back.
    pub requester: String,
    pub issued_at: Timestamp,
    /// Who asked for it (`jwt:<subject>`, `apikey:<name>`); for an import's rows, who uploaded
    /// the file. `None` in commands from before authentication.
    pub principal: Option<String>,
    /// For a command sent under a client's `Idempotency-Key`: a digest of the request, so the
    /// key used again for another request can be told apart from a retry.
    pub request_digest: Option<String>,
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Create(CreateUser),
    Update(UpdateUser),
    Delete(DeleteUser),
    /// Rows of a bulk import, carried together but each decided on its own, with its own
    /// command id (so a re-sent batch is applied once per row).
    Batch(Vec<BatchItem>),
}

/// One row of a bulk import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItem {
    pub command_id: Uuid,
    /// The row's line in the uploaded file, echoed in its outcome.
    pub line: u64,
    /// Update the user holding this email instead of refusing it as taken.
    pub upsert: bool,
    pub user: CreateUser,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreateUser {
    pub email: String,
    pub name: String,
    pub age: Option<i64>,
    /// In an upsert, `None` keeps the user's locale.
    pub locale: Option<String>,
}

/// A partial update: `None` leaves a field as it is; `age: Some(None)` clears the age, and
/// `locale: Some(None)` the locale.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateUser {
    pub user_id: Uuid,
    pub email: Option<String>,
    pub name: Option<String>,
    pub age: Option<Option<i64>>,
    pub locale: Option<Option<String>>,
    /// Refuse with `version_conflict` unless the user is at this version (HTTP If-Match).
    pub expected_version: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteUser {
    pub user_id: Uuid,
    pub expected_version: Option<u64>,
}

impl Command {
    /// What it is, in logs and spans: `create`, `update`, `delete` or `batch`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Create(_) => "create",
            Self::Update(_) => "update",
            Self::Delete(_) => "delete",
            Self::Batch(_) => "batch",
        }
    }

    /// The partition key: commands about one user stay in order; creates are keyed by email
    /// so that competing creates of one address meet on one partition.
    pub fn key(&self) -> String {
        match self {
            Self::Create(create) => create.email.trim().to_lowercase(),
            Self::Update(update) => update.user_id.to_string(),
            Self::Delete(delete) => delete.user_id.to_string(),
            Self::Batch(items) => items.first().map(|i| i.command_id.to_string()).unwrap_or_default(),
        }
    }
}
