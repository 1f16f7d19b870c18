//! The state model from outside: projections agree after restarts whatever the partitions'
//! interleaving, one user-service writes (Kafka fences a second), an unreadable event is
//! dead-lettered during a rebuild, and a deployment from before `users.state` is backfilled.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use domain::event::{Event, EventEnvelope};
use domain::time::Timestamp;
use domain::user::{Email, Name, User};
use platform::kafka::dead_letter_headers as dlq;
use platform::kafka::{Producer, Record};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use system_tests::{Options, TestSystem, fresh_topics};
use uuid::Uuid;

use crate::support::read_all;

async fn create(system: &TestSystem, email: &str) -> String {
    let created = system.call(Method::POST, "/users", Some(json!({"email": email, "name": "N"}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{email}: {}", created.body);
    created.body["id"].as_str().unwrap().to_owned()
}

fn assert_digests_agree(digests: &[Value]) {
    for field in ["users", "versions", "emails"] {
        let values: Vec<&Value> = digests.iter().map(|d| &d[field]).collect();
        assert!(values.windows(2).all(|pair| pair[0] == pair[1]), "{field} differs: {digests:?}");
    }
}

#[tokio::test]
async fn emails_freed_and_taken_again_belong_to_their_live_owners_after_restarts() {
    let mut system = TestSystem::start().await;
    // email -> the id of its live owner.
    let mut owners: HashMap<String, String> = HashMap::new();
    for i in 0..24 {
        let email = format!("again{i}@example.com");
        let first = create(&system, &email).await;
        owners.insert(email.clone(), first.clone());
        match i % 3 {
            // Deleted, and the email taken by someone new (in another case).
            0 => {
                let deleted = system.call(Method::DELETE, &format!("/users/{first}"), None).await;
                assert_eq!(deleted.status, StatusCode::NO_CONTENT);
                let second = create(&system, &email.to_uppercase()).await;
                owners.insert(email, second);
            }
            // The first owner moves to another email; someone new takes the old one.
            1 => {
                let moved = format!("moved{i}@example.com");
                let patch = json!({"email": moved});
                let patched = system.call(Method::PATCH, &format!("/users/{first}"), Some(patch)).await;
                assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
                owners.insert(moved, first);
                let second = create(&system, &email).await;
                owners.insert(email, second);
            }
            _ => {}
        }
    }

    system.stop_user_service().await;
    system.start_user_service().await;
    system.restart_gateway().await;

    for (email, owner) in &owners {
        let found = system.call(Method::GET, &format!("/users?email={}", email.to_uppercase()), None).await;
        let items = found.body["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{email} is found after the restart: {}", found.body);
        assert_eq!(items[0]["id"].as_str(), Some(owner.as_str()), "{email} belongs to its live owner");
        let again = system.call(Method::POST, "/users", Some(json!({"email": email, "name": "Third"}))).await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{email} is still taken after the restart");
    }
    let digests = system.digests().await;
    assert_eq!(digests[0]["users"], json!(owners.len()));
    assert_digests_agree(&digests);
    system.stop().await;
}

#[tokio::test]
async fn a_second_user_service_fences_the_first_which_stops_and_no_command_is_applied_twice() {
    let mut system = TestSystem::start().await;
    for i in 0..10 {
        create(&system, &format!("before{i}@example.com")).await;
    }
    let first = system.user_service.take().unwrap();
    let started = Instant::now();
    let second = system.another_user_service().await;
    let ended = first.ended(Duration::from_secs(20)).await;
    let waited = started.elapsed();
    let error = format!("{:#}", ended.expect_err("the fenced instance fails"));
    assert!(error.contains("fenced"), "{error}");
    assert!(waited < Duration::from_secs(15), "the fenced instance stopped after {waited:?}");
    system.user_service = Some(second);

    for i in 0..10 {
        create(&system, &format!("after{i}@example.com")).await;
    }
    let events = read_all(system.topics.user_events.as_str()).await;
    let topics = system.bound_topics().await;
    let mut per_command: HashMap<Uuid, usize> = HashMap::new();
    for event in &events {
        let envelope: EventEnvelope = topics.user_events.decode(event).await.unwrap();
        *per_command.entry(envelope.command_id).or_default() += 1;
    }
    assert_eq!(per_command.len(), 20);
    assert!(per_command.values().all(|n| *n == 1), "{per_command:?}");
    assert_digests_agree(&system.digests().await);
    system.stop().await;
}

#[tokio::test]
async fn an_unreadable_event_met_in_a_rebuild_is_dead_lettered_and_counted_and_the_service_starts() {
    let mut system = TestSystem::start().await;
    let kept = create(&system, "kept@example.com").await;
    let kafka = platform::testing::kafka().await;
    let producer = Producer::new(&kafka, "test").unwrap();
    let poison = b"\x00\x7f\xff\xff\xf0 not an event";
    let key = Uuid::now_v7().to_string();
    producer.send(Record::new(system.topics.user_events.as_str(), poison).key(key.as_bytes())).await.unwrap();

    system.restart_gateway().await;
    assert_eq!(system.call(Method::GET, &format!("/users/{kept}"), None).await.status, StatusCode::OK);
    let metrics = system.client.get(format!("{}/metrics", system.gateway.admin())).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    let counted = metrics.lines().any(|line| {
        line.starts_with("kafka_tail_dead_lettered_total")
            && line.contains(system.topics.user_events.as_str())
            && !line.ends_with(" 0")
    });
    assert!(counted, "the metric counts it:\n{metrics}");

    let letters = read_all(&system.topics.dead_letters).await;
    let letter = letters.iter().find(|l| l.payload.as_deref() == Some(&poison[..])).expect("dead-lettered");
    assert_eq!(letter.header(dlq::ORIGINAL_TOPIC), Some(system.topics.user_events.as_str().as_bytes()));
    assert_eq!(letter.header(dlq::CONSUMER_GROUP), Some(&b"api-gateway"[..]));
    assert!(!letter.header(dlq::ERROR).unwrap().is_empty(), "with the reason");
    system.stop().await;
}

fn old_user(i: u64, version: u64) -> User {
    User {
        id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + u128::from(i)),
        email: Email::parse(&format!("old{i}@example.com")).unwrap(),
        name: Name::parse(&format!("Old {i} v{version}")).unwrap(),
        age: None,
        created_at: Timestamp::from_millis(1_700_000_000_000),
        updated_at: Timestamp::from_millis(1_700_000_000_000 + version as i64),
        version,
        locale: None,
    }
}

#[tokio::test]
async fn a_deployment_from_before_the_state_topic_is_backfilled_on_first_start_and_nobody_is_lost() {
    // The log as the previous version wrote it: events only, nothing in users.state.
    let topics = fresh_topics();
    let kafka = platform::testing::kafka().await;
    platform::kafka::topics::ensure(&kafka, &topics.catalog()).await.unwrap();
    let defaults = <api_gateway::Config as clap::Parser>::try_parse_from(["api-gateway"]).unwrap().common;
    let registry = platform::registry::Registry::new(&defaults.registry, Duration::from_secs(10));
    let bound = platform::topic::Topics::bind(&topics, &registry).await.unwrap();
    let producer = Producer::new(&kafka, "previous-version").unwrap();
    let publish = |event: Event| {
        let key = event.user_id().to_string();
        let envelope = EventEnvelope {
            event_id: Uuid::now_v7(),
            command_id: Uuid::now_v7(),
            correlation_id: Uuid::now_v7(),
            occurred_at: Timestamp::now(),
            principal: None,
            event,
        };
        let (bound, producer) = (&bound, &producer);
        async move { bound.user_events.publish(producer, key.as_bytes(), envelope).await.unwrap() }
    };
    for i in 0..60 {
        publish(Event::Created(old_user(i, 1))).await;
    }
    for i in (0..60).step_by(3) {
        publish(Event::Updated(old_user(i, 2))).await;
    }
    for i in (1..60).step_by(4) {
        let user = old_user(i, if i % 3 == 0 { 2 } else { 1 });
        publish(Event::Deleted { user_id: user.id, email: user.email, version: user.version + 1 }).await;
    }
    let live: Vec<u64> = (0..60).filter(|i| i % 4 != 1).collect();

    let mut system = TestSystem::start_on(topics, Options::default()).await;
    let states = read_all(system.topics.user_state.as_str()).await;
    assert_eq!(states.len(), live.len(), "one state record per live user");
    system.restart_gateway().await;
    for i in &live {
        let user = old_user(*i, 1);
        let found = system.call(Method::GET, &format!("/users/{}", user.id), None).await;
        assert_eq!(found.status, StatusCode::OK, "old{i} survived the upgrade");
        let version = if i % 3 == 0 { 2 } else { 1 };
        assert_eq!(found.body["version"], json!(version));
    }
    assert_digests_agree(&system.digests().await);
    // A second start reads the state: no second backfill.
    system.stop_user_service().await;
    system.start_user_service().await;
    assert_eq!(read_all(system.topics.user_state.as_str()).await.len(), live.len());
    system.stop().await;
}

#[tokio::test]
async fn commands_sent_again_after_user_service_restarted_get_their_first_outcomes() {
    use domain::command::{BatchItem, Command, CreateUser};
    use domain::reply::Outcome;

    let mut system = TestSystem::start().await;
    let kafka = platform::testing::kafka().await;
    let topics = system.bound_topics().await;
    // A single command, and a batch of two rows (as an import sends them).
    let single = system_tests::create_command("twice@example.com", "T");
    let mut batch = system_tests::create_command("unused@example.com", "U");
    let row = |email: &str, line| BatchItem {
        command_id: Uuid::now_v7(),
        line,
        upsert: false,
        user: CreateUser { email: email.into(), name: "R".into(), age: None, locale: None },
    };
    batch.command = Command::Batch(vec![row("row1@example.com", 2), row("row2@example.com", 3)]);
    let ids = [single.command_id, batch.command_id];
    let records: Vec<(String, Vec<u8>)> =
        [single, batch].into_iter().map(|c| (c.command.key(), topics.user_commands.encode(c).unwrap())).collect();
    let producer = Producer::new(&kafka, "test").unwrap();
    let send = || async {
        for (key, bytes) in &records {
            producer.send(Record::new(topics.user_commands.name(), bytes).key(key.as_bytes())).await.unwrap();
        }
    };
    send().await;
    platform::testing::eventually("the first deliveries applied", Duration::from_secs(30), || async {
        let found = system.call(Method::GET, "/users?email=row2@example.com", None).await;
        (found.body["items"].as_array().is_some_and(|items| items.len() == 1)).then_some(())
    })
    .await;

    // Restarted, user-service knows the commands from the replies of the de-duplication window.
    system.stop_user_service().await;
    system.start_user_service().await;
    send().await;
    create(&system, "marker@example.com").await;

    let mut outcomes: HashMap<Uuid, Vec<Outcome>> = HashMap::new();
    for record in read_all(system.topics.user_replies.as_str()).await {
        let reply: domain::reply::Reply = topics.user_replies.decode(&record).await.unwrap();
        outcomes.entry(reply.command_id).or_default().push(reply.outcome);
    }
    let single = &outcomes[&ids[0]];
    assert_eq!(single.len(), 2, "{single:?}");
    let Outcome::Accepted(first) = &single[0] else { panic!("{single:?}") };
    assert!(
        matches!(&single[1], Outcome::Accepted(again) if again.user_id == first.user_id),
        "the second delivery is answered with the first outcome: {single:?}"
    );
    let batch = &outcomes[&ids[1]];
    assert_eq!(batch.len(), 2, "{batch:?}");
    let rows = |outcome: &Outcome| match outcome {
        Outcome::Batch(items) => items.iter().map(|i| i.result.clone().ok()).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert!(rows(&batch[0]).iter().all(Option::is_some), "{batch:?}");
    assert_eq!(rows(&batch[0]), rows(&batch[1]), "each row answered again with its first outcome");
    system.stop().await;
}
