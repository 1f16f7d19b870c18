//! What imports and exports share over HTTP: the recent jobs, newest first, and one job's
//! status, both from this gateway's book of the job status topic. Each kind has its own
//! (documented) handlers calling these.

use std::collections::HashMap;

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use domain::book::{JobStatus, StatusBook};
use uuid::Uuid;

use super::AppState;
use crate::error::ApiError;

/// A kind of job as the API shows it.
pub(crate) trait JobView: JobStatus + Send + Sync + 'static {
    /// `import`, `export`: in the paths (`/imports`) and in messages.
    const KIND: &'static str;

    fn book(app: &AppState) -> &StatusBook<Self>;
}

/// The job the path names; anything that is not a UUID names no job.
pub(crate) fn job<S: JobView>(app: &AppState, raw: &str) -> Result<S, ApiError> {
    let not_found = || ApiError::NotFound(format!("{} {raw} not found", S::KIND));
    let id = Uuid::parse_str(raw).map_err(|_| not_found())?;
    S::book(app).get(id).ok_or_else(not_found)
}

/// A job list's query string, as a handler takes it.
pub(crate) type ListQuery = Result<Query<HashMap<String, String>>, QueryRejection>;

/// The most recent jobs; `?limit=`: 20 unless given, at most 100.
pub(crate) fn recent<S: JobView>(app: &AppState, query: ListQuery) -> Result<Vec<S>, ApiError> {
    const DEFAULT: usize = 20;
    const MAX: usize = 100;
    let Query(params) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = match params.get("limit") {
        None => DEFAULT,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX).contains(n))
            .ok_or_else(|| ApiError::BadRequest(format!("limit must be a whole number from 1 to {MAX}")))?,
    };
    Ok(S::book(app).recent(limit))
}
