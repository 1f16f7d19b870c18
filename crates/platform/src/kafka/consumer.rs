//! The at-least-once consumer loop.
//!
//! A message's offset is stored only after its [`Handler`] succeeded (or after it was written to
//! the dead-letter topic), stored offsets are committed every `auto.commit.interval.ms`,
//! synchronously when partitions are revoked, and on shutdown. A crash therefore redelivers at
//! most the messages whose effect was not yet recorded, which handlers must tolerate.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use rdkafka::Message as _;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers as _};
use rdkafka::topic_partition_list::TopicPartitionList;
use tokio_util::task::AbortOnDropHandle;

use super::brokers::{BrokerWatch, STATISTICS_INTERVAL_MS};
use super::dead_letter::{DeadLetter, Poison};
use super::lag::{GroupLag, LagReadiness};
use super::producer::Producer;
use crate::config::KafkaConfig;
use crate::health::Health;
use crate::shutdown::Shutdown;

/// A consumed message, owned, so handlers can be unit-tested without a broker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Incoming {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Producer or log-append time, in milliseconds since the Unix epoch.
    pub timestamp_ms: Option<i64>,
}

impl Incoming {
    /// A record of topic `t` at offset 0 with only these headers: what the unit tests read.
    #[cfg(test)]
    pub(crate) fn with_headers(headers: &[(&str, &str)]) -> Self {
        Self {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            key: None,
            payload: None,
            headers: headers.iter().map(|(k, v)| ((*k).to_owned(), Some(v.as_bytes().to_vec()))).collect(),
            timestamp_ms: None,
        }
    }

    /// The value of the last header called `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().rev().find(|(n, _)| n == name).and_then(|(_, v)| v.as_deref())
    }

    /// The size of its payload (0 for a tombstone).
    pub fn payload_len(&self) -> usize {
        self.payload.as_ref().map_or(0, Vec::len)
    }

    pub(crate) fn from_borrowed(message: &BorrowedMessage<'_>) -> Self {
        let headers = message
            .headers()
            .map(|hs| hs.iter().map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec))).collect())
            .unwrap_or_default();
        Self {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers,
            timestamp_ms: message.timestamp().to_millis(),
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a handler could not apply a message. The typed errors of decoding and publishing
/// (`platform::topic::DecodeError`, `PublishError`, [`super::ProduceError`]) convert into it,
/// each deciding by its type which of the three it is.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Failed because of the message, perhaps not for good (a projection not caught up with
    /// it yet, a file it names not writable): retried with backoff and jitter, its offset not
    /// stored, up to the consumer's retry budget (`CONSUMER_RETRY_ATTEMPTS` tries:
    /// [`KafkaConfig::consumer_retry_attempts`]); then
    /// dead-lettered as `retries_exhausted` and the partition moves on.
    #[error("retryable: {0}")]
    Retryable(#[source] BoxError),
    /// A dependency is down (Kafka, the registry): not the message's fault. Retried with
    /// backoff for as long as it takes, never dead-lettered; the partition waits meanwhile.
    #[error("unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// Can never succeed (undecodable, violates the contract): the message goes to the
    /// dead-letter topic with this reason and the partition moves on.
    #[error("permanent: {0}")]
    Permanent(#[source] BoxError),
}

impl HandleError {
    pub fn retryable(error: impl Into<BoxError>) -> Self {
        Self::Retryable(error.into())
    }

    pub fn unavailable(error: impl Into<BoxError>) -> Self {
        Self::Unavailable(error.into())
    }

    pub fn permanent(error: impl Into<BoxError>) -> Self {
        Self::Permanent(error.into())
    }

    /// Whether the message is tried again (within the budget or not).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_) | Self::Unavailable(_))
    }
}

impl From<super::ProduceError> for HandleError {
    /// A produce that may succeed later failed for want of a broker: an outage.
    fn from(error: super::ProduceError) -> Self {
        if error.is_retryable() { Self::unavailable(error) } else { Self::permanent(error) }
    }
}

/// Applies one message. Must be idempotent: after a crash the same message can come again.
pub trait Handler: Send + Sync {
    fn handle(&self, message: &Incoming) -> impl Future<Output = Result<(), HandleError>> + Send;

    /// Called before `message` goes to the dead-letter topic (it failed for good, or spent its
    /// retry budget): what must still be said about it, such as a job marked failed. Best
    /// effort: the message is dead-lettered whatever happens here.
    fn given_up(&self, message: &Incoming, reason: &Poison) -> impl Future<Output = ()> + Send {
        let _ = (message, reason);
        async {}
    }
}

/// Runs a long job (an import, an export) for a handler, but gives it up when `shutdown`
/// starts instead of holding shutdown up: the job's message then counts as not handled (its
/// offset is not stored) and is delivered again after a restart, so the job must be idempotent.
pub async fn unless_shutdown(
    shutdown: &Shutdown,
    what: impl std::fmt::Display,
    job: impl Future<Output = Result<(), HandleError>>,
) -> Result<(), HandleError> {
    tokio::select! {
        result = job => result,
        () = shutdown.wait() => {
            tracing::info!(job = %what, "interrupted by shutdown; it runs again after restart");
            Err(HandleError::unavailable("shutting down"))
        }
    }
}

/// What a batch came to: one outcome per message, or an error for the whole batch.
pub type BatchOutcome = Result<Vec<Result<(), HandleError>>, HandleError>;

/// Applies messages in batches (in order; within a partition, offset order). Must be idempotent.
pub trait BatchHandler: Send + Sync {
    /// One outcome per message: a permanent error sends that message to the dead-letter topic.
    /// A retryable error, for the batch or for any message, retries the whole batch.
    fn handle_batch(&self, batch: &[Incoming]) -> impl Future<Output = BatchOutcome> + Send;

    /// See [`Handler::given_up`].
    fn given_up(&self, message: &Incoming, reason: &Poison) -> impl Future<Output = ()> + Send {
        let _ = (message, reason);
        async {}
    }
}

/// A [`Handler`] as a batch handler of batches of one.
struct One<'a, H>(&'a H);

impl<H: Handler> BatchHandler for One<'_, H> {
    async fn handle_batch(&self, batch: &[Incoming]) -> BatchOutcome {
        let mut outcomes = Vec::with_capacity(batch.len());
        for message in batch {
            outcomes.push(self.0.handle(message).await);
        }
        Ok(outcomes)
    }

    fn given_up(&self, message: &Incoming, reason: &Poison) -> impl Future<Output = ()> + Send {
        self.0.given_up(message, reason)
    }
}

/// What to consume and where poison messages go.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub group_id: String,
    pub topics: Vec<String>,
    pub dead_letter_topic: String,
    /// First delay before retrying a retryable failure; doubles up to `max_retry_backoff`
    /// (each wait drawn between half and all of it: members failing together do not retry in
    /// step).
    pub retry_backoff: Duration,
    pub max_retry_backoff: Duration,
    /// Longest a handler may take before the group considers this member gone.
    pub max_poll_interval: Duration,
    /// A batch takes no further message once its payloads add up to this many bytes (it
    /// always takes one): what a handler holds at once, and how much one transaction carries.
    pub max_batch_bytes: usize,
}

impl ConsumerSettings {
    pub fn new(group_id: impl Into<String>, topics: &[&str], dead_letter_topic: impl Into<String>) -> Self {
        Self {
            group_id: group_id.into(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            dead_letter_topic: dead_letter_topic.into(),
            retry_backoff: Duration::from_millis(100),
            max_retry_backoff: Duration::from_secs(10),
            max_poll_interval: Duration::from_secs(300),
            max_batch_bytes: 8 << 20,
        }
    }

    /// Batches of at most `bytes` of payload (see [`ConsumerSettings::max_batch_bytes`]).
    #[must_use]
    pub fn max_batch_bytes(mut self, bytes: usize) -> Self {
        self.max_batch_bytes = bytes;
        self
    }
}

/// A subscribed consumer group member; [`Consumer::run`] drives it until shutdown.
pub struct Consumer {
    pub(super) inner: StreamConsumer<CommitOnRevoke>,
    pub(super) dead_letters: Producer,
    pub(super) settings: ConsumerSettings,
    /// Tries of a message failing [`HandleError::Retryable`] before it is dead-lettered.
    retry_attempts: u32,
    /// How far behind this member is (shared with its statistics).
    lag: Arc<GroupLag>,
    /// `READY_MAX_LAG_SECS`, for [`Consumer::ready_while_current`].
    max_lag: Duration,
    readiness: Option<LagReadiness>,
    /// Where it resumed and how far it applied, per partition (logged, see [`Positions`]).
    pub(super) positions: Positions,
}

/// Where a member is in each partition, for its logs: the first offset this process read from
/// it (`resuming`: where the group had left off) and the offset after the last message it
/// applied (named when it stops). After a restart, the first must never be below the second of
/// the process before it: a message applied and then delivered again.
#[derive(Debug, Default)]
pub(super) struct Positions {
    read: std::sync::Mutex<std::collections::HashSet<(String, i32)>>,
    applied: std::sync::Mutex<std::collections::BTreeMap<(String, i32), i64>>,
}

impl Positions {
    /// Logs where this process starts reading each partition it had not read yet.
    fn read(&self, group: &str, batch: &[Incoming]) {
        let mut read = self.read.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for message in batch {
            if read.insert((message.topic.clone(), message.partition)) {
                tracing::info!(%group, topic = %message.topic, partition = message.partition, offset = message.offset,
                    "resuming: the first record this process reads from the partition");
            }
        }
    }

    /// The batch's effects are recorded: what the next message of each partition will be.
    pub(super) fn applied(&self, batch: &[Incoming]) {
        let mut applied = self.applied.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for message in batch {
            let next = applied.entry((message.topic.clone(), message.partition)).or_insert(0);
            *next = (*next).max(message.offset + 1);
        }
    }

    /// `topic/partition:next,...`: the offset after the last applied message of each
    /// partition (`none` if nothing was applied).
    pub(super) fn describe_applied(&self) -> String {
        let applied = self.applied.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let parts: Vec<String> =
            applied.iter().map(|((topic, partition), next)| format!("{topic}/{partition}:{next}")).collect();
        if parts.is_empty() { "none".to_owned() } else { parts.join(",") }
    }
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Consumer {
    /// Creates the consumer and subscribes; partitions are assigned once `run` polls.
    pub fn new(config: &KafkaConfig, settings: ConsumerSettings, dead_letters: Producer) -> KafkaResult<Self> {
        Self::create(config, settings, dead_letters, true)
    }

    /// A consumer whose offsets are committed only inside the transactions of `producer` (a
    /// [`Producer::transactional`]): see [`Consumer::run_transactional`].
    pub fn transactional(config: &KafkaConfig, settings: ConsumerSettings, producer: Producer) -> KafkaResult<Self> {
        Self::create(config, settings, producer, false)
    }

    fn create(
        config: &KafkaConfig,
        settings: ConsumerSettings,
        dead_letters: Producer,
        auto_commit: bool,
    ) -> KafkaResult<Self> {
        let inner: StreamConsumer<CommitOnRevoke> = super::consumer_config(config, &settings.group_id)
            .set("group.id", &settings.group_id)
            .set("enable.auto.commit", auto_commit.to_string())
            .set("auto.commit.interval.ms", config.auto_commit_interval_ms.to_string())
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", config.session_timeout_ms.to_string())
            .set("max.poll.interval.ms", settings.max_poll_interval.as_millis().to_string())
            .set("enable.partition.eof", "false")
            // librdkafka's statistics, for the lag gauges and the brokers (CommitOnRevoke::stats).
            .set("statistics.interval.ms", STATISTICS_INTERVAL_MS)
            .create_with_context(CommitOnRevoke {
                group: settings.group_id.clone(),
                brokers: BrokerWatch::new(config),
                lag: Arc::default(),
            })?;
        inner.context().brokers.attach(inner.client());
        let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
        inner.subscribe(&topics)?;
        let lag = Arc::clone(&inner.context().lag);
        Ok(Self {
            inner,
            dead_letters,
            settings,
            retry_attempts: config.consumer_retry_attempts.max(1),
            lag,
            max_lag: Duration::from_secs(config.ready_max_lag_secs),
            readiness: None,
            positions: Positions::default(),
        })
    }

    /// Keeps the readiness check `check` of `health` false while this member is further behind
    /// than `READY_MAX_LAG_SECS` ([`KafkaConfig::ready_max_lag_secs`]; see [`GroupLag`] for how
    /// it is measured): not ready after two readings in a row past it, ready again under half
    /// of it. Without it, the lag is only published (`kafka_consumer_lag_seconds{group}`).
    #[must_use]
    pub fn ready_while_current(mut self, health: Health, check: &'static str) -> Self {
        health.ready(check, format!("consuming {}", self.settings.topics.join(", ")));
        let what = format!("{} (group {})", self.settings.topics.join(", "), self.settings.group_id);
        self.readiness = Some(LagReadiness::new(health, check, what, self.max_lag));
        self
    }

    /// Starts measuring this member's lag until `shutdown` (or the handle is dropped).
    pub(super) fn watch_lag(&mut self, shutdown: &Shutdown) -> AbortOnDropHandle<()> {
        let watch =
            Arc::clone(&self.lag).watch(self.settings.group_id.clone(), self.readiness.take(), shutdown.clone());
        AbortOnDropHandle::new(tokio::spawn(watch))
    }

    /// Consumes one message at a time until `shutdown`, then commits what was processed. A
    /// message being handled when shutdown starts is finished first (or, if it is waiting to be
    /// retried, left unstored so it is redelivered).
    pub async fn run<H: Handler>(self, handler: &H, shutdown: Shutdown) {
        self.drive(&One(handler), 1, shutdown).await;
    }

    /// Like [`Consumer::run`], handing the handler up to `max_batch` messages at once (those
    /// already fetched): it can pipeline its own writes. Offsets are stored once the whole
    /// batch is applied.
    pub async fn run_batches<B: BatchHandler>(self, handler: &B, max_batch: usize, shutdown: Shutdown) {
        self.drive(handler, max_batch.max(1), shutdown).await;
    }

    async fn drive<B: BatchHandler>(mut self, handler: &B, max_batch: usize, shutdown: Shutdown) {
        let _lag = self.watch_lag(&shutdown);
        let group = self.settings.group_id.clone();
        tracing::info!(%group, topics = ?self.settings.topics, max_batch, "consumer started");
        while let Some(batch) = self.next_batch(max_batch, &shutdown).await {
            if !self.process(handler, &batch, &shutdown).await {
                break;
            }
            // The effects are applied (or dead-lettered): only now may the offsets move past them.
            // (rd_kafka_offset_store records offset + 1, the next one to read, itself.)
            for message in &batch {
                if let Err(error) = self.inner.store_offset(&message.topic, message.partition, message.offset) {
                    // The partition was revoked meanwhile; its new owner will see the message again.
                    tracing::warn!(%group, %error, topic = %message.topic, partition = message.partition,
                        offset = message.offset, "could not store offset");
                }
            }
            self.positions.applied(&batch);
        }
        self.close();
    }

    /// Waits for one message, then takes up to `max` that are already there; None on shutdown.
    pub(super) async fn next_batch(&self, max: usize, shutdown: &Shutdown) -> Option<Vec<Incoming>> {
        self.next_batch_within(max, shutdown, None).await.unwrap_or(None)
    }

    /// [`Consumer::next_batch`], giving up with `Err(())` after `idle` without a message.
    pub(super) async fn next_batch_within(
        &self,
        max: usize,
        shutdown: &Shutdown,
        idle: Option<Duration>,
    ) -> Result<Option<Vec<Incoming>>, ()> {
        let idle = async {
            match idle {
                Some(idle) => tokio::time::sleep(idle).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(idle);
        // The batch taken before (if any) is settled: asking for the next is what follows it.
        self.lag.done();
        loop {
            let received = tokio::select! {
                biased;
                () = shutdown.wait() => return Ok(None),
                received = self.inner.recv() => received,
                () = &mut idle => return Err(()),
            };
            match received {
                Ok(message) => {
                    let mut batch = vec![Incoming::from_borrowed(&message)];
                    drop(message);
                    let mut bytes = batch[0].payload_len();
                    while batch.len() < max && bytes < self.settings.max_batch_bytes {
                        match self.inner.recv().now_or_never() {
                            Some(Ok(message)) => {
                                let message = Incoming::from_borrowed(&message);
                                bytes += message.payload_len();
                                batch.push(message);
                            }
                            _ => break,
                        }
                    }
                    self.lag.taken(&batch);
                    self.positions.read(&self.settings.group_id, &batch);
                    return Ok(Some(batch));
                }
                Err(error) => {
                    tracing::warn!(group = %self.settings.group_id, %error, "consumer error; continuing");
                    tokio::select! {
                        () = shutdown.wait() => return Ok(None),
                        () = tokio::time::sleep(self.settings.retry_backoff) => {}
                    }
                }
            }
        }
    }

    /// Runs the handler until the batch is applied and its poison messages dead-lettered
    /// (true), or shutdown interrupts a retry (false, no offset stored). A batch whose retry
    /// budget is spent is taken apart: each message is tried alone, with a budget of its own,
    /// so only the one at fault is dead-lettered.
    async fn process<B: BatchHandler>(&self, handler: &B, batch: &[Incoming], shutdown: &Shutdown) -> bool {
        let reasons = match self.settle(handler, batch, shutdown).await {
            Settled::Done(reasons) => reasons,
            Settled::Interrupted => return false,
            Settled::Exhausted(_) if batch.len() > 1 => {
                let mut reasons = Vec::with_capacity(batch.len());
                for message in batch {
                    match self.settle(handler, std::slice::from_ref(message), shutdown).await {
                        Settled::Done(mut reason) => reasons.append(&mut reason),
                        Settled::Exhausted(poison) => reasons.push(Some(poison)),
                        Settled::Interrupted => return false,
                    }
                }
                reasons
            }
            Settled::Exhausted(poison) => vec![Some(poison)],
        };
        for (message, reason) in batch.iter().zip(reasons) {
            match reason {
                None => {
                    metrics::counter!("kafka_consumed_total", "topic" => message.topic.clone(), "outcome" => "ok")
                        .increment(1);
                }
                Some(reason) => {
                    handler.given_up(message, &reason).await;
                    if !self.dead_letter(message, &reason, shutdown).await {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Tries `batch` until it is applied, shutdown comes, or its retry budget is spent.
    async fn settle<B: BatchHandler>(&self, handler: &B, batch: &[Incoming], shutdown: &Shutdown) -> Settled {
        let mut backoff = self.settings.retry_backoff;
        let mut failures = 0;
        loop {
            let error = match attempt(handler, batch).await {
                Ok(reasons) => return Settled::Done(reasons),
                Err(error) => error,
            };
            let first = &batch[0];
            if let HandleError::Retryable(cause) = &error {
                failures += 1;
                if failures >= self.retry_attempts {
                    tracing::warn!(group = %self.settings.group_id, topic = %first.topic, partition = first.partition,
                        offset = first.offset, messages = batch.len(), %error, attempts = failures,
                        "retry budget spent");
                    return Settled::Exhausted(Poison::exhausted(cause.as_ref(), failures));
                }
            }
            tracing::warn!(group = %self.settings.group_id, topic = %first.topic,
                partition = first.partition, offset = first.offset, messages = batch.len(), %error,
                retry_in_ms = backoff.as_millis() as u64, "handler failed; will retry");
            metrics::counter!("kafka_handler_retries_total", "topic" => first.topic.clone()).increment(1);
            if !wait(shutdown, &mut backoff, self.settings.max_retry_backoff).await {
                return Settled::Interrupted;
            }
        }
    }

    async fn dead_letter(&self, message: &Incoming, reason: &Poison, shutdown: &Shutdown) -> bool {
        let letter = DeadLetter::new(message, reason);
        let mut backoff = self.settings.retry_backoff;
        loop {
            let record = letter.record(&self.settings.dead_letter_topic, &self.settings.group_id, message);
            match self.dead_letters.send(record).await {
                Ok(_) => {
                    tracing::warn!(group = %self.settings.group_id, topic = %message.topic,
                        partition = message.partition, offset = message.offset, %reason,
                        dead_letter_topic = %self.settings.dead_letter_topic, "message dead-lettered");
                    metrics::counter!("kafka_consumed_total", "topic" => message.topic.clone(), "outcome" => "dead_lettered")
                        .increment(1);
                    return true;
                }
                Err(error) => {
                    tracing::error!(%error, "cannot write to the dead-letter topic; will retry");
                    if !wait(shutdown, &mut backoff, self.settings.max_retry_backoff).await {
                        return false;
                    }
                }
            }
        }
    }

    fn close(self) {
        let (group, applied) = (&self.settings.group_id, self.positions.describe_applied());
        // `applied` is named whatever happens: it is what a restart must not read again.
        match self.inner.commit_consumer_state(CommitMode::Sync) {
            Err(error) if !is_no_offset(&error) => {
                tracing::error!(%group, %applied, %error, "consumer stopped; final offset commit failed");
            }
            _ => tracing::info!(%group, %applied, "consumer stopped; offsets committed"),
        }
        self.inner.unsubscribe();
        // Dropping the StreamConsumer closes it and leaves the group at once.
    }
}

/// How trying a batch ended.
enum Settled {
    /// Per message, `None` once applied or the reason it goes to the dead letters.
    Done(Vec<Option<Poison>>),
    /// The retry budget is spent, for this reason.
    Exhausted(Poison),
    /// Shutdown came during a retry's wait.
    Interrupted,
}

/// One try at a batch: per message, `None` once applied or the reason it goes to the dead
/// letters; `Err` if anything is worth trying again.
async fn attempt<B: BatchHandler>(handler: &B, batch: &[Incoming]) -> Result<Vec<Option<Poison>>, HandleError> {
    reasons(handler.handle_batch(batch).await, batch.len())
}

/// Per message, `None` once applied or the reason it goes to the dead letters; `Err` if
/// anything is worth trying again.
pub(super) fn reasons(outcome: BatchOutcome, messages: usize) -> Result<Vec<Option<Poison>>, HandleError> {
    match outcome {
        // The whole batch can never be applied: each of its messages goes to the dead letters.
        Err(HandleError::Permanent(reason)) => Ok(vec![Some(Poison::of(reason.as_ref())); messages]),
        Err(retryable) => Err(retryable),
        Ok(outcomes) => outcomes
            .into_iter()
            .map(|outcome| match outcome {
                Ok(()) => Ok(None),
                Err(HandleError::Permanent(reason)) => Ok(Some(Poison::of(reason.as_ref()))),
                Err(retryable) => Err(retryable),
            })
            .collect(),
    }
}

/// Sleeps for between half of `backoff` and all of it (then doubles it up to `max`); false if
/// shutdown came first.
pub(super) async fn wait(shutdown: &Shutdown, backoff: &mut Duration, max: Duration) -> bool {
    let delay = jittered(*backoff);
    *backoff = (*backoff * 2).min(max);
    tokio::select! {
        () = shutdown.wait() => false,
        () = tokio::time::sleep(delay) => true,
    }
}

/// A delay drawn uniformly between half of `backoff` and all of it.
fn jittered(backoff: Duration) -> Duration {
    let unit = getrandom::u64().map_or(0.5, |bits| (bits >> 11) as f64 / (1u64 << 53) as f64);
    backoff.mul_f64(0.5 + unit / 2.0)
}

fn is_no_offset(error: &KafkaError) -> bool {
    matches!(error, KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset))
}

/// Commits stored offsets synchronously before partitions are taken away, so the next owner
/// starts exactly after what this member applied; publishes the group's lag.
pub(super) struct CommitOnRevoke {
    group: String,
    brokers: BrokerWatch,
    lag: Arc<GroupLag>,
}

impl ClientContext for CommitOnRevoke {
    /// `kafka_consumer_lag_messages{group, topic, partition}`, for the partitions this member
    /// holds: the partition's end (its last stable offset: only committed records are read)
    /// minus the group's committed offset, as librdkafka computes it; for a group whose offsets
    /// are committed by transactions (user-service), which librdkafka does not see, minus the
    /// position handed to the application.
    fn stats(&self, statistics: rdkafka::Statistics) {
        self.brokers.check(&statistics);
        let mut waiting = Vec::new();
        for (topic, stats) in statistics.topics {
            for (partition, p) in stats.partitions {
                let lag = match p.consumer_lag {
                    lag if lag >= 0 => lag,
                    _ if p.ls_offset >= 0 && p.app_offset >= 0 => (p.ls_offset - p.app_offset).max(0),
                    _ => continue,
                };
                // Partition -1 is librdkafka's internal "unassigned" one.
                if partition >= 0 {
                    waiting.push(((topic.clone(), partition), lag));
                    let labels =
                        [("group", self.group.clone()), ("topic", topic.clone()), ("partition", partition.to_string())];
                    metrics::gauge!("kafka_consumer_lag_messages", &labels).set(lag as f64);
                }
            }
        }
        self.lag.waiting(waiting);
    }
}

impl ConsumerContext for CommitOnRevoke {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) => tracing::info!(partitions = %describe(partitions), "revoked; offsets committed"),
                Err(error) if is_no_offset(&error) => {}
                Err(error) => tracing::warn!(%error, "commit on revoke failed"),
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            tracing::info!(partitions = %describe(partitions), "partitions assigned");
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Err(error) if !is_no_offset(&error) => tracing::warn!(%error, "offset commit failed"),
            _ => {}
        }
    }
}

fn describe(partitions: &TopicPartitionList) -> String {
    let parts: Vec<String> = partitions.elements().iter().map(|e| format!("{}/{}", e.topic(), e.partition())).collect();
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch handler answering what it is told to.
    struct Answers(fn() -> BatchOutcome);

    impl BatchHandler for Answers {
        async fn handle_batch(&self, _batch: &[Incoming]) -> BatchOutcome {
            (self.0)()
        }
    }

    #[tokio::test]
    async fn a_permanent_failure_dead_letters_its_message_and_any_retryable_one_retries_the_batch() {
        let batch = vec![Incoming::default(); 3];
        let one_poison = Answers(|| Ok(vec![Ok(()), Err(HandleError::permanent("poison")), Ok(())]));
        let reasons = attempt(&one_poison, &batch).await.expect("nothing to retry");
        let rejected = |reason: &str| Some(Poison { code: "rejected", reason: reason.to_owned() });
        assert_eq!(reasons, [None, rejected("poison"), None]);

        let one_retryable =
            Answers(|| Ok(vec![Ok(()), Err(HandleError::permanent("x")), Err(HandleError::retryable("down"))]));
        assert!(attempt(&one_retryable, &batch).await.is_err(), "the batch is tried again, nothing dead-lettered");

        let all_poison = Answers(|| Err(HandleError::permanent("the batch itself is poison")));
        let reasons = attempt(&all_poison, &batch).await.expect("nothing to retry");
        assert_eq!(reasons, vec![rejected("the batch itself is poison"); 3]);

        let outage = Answers(|| Err(HandleError::retryable("registry down")));
        assert!(attempt(&outage, &batch).await.is_err());
    }

    #[tokio::test]
    async fn a_job_is_given_up_when_shutdown_starts_and_finished_otherwise() {
        let shutdown = Shutdown::new();
        assert!(unless_shutdown(&shutdown, "quick", async { Ok(()) }).await.is_ok());
        let stopping = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            stopping.trigger();
        });
        let endless = std::future::pending::<Result<(), HandleError>>();
        let result = tokio::time::timeout(Duration::from_secs(5), unless_shutdown(&shutdown, "endless", endless)).await;
        assert!(matches!(result, Ok(Err(HandleError::Unavailable(_)))), "given up as unavailable: not committed");
    }
}
