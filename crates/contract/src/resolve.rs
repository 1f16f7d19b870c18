//! Reading a record written with another version of its schema. Avro resolves by name: the
//! writer's fields are matched to the reader's by name, a reader field the writer lacks takes
//! its default, a writer field the reader lacks is skipped, union branches and enum symbols
//! are matched by name (an unknown symbol becomes the enum's default, if it has one). The
//! generated types carry exactly that in their serde attributes; `serde_avro_fast` walks the
//! writer's schema and hands serde the values by name.

use crate::Record;
use crate::codec::DecodeError;

/// The schema a writer used, parsed once.
#[derive(Debug)]
pub struct WriterSchema {
    schema: serde_avro_fast::Schema,
    full_name: String,
}

/// A writer schema that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("unusable writer schema: {0}")]
pub struct SchemaError(String);

impl WriterSchema {
    pub fn parse(json: &str) -> Result<Self, SchemaError> {
        let value: serde_json::Value = serde_json::from_str(json).map_err(|e| SchemaError(e.to_string()))?;
        let name = value.get("name").and_then(|n| n.as_str()).ok_or_else(|| SchemaError("not a record".into()))?;
        let full_name = match value.get("namespace").and_then(|n| n.as_str()) {
            Some(namespace) if !name.contains('.') && !namespace.is_empty() => format!("{namespace}.{name}"),
            _ => name.to_owned(),
        };
        let schema = json.parse().map_err(|e: serde_avro_fast::schema::SchemaError| SchemaError(e.to_string()))?;
        Ok(Self { schema, full_name })
    }

    /// The full name of the record it describes.
    pub fn full_name(&self) -> &str {
        &self.full_name
    }

    /// Reads a datum written with this schema as an `R`. The records must have the same name
    /// (Avro resolves records by name): anything else was written for another topic.
    pub fn read<R: Record>(&self, datum: &[u8]) -> Result<R, DecodeError> {
        let simple = |name: &str| name.rsplit('.').next().unwrap_or_default().to_owned();
        if simple(&self.full_name) != simple(R::NAME) {
            return Err(DecodeError::new(format!("written as a {}, not a {}", self.full_name, R::NAME)));
        }
        serde_avro_fast::from_datum_slice(datum, &self.schema).map_err(|e| DecodeError::new(e.to_string()))
    }
}
