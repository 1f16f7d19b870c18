//! Command outcomes as `UserCommandReply` records.

use contract::{MappingError, replies as r};

use super::{Result, long, unsigned};
use crate::reply::{Accepted, EventPosition, ItemOutcome, Outcome, Rejection, RejectionReason, Reply};
use crate::user::FieldError;

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
            request_digest: reply.request_digest,
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
            request_digest: record.request_digest,
        })
    }
}
