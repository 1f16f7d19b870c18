//! The exactly-once consumer loop: consume, apply, produce and commit in one transaction.
//!
//! Each batch runs in a transaction of the consumer's transactional producer: what the handler
//! sends, the dead letters of the batch's poison messages, and the batch's consumed offsets are
//! committed together. A crash at any point leaves all of a batch's effects or none: the
//! records of an unfinished transaction are aborted (never seen by `read_committed` readers)
//! and its messages are consumed again from the last committed offsets.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use rdkafka::consumer::Consumer as _;
use rdkafka::{Offset, TopicPartitionList};

use super::consumer::{Consumer, HandleError, Incoming, reasons, wait};
use super::dead_letter::DeadLetter;
use super::producer::TransactionError;
use crate::shutdown::Shutdown;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a transactional batch did not complete.
#[derive(Debug, thiserror::Error)]
pub enum BatchFailed {
    /// Nothing was changed (in memory or sent): the batch is tried again in a new transaction.
    #[error("nothing applied yet: {0}")]
    Retry(#[source] BoxError),
    /// The handler changed its memory and cannot complete the batch: the transaction is aborted
    /// and the loop stops, so the handler's owner can rebuild from the log.
    #[error("batch abandoned: {0}")]
    Abort(#[source] BoxError),
}

impl From<HandleError> for BatchFailed {
    /// A handler error before anything changed: retried, whatever its kind (a permanent one
    /// belongs to one message: report it in the per-message outcomes instead).
    fn from(error: HandleError) -> Self {
        Self::Retry(error.into())
    }
}

/// Applies a batch inside the open transaction: everything it sends through the consumer's
/// producer commits or aborts with the batch's offsets.
pub trait TransactionalHandler: Send + Sync {
    /// One outcome per message (a permanent error dead-letters that message, in the same
    /// transaction); see [`BatchFailed`] for the batch as a whole.
    fn handle_batch(
        &self,
        batch: &[Incoming],
    ) -> impl Future<Output = Result<Vec<Result<(), HandleError>>, BatchFailed>> + Send;
}

/// How the transactional loop ended, other than by shutdown.
#[derive(Debug, thiserror::Error)]
pub enum TransactionalStop {
    /// A batch's transaction was aborted; the handler's memory may be ahead of the log.
    #[error(transparent)]
    Aborted(#[from] BatchFailed),
    #[error(transparent)]
    Transaction(#[from] TransactionError),
}

impl Consumer {
    /// Consumes batches of up to `max_batch` messages until `shutdown`, each in one transaction
    /// (see the module). When idle for `heartbeat`, commits the committed offsets again in a
    /// transaction of their own, so a producer fenced by a newer instance finds out and stops
    /// even when no work comes. Returns `Ok` on shutdown; an error when a transaction could not
    /// commit (the batch's effects are void) or the producer was fenced.
    pub async fn run_transactional<T: TransactionalHandler>(
        mut self,
        handler: &T,
        max_batch: usize,
        heartbeat: Duration,
        shutdown: Shutdown,
    ) -> Result<(), TransactionalStop> {
        let _lag = self.watch_lag(&shutdown);
        let group = self.settings.group_id.clone();
        tracing::info!(%group, topics = ?self.settings.topics, max_batch, "transactional consumer started");
        loop {
            let batch = match self.next_batch_within(max_batch.max(1), &shutdown, Some(heartbeat)).await {
                Ok(Some(batch)) => batch,
                Ok(None) => break,
                Err(()) => {
                    self.heartbeat().await?;
                    continue;
                }
            };
            if !self.transaction(handler, &batch, &shutdown).await? {
                break;
            }
        }
        let applied = self.positions.describe_applied();
        tracing::info!(%group, %applied, "consumer stopped; every applied batch is committed");
        Ok(())
    }

    /// Runs one batch in a transaction; false if shutdown interrupted a retry (nothing applied).
    async fn transaction<T: TransactionalHandler>(
        &self,
        handler: &T,
        batch: &[Incoming],
        shutdown: &Shutdown,
    ) -> Result<bool, TransactionalStop> {
        let producer = &self.dead_letters;
        let mut backoff = self.settings.retry_backoff;
        let outcomes = loop {
            producer.begin().await?;
            let outcome = match handler.handle_batch(batch).await {
                Ok(outcomes) => reasons(Ok(outcomes), batch.len()).map_err(BatchFailed::from),
                Err(failed) => Err(failed),
            };
            match outcome {
                Ok(outcomes) => break outcomes,
                Err(BatchFailed::Retry(error)) => {
                    producer.abort().await?;
                    let first = &batch[0];
                    tracing::warn!(group = %self.settings.group_id, topic = %first.topic, partition = first.partition,
                        offset = first.offset, messages = batch.len(), %error, "batch not applied; will retry");
                    metrics::counter!("kafka_handler_retries_total", "topic" => first.topic.clone()).increment(1);
                    if !wait(shutdown, &mut backoff, self.settings.max_retry_backoff).await {
                        return Ok(false);
                    }
                }
                Err(abort) => {
                    producer.abort().await?;
                    return Err(abort.into());
                }
            }
        };
        for (message, reason) in batch.iter().zip(&outcomes) {
            if let Some(reason) = reason {
                let letter = DeadLetter::new(message, reason);
                let record = letter.record(&self.settings.dead_letter_topic, &self.settings.group_id, message);
                if let Err(error) = producer.send(record).await {
                    producer.abort().await?;
                    return Err(BatchFailed::Abort(Box::new(error)).into());
                }
                tracing::warn!(group = %self.settings.group_id, topic = %message.topic, partition = message.partition,
                    offset = message.offset, %reason, "message dead-lettered");
            }
        }
        producer.commit_consumed(next_offsets(batch)?, self.inner.group_metadata()).await?;
        self.positions.applied(batch);
        for (message, reason) in batch.iter().zip(&outcomes) {
            let outcome = if reason.is_some() { "dead_lettered" } else { "ok" };
            metrics::counter!("kafka_consumed_total", "topic" => message.topic.clone(), "outcome" => outcome)
                .increment(1);
        }
        Ok(true)
    }

    /// Commits the group's committed offsets again, in a transaction of their own: nothing
    /// changes, but the coordinator is asked, and answers a fenced producer that it is. (A
    /// partition without a committed offset gets its beginning, which is where the group
    /// would start anyway.) Runs only when idle: the two metadata calls block briefly.
    async fn heartbeat(&self) -> Result<(), TransactionError> {
        let timeout = Duration::from_secs(2);
        let Ok(committed) = self.inner.committed(timeout) else { return Ok(()) };
        let mut offsets = TopicPartitionList::new();
        for element in committed.elements() {
            let offset = match element.offset() {
                Offset::Offset(next) => next,
                _ => match self.inner.fetch_watermarks(element.topic(), element.partition(), timeout) {
                    Ok((low, _)) => low,
                    Err(_) => continue,
                },
            };
            offsets.add_partition_offset(element.topic(), element.partition(), Offset::Offset(offset)).ok();
        }
        if offsets.count() == 0 {
            return Ok(());
        }
        self.dead_letters.begin().await?;
        self.dead_letters.commit_consumed(offsets, self.inner.group_metadata()).await
    }
}

/// The offset after the last message of each partition in `batch`.
fn next_offsets(batch: &[Incoming]) -> Result<TopicPartitionList, TransactionalStop> {
    let mut next: HashMap<(&str, i32), i64> = HashMap::new();
    for message in batch {
        let entry = next.entry((message.topic.as_str(), message.partition)).or_insert(0);
        *entry = (*entry).max(message.offset + 1);
    }
    let mut offsets = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        offsets
            .add_partition_offset(topic, partition, Offset::Offset(offset))
            .map_err(|e| BatchFailed::Abort(Box::new(e)))?;
    }
    Ok(offsets)
}
