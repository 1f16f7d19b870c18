//! What imports and exports share over HTTP: `GET /{kind}s` (the recent jobs, newest first)
//! and `GET /{kind}s/{id}` (one job's status), both from this gateway's book of the job status
//! topic.

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use domain::book::{JobStatus, StatusBook};
use serde_json::{Value, json};
use uuid::Uuid;

use super::AppState;
use super::auth::{Admin, Authorized};
use crate::error::ApiError;

/// A kind of job as the API shows it.
pub(crate) trait JobView: JobStatus + Send + Sync + 'static {
    /// `import`, `export`: in the paths (`/imports`) and in messages.
    const KIND: &'static str;

    fn book(app: &AppState) -> &StatusBook<Self>;

    /// The JSON form of a status.
    fn to_json(&self) -> Value;
}

/// The routes every kind of job has; each kind adds its own (upload, download, ...).
pub(crate) fn routes<S: JobView>() -> Router<AppState> {
    Router::new()
        .route(&format!("/{}s", S::KIND), get(list::<S>))
        .route(&format!("/{}s/{{id}}", S::KIND), get(status::<S>))
}

/// The job the path names; anything that is not a UUID names no job.
pub(crate) fn job<S: JobView>(app: &AppState, raw: &str) -> Result<S, ApiError> {
    let not_found = || ApiError::NotFound(format!("{} {raw} not found", S::KIND));
    let id = Uuid::parse_str(raw).map_err(|_| not_found())?;
    S::book(app).get(id).ok_or_else(not_found)
}

async fn status<S: JobView>(
    _: Authorized<Admin>,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(job::<S>(&app, &id)?.to_json()).into_response())
}

/// `?limit=`: 20 unless given, at most 100.
async fn list<S: JobView>(
    _: Authorized<Admin>,
    State(app): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
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
    let items: Vec<Value> = S::book(&app).recent(limit).iter().map(S::to_json).collect();
    Ok(Json(json!({ "items": items })).into_response())
}
