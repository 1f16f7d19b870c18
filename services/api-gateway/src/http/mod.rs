//! The public HTTP API: one router per resource, merged here with the shared middleware.

use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode, Uri};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use platform::health::{self, Health};

/// The complete public router.
pub fn router(health: Health, request_timeout: Duration) -> Router {
    Router::new()
        .merge(health::router(health))
        .fallback(not_found)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(TraceLayer::new_for_http())
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::RouteNotFound {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}
