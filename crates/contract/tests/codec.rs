//! The generated codec against two independent implementations of Avro, on random values of
//! every topic record: apache-avro writes a random datum from the schema alone; the generated
//! codec must read it and write back exactly the same bytes, and serde_avro_fast (the path for
//! records of other schema versions) must read it to the same value and write the same bytes.

// apache-avro 0.22 deprecates the datum helpers in favour of a reader API with more ceremony.
#![allow(deprecated)]

use std::collections::HashMap;

use apache_avro::schema::{Name, RecordSchema, Schema};
use apache_avro::types::Value;
use contract::{Record, codec};
use proptest::prelude::*;

/// A small deterministic generator, seeded by proptest.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn long(&mut self) -> i64 {
        // Small, large and extreme values all matter to a varint.
        match self.below(4) {
            0 => self.below(200) as i64 - 100,
            1 => i64::MIN + self.below(3) as i64,
            2 => i64::MAX - self.below(3) as i64,
            _ => self.next() as i64,
        }
    }

    fn string(&mut self) -> String {
        const PIECES: [&str; 8] = ["a", "Z", " ", "é", "测", "\"", "\n", "@example.com"];
        (0..self.below(12)).map(|_| PIECES[self.below(PIECES.len())]).collect()
    }
}

/// A random value of `schema`, `names` resolving references.
fn random_value(schema: &Schema, names: &HashMap<Name, Schema>, rng: &mut Random, depth: usize) -> Value {
    match schema {
        Schema::Null => Value::Null,
        Schema::Boolean => Value::Boolean(rng.below(2) == 1),
        Schema::Int => Value::Int(rng.long() as i32),
        Schema::Long => Value::Long(rng.long()),
        Schema::String => Value::String(rng.string()),
        Schema::Uuid(_) => Value::Uuid(uuid::Uuid::from_u64_pair(rng.next(), rng.next())),
        Schema::TimestampMillis => Value::TimestampMillis(rng.long()),
        Schema::Array(array) => {
            let count = if depth > 3 { 0 } else { rng.below(4) };
            Value::Array((0..count).map(|_| random_value(&array.items, names, rng, depth + 1)).collect())
        }
        Schema::Union(union) => {
            let branch = rng.below(union.variants().len());
            Value::Union(branch as u32, Box::new(random_value(&union.variants()[branch], names, rng, depth + 1)))
        }
        Schema::Enum(e) => {
            let i = rng.below(e.symbols.len());
            Value::Enum(i as u32, e.symbols[i].clone())
        }
        Schema::Record(RecordSchema { fields, .. }) => Value::Record(
            fields.iter().map(|f| (f.name.clone(), random_value(&f.schema, names, rng, depth + 1))).collect(),
        ),
        Schema::Ref { name } => random_value(&names[name], names, rng, depth),
        other => panic!("the contract does not use {other:?}"),
    }
}

fn named_types(schema: &Schema, names: &mut HashMap<Name, Schema>) {
    match schema {
        Schema::Record(record) => {
            names.insert(record.name.clone(), schema.clone());
            for field in &record.fields {
                named_types(&field.schema, names);
            }
        }
        Schema::Enum(e) => {
            names.insert(e.name.clone(), schema.clone());
        }
        Schema::Array(array) => named_types(&array.items, names),
        Schema::Union(union) => union.variants().iter().for_each(|v| named_types(v, names)),
        _ => {}
    }
}

/// apache-avro's bytes for a random datum are read and written back identically by the
/// generated codec, and read to the same value and written identically by serde_avro_fast.
fn agrees_with_apache_avro<R: Record + PartialEq>(seed: u64) {
    let schema = Schema::parse_str(R::SCHEMA).expect("the generated schema is valid Avro");
    let mut names = HashMap::new();
    named_types(&schema, &mut names);
    let value = random_value(&schema, &names, &mut Random(seed | 1), 0);
    let bytes = apache_avro::to_avro_datum(&schema, value).expect("apache-avro writes it");

    let direct: R = codec::decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", R::NAME));
    let mut written = Vec::new();
    codec::Encode::encode(&direct, &mut written);
    assert_eq!(written, bytes, "{}: the generated codec writes other bytes", R::NAME);

    let fast_schema: serde_avro_fast::Schema = R::SCHEMA.parse().expect("serde_avro_fast parses the schema");
    let via_serde: R = serde_avro_fast::from_datum_slice(&bytes, &fast_schema).expect("serde_avro_fast reads it");
    assert_eq!(via_serde, direct, "{}: serde and the generated codec read different values", R::NAME);
    let mut config = serde_avro_fast::ser::SerializerConfig::new(&fast_schema);
    let serde_bytes = serde_avro_fast::to_datum_vec(&direct, &mut config).expect("serde_avro_fast writes it");
    assert_eq!(serde_bytes, bytes, "{}: serde_avro_fast writes other bytes", R::NAME);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_topic_record_is_written_byte_for_byte_as_apache_avro_writes_it(seed in any::<u64>()) {
        agrees_with_apache_avro::<contract::commands::UserCommand>(seed);
        agrees_with_apache_avro::<contract::events::UserEvent>(seed);
        agrees_with_apache_avro::<contract::replies::UserCommandReply>(seed);
        agrees_with_apache_avro::<contract::imports::ImportRequested>(seed);
        agrees_with_apache_avro::<contract::imports::ImportStatus>(seed);
        agrees_with_apache_avro::<contract::exports::ExportRequested>(seed);
        agrees_with_apache_avro::<contract::exports::ExportStatus>(seed);
    }

    #[test]
    fn truncated_or_corrupted_records_are_errors_not_panics(seed in any::<u64>(), cut in any::<usize>(), flip in any::<u8>()) {
        let schema = Schema::parse_str(contract::events::UserEvent::SCHEMA).unwrap();
        let mut names = HashMap::new();
        named_types(&schema, &mut names);
        let value = random_value(&schema, &names, &mut Random(seed | 1), 0);
        let mut bytes = apache_avro::to_avro_datum(&schema, value).unwrap();
        let at = cut % bytes.len();
        prop_assert!(codec::decode::<contract::events::UserEvent>(&bytes[..at]).is_err());
        bytes[at] ^= flip;
        let _ = codec::decode::<contract::events::UserEvent>(&bytes);
    }
}

#[test]
fn every_generated_schema_is_what_the_avsc_files_say_with_shared_types_inlined() {
    let user_event = Schema::parse_str(contract::events::UserEvent::SCHEMA).unwrap();
    let user_reply = Schema::parse_str(contract::replies::UserCommandReply::SCHEMA).unwrap();
    // The shared user is defined (inlined) in both, once each.
    for schema in [&user_event, &user_reply] {
        let mut names = HashMap::new();
        named_types(schema, &mut names);
        assert!(names.keys().any(|n| n.fullname(None) == "usermgmt.User"), "{schema:?}");
    }
    assert_eq!(contract::events::UserEvent::NAME, "usermgmt.events.UserEvent");
}

/// Paths (indices through `fields` arrays and nested types) to every field with a default.
fn fields_with_defaults(json: &serde_json::Value, at: &mut Vec<String>, found: &mut Vec<Vec<String>>) {
    match json {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Array(fields)) = map.get("fields") {
                for (i, field) in fields.iter().enumerate() {
                    at.push(format!("fields/{i}"));
                    if field.get("default").is_some() {
                        found.push(at.clone());
                    }
                    if let Some(ty) = field.get("type") {
                        at.push("type".into());
                        fields_with_defaults(ty, at, found);
                        at.pop();
                    }
                    at.pop();
                }
            }
            for key in ["items", "values"] {
                if let Some(inner) = map.get(key) {
                    at.push(key.into());
                    fields_with_defaults(inner, at, found);
                    at.pop();
                }
            }
        }
        serde_json::Value::Array(branches) => {
            for (i, branch) in branches.iter().enumerate() {
                at.push(i.to_string());
                fields_with_defaults(branch, at, found);
                at.pop();
            }
        }
        _ => {}
    }
}

/// `json` without the field at `path`: the schema of an older writer that lacked it.
fn without(json: &serde_json::Value, path: &[String]) -> serde_json::Value {
    let mut json = json.clone();
    let (last, parents) = path.split_last().unwrap();
    let mut node = &mut json;
    for step in parents {
        node = step.split('/').fold(node, |n, part| match part.parse::<usize>() {
            Ok(i) => &mut n[i],
            Err(_) => &mut n[part],
        });
    }
    let index: usize = last.trim_start_matches("fields/").parse().unwrap();
    node["fields"].as_array_mut().unwrap().remove(index);
    json
}

/// Every field with a default may be missing from an older writer's records: reading them with
/// the writer's schema fills it in (what the generated serde attributes are for).
fn reads_writers_lacking_any_defaulted_field<R: Record + PartialEq>(seed: u64) {
    let reader: serde_json::Value = serde_json::from_str(R::SCHEMA).unwrap();
    let mut paths = Vec::new();
    fields_with_defaults(&reader, &mut Vec::new(), &mut paths);
    for path in paths {
        let writer_json = without(&reader, &path);
        // A field holding the first definition of a named type cannot go without its later uses.
        let Ok(writer) = Schema::parse_str(&writer_json.to_string()) else { continue };
        let mut names = HashMap::new();
        named_types(&writer, &mut names);
        let value = random_value(&writer, &names, &mut Random(seed | 1), 0);
        let bytes = apache_avro::to_avro_datum(&writer, value).unwrap();
        let writer_schema = contract::WriterSchema::parse(&writer_json.to_string()).unwrap();
        let read: Result<R, _> = writer_schema.read(&bytes);
        assert!(read.is_ok(), "{} without {path:?}: {:?}", R::NAME, read.unwrap_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn records_of_older_writers_lacking_a_field_with_a_default_are_read(seed in any::<u64>()) {
        reads_writers_lacking_any_defaulted_field::<contract::commands::UserCommand>(seed);
        reads_writers_lacking_any_defaulted_field::<contract::events::UserEvent>(seed);
        reads_writers_lacking_any_defaulted_field::<contract::replies::UserCommandReply>(seed);
        reads_writers_lacking_any_defaulted_field::<contract::imports::ImportRequested>(seed);
        reads_writers_lacking_any_defaulted_field::<contract::imports::ImportStatus>(seed);
        reads_writers_lacking_any_defaulted_field::<contract::exports::ExportRequested>(seed);
        reads_writers_lacking_any_defaulted_field::<contract::exports::ExportStatus>(seed);
    }
}

/// A random record written with `Writer`'s schema, read as a `Reader` by name.
fn read_across<Writer: Record, Reader: Record>(seed: u64) {
    let schema = Schema::parse_str(Writer::SCHEMA).unwrap();
    let mut names = HashMap::new();
    named_types(&schema, &mut names);
    let bytes = apache_avro::to_avro_datum(&schema, random_value(&schema, &names, &mut Random(seed | 1), 0)).unwrap();
    let read: Result<Reader, _> = contract::WriterSchema::parse(Writer::SCHEMA).unwrap().read(&bytes);
    assert!(read.is_ok(), "{} as written by {}: {:?}", Reader::NAME, Writer::SCHEMA, read.unwrap_err());
}

/// Both directions between this version and a released one.
fn both_ways<Now: Record, Then: Record>(seed: u64) {
    read_across::<Then, Now>(seed);
    read_across::<Now, Then>(seed);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    #[test]
    fn every_record_reads_and_is_read_by_release_1(seed in any::<u64>()) {
        use contract::releases::v1;
        both_ways::<contract::commands::UserCommand, v1::commands::UserCommand>(seed);
        both_ways::<contract::events::UserEvent, v1::events::UserEvent>(seed);
        both_ways::<contract::replies::UserCommandReply, v1::replies::UserCommandReply>(seed);
        both_ways::<contract::imports::ImportRequested, v1::imports::ImportRequested>(seed);
        both_ways::<contract::imports::ImportStatus, v1::imports::ImportStatus>(seed);
        both_ways::<contract::exports::ExportRequested, v1::exports::ExportRequested>(seed);
        both_ways::<contract::exports::ExportStatus, v1::exports::ExportStatus>(seed);
    }
}
