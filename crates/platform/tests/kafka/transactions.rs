//! The exactly-once loop against the real broker: what a batch sends commits with its offsets
//! or not at all. A batch abandoned after sending, or a process that dies mid-transaction,
//! leaves nothing a `read_committed` reader can see, and the batch is consumed again; a second
//! producer with the same transactional id fences the first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use platform::Shutdown;
use platform::kafka::topics::{self, TopicSpec};
use platform::kafka::{
    BatchFailed, Consumer, ConsumerSettings, HandleError, Incoming, Producer, Record, TransactionError,
    TransactionalHandler, TransactionalStop, replay,
};
use platform::testing::unique;

use crate::helpers::Fixture;

/// Copies each message to `out`; abandons (after sending) every batch whose number is in
/// `abandon`, or hangs in it (the process "dies" mid-transaction) if `hang` is set.
struct Copy {
    producer: Producer,
    out: String,
    batches: Arc<AtomicUsize>,
    abandon: Vec<usize>,
    hang: bool,
    copied: Arc<Mutex<Vec<String>>>,
    /// The number of messages in each batch handled.
    batch_sizes: Arc<Mutex<Vec<usize>>>,
}

impl TransactionalHandler for Copy {
    async fn handle_batch(&self, batch: &[Incoming]) -> Result<Vec<Result<(), HandleError>>, BatchFailed> {
        let number = self.batches.fetch_add(1, Ordering::SeqCst);
        self.batch_sizes.lock().unwrap_or_else(PoisonError::into_inner).push(batch.len());
        for message in batch {
            let payload = message.payload.as_deref().unwrap_or_default();
            self.producer.send(Record::new(&self.out, payload)).await.map_err(|e| BatchFailed::Abort(e.into()))?;
            self.copied.lock().unwrap_or_else(PoisonError::into_inner).push(String::from_utf8_lossy(payload).into());
        }
        if self.abandon.contains(&number) {
            if self.hang {
                std::future::pending::<()>().await;
            }
            return Err(BatchFailed::Abort("abandoned on purpose, after sending".into()));
        }
        Ok(batch.iter().map(|_| Ok(())).collect())
    }
}

struct Setup {
    fx: Fixture,
    out: String,
    transactional_id: String,
}

impl Setup {
    async fn new(messages: usize) -> Self {
        Self::with_payloads((0..messages).map(|i| format!("m{i}")).collect()).await
    }

    async fn with_payloads(payloads: Vec<String>) -> Self {
        let fx = Fixture::new().await;
        let out = unique("test-out");
        topics::ensure(&fx.kafka, &[TopicSpec::new(&out).partitions(1)]).await.expect("topic");
        fx.produce(&payloads.iter().map(String::as_str).collect::<Vec<_>>()).await;
        Self { fx, out, transactional_id: unique("test-tx") }
    }

    async fn producer(&self) -> Producer {
        let producer = Producer::transactional(&self.fx.kafka, "test", &self.transactional_id).expect("producer");
        producer.init_transactions().await.expect("transactions initialised");
        producer
    }

    fn handler(&self, producer: &Producer, abandon: Vec<usize>, hang: bool) -> Copy {
        Copy {
            producer: producer.clone(),
            out: self.out.clone(),
            batches: Arc::default(),
            abandon,
            hang,
            copied: Arc::default(),
            batch_sizes: Arc::default(),
        }
    }

    fn consumer(&self, producer: &Producer) -> Consumer {
        self.consumer_with(producer, |settings| settings)
    }

    fn consumer_with(
        &self,
        producer: &Producer,
        settings: impl FnOnce(ConsumerSettings) -> ConsumerSettings,
    ) -> Consumer {
        let settings = settings(ConsumerSettings::new(&self.fx.group, &[&self.fx.topic], &self.fx.dead_letters));
        Consumer::transactional(&self.fx.kafka, settings, producer.clone()).expect("consumer")
    }

    /// Runs a well-behaved copier with `producer` until all `messages` are committed, checks
    /// each was copied exactly once, and stops it cleanly.
    async fn copy_everything(&self, producer: &Producer, batch: usize, messages: usize) {
        let handler = self.handler(producer, vec![], false);
        let shutdown = Shutdown::new();
        let stop = shutdown.clone();
        let consumer = self.consumer(producer);
        let run =
            tokio::spawn(
                async move { consumer.run_transactional(&handler, batch, Duration::from_secs(3), stop).await },
            );
        let counts = platform::testing::eventually("every copy committed", Duration::from_secs(60), || async {
            let counts = self.committed().await;
            (counts.len() == messages).then_some(counts)
        })
        .await;
        exactly_once(&counts, messages);
        shutdown.trigger();
        run.await.unwrap().expect("a clean stop");
    }

    /// Every committed record of the output topic, by payload.
    async fn committed(&self) -> HashMap<String, usize> {
        let (counts, _) =
            replay(&self.fx.kafka, &self.out, HashMap::new(), |counts: &mut HashMap<String, usize>, m| {
                *counts
                    .entry(String::from_utf8_lossy(m.payload.as_deref().unwrap_or_default()).into_owned())
                    .or_default() += 1;
            })
            .await
            .expect("replay");
        counts
    }
}

fn exactly_once(counts: &HashMap<String, usize>, messages: usize) {
    assert_eq!(counts.len(), messages, "every message copied: {counts:?}");
    assert!(counts.values().all(|n| *n == 1), "none twice: {counts:?}");
}

#[tokio::test]
async fn a_batch_takes_no_message_once_its_payloads_reach_the_byte_bound() {
    // 30 messages of 1,000 bytes, all there before the consumer starts; batches of up to 100
    // messages but 2,500 bytes: a batch stops after its third message.
    let payloads: Vec<String> = (0..30).map(|i| format!("{i:0>1000}")).collect();
    let setup = Setup::with_payloads(payloads).await;
    let producer = setup.producer().await;
    let handler = setup.handler(&producer, vec![], false);
    let sizes = Arc::clone(&handler.batch_sizes);
    let consumer = setup.consumer_with(&producer, |settings| settings.max_batch_bytes(2_500));
    let shutdown = Shutdown::new();
    let stop = shutdown.clone();
    let run =
        tokio::spawn(async move { consumer.run_transactional(&handler, 100, Duration::from_secs(3), stop).await });
    let counts = platform::testing::eventually("every copy committed", Duration::from_secs(60), || async {
        let counts = setup.committed().await;
        (counts.len() == 30).then_some(counts)
    })
    .await;
    exactly_once(&counts, 30);
    shutdown.trigger();
    run.await.unwrap().expect("a clean stop");
    let sizes = sizes.lock().unwrap().clone();
    assert!(sizes.iter().all(|n| *n <= 3), "no batch past 2,500 bytes by more than its last message: {sizes:?}");
    assert!(sizes.contains(&3), "messages waiting are batched up to the bound: {sizes:?}");
}

#[tokio::test]
async fn an_abandoned_batch_leaves_nothing_visible_and_is_consumed_again_after_the_rebuild() {
    let setup = Setup::new(40).await;
    let producer = setup.producer().await;
    // The first batch is abandoned after its copies were sent.
    let handler = setup.handler(&producer, vec![0], false);
    let stopped =
        setup.consumer(&producer).run_transactional(&handler, 7, Duration::from_secs(3), Shutdown::new()).await;
    assert!(matches!(stopped, Err(TransactionalStop::Aborted(_))), "{stopped:?}");
    assert!(!handler.copied.lock().unwrap().is_empty(), "copies were sent before the batch was abandoned");
    assert!(setup.committed().await.is_empty(), "nothing of an aborted transaction is visible");

    // "Rebuilt": a new consumer of the same group goes on from the last committed offsets.
    setup.copy_everything(&producer, 7, 40).await;
}

#[tokio::test]
async fn a_process_dying_mid_transaction_leaves_nothing_visible_and_its_successor_fences_it() {
    let setup = Setup::new(30).await;
    let producer = setup.producer().await;
    // The third batch hangs after sending its copies: the process "dies" there.
    let handler = setup.handler(&producer, vec![2], true);
    let consumer = setup.consumer(&producer);
    let copied = Arc::clone(&handler.copied);
    let dying =
        tokio::spawn(
            async move { consumer.run_transactional(&handler, 5, Duration::from_secs(3), Shutdown::new()).await },
        );
    platform::testing::eventually("the third batch sent", Duration::from_secs(30), || async {
        (copied.lock().unwrap().len() >= 15).then_some(())
    })
    .await;

    // Its successor takes over the transactional id: the open transaction is aborted.
    let successor = setup.producer().await;
    dying.abort();
    let _ = dying.await;
    drop(producer);
    setup.copy_everything(&successor, 5, 30).await;
}

#[tokio::test]
async fn a_fenced_producer_cannot_commit_and_says_so() {
    let setup = Setup::new(1).await;
    let first = setup.producer().await;
    let _second = setup.producer().await;
    first.begin().await.expect("begin is local");
    // The send may already fail (the broker refuses the old epoch); the commit must.
    let _ = first.send(Record::new(&setup.out, b"zombie")).await;
    let committed = first.commit().await;
    assert!(matches!(committed, Err(TransactionError::Fenced(_))), "{committed:?}");
    assert!(setup.committed().await.is_empty());
}
