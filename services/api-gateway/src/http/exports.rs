//! `/exports`: an export request carries this gateway's position in the user events, so the
//! export contains every write this gateway has acknowledged; export-worker writes the file to
//! blob storage from its own projection. Statuses come from the gateway's view of the export
//! status topic; finished files are streamed from blob storage.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use domain::book::StatusBook;
use domain::export::{ExportRequest, ExportState, ExportStatus};
use domain::reply::EventPosition;
use domain::time::Timestamp;
use serde_json::{Value, json};
use uuid::Uuid;

use super::auth::{Admin, Authorized};
use super::jobs::{self, JobView};
use super::{AppState, Idempotency, body, idempotency};
use crate::error::ApiError;

pub(crate) fn router() -> Router<AppState> {
    jobs::routes::<ExportStatus>().route("/exports", post(request)).route("/exports/{id}/download", get(download))
}

impl JobView for ExportStatus {
    const KIND: &'static str = "export";

    fn book(app: &AppState) -> &StatusBook<Self> {
        &app.exports.jobs.book
    }

    fn to_json(&self) -> Value {
        status_json(self)
    }
}

fn status_json(status: &ExportStatus) -> Value {
    let id = status.export_id;
    let filter = &status.filter;
    json!({
        "export_id": id,
        "status": status.state.as_str(),
        "filter": {
            "q": filter.q,
            "email_domain": filter.email_domain,
            "min_age": filter.min_age,
            "max_age": filter.max_age,
            "created_after": filter.created_after.map(|t| t.to_string()),
            "created_before": filter.created_before.map(|t| t.to_string()),
        },
        "columns": status.columns.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        "rows_total": status.rows_total,
        "rows_written": status.rows_written,
        "bytes": status.bytes,
        "sha256": status.sha256,
        "requested_at": status.requested_at.to_string(),
        "started_at": status.started_at.map(|t| t.to_string()),
        "finished_at": status.finished_at.map(|t| t.to_string()),
        "duration_ms": status.duration_ms(),
        "error": status.error,
        "download_url": (status.state == ExportState::Completed).then(|| format!("/exports/{id}/download")),
    })
}

/// `POST /exports` with an optional JSON body of filters and columns: 202 with the status URL.
/// Under an `Idempotency-Key`, the export's id is the key's and a retry (the same filters and
/// columns) gets the same answer; see `Jobs::announce`.
async fn request(
    Authorized(caller, ..): Authorized<Admin>,
    State(app): State<AppState>,
    headers: HeaderMap,
    payload: Bytes,
) -> Result<Response, ApiError> {
    let value = if payload.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if !content_type.to_ascii_lowercase().starts_with("application/json") {
            return Err(ApiError::UnsupportedMediaType("expected Content-Type: application/json".into()));
        }
        serde_json::from_slice(&payload).map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?
    };
    let (filter, columns) = body::export(&value)?.validate().map_err(ApiError::Invalid)?;
    let canonical = idempotency::canonical_json(&value);
    let key = Idempotency::of(&caller, "exports", &Method::POST, "/exports", &headers, &canonical)?;
    // The export-worker writes into the same storage: refused now rather than failing later.
    app.exports.blobs.ensure_room(0).map_err(super::imports::storage_error)?;
    // Everything this gateway has applied, hence every write it has acknowledged: the offset
    // after the last event applied per partition (not the consumer's position, which may stand
    // past a transaction marker another reader has not stepped over).
    let mut positions: Vec<EventPosition> = app
        .positions
        .last_applied()
        .into_iter()
        .map(|(partition, last)| EventPosition { partition, offset: last + 1 })
        .collect();
    positions.sort_by_key(|p| p.partition);
    let export_id = key.as_ref().map_or_else(Uuid::now_v7, |k| k.id);
    let request = ExportRequest {
        export_id,
        filter,
        columns,
        positions,
        requested_at: Timestamp::now(),
        principal: Some(caller.id),
        request_digest: key.as_ref().map(|k| k.digest.clone()),
    };
    app.exports.jobs.announce(export_id, ExportStatus::queued(&request), request, key.as_ref()).await?;
    let url = format!("/exports/{export_id}");
    let location = HeaderValue::from_str(&url).expect("a path is a valid header");
    let body = json!({
        "export_id": export_id,
        "status": "queued",
        "status_url": url,
        "download_url": format!("{url}/download"),
    });
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(body)).into_response())
}

/// `GET /exports/{id}/download`: the finished file, with its SHA-256 as ETag; 409 until then.
async fn download(
    _: Authorized<Admin>,
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let status = jobs::job::<ExportStatus>(&app, &id)?;
    let id = status.export_id;
    let (blob, sha256) = match (status.state, status.blob, status.sha256) {
        (ExportState::Completed, Some(blob), Some(sha256)) => (blob, sha256),
        (ExportState::Expired, ..) => {
            return Err(ApiError::Gone(format!("export {id} expired and its file was removed; request a new one")));
        }
        (ExportState::Failed, ..) => {
            let why = status.error.unwrap_or_default();
            return Err(ApiError::Conflict(format!("export {id} failed: {why}; request a new one")));
        }
        (state, ..) => {
            return Err(ApiError::Conflict(format!("export {id} is {}: the file is not ready", state.as_str())));
        }
    };
    let etag = format!("\"{sha256}\"");
    let etag_value = HeaderValue::from_str(&etag).map_err(|e| ApiError::Internal(e.to_string()))?;
    let cached = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
    if cached.is_some_and(|tags| tags.split(',').any(|tag| tag.trim().trim_start_matches("W/") == etag)) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response());
    }
    let path = app.exports.blobs.path(&blob).map_err(|e| ApiError::Internal(e.to_string()))?;
    if !path.exists() {
        return Err(ApiError::Gone(format!("the file of export {id} is gone from blob storage; request a new one")));
    }
    super::send_csv(&path, &format!("export-{id}.csv"), &[(header::ETAG, etag_value)]).await
}
