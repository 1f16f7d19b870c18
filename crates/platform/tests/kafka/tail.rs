//! Tails: a read from a point in time (or from given positions) is caught up only once every
//! record from there to where the topic ended has been applied.

use std::collections::HashMap;
use std::time::Duration;

use platform::Shutdown;
use platform::kafka::{StartAt, Tail};

use crate::helpers::{Fixture, Recorder, payloads};

async fn read_until_caught_up(fx: &Fixture, start: StartAt) -> Vec<String> {
    let recorder = Recorder::applying_all();
    let log = recorder.log();
    let stop = Shutdown::new();
    let tail = Tail::start(&fx.kafka, &fx.topic, start).await.expect("tail");
    let following = tail.follow(recorder, stop.clone()).await.expect("caught up");
    // Stopped as soon as it says it caught up: what it applied by then is what a rebuild gets.
    stop.trigger();
    following.task.await.expect("no panic");
    payloads(&log)
}

#[tokio::test]
async fn a_tail_since_a_time_is_caught_up_only_after_every_record_since_then() {
    let fx = Fixture::new().await;
    let all: Vec<String> = (0..500).map(|i| format!("r{i}")).collect();
    fx.produce(&all.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let seen = read_until_caught_up(&fx, StartAt::Since(Duration::from_secs(3600))).await;
    assert_eq!(seen, all);
}

#[tokio::test]
async fn a_tail_after_given_positions_reads_exactly_what_follows_them() {
    let fx = Fixture::new().await;
    let all: Vec<String> = (0..300).map(|i| format!("r{i}")).collect();
    fx.produce(&all.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let seen = read_until_caught_up(&fx, StartAt::After(HashMap::from([(0, 99)]))).await;
    assert_eq!(seen, all[100..]);
}

#[tokio::test]
async fn a_tail_catches_up_over_committed_and_aborted_transactions_at_the_end_of_a_topic() {
    let fx = Fixture::new().await;
    fx.produce(&["plain"]).await;
    let producer =
        platform::kafka::Producer::transactional(&fx.kafka, "test", &platform::testing::unique("test-tx")).unwrap();
    producer.init_transactions().await.unwrap();
    producer.begin().await.unwrap();
    producer.send(platform::kafka::Record::new(&fx.topic, b"committed")).await.unwrap();
    producer.commit().await.unwrap();
    producer.begin().await.unwrap();
    producer.send(platform::kafka::Record::new(&fx.topic, b"aborted")).await.unwrap();
    producer.abort().await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(20), read_until_caught_up(&fx, StartAt::Beginning)).await;
    assert_eq!(read.expect("caught up despite the trailing markers"), ["plain", "committed"]);
}
