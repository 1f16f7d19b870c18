//! Avro schemas as the registry sees them: parsed (with the named types of their references),
//! rendered to one canonical string per meaning, and compared for compatibility.

use std::fmt;
use std::str::FromStr;

use apache_avro::Schema;
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use serde::{Deserialize, Serialize};

/// A schema that parsed, with its canonical text: whitespace, key order and JSON escapes do not
/// change it, while docs, defaults and aliases are kept (they change what readers do).
#[derive(Debug, Clone)]
pub(crate) struct ParsedSchema {
    pub(crate) schema: Schema,
    pub(crate) canonical: String,
}

/// Why a text is not a usable Avro schema.
#[derive(Debug, thiserror::Error)]
#[error("Invalid schema: {0}")]
pub(crate) struct InvalidSchema(pub(crate) String);

/// Parses `text`; `references` are the schema texts of the named types it refers to.
pub(crate) fn parse(text: &str, references: &[String]) -> Result<ParsedSchema, InvalidSchema> {
    let schema = if references.is_empty() {
        Schema::parse_str(text)
    } else {
        Schema::parse_str_with_list(text, references).map(|(schema, _)| schema)
    }
    .map_err(|e| InvalidSchema(e.to_string()))?;
    let canonical = serde_json::to_string(&schema).map_err(|e| InvalidSchema(e.to_string()))?;
    Ok(ParsedSchema { schema, canonical })
}

/// Compatibility levels, as Confluent names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Level {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Level {
    /// Whether every earlier version is checked, not only the latest.
    fn transitive(self) -> bool {
        matches!(self, Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive)
    }

    /// The new schema must read data written with the old one.
    fn backward(self) -> bool {
        matches!(self, Self::Backward | Self::BackwardTransitive | Self::Full | Self::FullTransitive)
    }

    /// The old schema must read data written with the new one.
    fn forward(self) -> bool {
        matches!(self, Self::Forward | Self::ForwardTransitive | Self::Full | Self::FullTransitive)
    }

    const ALL: [Level; 7] = [
        Self::None,
        Self::Backward,
        Self::BackwardTransitive,
        Self::Forward,
        Self::ForwardTransitive,
        Self::Full,
        Self::FullTransitive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = String;

    /// Case-insensitive, as Confluent accepts it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("Invalid compatibility level: {s}"))
    }
}

/// Checks `candidate` against `existing` (oldest first) under `level`; the messages say what
/// breaks. Non-transitive levels look at the latest version only.
pub(crate) fn check(level: Level, candidate: &Schema, existing: &[Schema]) -> Result<(), Vec<String>> {
    let against: &[Schema] =
        if level.transitive() { existing } else { existing.last().map_or(&[], std::slice::from_ref) };
    let mut problems = Vec::new();
    for old in against {
        if level.backward()
            && let Err(e) = can_read(old, candidate)
        {
            problems.push(format!("new schema cannot read data written with an existing one: {e}"));
        }
        if level.forward()
            && let Err(e) = can_read(candidate, old)
        {
            problems.push(format!("an existing schema cannot read data written with the new one: {e}"));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

/// Whether `reader` can read every datum written with `writer`. apache-avro answers
/// `Partial` when only some data can be read (an enum symbol or a union branch the reader
/// lacks); for a registry that is a refusal, as it is for Confluent's: a reader that fails on
/// some records is not compatible.
fn can_read(writer: &Schema, reader: &Schema) -> Result<(), String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => Ok(()),
        Ok(Compatibility::Partial) => {
            Err("only some data could be read: an enum symbol or a union branch is missing from the reader".into())
        }
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"User","fields":[{"name":"email","type":"string"}]}"#;
    const V2_WITH_DEFAULT: &str = r#"{"type":"record","name":"User","fields":[
        {"name":"email","type":"string"},{"name":"age","type":["null","int"],"default":null}]}"#;
    const V2_WITHOUT_DEFAULT: &str = r#"{"type":"record","name":"User","fields":[
        {"name":"email","type":"string"},{"name":"age","type":"int"}]}"#;

    fn schema(text: &str) -> Schema {
        parse(text, &[]).expect("valid").schema
    }

    #[test]
    fn whitespace_and_key_order_do_not_change_the_canonical_text() {
        let a = parse(V1, &[]).unwrap().canonical;
        let b =
            parse(r#"{ "fields": [ {"type": "string", "name": "email"} ], "name": "User", "type": "record" }"#, &[])
                .unwrap()
                .canonical;
        assert_eq!(a, b);
    }

    #[test]
    fn a_default_is_part_of_the_canonical_text() {
        let with = parse(V2_WITH_DEFAULT, &[]).unwrap().canonical;
        let without = parse(&V2_WITH_DEFAULT.replace(r#","default":null"#, ""), &[]).unwrap().canonical;
        assert_ne!(with, without);
    }

    #[test]
    fn invalid_avro_is_refused_with_the_parser_message() {
        let err = parse(r#"{"type":"record","name":"X","fields":[{"name":"a","type":"nope"}]}"#, &[]).unwrap_err();
        assert!(err.to_string().starts_with("Invalid schema"), "{err}");
        assert!(parse("not json", &[]).is_err());
    }

    #[test]
    fn a_named_type_from_a_reference_resolves() {
        let address =
            r#"{"type":"record","name":"Address","namespace":"a","fields":[{"name":"city","type":"string"}]}"#;
        let user = r#"{"type":"record","name":"User","fields":[{"name":"home","type":"a.Address"}]}"#;
        assert!(parse(user, &[]).is_err());
        assert!(parse(user, &[address.to_owned()]).is_ok());
    }

    #[test]
    fn backward_allows_a_new_field_with_a_default_only() {
        let old = [schema(V1)];
        assert!(check(Level::Backward, &schema(V2_WITH_DEFAULT), &old).is_ok());
        assert!(check(Level::Backward, &schema(V2_WITHOUT_DEFAULT), &old).is_err());
        assert!(check(Level::None, &schema(V2_WITHOUT_DEFAULT), &old).is_ok());
    }

    #[test]
    fn forward_allows_adding_a_field_the_old_reader_ignores() {
        let old = [schema(V1)];
        assert!(check(Level::Forward, &schema(V2_WITHOUT_DEFAULT), &old).is_ok());
        assert!(check(Level::Full, &schema(V2_WITHOUT_DEFAULT), &old).is_err());
        assert!(check(Level::Full, &schema(V2_WITH_DEFAULT), &old).is_ok());
    }

    #[test]
    fn transitive_levels_check_every_version_not_only_the_latest() {
        // Old readers must read new data. v2 gave `a` a default, so v2 can read v3 (which drops
        // `a`); v1 cannot.
        let v1 = schema(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#);
        let v2 = schema(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":1}]}"#);
        let v3 = schema(r#"{"type":"record","name":"R","fields":[{"name":"b","type":"string","default":"x"}]}"#);
        assert!(check(Level::Forward, &v3, &[v1.clone(), v2.clone()]).is_ok());
        assert!(check(Level::ForwardTransitive, &v3, &[v1, v2]).is_err());
    }

    /// Version 1 of a record exercising every kind of change below.
    const BASE: &str = r#"{"type":"record","name":"R","fields":[
        {"name":"a","type":"string"},
        {"name":"state","type":{"type":"enum","name":"State","symbols":["ON","OFF"]}},
        {"name":"mode","type":{"type":"enum","name":"Mode","symbols":["X","Y"],"default":"X"}},
        {"name":"u","type":["null","string","int"],"default":null}]}"#;

    fn changed(from: &str, to: &str) -> Schema {
        assert!(BASE.contains(from), "{from}");
        schema(&BASE.replace(from, to))
    }

    #[test]
    fn full_transitive_refuses_every_change_that_breaks_a_reader_of_either_side() {
        let old = [schema(BASE)];
        for (what, new) in [
            (
                "a field without default added",
                changed(
                    r#"{"name":"a","type":"string"}"#,
                    r#"{"name":"a","type":"string"},{"name":"b","type":"long"}"#,
                ),
            ),
            ("a field's type changed", changed(r#"{"name":"a","type":"string"}"#, r#"{"name":"a","type":"int"}"#)),
            ("an enum symbol removed", changed(r#"["ON","OFF"]"#, r#"["ON"]"#)),
            ("an enum symbol added", changed(r#"["ON","OFF"]"#, r#"["ON","OFF","BROKEN"]"#)),
            ("a union branch removed", changed(r#"["null","string","int"]"#, r#"["null","string"]"#)),
            ("a union branch added", changed(r#"["null","string","int"]"#, r#"["null","string","int","boolean"]"#)),
        ] {
            assert!(check(Level::FullTransitive, &new, &old).is_err(), "{what} must be refused");
        }
    }

    #[test]
    fn full_transitive_accepts_changes_every_reader_survives() {
        let old = [schema(BASE)];
        let with_optional_field = changed(
            r#"{"name":"a","type":"string"}"#,
            r#"{"name":"a","type":"string"},{"name":"b","type":["null","string"],"default":null}"#,
        );
        // An enum with a default maps unknown symbols to it, so it may gain and lose symbols.
        let enum_with_default_changed = changed(r#"["X","Y"]"#, r#"["X","Z"]"#);
        for new in [with_optional_field, enum_with_default_changed] {
            assert_eq!(check(Level::FullTransitive, &new, &old), Ok(()));
        }
    }

    #[test]
    fn apache_avros_partial_compatibility_is_a_refusal() {
        let old = schema(BASE);
        let fewer_symbols = changed(r#"["ON","OFF"]"#, r#"["ON"]"#);
        // apache-avro calls this readable "in part": some old data (OFF) is not.
        assert_eq!(SchemaCompatibility::can_read(&old, &fewer_symbols), Ok(Compatibility::Partial));
        assert!(check(Level::Backward, &fewer_symbols, std::slice::from_ref(&old)).is_err());
        assert_eq!(check(Level::Forward, &fewer_symbols, &[old]), Ok(()), "old readers know every new symbol");
    }

    #[test]
    fn levels_parse_case_insensitively_and_refuse_unknown_names() {
        assert_eq!("full_transitive".parse::<Level>(), Ok(Level::FullTransitive));
        assert!("SOMETIMES".parse::<Level>().is_err());
    }
}
