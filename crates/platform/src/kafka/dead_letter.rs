//! The dead-letter record: the original key, payload and headers, plus headers saying why and
//! where it came from, so an operator can inspect it and replay it to its topic.

use super::consumer::Incoming;
use super::producer::Record;

/// Header names added to every dead-lettered record.
pub mod headers {
    /// Why the message can never be processed.
    pub const ERROR: &str = "dlq.error";
    /// The same, as one of a few codes ([`super::Poison::code`]).
    pub const REASON_CODE: &str = "dlq.reason.code";
    pub const ORIGINAL_TOPIC: &str = "dlq.original.topic";
    pub const ORIGINAL_PARTITION: &str = "dlq.original.partition";
    pub const ORIGINAL_OFFSET: &str = "dlq.original.offset";
    /// The consumer group that gave up on it.
    pub const CONSUMER_GROUP: &str = "dlq.consumer.group";
    /// When it was dead-lettered, in milliseconds since the Unix epoch.
    pub const FAILED_AT: &str = "dlq.failed.at";
}

/// Why a message can never be processed: the error's text, and a code from a short, fixed list
/// (a metric's label, a header to group by).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poison {
    pub code: &'static str,
    pub reason: String,
}

impl Poison {
    /// The codes: what kind of record it is, not which one.
    pub const CODES: [&'static str; 10] = [
        "no_value",
        "not_avro",
        "unknown_schema",
        "bad_schema",
        "malformed",
        "contract",
        "unencodable",
        "produce_refused",
        "rejected",
        "retries_exhausted",
    ];

    /// Given up on after `attempts` tries failing with `error` ([`super::HandleError::Retryable`]).
    pub fn exhausted(error: &(dyn std::error::Error + Send + Sync + 'static), attempts: u32) -> Self {
        Self { code: "retries_exhausted", reason: format!("gave up after {attempts} attempts: {error}") }
    }

    pub fn of(error: &(dyn std::error::Error + Send + Sync + 'static)) -> Self {
        use crate::topic::{DecodeError, PublishError};
        let code = if let Some(decode) = error.downcast_ref::<DecodeError>() {
            match decode {
                DecodeError::NoValue => "no_value",
                DecodeError::NotConfluent => "not_avro",
                DecodeError::Registry { .. } => "unknown_schema",
                DecodeError::WriterSchema { .. } => "bad_schema",
                DecodeError::Malformed { .. } => "malformed",
                DecodeError::Contract(_) => "contract",
            }
        } else if error.is::<contract::MappingError>() || matches!(error.downcast_ref(), Some(PublishError::Encode(_)))
        {
            "unencodable"
        } else if error.is::<super::ProduceError>() || error.is::<PublishError>() {
            "produce_refused"
        } else {
            // The handler's own verdict (a key that is no id, a batch of nothing).
            "rejected"
        };
        Self { code, reason: error.to_string() }
    }
}

impl std::fmt::Display for Poison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.reason, self.code)
    }
}

/// Now, in milliseconds since the Unix epoch, as a header value.
pub(crate) fn now_ms() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map(|d| d.as_millis()).unwrap_or_default().to_string()
}

/// The header values, rendered once so the record can borrow them.
#[derive(Debug)]
pub(crate) struct DeadLetter {
    code: &'static str,
    reason: String,
    partition: String,
    offset: String,
    failed_at: String,
}

impl DeadLetter {
    /// Counts it in `dead_letters_total{topic, reason}` (the original topic, the code).
    pub(crate) fn new(message: &Incoming, poison: &Poison) -> Self {
        metrics::counter!("dead_letters_total", "topic" => message.topic.clone(), "reason" => poison.code).increment(1);
        Self {
            code: poison.code,
            reason: poison.reason.clone(),
            partition: message.partition.to_string(),
            offset: message.offset.to_string(),
            failed_at: now_ms(),
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
            .header(headers::REASON_CODE, self.code.as_bytes())
            .header(headers::ORIGINAL_TOPIC, message.topic.as_bytes())
            .header(headers::ORIGINAL_PARTITION, self.partition.as_bytes())
            .header(headers::ORIGINAL_OFFSET, self.offset.as_bytes())
            .header(headers::CONSUMER_GROUP, group.as_bytes())
            .header(headers::FAILED_AT, self.failed_at.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::DecodeError;

    #[test]
    fn each_kind_of_poison_has_a_code_of_the_list() {
        let code = |error: Box<dyn std::error::Error + Send + Sync>| Poison::of(error.as_ref()).code;
        let cases = [
            (code(Box::new(DecodeError::NoValue)), "no_value"),
            (code(Box::new(DecodeError::NotConfluent)), "not_avro"),
            (code("a tombstone whose key is not a user id".into()), "rejected"),
        ];
        for (found, wanted) in cases {
            assert_eq!(found, wanted);
            assert!(Poison::CODES.contains(&found), "{found} is not in the list");
        }
        let text = DecodeError::NotConfluent.to_string();
        assert_eq!(code(text.as_str().into()), "rejected", "the typed error says what it is, not its text");
    }
}
