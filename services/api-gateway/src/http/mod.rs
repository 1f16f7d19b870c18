//! The public HTTP API: one router per resource (users, commands, imports, exports), merged here with the shared middleware, and
//! the request/reply step every write shares ([`AppState::execute`]).

mod auth;
mod body;
mod commands;
mod exports;
mod idempotency;
mod imports;
mod jobs;
mod limits;
mod observe;
mod openapi;
pub(crate) mod schema;
mod security;
mod users;

pub(crate) use auth::warn_while_disabled;
pub(crate) use limits::RateLimit;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ::auth::{Authenticator, Principal};
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, middleware};
use domain::command::Command;
use domain::reply::Outcome;
use domain::user::User;
use domain::view::UserView;
use platform::health::{self, Health};
use platform::kafka::Positions;
use tower::ServiceBuilder;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use uuid::Uuid;

use crate::commands::{CommandBus, Sent};
use crate::config::Config;
use crate::error::ApiError;
use crate::jobs::{Exports, Imports};
pub(crate) use idempotency::Idempotency;

/// What every handler can reach: one shared `Arc`, since axum clones the state for every
/// request and every middleware that takes it (cloning each part instead cost the read path
/// 16% of the gateway's CPU: an atomic increment and decrement per `Arc` inside, contended
/// between the cores; `perf`, BENCHMARKS.md).
#[derive(Debug, Clone)]
pub(crate) struct AppState(Arc<Shared>);

impl AppState {
    pub(crate) fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) users: UserView,
    pub(crate) positions: Positions,
    pub(crate) bus: CommandBus,
    pub(crate) imports: Imports,
    pub(crate) exports: Exports,
    /// How long a `?q=` search may scan.
    pub(crate) search_budget: Duration,
}

/// A write's result: the user after it (none once deleted), or a 202 to give the client.
pub(crate) enum Done {
    Applied(Option<User>),
    Pending(Response),
}

impl AppState {
    /// Sends `command`, waits for user-service's outcome and then for this gateway's projection
    /// to show it, so the next read here sees the write. Whatever does not happen within the
    /// command timeout becomes a 202 pointing at the command's status. Under an idempotency
    /// key, the command's id is the key's, so a retry gets the first outcome again.
    pub(crate) async fn execute(
        &self,
        command: Command,
        correlation_id: Uuid,
        caller: &Principal,
        key: Option<Idempotency>,
    ) -> Result<Done, ApiError> {
        let started = Instant::now();
        let reply = match self.bus.send(command, correlation_id, caller, key.as_ref()).await? {
            Sent::Replied(reply) => *reply,
            Sent::Pending(command_id) => return Ok(Done::Pending(pending(command_id))),
        };
        if let Some(key) = &key {
            key.check(reply.request_digest.as_deref())?;
        }
        let accepted = match reply.outcome {
            Outcome::Rejected(rejection) => return Err(ApiError::from_rejection(rejection)),
            Outcome::Accepted(accepted) => accepted,
            // The gateway never sends batches; an answer of that shape is a fault elsewhere.
            Outcome::Batch(_) => return Err(ApiError::Internal("a batch outcome for a single command".into())),
        };
        if let Some(event) = accepted.event {
            let left = self.bus.timeout().saturating_sub(started.elapsed()).max(Duration::from_millis(100));
            if !self.positions.wait_applied(event.partition, event.offset, left).await {
                return Ok(Done::Pending(pending(reply.command_id)));
            }
        }
        // The projection has the write now. The answer is the user as this command left it (a
        // retry gets the same answer even after later changes); a reply from before replies
        // carried the user names only its id.
        let user = match (accepted.user, accepted.event) {
            (Some(user), _) => Some(user),
            (None, None) => None,
            (None, Some(_)) => self.users.get(accepted.user_id),
        };
        Ok(Done::Applied(user))
    }
}

fn pending(command_id: Uuid) -> Response {
    let url = format!("/commands/{command_id}");
    let location = HeaderValue::from_str(&url).expect("a path is a valid header");
    let body = schema::CommandPending { command_id, status: schema::CommandState::Pending, status_url: url };
    (StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(body)).into_response()
}

/// Streams a CSV file from blob storage as a download named `file_name`.
pub(crate) async fn send_csv(
    path: &std::path::Path,
    file_name: &str,
    extra: &[(header::HeaderName, HeaderValue)],
) -> Result<Response, ApiError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot open {}: {e}", path.display())))?;
    let length = file.metadata().await.map_err(|e| ApiError::Internal(format!("{}: {e}", path.display())))?.len();
    let disposition = format!("attachment; filename=\"{file_name}\"");
    // 256 KiB reads: the default 4 KiB chunks cost more in syscalls and frames than the copy.
    let mut response = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    for (name, value) in extra {
        headers.insert(name.clone(), value.clone());
    }
    Ok(response)
}

/// Every API route, and the document describing them: a request timeout on every route, a
/// longer one on uploads.
fn api(request_timeout: Duration, upload_timeout: Duration) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let timeout = |limit| middleware::from_fn_with_state(limit, limits::time_limit);
    let (routes, mut document) = openapi::routes()
        .merge(users::router())
        .merge(commands::router())
        .merge(imports::router())
        .merge(exports::router())
        .layer(timeout(request_timeout))
        .merge(imports::upload_router().layer(timeout(upload_timeout)))
        .split_for_parts();
    openapi::complete(&mut document);
    (routes, document)
}

/// The API's OpenAPI document, as `/openapi.json` serves it.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    api(Duration::MAX, Duration::MAX).1
}

/// What the public listener answers while the gateway starts: `/health`, and 503 problem+json
/// with `Retry-After` for everything else.
pub(crate) fn starting(health: Health) -> Router {
    Router::new()
        .merge(health::liveness_router(health))
        .fallback(|| async { ApiError::Starting })
        .layer(middleware::map_response(security::headers))
}

/// The complete public router: `/health`, `/openapi.json` and `/docs` open to anyone,
/// everything else (unknown paths included) behind authentication, the rate limit per
/// principal and the concurrency limit ([`limits`]); CORS for the configured origins and the
/// usual security headers on every answer.
pub(crate) fn router(
    state: AppState,
    health: Health,
    authenticator: Authenticator,
    rate_limit: RateLimit,
    config: &Config,
) -> Router {
    let max_in_flight = Some(config.limits.max_concurrent_requests).filter(|n| *n > 0);
    let shedding = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(limits::shed))
        .load_shed()
        // Global: `Router::layer` wraps each route on its own, and the limit is for them all.
        .option_layer(max_in_flight.map(tower::limit::GlobalConcurrencyLimitLayer::new));
    let (api, document) =
        api(Duration::from_millis(config.request_timeout_ms), Duration::from_millis(config.limits.upload_timeout_ms));
    api.with_state(state)
        .fallback(|method: Method, uri: Uri| async move {
            ApiError::RouteNotFound { method: method.to_string(), path: uri.path().to_owned() }
        })
        .method_not_allowed_fallback(|method: Method| async move {
            ApiError::MethodNotAllowed { method: method.to_string() }
        })
        .layer(middleware::from_fn_with_state(rate_limit, limits::rate_limit))
        .layer(middleware::from_fn_with_state(authenticator, auth::authenticate))
        .layer(shedding)
        .merge(health::liveness_router(health))
        .merge(openapi::public_router(document))
        .layer(DefaultBodyLimit::max(config.max_json_body_bytes))
        .layer(middleware::map_response(security::headers))
        .layer(security::cors(&config.cors_allowed_origins))
        .layer(middleware::from_fn(observe::observe))
        .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION, auth::API_KEY_HEADER, header::COOKIE]))
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;
    use axum::http::Request;
    use tower::ServiceExt as _;

    use super::*;

    #[tokio::test]
    async fn while_starting_every_route_but_health_answers_503_with_retry_after() {
        let starting = starting(Health::new("api-gateway"));
        let health = starting.clone().oneshot(Request::get("/health").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(health.status(), StatusCode::OK);
        for path in ["/users", "/users/0190a5b6-0000-7000-8000-000000000000", "/imports", "/nowhere"] {
            let answer = starting.clone().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
            assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
            assert_eq!(answer.headers()[header::RETRY_AFTER], "1", "{path}");
            assert_eq!(answer.headers()[header::CONTENT_TYPE], "application/problem+json", "{path}");
            let body: serde_json::Value =
                serde_json::from_slice(&to_bytes(answer.into_body(), 1 << 16).await.unwrap()).unwrap();
            assert_eq!(body["type"], "urn:problem:starting", "{path}: {body}");
        }
    }
}
