//! Blob storage: a directory shared by the services (a named volume in compose) for what is
//! too big for Kafka. Records carry only a blob's name (a claim check).
//!
//! Writes go to a temporary name and are renamed into place once complete, so a reader never
//! sees half a file under its real name.

use std::path::{Component, Path, PathBuf};

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct BlobConfig {
    /// The shared directory holding uploads, error reports and exports.
    #[arg(long = "blob-dir", env = "BLOB_DIR", default_value = ".local/blobs")]
    pub dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("invalid blob name {0:?}")]
    InvalidName(String),
    #[error("blob storage at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl BlobStore {
    /// Opens (creating if needed) the store at `config.dir`, and says where it is.
    pub fn open(config: &BlobConfig) -> Result<Self, BlobError> {
        let root = config.dir.clone();
        std::fs::create_dir_all(&root).map_err(|source| BlobError::Io { path: root.clone(), source })?;
        tracing::info!(dir = %root.display(), "blob storage");
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of blob `name` (a relative path such as `imports/<id>.csv`).
    pub fn path(&self, name: &str) -> Result<PathBuf, BlobError> {
        let relative = Path::new(name);
        let safe = !name.is_empty() && relative.components().all(|c| matches!(c, Component::Normal(_)));
        if !safe {
            return Err(BlobError::InvalidName(name.to_owned()));
        }
        Ok(self.root.join(relative))
    }

    /// Where to write blob `name` before [`BlobStore::commit`] puts it in place.
    pub fn staging_path(&self, name: &str) -> Result<PathBuf, BlobError> {
        let path = self.path(name)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| BlobError::Io { path: parent.to_owned(), source })?;
        }
        let mut staging = path.into_os_string();
        staging.push(".part");
        Ok(PathBuf::from(staging))
    }

    /// Moves a completely written staging file to its real name.
    pub fn commit(&self, name: &str) -> Result<PathBuf, BlobError> {
        let (staging, path) = (self.staging_path(name)?, self.path(name)?);
        std::fs::rename(&staging, &path).map_err(|source| BlobError::Io { path: path.clone(), source })?;
        Ok(path)
    }

    /// Removes blob `name` and its staging file, if present.
    pub fn remove(&self, name: &str) {
        for path in [self.path(name), self.staging_path(name)].into_iter().flatten() {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_leave_the_store() {
        let store = BlobStore { root: PathBuf::from("/blobs") };
        assert_eq!(store.path("imports/a.csv").unwrap(), PathBuf::from("/blobs/imports/a.csv"));
        for bad in ["", "../etc/passwd", "/etc/passwd", "imports/../../x", "./x"] {
            assert!(store.path(bad).is_err(), "{bad}");
        }
    }
}
