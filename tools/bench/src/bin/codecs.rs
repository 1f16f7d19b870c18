//! `just bench-codecs`: the Avro codecs compared on the records of the hot paths (a user event,
//! a command carrying a batch of 500 import rows, the reply with their 500 outcomes). Median of
//! several runs; prints the figures and asserts nothing.
//!
//! - the generated codec, from the domain's types to bytes and back, as the services use it,
//!   and its share without the mapping to the domain (record <-> bytes);
//! - serde_avro_fast on the same generated types (what the services use only for records of
//!   another schema version);
//! - apache-avro, bytes <-> `Value` only, without any mapping (its cheapest possible use).
//!
//! How the generated codec was chosen (the hand-written codec it replaced, measured with this
//! harness before it was removed) is in the README's performance section.

// apache-avro 0.22 deprecates the datum helpers in favour of a reader API with more ceremony.
#![allow(deprecated)]

use std::hint::black_box;
use std::time::Instant;

use contract::{MappingError, Record, codec};
use domain::command::{BatchItem, Command, CommandEnvelope, CreateUser};
use domain::event::{Event, EventEnvelope};
use domain::reply::{ItemOutcome, Outcome, Rejection, RejectionReason, Reply};
use domain::time::Timestamp;
use domain::user::{Age, Email, Locale, Name, User};
use uuid::Uuid;

const RUNS: usize = 9;

fn user(i: usize) -> User {
    User {
        id: Uuid::now_v7(),
        email: Email::parse(&format!("someone.{i}@example.com")).expect("valid"),
        name: Name::parse("Ada Lovelace Byron").expect("valid"),
        age: Some(Age::parse(36).expect("valid")),
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
        version: 3,
        locale: Some(Locale::parse("en-GB").expect("valid")),
    }
}

fn event(i: usize) -> EventEnvelope {
    EventEnvelope {
        event_id: Uuid::now_v7(),
        command_id: Uuid::now_v7(),
        correlation_id: Uuid::now_v7(),
        occurred_at: Timestamp::now(),
        principal: Some("jwt:developer".into()),
        event: Event::Updated(user(i)),
    }
}

fn batch(rows: usize) -> CommandEnvelope {
    let items = (0..rows)
        .map(|i| BatchItem {
            command_id: Uuid::now_v7(),
            line: i as u64 + 2,
            upsert: false,
            user: CreateUser {
                email: format!("row.{i}@example.com"),
                name: "Grace Hopper".into(),
                age: Some(40),
                locale: None,
            },
        })
        .collect();
    CommandEnvelope {
        command_id: Uuid::now_v7(),
        correlation_id: Uuid::now_v7(),
        requester: "import-worker".into(),
        issued_at: Timestamp::now(),
        principal: Some("jwt:developer".into()),
        request_digest: None,
        command: Command::Batch(items),
    }
}

fn outcomes(rows: usize) -> Reply {
    let items = (0..rows)
        .map(|i| ItemOutcome {
            command_id: Uuid::now_v7(),
            line: i as u64 + 2,
            result: if i % 10 == 0 {
                Err(Rejection::new(RejectionReason::EmailTaken, "row.1@example.com is already taken"))
            } else {
                Ok(Uuid::now_v7())
            },
        })
        .collect();
    Reply {
        command_id: Uuid::now_v7(),
        correlation_id: Uuid::now_v7(),
        requester: "import-worker".into(),
        outcome: Outcome::Batch(items),
        request_digest: None,
    }
}

/// Median nanoseconds per item of `f` over `items`.
fn measure<T>(items: &[T], mut f: impl FnMut(&T)) -> f64 {
    let mut runs: Vec<f64> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            for item in items {
                f(item);
            }
            started.elapsed().as_nanos() as f64 / items.len() as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[RUNS / 2]
}

/// The codecs on one record type: encode and decode, ns per record.
fn compare<D, R>(label: &str, values: &[D])
where
    D: Clone + PartialEq + std::fmt::Debug + TryFrom<R, Error = MappingError>,
    R: Record + TryFrom<D, Error = MappingError>,
{
    // The services hand over what they send (nothing to copy); the clone is the bench's own
    // cost, so it is measured alone and taken off.
    let to_record = |d: &D| R::try_from(d.clone()).expect("maps");
    let from_record = |r: R| D::try_from(r).expect("maps back");
    let records: Vec<R> = values.iter().map(to_record).collect();
    let bytes: Vec<Vec<u8>> = records
        .iter()
        .map(|r| {
            let mut out = Vec::new();
            codec::Encode::encode(r, &mut out);
            out
        })
        .collect();
    let fast_schema: serde_avro_fast::Schema = R::SCHEMA.parse().expect("parses");
    let mut config = serde_avro_fast::ser::SerializerConfig::new(&fast_schema);
    let apache_schema = apache_avro::Schema::parse_str(R::SCHEMA).expect("parses");
    let values_of =
        |b: &Vec<u8>| apache_avro::from_avro_datum(&apache_schema, &mut b.as_slice(), None).expect("decodes");
    let apache_values: Vec<apache_avro::types::Value> = bytes.iter().map(values_of).collect();
    // Every codec writes the same bytes and reads them back to the same value.
    for ((d, r), b) in values.iter().zip(&records).zip(&bytes) {
        assert_eq!(&serde_avro_fast::to_datum_vec(r, &mut config).expect("encodes"), b, "{label}");
        assert_eq!(&from_record(codec::decode::<R>(b).expect("decodes")), d, "{label}");
    }

    let mut out = Vec::with_capacity(64 * 1024);
    let clone = measure(values, |d| {
        black_box(d.clone());
    });
    let generated_encode = measure(values, |d| {
        out.clear();
        codec::Encode::encode(&to_record(d), &mut out);
        black_box(&out);
    }) - clone;
    let generated_decode = measure(&bytes, |b| {
        black_box(from_record(codec::decode::<R>(b).expect("decodes")));
    });
    let codec_encode = measure(&records, |r| {
        out.clear();
        codec::Encode::encode(r, &mut out);
        black_box(&out);
    });
    let codec_decode = measure(&bytes, |b| {
        black_box(codec::decode::<R>(b).expect("decodes"));
    });
    let fast_encode = measure(values, |d| {
        out.clear();
        out = serde_avro_fast::to_datum(&to_record(d), std::mem::take(&mut out), &mut config).expect("encodes");
        black_box(&out);
    }) - clone;
    let fast_decode = measure(&bytes, |b| {
        black_box(from_record(serde_avro_fast::from_datum_slice::<R>(b, &fast_schema).expect("decodes")));
    });
    let value_clone = measure(&apache_values, |v| {
        black_box(v.clone());
    });
    let apache_encode = measure(&apache_values, |v| {
        black_box(apache_avro::to_avro_datum(&apache_schema, v.clone()).expect("encodes"));
    }) - value_clone;
    let apache_decode = measure(&bytes, |b| {
        black_box(values_of(b));
    });

    let row = |name: &str, encode: f64, decode: f64| {
        println!(
            "  {name:<36} {encode:>10.0} ns {:>6.2}x  {decode:>10.0} ns {:>6.2}x",
            encode / generated_encode,
            decode / generated_decode
        );
    };
    println!("\n{label} ({} bytes):", bytes[0].len());
    println!("  {:<36} {:>13} {:>7}  {:>13} {:>7}", "codec", "encode", "ratio", "decode", "ratio");
    row("generated, domain <-> bytes", generated_encode, generated_decode);
    row("  the codec alone, record <-> bytes", codec_encode, codec_decode);
    row("serde_avro_fast, domain <-> bytes", fast_encode, fast_decode);
    row("apache-avro, Value <-> bytes", apache_encode, apache_decode);
}

fn main() {
    println!("median of {RUNS} runs; ns per record; ratio to the generated codec (domain <-> bytes)");
    let events: Vec<EventEnvelope> = (0..20_000).map(event).collect();
    compare::<EventEnvelope, contract::events::UserEvent>("user event", &events);
    let commands: Vec<CommandEnvelope> = (0..40).map(|_| batch(500)).collect();
    compare::<CommandEnvelope, contract::commands::UserCommand>("command: a batch of 500 import rows", &commands);
    let replies: Vec<Reply> = (0..40).map(|_| outcomes(500)).collect();
    compare::<Reply, contract::replies::UserCommandReply>("reply: 500 row outcomes", &replies);
}
