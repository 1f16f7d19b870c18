//! What is on the dead-letter topic, and putting it back (`just dlq list|replay`).
//!
//! A dead letter is the original record (key, payload, headers) plus the `dlq.*` headers saying
//! where it came from and why ([`super::dead_letter_headers`]). Several readers of one topic
//! (the gateway's and export-worker's projections) may dead-letter the same record: the
//! inventory holds one entry per original topic/partition/offset, with every group that gave
//! up on it.
//!
//! A replay re-publishes entries to their original partition, each in the same transaction as
//! a marker on the dead-letter topic naming the entry; the inventory reads markers back, so an
//! entry replayed once is never replayed again, however often the tool runs or wherever it
//! stops (an interrupted transaction leaves neither the copy nor the marker). Two replays at
//! once share one transactional id: the later one fences the earlier one before reading.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use rdkafka::error::KafkaError;

use super::consumer::Incoming;
use super::dead_letter::headers;
use super::producer::{ProduceError, Producer, Record, TransactionError};
use crate::config::KafkaConfig;
use crate::kafka::topics::TopicsConfig;

/// Headers of a replay marker (a record on the dead-letter topic, not a dead letter).
pub mod marker {
    /// The entry replayed, as `topic/partition/offset`.
    pub const REPLAYED: &str = "dlq.replayed";
    /// Where its copy went, as `topic/partition/offset`.
    pub const REPLAYED_TO: &str = "dlq.replayed.to";
    /// When, in milliseconds since the Unix epoch.
    pub const REPLAYED_AT: &str = "dlq.replayed.at";
}

/// A record's place in the log: what identifies a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.topic, self.partition, self.offset)
    }
}

impl std::str::FromStr for Origin {
    type Err = String;

    /// `topic/partition/offset` (a topic name may not hold `/`).
    fn from_str(text: &str) -> Result<Self, String> {
        let mut parts = text.rsplitn(3, '/');
        let (Some(offset), Some(partition), Some(topic)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("{text:?} is not topic/partition/offset"));
        };
        let number = |what: &str, value: &str| format!("{text:?}: {what} {value:?} is not a number");
        Ok(Self {
            topic: topic.to_owned(),
            partition: partition.parse().map_err(|_| number("partition", partition))?,
            offset: offset.parse().map_err(|_| number("offset", offset))?,
        })
    }
}

/// One original record on the dead-letter topic, however many readers dead-lettered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    pub origin: Origin,
    /// The reason code and text of the first dead letter (`dlq.reason.code`, `dlq.error`).
    pub code: String,
    pub reason: String,
    /// Every consumer group that dead-lettered it.
    pub groups: BTreeSet<String>,
    /// The group of the earliest dead letter (the one giving `code` and `reason`).
    pub first_group: String,
    /// When it was first dead-lettered (ms since the Unix epoch).
    pub failed_at_ms: Option<i64>,
    /// Where its replayed copy went, once replayed.
    pub replayed_to: Option<String>,
    /// The original record, kept only for the topic asked for (see [`inventory`]).
    pub record: Option<Original>,
}

/// The original key, payload and headers (without the `dlq.*` ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original {
    pub key: Option<Vec<u8>>,
    /// `None`: a tombstone (dead-lettered for having no value).
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// The dead-letter topic read to its end.
#[derive(Debug, Default)]
pub struct Inventory {
    pub letters: BTreeMap<Origin, Letter>,
    /// Records naming no origin (written there by something else): counted, never replayed.
    pub foreign: u64,
    /// Dead-letter records read (duplicates and markers included).
    pub records: u64,
    /// Replay markers not applied yet: entry -> where its copy went.
    markers: BTreeMap<Origin, String>,
}

/// The entries of one original topic and reason code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub topic: String,
    pub code: String,
    pub entries: usize,
    pub replayed: usize,
    /// The reason of the earliest entry (the others are usually alike).
    pub example: String,
    pub first_failed_at_ms: Option<i64>,
    pub last_failed_at_ms: Option<i64>,
}

impl Inventory {
    /// Folds one record of the dead-letter topic in; keeps the original record of entries of
    /// `keep_records_of` only (the topic to replay), so listing holds no payloads.
    pub fn add(&mut self, record: Incoming, keep_records_of: Option<&str>) {
        self.records += 1;
        let text = |name: &str| record.header(name).map(|v| String::from_utf8_lossy(v).into_owned());
        if let Some(origin) = text(marker::REPLAYED).and_then(|o| o.parse::<Origin>().ok()) {
            // A marker may sit on another partition than its entry: applied in `settle`.
            self.markers.insert(origin, text(marker::REPLAYED_TO).unwrap_or_default());
            return;
        }
        let origin = (|| {
            Some(Origin {
                topic: text(headers::ORIGINAL_TOPIC)?,
                partition: text(headers::ORIGINAL_PARTITION)?.parse().ok()?,
                offset: text(headers::ORIGINAL_OFFSET)?.parse().ok()?,
            })
        })();
        let Some(origin) = origin else {
            self.foreign += 1;
            return;
        };
        let group = text(headers::CONSUMER_GROUP).unwrap_or_default();
        let failed_at_ms = text(headers::FAILED_AT).and_then(|at| at.parse().ok());
        let code = text(headers::REASON_CODE).unwrap_or_default();
        let reason = text(headers::ERROR).unwrap_or_default();
        if let Some(letter) = self.letters.get_mut(&origin) {
            // The earliest dead letter names the reason, whatever order the records come in.
            if (failed_at_ms, &group) < (letter.failed_at_ms, &letter.first_group) {
                (letter.failed_at_ms, letter.code, letter.reason) = (failed_at_ms, code, reason);
                letter.first_group.clone_from(&group);
            }
            letter.groups.insert(group);
            return;
        }
        let record = (keep_records_of == Some(origin.topic.as_str())).then(|| {
            let empty = record.payload.as_ref().is_none_or(Vec::is_empty);
            Original {
                key: record.key.clone(),
                payload: if empty && code == "no_value" {
                    None
                } else {
                    Some(record.payload.clone().unwrap_or_default())
                },
                headers: record
                    .headers
                    .iter()
                    .filter(|(name, _)| !name.starts_with("dlq."))
                    .map(|(name, value)| (name.clone(), value.clone().unwrap_or_default()))
                    .collect(),
            }
        });
        let letter = Letter {
            origin: origin.clone(),
            reason,
            code,
            groups: BTreeSet::from([group.clone()]),
            first_group: group,
            failed_at_ms,
            replayed_to: None,
            record,
        };
        self.letters.insert(origin, letter);
    }

    /// Marks the entries the markers name as replayed (and lets go of their records): call
    /// once every record is added.
    pub fn settle(&mut self) {
        for (origin, to) in std::mem::take(&mut self.markers) {
            if let Some(letter) = self.letters.get_mut(&origin) {
                letter.replayed_to = Some(to);
                letter.record = None;
            }
        }
    }

    /// The entries by original topic and reason code, in that order.
    pub fn groups(&self) -> Vec<Group> {
        let mut groups: BTreeMap<(&str, &str), Group> = BTreeMap::new();
        for letter in self.letters.values() {
            let group = groups.entry((&letter.origin.topic, &letter.code)).or_insert_with(|| Group {
                topic: letter.origin.topic.clone(),
                code: letter.code.clone(),
                entries: 0,
                replayed: 0,
                example: letter.reason.clone(),
                first_failed_at_ms: None,
                last_failed_at_ms: None,
            });
            group.entries += 1;
            group.replayed += usize::from(letter.replayed_to.is_some());
            if let Some(at) = letter.failed_at_ms {
                if group.first_failed_at_ms.is_none_or(|first| at < first) {
                    group.first_failed_at_ms = Some(at);
                    group.example = letter.reason.clone();
                }
                group.last_failed_at_ms = group.last_failed_at_ms.max(Some(at));
            }
        }
        groups.into_values().collect()
    }
}

/// Reads the dead-letter topic `dead_letters` to where it ends now (committed records only).
pub async fn inventory(
    config: &KafkaConfig,
    dead_letters: &str,
    keep_records_of: Option<&str>,
) -> Result<Inventory, KafkaError> {
    let keep = keep_records_of.map(str::to_owned);
    let (inventory, _) = super::replay(config, dead_letters, Inventory::default(), move |inventory, record| {
        inventory.add(record, keep.as_deref());
    })
    .await?;
    let mut inventory = inventory;
    inventory.settle();
    Ok(inventory)
}

/// Why a replay did not (fully) happen. Entries replayed before the error stay replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("refused: {0}")]
    Refused(String),
    #[error("reading the dead-letter topic: {0}")]
    Read(#[from] KafkaError),
    #[error(transparent)]
    Produce(#[from] ProduceError),
    #[error(transparent)]
    Transaction(#[from] TransactionError),
}

/// What a replay did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Each entry replayed now, with where its copy went.
    pub replayed: Vec<(Origin, String)>,
    /// Entries of the topic replayed by an earlier run.
    pub before: usize,
}

/// Entries replayed per transaction: a transaction must finish within the broker's timeout.
const PER_TRANSACTION: usize = 500;

/// Re-publishes every entry of `topic` not replayed yet to its original partition, in original
/// order, each with its marker in the same transaction (see the module). Refused for topics
/// only user-service writes, for the dead-letter topic itself, and for topics not in the
/// catalog.
pub async fn replay(config: &KafkaConfig, topics: &TopicsConfig, topic: &str) -> Result<Replayed, ReplayError> {
    if topic == topics.user_events.as_str() || topic == topics.user_state.as_str() {
        return Err(ReplayError::Refused(format!(
            "{topic} is written by user-service alone, from its decisions: send the commands again instead"
        )));
    }
    if topic == topics.dead_letters {
        return Err(ReplayError::Refused(format!("{topic} is the dead-letter topic")));
    }
    if !topics.catalog().iter().any(|spec| spec.name == topic) {
        return Err(ReplayError::Refused(format!("{topic} is not one of the project's topics (`just topics`)")));
    }
    let producer = Producer::transactional(config, "dlq-replay", &format!("{}.replay", topics.dead_letters))?;
    // Fences an earlier replay still running (its open transaction is aborted) before reading
    // which entries were replayed.
    producer.init_transactions().await?;
    let inventory = inventory(config, &topics.dead_letters, Some(topic)).await?;
    let of_topic = || inventory.letters.values().filter(|letter| letter.origin.topic == topic);
    let before = of_topic().filter(|letter| letter.replayed_to.is_some()).count();
    let pending: Vec<&Letter> = of_topic().filter(|letter| letter.replayed_to.is_none()).collect();
    let mut replayed = Vec::with_capacity(pending.len());
    for chunk in pending.chunks(PER_TRANSACTION) {
        producer.begin().await?;
        match replay_chunk(&producer, &topics.dead_letters, chunk).await {
            Ok(copies) => {
                producer.commit().await?;
                replayed.extend(copies);
            }
            Err(error) => {
                let _ = producer.abort().await;
                return Err(error.into());
            }
        }
    }
    Ok(Replayed { replayed, before })
}

/// Sends the copies of `letters`, then their markers, inside the open transaction.
async fn replay_chunk(
    producer: &Producer,
    dead_letters: &str,
    letters: &[&Letter],
) -> Result<Vec<(Origin, String)>, ProduceError> {
    let copies = letters.iter().map(|letter| {
        let original = letter.record.as_ref().expect("kept for the topic replayed");
        let origin = &letter.origin;
        let mut record = match &original.payload {
            Some(payload) => Record::new(&origin.topic, payload),
            None => Record::tombstone(&origin.topic, original.key.as_deref().unwrap_or_default()),
        };
        if let Some(key) = &original.key {
            record = record.key(key);
        }
        for (name, value) in &original.headers {
            record = record.header(name, value);
        }
        record.partition(origin.partition)
    });
    let mut places = Vec::with_capacity(letters.len());
    for (letter, delivered) in letters.iter().zip(producer.send_all(copies).await) {
        let delivered = delivered?;
        let to =
            Origin { topic: letter.origin.topic.clone(), partition: delivered.partition, offset: delivered.offset };
        places.push((letter.origin.clone(), to.to_string()));
    }
    let now = super::dead_letter::now_ms();
    let texts: Vec<(String, String)> =
        places.iter().map(|(origin, to)| (origin.to_string(), format!("replayed {origin} to {to}"))).collect();
    let markers = texts.iter().zip(&places).map(|((origin, text), (_, to))| {
        Record::new(dead_letters, text.as_bytes())
            .header(marker::REPLAYED, origin.as_bytes())
            .header(marker::REPLAYED_TO, to.as_bytes())
            .header(marker::REPLAYED_AT, now.as_bytes())
    });
    for delivered in producer.send_all(markers).await {
        delivered?;
    }
    Ok(places)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead_letter(origin: &Origin, group: &str, code: &str, at: i64) -> Incoming {
        let partition = origin.partition.to_string();
        let offset = origin.offset.to_string();
        let at = at.to_string();
        let pairs = [
            ("traceparent", "00-abc"),
            (headers::ERROR, "bad"),
            (headers::REASON_CODE, code),
            (headers::ORIGINAL_TOPIC, origin.topic.as_str()),
            (headers::ORIGINAL_PARTITION, partition.as_str()),
            (headers::ORIGINAL_OFFSET, offset.as_str()),
            (headers::CONSUMER_GROUP, group),
            (headers::FAILED_AT, at.as_str()),
        ];
        let mut record = Incoming::with_headers(&pairs);
        record.payload = Some(b"payload".to_vec());
        record
    }

    #[test]
    fn origins_print_and_parse_alike() {
        let origin = Origin { topic: "users.commands".into(), partition: 3, offset: 120 };
        assert_eq!(origin.to_string().parse::<Origin>(), Ok(origin));
        for bad in ["", "t/1", "t/x/1", "t/1/y"] {
            assert!(bad.parse::<Origin>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_record_dead_lettered_by_two_groups_is_one_entry_and_a_marker_marks_it_replayed() {
        let first = Origin { topic: "users.events".into(), partition: 1, offset: 7 };
        let second = Origin { topic: "imports.requests".into(), partition: 0, offset: 2 };
        let mut inventory = Inventory::default();
        inventory.add(dead_letter(&first, "gateway", "malformed", 20), None);
        inventory.add(dead_letter(&first, "export-worker", "malformed", 10), None);
        inventory.add(dead_letter(&second, "import-worker", "retries_exhausted", 30), Some("imports.requests"));
        inventory.add(Incoming::with_headers(&[("x", "y")]), None);

        assert_eq!((inventory.letters.len(), inventory.foreign, inventory.records), (2, 1, 4));
        let letter = &inventory.letters[&first];
        assert_eq!(letter.groups, BTreeSet::from(["export-worker".into(), "gateway".into()]));
        assert_eq!((letter.failed_at_ms, letter.record.is_none()), (Some(10), true), "the earliest; no payload");
        let kept = inventory.letters[&second].record.clone().expect("kept for the topic to replay");
        assert_eq!(kept.headers, [("traceparent".to_owned(), b"00-abc".to_vec())], "dlq.* headers dropped");
        assert_eq!(kept.payload.as_deref(), Some(&b"payload"[..]));

        let groups = inventory.groups();
        assert_eq!(
            groups.iter().map(|g| (g.topic.as_str(), g.entries)).collect::<Vec<_>>(),
            [("imports.requests", 1), ("users.events", 1)]
        );

        let second_text = second.to_string();
        inventory
            .add(Incoming::with_headers(&[(marker::REPLAYED, &second_text), (marker::REPLAYED_TO, "x/0/9")]), None);
        assert!(inventory.letters[&second].replayed_to.is_none(), "applied once every record is in");
        inventory.settle();
        let letter = &inventory.letters[&second];
        assert_eq!((letter.replayed_to.as_deref(), letter.record.is_none()), (Some("x/0/9"), true));
        assert_eq!(inventory.groups()[0].replayed, 1);
    }

    proptest::proptest! {
        /// The inventory is a function of the records, not of how the dead-letter topic's
        /// partitions interleave: any order of the same records gives the same entries.
        #[test]
        fn any_order_of_the_records_gives_the_same_inventory(
            records in proptest::collection::vec((0..4i64, 0..3usize, 0..5i64, proptest::bool::ANY), 1..24),
            order in proptest::collection::vec(proptest::num::usize::ANY, 24),
        ) {
            let groups = ["gateway", "export-worker", "import-worker"];
            let made: Vec<Incoming> = records
                .iter()
                .map(|&(offset, group, at, is_marker)| {
                    let origin = Origin { topic: "users.commands".into(), partition: 0, offset };
                    if is_marker {
                        Incoming::with_headers(&[(marker::REPLAYED, &origin.to_string()), (marker::REPLAYED_TO, "t/0/1")])
                    } else {
                        dead_letter(&origin, groups[group], &format!("code-{group}-{at}"), at)
                    }
                })
                .collect();
            let mut shuffled = made.clone();
            for (i, pick) in order.iter().enumerate().take(shuffled.len()) {
                let len = shuffled.len();
                shuffled.swap(i, i + pick % (len - i));
            }
            let fold = |records: Vec<Incoming>| {
                let mut inventory = Inventory::default();
                for record in records {
                    inventory.add(record, Some("users.commands"));
                }
                inventory.settle();
                inventory.letters
            };
            proptest::prop_assert_eq!(fold(made), fold(shuffled));
        }
    }
}
