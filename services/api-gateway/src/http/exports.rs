//! `/exports`: an export request carries this gateway's position in the user events, so the
//! export contains every write this gateway has acknowledged; export-worker writes the file to
//! blob storage from its own projection. Statuses come from the gateway's view of the export
//! status topic; finished files are streamed from blob storage.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::book::StatusBook;
use domain::export::{ExportRequest, ExportState, ExportStatus};
use domain::reply::EventPosition;
use domain::time::Timestamp;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::{Admin, Authorized};
use super::jobs::{self, JobView, ListQuery};
use super::schema::{
    ExportAccepted, ExportBody, ExportFilters, ExportList, JobListQuery, JobState, JsonBodyAnswers, KeyHeader,
};
use super::{AppState, Idempotency, body, idempotency};
use crate::error::ApiError;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(request, list)).routes(routes!(status)).routes(routes!(download))
}

impl JobView for ExportStatus {
    const KIND: &'static str = "export";

    fn book(app: &AppState) -> &StatusBook<Self> {
        &app.exports.jobs.book
    }
}

/// Recent exports
#[utoipa::path(
    get,
    path = "/exports",
    tag = "exports",
    operation_id = "listExports",
    params(JobListQuery),
    responses(
        (status = 200, description = "The most recent exports, newest first", body = ExportList),
        (status = 400, description = "A bad limit"),
    ),
)]
async fn list(
    _: Authorized<Admin>,
    State(app): State<AppState>,
    query: ListQuery,
) -> Result<Json<ExportList>, ApiError> {
    let items = jobs::recent::<ExportStatus>(&app, query)?.iter().map(ExportBody::from).collect();
    Ok(Json(ExportList { items }))
}

/// An export's progress and result
#[utoipa::path(
    get,
    path = "/exports/{id}",
    tag = "exports",
    operation_id = "getExport",
    params(("id" = Uuid, Path, description = "The export's id")),
    responses(
        (status = 200, description = "The export", body = ExportBody),
        (status = 404, description = "No such export (or forgotten after the job retention)"),
    ),
)]
async fn status(
    _: Authorized<Admin>,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ExportBody>, ApiError> {
    Ok(Json(ExportBody::from(&jobs::job::<ExportStatus>(&app, &id)?)))
}

/// Export users as CSV
///
/// With an optional JSON body of filters and columns; the file is written in the background:
/// 202 with the status URL. It holds every write this gateway acknowledged before the request.
/// Under an `Idempotency-Key`, the export's id is the key's and a retry (the same filters and
/// columns) gets the same answer; see `Jobs::announce`.
#[utoipa::path(
    post,
    path = "/exports",
    tag = "exports",
    operation_id = "requestExport",
    params(KeyHeader),
    request_body(content = Option<ExportFilters>, content_type = "application/json", description = "Filters and columns (optional: everyone, default columns)"),
    responses(
        (status = 202, description = "Asked for; written in the background", body = ExportAccepted, headers(("Location" = String, description = "The export's status URL"))),
        (status = 507, description = "Blob storage is (nearly) full"),
        JsonBodyAnswers,
    ),
)]
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
        match serde_json::from_slice(&payload).map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))? {
            Value::Null => json!({}),
            filters => filters,
        }
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
    let body = ExportAccepted {
        export_id,
        status: JobState::Queued,
        download_url: format!("{url}/download"),
        status_url: url,
    };
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(body)).into_response())
}

/// Download a finished export
///
/// The CSV file, with its SHA-256 as `ETag` (`If-None-Match` with it: 304); 409 until it is
/// finished, 410 once expired.
#[utoipa::path(
    get,
    path = "/exports/{id}/download",
    tag = "exports",
    operation_id = "downloadExport",
    params(
        ("id" = Uuid, Path, description = "The export's id"),
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "The ETag of a copy already held"),
    ),
    responses(
        (status = 200, description = "The file", content_type = "text/csv", body = String, headers(
            ("ETag" = String, description = "The file's SHA-256, quoted"),
            ("Content-Disposition" = String, description = "attachment; filename=\"export-<id>.csv\""),
        )),
        (status = 304, description = "The copy held is this file"),
        (status = 404, description = "No such export"),
        (status = 409, description = "Not finished, or failed"),
        (status = 410, description = "Expired: the file was removed after the retention period"),
    ),
)]
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
