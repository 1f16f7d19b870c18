//! The domain's messages through the contract: every variant maps to its record, survives the
//! generated binary codec and maps back to what it was; a record that breaks a rule or holds
//! a value out of range is refused, never clamped.

use contract::{MappingError, Record, codec, events as e, replies as r};
use domain::command::{BatchItem, Command, CommandEnvelope, CreateUser, DeleteUser, UpdateUser};
use domain::event::{Event, EventEnvelope, UserState};
use domain::export::{Column, ExportFilter, ExportRequest, ExportState, ExportStatus};
use domain::import::{ImportMode, ImportRequest, ImportState, ImportStatus};
use domain::reply::{Accepted, EventPosition, ItemOutcome, Outcome, Rejection, RejectionReason, Reply};
use domain::time::Timestamp;
use domain::user::{Age, Email, FieldError, Locale, Name, User};
use proptest::prelude::*;
use uuid::Uuid;

/// `item` -> record -> bytes -> record -> domain.
fn round_trip<D, R>(item: &D) -> D
where
    D: Clone + std::fmt::Debug + TryFrom<R, Error = MappingError>,
    R: Record + TryFrom<D, Error = MappingError>,
{
    let record = R::try_from(item.clone()).unwrap_or_else(|e| panic!("{item:?} maps: {e}"));
    let mut bytes = Vec::new();
    codec::Encode::encode(&record, &mut bytes);
    let decoded: R = codec::decode(&bytes).expect("decodes");
    assert_eq!(decoded, record);
    D::try_from(decoded).expect("maps back")
}

fn user(age: Option<u8>) -> User {
    User {
        id: Uuid::now_v7(),
        email: Email::parse("Zoe.O'Neil+tag@Example.co.uk").unwrap(),
        name: Name::parse("Zoë O'Neil, \"the\" 测试").unwrap(),
        age: age.map(|a| Age::parse(i64::from(a)).unwrap()),
        created_at: Timestamp::from_millis(1_700_000_000_000),
        updated_at: Timestamp::from_millis(1_700_000_000_999),
        version: 3,
        locale: Some(Locale::parse("pt-BR").unwrap()),
    }
}

fn command(command: Command) -> CommandEnvelope {
    CommandEnvelope {
        command_id: Uuid::new_v4(),
        correlation_id: Uuid::new_v4(),
        requester: "api-gateway-1".into(),
        issued_at: Timestamp::from_millis(42),
        principal: Some("jwt:alice".into()),
        request_digest: Some("0f".repeat(32)),
        command,
    }
}

fn event(event: Event) -> EventEnvelope {
    EventEnvelope {
        event_id: Uuid::now_v7(),
        command_id: Uuid::new_v4(),
        correlation_id: Uuid::new_v4(),
        occurred_at: Timestamp::from_millis(43),
        principal: Some("apikey:etl".into()),
        event,
    }
}

fn reply(outcome: Outcome) -> Reply {
    Reply {
        command_id: Uuid::new_v4(),
        correlation_id: Uuid::new_v4(),
        requester: "import-worker".into(),
        outcome,
        request_digest: Some("ab".repeat(32)),
    }
}

#[test]
fn every_command_variant_round_trips() {
    let id = Uuid::now_v7();
    for c in [
        Command::Create(CreateUser { email: " a@b.co ".into(), name: "A".into(), age: None, locale: None }),
        Command::Create(CreateUser {
            email: "not validated here".into(),
            name: String::new(),
            age: Some(-5),
            locale: None,
        }),
        Command::Update(UpdateUser { user_id: id, ..UpdateUser::default() }),
        Command::Update(UpdateUser {
            user_id: id,
            email: Some("x@y.io".into()),
            name: Some("X".into()),
            age: Some(None),
            locale: Some(Some("en-GB".into())),
            expected_version: Some(9),
        }),
        Command::Update(UpdateUser { user_id: id, age: Some(Some(40)), ..UpdateUser::default() }),
        Command::Delete(DeleteUser { user_id: id, expected_version: None }),
        Command::Delete(DeleteUser { user_id: id, expected_version: Some(2) }),
        Command::Batch(vec![]),
        Command::Batch(vec![
            BatchItem {
                command_id: Uuid::new_v4(),
                line: 2,
                upsert: false,
                user: CreateUser { email: "a@b.co".into(), name: "A".into(), age: Some(3), locale: None },
            },
            BatchItem {
                command_id: Uuid::new_v4(),
                line: 1_000_001,
                upsert: true,
                user: CreateUser { email: "raw".into(), name: String::new(), age: None, locale: None },
            },
        ]),
    ] {
        let envelope = command(c);
        assert_eq!(round_trip::<_, contract::commands::UserCommand>(&envelope), envelope);
    }
}

#[test]
fn every_event_variant_round_trips() {
    let ada = user(Some(36));
    for e in [
        Event::Created(user(None)),
        Event::Updated(ada.clone()),
        Event::Deleted { user_id: ada.id, email: ada.email.clone(), version: 4 },
    ] {
        let envelope = event(e);
        assert_eq!(round_trip::<_, e::UserEvent>(&envelope), envelope);
    }
}

#[test]
fn a_user_state_round_trips_and_a_negative_position_is_refused() {
    let state = UserState { user: user(Some(30)), event: EventPosition { partition: 2, offset: 41 } };
    assert_eq!(round_trip::<_, contract::state::UserState>(&state), state);
    let mut record = contract::state::UserState::try_from(state).unwrap();
    record.event_offset = -1;
    assert!(UserState::try_from(record).is_err());
}

#[test]
fn every_reply_variant_round_trips() {
    let ada = user(Some(150));
    let accepted = |user: Option<User>, event| Outcome::Accepted(Accepted { user_id: ada.id, user, event });
    for outcome in [
        accepted(Some(ada.clone()), Some(EventPosition { partition: 5, offset: 1 << 40 })),
        accepted(None, Some(EventPosition { partition: 0, offset: 0 })),
        accepted(Some(ada.clone()), None),
        Outcome::Rejected(Rejection::invalid(vec![
            FieldError::new("email", "invalid", "bad"),
            FieldError::new("age", "out_of_range", "too old"),
        ])),
    ]
    .into_iter()
    .chain(RejectionReason::ALL.into_iter().map(|reason| Outcome::Rejected(Rejection::new(reason, "why"))))
    .chain([Outcome::Batch(vec![
        ItemOutcome { command_id: Uuid::new_v4(), line: 2, result: Ok(ada.id) },
        ItemOutcome {
            command_id: Uuid::new_v4(),
            line: 3,
            result: Err(Rejection::invalid(vec![FieldError::new("name", "required", "name is required")])),
        },
        ItemOutcome {
            command_id: Uuid::new_v4(),
            line: 4,
            result: Err(Rejection::new(RejectionReason::EmailTaken, "taken")),
        },
    ])]) {
        let envelope = reply(outcome);
        assert_eq!(round_trip::<_, r::UserCommandReply>(&envelope), envelope);
    }
}

#[test]
fn import_requests_and_statuses_round_trip() {
    let request = ImportRequest {
        import_id: Uuid::now_v7(),
        blob: "imports/x.csv".into(),
        file_name: Some("people.csv".into()),
        size_bytes: 1 << 33,
        mode: ImportMode::Upsert,
        requested_at: Timestamp::from_millis(7),
        principal: Some("jwt:admin".into()),
        request_digest: Some("5a".repeat(32)),
    };
    assert_eq!(round_trip::<_, contract::imports::ImportRequested>(&request), request);
    let queued = ImportStatus::queued(&request);
    let finished = ImportStatus {
        state: ImportState::Failed,
        rows_read: 10,
        accepted: 8,
        rejected: 2,
        started_at: Some(Timestamp::from_millis(8)),
        finished_at: Some(Timestamp::from_millis(9)),
        error: Some("missing column email".into()),
        warnings: vec!["unknown column 'phone' ignored".into()],
        errors_blob: Some("imports/x.errors.csv".into()),
        ..queued.clone()
    };
    for status in [queued, finished] {
        assert_eq!(round_trip::<_, contract::imports::ImportStatus>(&status), status);
    }
}

#[test]
fn export_requests_and_statuses_round_trip() {
    let everything = ExportFilter {
        q: Some("love".into()),
        email_domain: Some("example.com".into()),
        min_age: Some(0),
        max_age: Some(150),
        created_after: Some(Timestamp::from_millis(1)),
        created_before: Some(Timestamp::from_millis(2)),
    };
    for (filter, columns) in [(ExportFilter::default(), Column::DEFAULT.to_vec()), (everything, Column::ALL.to_vec())] {
        let request = ExportRequest {
            export_id: Uuid::now_v7(),
            filter,
            columns,
            positions: vec![EventPosition { partition: 0, offset: 12 }, EventPosition { partition: 5, offset: 0 }],
            requested_at: Timestamp::from_millis(7),
            principal: Some("apikey:reports".into()),
            request_digest: Some("c3".repeat(32)),
        };
        assert_eq!(round_trip::<_, contract::exports::ExportRequested>(&request), request);
        let queued = ExportStatus::queued(&request);
        let done = ExportStatus {
            state: ExportState::Completed,
            rows_total: 3,
            rows_written: 3,
            bytes: 1 << 40,
            sha256: Some("e3b0c442".into()),
            blob: Some("exports/x.csv".into()),
            started_at: Some(Timestamp::from_millis(8)),
            finished_at: Some(Timestamp::from_millis(9)),
            ..queued.clone()
        };
        let failed = ExportStatus { state: ExportState::Failed, error: Some("disk full".into()), ..queued.clone() };
        for status in [queued, done, failed] {
            assert_eq!(round_trip::<_, contract::exports::ExportStatus>(&status), status);
        }
    }
}

/// A valid event as a record, to break one field at a time.
fn event_record() -> e::UserEvent {
    e::UserEvent::try_from(event(Event::Updated(user(Some(30))))).unwrap()
}

fn user_in(record: &mut e::UserEvent) -> &mut contract::User {
    match &mut record.event {
        e::Event::UserUpdated(updated) => &mut updated.user,
        other => panic!("{other:?}"),
    }
}

#[test]
fn out_of_range_values_from_the_wire_are_refused_never_clamped() {
    let refused = |change: &dyn Fn(&mut contract::User)| {
        let mut record = event_record();
        change(user_in(&mut record));
        EventEnvelope::try_from(record).unwrap_err()
    };
    assert_eq!(refused(&|u| u.version = -1).field, "version");
    assert_eq!(refused(&|u| u.age = Some(151)).field, "age");
    assert_eq!(refused(&|u| u.age = Some(-1)).field, "age");
    assert_eq!(refused(&|u| u.email = "not an email".into()).field, "email");
    assert_eq!(refused(&|u| u.name = "   ".into()).field, "name");

    let mut status = contract::imports::ImportStatus::try_from(ImportStatus::queued(&ImportRequest {
        import_id: Uuid::nil(),
        blob: "b".into(),
        file_name: None,
        size_bytes: 1,
        mode: ImportMode::Create,
        requested_at: Timestamp::from_millis(0),
        principal: None,
        request_digest: None,
    }))
    .unwrap();
    status.accepted = -3;
    assert_eq!(ImportStatus::try_from(status).unwrap_err().field, "accepted");

    let mut filter = contract::exports::ExportFilter {
        q: None,
        email_domain: None,
        min_age: Some(256),
        max_age: None,
        created_after: None,
        created_before: None,
    };
    let request = |filter: contract::exports::ExportFilter| contract::exports::ExportRequested {
        export_id: Uuid::nil(),
        filter,
        columns: vec![],
        positions: vec![],
        requested_at: 0,
        principal: None,
        request_digest: None,
    };
    assert_eq!(ExportRequest::try_from(request(filter.clone())).unwrap_err().field, "min_age");
    filter.min_age = Some(-1);
    assert_eq!(ExportRequest::try_from(request(filter)).unwrap_err().field, "min_age");
}

#[test]
fn values_too_large_for_the_wire_are_refused_never_clamped() {
    let mut big = user(None);
    big.version = u64::MAX;
    let error = e::UserEvent::try_from(event(Event::Updated(big))).unwrap_err();
    assert_eq!(error.field, "version");
    let batch = Command::Batch(vec![BatchItem {
        command_id: Uuid::nil(),
        line: 1 << 63,
        upsert: false,
        user: CreateUser { email: "a@b.co".into(), name: "A".into(), age: None, locale: None },
    }]);
    assert_eq!(contract::commands::UserCommand::try_from(command(batch)).unwrap_err().field, "line");
}

#[test]
fn inconsistent_replies_are_refused() {
    let accepted = |partition, offset| r::UserCommandReply {
        command_id: Uuid::nil(),
        correlation_id: Uuid::nil(),
        requester: "g".into(),
        outcome: r::Outcome::Accepted(r::Accepted {
            user_id: Uuid::nil(),
            user: None,
            event_partition: partition,
            event_offset: offset,
        }),
        request_digest: None,
    };
    assert!(Reply::try_from(accepted(Some(1), None)).is_err(), "a partition without its offset");
    assert!(Reply::try_from(accepted(None, Some(1))).is_err(), "an offset without its partition");
    assert!(Reply::try_from(accepted(None, None)).is_ok());
    let item = |user_id, rejection| r::UserCommandReply {
        outcome: r::Outcome::BatchOutcome(r::BatchOutcome {
            items: vec![r::ItemOutcome { command_id: Uuid::nil(), line: 2, user_id, rejection }],
        }),
        ..accepted(None, None)
    };
    let rejection = r::ItemRejection { reason: r::RejectionReason::Invalid, message: "m".into(), field_errors: vec![] };
    assert!(Reply::try_from(item(None, None)).is_err(), "neither a user nor a rejection");
    assert!(Reply::try_from(item(Some(Uuid::nil()), Some(rejection.clone()))).is_err(), "both");
    assert!(Reply::try_from(item(None, Some(rejection))).is_ok());
}

proptest! {
    #[test]
    fn arbitrary_commands_round_trip(
        email in "\\PC{0,40}", name in "\\PC{0,40}", age in proptest::option::of(any::<i64>()),
        clear_age in any::<bool>(), version in proptest::option::of(0u64..i64::MAX as u64),
    ) {
        let id = Uuid::new_v4();
        let update_age = if clear_age { Some(None) } else { age.map(Some) };
        for c in [
            Command::Create(CreateUser { email: email.clone(), name: name.clone(), age, locale: None }),
            Command::Update(UpdateUser { user_id: id, email: Some(email.clone()), name: None, age: update_age, locale: Some(None), expected_version: version }),
        ] {
            let envelope = command(c);
            prop_assert_eq!(round_trip::<_, contract::commands::UserCommand>(&envelope), envelope);
        }
    }

    #[test]
    fn a_user_from_the_wire_is_either_valid_today_or_refused(
        email in "\\PC{0,30}", name in "\\PC{0,30}", age in proptest::option::of(any::<i32>()), version in any::<i64>(),
    ) {
        let mut record = event_record();
        let user = user_in(&mut record);
        (user.email, user.name, user.age, user.version) = (email, name, age, version);
        if let Ok(envelope) = EventEnvelope::try_from(record) {
            let Event::Updated(user) = envelope.event else { panic!() };
            prop_assert!(Email::parse(user.email.as_str()).is_ok() && Name::parse(user.name.as_str()).is_ok());
            prop_assert!(user.age.is_none_or(|a| i64::from(a.get()) <= Age::MAX));
            prop_assert!(i64::try_from(user.version).is_ok());
        }
    }
}
