//! Every answer observed: a span for the request (continuing the caller's W3C trace, or
//! starting one: `platform::trace`), its latency in `http_server_request_duration_seconds` by
//! method, route template (`/users/{id}`, never the raw path: the label values stay bounded)
//! and status, and an access-log line in the span: at info level for writes, at debug for
//! reads (which come by the thousand a second).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use platform::trace::{self, Parent};
use tracing::Instrument as _;

/// The label of a request that matched no route.
const UNMATCHED: &str = "unmatched";

pub(crate) async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().map_or(UNMATCHED, MatchedPath::as_str).to_owned();
    let span = tracing::info_span!("request", %method, route, trace_id = tracing::field::Empty);
    trace::continue_trace(&span, Parent::from_http(request.headers()));
    let response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    span.in_scope(|| {
        let latency_ms = elapsed.as_secs_f64() * 1e3;
        if matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
            tracing::debug!(status, latency_ms, "answered");
        } else {
            tracing::info!(status, latency_ms, "answered");
        }
    });
    let labels = [("method", method.as_str().to_owned()), ("route", route), ("status", status.to_string())];
    metrics::histogram!("http_server_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    response
}
