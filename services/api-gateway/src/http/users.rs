//! `/users`: writes become commands to user-service; reads come from the gateway's projection.

use std::collections::HashMap;
use std::time::Instant;

use auth::Principal;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use domain::command::{Command, DeleteUser};
use domain::user::{Email, User};
use domain::view::Page;
use serde_json::{Value, json};
use uuid::Uuid;

use super::auth::{Authorized, Reader, Writer};
use super::body;
use super::idempotency::Idempotency;
use super::{AppState, Done, user_json};
use crate::error::ApiError;

pub(crate) const MAX_LIMIT: usize = 1000;
const DEFAULT_LIMIT: usize = 50;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/users", post(create).get(list)).route("/users/{id}", get(fetch).patch(update).delete(remove))
}

fn with_etag(status: StatusCode, user: &User) -> Response {
    let etag = HeaderValue::from_str(&format!("\"{}\"", user.version)).expect("digits are a valid header");
    (status, [(header::ETAG, etag)], Json(user_json(user))).into_response()
}

/// The id in the path; anything that is not a UUID names no user.
fn user_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(format!("user {raw} not found")))
}

fn correlation_id(headers: &HeaderMap) -> Uuid {
    headers
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v).ok())
        .unwrap_or_else(Uuid::now_v7)
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

async fn create(
    Authorized(caller, ..): Authorized<Writer>,
    State(app): State<AppState>,
    headers: HeaderMap,
    payload: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(payload) = payload?;
    let key = idempotency(&caller, Method::POST, "/users", &headers, Some(&payload))?;
    let command = Command::Create(body::create(&payload)?);
    match app.execute(command, correlation_id(&headers), &caller, key).await? {
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

async fn fetch(
    _: Authorized<Reader>,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = user_id(&id)?;
    let user = app.users.get(id).ok_or_else(|| ApiError::NotFound(format!("user {id} not found")))?;
    Ok(with_etag(StatusCode::OK, &user))
}

async fn update(
    Authorized(caller, ..): Authorized<Writer>,
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    payload: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = user_id(&id)?;
    let expected = body::if_match(headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()))?;
    let Json(payload) = payload?;
    let key = idempotency(&caller, Method::PATCH, &format!("/users/{id}"), &headers, Some(&payload))?;
    let command = Command::Update(body::update(id, expected, &payload)?);
    match app.execute(command, correlation_id(&headers), &caller, key).await? {
        Done::Applied(Some(user)) => Ok(with_etag(StatusCode::OK, &user)),
        Done::Applied(None) => Err(ApiError::NotFound(format!("user {id} not found"))),
        Done::Pending(response) => Ok(response),
    }
}

async fn remove(
    Authorized(caller, ..): Authorized<Writer>,
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = user_id(&id)?;
    let expected_version = body::if_match(headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()))?;
    let key = idempotency(&caller, Method::DELETE, &format!("/users/{id}"), &headers, None)?;
    let command = Command::Delete(DeleteUser { user_id: id, expected_version });
    match app.execute(command, correlation_id(&headers), &caller, key).await? {
        Done::Applied(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        Done::Pending(response) => Ok(response),
    }
}

/// `GET /users?limit=&cursor=&email=&q=`: users in a stable order (by id, which is creation
/// order), `next_cursor` to continue. A `q` search that runs out of its time budget answers
/// the matches found so far with `"partial": true` and a cursor to continue from.
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
    let after = params
        .get("cursor")
        .filter(|c| !c.is_empty())
        .map(|c| Uuid::parse_str(c).map_err(|_| ApiError::BadRequest("cursor is not one this API gave out".into())))
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
    let items: Vec<Value> = page.items.iter().map(user_json).collect();
    let body = json!({ "items": items, "limit": limit, "next_cursor": page.next, "partial": page.partial });
    Ok(Json(body).into_response())
}
