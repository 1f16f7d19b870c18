use platform::kafka::dead_letter_headers as dlq;

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
