use platform::kafka::dead_letter_headers as dlq;

use platform::kafka::Record;

use crate::helpers::{Action, Fixture, Recorder, payloads, wait_for};

#[tokio::test]
async fn a_message_produced_with_the_shared_producer_is_consumed_by_the_shared_consumer() {
    let fx = Fixture::new().await;
    fx.produce(&["hello"]).await;
    let recorder = Recorder::applying_all();
    let log = recorder.log();
    let running = fx.consume(recorder);

    let seen = wait_for(&log, 1).await;
    assert_eq!(seen[0].payload.as_deref(), Some(&b"hello"[..]));
    assert_eq!(seen[0].key.as_deref(), Some(&b"k"[..]));
    assert_eq!(seen[0].header("trace-id"), Some(&b"t-1"[..]));
    assert_eq!((seen[0].topic.as_str(), seen[0].partition, seen[0].offset), (fx.topic.as_str(), 0, 0));
    running.stop().await;
}

#[tokio::test]
async fn a_consumer_that_crashed_before_storing_its_offset_gets_the_message_again() {
    let fx = Fixture::new().await;
    fx.produce(&["one", "two", "three"]).await;
    let first = Recorder::new(|m, _| if m.payload.as_deref() == Some(b"two") { Action::Hang } else { Action::Apply });
    let first_log = first.log();
    let running = fx.consume(first);
    wait_for(&first_log, 2).await; // "two" is being applied...
    running.crash().await; // ...when the process dies.

    let second = Recorder::applying_all();
    let second_log = second.log();
    let running = fx.consume(second);
    let seen = payloads(&first_log);
    assert_eq!(seen, ["one", "two"]);
    wait_for(&second_log, 2).await;
    let redelivered = payloads(&second_log);
    // "one" may come again too (its offset may not have been committed yet): at-least-once.
    let from_two: Vec<_> = redelivered.iter().skip_while(|p| *p == "one").collect();
    assert_eq!(from_two, ["two", "three"], "redelivered: {redelivered:?}");
    running.stop().await;
}

#[tokio::test]
async fn a_consumer_restarted_after_a_clean_shutdown_continues_exactly_after_its_last_commit() {
    let fx = Fixture::new().await;
    fx.produce(&["1", "2", "3", "4", "5"]).await;
    let first = Recorder::applying_all();
    let first_log = first.log();
    let running = fx.consume(first);
    wait_for(&first_log, 5).await;
    running.stop().await;

    fx.produce(&["6", "7"]).await;
    let second = Recorder::applying_all();
    let second_log = second.log();
    let running = fx.consume(second);
    let seen = wait_for(&second_log, 2).await;
    running.stop().await;

    assert_eq!(payloads(&first_log), ["1", "2", "3", "4", "5"]);
    assert_eq!(payloads(&second_log), ["6", "7"]);
    assert_eq!(seen[0].offset, 5, "starts right after the last committed offset");
}

#[tokio::test]
async fn a_permanent_failure_goes_to_the_dead_letter_topic_with_its_origin_and_the_consumer_goes_on() {
    let fx = Fixture::new().await;
    fx.produce(&["fine", "poison", "also fine"]).await;
    let recorder =
        Recorder::new(
            |m, _| {
                if m.payload.as_deref() == Some(b"poison") { Action::FailPermanently } else { Action::Apply }
            },
        );
    let log = recorder.log();
    let running = fx.consume(recorder);
    wait_for(&log, 3).await;
    assert_eq!(payloads(&log), ["fine", "poison", "also fine"]);

    let (reader, dead) = fx.read_dead_letters();
    let letters = wait_for(&dead, 1).await;
    reader.stop().await;
    running.stop().await;

    let letter = &letters[0];
    assert_eq!(letters.len(), 1);
    assert_eq!(letter.payload.as_deref(), Some(&b"poison"[..]));
    assert_eq!(letter.key.as_deref(), Some(&b"k"[..]), "key kept for replay");
    assert_eq!(letter.header("trace-id"), Some(&b"t-1"[..]), "original headers kept");
    assert_eq!(letter.header(dlq::ERROR), Some(&b"payload is poison"[..]));
    assert_eq!(letter.header(dlq::ORIGINAL_TOPIC), Some(fx.topic.as_bytes()));
    assert_eq!(letter.header(dlq::ORIGINAL_PARTITION), Some(&b"0"[..]));
    assert_eq!(letter.header(dlq::ORIGINAL_OFFSET), Some(&b"1"[..]));
    assert_eq!(letter.header(dlq::CONSUMER_GROUP), Some(fx.group.as_bytes()));
    assert!(letter.header(dlq::FAILED_AT).is_some());
}

#[tokio::test]
async fn a_retryable_failure_is_retried_in_place_until_it_succeeds() {
    let fx = Fixture::new().await;
    fx.produce(&["flaky", "next"]).await;
    let recorder = Recorder::new(|m, attempt| {
        if m.payload.as_deref() == Some(b"flaky") && attempt < 3 { Action::FailRetryably } else { Action::Apply }
    });
    let log = recorder.log();
    let running = fx.consume(recorder);
    wait_for(&log, 4).await;
    running.stop().await;
    assert_eq!(payloads(&log), ["flaky", "flaky", "flaky", "next"], "order kept, nothing skipped");
}

#[tokio::test]
async fn a_message_failing_past_its_retry_budget_is_dead_lettered_and_the_partition_moves_on() {
    let mut fx = Fixture::new().await;
    fx.kafka.consumer_retry_attempts = 3;
    fx.produce(&["before", "stuck", "after"]).await;
    let recorder = Recorder::new(|m, _| match m.payload.as_deref() {
        Some(b"stuck") => Action::FailRetryably,
        _ => Action::Apply,
    });
    let log = recorder.log();
    let running = fx.consume(recorder);
    wait_for(&log, 5).await;
    assert_eq!(payloads(&log), ["before", "stuck", "stuck", "stuck", "after"], "three tries, then on");

    let (reader, dead) = fx.read_dead_letters();
    let letters = wait_for(&dead, 1).await;
    reader.stop().await;
    running.stop().await;
    let letter = &letters[0];
    assert_eq!(letter.payload.as_deref(), Some(&b"stuck"[..]));
    assert_eq!(letter.header(dlq::REASON_CODE), Some(&b"retries_exhausted"[..]));
    let reason = String::from_utf8_lossy(letter.header(dlq::ERROR).unwrap_or_default()).into_owned();
    assert_eq!(reason, "gave up after 3 attempts: the file is not there yet");
    assert_eq!(letter.header(dlq::ORIGINAL_OFFSET), Some(&b"1"[..]));
}

#[tokio::test]
async fn an_outage_is_waited_out_past_the_retry_budget_and_never_dead_lettered() {
    let mut fx = Fixture::new().await;
    fx.kafka.consumer_retry_attempts = 2;
    fx.produce(&["during the outage", "next"]).await;
    let recorder = Recorder::new(|m, attempt| match m.payload.as_deref() {
        Some(b"during the outage") if attempt <= 4 => Action::FailUnavailable,
        _ => Action::Apply,
    });
    let log = recorder.log();
    let running = fx.consume(recorder);
    wait_for(&log, 6).await;
    running.stop().await;
    assert_eq!(payloads(&log)[4..], ["during the outage", "next"], "applied once the outage ended, in order");

    // A dead letter for it would have been written before "next" was handled: the first
    // record of the dead-letter topic must be this marker, written after.
    fx.producer.send(Record::new(&fx.dead_letters, b"marker")).await.unwrap();
    let (reader, dead) = fx.read_dead_letters();
    let letters = wait_for(&dead, 1).await;
    reader.stop().await;
    assert_eq!(letters[0].payload.as_deref(), Some(&b"marker"[..]), "nothing was dead-lettered");
}

/// Fails every batch holding `stuck` (retryably); records what it applied.
struct Batches(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl platform::kafka::BatchHandler for Batches {
    async fn handle_batch(&self, batch: &[platform::kafka::Incoming]) -> platform::kafka::BatchOutcome {
        let texts: Vec<String> =
            batch.iter().map(|m| String::from_utf8_lossy(m.payload.as_deref().unwrap_or_default()).into()).collect();
        if texts.iter().any(|t| t == "stuck") {
            return Err(platform::kafka::HandleError::retryable("the file is not there yet"));
        }
        self.0.lock().unwrap().extend(texts);
        Ok(batch.iter().map(|_| Ok(())).collect())
    }
}

#[tokio::test]
async fn a_batch_past_its_retry_budget_is_taken_apart_and_only_the_message_at_fault_is_dead_lettered() {
    let mut fx = Fixture::new().await;
    fx.kafka.consumer_retry_attempts = 2;
    fx.produce(&["a", "stuck", "b"]).await;
    let applied = std::sync::Arc::default();
    let handler = Batches(std::sync::Arc::clone(&applied));
    let settings = platform::kafka::ConsumerSettings::new(&fx.group, &[&fx.topic], &fx.dead_letters);
    let consumer = platform::kafka::Consumer::new(&fx.kafka, settings, fx.producer.clone()).unwrap();
    let shutdown = platform::Shutdown::new();
    let stop = shutdown.clone();
    let task = tokio::spawn(async move { consumer.run_batches(&handler, 10, stop).await });

    let (reader, dead) = fx.read_dead_letters();
    let letters = wait_for(&dead, 1).await;
    reader.stop().await;
    platform::testing::eventually("a and b applied", std::time::Duration::from_secs(30), || async {
        (applied.lock().unwrap().len() >= 2).then_some(())
    })
    .await;
    shutdown.trigger();
    task.await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].payload.as_deref(), Some(&b"stuck"[..]));
    assert_eq!(letters[0].header(dlq::REASON_CODE), Some(&b"retries_exhausted"[..]));
    assert_eq!(*applied.lock().unwrap(), ["a", "b"], "the others applied, in order");
}

/// Applies every message once `release` is notified.
struct Held(std::sync::Arc<tokio::sync::Notify>);

impl platform::kafka::Handler for Held {
    async fn handle(&self, _: &platform::kafka::Incoming) -> Result<(), platform::kafka::HandleError> {
        self.0.notified().await;
        Ok(())
    }
}

#[tokio::test]
async fn a_member_held_up_by_a_message_past_the_lag_bound_is_not_ready_until_it_moves_on() {
    let mut fx = Fixture::new().await;
    fx.kafka.ready_max_lag_secs = 1;
    fx.produce(&["slow"]).await;
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let health = platform::health::Health::new("test");
    let settings = platform::kafka::ConsumerSettings::new(&fx.group, &[&fx.topic], &fx.dead_letters);
    let consumer = platform::kafka::Consumer::new(&fx.kafka, settings, fx.producer.clone())
        .unwrap()
        .ready_while_current(health.clone(), "work");
    assert!(health.is_ready(), "ready until a lag says otherwise");
    let shutdown = platform::Shutdown::new();
    let (stop, handler) = (shutdown.clone(), Held(std::sync::Arc::clone(&release)));
    let task = tokio::spawn(async move { consumer.run(&handler, stop).await });

    let patience = std::time::Duration::from_secs(30);
    platform::testing::eventually("not ready while the message is in hand", patience, || async {
        (!health.is_ready()).then_some(())
    })
    .await;
    release.notify_one();
    platform::testing::eventually("ready once it moved on", patience, || async { health.is_ready().then_some(()) })
        .await;
    shutdown.trigger();
    task.await.unwrap();
}
