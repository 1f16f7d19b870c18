//! The Rust types and the `.avsc` files agree: every variant encodes to a value the schema
//! accepts, survives the binary encoding, and decodes to what it was.

// apache-avro 0.22 deprecates the datum helpers in favour of a reader API with more ceremony.
#![allow(deprecated)]

use apache_avro::types::Value;
use apache_avro::{Schema, from_avro_datum, to_avro_datum};
use domain::avro::{AvroRecord, COMMAND_SCHEMA, EVENT_SCHEMA, REPLY_SCHEMA, schemas};
use domain::command::{BatchItem, Command, CommandEnvelope, CreateUser, DeleteUser, UpdateUser};
use domain::event::{Event, EventEnvelope};
use domain::export::{Column, ExportFilter, ExportRequest, ExportState, ExportStatus};
use domain::import::{ImportMode, ImportRequest, ImportState, ImportStatus};
use domain::reply::{Accepted, EventPosition, ItemOutcome, Outcome, Rejection, RejectionReason, Reply};
use domain::time::Timestamp;
use domain::user::{Age, Email, FieldError, Name, User};
use domain::wire::Wire;
use proptest::prelude::*;
use uuid::Uuid;

fn round_trip<T: AvroRecord + PartialEq + std::fmt::Debug>(item: &T) -> T {
    let value = item.to_avro();
    assert!(value.validate(T::schema()), "{item:?} does not fit its schema: {value:?}");
    let bytes = to_avro_datum(T::schema(), value).expect("encodes");
    let decoded = from_avro_datum(T::schema(), &mut bytes.as_slice(), None).expect("decodes");
    T::from_avro(decoded).expect("maps back")
}

/// The direct codec writes exactly apache-avro's bytes and reads them back.
fn round_trip_wire<T: AvroRecord + Wire + PartialEq + std::fmt::Debug>(item: &T) -> T {
    let generic = to_avro_datum(T::schema(), item.to_avro()).expect("encodes");
    let mut direct = Vec::new();
    item.write(&mut direct);
    assert_eq!(direct, generic, "the direct bytes of {item:?} differ from apache-avro's");
    let read = T::read(&generic).expect("reads apache-avro's bytes");
    assert_eq!(&read, item);
    round_trip(item)
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
    }
}

fn command(command: Command) -> CommandEnvelope {
    CommandEnvelope {
        command_id: Uuid::new_v4(),
        correlation_id: Uuid::new_v4(),
        requester: "api-gateway-1".into(),
        issued_at: Timestamp::from_millis(42),
        command,
    }
}

fn event(event: Event) -> EventEnvelope {
    EventEnvelope {
        event_id: Uuid::now_v7(),
        command_id: Uuid::new_v4(),
        correlation_id: Uuid::new_v4(),
        occurred_at: Timestamp::from_millis(43),
        event,
    }
}

fn reply(outcome: Outcome) -> Reply {
    Reply { command_id: Uuid::new_v4(), correlation_id: Uuid::new_v4(), requester: "import-worker".into(), outcome }
}

#[test]
fn the_schema_files_parse() {
    for text in [
        schemas::USER_COMMAND,
        schemas::USER_EVENT,
        schemas::USER_REPLY,
        schemas::IMPORT_REQUEST,
        schemas::IMPORT_STATUS,
        schemas::EXPORT_REQUEST,
        schemas::EXPORT_STATUS,
    ] {
        Schema::parse_str(text).expect("valid Avro");
    }
}

#[test]
fn every_command_variant_round_trips() {
    let id = Uuid::now_v7();
    for c in [
        Command::Create(CreateUser { email: " a@b.co ".into(), name: "A".into(), age: None }),
        Command::Create(CreateUser { email: "not validated here".into(), name: String::new(), age: Some(-5) }),
        Command::Update(UpdateUser { user_id: id, ..UpdateUser::default() }),
        Command::Update(UpdateUser {
            user_id: id,
            email: Some("x@y.io".into()),
            name: Some("X".into()),
            age: Some(None),
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
                user: CreateUser { email: "a@b.co".into(), name: "A".into(), age: Some(3) },
            },
            BatchItem {
                command_id: Uuid::new_v4(),
                line: 1_000_001,
                upsert: true,
                user: CreateUser { email: "raw".into(), name: String::new(), age: None },
            },
        ]),
    ] {
        let envelope = command(c);
        assert_eq!(round_trip_wire(&envelope), envelope);
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
        assert_eq!(round_trip_wire(&envelope), envelope);
    }
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
        assert_eq!(round_trip_wire(&envelope), envelope);
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
    };
    assert_eq!(round_trip(&request), request);
    let queued = ImportStatus::queued(&request);
    assert_eq!(round_trip(&queued), queued);
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
        ..queued
    };
    assert_eq!(round_trip(&finished), finished);
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
        };
        assert_eq!(round_trip(&request), request);
        let queued = ExportStatus::queued(&request);
        assert_eq!(round_trip(&queued), queued);
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
        assert_eq!(round_trip(&done), done);
        let failed = ExportStatus { state: ExportState::Failed, error: Some("disk full".into()), ..queued };
        assert_eq!(round_trip(&failed), failed);
    }
}

#[test]
fn the_user_record_is_the_same_in_events_and_replies() {
    fn user_schema(schema: &Schema) -> String {
        let json = serde_json::to_value(schema).unwrap();
        let found = find_named(&json, "usermgmt.User").expect("declares usermgmt.User");
        found.to_string()
    }
    fn find_named<'a>(json: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
        match json {
            serde_json::Value::Object(map) => {
                let full = match (map.get("namespace"), map.get("name")) {
                    (Some(ns), Some(n)) => format!("{}.{}", ns.as_str()?, n.as_str()?),
                    (None, Some(n)) => n.as_str()?.to_owned(),
                    _ => String::new(),
                };
                if full == name && map.get("fields").is_some() {
                    return Some(json);
                }
                map.values().find_map(|v| find_named(v, name))
            }
            serde_json::Value::Array(items) => items.iter().find_map(|v| find_named(v, name)),
            _ => None,
        }
    }
    assert_eq!(user_schema(&EVENT_SCHEMA), user_schema(&REPLY_SCHEMA));
}

#[test]
fn a_reply_written_before_event_positions_existed_still_decodes() {
    // An older writer schema without the optional position fields: BACKWARD evolution.
    let old = Schema::parse_str(&schemas::USER_REPLY.replace(
        r#"{"name": "event_partition", "type": ["null", "int"], "default": null, "doc": "Where the event is on the events topic (read-your-writes)."},
          {"name": "event_offset", "type": ["null", "long"], "default": null}"#,
        r#"{"name": "legacy", "type": "string", "default": ""}"#,
    ))
    .expect("older schema");
    assert_ne!(serde_json::to_string(&old).unwrap(), serde_json::to_string(&*REPLY_SCHEMA).unwrap());
    let id = Uuid::new_v4();
    let written = Value::Record(vec![
        ("command_id".into(), Value::Uuid(id)),
        ("correlation_id".into(), Value::Uuid(id)),
        ("requester".into(), Value::String("g".into())),
        (
            "outcome".into(),
            Value::Union(
                0,
                Box::new(Value::Record(vec![
                    ("user_id".into(), Value::Uuid(id)),
                    ("user".into(), Value::Union(0, Box::new(Value::Null))),
                    ("legacy".into(), Value::String(String::new())),
                ])),
            ),
        ),
    ]);
    let bytes = to_avro_datum(&old, written).expect("old writer encodes");
    let decoded = from_avro_datum(&old, &mut bytes.as_slice(), None).expect("decodes with the writer schema");
    let reply = Reply::from_avro(decoded).expect("maps with our schema");
    assert!(matches!(reply.outcome, Outcome::Accepted(Accepted { event: None, user: None, .. })));
}

#[test]
fn a_record_of_another_shape_is_refused_not_panicked_on() {
    assert!(CommandEnvelope::from_avro(Value::String("garbage".into())).is_err());
    assert!(EventEnvelope::from_avro(Value::Record(vec![])).is_err());
    let wrong = command(Command::Delete(DeleteUser { user_id: Uuid::nil(), expected_version: None })).to_avro();
    assert!(EventEnvelope::from_avro(wrong).is_err());
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
            Command::Create(CreateUser { email: email.clone(), name: name.clone(), age }),
            Command::Update(UpdateUser { user_id: id, email: Some(email.clone()), name: None, age: update_age, expected_version: version }),
        ] {
            let envelope = command(c);
            prop_assert_eq!(round_trip_wire(&envelope), envelope);
        }
    }
}

#[test]
fn every_schema_is_registered_in_avro_form() {
    // The schemas the services register are exactly the files: no second copy in code.
    assert_eq!(*COMMAND_SCHEMA, Schema::parse_str(schemas::USER_COMMAND).unwrap());
}
