//! `/users`: writes become commands to user-service; reads come from the gateway's projection.

use std::collections::HashMap;
use std::time::Instant;

use auth::Principal;
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::command::{Command, DeleteUser};
use domain::user::{Email, User};
use domain::view::Page;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::{Authorized, Reader, Writer};
use super::body;
use super::idempotency::Idempotency;
use super::schema::{
    CommandPending, IfMatch, JsonBodyAnswers, KeyHeader, NewUser, UserBody, UserChanges, UserPage, WriteHeaders,
};
use super::{AppState, Done};
use crate::error::ApiError;

pub(crate) const MAX_LIMIT: usize = 1000;
const DEFAULT_LIMIT: usize = 50;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create, list)).routes(routes!(fetch, update, remove))
}

fn with_etag(status: StatusCode, user: &User) -> Response {
    let etag = HeaderValue::from_str(&format!("\"{}\"", user.version)).expect("digits are a valid header");
    (status, [(header::ETAG, etag)], Json(UserBody::from(user))).into_response()
}

/// The id in the path; anything that is not a UUID names no user.
fn user_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(format!("user {raw} not found")))
}

fn correlation_id(headers: &HeaderMap) -> Result<Uuid, ApiError> {
    let Some(value) = headers.get("x-correlation-id") else {
        return Ok(Uuid::now_v7());
    };
    value
        .to_str()
        .ok()
        .and_then(|v| Uuid::parse_str(v.trim()).ok())
        .ok_or_else(|| ApiError::BadRequest("X-Correlation-Id must be a UUID".into()))
}

/// The request's idempotency key, digesting the JSON as parsed (whitespace aside, the same body
/// is the same request).
fn idempotency(
    caller: &Principal,
    method: Method,
    path: &str,
    headers: &HeaderMap,
    payload: Option<&Value>,
) -> Result<Option<Idempotency>, ApiError> {
    let body = payload.map(|p| serde_json::to_vec(p).unwrap_or_default()).unwrap_or_default();
    Idempotency::of(caller, "users", &method, path, headers, &body)
}

/// Create a user
///
/// 201 once this gateway's reads show the user; 202 if user-service gave no outcome within the
/// command timeout (ask the status URL, or retry under the same `Idempotency-Key`).
#[utoipa::path(
    post,
    path = "/users",
    tag = "users",
    operation_id = "createUser",
    params(KeyHeader, WriteHeaders),
    request_body(content = NewUser, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = UserBody, headers(
            ("ETag" = String, description = "The user's version, quoted"),
            ("Location" = String, description = "The user's URL"),
        )),
        (status = 202, description = "No outcome yet", body = CommandPending, headers(("Location" = String, description = "The command's status URL"))),
        (status = 409, description = "The email belongs to another user"),
        JsonBodyAnswers,
    ),
)]
async fn create(
    Authorized(caller, ..): Authorized<Writer>,
    State(app): State<AppState>,
    headers: HeaderMap,
    payload: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let correlation = correlation_id(&headers)?;
    let Json(payload) = payload?;
    let key = idempotency(&caller, Method::POST, "/users", &headers, Some(&payload))?;
    let command = Command::Create(body::create(&payload)?);
    match app.execute(command, correlation, &caller, key).await? {
        Done::Applied(user) => {
            let user = user.ok_or_else(|| ApiError::Internal("accepted creation without a user".into()))?;
            let mut response = with_etag(StatusCode::CREATED, &user);
            let location = HeaderValue::from_str(&format!("/users/{}", user.id)).expect("a path is a valid header");
            response.headers_mut().insert(header::LOCATION, location);
            Ok(response)
        }
        Done::Pending(response) => Ok(response),
    }
}

/// Read a user
#[utoipa::path(
    get,
    path = "/users/{id}",
    tag = "users",
    operation_id = "getUser",
    params(("id" = Uuid, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The user", body = UserBody, headers(("ETag" = String, description = "The user's version, quoted"))),
        (status = 404, description = "No such user"),
    ),
)]
async fn fetch(
    _: Authorized<Reader>,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = user_id(&id)?;
    let user = app.users.get(id).ok_or_else(|| ApiError::NotFound(format!("user {id} not found")))?;
    Ok(with_etag(StatusCode::OK, &user))
}

/// Change a user
///
/// Only the fields given change; null clears `age` or `locale`. With `If-Match`, only if the
/// user is still at that version.
#[utoipa::path(
    patch,
    path = "/users/{id}",
    tag = "users",
    operation_id = "updateUser",
    params(("id" = Uuid, Path, description = "The user's id"), IfMatch, KeyHeader, WriteHeaders),
    request_body(content = UserChanges, content_type = "application/json"),
    responses(
        (status = 200, description = "Changed", body = UserBody, headers(("ETag" = String, description = "The user's new version, quoted"))),
        (status = 202, description = "No outcome yet", body = CommandPending, headers(("Location" = String, description = "The command's status URL"))),
        (status = 404, description = "No such user"),
        (status = 409, description = "The new email belongs to another user"),
        (status = 412, description = "The user is not at the version If-Match names"),
        JsonBodyAnswers,
    ),
)]
async fn update(
    Authorized(caller, ..): Authorized<Writer>,
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    payload: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = user_id(&id)?;
    let (correlation, precondition) = (correlation_id(&headers)?, body::if_match(headers.get(header::IF_MATCH))?);
    let Json(payload) = payload?;
    let key = idempotency(&caller, Method::PATCH, &format!("/users/{id}"), &headers, Some(&payload))?;
    let current = || app.users.get(id).map(|user| user.version);
    let command = Command::Update(body::update(id, precondition, current, &payload)?);
    match app.execute(command, correlation, &caller, key).await? {
        Done::Applied(Some(user)) => Ok(with_etag(StatusCode::OK, &user)),
        Done::Applied(None) => Err(ApiError::NotFound(format!("user {id} not found"))),
        Done::Pending(response) => Ok(response),
    }
}

/// Delete a user
#[utoipa::path(
    delete,
    path = "/users/{id}",
    tag = "users",
    operation_id = "deleteUser",
    params(("id" = Uuid, Path, description = "The user's id"), IfMatch, KeyHeader, WriteHeaders),
    responses(
        (status = 204, description = "Deleted"),
        (status = 202, description = "No outcome yet", body = CommandPending, headers(("Location" = String, description = "The command's status URL"))),
        (status = 400, description = "A malformed Idempotency-Key, If-Match or X-Correlation-Id"),
        (status = 404, description = "No such user"),
        (status = 412, description = "The user is not at the version If-Match names"),
        (status = 422, description = "An Idempotency-Key used for another request"),
    ),
)]
async fn remove(
    Authorized(caller, ..): Authorized<Writer>,
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = user_id(&id)?;
    let (correlation, precondition) = (correlation_id(&headers)?, body::if_match(headers.get(header::IF_MATCH))?);
    let key = idempotency(&caller, Method::DELETE, &format!("/users/{id}"), &headers, None)?;
    let expected_version = precondition.expected_version(|| app.users.get(id).map(|user| user.version))?;
    let command = Command::Delete(DeleteUser { user_id: id, expected_version });
    match app.execute(command, correlation, &caller, key).await? {
        Done::Applied(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        Done::Pending(response) => Ok(response),
    }
}

/// List or search users
///
/// Users in a stable order (by id, which is creation order), `next_cursor` to continue. A `q`
/// search that runs out of its time budget answers the matches found so far with
/// `"partial": true` and a cursor to continue from.
#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    operation_id = "listUsers",
    params(
        ("limit" = Option<u16>, Query, nullable = false, minimum = 1, maximum = 1000, description = "Users per page (50 unless given)"),
        ("cursor" = Option<String>, Query, nullable = false, pattern = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$", description = "The `next_cursor` of the page before (empty or absent: the first page)"),
        ("email" = Option<String>, Query, nullable = false, description = "Exactly this email (case-insensitive): at most one user"),
        ("q" = Option<String>, Query, nullable = false, description = "Part of the name or email, case-insensitive"),
    ),
    responses(
        (status = 200, description = "A page of users", body = UserPage),
        (status = 400, description = "A bad limit or cursor"),
    ),
)]
async fn list(
    _: Authorized<Reader>,
    State(app): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) =
        query.map_err(|e| ApiError::BadRequest(format!("unreadable query string: {}", e.body_text())))?;
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| ApiError::BadRequest(format!("limit must be a whole number from 1 to {MAX_LIMIT}")))?,
    };
    // Empty: the first page. Else the hyphenated form only, the one this API gives out.
    let after = params
        .get("cursor")
        .filter(|c| !c.is_empty())
        .map(|c| {
            let parsed = (c.len() == 36).then(|| Uuid::parse_str(c).ok()).flatten();
            parsed.ok_or_else(|| ApiError::BadRequest("cursor is not one this API gave out".into()))
        })
        .transpose()?;
    let needle = params.get("q").map(|q| q.trim().to_lowercase()).filter(|q| !q.is_empty());
    let matches = |user: &User| {
        needle.as_ref().is_none_or(|q| {
            user.name.as_str().to_lowercase().contains(q.as_str()) || user.email.key().contains(q.as_str())
        })
    };
    let page = match params.get("email") {
        // Exact, case-insensitive: at most one user, straight from the email index.
        Some(email) => {
            let key = Email::parse(email).map(|e| e.key()).unwrap_or_else(|_| email.trim().to_lowercase());
            let found = app.users.by_email(&key).filter(|u| matches(u) && after.is_none_or(|a| u.id > a));
            Page { items: found.into_iter().collect(), next: None, partial: false }
        }
        // A search scans; its time is bounded (a partial page says where to go on from).
        None => {
            let deadline = needle.is_some().then(|| Instant::now() + app.search_budget);
            app.users.page(after, limit, matches, deadline)
        }
    };
    let items = page.items.iter().map(UserBody::from).collect();
    Ok(Json(UserPage { items, limit, next_cursor: page.next, partial: page.partial }).into_response())
}
