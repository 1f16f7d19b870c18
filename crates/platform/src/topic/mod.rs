//! Typed topics: a topic, its record type and its registered schema, bound once at startup.
//!
//! A [`TopicName<R>`] is a configured name that already says which record the topic carries;
//! binding it ([`Topic::bind`]) registers `R`'s schema under `<topic>-value` at the project's
//! compatibility level and keeps the id. From then on the [`Topic<R>`] publishes and decodes
//! `R`s (or the domain types that map to them), and nothing else compiles: pairing a schema
//! with the wrong topic is a type error.
//!
//! Records carry their writer's schema id (Confluent's wire format: byte 0, then the id,
//! big-endian, then the Avro datum). A record with this version's id is read by the generated
//! codec directly; one written with another version of the schema (older history, a newer
//! writer during a rolling upgrade) is read with its writer's schema, fetched from the registry
//! once per id, and resolved by name (`contract::WriterSchema`).

mod error;
mod set;

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;
use std::sync::Arc;

use contract::{MappingError, Record, WriterSchema, codec};
use dashmap::DashMap;

use crate::kafka::{Delivered, HandleError, Handler, Incoming, Producer, Record as KafkaRecord};
use crate::registry::{Compatibility, Registry, RegistryError};

pub use error::{DecodeError, PublishError};
pub use set::Topics;

/// The level every project subject is kept at.
pub const COMPATIBILITY: Compatibility = Compatibility::FullTransitive;

/// A configured topic name and the record it carries.
pub struct TopicName<R> {
    name: String,
    record: PhantomData<fn() -> R>,
}

impl<R> TopicName<R> {
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The registry subject of its values (Confluent's topic name strategy).
    pub fn subject(&self) -> String {
        format!("{}-value", self.name)
    }
}

/// A valid Kafka topic name: 1 to 249 of `[A-Za-z0-9._-]`, not `.` or `..`.
impl<R> FromStr for TopicName<R> {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let valid = (1..=249).contains(&name.len())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            && name != "."
            && name != "..";
        if !valid {
            return Err(format!("{name:?} is not a valid topic name (1-249 of A-Z a-z 0-9 . _ -)"));
        }
        Ok(Self { name: name.to_owned(), record: PhantomData })
    }
}

impl<R> Clone for TopicName<R> {
    fn clone(&self) -> Self {
        Self { name: self.name.clone(), record: PhantomData }
    }
}

impl<R> fmt::Debug for TopicName<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.name)
    }
}

impl<R> fmt::Display for TopicName<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The writer schemas met so far, by id: each is fetched from the registry once.
#[derive(Debug)]
struct WriterSchemas {
    registry: Registry,
    by_id: DashMap<u32, Arc<WriterSchema>>,
}

impl WriterSchemas {
    fn new(registry: Registry) -> Self {
        Self { registry, by_id: DashMap::new() }
    }

    async fn get(&self, id: u32) -> Result<Arc<WriterSchema>, DecodeError> {
        if let Some(schema) = self.by_id.get(&id).map(|s| Arc::clone(&s)) {
            return Ok(schema);
        }
        let text = self.registry.schema(id).await.map_err(|source| DecodeError::Registry { id, source })?;
        let schema = Arc::new(WriterSchema::parse(&text).map_err(|source| DecodeError::WriterSchema { id, source })?);
        self.by_id.insert(id, Arc::clone(&schema));
        Ok(schema)
    }
}

/// A topic bound to its record type and this version's schema id.
///
/// A topic takes only its own record, or a type that maps to it:
///
/// ```no_run
/// # async fn f(topics: platform::topic::Topics, message: platform::kafka::Incoming) {
/// let event: contract::events::UserEvent = topics.user_events.decode(&message).await.unwrap();
/// # }
/// ```
///
/// Reading the events topic as commands does not compile:
///
/// ```compile_fail
/// # async fn f(topics: platform::topic::Topics, message: platform::kafka::Incoming) {
/// let command: contract::commands::UserCommand = topics.user_events.decode(&message).await.unwrap();
/// # }
/// ```
///
/// Nor does writing a command on it:
///
/// ```compile_fail
/// # async fn f(topics: platform::topic::Topics, producer: platform::kafka::Producer, command: contract::commands::UserCommand) {
/// topics.user_events.publish(&producer, b"key", command).await.unwrap();
/// # }
/// ```
pub struct Topic<R> {
    name: TopicName<R>,
    id: u32,
    writers: Arc<WriterSchemas>,
}

impl<R> Clone for Topic<R> {
    fn clone(&self) -> Self {
        Self { name: self.name.clone(), id: self.id, writers: Arc::clone(&self.writers) }
    }
}

impl<R> fmt::Debug for Topic<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topic").field("name", &self.name).field("schema_id", &self.id).finish()
    }
}

impl<R: Record> Topic<R> {
    /// Sets the subject of `name` to the project's compatibility level and registers `R`'s
    /// schema under it (refused if incompatible with what the subject holds).
    pub async fn bind(name: &TopicName<R>, registry: &Registry) -> Result<Self, RegistryError> {
        Self::bind_sharing(name, &Arc::new(WriterSchemas::new(registry.clone()))).await
    }

    /// [`Topic::bind`], with a cache of writer schemas shared with other topics.
    async fn bind_sharing(name: &TopicName<R>, writers: &Arc<WriterSchemas>) -> Result<Self, RegistryError> {
        let subject = name.subject();
        writers.registry.set_compatibility(&subject, COMPATIBILITY).await?;
        let id = writers.registry.register(&subject, R::SCHEMA).await?;
        Ok(Self { name: name.clone(), id, writers: Arc::clone(writers) })
    }

    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The registry id of this version's schema for the topic.
    pub fn schema_id(&self) -> u32 {
        self.id
    }

    /// `message` (an `R`, or a domain type that maps to one) as a record of this topic, in
    /// Confluent's wire format.
    pub fn encode<M>(&self, message: M) -> Result<Vec<u8>, MappingError>
    where
        M: TryInto<R>,
        MappingError: From<M::Error>,
    {
        let record = message.try_into()?;
        let mut out = Vec::with_capacity(256);
        out.push(0);
        out.extend_from_slice(&self.id.to_be_bytes());
        codec::Encode::encode(&record, &mut out);
        Ok(out)
    }

    /// Encodes `message` and sends it keyed by `key`, with the trace context of the current
    /// span; resolves once the broker acknowledged it.
    pub async fn publish<M>(&self, producer: &Producer, key: &[u8], message: M) -> Result<Delivered, PublishError>
    where
        M: TryInto<R>,
        MappingError: From<M::Error>,
    {
        let bytes = self.encode(message)?;
        let trace = crate::trace::TraceHeaders::current();
        Ok(producer.send(KafkaRecord::new(self.name(), &bytes).key(key).trace(&trace)).await?)
    }

    /// A consumed record as an `M` (the domain type `R` maps to).
    pub async fn decode<M>(&self, message: &Incoming) -> Result<M, DecodeError>
    where
        M: TryFrom<R>,
        MappingError: From<M::Error>,
    {
        let record = self.decode_record(message.payload.as_deref()).await?;
        Ok(M::try_from(record).map_err(MappingError::from)?)
    }

    /// A record as the contract's `R`: directly if it has this version's schema, otherwise with
    /// its writer's schema, resolved by name.
    pub async fn decode_record(&self, payload: Option<&[u8]>) -> Result<R, DecodeError> {
        let bytes = payload.ok_or(DecodeError::NoValue)?;
        let [0, a, b, c, d, datum @ ..] = bytes else { return Err(DecodeError::NotConfluent) };
        let id = u32::from_be_bytes([*a, *b, *c, *d]);
        let malformed = |source| DecodeError::Malformed { id, source };
        if id == self.id {
            return codec::decode(datum).map_err(malformed);
        }
        self.writers.get(id).await?.read(datum).map_err(malformed)
    }

    /// A handler that decodes every record as an `M` and hands it to `apply`: what a read model
    /// of the topic (a projection, a status book) needs. A record that cannot be read goes to
    /// the dead-letter topic (or, in a tail, is logged and skipped); a registry outage retries.
    pub fn applying<M, F>(&self, apply: F) -> Apply<R, M, F>
    where
        M: TryFrom<R> + Send,
        MappingError: From<M::Error>,
        F: Fn(M) + Send + Sync,
    {
        Apply { topic: self.clone(), apply, message: PhantomData }
    }
}

/// See [`Topic::applying`].
pub struct Apply<R, M, F> {
    topic: Topic<R>,
    apply: F,
    message: PhantomData<fn() -> M>,
}

impl<R, M, F> fmt::Debug for Apply<R, M, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Apply").field("topic", &self.topic).finish_non_exhaustive()
    }
}

impl<R, M, F> Handler for Apply<R, M, F>
where
    R: Record,
    M: TryFrom<R> + Send,
    MappingError: From<M::Error>,
    F: Fn(M) + Send + Sync,
{
    async fn handle(&self, message: &Incoming) -> Result<(), HandleError> {
        (self.apply)(self.topic.decode(message).await?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_are_checked_as_kafka_checks_them() {
        assert!("users.events".parse::<TopicName<()>>().is_ok());
        for bad in ["", ".", "..", "has space", "ümlaut", &"x".repeat(250)] {
            let error = bad.parse::<TopicName<()>>().unwrap_err();
            assert!(error.contains("not a valid topic name"), "{bad:?}: {error}");
        }
        assert_eq!("users.events".parse::<TopicName<()>>().unwrap().subject(), "users.events-value");
    }
}
