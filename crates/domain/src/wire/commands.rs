//! Commands as `UserCommand` records. Field values stay raw: user-service validates them.

use contract::{MappingError, commands as c};

use super::{Result, long, unsigned};
use crate::command::{BatchItem, Command, CommandEnvelope, CreateUser, DeleteUser, UpdateUser};
use crate::time::Timestamp;

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
            principal: envelope.principal,
            request_digest: envelope.request_digest,
            command,
        })
    }
}

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
            principal: record.principal,
            request_digest: record.request_digest,
            command,
        })
    }
}
