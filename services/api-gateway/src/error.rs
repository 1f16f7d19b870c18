//! The gateway's one error type, rendered as RFC 9457 `application/problem+json`.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no route for {method} {path}")]
    RouteNotFound { method: String, path: String },
}

/// The problem document.
#[derive(Debug, Serialize)]
struct Problem {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: String,
}

impl ApiError {
    fn status_and_title(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::RouteNotFound { .. } => (StatusCode::NOT_FOUND, "about:blank", "Not Found"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, title) = self.status_and_title();
        let problem = Problem {
            kind,
            title,
            status: status.as_u16(),
            detail: self.to_string(),
        };
        (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            Json(problem),
        )
            .into_response()
    }
}
