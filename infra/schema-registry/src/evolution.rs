//! `just schema-check`: the contract in `schemas/` against every release kept in
//! `schemas/releases/<n>/`, at FULL_TRANSITIVE, the level the project's subjects run at. It is
//! the check a registry makes when a new version is registered, made before anything is
//! deployed, against the history the topics keep (an empty registry would accept anything).
//!
//! A record of a release must still exist (its records are in the topics' history), and every
//! current record must read, and be read by, each released version of itself.

use std::path::Path;

use apache_avro::Schema;
use codegen::Catalog;

use crate::schema::{self, Level};

/// The project's level: both directions of a rolling upgrade, against every version.
pub const LEVEL: Level = Level::FullTransitive;

/// What the check found for one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The record's full name.
    pub record: String,
    /// The releases it was checked against.
    pub releases: Vec<String>,
    /// What breaks; empty when compatible.
    pub problems: Vec<String>,
}

/// Why the check could not run.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Catalog(#[from] codegen::Error),
    #[error("{record} in {dir}: not a schema apache-avro accepts: {message}")]
    Unparsable { record: String, dir: String, message: String },
}

/// Checks `schemas` (the current contract) against `schemas/releases/*`, oldest first.
pub fn check(schemas: &Path) -> Result<Vec<Verdict>, CheckError> {
    let current = Catalog::load(schemas)?;
    let releases: Vec<(String, Catalog)> = codegen::releases(&schemas.join("releases"))
        .into_iter()
        .map(|(number, dir)| Ok((format!("release {number}"), Catalog::load(&dir)?)))
        .collect::<Result<_, CheckError>>()?;
    let mut verdicts = Vec::new();
    for record in &current.records {
        let candidate = parse(record.name(), &record.json, schemas)?;
        let mut names = Vec::new();
        let mut history = Vec::new();
        for (name, release) in &releases {
            if let Some(old) = release.get(record.name()) {
                names.push(name.clone());
                history.push(parse(old.name(), &old.json, &old.file)?);
            }
        }
        let problems = schema::check(LEVEL, &candidate, &history).err().unwrap_or_default();
        verdicts.push(Verdict { record: record.name().to_owned(), releases: names, problems });
    }
    for (name, release) in &releases {
        for old in &release.records {
            if current.get(old.name()).is_none() && !verdicts.iter().any(|v| v.record == old.name()) {
                verdicts.push(Verdict {
                    record: old.name().to_owned(),
                    releases: vec![name.clone()],
                    problems: vec!["removed, but its records stay in the topics' history".into()],
                });
            }
        }
    }
    Ok(verdicts)
}

fn parse(record: &str, json: &str, origin: &Path) -> Result<Schema, CheckError> {
    Schema::parse_str(json).map_err(|e| CheckError::Unparsable {
        record: record.to_owned(),
        dir: origin.display().to_string(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn repo_schemas() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
    }

    /// A copy of the repository's schemas.
    fn copy_of_schemas() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "schema-check-{}-{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        ));
        copy(&repo_schemas(), &dir);
        dir
    }

    /// A copy of the repository's schemas with `file` edited by `change`.
    fn changed(file: &str, change: impl FnOnce(String) -> String) -> PathBuf {
        let dir = copy_of_schemas();
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let edited = change(text.clone());
        assert_ne!(edited, text, "the change must change {file}");
        std::fs::write(&path, edited).unwrap();
        dir
    }

    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let target = to.join(path.file_name().unwrap());
            if path.is_dir() { copy(&path, &target) } else { std::fs::copy(&path, &target).map(|_| ()).unwrap() }
        }
    }

    fn refused(dir: &Path) -> Vec<String> {
        check(dir).unwrap().into_iter().filter(|v| !v.problems.is_empty()).map(|v| v.record).collect()
    }

    #[test]
    fn the_contract_as_it_is_reads_and_is_read_by_every_release() {
        let verdicts = check(&repo_schemas()).unwrap();
        assert_eq!(verdicts.len(), 8, "{verdicts:?}");
        // Records added since the last release have nothing to be checked against yet.
        let new_since_release_1 = ["usermgmt.state.UserState"];
        for verdict in verdicts {
            assert_eq!(verdict.problems, Vec::<String>::new(), "{}", verdict.record);
            let new = new_since_release_1.contains(&verdict.record.as_str());
            assert_eq!(verdict.releases.is_empty(), new, "{} was checked against a release", verdict.record);
        }
    }

    #[test]
    fn a_field_without_a_default_is_refused_wherever_its_record_is_used() {
        let dir = changed("types/user.avsc", |t| {
            t.replace(
                r#"{"name": "version", "type": "long"}"#,
                r#"{"name": "version", "type": "long"}, {"name": "tier", "type": "string"}"#,
            )
        });
        assert_eq!(refused(&dir), ["usermgmt.events.UserEvent", "usermgmt.replies.UserCommandReply"]);
    }

    #[test]
    fn a_field_whose_type_changed_is_refused() {
        let dir = changed("user_event.avsc", |t| {
            t.replace(
                r#"{"name": "occurred_at", "type": {"type": "long", "logicalType": "timestamp-millis"}}"#,
                r#"{"name": "occurred_at", "type": "string"}"#,
            )
        });
        assert_eq!(refused(&dir), ["usermgmt.events.UserEvent"]);
    }

    #[test]
    fn an_enum_symbol_removed_or_added_without_a_default_is_refused() {
        let removed = changed("types/export_column.avsc", |t| t.replace(r#", "VERSION""#, ""));
        assert_eq!(refused(&removed), ["usermgmt.exports.ExportRequested", "usermgmt.exports.ExportStatus"]);
        // Old readers of the column list would meet a symbol they do not know.
        let added = changed("types/export_column.avsc", |t| t.replace(r#", "VERSION""#, r#", "VERSION", "LOCALE""#));
        assert_eq!(refused(&added), ["usermgmt.exports.ExportRequested", "usermgmt.exports.ExportStatus"]);
    }

    #[test]
    fn a_record_removed_from_the_contract_is_refused() {
        let dir = copy_of_schemas();
        std::fs::remove_file(dir.join("import_request.avsc")).unwrap();
        assert_eq!(refused(&dir), ["usermgmt.imports.ImportRequested"]);
    }
}
