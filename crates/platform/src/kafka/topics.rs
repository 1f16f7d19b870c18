//! The project's topics, declared once: name, partitions, replication, cleanup and retention.
//!
//! Every service ensures the catalog at startup (creating what is missing, reporting drift in
//! what exists) and `just topics` does the same on demand. Brokers run with
//! `auto.create.topics.enable=false`, so a topic exists only if it is declared here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use contract::{commands, events, exports, imports, replies, state};
use rdkafka::admin::{AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::config::KafkaConfig;
use crate::topic::TopicName;

/// Topic names (overridable, e.g. to share a cluster), each with the record it carries, and the
/// sizing applied to all of them. This is the one place a topic is paired with its record.
#[derive(Debug, Clone, Args)]
pub struct TopicsConfig {
    /// Commands to user-service (create/update/delete), keyed by user id or email.
    #[arg(long = "topic-user-commands", env = "TOPIC_USER_COMMANDS", default_value = "users.commands")]
    pub user_commands: TopicName<commands::UserCommand>,

    /// User events, what user-service decided; kept `EVENTS_RETENTION`, followed by every
    /// projection from where `users.state` ends.
    #[arg(long = "topic-user-events", env = "TOPIC_USER_EVENTS", default_value = "users.events")]
    pub user_events: TopicName<events::UserEvent>,

    /// Every live user's latest state (compacted, keyed by user id, partitioned like the
    /// events): what a cold start reads instead of the whole history.
    #[arg(long = "topic-user-state", env = "TOPIC_USER_STATE", default_value = "users.state")]
    pub user_state: TopicName<state::UserState>,

    /// Command outcomes sent back to the requester.
    #[arg(long = "topic-user-replies", env = "TOPIC_USER_REPLIES", default_value = "users.replies")]
    pub user_replies: TopicName<replies::UserCommandReply>,

    /// Import requests: claim checks on uploaded files, one per import.
    #[arg(long = "topic-import-requests", env = "TOPIC_IMPORT_REQUESTS", default_value = "imports.requests")]
    pub import_requests: TopicName<imports::ImportRequested>,

    /// The latest status of every import (compacted, keyed by import id).
    #[arg(long = "topic-import-status", env = "TOPIC_IMPORT_STATUS", default_value = "imports.status")]
    pub import_status: TopicName<imports::ImportStatus>,

    /// Export requests, one per export.
    #[arg(long = "topic-export-requests", env = "TOPIC_EXPORT_REQUESTS", default_value = "exports.requests")]
    pub export_requests: TopicName<exports::ExportRequested>,

    /// The latest status of every export (compacted, keyed by export id).
    #[arg(long = "topic-export-status", env = "TOPIC_EXPORT_STATUS", default_value = "exports.status")]
    pub export_status: TopicName<exports::ExportStatus>,

    /// Messages a consumer can never process, with the reason in headers.
    #[arg(long = "topic-dead-letters", env = "TOPIC_DEAD_LETTERS", default_value = "dead-letters")]
    pub dead_letters: String,

    /// Partitions of every project topic.
    #[arg(long = "kafka-topic-partitions", env = "KAFKA_TOPIC_PARTITIONS", default_value_t = 6)]
    pub partitions: i32,

    /// Replication factor of every project topic (3 on the three-node cluster).
    #[arg(long = "kafka-topic-replication-factor", env = "KAFKA_TOPIC_REPLICATION_FACTOR", default_value_t = 1)]
    pub replication_factor: i32,

    /// The longest a superseded user state (or a deleted user's) stays in `users.state` before
    /// the log cleaner removes it: its segments roll and become compactable this often.
    #[arg(long = "kafka-state-compaction-lag-ms", env = "KAFKA_STATE_COMPACTION_LAG_MS", default_value_t = 5 * MINUTE_MS)]
    pub state_compaction_lag_ms: i64,
}

const MINUTE_MS: i64 = 60 * 1000;
const DAY_MS: i64 = 24 * 60 * MINUTE_MS;

/// How long the topics holding personal data keep it. Every window the code relies on fits
/// inside: user-service de-duplicates commands over [`DEDUP_WINDOW`] from the replies; the
/// gateway's command status lives far shorter; a command waits at most this long for
/// user-service; cold starts read `users.state`, not the events' history.
pub const EVENTS_RETENTION_MS: i64 = 7 * DAY_MS;
pub const COMMANDS_RETENTION_MS: i64 = 7 * DAY_MS;
pub const REPLIES_RETENTION_MS: i64 = 2 * DAY_MS;
/// Segments of the delete-policy topics roll daily, so retention removes data at most a day
/// after it expires (a segment is deleted whole, once its newest record has expired).
pub const SEGMENT_MS: i64 = DAY_MS;
/// A deleted user's tombstone stays in `users.state` this long, so a reader of the whole topic
/// that started before the deletion still sees it.
pub const TOMBSTONE_RETENTION_MS: i64 = DAY_MS;

/// The window over which a command sent twice (an import resumed, a client retrying with its
/// idempotency key) is answered with its first outcome: the producers re-send within it.
pub const DEDUP_WINDOW: Duration = Duration::from_millis(DAY_MS as u64);

impl TopicsConfig {
    /// Every topic of the project with its settings.
    pub fn catalog(&self) -> Vec<TopicSpec> {
        let topic =
            |name: &str| TopicSpec::new(name).partitions(self.partitions).replication_factor(self.replication_factor);
        let personal = |name: &str, retention_ms| topic(name).retention_ms(retention_ms).segment_ms(SEGMENT_MS);
        vec![
            personal(self.user_commands.as_str(), COMMANDS_RETENTION_MS),
            personal(self.user_events.as_str(), EVENTS_RETENTION_MS),
            topic(self.user_state.as_str())
                .compacted()
                .segment_ms(self.state_compaction_lag_ms)
                .config("max.compaction.lag.ms", &self.state_compaction_lag_ms.to_string())
                .config("min.cleanable.dirty.ratio", "0.1")
                .config("delete.retention.ms", &TOMBSTONE_RETENTION_MS.to_string()),
            personal(self.user_replies.as_str(), REPLIES_RETENTION_MS),
            topic(self.import_requests.as_str()).retention_ms(7 * DAY_MS),
            topic(self.import_status.as_str()).compacted(),
            topic(self.export_requests.as_str()).retention_ms(7 * DAY_MS),
            topic(self.export_status.as_str()).compacted(),
            topic(&self.dead_letters).retention_ms(30 * DAY_MS),
        ]
    }
}

/// One topic's declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i32,
    /// Topic-level configs (`cleanup.policy`, `retention.ms`, ...).
    pub configs: Vec<(String, String)>,
}

impl TopicSpec {
    /// Six partitions, replication 1, `cleanup.policy=delete`.
    pub fn new(name: &str) -> Self {
        Self { name: name.to_owned(), partitions: 6, replication_factor: 1, configs: vec![] }
            .config("cleanup.policy", "delete")
    }

    pub fn partitions(mut self, partitions: i32) -> Self {
        self.partitions = partitions;
        self
    }

    pub fn replication_factor(mut self, replication_factor: i32) -> Self {
        self.replication_factor = replication_factor;
        self
    }

    /// `-1` keeps records forever.
    pub fn retention_ms(self, retention_ms: i64) -> Self {
        self.config("retention.ms", &retention_ms.to_string())
    }

    /// Roll the active segment at least this often (only closed segments are deleted or
    /// compacted).
    pub fn segment_ms(self, segment_ms: i64) -> Self {
        self.config("segment.ms", &segment_ms.to_string())
    }

    /// Keep the latest record per key instead of deleting by age.
    pub fn compacted(self) -> Self {
        self.config("cleanup.policy", "compact")
    }

    pub fn config(mut self, name: &str, value: &str) -> Self {
        self.configs.retain(|(n, _)| n != name);
        self.configs.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// What provisioning found or did for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicStatus {
    Created,
    /// Exists and matches its declaration.
    Verified,
    /// Exists but differs; the differences are listed. Never altered automatically: changing the
    /// partition count of a keyed topic would break per-key ordering.
    Drifted(Vec<String>),
}

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("cannot query topics: {0}")]
    Admin(#[source] KafkaError),
    #[error("cannot create topic {topic}: {code}")]
    Create { topic: String, code: RDKafkaErrorCode },
}

/// Creates missing topics and checks existing ones against their declaration.
pub async fn ensure(config: &KafkaConfig, specs: &[TopicSpec]) -> Result<Vec<(String, TopicStatus)>, TopicError> {
    let admin = Arc::new(super::admin_client(config).map_err(TopicError::Admin)?);
    let timeout = config.startup_timeout();
    let options = AdminOptions::new().operation_timeout(Some(timeout)).request_timeout(Some(timeout));

    let existing = existing_topics(&admin, timeout).await?;
    let missing: Vec<&TopicSpec> = specs.iter().filter(|s| !existing.contains_key(&s.name)).collect();
    let mut statuses: HashMap<String, TopicStatus> = HashMap::new();
    if !missing.is_empty() {
        let new_topics: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|spec| {
                spec.configs.iter().fold(
                    NewTopic::new(&spec.name, spec.partitions, TopicReplication::Fixed(spec.replication_factor)),
                    |topic, (k, v)| topic.set(k, v),
                )
            })
            .collect();
        for result in admin.create_topics(&new_topics, &options).await.map_err(TopicError::Admin)? {
            match result {
                Ok(topic) => {
                    statuses.insert(topic, TopicStatus::Created);
                }
                // Another service created it a moment ago: verify it like any existing topic.
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => return Err(TopicError::Create { topic, code }),
            }
        }
    }

    let existing = wait_until_led(&admin, specs, timeout).await?;
    let to_verify: Vec<&TopicSpec> = specs.iter().filter(|s| !statuses.contains_key(&s.name)).collect();
    let resources: Vec<ResourceSpecifier<'_>> = to_verify.iter().map(|s| ResourceSpecifier::Topic(&s.name)).collect();
    let described = if resources.is_empty() {
        vec![]
    } else {
        admin.describe_configs(&resources, &options).await.map_err(TopicError::Admin)?
    };
    for (spec, described) in to_verify.into_iter().zip(described) {
        let mut drift = Vec::new();
        match existing.get(&spec.name) {
            Some(&(partitions, replicas)) => {
                if partitions != spec.partitions {
                    drift.push(format!("partitions {partitions}, declared {}", spec.partitions));
                }
                if replicas != spec.replication_factor {
                    drift.push(format!("replication factor {replicas}, declared {}", spec.replication_factor));
                }
            }
            None => drift.push("missing after creation".to_owned()),
        }
        match described {
            Ok(resource) => {
                for (name, declared) in &spec.configs {
                    let actual = resource.get(name).and_then(|entry| entry.value.as_deref());
                    if actual != Some(declared.as_str()) {
                        drift.push(format!("{name}={}, declared {declared}", actual.unwrap_or("<unset>")));
                    }
                }
            }
            Err(code) => drift.push(format!("configs unreadable: {code}")),
        }
        let status = if drift.is_empty() { TopicStatus::Verified } else { TopicStatus::Drifted(drift) };
        statuses.insert(spec.name.clone(), status);
    }

    Ok(specs.iter().map(|s| (s.name.clone(), statuses.remove(&s.name).unwrap_or(TopicStatus::Verified))).collect())
}

/// Ensures the catalog and logs what happened; drift is a warning, not a failure.
pub async fn ensure_and_log(config: &KafkaConfig, specs: &[TopicSpec]) -> Result<(), TopicError> {
    for (topic, status) in ensure(config, specs).await? {
        match status {
            TopicStatus::Created => tracing::info!(%topic, "topic created"),
            TopicStatus::Verified => tracing::debug!(%topic, "topic verified"),
            TopicStatus::Drifted(diffs) => {
                tracing::warn!(%topic, differences = %diffs.join("; "), "topic differs from its declaration")
            }
        }
    }
    Ok(())
}

/// Topic name -> (partitions, replicas of partition 0), for topics whose every partition has a
/// leader (a topic just created has none for a moment: it cannot be read or written yet).
async fn existing_topics(
    admin: &Arc<rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>>,
    timeout: Duration,
) -> Result<HashMap<String, (i32, i32)>, TopicError> {
    let admin = Arc::clone(admin);
    let metadata = tokio::task::spawn_blocking(move || admin.inner().fetch_metadata(None, timeout))
        .await
        .expect("metadata fetch does not panic")
        .map_err(TopicError::Admin)?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| !t.partitions().is_empty() && t.partitions().iter().all(|p| p.leader() >= 0))
        .map(|t| {
            let replicas = t.partitions().first().map_or(0, |p| p.replicas().len() as i32);
            (t.name().to_owned(), (t.partitions().len() as i32, replicas))
        })
        .collect())
}

/// Waits until every declared topic exists with a leader for each partition.
async fn wait_until_led(
    admin: &Arc<rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>>,
    specs: &[TopicSpec],
    timeout: Duration,
) -> Result<HashMap<String, (i32, i32)>, TopicError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let existing = existing_topics(admin, timeout).await?;
        let ready = specs.iter().all(|s| existing.contains_key(&s.name));
        if ready || tokio::time::Instant::now() >= deadline {
            return Ok(existing);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> TopicsConfig {
        TopicsConfig {
            user_commands: "c".parse().unwrap(),
            user_events: "e".parse().unwrap(),
            user_state: "s".parse().unwrap(),
            user_replies: "r".parse().unwrap(),
            import_requests: "ir".parse().unwrap(),
            import_status: "is".parse().unwrap(),
            export_requests: "er".parse().unwrap(),
            export_status: "es".parse().unwrap(),
            dead_letters: "d".into(),
            partitions: 6,
            replication_factor: 3,
            state_compaction_lag_ms: 60_000,
        }
    }

    #[test]
    fn the_catalog_applies_the_configured_sizing_to_every_topic() {
        let catalog = defaults().catalog();
        assert_eq!(catalog.len(), 9);
        assert!(catalog.iter().all(|t| t.partitions == 6 && t.replication_factor == 3));
    }

    fn declared(name: &str, config: &str) -> String {
        let spec = defaults().catalog().into_iter().find(|t| t.name == name).expect("declared");
        spec.configs.into_iter().find(|(n, _)| n == config).map(|(_, v)| v).unwrap_or_default()
    }

    #[test]
    fn personal_data_is_kept_for_a_bounded_time_and_the_state_is_compacted_within_the_lag() {
        for topic in ["c", "e", "r"] {
            let retention: i64 = declared(topic, "retention.ms").parse().unwrap();
            assert!(retention > 0, "{topic} keeps data for a bounded time");
            assert_eq!(declared(topic, "segment.ms"), SEGMENT_MS.to_string());
        }
        assert!(REPLIES_RETENTION_MS as u128 > DEDUP_WINDOW.as_millis(), "replies outlive the de-duplication window");
        assert_eq!(declared("s", "cleanup.policy"), "compact");
        assert_eq!(declared("s", "segment.ms"), "60000");
        assert_eq!(declared("s", "max.compaction.lag.ms"), "60000");
    }

    #[test]
    fn a_later_config_replaces_an_earlier_one() {
        let spec = TopicSpec::new("t").compacted();
        let policies: Vec<_> = spec.configs.iter().filter(|(n, _)| n == "cleanup.policy").collect();
        assert_eq!(policies, vec![&("cleanup.policy".to_owned(), "compact".to_owned())]);
    }
}
