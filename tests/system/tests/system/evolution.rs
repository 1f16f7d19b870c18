//! Schema evolution against the real registry and broker. Version 2 of the contract added the
//! user's `locale` (optional, default null); the project's subjects run at FULL_TRANSITIVE, so
//! both directions of a rolling upgrade hold: a version 1 reader reads what version 2 writes,
//! version 2 reads the history version 1 wrote (records keep the schema id they were written
//! with), and a change that would break either is refused by the registry.

use std::time::Duration;

use contract::releases::v1;
use contract::{Record, events};
use domain::event::{Event, EventEnvelope};
use domain::time::Timestamp;
use domain::user::{Email, Locale, Name, User};
use platform::kafka::topics::{self, TopicSpec};
use platform::kafka::{Incoming, Producer};
use platform::registry::{Registry, RegistryConfig, RegistryError};
use platform::topic::{COMPATIBILITY, Topic, TopicName};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use system_tests::{Options, TestSystem, fresh, fresh_topics};
use uuid::Uuid;

fn registry() -> Registry {
    let url = std::env::var("SCHEMA_REGISTRY_URL").unwrap_or_else(|_| "http://127.0.0.1:8081".into());
    Registry::new(&RegistryConfig { url }, Duration::from_secs(10))
}

/// A user event as version 1 wrote it: no locale anywhere.
fn v1_created(email: &str, version: i64) -> v1::events::UserEvent {
    let now = Timestamp::now().millis();
    let user = v1::User {
        id: Uuid::now_v7(),
        email: email.to_owned(),
        name: "Old Timer".to_owned(),
        age: Some(70),
        created_at: now,
        updated_at: now,
        version,
    };
    v1::events::UserEvent {
        event_id: Uuid::now_v7(),
        command_id: Uuid::now_v7(),
        correlation_id: Uuid::now_v7(),
        occurred_at: now,
        event: v1::events::Event::UserCreated(v1::events::UserCreated { user }),
    }
}

/// A user event as version 2 writes it, with a locale.
fn v2_created(email: &str) -> EventEnvelope {
    let now = Timestamp::now();
    let user = User {
        id: Uuid::now_v7(),
        email: Email::parse(email).unwrap(),
        name: Name::parse("New Comer").unwrap(),
        age: None,
        created_at: now,
        updated_at: now,
        version: 1,
        locale: Some(Locale::parse("pt-BR").unwrap()),
    };
    EventEnvelope {
        event_id: Uuid::now_v7(),
        command_id: Uuid::now_v7(),
        correlation_id: Uuid::now_v7(),
        occurred_at: now,
        principal: Some("jwt:test".into()),
        event: Event::Created(user),
    }
}

/// Every record of `topic`, in order (one partition).
async fn records(kafka: &platform::KafkaConfig, topic: &str) -> Vec<Incoming> {
    let (records, _) = platform::kafka::replay(kafka, topic, Vec::new(), |all, m| all.push(m)).await.unwrap();
    records
}

fn schema_id(message: &Incoming) -> u32 {
    let payload = message.payload.as_deref().unwrap();
    u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]])
}

#[tokio::test]
async fn a_v1_reader_reads_v2_events_and_a_v2_reader_reads_v1_history_on_one_topic() {
    let kafka = platform::testing::kafka().await;
    let registry = registry();
    let old_name: TopicName<v1::events::UserEvent> = fresh("evolving-events");
    let new_name: TopicName<events::UserEvent> = old_name.as_str().parse().unwrap();
    topics::ensure(&kafka, &[TopicSpec::new(old_name.as_str()).partitions(1)]).await.unwrap();
    let producer = Producer::new(&kafka, "evolution-test").unwrap();

    // Before the upgrade: version 1 registers its schema and writes history.
    let old = Topic::bind(&old_name, &registry).await.unwrap();
    for (i, email) in ["one@example.com", "two@example.com"].into_iter().enumerate() {
        old.publish(&producer, b"k", v1_created(email, i as i64 + 1)).await.unwrap();
    }
    // The upgrade: version 2 registers (FULL_TRANSITIVE accepts it) and writes beside it.
    let new = Topic::bind(&new_name, &registry).await.expect("version 2 is compatible with version 1");
    assert_ne!(new.schema_id(), old.schema_id());
    new.publish(&producer, b"k", v2_created("three@example.com")).await.unwrap();

    let written = records(&kafka, old_name.as_str()).await;
    let ids: Vec<u32> = written.iter().map(schema_id).collect();
    assert_eq!(ids, [old.schema_id(), old.schema_id(), new.schema_id()], "each record keeps its writer's id");

    // Version 2 reads the whole history: version 1's users have no locale.
    let mut read_by_new = Vec::new();
    for message in &written {
        let envelope: EventEnvelope = new.decode(message).await.expect("version 2 reads every record");
        let Event::Created(user) = envelope.event else { panic!() };
        read_by_new.push((user.email.as_str().to_owned(), user.locale.map(|l| l.as_str().to_owned())));
    }
    assert_eq!(
        read_by_new,
        [
            ("one@example.com".to_owned(), None),
            ("two@example.com".to_owned(), None),
            ("three@example.com".to_owned(), Some("pt-BR".to_owned()))
        ]
    );

    // Version 1 reads what version 2 wrote, skipping the field it does not know.
    let read_by_old = old.decode_record(written[2].payload.as_deref()).await.expect("version 1 reads version 2");
    let v1::events::Event::UserCreated(created) = read_by_old.event else { panic!() };
    assert_eq!((created.user.email.as_str(), created.user.version), ("three@example.com", 1));
}

#[tokio::test]
async fn every_service_reads_history_written_by_version_1_after_the_upgrade() {
    let kafka = platform::testing::kafka().await;
    let topics = fresh_topics();
    topics::ensure(&kafka, &topics.catalog()).await.unwrap();
    let events_v1: TopicName<v1::events::UserEvent> = topics.user_events.as_str().parse().unwrap();
    let old = Topic::bind(&events_v1, &registry()).await.unwrap();
    let producer = Producer::new(&kafka, "evolution-test").unwrap();
    let created = v1_created("Veteran@Example.com", 1);
    let v1::events::Event::UserCreated(v1::events::UserCreated { user }) = &created.event else { panic!() };
    let mut renamed = user.clone();
    (renamed.name, renamed.version) = ("Old Hand".into(), 2);
    let updated = v1::events::UserEvent {
        event_id: Uuid::now_v7(),
        event: v1::events::Event::UserUpdated(v1::events::UserUpdated { user: renamed }),
        ..created.clone()
    };
    let key = user.id.to_string();
    for event in [created.clone(), updated] {
        old.publish(&producer, key.as_bytes(), event).await.unwrap();
    }

    // Version 2 of every service starts on that history.
    let options = Options { export_worker: true, ..Options::default() };
    let mut system = TestSystem::start_on(topics, options).await;
    let found = system.call(Method::GET, "/users?email=veteran@example.com", None).await;
    let veteran = &found.body["items"][0];
    assert_eq!((veteran["name"].as_str(), veteran["version"].as_u64()), (Some("Old Hand"), Some(2)), "{}", found.body);
    assert_eq!(veteran["locale"], Value::Null, "written before locales existed");

    // user-service rebuilt its state from version 1's events: it knows the user, its version
    // and its email.
    let path = format!("/users/{}", user.id);
    let patched =
        system.call_with(Method::PATCH, &path, Some(json!({"locale": "pt_br"})), &[("if-match", "\"2\"")]).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!((patched.body["locale"].as_str(), patched.body["version"].as_u64()), (Some("pt-BR"), Some(3)));
    let taken = system.call(Method::POST, "/users", Some(json!({"email": "veteran@example.COM", "name": "X"}))).await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.body);

    // The export worker's projection read it too; a restarted gateway rebuilds both versions.
    let export = crate::support::export(&system, json!({"columns": ["email", "name", "version"]})).await;
    assert_eq!(export.1, [["Veteran@Example.com", "Old Hand", "3"]]);
    system.restart_gateway().await;
    let again = system.call(Method::GET, &path, None).await;
    assert_eq!((again.body["locale"].as_str(), again.body["version"].as_u64()), (Some("pt-BR"), Some(3)));
    system.stop().await;
}

#[tokio::test]
async fn the_project_subjects_refuse_a_breaking_version_with_409() {
    let system = TestSystem::start().await;
    let registry = registry();
    let subject = system.topics.user_events.subject();
    // The topic and subject setup left the subject at the project's level.
    let url = format!("{}/config/{subject}", registry.url());
    let level: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    assert_eq!(level["compatibilityLevel"], COMPATIBILITY.as_str());

    let current = events::UserEvent::SCHEMA;
    let version = r#"{"name":"version","type":"long"}"#;
    assert!(current.contains(version), "{current}");
    let occurred_at = r#"{"name":"occurred_at","type":{"type":"long","logicalType":"timestamp-millis"}}"#;
    assert!(current.contains(occurred_at), "{current}");
    let columns_subject = system.topics.export_status.subject();
    let columns = contract::exports::ExportStatus::SCHEMA;
    for (what, subject, schema) in [
        (
            "a field without a default",
            &subject,
            current.replace(version, &format!(r#"{version},{{"name":"tier","type":"string"}}"#)),
        ),
        ("a field's type changed", &subject, current.replace(occurred_at, r#"{"name":"occurred_at","type":"string"}"#)),
        ("an enum symbol removed", &columns_subject, columns.replace(r#","VERSION""#, "")),
    ] {
        assert_ne!(schema, current);
        match registry.register(subject, &schema).await {
            Err(RegistryError::Refused { status: 409, code: 409, .. }) => {}
            other => panic!("{what}: expected a 409 refusal, got {other:?}"),
        }
    }
    system.stop().await;
}
