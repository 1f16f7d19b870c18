//! Real clients against the registry: the Rust services' `schema_registry_converter`, and
//! Confluent's Python client as an independent implementation.

use apache_avro::types::Value as Avro;
use platform::kafka::topics::{self, TopicSpec};
use platform::kafka::{Consumer, ConsumerSettings, HandleError, Handler, Incoming, Producer, Record};
use platform::testing::{eventually, unique};
use platform::{KafkaConfig, Shutdown};
use schema_registry_converter::async_impl::easy_avro::{EasyAvroDecoder, EasyAvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::{SchemaType, SubjectNameStrategy, SuppliedSchema};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::helpers::TestRegistry;

const SCHEMA: &str = r#"{"type": "record", "name": "Interop", "namespace": "test.interop", "fields": [
    {"name": "id", "type": "string"},
    {"name": "count", "type": "int"},
    {"name": "total", "type": "long"},
    {"name": "ratio", "type": "double"},
    {"name": "active", "type": "boolean"},
    {"name": "nickname", "type": ["null", "string"], "default": null},
    {"name": "level", "type": {"type": "enum", "name": "Level", "symbols": ["LOW", "HIGH"]}},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "created_at", "type": {"type": "long", "logicalType": "timestamp-millis"}}
]}"#;

/// The records, as JSON (what Python prints) ...
fn records(prefix: &str) -> Vec<Value> {
    (0..3)
        .map(|i| {
            json!({
                "id": format!("{prefix}-{i}"),
                "count": i * 7 - 5,
                "total": 9_000_000_000_i64 + i64::from(i),
                "ratio": f64::from(i) / 4.0,
                "active": i % 2 == 0,
                "nickname": if i == 1 { Value::Null } else { json!(format!("nick-{i} é✓")) },
                "level": if i == 2 { "HIGH" } else { "LOW" },
                "tags": (0..i).map(|t| format!("tag{t}")).collect::<Vec<_>>(),
                "created_at": 1_763_000_000_000_i64 + i64::from(i),
            })
        })
        .collect()
}

/// ... and as Avro values (what the Rust codec sees), field for field.
fn avro(record: &Value) -> Vec<(&'static str, Avro)> {
    let text = |k: &str| record[k].as_str().expect("string").to_owned();
    vec![
        ("id", Avro::String(text("id"))),
        ("count", Avro::Int(record["count"].as_i64().expect("int") as i32)),
        ("total", Avro::Long(record["total"].as_i64().expect("long"))),
        ("ratio", Avro::Double(record["ratio"].as_f64().expect("double"))),
        ("active", Avro::Boolean(record["active"].as_bool().expect("bool"))),
        (
            "nickname",
            match record["nickname"].as_str() {
                None => Avro::Union(0, Box::new(Avro::Null)),
                Some(nick) => Avro::Union(1, Box::new(Avro::String(nick.to_owned()))),
            },
        ),
        ("level", if text("level") == "HIGH" { Avro::Enum(1, "HIGH".into()) } else { Avro::Enum(0, "LOW".into()) }),
        (
            "tags",
            Avro::Array(
                record["tags"]
                    .as_array()
                    .expect("array")
                    .iter()
                    .map(|t| Avro::String(t.as_str().unwrap().into()))
                    .collect(),
            ),
        ),
        ("created_at", Avro::TimestampMillis(record["created_at"].as_i64().expect("millis"))),
    ]
}

fn strategy(topic: &str) -> SubjectNameStrategy {
    let schema = SuppliedSchema::new(Some("test.interop.Interop".into()), SchemaType::Avro, SCHEMA.into());
    SubjectNameStrategy::TopicNameStrategyWithSchema(topic.to_owned(), false, schema)
}

async fn fresh_topics(kafka: &KafkaConfig, names: &[&str]) {
    let specs: Vec<TopicSpec> = names.iter().map(|n| TopicSpec::new(n).partitions(1)).collect();
    topics::ensure(kafka, &specs).await.expect("topics");
}

/// Collects the payloads of a topic.
struct Collect(Arc<Mutex<Vec<Vec<u8>>>>);

impl Handler for Collect {
    async fn handle(&self, message: &Incoming) -> Result<(), HandleError> {
        self.0.lock().expect("lock").push(message.payload.clone().unwrap_or_default());
        Ok(())
    }
}

async fn read_payloads(kafka: &KafkaConfig, topic: &str, count: usize) -> Vec<Vec<u8>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let settings = ConsumerSettings::new(unique("reader"), &[topic], unique("unused-dlq"));
    let consumer = Consumer::new(kafka, settings, Producer::new(kafka, "reader").expect("producer")).expect("consumer");
    let shutdown = Shutdown::new();
    let handler = Collect(Arc::clone(&seen));
    let stop = shutdown.clone();
    let task = tokio::spawn(async move { consumer.run(&handler, stop).await });
    let payloads = eventually(&format!("{count} records on {topic}"), Duration::from_secs(30), || async {
        let seen = seen.lock().expect("lock").clone();
        (seen.len() >= count).then_some(seen)
    })
    .await;
    shutdown.trigger();
    task.await.expect("consumer stops");
    payloads
}

#[tokio::test]
async fn schema_registry_converter_encodes_and_decodes_a_record_through_the_registry() {
    let registry = TestRegistry::start().await;
    let topic = unique("converter");
    let encoder = EasyAvroEncoder::new(SrSettings::new(registry.url.clone()));
    let decoder = EasyAvroDecoder::new(SrSettings::new(registry.url.clone()));
    let record = &records("rust")[2];

    let bytes = encoder.encode(avro(record), strategy(&topic)).await.expect("encodes");
    assert_eq!(bytes[0], 0, "Confluent wire format: magic byte");
    let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());
    let (status, latest) = registry.get(&format!("/subjects/{topic}-value/versions/latest")).await;
    assert_eq!((status, latest["id"].as_u64()), (200, Some(u64::from(id))), "registered under the topic's subject");

    let decoded = decoder.decode(Some(&bytes)).await.expect("decodes");
    let fields: Vec<(String, Avro)> = avro(record).into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    assert_eq!(decoded.value, Avro::Record(fields));
    registry.stop().await;
}

#[tokio::test]
async fn confluents_python_client_reads_what_rust_wrote_and_writes_what_rust_reads() {
    let registry = TestRegistry::start().await;
    let kafka = platform::testing::kafka().await;
    let (rust_topic, python_topic) = (unique("from-rust"), unique("from-python"));
    fresh_topics(&kafka, &[&rust_topic, &python_topic]).await;

    // Rust -> Kafka, through the registry.
    let encoder = EasyAvroEncoder::new(SrSettings::new(registry.url.clone()));
    let producer = Producer::new(&kafka, "interop").expect("producer");
    let from_rust = records("rust");
    for record in &from_rust {
        let bytes = encoder.encode(avro(record), strategy(&rust_topic)).await.expect("encodes");
        producer.send(Record::new(&rust_topic, &bytes)).await.expect("delivered");
    }

    // Python reads those and writes its own.
    let from_python = records("python");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/interop.py");
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .args(["--bootstrap", &kafka.bootstrap_servers, "--registry", &registry.url])
        .args(["--read-topic", &rust_topic, "--count", "3", "--write-topic", &python_topic])
        .args(["--schema", SCHEMA, "--records", &Value::from(from_python.clone()).to_string()])
        .output()
        .await
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "interop.py failed ({}); is confluent-kafka[avro] installed (deploy/bootstrap.sh)?\n{stderr}",
        output.status
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("interop.py prints JSON");
    assert_eq!(report["decoded"], Value::from(from_rust), "Python decoded Rust's records field for field");
    assert_eq!(report["produced"], 3);

    // Rust decodes what Python wrote.
    let decoder = EasyAvroDecoder::new(SrSettings::new(registry.url.clone()));
    let payloads = read_payloads(&kafka, &python_topic, 3).await;
    for (payload, expected) in payloads.iter().zip(&from_python) {
        let decoded = decoder.decode(Some(payload)).await.expect("Rust decodes Python's record");
        let fields: Vec<(String, Avro)> = avro(expected).into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        assert_eq!(decoded.value, Avro::Record(fields));
    }
    let (_, subjects) = registry.get("/subjects").await;
    assert!(subjects.as_array().unwrap().contains(&json!(format!("{python_topic}-value"))), "{subjects}");
    registry.stop().await;
}
