//! Avro in Confluent's wire format through the Schema Registry (`schema_registry_converter`):
//! values are encoded with the schema registered under `<topic>-value`, and decoded with
//! whatever schema id the record carries.

use std::sync::Arc;
use std::time::Duration;

use apache_avro::types::Value;
use clap::Args;
use dashmap::DashMap;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{SchemaType, SubjectNameStrategy, SuppliedSchema};

use crate::kafka::{Delivered, HandleError, Incoming, ProduceError, Producer, Record};

/// Where the Schema Registry is.
#[derive(Debug, Clone, Args)]
pub struct RegistryConfig {
    /// Base URL of a Confluent-compatible Schema Registry.
    #[arg(long = "schema-registry-url", env = "SCHEMA_REGISTRY_URL", default_value = "http://127.0.0.1:8081")]
    pub url: String,
}

/// Why a record could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The registry is unreachable or failing: try again later.
    #[error("schema registry unavailable: {0}")]
    Unavailable(String),
    /// The record can never be decoded (not Confluent Avro, unknown schema id, wrong shape).
    #[error("undecodable record: {0}")]
    Invalid(String),
}

impl CodecError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// A cheap `Clone` handle; clones share the registry caches.
#[derive(Clone)]
pub struct AvroCodec {
    url: String,
    encoder: Arc<AvroEncoder>,
    decoder: Arc<AvroDecoder>,
    /// One subject strategy per topic, so the schema text is not copied per record.
    strategies: Arc<DashMap<String, Arc<SubjectNameStrategy>>>,
}

impl std::fmt::Debug for AvroCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroCodec").field("url", &self.url).finish_non_exhaustive()
    }
}

impl AvroCodec {
    pub fn new(config: &RegistryConfig) -> Self {
        let url = config.url.trim_end_matches('/').to_owned();
        Self {
            encoder: Arc::new(AvroEncoder::new(SrSettings::new(url.clone()))),
            decoder: Arc::new(AvroDecoder::new(SrSettings::new(url.clone()))),
            url,
            strategies: Arc::default(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Fails with a clear error if the registry does not answer within `timeout`.
    pub async fn check(&self, timeout: Duration) -> Result<(), CodecError> {
        let unavailable =
            |e: String| CodecError::Unavailable(format!("cannot reach the schema registry at {}: {e}", self.url));
        let client = reqwest::Client::builder().timeout(timeout).build().map_err(|e| unavailable(e.to_string()))?;
        let response =
            client.get(format!("{}/subjects", self.url)).send().await.map_err(|e| unavailable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("GET /subjects answered {}", response.status())));
        }
        Ok(())
    }

    /// Registers `schema` under `<topic>-value` (if needed) and caches it, so encodes for `topic`
    /// need no network afterwards; returns its id. Call it at startup for every topic written or
    /// read: the id tells which records have exactly this schema (see [`AvroCodec::decode_direct`]).
    pub async fn prepare(&self, topic: &str, schema: &'static str) -> Result<u32, CodecError> {
        let strategy = self.strategy(topic, schema);
        let subject = strategy.get_subject().map_err(|e| CodecError::Invalid(e.to_string()))?;
        self.encoder
            .get_schema_and_id(&subject, (*strategy).clone())
            .await
            .map(|registered| registered.id)
            .map_err(|e| self.classify(e))
    }

    /// A record in Confluent's wire format with schema `id`, its datum written by `write`.
    pub fn encode_direct(id: u32, write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.push(0);
        out.extend_from_slice(&id.to_be_bytes());
        write(&mut out);
        out
    }

    /// Decodes a consumed message: directly with `read` when it carries schema `id` (ours),
    /// otherwise through the registry with `generic` (an older or newer compatible writer).
    pub async fn decode_direct<T>(
        &self,
        message: &Incoming,
        id: u32,
        read: impl FnOnce(&[u8]) -> Result<T, String>,
        generic: impl FnOnce(Value) -> Result<T, String>,
    ) -> Result<T, HandleError> {
        match message.payload.as_deref() {
            Some([0, a, b, c, d, datum @ ..]) if u32::from_be_bytes([*a, *b, *c, *d]) == id => {
                read(datum).map_err(HandleError::permanent)
            }
            _ => generic(self.decode_message(message).await?).map_err(HandleError::permanent),
        }
    }

    /// Encodes `value` with `schema` (registered under `<topic>-value` on first use).
    pub async fn encode(&self, topic: &str, schema: &'static str, value: Value) -> Result<Vec<u8>, CodecError> {
        let strategy = self.strategy(topic, schema);
        self.encoder.encode_value(value, &strategy).await.map_err(|e| self.classify(e))
    }

    /// Decodes a record in Confluent's wire format with the schema its id names.
    pub async fn decode(&self, payload: Option<&[u8]>) -> Result<Value, CodecError> {
        let Some(bytes) = payload else {
            return Err(CodecError::Invalid("the record has no value".into()));
        };
        if bytes.len() < 5 || bytes[0] != 0 {
            return Err(CodecError::Invalid("not in Confluent's Avro wire format (magic byte 0, schema id)".into()));
        }
        self.decoder.decode(Some(bytes)).await.map(|decoded| decoded.value).map_err(|e| self.classify(e))
    }

    /// Decodes a consumed message for a handler: a registry outage is worth a retry, a record
    /// that cannot be decoded is a permanent failure.
    pub async fn decode_message(&self, message: &Incoming) -> Result<Value, HandleError> {
        self.decode(message.payload.as_deref())
            .await
            .map_err(|e| if e.is_retryable() { HandleError::retryable(e) } else { HandleError::permanent(e) })
    }

    fn strategy(&self, topic: &str, schema: &'static str) -> Arc<SubjectNameStrategy> {
        if let Some(strategy) = self.strategies.get(topic) {
            return Arc::clone(&strategy);
        }
        let supplied = SuppliedSchema::new(None, SchemaType::Avro, schema.to_owned());
        let strategy = Arc::new(SubjectNameStrategy::TopicNameStrategyWithSchema(topic.to_owned(), false, supplied));
        self.strategies.insert(topic.to_owned(), Arc::clone(&strategy));
        strategy
    }

    /// Transport failures and 5xx answers are worth retrying; the converter caches non-retriable
    /// answers, so those caches are cleared to let the retry reach the registry.
    fn classify(&self, error: SRCError) -> CodecError {
        let text = error.to_string();
        let server_side = text.contains("status 5");
        if error.retriable || server_side {
            self.encoder.remove_errors_from_cache();
            self.decoder.remove_errors_from_cache();
            CodecError::Unavailable(text)
        } else {
            CodecError::Invalid(text)
        }
    }
}

/// Reads a datum of our own schema directly (see [`AvroCodec::decode_direct`]).
pub type ReadDirect<T> = fn(&[u8]) -> Result<T, String>;

/// Why an Avro record could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Produce(#[from] ProduceError),
}

impl AvroCodec {
    /// Encodes `value` with `schema` for `topic` and sends it keyed by `key` through `producer`;
    /// resolves once the broker acknowledged it.
    pub async fn publish(
        &self,
        producer: &Producer,
        topic: &str,
        schema: &'static str,
        key: &[u8],
        value: Value,
    ) -> Result<Delivered, PublishError> {
        let bytes = self.encode(topic, schema, value).await?;
        Ok(producer.send(Record::new(topic, &bytes).key(key)).await?)
    }
}

/// A handler that decodes every record and hands the result to `apply`: what a read model of a
/// topic (a projection, a job status book) needs. Records with the schema id given to
/// [`Apply::direct`] are read directly, others through the registry and `parse`. A record that
/// cannot be read goes to the dead-letter topic.
pub struct Apply<T, F> {
    codec: AvroCodec,
    direct: Option<(u32, ReadDirect<T>)>,
    parse: fn(Value) -> Result<T, String>,
    apply: F,
}

impl<T, F> Apply<T, F> {
    pub fn new(codec: AvroCodec, parse: fn(Value) -> Result<T, String>, apply: F) -> Self {
        Self { codec, direct: None, parse, apply }
    }

    /// Reads records carrying schema `id` with `read` (see [`AvroCodec::decode_direct`]).
    pub fn direct(mut self, id: u32, read: ReadDirect<T>) -> Self {
        self.direct = Some((id, read));
        self
    }
}

impl<T, F> std::fmt::Debug for Apply<T, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Apply").field("type", &std::any::type_name::<T>()).finish_non_exhaustive()
    }
}

impl<T: Send, F: Fn(T) + Send + Sync> crate::kafka::Handler for Apply<T, F> {
    async fn handle(&self, message: &Incoming) -> Result<(), HandleError> {
        let item = match self.direct {
            Some((id, read)) => self.codec.decode_direct(message, id, read, self.parse).await?,
            None => (self.parse)(self.codec.decode_message(message).await?).map_err(HandleError::permanent)?,
        };
        (self.apply)(item);
        Ok(())
    }
}
