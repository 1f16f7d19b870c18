//! Structured logs to stdout (`RUST_LOG` filters, `LOG_FORMAT` picks text or JSON) and the
//! process-wide Prometheus recorder behind every service's `/metrics`.
//!
//! Emails are personal data: every log line at info level and above goes out with each email
//! address masked (`a***@example.com`, [`mask_emails`]), whichever code logged it; debug and
//! trace lines, off unless asked for, keep them.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogFormat, TelemetryConfig};

const DEFAULT_FILTER: &str = "info,librdkafka=warn,rdkafka=warn";

/// Installs the global subscriber. Safe to call more than once (later calls are no-ops), which
/// lets tests build several applications in one process.
pub fn init(config: &TelemetryConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(MaskingEmails(std::io::stdout))
        .with_ansi(std::io::stdout().is_terminal());
    let _already_set = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // Install the recorder now: metrics recorded before it exists are lost.
    prometheus();
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
