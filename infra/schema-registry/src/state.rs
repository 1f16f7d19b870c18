//! The registry's in-memory index, built only by applying [`Change`]s: the same code rebuilds
//! it from `_schemas` on start and keeps it current after each write.

use std::collections::{BTreeMap, HashMap};

use crate::error::RegistryError;
use crate::record::{Change, Key, Reference, SchemaValue};
use crate::schema::Level;

/// Which version of a subject a request means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VersionSpec {
    Latest,
    Number(u32),
}

impl VersionSpec {
    /// `latest`, `-1` or a number in 1..=2^31-1, as Confluent accepts them.
    pub(crate) fn parse(text: &str) -> Result<Self, RegistryError> {
        match text {
            "latest" | "-1" => Ok(Self::Latest),
            _ => match text.parse::<u32>() {
                Ok(n) if (1..=i32::MAX as u32).contains(&n) => Ok(Self::Number(n)),
                _ => Err(RegistryError::InvalidVersion(text.to_owned())),
            },
        }
    }
}

/// A schema by id: its text and the references it was registered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredSchema {
    pub(crate) schema: String,
    pub(crate) schema_type: Option<String>,
    pub(crate) references: Vec<Reference>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    /// subject -> version -> value, soft-deleted versions included.
    subjects: BTreeMap<String, BTreeMap<u32, SchemaValue>>,
    /// id -> schema, and how many versions use it (an id lives while any version refers to it).
    schemas: HashMap<u32, (StoredSchema, usize)>,
    /// (text, references) -> id: the same schema gets the same id in every subject.
    ids: HashMap<(String, Vec<Reference>), u32>,
    global_level: Option<Level>,
    subject_levels: HashMap<String, Level>,
    max_id: u32,
}

impl State {
    pub(crate) fn apply(&mut self, change: Change) {
        match change {
            Change::Schema(Key::Schema { subject, version, .. }, value) => {
                let versions = self.subjects.entry(subject.clone()).or_default();
                let previous = match value {
                    Some(value) => {
                        let id = value.id;
                        let stored = StoredSchema {
                            schema: value.schema.clone(),
                            schema_type: value.schema_type.clone(),
                            references: value.references.clone(),
                        };
                        let previous = versions.insert(version, value);
                        self.max_id = self.max_id.max(id);
                        self.ids.entry((stored.schema.clone(), stored.references.clone())).or_insert(id);
                        self.schemas.entry(id).or_insert((stored, 0)).1 += 1;
                        previous
                    }
                    None => {
                        let previous = versions.remove(&version);
                        if versions.is_empty() {
                            self.subjects.remove(&subject);
                        }
                        previous
                    }
                };
                if let Some(previous) = previous {
                    self.release(previous.id);
                }
            }
            Change::Config(Key::Config { subject, .. }, value) => {
                let level = value.map(|v| v.compatibility_level);
                match (subject, level) {
                    (None, level) => self.global_level = level,
                    (Some(subject), Some(level)) => {
                        self.subject_levels.insert(subject, level);
                    }
                    (Some(subject), None) => {
                        self.subject_levels.remove(&subject);
                    }
                }
            }
            // A key of one kind with a value of the other cannot be built by Change::decode.
            Change::Schema(Key::Config { .. }, _) | Change::Config(Key::Schema { .. }, _) => {}
        }
    }

    fn release(&mut self, id: u32) {
        if let Some((stored, users)) = self.schemas.get_mut(&id) {
            *users -= 1;
            if *users == 0 {
                let key = (stored.schema.clone(), stored.references.clone());
                self.schemas.remove(&id);
                self.ids.remove(&key);
            }
        }
    }

    pub(crate) fn subjects(&self, include_deleted: bool) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(_, versions)| include_deleted || versions.values().any(|v| !v.deleted))
            .map(|(subject, _)| subject.clone())
            .collect()
    }

    /// The subject's versions, oldest first; 40401 if it has none (visible).
    pub(crate) fn versions(&self, subject: &str, include_deleted: bool) -> Result<Vec<&SchemaValue>, RegistryError> {
        let versions: Vec<&SchemaValue> = self
            .subjects
            .get(subject)
            .map(|vs| vs.values().filter(|v| include_deleted || !v.deleted).collect())
            .unwrap_or_default();
        if versions.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        Ok(versions)
    }

    pub(crate) fn version(
        &self,
        subject: &str,
        spec: VersionSpec,
        include_deleted: bool,
    ) -> Result<&SchemaValue, RegistryError> {
        let versions = self.versions(subject, include_deleted)?;
        let found = match spec {
            VersionSpec::Latest => versions.last().copied(),
            VersionSpec::Number(n) => versions.into_iter().find(|v| v.version == n),
        };
        found.ok_or_else(|| RegistryError::VersionNotFound(spec))
    }

    /// Every version ever written for `subject`, soft-deleted ones included.
    pub(crate) fn all_versions(&self, subject: &str) -> Vec<&SchemaValue> {
        self.subjects.get(subject).map(|vs| vs.values().collect()).unwrap_or_default()
    }

    pub(crate) fn schema(&self, id: u32) -> Option<&StoredSchema> {
        self.schemas.get(&id).map(|(stored, _)| stored)
    }

    pub(crate) fn id_of(&self, schema: &str, references: &[Reference]) -> Option<u32> {
        self.ids.get(&(schema.to_owned(), references.to_vec())).copied()
    }

    pub(crate) fn next_id(&self) -> u32 {
        self.max_id + 1
    }

    /// One past the highest version ever used, so a soft-deleted number is never reused.
    pub(crate) fn next_version(&self, subject: &str) -> u32 {
        self.subjects.get(subject).and_then(|vs| vs.keys().next_back()).map_or(1, |v| v + 1)
    }

    pub(crate) fn global_level(&self) -> Option<Level> {
        self.global_level
    }

    pub(crate) fn subject_level(&self, subject: &str) -> Option<Level> {
        self.subject_levels.get(subject).copied()
    }

    /// (subject, version) pairs that use schema `id`, live ones unless `include_deleted`.
    pub(crate) fn usages(&self, id: u32, include_deleted: bool) -> Vec<(String, u32)> {
        self.subjects
            .values()
            .flat_map(|vs| vs.values())
            .filter(|v| v.id == id && (include_deleted || !v.deleted))
            .map(|v| (v.subject.clone(), v.version))
            .collect()
    }

    /// Ids of the schemas whose references point at `subject` version `version`.
    pub(crate) fn referenced_by(&self, subject: &str, version: u32) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .schemas
            .iter()
            .filter(|(_, (stored, _))| stored.references.iter().any(|r| r.subject == subject && r.version == version))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ConfigValue;

    fn put(state: &mut State, subject: &str, version: u32, id: u32, schema: &str, deleted: bool) {
        let value = SchemaValue {
            subject: subject.into(),
            version,
            id,
            schema_type: None,
            references: vec![],
            schema: schema.into(),
            deleted,
        };
        state.apply(Change::Schema(Key::schema(subject, version), Some(value)));
    }

    #[test]
    fn ids_are_global_and_shared_by_identical_schemas() {
        let mut state = State::default();
        put(&mut state, "a", 1, 1, "\"string\"", false);
        put(&mut state, "b", 1, 1, "\"string\"", false);
        assert_eq!(state.id_of("\"string\"", &[]), Some(1));
        assert_eq!(state.next_id(), 2);
        assert_eq!(state.usages(1, false), [("a".to_owned(), 1), ("b".to_owned(), 1)]);
    }

    #[test]
    fn soft_deleted_versions_are_hidden_unless_asked_for_and_their_numbers_not_reused() {
        let mut state = State::default();
        put(&mut state, "s", 1, 1, "\"int\"", false);
        put(&mut state, "s", 2, 2, "\"long\"", true);
        assert_eq!(state.version("s", VersionSpec::Latest, false).unwrap().version, 1);
        assert_eq!(state.version("s", VersionSpec::Latest, true).unwrap().version, 2);
        assert!(matches!(state.version("s", VersionSpec::Number(2), false), Err(RegistryError::VersionNotFound(_))));
        assert_eq!(state.next_version("s"), 3);
        assert_eq!(state.schema(2).map(|s| s.schema.as_str()), Some("\"long\""), "ids outlive soft deletes");
    }

    #[test]
    fn a_tombstone_removes_the_version_and_the_id_once_unused() {
        let mut state = State::default();
        put(&mut state, "s", 1, 4, "\"int\"", true);
        state.apply(Change::Schema(Key::schema("s", 1), None));
        assert!(state.schema(4).is_none());
        assert!(matches!(state.versions("s", true), Err(RegistryError::SubjectNotFound(_))));
        assert_eq!(state.next_id(), 5, "a hard-deleted id is not handed out again");
    }

    #[test]
    fn configs_apply_globally_and_per_subject() {
        let mut state = State::default();
        let full = Some(ConfigValue { compatibility_level: Level::Full });
        state.apply(Change::Config(Key::config(None), full.clone()));
        state.apply(Change::Config(Key::config(Some("s")), Some(ConfigValue { compatibility_level: Level::None })));
        assert_eq!((state.global_level(), state.subject_level("s")), (Some(Level::Full), Some(Level::None)));
        state.apply(Change::Config(Key::config(Some("s")), None));
        assert_eq!(state.subject_level("s"), None);
    }

    #[test]
    fn versions_parse_like_confluent() {
        assert_eq!(VersionSpec::parse("latest").unwrap(), VersionSpec::Latest);
        assert_eq!(VersionSpec::parse("-1").unwrap(), VersionSpec::Latest);
        assert_eq!(VersionSpec::parse("3").unwrap(), VersionSpec::Number(3));
        for bad in ["0", "-2", "x", "2147483648", ""] {
            assert!(matches!(VersionSpec::parse(bad), Err(RegistryError::InvalidVersion(_))), "{bad}");
        }
    }
}
