//! User events as `UserEvent` records, and users' latest states as `UserState` records.

use contract::{MappingError, events as e, state as s};

use super::{Result, long, rule, unsigned};
use crate::event::{Event, EventEnvelope, UserState};
use crate::reply::EventPosition;
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
            principal: envelope.principal,
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
            principal: record.principal,
            event,
        })
    }
}

impl TryFrom<UserState> for s::UserState {
    type Error = MappingError;

    fn try_from(state: UserState) -> Result<Self> {
        Ok(Self {
            user: state.user.try_into()?,
            event_partition: state.event.partition,
            event_offset: state.event.offset,
        })
    }
}

impl TryFrom<s::UserState> for UserState {
    type Error = MappingError;

    fn try_from(record: s::UserState) -> Result<Self> {
        if record.event_partition < 0 || record.event_offset < 0 {
            return Err(MappingError::new("event_offset", "an event position is not negative"));
        }
        Ok(Self {
            user: record.user.try_into()?,
            event: EventPosition { partition: record.event_partition, offset: record.event_offset },
        })
    }
}
