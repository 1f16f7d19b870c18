//! The latest status of every bulk job (imports, exports), as read from its status topic: each
//! reader keeps a book. A status only moves forward, so a replayed or late record never makes a
//! job look less done than a reader already saw.

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
}

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
