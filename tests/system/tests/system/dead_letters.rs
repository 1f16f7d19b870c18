use std::sync::{Arc, Mutex};
use std::time::Duration;

use platform::Shutdown;
use platform::kafka::dead_letter_headers as dlq;
use platform::kafka::{Consumer, ConsumerSettings, HandleError, Handler, Incoming, Producer, Record};
use platform::testing::{eventually, unique};
use reqwest::{Method, StatusCode};
use serde_json::json;

use system_tests::TestSystem;

struct Collect(Arc<Mutex<Vec<Incoming>>>);

impl Handler for Collect {
    async fn handle(&self, message: &Incoming) -> Result<(), HandleError> {
        self.0.lock().unwrap().push(message.clone());
        Ok(())
    }
}

#[tokio::test]
async fn garbage_and_unknown_schema_ids_go_to_the_dead_letter_topic_and_service_goes_on() {
    let system = TestSystem::start().await;
    let kafka = platform::testing::kafka().await;
    let producer = Producer::new(&kafka, "test").unwrap();
    let garbage = b"\xde\xad\xbe\xef not avro at all";
    let unknown_id = [0u8, 0x7f, 0xff, 0xff, 0xf0, 2, 4, 6];
    for payload in [&garbage[..], &unknown_id[..]] {
        producer.send(Record::new(system.topics.user_commands.as_str(), payload).key(b"poison")).await.unwrap();
    }

    let created =
        system.call(Method::POST, "/users", Some(json!({"email": "after@example.com", "name": "After"}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "the service keeps serving");

    let letters = Arc::new(Mutex::new(Vec::new()));
    let settings = ConsumerSettings::new(unique("dlq-reader"), &[&system.topics.dead_letters], unique("unused"));
    let reader = Consumer::new(&kafka, settings, producer.clone()).unwrap();
    let shutdown = Shutdown::new();
    let handler = Collect(Arc::clone(&letters));
    let stop = shutdown.clone();
    let task = tokio::spawn(async move { reader.run(&handler, stop).await });
    let letters = eventually("two dead letters", Duration::from_secs(30), || async {
        let seen = letters.lock().unwrap().clone();
        (seen.len() >= 2).then_some(seen)
    })
    .await;
    shutdown.trigger();
    task.await.unwrap();

    let payloads: Vec<&[u8]> = letters.iter().map(|l| l.payload.as_deref().unwrap()).collect();
    assert!(payloads.contains(&&garbage[..]) && payloads.contains(&&unknown_id[..]));
    for letter in &letters {
        assert_eq!(letter.header(dlq::ORIGINAL_TOPIC), Some(system.topics.user_commands.as_str().as_bytes()));
        let reason = String::from_utf8_lossy(letter.header(dlq::ERROR).unwrap()).into_owned();
        assert!(!reason.is_empty());
        // The code says what kind of poison it is: not Avro at all, or a schema id no registry knows.
        let code = if letter.payload.as_deref() == Some(&garbage[..]) { "not_avro" } else { "unknown_schema" };
        assert_eq!(letter.header(dlq::REASON_CODE), Some(code.as_bytes()), "{reason}");
    }
    system.stop().await;
}
