//! Job books (imports, exports) as every service reads them, and how finished jobs are
//! forgotten: the worker owning a kind of job writes a tombstone on its compacted status topic
//! some time after the job finished; every book reading the topic then drops it, and a rebuild
//! never sees it again. A book holds the recent jobs, not every job ever.

use std::future::Future;
use std::time::Duration;

use contract::{MappingError, Record};
use domain::book::{JobStatus, StatusBook};
use domain::time::Timestamp;
use uuid::Uuid;

use crate::kafka::{FollowError, Following, HandleError, Handler, Incoming, ProduceError, Producer, StartAt, Tail};
use crate::service::ServiceBase;
use crate::shutdown::Shutdown;
use crate::topic::Topic;

impl ServiceBase {
    /// Reads the status topic `topic` into `book` before the service serves (the readiness
    /// check `check` fails until it has read to where the topic ended), then follows it until
    /// `shutdown`. A tombstone forgets its job.
    pub async fn read_book<S, R>(
        &self,
        check: &'static str,
        topic: &Topic<R>,
        book: &StatusBook<S>,
        shutdown: Shutdown,
    ) -> Result<Following, FollowError>
    where
        R: Record,
        S: JobStatus + TryFrom<R> + Send + Sync + 'static,
        MappingError: From<S::Error>,
    {
        self.health.not_ready(check, format!("reading {}", topic.name()));
        let tail = Tail::start(&self.kafka, topic.name(), StartAt::Beginning)
            .await?
            .dead_letters(self.dead_letters())
            .ready_while_current(self.health.clone(), check);
        let following = tail.follow(Book { topic: topic.clone(), book: book.clone() }, shutdown).await?;
        self.health.ready(check, format!("caught up with {}", topic.name()));
        Ok(following)
    }
}

struct Book<R, S> {
    topic: Topic<R>,
    book: StatusBook<S>,
}

impl<R, S> Handler for Book<R, S>
where
    R: Record,
    S: JobStatus + TryFrom<R> + Send + Sync,
    MappingError: From<S::Error>,
{
    async fn handle(&self, message: &Incoming) -> Result<(), HandleError> {
        if message.payload.is_none() {
            let id = message.key.as_deref().and_then(|key| Uuid::try_parse_ascii(key).ok());
            let id = id.ok_or_else(|| HandleError::permanent("a tombstone whose key is not a job id"))?;
            self.book.remove(id);
            return Ok(());
        }
        self.book.apply(self.topic.decode(message).await?);
        Ok(())
    }
}

/// Forgets every job of `book` that finished more than `keep` ago: `before` first (to remove
/// its files), then a tombstone on `topic`. Returns how many were forgotten.
pub async fn forget_finished<S, R>(
    book: &StatusBook<S>,
    topic: &Topic<R>,
    producer: &Producer,
    keep: Duration,
    before: impl Fn(&S),
) -> Result<usize, ProduceError>
where
    S: JobStatus,
    R: Record,
{
    let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
    let cutoff = Timestamp::from_millis(Timestamp::now().millis().saturating_sub(keep_ms));
    let due = book.finished_before(cutoff);
    for status in &due {
        before(status);
        let key = status.job_id().to_string();
        producer.send(crate::kafka::Record::tombstone(topic.name(), key.as_bytes())).await?;
        book.remove(status.job_id());
        tracing::info!(job_id = %key, topic = %topic.name(), "finished job forgotten");
    }
    Ok(due.len())
}

/// Runs `sweep` every `period` until `shutdown`.
pub async fn every<F, Fut>(period: Duration, shutdown: Shutdown, mut sweep: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticks = tokio::time::interval(period);
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            _ = ticks.tick() => sweep().await,
        }
    }
}

/// How often a worker looks for jobs to expire or forget: a few times per `retention`, at
/// least every minute, at most every 250 ms.
pub fn sweep_period(retention: Duration) -> Duration {
    (retention / 4).clamp(Duration::from_millis(250), Duration::from_secs(60))
}
