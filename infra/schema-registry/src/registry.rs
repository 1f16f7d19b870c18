//! The registry's operations. Reads answer from the in-memory [`State`]; every write is
//! serialised, appended to `_schemas` (and acknowledged by Kafka) before it is applied, so what
//! a client was told is always what a restart rebuilds.

use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use apache_avro::Schema;
use platform::KafkaConfig;
use platform::kafka::{Producer, Record, replay};

use crate::error::RegistryError;
use crate::record::{Change, ConfigValue, Key, Reference, SchemaValue};
use crate::schema::{self, Level, ParsedSchema};
use crate::state::{State, StoredSchema, VersionSpec};

/// A schema as clients submit it (register, lookup, compatibility test).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SchemaRequest {
    #[serde(default)]
    pub(crate) schema: String,
    #[serde(default)]
    pub(crate) schema_type: Option<String>,
    #[serde(default)]
    pub(crate) references: Vec<Reference>,
}

#[derive(Debug)]
pub(crate) struct Registry {
    state: RwLock<State>,
    /// Held across the Kafka append so writes are decided one at a time (one id per schema even
    /// under concurrent registrations). An async mutex: it is awaited, never blocks a thread.
    writer: tokio::sync::Mutex<()>,
    producer: Producer,
    topic: String,
    default_level: Level,
}

impl Registry {
    /// Rebuilds the index from every record of `topic`.
    pub(crate) async fn load(
        kafka: &KafkaConfig,
        topic: &str,
        producer: Producer,
        default_level: Level,
    ) -> anyhow::Result<Self> {
        let (state, records) = replay(kafka, topic, State::default(), |state, message| {
            let Some(key) = message.key.as_deref() else { return };
            match Change::decode(key, message.payload.as_deref()) {
                Ok(Some(change)) => state.apply(change),
                Ok(None) => {}
                Err(error) => tracing::warn!(offset = message.offset, %error, "skipping an unreadable record"),
            }
        })
        .await?;
        tracing::info!(%topic, records, subjects = state.subjects(true).len(), "schemas loaded");
        Ok(Self {
            state: RwLock::new(state),
            writer: tokio::sync::Mutex::new(()),
            producer,
            topic: topic.to_owned(),
            default_level,
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // Writers apply one change per lock; a panic cannot leave the index half-updated.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends the changes to Kafka, then applies them. Call with the writer lock held.
    async fn commit(&self, changes: Vec<Change>) -> Result<(), RegistryError> {
        for change in changes {
            let (key, value) = change.encode();
            let record = match &value {
                Some(value) => Record::new(&self.topic, value).key(&key),
                None => Record::tombstone(&self.topic, &key),
            };
            self.producer.send(record).await.map_err(RegistryError::Store)?;
            self.state.write().unwrap_or_else(PoisonError::into_inner).apply(change);
        }
        Ok(())
    }

    // ---- schemas -----------------------------------------------------------------------------

    /// Registers `request` under `subject` and returns its id; the same schema again returns the
    /// same id without a new version.
    pub(crate) async fn register(&self, subject: &str, request: &SchemaRequest) -> Result<u32, RegistryError> {
        let parsed = self.parse(request)?;
        let _writer = self.writer.lock().await;
        let change = {
            let state = self.read();
            let live = state.versions(subject, false).unwrap_or_default();
            if let Some(existing) =
                live.iter().find(|v| v.schema == parsed.canonical && v.references == request.references)
            {
                return Ok(existing.id);
            }
            let level = self.level_of(&state, subject);
            let existing = self.parse_versions(&state, &live)?;
            schema::check(level, &parsed.schema, &existing)
                .map_err(|details| RegistryError::Incompatible { subject: subject.to_owned(), details })?;
            let id = state.id_of(&parsed.canonical, &request.references).unwrap_or_else(|| state.next_id());
            let version = state.next_version(subject);
            Change::Schema(
                Key::schema(subject, version),
                Some(SchemaValue {
                    subject: subject.to_owned(),
                    version,
                    id,
                    schema_type: None,
                    references: request.references.clone(),
                    schema: parsed.canonical,
                    deleted: false,
                }),
            )
        };
        let Change::Schema(_, Some(value)) = &change else { unreachable!("built above") };
        let (id, version) = (value.id, value.version);
        self.commit(vec![change]).await?;
        tracing::info!(%subject, version, id, "schema registered");
        Ok(id)
    }

    /// The version of `subject` holding `request`'s schema (40401 / 40403 if none).
    pub(crate) fn lookup(
        &self,
        subject: &str,
        request: &SchemaRequest,
        include_deleted: bool,
    ) -> Result<SchemaValue, RegistryError> {
        let parsed = self.parse(request)?;
        let state = self.read();
        let versions = state.versions(subject, include_deleted)?;
        versions
            .into_iter()
            .find(|v| v.schema == parsed.canonical && v.references == request.references)
            .cloned()
            .ok_or_else(|| RegistryError::SchemaNotFound(format!("for subject '{subject}'")))
    }

    pub(crate) fn schema_by_id(&self, id: u32) -> Result<StoredSchema, RegistryError> {
        self.read().schema(id).cloned().ok_or_else(|| RegistryError::SchemaNotFound(id.to_string()))
    }

    /// (subject, version) pairs using schema `id`.
    pub(crate) fn usages(&self, id: u32, include_deleted: bool) -> Result<Vec<(String, u32)>, RegistryError> {
        self.schema_by_id(id)?;
        Ok(self.read().usages(id, include_deleted))
    }

    pub(crate) fn subjects(&self, include_deleted: bool) -> Vec<String> {
        self.read().subjects(include_deleted)
    }

    pub(crate) fn versions(&self, subject: &str, include_deleted: bool) -> Result<Vec<u32>, RegistryError> {
        Ok(self.read().versions(subject, include_deleted)?.into_iter().map(|v| v.version).collect())
    }

    pub(crate) fn version(
        &self,
        subject: &str,
        spec: VersionSpec,
        include_deleted: bool,
    ) -> Result<SchemaValue, RegistryError> {
        self.read().version(subject, spec, include_deleted).cloned()
    }

    pub(crate) fn referenced_by(&self, subject: &str, spec: VersionSpec) -> Result<Vec<u32>, RegistryError> {
        let state = self.read();
        let version = state.version(subject, spec, true)?.version;
        Ok(state.referenced_by(subject, version))
    }

    /// Whether `request` could be registered: against `version` only, or (None) against what
    /// the subject's level asks for. Returns the problems; empty means compatible.
    pub(crate) fn test_compatibility(
        &self,
        subject: &str,
        version: Option<VersionSpec>,
        request: &SchemaRequest,
    ) -> Result<Vec<String>, RegistryError> {
        let parsed = self.parse(request)?;
        let state = self.read();
        let level = self.level_of(&state, subject);
        let against = match version {
            None => state.versions(subject, false).unwrap_or_default(),
            Some(spec) => vec![state.version(subject, spec, false)?],
        };
        let existing = self.parse_versions(&state, &against)?;
        Ok(schema::check(level, &parsed.schema, &existing).err().unwrap_or_default())
    }

    // ---- deletes -----------------------------------------------------------------------------

    /// Soft-deletes every version (or, with `permanent`, removes already soft-deleted ones).
    pub(crate) async fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<u32>, RegistryError> {
        let _writer = self.writer.lock().await;
        let changes = {
            let state = self.read();
            let all = state.all_versions(subject);
            if all.is_empty() {
                return Err(RegistryError::SubjectNotFound(subject.to_owned()));
            }
            let live: Vec<&SchemaValue> = all.iter().copied().filter(|v| !v.deleted).collect();
            match (permanent, live.is_empty()) {
                (false, true) => return Err(RegistryError::SubjectSoftDeleted(subject.to_owned())),
                (true, false) => return Err(RegistryError::SubjectNotSoftDeleted(subject.to_owned())),
                (false, false) => live.iter().map(|v| soft_deleted(v)).collect::<Vec<_>>(),
                (true, true) => {
                    let mut changes: Vec<Change> =
                        all.iter().map(|v| Change::Schema(Key::schema(subject, v.version), None)).collect();
                    if state.subject_level(subject).is_some() {
                        changes.push(Change::Config(Key::config(Some(subject)), None));
                    }
                    changes
                }
            }
        };
        let versions = changes
            .iter()
            .filter_map(|c| match c.key() {
                Key::Schema { version, .. } => Some(*version),
                Key::Config { .. } => None,
            })
            .collect();
        self.commit(changes).await?;
        tracing::info!(%subject, permanent, "subject deleted");
        Ok(versions)
    }

    pub(crate) async fn delete_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
    ) -> Result<u32, RegistryError> {
        let _writer = self.writer.lock().await;
        let change = {
            let state = self.read();
            // Soft deletes address live versions (`latest` is the latest live one); permanent
            // deletes address soft-deleted ones.
            let value = state.version(subject, spec, permanent)?;
            if !state.referenced_by(subject, value.version).is_empty() {
                return Err(RegistryError::ReferenceExists(subject.to_owned(), value.version));
            }
            match (permanent, value.deleted) {
                (false, true) => return Err(RegistryError::VersionSoftDeleted(subject.to_owned(), value.version)),
                (true, false) => return Err(RegistryError::VersionNotSoftDeleted(subject.to_owned(), value.version)),
                (false, false) => soft_deleted(value),
                (true, true) => Change::Schema(Key::schema(subject, value.version), None),
            }
        };
        let Key::Schema { version, .. } = *change.key() else { unreachable!("schema change") };
        self.commit(vec![change]).await?;
        Ok(version)
    }

    // ---- compatibility levels ----------------------------------------------------------------

    pub(crate) fn global_level(&self) -> Level {
        self.read().global_level().unwrap_or(self.default_level)
    }

    /// The subject's own level; with `default_to_global`, the global one when it has none.
    pub(crate) fn subject_level(&self, subject: &str, default_to_global: bool) -> Result<Level, RegistryError> {
        let state = self.read();
        match state.subject_level(subject) {
            Some(level) => Ok(level),
            None if default_to_global => Ok(state.global_level().unwrap_or(self.default_level)),
            None => Err(RegistryError::SubjectLevelNotConfigured(subject.to_owned())),
        }
    }

    /// Sets the global level (`subject` None) or a subject's.
    pub(crate) async fn set_level(&self, subject: Option<&str>, level: Level) -> Result<(), RegistryError> {
        let _writer = self.writer.lock().await;
        self.commit(vec![Change::Config(Key::config(subject), Some(ConfigValue { compatibility_level: level }))]).await
    }

    /// Removes a subject's level and returns it.
    pub(crate) async fn delete_subject_level(&self, subject: &str) -> Result<Level, RegistryError> {
        let _writer = self.writer.lock().await;
        let level = self.subject_level(subject, false)?;
        self.commit(vec![Change::Config(Key::config(Some(subject)), None)]).await?;
        Ok(level)
    }

    // ---- helpers -----------------------------------------------------------------------------

    fn level_of(&self, state: &State, subject: &str) -> Level {
        state.subject_level(subject).or(state.global_level()).unwrap_or(self.default_level)
    }

    /// Parses a submitted schema, resolving its references from the registry.
    fn parse(&self, request: &SchemaRequest) -> Result<ParsedSchema, RegistryError> {
        match request.schema_type.as_deref() {
            None | Some("AVRO") => {}
            Some(other) => {
                return Err(RegistryError::InvalidSchema(format!(
                    "Invalid schema type {other}: this registry supports AVRO only"
                )));
            }
        }
        let texts = resolve_references(&self.read(), &request.references)?;
        schema::parse(&request.schema, &texts).map_err(|e| RegistryError::InvalidSchema(e.to_string()))
    }

    fn parse_versions(&self, state: &State, versions: &[&SchemaValue]) -> Result<Vec<Schema>, RegistryError> {
        versions
            .iter()
            .map(|v| {
                let texts = resolve_references(state, &v.references)?;
                schema::parse(&v.schema, &texts).map(|p| p.schema).map_err(|e| {
                    RegistryError::InvalidSchema(format!("stored version {} of {}: {e}", v.version, v.subject))
                })
            })
            .collect()
    }
}

fn soft_deleted(value: &SchemaValue) -> Change {
    Change::Schema(Key::schema(&value.subject, value.version), Some(SchemaValue { deleted: true, ..value.clone() }))
}

/// The schema texts of `references` and, transitively, of theirs.
fn resolve_references(state: &State, references: &[Reference]) -> Result<Vec<String>, RegistryError> {
    let mut texts = Vec::new();
    let mut pending: Vec<Reference> = references.to_vec();
    let mut seen = std::collections::HashSet::new();
    while let Some(reference) = pending.pop() {
        if !seen.insert((reference.subject.clone(), reference.version)) {
            continue;
        }
        let value = state.version(&reference.subject, VersionSpec::Number(reference.version), true).map_err(|_| {
            RegistryError::InvalidSchema(format!(
                "Invalid schema: reference {} (subject '{}' version {}) not found",
                reference.name, reference.subject, reference.version
            ))
        })?;
        texts.push(value.schema.clone());
        pending.extend(value.references.iter().cloned());
    }
    Ok(texts)
}
