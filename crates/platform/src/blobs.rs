//! Blob storage: a directory shared by the services (a named volume in compose) for what is
//! too big for Kafka. Records carry only a blob's name (a claim check).
//!
//! Writes go to a temporary name and are renamed into place once complete, so a reader never
//! sees half a file under its real name; the rename is made durable (the file's bytes, then its
//! directory entries) before it returns, so a record pointing to a blob never outlives it in a
//! crash or a power cut.

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
        // The root's own entry, should this have created it.
        let parent = root.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::File::open(parent)
            .and_then(|dir| dir.sync_all())
            .map_err(|source| BlobError::Io { path: parent.to_owned(), source })?;
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

    /// Moves a completely written staging file to its real name, durably: the file's content is
    /// on disk before the rename, and the rename (and any directory [`BlobStore::staging_path`]
    /// created) is on disk before this returns. Publish a record pointing to the blob only
    /// after it. Blocking: call it from a blocking thread.
    pub fn commit(&self, name: &str) -> Result<PathBuf, BlobError> {
        let (staging, path) = (self.staging_path(name)?, self.path(name)?);
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| BlobError::Io { path, source }
        };
        std::fs::File::open(&staging).and_then(|file| file.sync_all()).map_err(io(&staging))?;
        std::fs::rename(&staging, &path).map_err(io(&path))?;
        // The directory holding the new name, and each one up to the root (any of them may have
        // been created for this blob, and a new directory's entry lives in its parent).
        for dir in path.ancestors().skip(1).take_while(|dir| dir.starts_with(&self.root)) {
            std::fs::File::open(dir).and_then(|dir| dir.sync_all()).map_err(io(dir))?;
        }
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

    /// Set in the child process that [`commit_makes_the_file_and_its_directory_entries_durable`]
    /// runs under strace: the blob store's root.
    const PROBE_ROOT: &str = "BLOB_COMMIT_PROBE_ROOT";

    /// A crash cannot be staged in a test, so this watches the system calls instead: the file's
    /// bytes are fsynced before the rename, and after it every directory from the blob's up to
    /// the root (the new `reports/` included) is fsynced before `commit` returns.
    #[test]
    fn commit_makes_the_file_and_its_directory_entries_durable() {
        if let Some(root) = std::env::var_os(PROBE_ROOT) {
            let store = BlobStore::open(&BlobConfig { dir: PathBuf::from(root), min_free_bytes: 0 }).unwrap();
            std::fs::write(store.staging_path("reports/r.csv").unwrap(), "line,field\n").unwrap();
            store.commit("reports/r.csv").unwrap();
            return;
        }
        let dir = std::env::temp_dir().join(crate::testing::unique("blob-commit"));
        let root = dir.join("blobs");
        std::fs::create_dir_all(&dir).unwrap();
        let trace = dir.join("strace.log");
        let test = "blobs::tests::commit_makes_the_file_and_its_directory_entries_durable";
        let status = std::process::Command::new("strace")
            .args(["-f", "-y", "-e", "trace=fsync,fdatasync,rename,renameat,renameat2", "-o"])
            .arg(&trace)
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", test, "--test-threads=1"])
            .env(PROBE_ROOT, &root)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("strace (deploy/apt-packages.txt) runs the probe");
        assert!(status.success());

        let calls = std::fs::read_to_string(&trace).unwrap();
        let position = |call: &str, needle: &str| {
            let found = |line: &&str| line.contains(call) && line.contains(needle) && line.ends_with("= 0");
            calls.lines().position(|line| found(&line)).unwrap_or_else(|| {
                panic!("no successful {call}..{needle} in:\n{calls}");
            })
        };
        let root = root.canonicalize().unwrap();
        let file = root.join("reports/r.csv");
        let synced = |path: &Path| position("sync(", &format!("<{}>)", path.display()));
        let renamed = position("rename", &format!(", \"{}\")", file.display()));
        assert!(synced(&root.join("reports/r.csv.part")) < renamed, "the bytes before the name:\n{calls}");
        assert!(synced(&root.join("reports")) > renamed, "the new entry in reports/:\n{calls}");
        assert!(synced(&root) > renamed, "reports/ itself in the root:\n{calls}");
        std::fs::remove_dir_all(&dir).unwrap();
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
