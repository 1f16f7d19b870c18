//! Limits that hold whatever clients send (`LimitsConfig`):
//!
//! - at most `GATEWAY_MAX_CONCURRENT_REQUESTS` requests in flight; one more is shed at once
//!   with 503 and `Retry-After` rather than queued (a queue only turns overload into timeouts);
//! - each principal's requests at `GATEWAY_RATE_LIMIT_PER_SECOND` on average, with bursts up to
//!   `GATEWAY_RATE_LIMIT_BURST` (a GCRA bucket per principal, from the governor crate); above
//!   it, 429 with the wait in `Retry-After`;
//! - a request timeout, and a longer one for uploads ([`time_limit`], placed by `super::router`).
//!
//! `/health` stays outside all of them: an overloaded gateway is still alive.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use auth::Principal;
use axum::BoxError;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::LimitsConfig;
use crate::error::ApiError;

/// A rate per principal; `None` when rate limiting is off.
#[derive(Debug, Clone)]
pub(crate) struct RateLimit(Option<Arc<DefaultKeyedRateLimiter<String>>>);

impl RateLimit {
    pub(crate) fn new(config: &LimitsConfig) -> Self {
        let Some(rate) = NonZeroU32::new(config.rate_limit_per_second) else { return Self(None) };
        let burst = NonZeroU32::new(config.rate_limit_burst).unwrap_or(rate).max(rate);
        Self(Some(Arc::new(DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)))))
    }

    /// Lets `principal` through, or says how long it must wait.
    fn check(&self, principal: &str) -> Result<(), Duration> {
        let Some(limiter) = &self.0 else { return Ok(()) };
        limiter
            .check_key(&principal.to_owned())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Forgets the buckets of principals that have been quiet long enough to be full again,
    /// every minute until `shutdown`: memory follows the active callers, not every caller seen.
    pub(crate) async fn forget_idle(self, shutdown: platform::Shutdown) {
        let Some(limiter) = self.0 else { return };
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                () = shutdown.wait() => return,
                _ = every.tick() => {
                    limiter.retain_recent();
                    limiter.shrink_to_fit();
                }
            }
        }
    }
}

/// Answers 429 to a principal over its rate. Runs after authentication (it needs the
/// principal); unauthenticated floods are bounded by the concurrency limit.
pub(crate) async fn rate_limit(State(limit): State<RateLimit>, request: Request, next: Next) -> Response {
    let principal = request.extensions().get::<Principal>().map_or("anonymous", |p| p.id.as_str());
    if let Err(retry_after) = limit.check(principal) {
        metrics::counter!("http_requests_refused_total", "reason" => "rate_limited").increment(1);
        return ApiError::TooManyRequests { retry_after }.into_response();
    }
    next.run(request).await
}

/// Answers 408 (problem+json) to a request still unanswered after `limit`, cancelling its work
/// (an upload's partial file is removed by its own guard). For `middleware::from_fn_with_state`.
pub(crate) async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_elapsed) => {
            metrics::counter!("http_requests_refused_total", "reason" => "timed_out").increment(1);
            ApiError::RequestTimeout(limit).into_response()
        }
    }
}

/// The answer for a request the concurrency limit shed (or any other failure of the limiting
/// layers themselves).
pub(crate) async fn shed(error: BoxError) -> ApiError {
    if error.is::<tower::load_shed::error::Overloaded>() {
        metrics::counter!("http_requests_refused_total", "reason" => "overloaded").increment(1);
        ApiError::Overloaded
    } else {
        ApiError::Internal(format!("request limiting failed: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rate: u32, burst: u32) -> LimitsConfig {
        LimitsConfig {
            upload_timeout_ms: 1,
            max_concurrent_requests: 1,
            rate_limit_per_second: rate,
            rate_limit_burst: burst,
            search_budget_ms: 1,
        }
    }

    #[test]
    fn each_principal_has_its_own_burst_then_waits_about_one_interval() {
        let limit = RateLimit::new(&config(2, 5));
        for _ in 0..5 {
            assert_eq!(limit.check("jwt:a"), Ok(()));
        }
        let wait = limit.check("jwt:a").expect_err("the sixth request in a burst of five");
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(500), "{wait:?}");
        assert_eq!(limit.check("jwt:b"), Ok(()), "another principal is not slowed down");
    }

    #[test]
    fn a_zero_rate_means_no_limit() {
        let limit = RateLimit::new(&config(0, 0));
        assert!((0..10_000).all(|_| limit.check("jwt:a").is_ok()));
    }
}
