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

    /// Space kept free on the blob storage's disk: uploads and exports that would eat into it
    /// are refused (507) before they start, and an upload is cut off when it reaches it.
    #[arg(long = "blob-min-free-bytes", env = "BLOB_MIN_FREE_BYTES", default_value_t = 1 << 30)]
    pub min_free_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    min_free_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("invalid blob name {0:?}")]
    InvalidName(String),
    /// Writing `needed` more bytes would leave less free than the configured reserve.
    #[error("blob storage is nearly full: {free} bytes free, {reserve} kept free, {needed} more needed")]
    NoRoom { free: u64, reserve: u64, needed: u64 },
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
        tracing::info!(dir = %root.display(), min_free_bytes = config.min_free_bytes, "blob storage");
        Ok(Self { root, min_free_bytes: config.min_free_bytes })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Bytes free for this process on the disk holding the store.
    pub fn free_bytes(&self) -> Result<u64, BlobError> {
        let stats =
            rustix::fs::statvfs(&self.root).map_err(|e| BlobError::Io { path: self.root.clone(), source: e.into() })?;
        Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
    }

    /// Whether `needed` more bytes fit while keeping the configured reserve free.
    pub fn ensure_room(&self, needed: u64) -> Result<(), BlobError> {
        let free = self.free_bytes()?;
        if free < needed.saturating_add(self.min_free_bytes) {
            return Err(BlobError::NoRoom { free, reserve: self.min_free_bytes, needed });
        }
        Ok(())
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
        let store = BlobStore { root: PathBuf::from("/blobs"), min_free_bytes: 0 };
        assert_eq!(store.path("imports/a.csv").unwrap(), PathBuf::from("/blobs/imports/a.csv"));
        for bad in ["", "../etc/passwd", "/etc/passwd", "imports/../../x", "./x"] {
            assert!(store.path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn room_is_what_the_disk_has_free_less_the_reserve() {
        let dir = std::env::temp_dir();
        let mut store = BlobStore { root: dir, min_free_bytes: 0 };
        let free = store.free_bytes().unwrap();
        assert!(free > 0);
        assert!(store.ensure_room(0).is_ok());
        store.min_free_bytes = free.saturating_mul(2);
        assert!(
            matches!(store.ensure_room(0), Err(BlobError::NoRoom { .. })),
            "a reserve larger than the disk's space"
        );
        store.min_free_bytes = 0;
        assert!(matches!(store.ensure_room(u64::MAX / 2), Err(BlobError::NoRoom { .. })));
    }
}
