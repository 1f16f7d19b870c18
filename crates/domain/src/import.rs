//! Bulk imports: the request (a claim check on an uploaded file) and the status every reader
//! sees. The status only moves forward: counters never shrink, a finished import stays finished.

use uuid::Uuid;

use crate::book::{JobStatus, StatusBook, job_status_fields};
use crate::time::Timestamp;

/// What to do with a row whose email already belongs to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImportMode {
    /// Refuse it (`email_taken`).
    Create,
    /// Update that user's name and age.
    Upsert,
}

impl ImportMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Upsert => "upsert",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "create" => Some(Self::Create),
            "upsert" => Some(Self::Upsert),
            _ => None,
        }
    }
}

/// An uploaded file waiting to be imported. The file itself stays in blob storage: only this
/// small record travels through Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRequest {
    pub import_id: Uuid,
    /// The file's path inside the shared blob storage.
    pub blob: String,
    pub file_name: Option<String>,
    pub size_bytes: u64,
    pub mode: ImportMode,
    pub requested_at: Timestamp,
    /// Who uploaded the file; the rows' commands carry it.
    pub principal: Option<String>,
    /// Under an `Idempotency-Key`: the SHA-256 (hex) of the HTTP request, to tell a retry (the
    /// same digest) from the key used again for another request.
    pub request_digest: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ImportState {
    Queued,
    Running,
    Completed,
    Failed,
}

impl ImportState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportStatus {
    pub import_id: Uuid,
    pub state: ImportState,
    pub mode: ImportMode,
    pub file_name: Option<String>,
    pub size_bytes: u64,
    /// Data rows read from the file so far (good and bad).
    pub rows_read: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub requested_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// Why a failed import failed (nothing was imported).
    pub error: Option<String>,
    /// Things worth knowing that did not stop the import (unknown columns).
    pub warnings: Vec<String>,
    /// The error report (CSV, one line per rejected row) in blob storage, once finished.
    pub errors_blob: Option<String>,
    /// The request digest of the request this job runs (while queued: of the first one
    /// announced under its id); see [`JobStatus::request_digest`].
    pub request_digest: Option<String>,
}

impl ImportStatus {
    pub fn queued(request: &ImportRequest) -> Self {
        Self {
            import_id: request.import_id,
            state: ImportState::Queued,
            mode: request.mode,
            file_name: request.file_name.clone(),
            size_bytes: request.size_bytes,
            rows_read: 0,
            accepted: 0,
            rejected: 0,
            requested_at: request.requested_at,
            started_at: None,
            finished_at: None,
            error: None,
            warnings: Vec::new(),
            errors_blob: None,
            request_digest: request.request_digest.clone(),
        }
    }

    /// Rows per second from start to finish (or to `now` while running).
    pub fn rows_per_second(&self, now: Timestamp) -> Option<f64> {
        let start = self.started_at?;
        let end = self.finished_at.unwrap_or(now);
        let seconds = (end.millis() - start.millis()) as f64 / 1000.0;
        (seconds > 0.0).then(|| self.rows_read as f64 / seconds)
    }
}

/// The latest status of every import, as read from the status topic (each reader keeps one).
pub type ImportBook = StatusBook<ImportStatus>;

impl JobStatus for ImportStatus {
    job_status_fields!(import_id, ImportState::Queued);

    /// This status, never behind `previous`: a worker resuming an import after a crash starts
    /// counting again, but what readers saw does not go back. A job is announced (queued) once:
    /// a second announcement under its id (a retry, or a request racing it under the same
    /// idempotency key) changes nothing.
    fn not_behind(mut self, previous: &Self) -> Self {
        if previous.state.is_finished() || self.state == ImportState::Queued {
            return previous.clone();
        }
        // The worker's statuses carry the digest of the request it runs.
        self.request_digest = self.request_digest.or_else(|| previous.request_digest.clone());
        self.state = self.state.max(previous.state);
        self.rows_read = self.rows_read.max(previous.rows_read);
        self.accepted = self.accepted.max(previous.accepted);
        self.rejected = self.rejected.max(previous.rejected);
        self.started_at = previous.started_at.or(self.started_at);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: ImportState, rows: u64) -> ImportStatus {
        announced(None, 0, state, rows)
    }

    fn announced(digest: Option<&str>, at: i64, state: ImportState, rows: u64) -> ImportStatus {
        let request = ImportRequest {
            import_id: Uuid::nil(),
            blob: "x".into(),
            file_name: None,
            size_bytes: 1,
            mode: ImportMode::Create,
            requested_at: Timestamp::from_millis(at),
            principal: None,
            request_digest: digest.map(str::to_owned),
        };
        ImportStatus { state, rows_read: rows, accepted: rows, ..ImportStatus::queued(&request) }
    }

    #[test]
    fn a_resumed_import_never_reports_less_than_before() {
        let before = ImportStatus { started_at: Some(Timestamp::from_millis(5)), ..status(ImportState::Running, 500) };
        let restarted =
            ImportStatus { started_at: Some(Timestamp::from_millis(9)), ..status(ImportState::Running, 10) };
        let merged = restarted.not_behind(&before);
        assert_eq!((merged.rows_read, merged.accepted, merged.started_at), (500, 500, Some(Timestamp::from_millis(5))));
    }

    #[test]
    fn a_finished_import_stays_finished() {
        let done = status(ImportState::Completed, 7);
        assert_eq!(status(ImportState::Running, 3).not_behind(&done), done);
    }

    #[test]
    fn the_first_announcement_of_a_job_stands_and_the_worker_names_the_request_it_runs() {
        let book = ImportBook::default();
        let first = announced(Some("aa"), 1, ImportState::Queued, 0);
        book.apply(first.clone());
        // A retry, or a request racing the first under the same key: no change.
        book.apply(announced(Some("bb"), 2, ImportState::Queued, 0));
        assert_eq!(book.get(Uuid::nil()), Some(first));
        // The worker's statuses come from the request it runs, digest included.
        book.apply(announced(Some("bb"), 2, ImportState::Running, 5));
        let running = book.get(Uuid::nil()).unwrap();
        assert_eq!((running.state, running.request_digest.as_deref()), (ImportState::Running, Some("bb")));
        book.apply(announced(Some("cc"), 3, ImportState::Queued, 0));
        assert_eq!(book.get(Uuid::nil()), Some(running), "an announcement never sets a job back");
        // A status from before digests existed keeps the digest readers saw.
        book.apply(announced(None, 2, ImportState::Running, 9));
        assert_eq!(book.get(Uuid::nil()).unwrap().request_digest.as_deref(), Some("bb"));
    }
}
