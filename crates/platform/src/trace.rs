//! W3C trace context (`traceparent`, `tracestate`) from an HTTP request through every Kafka
//! record it causes, so each service's spans continue the request's trace.
//!
//! A unit of work (an HTTP request, a command, an import, a projection update) is a `tracing`
//! span declared with an empty `trace_id` field:
//!
//! ```
//! let span = tracing::info_span!("command", trace_id = tracing::field::Empty);
//! platform::trace::continue_trace(&span, platform::trace::Parent::none());
//! ```
//!
//! [`continue_trace`] makes it a child of the context its input carried (a new trace if none)
//! and records the trace id in that field, so every log line inside carries it. The records it
//! causes carry its context ([`TraceHeaders::of`], [`crate::kafka::Record::trace`];
//! [`crate::topic::Topic::publish`] takes the current span's). The spans are exported over
//! OTLP when an endpoint is configured ([`crate::telemetry`]); without one, ids are still made
//! and passed on, and the spans go nowhere.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::{Instrument as _, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::kafka::Incoming;

/// The header carrying the trace id, the parent span id and the sampled flag.
pub const TRACEPARENT: &str = "traceparent";
/// Vendor-specific trace state, passed on as received.
pub const TRACESTATE: &str = "tracestate";

/// The context a unit of work continues: what its HTTP request or Kafka record carried.
#[derive(Debug, Clone, Default)]
pub struct Parent(opentelemetry::Context);

impl Parent {
    /// No incoming context: the work starts a trace of its own.
    pub fn none() -> Self {
        Self::default()
    }

    /// From the `traceparent` / `tracestate` headers of an HTTP request (none if absent or
    /// malformed: a client's bad header never fails its request).
    pub fn from_http(headers: &axum::http::HeaderMap) -> Self {
        Self(TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers)))
    }

    /// From the headers of a Kafka record.
    pub fn from_record(message: &Incoming) -> Self {
        Self(TraceContextPropagator::new().extract(&RecordHeaders(message)))
    }

    /// The trace id it names, if any: `4bf92f3577b34da6a3ce929d0e0e4736`.
    pub fn trace_id(&self) -> Option<String> {
        let span = self.0.span();
        let context = span.span_context();
        context.is_valid().then(|| context.trace_id().to_string())
    }
}

/// Makes `span` a child of `parent` (a root of a new trace if `parent` has none) and records
/// its trace id in the span's `trace_id` field (declare it `tracing::field::Empty`). Call it
/// before the span is first entered. Nothing happens for a span no layer records.
pub fn continue_trace(span: &Span, parent: Parent) {
    if span.is_disabled() {
        return;
    }
    // Fails only for a span already started or without the OpenTelemetry layer (tests that set
    // up their own subscriber): it then keeps the parent it has.
    let _ = span.set_parent(parent.0);
    let context = span.context();
    let otel_span = context.span();
    let ids = otel_span.span_context();
    if ids.is_valid() {
        span.record("trace_id", tracing::field::display(ids.trace_id()));
    }
}

/// Runs `work` in `span`, made the child of the context `message` carried ([`continue_trace`]):
/// how a consumer handles a record as a unit of work of the record's trace.
pub async fn within<F: std::future::Future>(span: Span, message: &Incoming, work: F) -> F::Output {
    continue_trace(&span, Parent::from_record(message));
    work.instrument(span).await
}

/// A span's context as W3C headers, for the records it causes. Empty when there is no
/// context (no OpenTelemetry layer): then no header is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceHeaders {
    traceparent: String,
    tracestate: String,
}

impl TraceHeaders {
    /// The context of `span`.
    pub fn of(span: &Span) -> Self {
        let mut headers = Self::default();
        let context = span.context();
        if context.span().span_context().is_valid() {
            TraceContextPropagator::new().inject_context(&context, &mut headers);
        }
        headers
    }

    /// The context of the span the caller is in.
    pub fn current() -> Self {
        Self::of(&Span::current())
    }

    /// The `(name, value)` headers to write: none, `traceparent`, or both.
    pub fn pairs<'s>(&'s self) -> impl Iterator<Item = (&'static str, &'s [u8])> + use<'s> {
        [(TRACEPARENT, &self.traceparent), (TRACESTATE, &self.tracestate)]
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| (name, value.as_bytes()))
    }

    /// The `traceparent` value, if any.
    pub fn traceparent(&self) -> Option<&str> {
        Some(self.traceparent.as_str()).filter(|v| !v.is_empty())
    }
}

impl Injector for TraceHeaders {
    fn set(&mut self, key: &str, value: String) {
        match key {
            TRACEPARENT => self.traceparent = value,
            TRACESTATE => self.tracestate = value,
            _ => {}
        }
    }
}

/// A Kafka record's headers, as the propagator reads them (the last of a repeated name wins).
struct RecordHeaders<'a>(&'a Incoming);

impl Extractor for RecordHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.header(key).and_then(|value| std::str::from_utf8(value).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.headers.iter().map(|(name, _)| name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    fn record(headers: &[(&str, &str)]) -> Incoming {
        Incoming::with_headers(headers)
    }

    /// Runs `f` under a subscriber with the OpenTelemetry layer (spans exported nowhere).
    fn traced<T>(f: impl FnOnce() -> T) -> T {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "test");
        let subscriber = tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
        tracing::subscriber::with_default(subscriber, f)
    }

    #[test]
    fn a_record_s_context_is_continued_and_passed_on_with_a_span_of_its_own() {
        let parent = format!("00-{TRACE_ID}-00f067aa0ba902b7-01");
        let incoming = record(&[(TRACEPARENT, &parent), (TRACESTATE, "vendor=x")]);
        let (headers, recorded) = traced(|| {
            let span = tracing::info_span!("work", trace_id = tracing::field::Empty);
            continue_trace(&span, Parent::from_record(&incoming));
            (TraceHeaders::of(&span), span.context().span().span_context().trace_id().to_string())
        });
        assert_eq!(recorded, TRACE_ID);
        let traceparent = headers.traceparent().expect("a traceparent");
        let [version, trace, span, flags] = traceparent.split('-').collect::<Vec<_>>()[..] else { panic!() };
        assert_eq!((version, trace, flags), ("00", TRACE_ID, "01"));
        assert_ne!(span, "00f067aa0ba902b7", "the record names the new span as its parent");
        let pairs: Vec<_> = headers.pairs().map(|(n, v)| (n, String::from_utf8(v.to_vec()).unwrap())).collect();
        assert_eq!(pairs[1], (TRACESTATE, "vendor=x".to_owned()));
    }

    #[test]
    fn without_a_usable_context_a_new_trace_begins() {
        for headers in [
            &[][..],
            &[(TRACEPARENT, "garbage")],
            &[(TRACEPARENT, "00-00000000000000000000000000000000-00f067aa0ba902b7-01")],
        ] {
            let incoming = record(headers);
            assert_eq!(Parent::from_record(&incoming).trace_id(), None);
            let traceparent = traced(|| {
                let span = tracing::info_span!("work", trace_id = tracing::field::Empty);
                continue_trace(&span, Parent::from_record(&incoming));
                TraceHeaders::of(&span).traceparent().map(str::to_owned)
            });
            let traceparent = traceparent.expect("a new trace");
            assert!(!traceparent.contains("00000000000000000000000000000000"), "{traceparent}");
        }
    }

    #[test]
    fn without_the_layer_no_header_is_written() {
        let span = tracing::info_span!("work", trace_id = tracing::field::Empty);
        continue_trace(&span, Parent::none());
        assert_eq!(TraceHeaders::of(&span).pairs().count(), 0);
    }
}
