//! `/imports`: CSV uploads are streamed to blob storage (never held in memory, never sent
//! through Kafka) and announced with a small import request; the import worker does the rest.
//! Statuses come from the gateway's own view of the import status topic.

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::book::StatusBook;
use domain::import::{ImportMode, ImportRequest, ImportStatus};
use domain::import_file::{self, Precheck};
use domain::time::Timestamp;
use futures::StreamExt;
use platform::blobs::BlobError;
use tokio::io::AsyncWriteExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::auth::{Admin, Authorized};
use super::idempotency::{Idempotency, KeyedRequest};
use super::jobs::{self, JobView, ListQuery};
use super::schema::{ImportAccepted, ImportBody, ImportList, JobListQuery, JobState, KeyHeader};
use crate::error::ApiError;
use crate::jobs::Announced;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(status)).routes(routes!(errors))
}

/// The upload, apart: it has a timeout of its own.
pub(crate) fn upload_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(upload))
}

impl JobView for ImportStatus {
    const KIND: &'static str = "import";

    fn book(app: &AppState) -> &StatusBook<Self> {
        &app.imports.jobs.book
    }
}

/// Recent imports
#[utoipa::path(
    get,
    path = "/imports",
    tag = "imports",
    operation_id = "listImports",
    params(JobListQuery),
    responses(
        (status = 200, description = "The most recent imports, newest first", body = ImportList),
        (status = 400, description = "A bad limit"),
    ),
)]
async fn list(
    _: Authorized<Admin>,
    State(app): State<AppState>,
    query: ListQuery,
) -> Result<Json<ImportList>, ApiError> {
    let items = jobs::recent::<ImportStatus>(&app, query)?.iter().map(ImportBody::from).collect();
    Ok(Json(ImportList { items }))
}

/// An import's progress and result
#[utoipa::path(
    get,
    path = "/imports/{id}",
    tag = "imports",
    operation_id = "getImport",
    params(("id" = Uuid, Path, description = "The import's id")),
    responses(
        (status = 200, description = "The import", body = ImportBody),
        (status = 404, description = "No such import (or forgotten after the job retention)"),
    ),
)]
async fn status(
    _: Authorized<Admin>,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ImportBody>, ApiError> {
    Ok(Json(ImportBody::from(&jobs::job::<ImportStatus>(&app, &id)?)))
}

fn file_name(headers: &HeaderMap) -> Option<String> {
    let disposition = headers.get(header::CONTENT_DISPOSITION)?.to_str().ok()?;
    let name = disposition.split(';').find_map(|part| part.trim().strip_prefix("filename="))?;
    Some(name.trim_matches('"').chars().filter(|c| !c.is_control()).take(255).collect())
}

/// Upload a CSV file to import
///
/// The file (a header naming `email` and `name`, optionally `age` and `locale`; UTF-8) is
/// stored and imported in the background: 202 with the import's status URL. A file that cannot
/// be imported (no header, binary, over the CSV limits) is refused before its end. Under an
/// `Idempotency-Key`, the import's id is the key's and a retry (the same mode, file name and
/// content) gets the same answer; see `Jobs::announce`.
#[utoipa::path(
    post,
    path = "/imports",
    tag = "imports",
    operation_id = "uploadImport",
    params(
        ("mode" = Option<String>, Query, nullable = false, pattern = "^(create|upsert)$", description = "`create` (default: a taken email is a rejected row) or `upsert` (it updates that user)"),
        ("Content-Disposition" = Option<String>, Header, nullable = false, description = "`attachment; filename=\"people.csv\"`: the name shown in the status"),
        KeyHeader,
    ),
    request_body(content = String, content_type = "text/csv", description = "The CSV file", example = "email,name,age\nada@example.com,Ada Lovelace,36\n"),
    responses(
        (status = 202, description = "Stored; the import runs in the background", body = ImportAccepted, headers(("Location" = String, description = "The import's status URL"))),
        (status = 400, description = "A bad mode, a malformed Idempotency-Key, or an interrupted upload"),
        (status = 413, description = "The file is larger than the limit"),
        (status = 415, description = "Not text/csv"),
        (status = 422, description = "A file that cannot be imported, or an Idempotency-Key used for another request"),
        (status = 507, description = "Blob storage is (nearly) full"),
    ),
)]
async fn upload(
    Authorized(caller, ..): Authorized<Admin>,
    State(app): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Query(params) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mode = match params.get("mode").map(String::as_str) {
        None => ImportMode::Create,
        Some(mode) => ImportMode::parse(mode)
            .ok_or_else(|| ApiError::BadRequest(format!("mode must be create or upsert, not {mode:?}")))?,
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !content_type.to_ascii_lowercase().starts_with("text/csv") {
        return Err(ApiError::UnsupportedMediaType("expected Content-Type: text/csv".into()));
    }
    let limit = app.imports.max_bytes;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large(limit));
    }

    let file_name = file_name(&headers);
    let asked = ["POST", "/imports", mode.as_str(), file_name.as_deref().unwrap_or_default()];
    let mut keyed = Idempotency::begin(&caller, "imports", &headers, &asked)?;

    // Refused before a byte is stored when the disk could not take it (a chunked upload
    // declares no size: it is cut off if it reaches the reserve).
    app.imports.blobs.ensure_room(declared.unwrap_or(0)).map_err(storage_error)?;

    // Each upload has a file of its own, even a retry of a keyed import (two of them may be
    // arriving at once, at two gateways); the worker runs the import from one of them.
    let upload_id = Uuid::now_v7();
    let import_id = keyed.as_ref().map_or(upload_id, KeyedRequest::id);
    let blob = format!("imports/{upload_id}.csv");
    let stored = store(&app, &blob, body, limit, keyed.as_mut()).await;
    let size_bytes = match stored {
        Ok(size) => size,
        Err(error) => {
            app.imports.blobs.remove(&blob);
            return Err(error);
        }
    };
    let key = keyed.map(KeyedRequest::finish);
    let request = ImportRequest {
        import_id,
        blob,
        file_name,
        size_bytes,
        mode,
        requested_at: Timestamp::now(),
        principal: Some(caller.id),
        request_digest: key.as_ref().map(|k| k.digest.clone()),
    };
    let blob = request.blob.clone();
    match app.imports.jobs.announce(import_id, ImportStatus::queued(&request), request, key.as_ref()).await {
        // Sent: the worker removes the file once the import is done (or skipped as a repeat).
        Ok(Announced::Queued) => {}
        // A retry of an import under way or done: this copy of the file is not needed.
        Ok(Announced::Before(_)) => app.imports.blobs.remove(&blob),
        Err(error) => {
            app.imports.blobs.remove(&blob);
            return Err(error);
        }
    }
    let url = format!("/imports/{import_id}");
    let location = HeaderValue::from_str(&url).expect("a path is a valid header");
    let body = ImportAccepted { import_id, status: JobState::Queued, status_url: url };
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(body)).into_response())
}

/// Blob storage that cannot take the file: 507 when it is full (or nearly), 500 otherwise.
pub(crate) fn storage_error(error: BlobError) -> ApiError {
    match error {
        BlobError::NoRoom { .. } => {
            metrics::counter!("http_requests_refused_total", "reason" => "storage_full").increment(1);
            ApiError::InsufficientStorage(format!("{error}; retry once space is freed"))
        }
        error => ApiError::Internal(error.to_string()),
    }
}

/// A write into blob storage that failed: out of space is the client's 507, the rest ours.
fn write_error(error: std::io::Error) -> ApiError {
    if error.kind() == std::io::ErrorKind::StorageFull {
        return ApiError::InsufficientStorage("blob storage is full; retry once space is freed".into());
    }
    ApiError::Internal(format!("cannot write the upload: {error}"))
}

fn too_large(limit: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!("the file is larger than the limit of {limit} bytes"))
}

/// How often (in bytes received) an upload checks that the disk keeps its reserve.
const ROOM_CHECK_BYTES: u64 = 16 << 20;

/// Streams the body into blob `name` (and into the digest of a keyed request) and puts it in
/// place once complete. The file's start
/// (a valid header within the CSV limits, and a first row) is checked while it arrives, in
/// bounded memory: a file that cannot be imported is refused without reading the rest.
async fn store(
    app: &AppState,
    name: &str,
    body: Body,
    limit: u64,
    mut keyed: Option<&mut KeyedRequest>,
) -> Result<u64, ApiError> {
    let blobs = &app.imports.blobs;
    let limits = app.imports.limits;
    let staging = blobs.staging_path(name).map_err(|e| ApiError::Internal(e.to_string()))?;
    // Whatever ends the upload early (a refusal, the client gone, the upload timeout dropping
    // this future), its partial file goes with it.
    let _partial = RemoveUnlessCommitted { blobs: blobs.clone(), name: name.to_owned() };
    let mut file = tokio::fs::File::create(&staging)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot create {}: {e}", staging.display())))?;
    let mut size: u64 = 0;
    let mut checked_room_at: u64 = 0;
    // The file's start until it decides (at most `Limits::prefix_bytes`); then nothing.
    let mut prefix = Some(Vec::new());
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("the upload was interrupted: {e}")))?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(too_large(limit));
        }
        if let Some(start) = prefix.as_mut() {
            let room = limits.prefix_bytes().saturating_sub(start.len());
            start.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if check_start(start, false, limits)? {
                prefix = None;
            }
        }
        if size - checked_room_at >= ROOM_CHECK_BYTES {
            checked_room_at = size;
            blobs.ensure_room(0).map_err(storage_error)?;
        }
        if let Some(keyed) = keyed.as_mut() {
            keyed.update(&chunk);
        }
        file.write_all(&chunk).await.map_err(write_error)?;
    }
    if let Some(start) = prefix {
        check_start(&start, true, limits)?;
    }
    file.flush().await.map_err(write_error)?;
    drop(file);
    // Durable (bytes and directory entries) before the import request points to it.
    let (blobs, name) = (blobs.clone(), name.to_owned());
    tokio::task::spawn_blocking(move || blobs.commit(&name))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(size)
}

/// Removes a blob's staging file when dropped (a no-op once the blob is committed, since
/// committing renames the staging file away).
struct RemoveUnlessCommitted {
    blobs: platform::blobs::BlobStore,
    name: String,
}

impl Drop for RemoveUnlessCommitted {
    fn drop(&mut self) {
        if let Ok(staging) = self.blobs.staging_path(&self.name) {
            let _ = std::fs::remove_file(staging);
        }
    }
}

/// Whether the upload's `start` shows an importable file (`Ok(false)`: not yet known).
fn check_start(start: &[u8], complete: bool, limits: import_file::Limits) -> Result<bool, ApiError> {
    match import_file::precheck_prefix(start, complete, limits) {
        Precheck::Importable(_) => Ok(true),
        Precheck::NeedMore => Ok(false),
        Precheck::Refused(error) => Err(ApiError::UnprocessableFile(error.to_string())),
    }
}

/// The rejected rows of a finished import
///
/// CSV with one line per rejected row: `line,field,code,message`.
#[utoipa::path(
    get,
    path = "/imports/{id}/errors",
    tag = "imports",
    operation_id = "getImportErrors",
    params(("id" = Uuid, Path, description = "The import's id")),
    responses(
        (status = 200, description = "The error report", content_type = "text/csv", body = String),
        (status = 404, description = "No such import"),
        (status = 409, description = "The import has not finished"),
    ),
)]
async fn errors(
    _: Authorized<Admin>,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let status = jobs::job::<ImportStatus>(&app, &id)?;
    let id = status.import_id;
    let Some(blob) = status.errors_blob.filter(|_| status.state.is_finished()) else {
        return Err(ApiError::Conflict(format!(
            "import {id} is {}: its error report is not ready",
            status.state.as_str()
        )));
    };
    let path = app.imports.blobs.path(&blob).map_err(|e| ApiError::Internal(e.to_string()))?;
    super::send_csv(&path, &format!("import-{id}-errors.csv"), &[]).await
}
