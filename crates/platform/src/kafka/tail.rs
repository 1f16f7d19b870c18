//! Reading every partition of a topic without a consumer group: how a process keeps its own
//! projection (from the beginning, rebuilt on every start) or listens for replies (from now).
//!
//! [`Positions`] says how far the tail has applied each partition, so a reader can wait until
//! a given record (an event it caused) is reflected in its projection: read-your-writes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use futures::FutureExt as _;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{oneshot, watch};
use tracing::{Instrument as _, Span};

use super::brokers::BrokerWatch;
use super::consumer::{HandleError, Handler, Incoming};
use super::dead_letter::Poison;
use super::lag::{LAG_INTERVAL, LagReadiness, millis_ago};
use crate::config::KafkaConfig;
use crate::health::Health;
use crate::shutdown::Shutdown;

/// The longest a tail waits before trying a record (or its dead letter) again.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Where a tail starts reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAt {
    /// The whole topic: projections.
    Beginning,
    /// Only what arrives from now on.
    End,
    /// Records from this long ago on (falls back to the end where there are none).
    Since(Duration),
    /// After these offsets (partition -> the last offset already reflected); a partition not
    /// listed, or whose offset is no longer in the log, starts at its beginning.
    After(HashMap<i32, i64>),
}

/// Where records that can never be applied go, and who gave up on them.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    pub producer: super::Producer,
    pub topic: String,
    /// Written as the dead letter's consumer group header: which reader gave up.
    pub reader: String,
}

/// The spans of a live tail's updates: one per run of consecutive records carrying the same
/// trace context (the events of one import batch share one span, an interactive write has one
/// of its own), ended when a record of another context comes or none is waiting. Records
/// without a context get no span. A record's span is lent, not cloned: a clone and its drop
/// each cost a trip to the subscriber's registry, per record of an import.
#[derive(Debug)]
struct UpdateSpans {
    traceparent: Vec<u8>,
    open: Span,
}

impl Default for UpdateSpans {
    fn default() -> Self {
        Self { traceparent: Vec::new(), open: Span::none() }
    }
}

impl UpdateSpans {
    /// The span applying `message` belongs to.
    fn of(&mut self, topic: &str, message: &Incoming) -> &Span {
        let Some(traceparent) = message.header(crate::trace::TRACEPARENT) else {
            self.end();
            return &self.open;
        };
        if self.is_open() && self.traceparent == traceparent {
            return &self.open;
        }
        let span = tracing::info_span!("apply", topic, trace_id = tracing::field::Empty);
        crate::trace::continue_trace(&span, crate::trace::Parent::from_record(message));
        self.traceparent.clear();
        self.traceparent.extend_from_slice(traceparent);
        self.open = span;
        &self.open
    }

    fn is_open(&self) -> bool {
        !self.open.is_none()
    }

    fn end(&mut self) {
        self.open = Span::none();
    }
}

/// How far a tail has applied each partition (the next offset it will apply).
#[derive(Debug, Clone)]
pub struct Positions {
    next: Arc<DashMap<i32, i64>>,
    /// The offset of the last record applied (or reflected by where the tail started).
    last: Arc<DashMap<i32, i64>>,
    changed: watch::Sender<u64>,
}

impl Default for Positions {
    fn default() -> Self {
        Self { next: Arc::default(), last: Arc::default(), changed: watch::Sender::new(0) }
    }
}

impl Positions {
    /// Whether the record at `offset` of `partition` has been applied.
    pub fn applied(&self, partition: i32, offset: i64) -> bool {
        self.next.get(&partition).is_some_and(|next| *next > offset)
    }

    /// Waits until the record at `offset` of `partition` is applied; false after `timeout`.
    pub async fn wait_applied(&self, partition: i32, offset: i64, timeout: Duration) -> bool {
        let mut changes = self.changed.subscribe();
        let wait = async {
            while !self.applied(partition, offset) {
                if changes.changed().await.is_err() {
                    return false;
                }
            }
            true
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }

    /// The offset of the last record applied per partition: what two readers of a topic
    /// compare (unlike the next offsets, it does not depend on whether a reader has stepped
    /// over a transaction's trailing commit marker).
    pub fn last_applied(&self) -> HashMap<i32, i64> {
        self.last.iter().map(|e| (*e.key(), *e.value())).collect()
    }

    /// Records that the record at `offset` of `partition` is applied.
    pub fn record_applied(&self, partition: i32, offset: i64) {
        let mut last = self.last.entry(partition).or_insert(offset);
        *last = (*last).max(offset);
        drop(last);
        self.advance(partition, offset + 1);
    }

    fn advance(&self, partition: i32, next: i64) {
        let mut entry = self.next.entry(partition).or_insert(next);
        if *entry < next {
            *entry = next;
        }
        drop(entry);
        // Waiters subscribe before they look at the positions, so one that could miss this
        // change is already counted here.
        if self.changed.receiver_count() > 0 {
            self.changed.send_modify(|generation| *generation = generation.wrapping_add(1));
        }
    }
}

/// A tail running in its own task.
#[derive(Debug)]
pub struct Following {
    pub positions: Positions,
    /// Ends after the shutdown the tail was given.
    pub task: tokio::task::JoinHandle<()>,
}

/// The tail stopped (shutdown) before it caught up.
#[derive(Debug, thiserror::Error)]
#[error("stopped reading {0} before catching up")]
pub struct TailStopped(String);

/// A tail could not be started, or stopped before it caught up.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("cannot start reading: {0}")]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Stopped(#[from] TailStopped),
}

/// An assigned, group-less reader of every partition of one topic.
pub struct Tail {
    consumer: StreamConsumer<TailStats>,
    topic: String,
    positions: Positions,
    /// The high watermarks when the tail started: reaching them all is "caught up".
    targets: HashMap<i32, i64>,
    /// Whether every partition's high watermark was 0 at the start: nothing was ever written.
    never_written: bool,
    dead_letters: Option<DeadLetters>,
    /// Records dead-lettered so far.
    dead_lettered: Arc<std::sync::atomic::AtomicU64>,
    /// The readiness check kept false while the tail, once caught up, lags too far behind.
    readiness: Option<(Health, &'static str)>,
    max_lag: Duration,
}

impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tail").field("topic", &self.topic).field("targets", &self.targets).finish_non_exhaustive()
    }
}

impl Tail {
    pub async fn start(config: &KafkaConfig, topic: &str, start_at: StartAt) -> Result<Self, KafkaError> {
        let stats = TailStats { topic: topic.to_owned(), lag: Arc::default(), brokers: BrokerWatch::new(config) };
        let consumer: StreamConsumer<TailStats> = super::consumer_config(config, &format!("tail-{topic}"))
            // Never joins a group or commits: it only reads, from where it is told.
            .set("group.id", "tail-unused")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("statistics.interval.ms", LAG_INTERVAL.as_millis().to_string())
            .create_with_context(stats)?;
        consumer.context().brokers.attach(consumer.client());
        let timeout = config.startup_timeout();
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        let partitions: Vec<i32> =
            metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
        let positions = Positions::default();
        let mut targets = HashMap::new();
        let mut assignment = TopicPartitionList::new();
        let since = match start_at {
            StartAt::Since(ago) => Some(millis_ago(ago)),
            _ => None,
        };
        let mut times = TopicPartitionList::new();
        let mut never_written = true;
        let mut highs = HashMap::new();
        for &partition in &partitions {
            let (low, high) = watermarks(&consumer, topic, partition, timeout).await?;
            never_written &= high == 0;
            highs.insert(partition, high);
            let start = match &start_at {
                StartAt::Beginning => low,
                StartAt::End | StartAt::Since(_) => high,
                StartAt::After(reflected) => match reflected.get(&partition) {
                    Some(&last) if last + 1 >= low => {
                        positions.last.insert(partition, last);
                        (last + 1).min(high)
                    }
                    _ => low,
                },
            };
            if let Some(ms) = since {
                times.add_partition_offset(topic, partition, Offset::Offset(ms))?;
            }
            positions.advance(partition, start);
            if high > start {
                targets.insert(partition, high);
            }
            assignment.add_partition_offset(topic, partition, Offset::Offset(start))?;
        }
        if since.is_some() && !partitions.is_empty() {
            // offsets_for_times answers the first offset at or after the time, or End.
            let found = consumer.offsets_for_times(times, timeout)?;
            for element in found.elements() {
                if let Offset::Offset(offset) = element.offset() {
                    let partition = element.partition();
                    assignment.set_partition_offset(topic, partition, Offset::Offset(offset))?;
                    positions.next.insert(partition, offset);
                    // Caught up only once the records since then are applied.
                    if let Some(&high) = highs.get(&partition).filter(|&&high| high > offset) {
                        targets.insert(partition, high);
                    }
                }
            }
        }
        consumer.assign(&assignment)?;
        Ok(Self {
            consumer,
            topic: topic.to_owned(),
            positions,
            targets,
            never_written,
            dead_letters: None,
            dead_lettered: Arc::default(),
            readiness: None,
            max_lag: Duration::from_secs(config.ready_max_lag_secs),
        })
    }

    /// Once caught up, keeps the readiness check `check` of `health` false while the tail is
    /// further behind than `READY_MAX_LAG_SECS` ([`KafkaConfig::ready_max_lag_secs`]): not
    /// ready after two lag readings in a row past it, ready again under half of it.
    pub fn ready_while_current(mut self, health: Health, check: &'static str) -> Self {
        self.readiness = Some((health, check));
        self
    }

    /// Sends records that can never be applied to the dead-letter topic (by default they are
    /// only logged and counted).
    pub fn dead_letters(mut self, dead_letters: DeadLetters) -> Self {
        self.dead_letters = Some(dead_letters);
        self
    }

    /// Whether nothing was ever written to the topic when the tail started (as opposed to
    /// records that were all compacted or deleted away).
    pub fn never_written(&self) -> bool {
        self.never_written
    }

    /// How many records this tail has dead-lettered (or skipped) so far.
    pub fn dead_lettered(&self) -> Arc<std::sync::atomic::AtomicU64> {
        Arc::clone(&self.dead_lettered)
    }

    pub fn positions(&self) -> Positions {
        self.positions.clone()
    }

    /// Runs the tail in a task of its own and returns once it has caught up: how a process
    /// rebuilds a projection before it serves. The task keeps applying until `shutdown`.
    pub async fn follow<H: Handler + 'static>(self, handler: H, shutdown: Shutdown) -> Result<Following, TailStopped> {
        let topic = self.topic.clone();
        let positions = self.positions();
        let (caught_up, done) = oneshot::channel();
        let task = tokio::spawn(async move { self.run(&handler, Some(caught_up), shutdown).await });
        done.await.map_err(|_| TailStopped(topic))?;
        Ok(Following { positions, task })
    }

    /// Applies records with `handler` until shutdown; `caught_up` fires once every partition has
    /// reached where it ended when the tail started. A retryable failure is retried in place; a
    /// permanent one is logged and skipped (a tail does not own the topic it reads).
    pub async fn run<H: Handler>(self, handler: &H, caught_up: Option<oneshot::Sender<()>>, shutdown: Shutdown) {
        let mut caught_up = caught_up;
        let mut check = tokio::time::interval(Duration::from_millis(200));
        let mut lag = Lag::new(&self);
        let mut report = tokio::time::interval(LAG_INTERVAL);
        let mut updates = UpdateSpans::default();
        loop {
            if caught_up.is_some() && self.caught_up() {
                let dead_lettered = self.dead_lettered.load(std::sync::atomic::Ordering::Relaxed);
                tracing::info!(topic = %self.topic, dead_lettered, "caught up");
                caught_up.take().map(|tx| tx.send(()));
            }
            // While a span is open, the next record may belong to it: take it if it is there
            // already, otherwise the span's records are all applied and it ends.
            let waiting = match updates.is_open() {
                true if !shutdown.is_triggered() => self.consumer.recv().now_or_never(),
                _ => None,
            };
            let received = match waiting {
                Some(received) => received,
                None => {
                    updates.end();
                    tokio::select! {
                        biased;
                        () = shutdown.wait() => break,
                        received = self.consumer.recv() => received,
                        // Re-check the positions even when nothing arrives (trailing control records).
                        _ = check.tick(), if caught_up.is_some() => {
                            self.refresh_positions();
                            continue;
                        }
                        _ = report.tick() => {
                            lag.report(caught_up.is_none());
                            continue;
                        }
                    }
                }
            };
            let message = match received {
                Ok(message) => Incoming::from_borrowed(&message),
                Err(error) => {
                    tracing::warn!(topic = %self.topic, %error, "tail error; continuing");
                    continue;
                }
            };
            // Updates continue the trace of what caused them once the tail follows live (a
            // rebuild re-reads history: no span). The span is not entered for each record (an
            // import's million would each pay for it); the tail's own lines about a record are
            // logged in it.
            let rebuilding = Span::none();
            let span = if caught_up.is_none() { updates.of(&self.topic, &message) } else { &rebuilding };
            if !self.apply(handler, &message, span, &shutdown).await {
                break;
            }
            self.positions.record_applied(message.partition, message.offset);
            lag.applied(&message);
            // The ticker's branch loses every race while records keep arriving.
            if lag.due() {
                lag.report(caught_up.is_none());
            }
        }
    }

    async fn apply<H: Handler>(&self, handler: &H, message: &Incoming, span: &Span, shutdown: &Shutdown) -> bool {
        let mut backoff = Duration::from_millis(100);
        loop {
            match handler.handle(message).await {
                Ok(()) => return true,
                Err(HandleError::Permanent(reason)) => {
                    let poison = Poison::of(reason.as_ref());
                    return self.dead_letter(message, &poison, shutdown).instrument(span.clone()).await;
                }
                Err(HandleError::Retryable(error) | HandleError::Unavailable(error)) => {
                    span.in_scope(
                        || tracing::warn!(topic = %self.topic, %error, "cannot apply a record yet; will retry"),
                    );
                    if !super::consumer::wait(shutdown, &mut backoff, MAX_BACKOFF).await {
                        return false;
                    }
                }
            }
        }
    }

    /// Sends `message` to the dead letters (retrying while the topic cannot be written); false
    /// if shutdown came first.
    async fn dead_letter(&self, message: &Incoming, reason: &Poison, shutdown: &Shutdown) -> bool {
        let (partition, offset) = (message.partition, message.offset);
        self.dead_lettered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        metrics::counter!("kafka_tail_dead_lettered_total", "topic" => self.topic.clone()).increment(1);
        let Some(dead_letters) = &self.dead_letters else {
            tracing::error!(topic = %self.topic, partition, offset, %reason, "skipping a record that cannot be applied");
            return true;
        };
        let letter = super::dead_letter::DeadLetter::new(message, reason);
        let mut backoff = Duration::from_millis(100);
        loop {
            let record = letter.record(&dead_letters.topic, &dead_letters.reader, message);
            match dead_letters.producer.send(record).await {
                Ok(_) => {
                    tracing::error!(topic = %self.topic, partition, offset, %reason,
                        dead_letter_topic = %dead_letters.topic, "a record that cannot be applied was dead-lettered");
                    return true;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot write to the dead-letter topic; will retry");
                    if !super::consumer::wait(shutdown, &mut backoff, MAX_BACKOFF).await {
                        return false;
                    }
                }
            }
        }
    }

    fn caught_up(&self) -> bool {
        self.targets.iter().all(|(partition, target)| self.positions.applied(*partition, target - 1))
    }

    fn refresh_positions(&self) {
        if let Ok(position) = self.consumer.position() {
            for element in position.elements() {
                if let Offset::Offset(next) = element.offset() {
                    self.positions.advance(element.partition(), next);
                }
            }
        }
    }
}

/// A projection's lag: `projection_lag_events{topic, partition}`, from librdkafka's statistics
/// (a tail neither stores nor commits offsets, so librdkafka's own lag figure is -1 for it: this
/// is the partition's last stable offset minus the position handed to the tail, which applies
/// each record as it gets it).
struct TailStats {
    topic: String,
    /// The latest lag of each partition, for [`Lag`]'s lag in seconds.
    lag: Arc<DashMap<i32, i64>>,
    brokers: BrokerWatch,
}

impl rdkafka::ClientContext for TailStats {
    fn stats(&self, statistics: rdkafka::Statistics) {
        self.brokers.check(&statistics);
        let Some(topic) = statistics.topics.get(&self.topic) else { return };
        for (&partition, p) in &topic.partitions {
            if partition < 0 || p.ls_offset < 0 || p.app_offset < 0 {
                continue;
            }
            let events = (p.ls_offset - p.app_offset).max(0);
            self.lag.insert(partition, events);
            let labels = [("topic", self.topic.clone()), ("partition", partition.to_string())];
            metrics::gauge!("projection_lag_events", &labels).set(events as f64);
        }
    }
}

impl rdkafka::consumer::ConsumerContext for TailStats {}

/// `projection_lag_seconds{topic}`: how long ago the newest record applied in a lagging
/// partition was written (0 when none lags); and `projection_events_applied_total{topic}`.
struct Lag {
    topic: String,
    events: Arc<DashMap<i32, i64>>,
    /// Per partition, the write time of the last record applied.
    last_written_ms: HashMap<i32, i64>,
    started_ms: i64,
    reported: std::time::Instant,
    applied: metrics::Counter,
    readiness: Option<LagReadiness>,
}

impl Lag {
    fn new(tail: &Tail) -> Self {
        let readiness = tail
            .readiness
            .clone()
            .map(|(health, check)| LagReadiness::new(health, check, tail.topic.clone(), tail.max_lag));
        Self {
            topic: tail.topic.clone(),
            events: Arc::clone(&tail.consumer.context().lag),
            last_written_ms: HashMap::new(),
            started_ms: millis_ago(Duration::ZERO),
            reported: std::time::Instant::now(),
            applied: metrics::counter!("projection_events_applied_total", "topic" => tail.topic.clone()),
            readiness,
        }
    }

    fn applied(&mut self, message: &Incoming) {
        self.applied.increment(1);
        if let Some(written) = message.timestamp_ms {
            self.last_written_ms.insert(message.partition, written);
        }
    }

    fn due(&self) -> bool {
        self.reported.elapsed() >= LAG_INTERVAL
    }

    /// Publishes the lag; once `live` (caught up), judges readiness by it.
    fn report(&mut self, live: bool) {
        self.reported = std::time::Instant::now();
        let now = millis_ago(Duration::ZERO);
        let lagging =
            self.events.iter().filter(|entry| *entry.value() > 0).map(|entry| *entry.key()).collect::<Vec<_>>();
        let seconds = lagging
            .iter()
            .map(|p| (now - self.last_written_ms.get(p).copied().unwrap_or(self.started_ms)).max(0) as f64 / 1000.0)
            .fold(0.0, f64::max);
        metrics::gauge!("projection_lag_seconds", "topic" => self.topic.clone()).set(seconds);
        if let Some(readiness) = self.readiness.as_mut().filter(|_| live) {
            readiness.judge(seconds);
        }
    }
}

/// The partition's low and high watermarks, retrying while its leadership is still settling
/// (a topic created a moment ago).
async fn watermarks(
    consumer: &StreamConsumer<TailStats>,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<(i64, i64), KafkaError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match consumer.fetch_watermarks(topic, partition, timeout) {
            Err(error) if is_transient(&error) && tokio::time::Instant::now() < deadline => {
                tracing::debug!(%topic, partition, %error, "partition not ready yet");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            result => return result,
        }
    }
}

fn is_transient(error: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        error.rdkafka_error_code(),
        Some(C::NotLeaderForPartition | C::LeaderNotAvailable | C::UnknownTopicOrPartition | C::UnknownPartition)
    )
}

#[cfg(test)]
mod tests {
    use opentelemetry_sdk::trace::SdkTracerProvider;

    use super::*;
    use crate::config::LogFormat;
    use crate::trace::{TRACEPARENT, TraceHeaders};

    fn record(traceparent: Option<&str>) -> Incoming {
        let headers: Vec<(&str, &str)> = traceparent.map(|t| (TRACEPARENT, t)).into_iter().collect();
        Incoming::with_headers(&headers)
    }

    fn trace_id(span: &Span) -> String {
        TraceHeaders::of(span).traceparent().expect("a context").split('-').nth(1).unwrap().to_owned()
    }

    #[test]
    fn records_of_one_context_share_one_span_and_every_other_context_has_its_own() {
        let (a, b) = ("a".repeat(32), "b".repeat(32));
        let (from_a, from_b) = (format!("00-{a}-00f067aa0ba902b7-01"), format!("00-{b}-00f067aa0ba902b7-01"));
        let provider = SdkTracerProvider::builder().build();
        let subscriber = crate::telemetry::subscriber(LogFormat::Text, std::io::sink, false, &provider, "test");
        tracing::subscriber::with_default(subscriber, || {
            let mut updates = UpdateSpans::default();
            let first = updates.of("t", &record(Some(&from_a))).clone();
            let second = updates.of("t", &record(Some(&from_a))).clone();
            assert_eq!(first.id(), second.id(), "an import batch's events: one span");
            assert_eq!(trace_id(&first), a);
            let other = updates.of("t", &record(Some(&from_b))).clone();
            assert_ne!(other.id(), first.id());
            assert_eq!(trace_id(&other), b);
            assert!(updates.of("t", &record(None)).is_none(), "no context, no span");
            assert!(!updates.is_open());
            let again = updates.of("t", &record(Some(&from_b))).clone();
            assert_ne!(again.id(), other.id(), "a span once ended is not reopened");
            updates.end();
            assert!(!updates.is_open());
        });
    }
}
