//! User events as `UserEvent` records.

use contract::{MappingError, events as e};

use super::{Result, long, rule, unsigned};
use crate::event::{Event, EventEnvelope};
use crate::time::Timestamp;
use crate::user::Email;

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
                email: rule("email", Email::parse_owned(deleted.email))?,
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
