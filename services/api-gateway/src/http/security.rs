//! Browser-facing protections: CORS for the configured origins only, and the security headers
//! every answer carries (an API of JSON and CSV: nothing to frame, sniff, cache or refer).

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::auth::API_KEY_HEADER;

/// Adds `nosniff`, no framing, no referrer, no active content, and no caching of answers that
/// hold personal data (an answer that sets its own `Cache-Control` or policy keeps it). For
/// `axum::middleware::map_response`.
pub(super) async fn headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    // The docs page sets a policy of its own (it runs Swagger UI's scripts).
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Cross-origin calls from `origins` only (none: the browser's same-origin rule stands).
/// Preflight requests are answered here, before authentication: they carry no credentials.
pub(super) fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            API_KEY_HEADER,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("x-correlation-id"),
        ])
        .expose_headers([header::ETAG, header::LOCATION, header::RETRY_AFTER, header::WWW_AUTHENTICATE])
        .max_age(Duration::from_secs(600))
}
