//! The gateway's one error type, rendered as RFC 9457 `application/problem+json`, with
//! field-level details where a request's fields were at fault. 5xx bodies say nothing internal;
//! the cause goes to the log.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::reply::{Rejection, RejectionReason};
use domain::user::FieldError;

use crate::http::schema::{FieldProblem, Problem};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("one or more fields are invalid")]
    Invalid(Vec<FieldError>),
    /// No credentials, or credentials that prove nothing (401 with a challenge).
    #[error("{0}")]
    Unauthorized(#[from] auth::AuthError),
    /// Authenticated, but the role is not enough (403).
    #[error("this needs the {needed} role; the caller has {role}")]
    Forbidden { role: auth::Role, needed: auth::Role },
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    EmailTaken { message: String, errors: Vec<FieldError> },
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    Conflict(String),
    /// An uploaded file that cannot be imported (empty, no header, binary, no rows).
    #[error("{0}")]
    UnprocessableFile(String),
    #[error("no route for {method} {path}")]
    RouteNotFound { method: String, path: String },
    #[error("{method} is not allowed here")]
    MethodNotAllowed { method: String },
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Existed once, removed for good (an expired export).
    #[error("{0}")]
    Gone(String),
    /// The caller made more requests than its rate allows (429); retry after the wait.
    #[error("too many requests: retry in {} s", retry_after_secs(*.retry_after))]
    TooManyRequests { retry_after: std::time::Duration },
    /// The request (or upload) took longer than its time limit (408); its work was cancelled.
    #[error("the request took longer than the limit of {} ms and was cancelled", .0.as_millis())]
    RequestTimeout(std::time::Duration),
    /// More requests in flight than the gateway takes at once (503, shed rather than queued).
    #[error("the service is handling as many requests as it can; retry shortly")]
    Overloaded,
    /// Blob storage is too full to take the file (507).
    #[error("{0}")]
    InsufficientStorage(String),
    /// An `Idempotency-Key` used before with a different request (422).
    #[error("{0}")]
    IdempotencyKeyReused(String),
    /// The gateway has just started and its projection is still catching up (503, before its
    /// routes exist).
    #[error("the gateway is starting: its view of the users is catching up; retry shortly")]
    Starting,
    /// Kafka or the schema registry cannot be reached (503); the cause is logged.
    #[error("the service is temporarily unavailable; retry later")]
    Unavailable(String),
    /// A fault of this service (a file it cannot write, an answer it cannot make sense of):
    /// 500; the cause is logged, the body says nothing about it.
    #[error("an internal error occurred; it has been logged")]
    Internal(String),
}

impl ApiError {
    /// (status, problem type, title): the one place mapping errors to HTTP.
    fn describe(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "urn:problem:bad-request", "Bad Request"),
            Self::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "urn:problem:unsupported-media-type", "Unsupported Media Type")
            }
            Self::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "urn:problem:validation", "Invalid fields"),
            // A token that is valid but grants no role is a matter of rights, not of identity.
            Self::Unauthorized(auth::AuthError::NoRole) | Self::Forbidden { .. } => {
                (StatusCode::FORBIDDEN, "urn:problem:forbidden", "Forbidden")
            }
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "urn:problem:unauthorized", "Unauthorized"),
            Self::NotFound(_) | Self::RouteNotFound { .. } => {
                (StatusCode::NOT_FOUND, "urn:problem:not-found", "Not Found")
            }
            Self::EmailTaken { .. } => (StatusCode::CONFLICT, "urn:problem:email-taken", "Email already taken"),
            Self::PreconditionFailed(_) => {
                (StatusCode::PRECONDITION_FAILED, "urn:problem:version-conflict", "Version conflict")
            }
            Self::Conflict(_) => (StatusCode::CONFLICT, "urn:problem:conflict", "Conflict"),
            Self::UnprocessableFile(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "urn:problem:unimportable-file", "The file cannot be imported")
            }
            Self::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, "urn:problem:method-not-allowed", "Method Not Allowed")
            }
            Self::PayloadTooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "urn:problem:payload-too-large", "Payload Too Large")
            }
            Self::Gone(_) => (StatusCode::GONE, "urn:problem:gone", "Gone"),
            Self::TooManyRequests { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "urn:problem:rate-limited", "Too Many Requests")
            }
            Self::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "urn:problem:request-timeout", "Request Timeout"),
            Self::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "urn:problem:overloaded", "Service Unavailable"),
            Self::InsufficientStorage(_) => {
                (StatusCode::INSUFFICIENT_STORAGE, "urn:problem:insufficient-storage", "Insufficient Storage")
            }
            Self::IdempotencyKeyReused(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "urn:problem:idempotency-key-reused",
                "Idempotency key used for another request",
            ),
            Self::Starting => (StatusCode::SERVICE_UNAVAILABLE, "urn:problem:starting", "Service Unavailable"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "urn:problem:unavailable", "Service Unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "urn:problem:internal", "Internal Server Error"),
        }
    }

    /// user-service's refusal as an HTTP problem.
    pub(crate) fn from_rejection(rejection: Rejection) -> Self {
        match rejection.reason {
            RejectionReason::EmailTaken => {
                Self::EmailTaken { message: rejection.message, errors: rejection.field_errors }
            }
            RejectionReason::NotFound => Self::NotFound(rejection.message),
            RejectionReason::VersionConflict => Self::PreconditionFailed(rejection.message),
            RejectionReason::Invalid => Self::Invalid(rejection.field_errors),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, title) = self.describe();
        match &self {
            Self::Unavailable(cause) => tracing::error!(%cause, "request failed: dependency unavailable"),
            Self::Internal(cause) => tracing::error!(%cause, "request failed: internal error"),
            _ => {}
        }
        let errors = match &self {
            Self::Invalid(errors) | Self::EmailTaken { errors, .. } => {
                errors.iter().cloned().map(FieldProblem::from).collect()
            }
            _ => Vec::new(),
        };
        let problem = Problem {
            kind: kind.to_owned(),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            errors,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, [(header::CONTENT_TYPE, "application/problem+json")], body).into_response();
        match &self {
            Self::Unauthorized(error) => {
                // The challenge names what was wrong, never the credential itself.
                if let Ok(challenge) = header::HeaderValue::from_str(&error.challenge()) {
                    response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
                }
            }
            Self::TooManyRequests { retry_after } => {
                response.headers_mut().insert(header::RETRY_AFTER, retry_after_secs(*retry_after).into());
            }
            Self::Overloaded | Self::Starting | Self::Unavailable(_) => {
                response.headers_mut().insert(header::RETRY_AFTER, 1u64.into());
            }
            // Space comes back when retention removes old files, or an operator steps in.
            Self::InsufficientStorage(_) => {
                response.headers_mut().insert(header::RETRY_AFTER, 60u64.into());
            }
            _ => {}
        }
        response
    }
}

/// `Retry-After` in whole seconds, rounded up: a client waiting that long is let through.
fn retry_after_secs(wait: std::time::Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// A JSON body extraction failure in the same shape (axum's own rejections are plain text).
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection as R;
        match rejection {
            R::MissingJsonContentType(_) => {
                Self::UnsupportedMediaType("expected Content-Type: application/json".into())
            }
            R::JsonSyntaxError(e) => Self::BadRequest(format!("malformed JSON: {}", e.body_text())),
            R::JsonDataError(e) => Self::BadRequest(format!("unexpected JSON: {}", e.body_text())),
            R::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge(e.body_text()),
            other => Self::BadRequest(other.body_text()),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;

    use super::*;

    async fn answer(error: ApiError) -> (StatusCode, String, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap().to_owned();
        let body = to_bytes(response.into_body(), 1 << 16).await.unwrap();
        (status, content_type, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn an_internal_fault_is_a_500_and_a_dependency_outage_a_503_neither_telling_the_cause() {
        let (status, content_type, body) = answer(ApiError::Internal("disk full at /secret/path".into())).await;
        assert_eq!((status, content_type.as_str()), (StatusCode::INTERNAL_SERVER_ERROR, "application/problem+json"));
        assert!(!body.to_string().contains("secret"), "{body}");
        let (status, _, body) = answer(ApiError::Unavailable("broker 127.0.0.1:9092 down".into())).await;
        assert_eq!((status, body["status"].as_u64()), (StatusCode::SERVICE_UNAVAILABLE, Some(503)));
        assert!(!body.to_string().contains("9092"), "{body}");
    }
}
