//! Other Kafka clients read what the services write: Confluent's own Python client
//! (`confluent-kafka[avro]`) decodes every project topic through the schema registry, as any
//! Java or Python consumer of a Confluent stack would, shared types inlined and all.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use system_tests::{Options, TestSystem};

use crate::support::{export, import};

/// Reads `count` records of each topic with the Python client; returns them by topic.
async fn read_with_python(topics: &[(&str, usize)]) -> Value {
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let registry = std::env::var("SCHEMA_REGISTRY_URL").unwrap_or_else(|_| "http://127.0.0.1:8081".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/read_topics.py");
    let output = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new("python3")
            .arg(script)
            .args(["--bootstrap", &bootstrap, "--registry", &registry])
            .args(topics.iter().map(|(topic, count)| format!("{topic}={count}")))
            .output(),
    )
    .await
    .expect("the Python client finishes")
    .expect("python3 runs (deploy/bootstrap.sh installs confluent-kafka)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the Python client failed: {stderr}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stderr}"))
}

#[tokio::test]
async fn confluents_python_client_decodes_every_topic_the_services_write() {
    let system =
        TestSystem::start_with(Options { import_worker: true, export_worker: true, ..Options::default() }).await;
    let ada = json!({"email": "ada@example.com", "name": "Ada", "age": 36, "locale": "pt-BR"});
    let created = system.call(Method::POST, "/users", Some(ada)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let path = format!("/users/{}", created.body["id"].as_str().unwrap());
    assert_eq!(system.call(Method::PATCH, &path, Some(json!({"name": "Ada L."}))).await.status, StatusCode::OK);
    assert_eq!(system.call(Method::DELETE, &path, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(import(&system, b"email,name,age,locale\ncy@example.com,Cy,30,fr\n").await, 1);
    export(&system, json!({"columns": ["email", "version"]})).await;

    let t = &system.topics;
    let read = read_with_python(&[
        (t.user_commands.as_str(), 4),
        (t.user_events.as_str(), 4),
        (t.user_state.as_str(), 4),
        (t.user_replies.as_str(), 4),
        (t.import_requests.as_str(), 1),
        (t.import_status.as_str(), 2),
        (t.export_requests.as_str(), 1),
        (t.export_status.as_str(), 2),
    ])
    .await;

    // Events: a union of records, the shared user inlined in the first branch. One user's
    // events are in order on their partition; partitions interleave as they come.
    let events = read[t.user_events.as_str()].as_array().unwrap();
    let users: Vec<&Value> = events.iter().filter_map(|e| e["event"].get("user")).collect();
    let ada: Vec<&&Value> = users.iter().filter(|u| u["email"] == "ada@example.com").collect();
    assert_eq!((ada[0]["locale"].as_str(), ada[1]["name"].as_str()), (Some("pt-BR"), Some("Ada L.")), "{events:?}");
    assert!(events.iter().any(|e| e["event"]["user_id"] == created.body["id"]), "the deletion: {events:?}");
    assert!(users.iter().any(|u| u["email"] == "cy@example.com" && u["locale"] == "fr"), "{events:?}");

    // States: each user's latest state with the event it reflects; a tombstone (null) once
    // deleted.
    let states = read[t.user_state.as_str()].as_array().unwrap();
    assert_eq!(states.iter().filter(|s| s.is_null()).count(), 1, "the deletion's tombstone: {states:?}");
    let renamed = states.iter().find(|s| s["user"]["name"] == "Ada L.").expect("Ada's latest state");
    assert!(renamed["event_partition"].is_i64() && renamed["event_offset"].is_i64(), "{renamed}");

    let commands = read[t.user_commands.as_str()].as_array().unwrap();
    let batch = commands.iter().find_map(|c| c["command"].get("items")).expect("the import's batch");
    assert_eq!((batch[0]["email"].as_str(), batch[0]["locale"].as_str()), (Some("cy@example.com"), Some("fr")));
    let replies = read[t.user_replies.as_str()].as_array().unwrap();
    assert!(replies.iter().any(|r| r["outcome"]["user"]["locale"] == "pt-BR"), "{replies:?}");

    let import_status = read[t.import_status.as_str()].as_array().unwrap();
    assert_eq!(
        (import_status[0]["state"].as_str(), import_status[0]["mode"].as_str()),
        (Some("QUEUED"), Some("CREATE"))
    );
    let export_request = &read[t.export_requests.as_str()][0];
    assert_eq!(export_request["columns"], json!(["EMAIL", "VERSION"]));
    assert!(export_request["positions"].as_array().is_some_and(|p| !p.is_empty()), "{export_request}");
    assert_eq!(read[t.export_status.as_str()][0]["state"], "QUEUED");
    system.stop().await;
}
