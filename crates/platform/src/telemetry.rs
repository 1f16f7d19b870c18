//! Structured logs to stdout (`RUST_LOG` filters, `LOG_FORMAT` picks text or JSON), spans
//! (exported over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set: [`crate::trace`] says how
//! they connect across services) and the process-wide Prometheus recorder behind every
//! service's `/metrics`.
//!
//! Emails are personal data: every log line at info level and above goes out with each email
//! address masked (`a***@example.com`, [`mask_emails`]), whichever code logged it; debug and
//! trace lines, off unless asked for, keep them. Spans carry ids, never emails.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{Level, Metadata};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::{LogFormat, TelemetryConfig};

const DEFAULT_FILTER: &str = "info,librdkafka=warn,rdkafka=warn";

/// What [`init`] installed; [`Telemetry::shutdown`] sends the spans still buffered.
#[derive(Debug, Default)]
#[must_use = "call shutdown() before exiting, or the last spans are lost"]
pub struct Telemetry {
    /// Set when this call installed the subscriber and spans are exported.
    exporting: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still buffered (waiting at most a few seconds for the collector).
    pub async fn shutdown(self) {
        if let Some(provider) = self.exporting {
            // The export is a blocking HTTP call.
            let flushed = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(Duration::from_secs(5)));
            if let Ok(Err(error)) = flushed.await {
                eprintln!("the last spans could not be exported: {error}");
            }
        }
    }
}

/// Installs the global subscriber: logs filtered by `RUST_LOG`, and the spans of `service`
/// (info level and above, whatever `RUST_LOG` says, so trace context flows even when the logs
/// are quiet). Safe to call more than once (later calls are no-ops), which lets tests build
/// several applications in one process.
pub fn init(service: &'static str, config: &TelemetryConfig) -> Telemetry {
    let (provider, exporting) = tracer_provider(service, config);
    let writer = MaskingEmails(std::io::stdout);
    let installed =
        subscriber(config.log_format, writer, std::io::stdout().is_terminal(), &provider, service).try_init().is_ok();
    // Install the recorder now: metrics recorded before it exists are lost.
    prometheus();
    if installed && let Some(endpoint) = config.otlp_endpoint() {
        tracing::info!(%endpoint, "exporting spans over OTLP");
    }
    Telemetry { exporting: (installed && exporting).then_some(provider) }
}

/// Logs in `format` to `writer`, and the spans of `service` to `provider`, under one filter
/// ([`LogsAndSpans`]).
pub fn subscriber<W>(
    format: LogFormat,
    writer: W,
    ansi: bool,
    provider: &SdkTracerProvider,
    service: &'static str,
) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let logs = tracing_subscriber::fmt::layer().with_writer(writer).with_ansi(ansi);
    let logs = match format {
        LogFormat::Text => logs.boxed(),
        LogFormat::Json => logs.json().flatten_event(true).boxed(),
    };
    // Busy/idle times, code locations and thread names are left out of the spans: each costs
    // on every span.
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(service))
        .with_tracked_inactivity(false)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_context_activation(false);
    tracing_subscriber::registry().with(LogsAndSpans::from_env()).with(logs).with(spans)
}

/// The one filter of the whole subscriber: what `RUST_LOG` enables (the default filter
/// otherwise), and every span at info level and above, which carries trace context from a
/// request to what it causes whatever the logs show.
///
/// Global, not one filter per layer: with per-layer filters, an `enabled` query not followed by
/// its event (as librdkafka's logging makes) swallows the next event on that thread
/// (tokio-rs/tracing#2519); lines of the services went missing that way.
#[derive(Debug)]
struct LogsAndSpans(EnvFilter);

impl LogsAndSpans {
    fn from_env() -> Self {
        Self(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER)))
    }

    fn is_traced_span(metadata: &Metadata<'_>) -> bool {
        metadata.is_span() && *metadata.level() <= Level::INFO
    }
}

impl<S> tracing_subscriber::Layer<S> for LogsAndSpans
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        if Self::is_traced_span(metadata) {
            return tracing::subscriber::Interest::always();
        }
        tracing_subscriber::Layer::<S>::register_callsite(&self.0, metadata)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        let logs = tracing_subscriber::Layer::<S>::max_level_hint(&self.0);
        Some(logs.map_or(LevelFilter::TRACE, |level| level.max(LevelFilter::INFO)))
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) -> bool {
        Self::is_traced_span(metadata) || tracing_subscriber::Layer::<S>::enabled(&self.0, metadata, ctx)
    }

    // The environment's filter follows spans for its span-scoped directives (`[request]=debug`).
    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, id: &tracing::span::Id, ctx: Ctx<'_, S>) {
        self.0.on_new_span(attrs, id, ctx);
    }

    fn on_record(&self, id: &tracing::span::Id, values: &tracing::span::Record<'_>, ctx: Ctx<'_, S>) {
        self.0.on_record(id, values, ctx);
    }

    fn on_enter(&self, id: &tracing::span::Id, ctx: Ctx<'_, S>) {
        self.0.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &tracing::span::Id, ctx: Ctx<'_, S>) {
        self.0.on_exit(id, ctx);
    }

    fn on_close(&self, id: tracing::span::Id, ctx: Ctx<'_, S>) {
        self.0.on_close(id, ctx);
    }
}

type Ctx<'a, S> = tracing_subscriber::layer::Context<'a, S>;

/// The provider of the spans: exporting in batches over OTLP when an endpoint is configured
/// (true), otherwise to nowhere (ids are made, spans dropped when they end).
fn tracer_provider(service: &'static str, config: &TelemetryConfig) -> (SdkTracerProvider, bool) {
    let mut resource = opentelemetry_sdk::Resource::builder();
    // OTEL_SERVICE_NAME, when set, names it (the detectors of `builder()` read it).
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service);
    }
    let builder = SdkTracerProvider::builder().with_resource(resource.build());
    let Some(endpoint) = config.otlp_endpoint() else { return (builder.build(), false) };
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    match opentelemetry_otlp::SpanExporter::builder().with_http().with_endpoint(&url).build() {
        Ok(exporter) => (builder.with_batch_exporter(exporter).build(), true),
        Err(error) => {
            eprintln!("{service}: spans will not be exported: the OTLP exporter for {url} cannot be built: {error}");
            (builder.build(), false)
        }
    }
}

/// A log writer masking the emails of lines at info level and above ([`mask_emails`]).
#[derive(Debug, Clone, Copy)]
pub struct MaskingEmails<M>(pub M);

/// One line's writer: the formatter hands over a whole event in one `write_all`.
#[derive(Debug)]
pub struct MaskedLine<W> {
    inner: W,
    mask: bool,
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for MaskingEmails<M> {
    type Writer = MaskedLine<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        MaskedLine { inner: self.0.make_writer(), mask: true }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        MaskedLine { inner: self.0.make_writer_for(meta), mask: *meta.level() <= Level::INFO }
    }
}

impl<W: Write> Write for MaskedLine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) if self.mask => self.inner.write_all(mask_emails(text).as_bytes())?,
            _ => self.inner.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// `text` with every email address's local part cut to its first character and `***`:
/// `ada.lovelace@example.com` becomes `a***@example.com`. An address is a run of the
/// characters a local part may hold, `@`, and a domain with at least one dot.
pub fn mask_emails(text: &str) -> Cow<'_, str> {
    let is_local = |c: char| c.is_alphanumeric() || "._%+-'!#$&*=?^`{|}~/".contains(c);
    let is_domain = |c: char| c.is_alphanumeric() || c == '.' || c == '-';
    if !text.contains('@') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        let (before, after) = (&rest[..at], &rest[at + 1..]);
        let local_start = before.char_indices().rev().take_while(|(_, c)| is_local(*c)).last().map(|(i, _)| i);
        let domain_len = after.find(|c: char| !is_domain(c)).unwrap_or(after.len());
        let domain = after[..domain_len].trim_end_matches('.');
        match local_start {
            Some(start) if domain.contains('.') && !domain.starts_with('.') => {
                let first = before[start..].chars().next().expect("a local part has a first character");
                out.push_str(&before[..start]);
                out.push(first);
                out.push_str("***@");
                out.push_str(domain);
                rest = &after[domain.len()..];
            }
            _ => {
                out.push_str(&rest[..=at]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The buckets of every `*_seconds` histogram: from a fast HTTP answer (half a millisecond)
/// to a write waiting out its command timeout.
const SECONDS_BUCKETS: [f64; 16] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// The process's Prometheus handle, installing the recorder on first use.
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                // Histograms with buckets (aggregatable across instances), not summaries.
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
                .expect("the buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; the handle still renders ours.
            let _ = metrics::set_global_recorder(recorder);
            process_metrics().describe();
            handle
        })
        .clone()
}

fn process_metrics() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// `/metrics`: the process figures (`process_resident_memory_bytes`, CPU seconds, threads, open
/// files) read now, then everything in the Prometheus text format.
pub fn render() -> String {
    let handle = prometheus();
    process_metrics().collect();
    handle.render()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn emails_keep_their_first_character_and_domain() {
        assert_eq!(mask_emails("created ada.lovelace@example.com."), "created a***@example.com.");
        assert_eq!(
            mask_emails(r#"{"email":"Bob+x@mail.example.org","n":1}"#),
            r#"{"email":"B***@mail.example.org","n":1}"#
        );
        assert_eq!(mask_emails("a@b.c and z@y.x"), "a***@b.c and z***@y.x");
        for untouched in ["no address here", "user@localhost", "@example.com", "a @ b", "x@.com"] {
            assert_eq!(mask_emails(untouched), untouched);
        }
    }

    proptest! {
        /// Whatever surrounds it, no address of a local part longer than one character is
        /// left whole.
        #[test]
        fn no_address_survives(
            before in "[ -~]{0,20}",
            local in "[a-zA-Z0-9._+-]{2,20}",
            domain in "[a-z0-9-]{1,10}\\.[a-z]{2,6}",
            after in "[ -~]{0,20}",
        ) {
            let address = format!("{local}@{domain}");
            let line = format!("{before} {address} {after}");
            let masked = mask_emails(&line);
            prop_assert!(!masked.contains(&address), "{masked}");
        }
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// librdkafka asks whether its lines are enabled and logs only some: the question alone
    /// must not swallow the next line (it did with one filter per layer).
    #[test]
    fn a_question_about_a_quiet_target_loses_no_line_and_info_spans_exist_whatever_the_filter() {
        let captured = Captured::default();
        let sink = captured.clone();
        let provider = SdkTracerProvider::builder().build();
        let subscriber = subscriber(LogFormat::Text, move || sink.clone(), false, &provider, "test");
        let (traced, quiet) = tracing::subscriber::with_default(subscriber, || {
            for n in 0..3 {
                let _ = tracing::enabled!(target: "librdkafka", Level::INFO);
                tracing::info!(n, "line after a question");
            }
            let span = tracing::info_span!("work", trace_id = tracing::field::Empty);
            crate::trace::continue_trace(&span, crate::trace::Parent::none());
            tracing::warn!(target: "librdkafka", "shown");
            tracing::info!(target: "librdkafka", "not shown");
            (
                crate::trace::TraceHeaders::of(&span).traceparent().is_some(),
                !tracing::enabled!(target: "librdkafka", Level::INFO),
            )
        });
        let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(logs.matches("line after a question").count(), 3, "{logs}");
        assert!(traced, "the span has a trace context");
        if std::env::var_os("RUST_LOG").is_none() {
            assert!(
                quiet && logs.contains("shown") && !logs.contains("not shown"),
                "the default filter applies: {logs}"
            );
        }
    }

    #[test]
    fn info_lines_are_masked_and_debug_lines_kept() {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::DEBUG)
            .with_writer(MaskingEmails(move || sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(email = "grace.hopper@example.com", "user created");
            tracing::warn!("rejected: hedy.lamarr@example.com is already taken");
            tracing::debug!(email = "ada.lovelace@example.com", "debugging");
        });
        let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(logs.contains("g***@example.com") && logs.contains("h***@example.com"), "{logs}");
        assert!(!logs.contains("grace.hopper") && !logs.contains("hedy.lamarr"), "{logs}");
        assert!(logs.contains("ada.lovelace@example.com"), "debug lines keep the address: {logs}");
    }
}
