//! The records of the `_schemas` topic, in Confluent's format: a JSON key naming what changed
//! (`{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}`) and a JSON value with its latest
//! state, or a tombstone when it was removed. Compaction keeps the latest record per key, so the
//! topic always holds the whole registry.

use serde::{Deserialize, Serialize};

use crate::schema::Level;

/// What a record is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "keytype", rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum Key {
    Schema { subject: String, version: u32, magic: u8 },
    Config { subject: Option<String>, magic: u8 },
}

impl Key {
    pub(crate) fn schema(subject: &str, version: u32) -> Self {
        Self::Schema { subject: subject.to_owned(), version, magic: 1 }
    }

    pub(crate) fn config(subject: Option<&str>) -> Self {
        Self::Config { subject: subject.map(str::to_owned), magic: 0 }
    }

    /// Parses a key; `Ok(None)` for key types this registry does not use (Confluent's NOOP,
    /// MODE, DELETE_SUBJECT, ...), which are skipped.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Option<Self>, serde_json::Error> {
        let value: serde_json::Value = serde_json::from_slice(bytes)?;
        match value.get("keytype").and_then(|k| k.as_str()) {
            Some("SCHEMA" | "CONFIG") => serde_json::from_value(value).map(Some),
            _ => Ok(None),
        }
    }
}

/// A reference from a schema to a named type registered under another subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct Reference {
    pub(crate) name: String,
    pub(crate) subject: String,
    pub(crate) version: u32,
}

/// One version of a subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SchemaValue {
    pub(crate) subject: String,
    pub(crate) version: u32,
    pub(crate) id: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) schema_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) references: Vec<Reference>,
    pub(crate) schema: String,
    #[serde(default)]
    pub(crate) deleted: bool,
}

/// A compatibility setting, global (`subject: null`) or per subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConfigValue {
    pub(crate) compatibility_level: Level,
}

/// A change to the registry: a key and its new value, `None` to remove it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    Schema(Key, Option<SchemaValue>),
    Config(Key, Option<ConfigValue>),
}

impl Change {
    pub(crate) fn key(&self) -> &Key {
        match self {
            Self::Schema(key, _) | Self::Config(key, _) => key,
        }
    }

    pub(crate) fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let key = serde_json::to_vec(self.key()).expect("keys serialise");
        let value = match self {
            Self::Schema(_, value) => value.as_ref().map(|v| serde_json::to_vec(v).expect("values serialise")),
            Self::Config(_, value) => value.as_ref().map(|v| serde_json::to_vec(v).expect("values serialise")),
        };
        (key, value)
    }

    /// Decodes a record of the topic; `Ok(None)` for records this registry skips.
    pub(crate) fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Option<Self>, serde_json::Error> {
        let Some(key) = Key::parse(key)? else { return Ok(None) };
        Ok(Some(match key {
            Key::Schema { .. } => Self::Schema(key, value.map(serde_json::from_slice).transpose()?),
            Key::Config { .. } => Self::Config(key, value.map(serde_json::from_slice).transpose()?),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_written_as_confluent_writes_them() {
        let key = serde_json::to_string(&Key::schema("users-value", 3)).unwrap();
        assert_eq!(key, r#"{"keytype":"SCHEMA","subject":"users-value","version":3,"magic":1}"#);
        let global = serde_json::to_string(&Key::config(None)).unwrap();
        assert_eq!(global, r#"{"keytype":"CONFIG","subject":null,"magic":0}"#);
    }

    #[test]
    fn a_confluent_schema_record_decodes() {
        let key = br#"{"keytype":"SCHEMA","subject":"t-value","version":1,"magic":1}"#;
        let value = br#"{"subject":"t-value","version":1,"id":7,"schema":"\"string\"","deleted":false}"#;
        let Some(Change::Schema(_, Some(v))) = Change::decode(key, Some(value)).unwrap() else { panic!() };
        assert_eq!((v.id, v.schema.as_str(), v.deleted), (7, "\"string\"", false));
    }

    #[test]
    fn unknown_key_types_are_skipped_and_tombstones_kept() {
        assert_eq!(Change::decode(br#"{"keytype":"NOOP","magic":0}"#, None).unwrap(), None);
        let key = br#"{"keytype":"CONFIG","subject":"s","magic":0}"#;
        assert!(matches!(Change::decode(key, None).unwrap(), Some(Change::Config(_, None))));
    }

    #[test]
    fn a_round_trip_keeps_every_field() {
        let change = Change::Schema(
            Key::schema("s", 2),
            Some(SchemaValue {
                subject: "s".into(),
                version: 2,
                id: 9,
                schema_type: None,
                references: vec![Reference { name: "a.B".into(), subject: "b".into(), version: 1 }],
                schema: "{}".into(),
                deleted: true,
            }),
        );
        let (key, value) = change.encode();
        assert_eq!(Change::decode(&key, value.as_deref()).unwrap(), Some(change));
    }
}
