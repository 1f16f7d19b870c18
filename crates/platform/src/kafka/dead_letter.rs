//! The dead-letter record: the original key, payload and headers, plus headers saying why and
//! where it came from, so an operator can inspect it and replay it to its topic.

use super::consumer::Incoming;
use super::producer::Record;

/// Header names added to every dead-lettered record.
pub mod headers {
    /// Why the message can never be processed.
    pub const ERROR: &str = "dlq.error";
    pub const ORIGINAL_TOPIC: &str = "dlq.original.topic";
    pub const ORIGINAL_PARTITION: &str = "dlq.original.partition";
    pub const ORIGINAL_OFFSET: &str = "dlq.original.offset";
    /// The consumer group that gave up on it.
    pub const CONSUMER_GROUP: &str = "dlq.consumer.group";
    /// When it was dead-lettered, in milliseconds since the Unix epoch.
    pub const FAILED_AT: &str = "dlq.failed.at";
}

/// The header values, rendered once so the record can borrow them.
#[derive(Debug)]
pub(crate) struct DeadLetter {
    reason: String,
    partition: String,
    offset: String,
    failed_at: String,
}

impl DeadLetter {
    pub(crate) fn new(message: &Incoming, reason: &str) -> Self {
        let failed_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        Self {
            reason: reason.to_owned(),
            partition: message.partition.to_string(),
            offset: message.offset.to_string(),
            failed_at: failed_at.to_string(),
        }
    }

    pub(crate) fn record<'a>(&'a self, topic: &'a str, group: &'a str, message: &'a Incoming) -> Record<'a> {
        let mut record = Record::new(topic, message.payload.as_deref().unwrap_or_default());
        if let Some(key) = &message.key {
            record = record.key(key);
        }
        for (name, value) in &message.headers {
            record = record.header(name, value.as_deref().unwrap_or_default());
        }
        record
            .header(headers::ERROR, self.reason.as_bytes())
            .header(headers::ORIGINAL_TOPIC, message.topic.as_bytes())
            .header(headers::ORIGINAL_PARTITION, self.partition.as_bytes())
            .header(headers::ORIGINAL_OFFSET, self.offset.as_bytes())
            .header(headers::CONSUMER_GROUP, group.as_bytes())
            .header(headers::FAILED_AT, self.failed_at.as_bytes())
    }
}
