//! The latest status of every bulk job (imports, exports), as read from its status topic: each
//! reader keeps a book. A status only moves forward, so a replayed or late record never makes a
//! job look less done than a reader already saw. A finished job is forgotten some time after it
//! finished (its worker writes a tombstone on the compacted status topic), so a book holds the
//! recent jobs, not every job ever.

use std::sync::Arc;

use dashmap::DashMap;
use uuid::Uuid;

use crate::time::Timestamp;

/// A job's status as it travels on a status topic.
pub trait JobStatus: Clone {
    fn job_id(&self) -> Uuid;
    fn requested_at(&self) -> Timestamp;
    /// This status, never behind `previous` (what readers may already have seen).
    fn not_behind(self, previous: &Self) -> Self;
    /// When it finished; `None` while it is queued or running.
    fn finished_at(&self) -> Option<Timestamp>;
    /// For a job requested under an idempotency key: the digest of the request it runs (while
    /// queued, of the first request announced under its id), which a retry must match.
    fn request_digest(&self) -> Option<&str>;
    /// Announced, not started yet.
    fn is_queued(&self) -> bool;
}

/// The [`JobStatus`] methods that read a status's fields, alike for every kind of job: `$id` is
/// the field holding the job's id, `$queued` its queued state. For inside an `impl JobStatus`.
macro_rules! job_status_fields {
    ($id:ident, $queued:path) => {
        fn job_id(&self) -> Uuid {
            self.$id
        }

        fn finished_at(&self) -> Option<Timestamp> {
            self.finished_at
        }

        fn requested_at(&self) -> Timestamp {
            self.requested_at
        }

        fn request_digest(&self) -> Option<&str> {
            self.request_digest.as_deref()
        }

        fn is_queued(&self) -> bool {
            self.state == $queued
        }
    };
}
pub(crate) use job_status_fields;

#[derive(Debug)]
pub struct StatusBook<S> {
    statuses: Arc<DashMap<Uuid, S>>,
}

impl<S> Clone for StatusBook<S> {
    fn clone(&self) -> Self {
        Self { statuses: Arc::clone(&self.statuses) }
    }
}

impl<S> Default for StatusBook<S> {
    fn default() -> Self {
        Self { statuses: Arc::default() }
    }
}

impl<S: JobStatus> StatusBook<S> {
    /// Records `status` unless what the book holds is further along.
    pub fn apply(&self, status: S) {
        let mut entry = self.statuses.entry(status.job_id()).or_insert_with(|| status.clone());
        *entry = status.not_behind(&entry);
    }

    /// `status`, moved forward to what the book holds for its job if that is further along:
    /// what a writer publishes so readers never see a job go back.
    pub fn not_behind(&self, status: S) -> S {
        match self.get(status.job_id()) {
            Some(previous) => status.not_behind(&previous),
            None => status,
        }
    }

    /// Forgets `job_id` (its tombstone was read); false if the book did not hold it.
    pub fn remove(&self, job_id: Uuid) -> bool {
        self.statuses.remove(&job_id).is_some()
    }

    /// The jobs that finished before `cutoff`: those to forget.
    pub fn finished_before(&self, cutoff: Timestamp) -> Vec<S> {
        self.statuses.iter().filter(|s| s.finished_at().is_some_and(|at| at < cutoff)).map(|s| s.clone()).collect()
    }

    pub fn get(&self, job_id: Uuid) -> Option<S> {
        self.statuses.get(&job_id).map(|s| s.clone())
    }

    /// The most recently requested jobs first.
    pub fn recent(&self, limit: usize) -> Vec<S> {
        let mut all = self.all();
        all.sort_by(|a, b| b.requested_at().cmp(&a.requested_at()).then(b.job_id().cmp(&a.job_id())));
        all.truncate(limit);
        all
    }

    /// Every job, in no particular order.
    pub fn all(&self) -> Vec<S> {
        self.statuses.iter().map(|s| s.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Job {
        id: Uuid,
        finished_at: Option<Timestamp>,
    }

    impl JobStatus for Job {
        fn job_id(&self) -> Uuid {
            self.id
        }
        fn requested_at(&self) -> Timestamp {
            Timestamp::from_millis(0)
        }
        fn not_behind(self, previous: &Self) -> Self {
            if previous.finished_at.is_some() { previous.clone() } else { self }
        }
        fn finished_at(&self) -> Option<Timestamp> {
            self.finished_at
        }
        fn request_digest(&self) -> Option<&str> {
            None
        }
        fn is_queued(&self) -> bool {
            self.finished_at.is_none()
        }
    }

    #[test]
    fn only_jobs_finished_before_the_cutoff_are_due_and_a_removed_job_is_gone() {
        let book = StatusBook::default();
        let job = |ms: Option<i64>| Job { id: Uuid::now_v7(), finished_at: ms.map(Timestamp::from_millis) };
        let (old, recent, running) = (job(Some(1_000)), job(Some(5_000)), job(None));
        for j in [&old, &recent, &running] {
            book.apply(j.clone());
        }
        assert_eq!(book.finished_before(Timestamp::from_millis(2_000)), vec![old.clone()]);
        assert!(book.remove(old.id));
        assert!(!book.remove(old.id));
        assert_eq!(book.get(old.id), None);
        assert_eq!(book.all().len(), 2);
    }
}
