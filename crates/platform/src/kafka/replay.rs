//! Reading a topic from its beginning up to where it ended when the read started: how a
//! process rebuilds in-memory state that lives in Kafka (the schema registry's `_schemas`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};

use super::consumer::Incoming;
use crate::config::KafkaConfig;

/// Folds every record of every partition of `topic` into `state` with `apply`, in offset order
/// per partition, up to the high watermarks read at the start. Returns the state and the number
/// of records applied.
pub async fn replay<S, F>(config: &KafkaConfig, topic: &str, mut state: S, mut apply: F) -> Result<(S, u64), KafkaError>
where
    S: Send + 'static,
    F: FnMut(&mut S, Incoming) + Send + 'static,
{
    let consumer: BaseConsumer = super::consumer_config(config, "replay")
        // No group membership and no commits: this reader only looks.
        .set("group.id", "replay-unused")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .create()?;
    let topic = topic.to_owned();
    let timeout = config.startup_timeout();
    tokio::task::spawn_blocking(move || {
        read_to_end(&consumer, &topic, timeout, |message| apply(&mut state, message)).map(|count| (state, count))
    })
    .await
    .expect("replay does not panic")
}

fn read_to_end<F: FnMut(Incoming)>(
    consumer: &BaseConsumer,
    topic: &str,
    timeout: Duration,
    mut apply: F,
) -> Result<u64, KafkaError> {
    // A topic that does not exist is an error, not an empty topic. One just created may take a
    // moment to reach every broker's metadata: asked again until `timeout`.
    let asked = Instant::now();
    let metadata = loop {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        match metadata.topics().iter().find_map(|t| t.error()).map(RDKafkaErrorCode::from) {
            None => break metadata,
            Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::LeaderNotAvailable)
                if asked.elapsed() < timeout =>
            {
                std::thread::sleep(Duration::from_millis(200));
            }
            Some(code) => return Err(KafkaError::MetadataFetch(code)),
        }
    };
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    let mut ends: HashMap<i32, i64> = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
        if high > low {
            ends.insert(partition, high);
            assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
        }
    }
    if ends.is_empty() {
        return Ok(0);
    }
    consumer.assign(&assignment)?;
    let mut applied = 0;
    let mut deadline = Instant::now() + timeout;
    while !ends.is_empty() {
        if let Some(result) = consumer.poll(Duration::from_millis(200)) {
            let message = Incoming::from_borrowed(&result?);
            if ends.get(&message.partition).is_some_and(|&end| message.offset < end) {
                apply(message);
                applied += 1;
            }
            deadline = Instant::now() + timeout;
        } else if Instant::now() > deadline {
            return Err(KafkaError::MessageConsumption(RDKafkaErrorCode::OperationTimedOut));
        }
        // A partition is done when its position reaches the watermark; the last offsets below it
        // may hold no record at all (compacted away, control records).
        for element in consumer.position()?.elements() {
            if let (Offset::Offset(next), Some(&end)) = (element.offset(), ends.get(&element.partition()))
                && next >= end
            {
                ends.remove(&element.partition());
            }
        }
    }
    Ok(applied)
}
