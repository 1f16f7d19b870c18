//! A schema directory read as a whole.
//!
//! Each `*.avsc` at the top of the directory is the record of a topic. A named type used by
//! several of them is written once, in `types/<name>.avsc`, and referred to by its full name;
//! loading inlines its definition where a schema first uses it (later uses stay references), so
//! each topic's schema is self-contained, exactly as Avro, the registry and every other client
//! expect, while the source says each thing once.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::Error;
use crate::model::{self, PRIMITIVES, Schema};

/// The record of one topic, resolved.
#[derive(Debug, Clone)]
pub struct TopLevel {
    /// Where it was read from.
    pub file: PathBuf,
    /// The self-contained schema, as compact JSON: what is registered and what clients read.
    pub json: String,
    pub schema: Schema,
}

impl TopLevel {
    /// The record's full name (`usermgmt.events.UserEvent`).
    pub fn name(&self) -> &str {
        &self.schema.root
    }
}

/// Every topic record of a directory, in file name order.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub records: Vec<TopLevel>,
}

impl Catalog {
    /// Reads `dir/*.avsc` (topic records) and `dir/types/*.avsc` (shared named types).
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let shared = Shared::load(&dir.join("types"))?;
        let mut records = Vec::new();
        for file in avsc_files(dir)? {
            let path = file.display().to_string();
            let json = read_json(&file)?;
            let schema_error = |message: String| Error::Schema { path: path.clone(), message };
            let resolved = Inliner { shared: &shared, defined: HashSet::new(), in_shared: 0 }
                .inline(&json, None)
                .map_err(schema_error)?;
            let schema = Schema::parse(&resolved).map_err(schema_error)?;
            records.push(TopLevel { file, json: resolved.to_string(), schema });
        }
        let catalog = Self { records };
        catalog.check_one_meaning_per_name()?;
        Ok(catalog)
    }

    pub fn get(&self, full_name: &str) -> Option<&TopLevel> {
        self.records.iter().find(|r| r.name() == full_name)
    }

    /// A named type used by several records must mean the same in each (it does when it comes
    /// from `types/`; two files defining it inline must agree).
    fn check_one_meaning_per_name(&self) -> Result<(), Error> {
        let mut seen: BTreeMap<&str, (&model::Definition, &Path)> = BTreeMap::new();
        for record in &self.records {
            for definition in &record.schema.definitions {
                match seen.get(definition.full_name()) {
                    Some((first, file)) if !first.same_meaning(definition) => {
                        return Err(Error::Schema {
                            path: record.file.display().to_string(),
                            message: format!(
                                "{} differs from its definition in {}: define it once, in types/",
                                definition.full_name(),
                                file.display()
                            ),
                        });
                    }
                    _ => {
                        seen.insert(definition.full_name(), (definition, &record.file));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The shared named types of `types/`, by full name.
struct Shared(BTreeMap<String, Value>);

impl Shared {
    fn load(dir: &Path) -> Result<Self, Error> {
        let mut types = BTreeMap::new();
        if !dir.is_dir() {
            return Ok(Self(types));
        }
        for file in avsc_files(dir)? {
            let path = file.display().to_string();
            let json = read_json(&file)?;
            let schema_error = |message: String| Error::Schema { path: path.clone(), message };
            let map = json.as_object().ok_or_else(|| schema_error("a shared type must be a named type".into()))?;
            if map.get("namespace").is_none()
                && !map.get("name").and_then(Value::as_str).is_some_and(|n| n.contains('.'))
            {
                return Err(schema_error(
                    "a shared type needs a namespace: it is inlined into other namespaces".into(),
                ));
            }
            let name = model::declared_name(map, None).map_err(schema_error)?;
            if types.insert(name.clone(), json).is_some() {
                return Err(schema_error(format!("{name} is defined in two files")));
            }
        }
        Ok(Self(types))
    }
}

/// Replaces the first reference to each shared type by its definition.
struct Inliner<'a> {
    shared: &'a Shared,
    /// Full names defined so far in this document (Avro: define before use).
    defined: HashSet<String>,
    /// How deep inside an inlined shared definition the walk is.
    in_shared: usize,
}

impl Inliner<'_> {
    fn inline(&mut self, json: &Value, namespace: Option<&str>) -> Result<Value, String> {
        match json {
            Value::String(name) if PRIMITIVES.contains(&name.as_str()) => Ok(json.clone()),
            Value::String(name) => {
                let full = model::full_name(name, namespace);
                if self.defined.contains(&full) {
                    return Ok(json.clone());
                }
                match self.shared.0.get(&full) {
                    Some(definition) => {
                        self.in_shared += 1;
                        let inlined = self.inline(definition, None);
                        self.in_shared -= 1;
                        inlined
                    }
                    // Unknown: the model reports it with its full name.
                    None => Ok(json.clone()),
                }
            }
            Value::Array(branches) => {
                Ok(Value::Array(branches.iter().map(|b| self.inline(b, namespace)).collect::<Result<_, _>>()?))
            }
            Value::Object(map) => self.inline_object(map, namespace),
            other => Ok(other.clone()),
        }
    }

    fn inline_object(&mut self, map: &Map<String, Value>, namespace: Option<&str>) -> Result<Value, String> {
        let mut out = map.clone();
        match map.get("type") {
            Some(Value::String(kind)) if matches!(kind.as_str(), "record" | "error" | "enum" | "fixed") => {
                let full = model::declared_name(map, namespace)?;
                if self.in_shared == 0 && self.shared.0.contains_key(&full) {
                    return Err(format!("{full} is defined here and in types/: define it once"));
                }
                self.defined.insert(full.clone());
                if let Some(Value::Array(fields)) = map.get("fields") {
                    let inner = model::namespace_of(&full);
                    let mut resolved = Vec::with_capacity(fields.len());
                    for field in fields {
                        let mut field = field.as_object().cloned().ok_or("a field must be an object")?;
                        if let Some(ty) = field.get("type") {
                            let ty = self.inline(ty, inner)?;
                            field.insert("type".into(), ty);
                        }
                        resolved.push(Value::Object(field));
                    }
                    out.insert("fields".into(), Value::Array(resolved));
                }
            }
            Some(Value::String(kind)) if kind == "array" => {
                if let Some(items) = map.get("items") {
                    out.insert("items".into(), self.inline(items, namespace)?);
                }
            }
            Some(Value::String(kind)) if kind == "map" => {
                if let Some(values) = map.get("values") {
                    out.insert("values".into(), self.inline(values, namespace)?);
                }
            }
            Some(Value::String(_)) | None => {}
            Some(nested) => {
                out.insert("type".into(), self.inline(nested, namespace)?);
            }
        }
        Ok(Value::Object(out))
    }
}

/// The releases kept in `dir` (`releases/<n>/`), by number.
pub fn releases(dir: &Path) -> Vec<(u32, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut releases: Vec<(u32, PathBuf)> = entries
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let number = path.file_name()?.to_str()?.parse().ok()?;
            path.is_dir().then_some((number, path))
        })
        .collect();
    releases.sort();
    releases
}

fn avsc_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let io = |source| Error::Io { path: dir.display().to_string(), source };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?
        .into_iter()
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "avsc"))
        .collect();
    files.sort();
    Ok(files)
}

fn read_json(file: &Path) -> Result<Value, Error> {
    let path = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|source| Error::Io { path: path.clone(), source })?;
    serde_json::from_str(&text).map_err(|source| Error::Json { path, source })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn dir_with(files: &[(&str, Value)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("codegen-{}-{}", std::process::id(), rand_suffix()));
        for (name, json) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, json.to_string()).unwrap();
        }
        dir
    }

    fn rand_suffix() -> u128 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    }

    fn user() -> Value {
        json!({"type": "record", "name": "User", "namespace": "app", "fields": [
            {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "state", "type": {"type": "enum", "name": "State", "symbols": ["ON", "OFF"]}}]})
    }

    #[test]
    fn a_shared_type_is_inlined_at_its_first_use_and_referred_to_after() {
        let event = json!({"type": "record", "name": "Event", "namespace": "app.events", "fields": [
            {"name": "created", "type": "app.User"},
            {"name": "updated", "type": ["null", "app.User"], "default": null}]});
        let dir = dir_with(&[("types/user.avsc", user()), ("event.avsc", event)]);
        let catalog = Catalog::load(&dir).unwrap();
        assert_eq!(catalog.records.len(), 1, "types/ holds no topic record");
        let resolved: Value = serde_json::from_str(&catalog.records[0].json).unwrap();
        assert_eq!(resolved["fields"][0]["type"], user(), "the definition, at its first use");
        assert_eq!(resolved["fields"][1]["type"], json!(["null", "app.User"]), "a reference after");
        let names: Vec<&str> = catalog.records[0].schema.definitions.iter().map(|d| d.full_name()).collect();
        assert_eq!(names, ["app.events.Event", "app.User", "app.State"]);
    }

    #[test]
    fn a_type_defined_twice_with_different_meanings_is_refused() {
        let with = |symbols: Value| {
            json!({"type": "record", "name": "R", "namespace": "app", "fields": [
                {"name": "s", "type": {"type": "enum", "name": "State", "symbols": symbols}}]})
        };
        let mut a = with(json!(["ON"]));
        a["name"] = json!("A");
        let dir = dir_with(&[("a.avsc", a), ("b.avsc", with(json!(["ON", "OFF"])))]);
        let error = Catalog::load(&dir).unwrap_err().to_string();
        assert!(error.contains("app.State differs"), "{error}");
    }

    #[test]
    fn a_shared_type_without_a_namespace_is_refused() {
        let mut user = user();
        user.as_object_mut().unwrap().remove("namespace");
        let dir = dir_with(&[("types/user.avsc", user)]);
        assert!(Catalog::load(&dir).unwrap_err().to_string().contains("needs a namespace"));
    }
}
