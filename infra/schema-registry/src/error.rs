//! Errors with Confluent's status codes and bodies: `{"error_code": 40401, "message": "..."}`.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::state::VersionSpec;

#[derive(Debug, thiserror::Error)]
pub(crate) enum RegistryError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {} not found.", version_text(*.0))]
    VersionNotFound(VersionSpec),
    #[error("Schema {0} not found")]
    SchemaNotFound(String),
    #[error("Subject '{0}' was soft deleted. Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    #[error("Subject '{0}' Version {1} was soft deleted. Set permanent=true to delete permanently")]
    VersionSoftDeleted(String, u32),
    #[error("Subject '{0}' Version {1} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted(String, u32),
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectLevelNotConfigured(String),
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: {}", details.join("; "))]
    Incompatible { subject: String, details: Vec<String> },
    #[error("{0}")]
    InvalidSchema(String),
    #[error(
        "The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
    )]
    InvalidVersion(String),
    #[error(
        "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive"
    )]
    InvalidCompatibilityLevel,
    #[error("One or more references exist to the schema {{subject={0},version={1}}}")]
    ReferenceExists(String, u32),
    #[error("{0}")]
    UnprocessableEntity(String),
    #[error("Unauthorized: this change needs the registry's admin token")]
    Unauthorized,
    #[error("HTTP 404 Not Found")]
    RouteNotFound,
    #[error("HTTP 405 Method Not Allowed")]
    MethodNotAllowed,
    #[error("Error while storing the schema in Kafka")]
    Store(#[source] platform::kafka::ProduceError),
    /// Answered while the registry starts: its schemas are not loaded yet.
    #[error("The registry is starting: its schemas are not loaded yet")]
    Starting,
}

fn version_text(spec: VersionSpec) -> String {
    match spec {
        VersionSpec::Latest => "latest".to_owned(),
        VersionSpec::Number(n) => n.to_string(),
    }
}

impl RegistryError {
    /// (HTTP status, Confluent error code).
    pub(crate) fn codes(&self) -> (StatusCode, u32) {
        match self {
            Self::SubjectNotFound(_) => (StatusCode::NOT_FOUND, 40401),
            Self::VersionNotFound(_) => (StatusCode::NOT_FOUND, 40402),
            Self::SchemaNotFound(_) => (StatusCode::NOT_FOUND, 40403),
            Self::SubjectSoftDeleted(_) => (StatusCode::NOT_FOUND, 40404),
            Self::SubjectNotSoftDeleted(_) => (StatusCode::NOT_FOUND, 40405),
            Self::VersionSoftDeleted(..) => (StatusCode::NOT_FOUND, 40406),
            Self::VersionNotSoftDeleted(..) => (StatusCode::NOT_FOUND, 40407),
            Self::SubjectLevelNotConfigured(_) => (StatusCode::NOT_FOUND, 40408),
            Self::Incompatible { .. } => (StatusCode::CONFLICT, 409),
            Self::InvalidSchema(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42201),
            Self::InvalidVersion(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42202),
            Self::InvalidCompatibilityLevel => (StatusCode::UNPROCESSABLE_ENTITY, 42203),
            Self::ReferenceExists(..) => (StatusCode::UNPROCESSABLE_ENTITY, 42206),
            Self::UnprocessableEntity(_) => (StatusCode::UNPROCESSABLE_ENTITY, 422),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, 40101),
            Self::RouteNotFound => (StatusCode::NOT_FOUND, 404),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, 405),
            Self::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, 50001),
            Self::Starting => (StatusCode::SERVICE_UNAVAILABLE, 50302),
        }
    }
}

#[derive(Debug, Serialize)]
struct Body {
    error_code: u32,
    message: String,
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let (status, error_code) = self.codes();
        if let Self::Store(source) = &self {
            tracing::error!(error = %source, "schema store write failed");
        }
        let body = Body { error_code, message: self.to_string() };
        let mut response = (status, [(header::CONTENT_TYPE, crate::http::CONTENT_TYPE)], Json(body)).into_response();
        if matches!(self, Self::Unauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"schema-registry\""));
        }
        response
    }
}
