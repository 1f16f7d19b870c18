//! The domain's messages as the contract's records (`contract`, generated from `schemas/`):
//! `TryFrom<Domain> for Record` to send (by value: nothing is copied on the hot paths; clone
//! what you keep), `TryFrom<Record> for Domain` to receive.
//!
//! From the wire, every value is held to today's rules, as if it had just been typed in: a
//! user in an event must still have a valid email and name, a count or a version must not be
//! negative, a partition must come with its offset. A value that breaks a rule or does not fit
//! its type is refused ([`MappingError`]), never clamped or defaulted. To the wire, a count too
//! large for Avro's `long` is refused the same way.

use contract::{MappingError, commands as c, events as e, exports as x, imports as i, replies as r};

use crate::command::{BatchItem, Command, CommandEnvelope, CreateUser, DeleteUser, UpdateUser};
use crate::event::{Event, EventEnvelope};
use crate::export::{Column, ExportFilter, ExportRequest, ExportState, ExportStatus};
use crate::import::{ImportMode, ImportRequest, ImportState, ImportStatus};
use crate::reply::{Accepted, EventPosition, ItemOutcome, Outcome, Rejection, RejectionReason, Reply};
use crate::time::Timestamp;
use crate::user::{Age, Email, FieldError, Locale, Name, User};

type Result<T> = std::result::Result<T, MappingError>;

fn long(field: &'static str, n: u64) -> Result<i64> {
    i64::try_from(n).map_err(|_| MappingError::new(field, format!("{n} does not fit a long")))
}

fn unsigned(field: &'static str, n: i64) -> Result<u64> {
    u64::try_from(n).map_err(|_| MappingError::new(field, format!("{n} is negative")))
}

fn rule<T>(field: &'static str, checked: std::result::Result<T, FieldError>) -> Result<T> {
    checked.map_err(|e| MappingError::new(field, e.message))
}

fn age(field: &'static str, n: i64) -> Result<u8> {
    u8::try_from(n).map_err(|_| MappingError::new(field, format!("{n} is not an age")))
}

// ---- users ----------------------------------------------------------------------------------

impl TryFrom<User> for contract::User {
    type Error = MappingError;

    fn try_from(user: User) -> Result<Self> {
        Ok(Self {
            id: user.id,
            email: user.email.into_string(),
            name: user.name.into_string(),
            age: user.age.map(|a| i32::from(a.get())),
            created_at: user.created_at.millis(),
            updated_at: user.updated_at.millis(),
            version: long("version", user.version)?,
            locale: user.locale.map(Locale::into_string),
        })
    }
}

impl TryFrom<contract::User> for User {
    type Error = MappingError;

    fn try_from(user: contract::User) -> Result<Self> {
        Ok(Self {
            id: user.id,
            email: rule("email", Email::parse(&user.email))?,
            name: rule("name", Name::parse(&user.name))?,
            age: user.age.map(|a| rule("age", Age::parse(i64::from(a)))).transpose()?,
            created_at: Timestamp::from_millis(user.created_at),
            updated_at: Timestamp::from_millis(user.updated_at),
            version: unsigned("version", user.version)?,
            locale: user.locale.map(|l| rule("locale", Locale::parse(&l))).transpose()?,
        })
    }
}

// ---- events ---------------------------------------------------------------------------------

impl TryFrom<EventEnvelope> for e::UserEvent {
    type Error = MappingError;

    fn try_from(envelope: EventEnvelope) -> Result<Self> {
        let event = match envelope.event {
            Event::Created(user) => e::Event::UserCreated(e::UserCreated { user: user.try_into()? }),
            Event::Updated(user) => e::Event::UserUpdated(e::UserUpdated { user: user.try_into()? }),
            Event::Deleted { user_id, email, version } => e::Event::UserDeleted(e::UserDeleted {
                user_id,
                email: email.into_string(),
                version: long("version", version)?,
            }),
        };
        Ok(Self {
            event_id: envelope.event_id,
            command_id: envelope.command_id,
            correlation_id: envelope.correlation_id,
            occurred_at: envelope.occurred_at.millis(),
            event,
        })
    }
}

impl TryFrom<e::UserEvent> for EventEnvelope {
    type Error = MappingError;

    fn try_from(record: e::UserEvent) -> Result<Self> {
        let event = match record.event {
            e::Event::UserCreated(created) => Event::Created(created.user.try_into()?),
            e::Event::UserUpdated(updated) => Event::Updated(updated.user.try_into()?),
            e::Event::UserDeleted(deleted) => Event::Deleted {
                user_id: deleted.user_id,
                email: rule("email", Email::parse(&deleted.email))?,
                version: unsigned("version", deleted.version)?,
            },
        };
        Ok(Self {
            event_id: record.event_id,
            command_id: record.command_id,
            correlation_id: record.correlation_id,
            occurred_at: Timestamp::from_millis(record.occurred_at),
            event,
        })
    }
}

// ---- commands -------------------------------------------------------------------------------

impl TryFrom<CommandEnvelope> for c::UserCommand {
    type Error = MappingError;

    fn try_from(envelope: CommandEnvelope) -> Result<Self> {
        let command = match envelope.command {
            Command::Create(create) => c::Command::CreateUser(c::CreateUser {
                email: create.email,
                name: create.name,
                age: create.age,
                locale: create.locale,
            }),
            Command::Update(update) => c::Command::UpdateUser(c::UpdateUser {
                user_id: update.user_id,
                email: update.email,
                name: update.name,
                age: update.age.map(|value| c::AgeChange { value }),
                expected_version: update.expected_version.map(|v| long("expected_version", v)).transpose()?,
                locale: update.locale.map(|value| c::LocaleChange { value }),
            }),
            Command::Delete(delete) => c::Command::DeleteUser(c::DeleteUser {
                user_id: delete.user_id,
                expected_version: delete.expected_version.map(|v| long("expected_version", v)).transpose()?,
            }),
            Command::Batch(items) => c::Command::UserBatch(c::UserBatch {
                items: items
                    .into_iter()
                    .map(|item| {
                        Ok(c::BatchItem {
                            command_id: item.command_id,
                            line: long("line", item.line)?,
                            upsert: item.upsert,
                            email: item.user.email,
                            name: item.user.name,
                            age: item.user.age,
                            locale: item.user.locale,
                        })
                    })
                    .collect::<Result<_>>()?,
            }),
        };
        Ok(Self {
            command_id: envelope.command_id,
            correlation_id: envelope.correlation_id,
            requester: envelope.requester,
            issued_at: envelope.issued_at.millis(),
            command,
        })
    }
}

/// Field values stay raw: user-service validates them when it decides.
impl TryFrom<c::UserCommand> for CommandEnvelope {
    type Error = MappingError;

    fn try_from(record: c::UserCommand) -> Result<Self> {
        let command = match record.command {
            c::Command::CreateUser(create) => Command::Create(CreateUser {
                email: create.email,
                name: create.name,
                age: create.age,
                locale: create.locale,
            }),
            c::Command::UpdateUser(update) => Command::Update(UpdateUser {
                user_id: update.user_id,
                email: update.email,
                name: update.name,
                age: update.age.map(|change| change.value),
                locale: update.locale.map(|change| change.value),
                expected_version: update.expected_version.map(|v| unsigned("expected_version", v)).transpose()?,
            }),
            c::Command::DeleteUser(delete) => Command::Delete(DeleteUser {
                user_id: delete.user_id,
                expected_version: delete.expected_version.map(|v| unsigned("expected_version", v)).transpose()?,
            }),
            c::Command::UserBatch(batch) => Command::Batch(
                batch
                    .items
                    .into_iter()
                    .map(|item| {
                        Ok(BatchItem {
                            command_id: item.command_id,
                            line: unsigned("line", item.line)?,
                            upsert: item.upsert,
                            user: CreateUser { email: item.email, name: item.name, age: item.age, locale: item.locale },
                        })
                    })
                    .collect::<Result<_>>()?,
            ),
        };
        Ok(Self {
            command_id: record.command_id,
            correlation_id: record.correlation_id,
            requester: record.requester,
            issued_at: Timestamp::from_millis(record.issued_at),
            command,
        })
    }
}

// ---- replies --------------------------------------------------------------------------------

fn reason_to(reason: RejectionReason) -> r::RejectionReason {
    match reason {
        RejectionReason::EmailTaken => r::RejectionReason::EmailTaken,
        RejectionReason::NotFound => r::RejectionReason::NotFound,
        RejectionReason::VersionConflict => r::RejectionReason::VersionConflict,
        RejectionReason::Invalid => r::RejectionReason::Invalid,
    }
}

fn reason_from(reason: r::RejectionReason) -> RejectionReason {
    match reason {
        r::RejectionReason::EmailTaken => RejectionReason::EmailTaken,
        r::RejectionReason::NotFound => RejectionReason::NotFound,
        r::RejectionReason::VersionConflict => RejectionReason::VersionConflict,
        r::RejectionReason::Invalid => RejectionReason::Invalid,
    }
}

fn field_errors_to(errors: Vec<FieldError>) -> Vec<r::FieldError> {
    errors.into_iter().map(|e| r::FieldError { field: e.field, code: e.code, message: e.message }).collect()
}

fn field_errors_from(errors: Vec<r::FieldError>) -> Vec<FieldError> {
    errors.into_iter().map(|e| FieldError { field: e.field, code: e.code, message: e.message }).collect()
}

impl TryFrom<Reply> for r::UserCommandReply {
    type Error = MappingError;

    fn try_from(reply: Reply) -> Result<Self> {
        let outcome = match reply.outcome {
            Outcome::Accepted(accepted) => r::Outcome::Accepted(r::Accepted {
                user_id: accepted.user_id,
                user: accepted.user.map(TryInto::try_into).transpose()?,
                event_partition: accepted.event.map(|p| p.partition),
                event_offset: accepted.event.map(|p| p.offset),
            }),
            Outcome::Rejected(rejection) => r::Outcome::Rejected(r::Rejected {
                reason: reason_to(rejection.reason),
                message: rejection.message,
                field_errors: field_errors_to(rejection.field_errors),
            }),
            Outcome::Batch(items) => r::Outcome::BatchOutcome(r::BatchOutcome {
                items: items
                    .into_iter()
                    .map(|item| {
                        let (user_id, rejection) = match item.result {
                            Ok(user_id) => (Some(user_id), None),
                            Err(rejection) => (
                                None,
                                Some(r::ItemRejection {
                                    reason: reason_to(rejection.reason),
                                    message: rejection.message,
                                    field_errors: field_errors_to(rejection.field_errors),
                                }),
                            ),
                        };
                        Ok(r::ItemOutcome {
                            command_id: item.command_id,
                            line: long("line", item.line)?,
                            user_id,
                            rejection,
                        })
                    })
                    .collect::<Result<_>>()?,
            }),
        };
        Ok(Self {
            command_id: reply.command_id,
            correlation_id: reply.correlation_id,
            requester: reply.requester,
            outcome,
        })
    }
}

impl TryFrom<r::UserCommandReply> for Reply {
    type Error = MappingError;

    fn try_from(record: r::UserCommandReply) -> Result<Self> {
        let outcome = match record.outcome {
            r::Outcome::Accepted(accepted) => Outcome::Accepted(Accepted {
                user_id: accepted.user_id,
                user: accepted.user.map(TryInto::try_into).transpose()?,
                event: match (accepted.event_partition, accepted.event_offset) {
                    (Some(partition), Some(offset)) => Some(EventPosition { partition, offset }),
                    (None, None) => None,
                    _ => return Err(MappingError::new("event_partition", "a partition and an offset go together")),
                },
            }),
            r::Outcome::Rejected(rejected) => Outcome::Rejected(Rejection {
                reason: reason_from(rejected.reason),
                message: rejected.message,
                field_errors: field_errors_from(rejected.field_errors),
            }),
            r::Outcome::BatchOutcome(batch) => Outcome::Batch(
                batch
                    .items
                    .into_iter()
                    .map(|item| {
                        let result = match (item.user_id, item.rejection) {
                            (Some(user_id), None) => Ok(user_id),
                            (None, Some(rejection)) => Err(Rejection {
                                reason: reason_from(rejection.reason),
                                message: rejection.message,
                                field_errors: field_errors_from(rejection.field_errors),
                            }),
                            _ => return Err(MappingError::new("items", "an item has either a user or a rejection")),
                        };
                        Ok(ItemOutcome { command_id: item.command_id, line: unsigned("line", item.line)?, result })
                    })
                    .collect::<Result<_>>()?,
            ),
        };
        Ok(Self {
            command_id: record.command_id,
            correlation_id: record.correlation_id,
            requester: record.requester,
            outcome,
        })
    }
}

// ---- imports --------------------------------------------------------------------------------

fn mode_to(mode: ImportMode) -> i::ImportMode {
    match mode {
        ImportMode::Create => i::ImportMode::Create,
        ImportMode::Upsert => i::ImportMode::Upsert,
    }
}

fn mode_from(mode: i::ImportMode) -> ImportMode {
    match mode {
        i::ImportMode::Create => ImportMode::Create,
        i::ImportMode::Upsert => ImportMode::Upsert,
    }
}

fn millis(t: Option<Timestamp>) -> Option<i64> {
    t.map(Timestamp::millis)
}

fn timestamp(millis: Option<i64>) -> Option<Timestamp> {
    millis.map(Timestamp::from_millis)
}

impl TryFrom<ImportRequest> for i::ImportRequested {
    type Error = MappingError;

    fn try_from(request: ImportRequest) -> Result<Self> {
        Ok(Self {
            import_id: request.import_id,
            blob: request.blob,
            file_name: request.file_name,
            size_bytes: long("size_bytes", request.size_bytes)?,
            mode: mode_to(request.mode),
            requested_at: request.requested_at.millis(),
        })
    }
}

impl TryFrom<i::ImportRequested> for ImportRequest {
    type Error = MappingError;

    fn try_from(record: i::ImportRequested) -> Result<Self> {
        Ok(Self {
            import_id: record.import_id,
            blob: record.blob,
            file_name: record.file_name,
            size_bytes: unsigned("size_bytes", record.size_bytes)?,
            mode: mode_from(record.mode),
            requested_at: Timestamp::from_millis(record.requested_at),
        })
    }
}

impl TryFrom<ImportStatus> for i::ImportStatus {
    type Error = MappingError;

    fn try_from(status: ImportStatus) -> Result<Self> {
        Ok(Self {
            import_id: status.import_id,
            state: match status.state {
                ImportState::Queued => i::ImportState::Queued,
                ImportState::Running => i::ImportState::Running,
                ImportState::Completed => i::ImportState::Completed,
                ImportState::Failed => i::ImportState::Failed,
            },
            mode: mode_to(status.mode),
            file_name: status.file_name,
            size_bytes: long("size_bytes", status.size_bytes)?,
            rows_read: long("rows_read", status.rows_read)?,
            accepted: long("accepted", status.accepted)?,
            rejected: long("rejected", status.rejected)?,
            requested_at: status.requested_at.millis(),
            started_at: millis(status.started_at),
            finished_at: millis(status.finished_at),
            error: status.error,
            warnings: status.warnings,
            errors_blob: status.errors_blob,
        })
    }
}

impl TryFrom<i::ImportStatus> for ImportStatus {
    type Error = MappingError;

    fn try_from(record: i::ImportStatus) -> Result<Self> {
        Ok(Self {
            import_id: record.import_id,
            state: match record.state {
                i::ImportState::Queued => ImportState::Queued,
                i::ImportState::Running => ImportState::Running,
                i::ImportState::Completed => ImportState::Completed,
                i::ImportState::Failed => ImportState::Failed,
            },
            mode: mode_from(record.mode),
            file_name: record.file_name,
            size_bytes: unsigned("size_bytes", record.size_bytes)?,
            rows_read: unsigned("rows_read", record.rows_read)?,
            accepted: unsigned("accepted", record.accepted)?,
            rejected: unsigned("rejected", record.rejected)?,
            requested_at: Timestamp::from_millis(record.requested_at),
            started_at: timestamp(record.started_at),
            finished_at: timestamp(record.finished_at),
            error: record.error,
            warnings: record.warnings,
            errors_blob: record.errors_blob,
        })
    }
}

// ---- exports --------------------------------------------------------------------------------

fn filter_to(filter: ExportFilter) -> x::ExportFilter {
    x::ExportFilter {
        q: filter.q,
        email_domain: filter.email_domain,
        min_age: filter.min_age.map(i32::from),
        max_age: filter.max_age.map(i32::from),
        created_after: millis(filter.created_after),
        created_before: millis(filter.created_before),
    }
}

fn filter_from(filter: x::ExportFilter) -> Result<ExportFilter> {
    Ok(ExportFilter {
        q: filter.q,
        email_domain: filter.email_domain,
        min_age: filter.min_age.map(|a| age("min_age", i64::from(a))).transpose()?,
        max_age: filter.max_age.map(|a| age("max_age", i64::from(a))).transpose()?,
        created_after: timestamp(filter.created_after),
        created_before: timestamp(filter.created_before),
    })
}

fn columns_to(columns: Vec<Column>) -> Vec<x::ExportColumn> {
    columns
        .into_iter()
        .map(|column| match column {
            Column::Id => x::ExportColumn::Id,
            Column::Email => x::ExportColumn::Email,
            Column::Name => x::ExportColumn::Name,
            Column::Age => x::ExportColumn::Age,
            Column::CreatedAt => x::ExportColumn::CreatedAt,
            Column::UpdatedAt => x::ExportColumn::UpdatedAt,
            Column::Version => x::ExportColumn::Version,
        })
        .collect()
}

fn columns_from(columns: Vec<x::ExportColumn>) -> Vec<Column> {
    columns
        .into_iter()
        .map(|column| match column {
            x::ExportColumn::Id => Column::Id,
            x::ExportColumn::Email => Column::Email,
            x::ExportColumn::Name => Column::Name,
            x::ExportColumn::Age => Column::Age,
            x::ExportColumn::CreatedAt => Column::CreatedAt,
            x::ExportColumn::UpdatedAt => Column::UpdatedAt,
            x::ExportColumn::Version => Column::Version,
        })
        .collect()
}

impl TryFrom<ExportRequest> for x::ExportRequested {
    type Error = MappingError;

    fn try_from(request: ExportRequest) -> Result<Self> {
        Ok(Self {
            export_id: request.export_id,
            filter: filter_to(request.filter),
            columns: columns_to(request.columns),
            positions: request
                .positions
                .into_iter()
                .map(|p| x::EventsPosition { partition: p.partition, offset: p.offset })
                .collect(),
            requested_at: request.requested_at.millis(),
        })
    }
}

impl TryFrom<x::ExportRequested> for ExportRequest {
    type Error = MappingError;

    fn try_from(record: x::ExportRequested) -> Result<Self> {
        Ok(Self {
            export_id: record.export_id,
            filter: filter_from(record.filter)?,
            columns: columns_from(record.columns),
            positions: record
                .positions
                .into_iter()
                .map(|p| EventPosition { partition: p.partition, offset: p.offset })
                .collect(),
            requested_at: Timestamp::from_millis(record.requested_at),
        })
    }
}

impl TryFrom<ExportStatus> for x::ExportStatus {
    type Error = MappingError;

    fn try_from(status: ExportStatus) -> Result<Self> {
        Ok(Self {
            export_id: status.export_id,
            state: match status.state {
                ExportState::Queued => x::ExportState::Queued,
                ExportState::Running => x::ExportState::Running,
                ExportState::Completed => x::ExportState::Completed,
                ExportState::Failed => x::ExportState::Failed,
                ExportState::Expired => x::ExportState::Expired,
            },
            filter: filter_to(status.filter),
            columns: columns_to(status.columns),
            rows_total: long("rows_total", status.rows_total)?,
            rows_written: long("rows_written", status.rows_written)?,
            bytes: long("bytes", status.bytes)?,
            sha256: status.sha256,
            blob: status.blob,
            requested_at: status.requested_at.millis(),
            started_at: millis(status.started_at),
            finished_at: millis(status.finished_at),
            error: status.error,
        })
    }
}

impl TryFrom<x::ExportStatus> for ExportStatus {
    type Error = MappingError;

    fn try_from(record: x::ExportStatus) -> Result<Self> {
        Ok(Self {
            export_id: record.export_id,
            state: match record.state {
                x::ExportState::Queued => ExportState::Queued,
                x::ExportState::Running => ExportState::Running,
                x::ExportState::Completed => ExportState::Completed,
                x::ExportState::Failed => ExportState::Failed,
                x::ExportState::Expired => ExportState::Expired,
            },
            filter: filter_from(record.filter)?,
            columns: columns_from(record.columns),
            rows_total: unsigned("rows_total", record.rows_total)?,
            rows_written: unsigned("rows_written", record.rows_written)?,
            bytes: unsigned("bytes", record.bytes)?,
            sha256: record.sha256,
            blob: record.blob,
            requested_at: Timestamp::from_millis(record.requested_at),
            started_at: timestamp(record.started_at),
            finished_at: timestamp(record.finished_at),
            error: record.error,
        })
    }
}
