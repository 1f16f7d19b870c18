use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use platform::kafka::topics::{self, TopicSpec};
use platform::kafka::{Consumer, ConsumerSettings, HandleError, Handler, Incoming, Producer, Record};
use platform::testing::{eventually, unique};
use platform::{KafkaConfig, Shutdown};
use tokio::task::JoinHandle;

pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// What the test handler does with a message, chosen by its payload.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Action {
    Apply,
    FailPermanently,
    FailRetryably,
    /// Fails as a dependency outage would.
    FailUnavailable,
    /// Never returns: the process "dies" while applying it, before its offset is stored.
    Hang,
}

/// Chooses the action from the message and how many times it has been attempted.
type Decide = Box<dyn Fn(&Incoming, usize) -> Action + Send + Sync>;

/// A handler that records every attempt and acts as `decide` says.
pub(crate) struct Recorder {
    seen: Arc<Mutex<Vec<Incoming>>>,
    decide: Decide,
}

impl Recorder {
    /// `decide(message, attempts of this offset so far)`.
    pub(crate) fn new(decide: impl Fn(&Incoming, usize) -> Action + Send + Sync + 'static) -> Self {
        Self { seen: Arc::default(), decide: Box::new(decide) }
    }

    pub(crate) fn applying_all() -> Self {
        Self::new(|_, _| Action::Apply)
    }

    pub(crate) fn log(&self) -> Arc<Mutex<Vec<Incoming>>> {
        Arc::clone(&self.seen)
    }
}

impl Handler for Recorder {
    async fn handle(&self, message: &Incoming) -> Result<(), HandleError> {
        let attempts = {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            seen.push(message.clone());
            seen.iter().filter(|m| m.topic == message.topic && m.offset == message.offset).count()
        };
        match (self.decide)(message, attempts) {
            Action::Apply => Ok(()),
            Action::FailPermanently => Err(HandleError::permanent("payload is poison")),
            Action::FailRetryably => Err(HandleError::retryable("the file is not there yet")),
            Action::FailUnavailable => Err(HandleError::unavailable("the registry does not answer")),
            Action::Hang => std::future::pending().await,
        }
    }
}

pub(crate) fn payloads(log: &Arc<Mutex<Vec<Incoming>>>) -> Vec<String> {
    let seen = log.lock().unwrap_or_else(PoisonError::into_inner);
    seen.iter().map(|m| String::from_utf8_lossy(m.payload.as_deref().unwrap_or_default()).into_owned()).collect()
}

/// Waits until the handler has seen `n` messages and returns them.
pub(crate) async fn wait_for(log: &Arc<Mutex<Vec<Incoming>>>, n: usize) -> Vec<Incoming> {
    eventually(&format!("{n} handled messages"), PATIENCE, || async {
        let seen = log.lock().unwrap_or_else(PoisonError::into_inner).clone();
        (seen.len() >= n).then_some(seen)
    })
    .await
}

/// A fresh single-partition topic (order is then total) and a fresh dead-letter topic.
pub(crate) struct Fixture {
    pub(crate) kafka: KafkaConfig,
    pub(crate) topic: String,
    pub(crate) dead_letters: String,
    pub(crate) group: String,
    pub(crate) producer: Producer,
}

impl Fixture {
    pub(crate) async fn new() -> Self {
        let kafka = platform::testing::kafka().await;
        let topic = unique("test-input");
        let dead_letters = unique("test-dlq");
        let specs = [TopicSpec::new(&topic).partitions(1), TopicSpec::new(&dead_letters).partitions(1)];
        topics::ensure(&kafka, &specs).await.expect("topics created");
        let producer = Producer::new(&kafka, "test-producer").expect("producer");
        Self { kafka, topic, dead_letters, group: unique("test-group"), producer }
    }

    pub(crate) async fn produce(&self, payloads: &[&str]) {
        for payload in payloads {
            self.producer
                .send(Record::new(&self.topic, payload.as_bytes()).key(b"k").header("trace-id", b"t-1"))
                .await
                .expect("delivered");
        }
    }

    pub(crate) fn consume(&self, handler: Recorder) -> Running {
        let settings = ConsumerSettings::new(&self.group, &[&self.topic], &self.dead_letters);
        spawn(&self.kafka, settings, handler, self.producer.clone())
    }

    /// Reads the dead-letter topic with a consumer of its own.
    pub(crate) fn read_dead_letters(&self) -> (Running, Arc<Mutex<Vec<Incoming>>>) {
        let recorder = Recorder::applying_all();
        let log = recorder.log();
        let settings = ConsumerSettings::new(unique("test-dlq-reader"), &[&self.dead_letters], unique("unused"));
        (spawn(&self.kafka, settings, recorder, self.producer.clone()), log)
    }
}

/// A consumer running in its own task.
pub(crate) struct Running {
    pub(crate) shutdown: Shutdown,
    pub(crate) task: JoinHandle<()>,
}

impl Running {
    /// Clean shutdown: finish, commit, leave the group.
    pub(crate) async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(PATIENCE, self.task).await.expect("consumer stops in time").expect("no panic");
    }

    /// The process dies: the task is dropped wherever it is, nothing more is stored.
    pub(crate) async fn crash(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

fn spawn(kafka: &KafkaConfig, settings: ConsumerSettings, handler: Recorder, producer: Producer) -> Running {
    let consumer = Consumer::new(kafka, settings, producer).expect("consumer");
    let shutdown = Shutdown::new();
    let stop = shutdown.clone();
    let task = tokio::spawn(async move { consumer.run(&handler, stop).await });
    Running { shutdown, task }
}
