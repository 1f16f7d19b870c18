//! Lag in seconds, and the readiness that follows it: shared by the projections (tails) and the
//! consumer groups. A reader is behind after two readings in a row past `READY_MAX_LAG_SECS`,
//! and current again under half of it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::consumer::Incoming;
use crate::health::Health;
use crate::shutdown::Shutdown;

/// How often lag is read and judged.
pub(super) const LAG_INTERVAL: Duration = Duration::from_secs(2);

/// The wall clock in milliseconds since the epoch, `ago` ago.
pub(super) fn millis_ago(ago: Duration) -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.saturating_sub(ago).as_millis()).unwrap_or(0)
}

/// A readiness check following a reader's lag in seconds.
pub(super) struct LagReadiness {
    health: Health,
    check: &'static str,
    /// What lags, for the detail and the log ("users.events", "group user-service").
    what: String,
    max: Duration,
    judge: LagJudge,
}

impl LagReadiness {
    pub(super) fn new(health: Health, check: &'static str, what: String, max: Duration) -> Self {
        Self { health, check, what, max, judge: LagJudge::default() }
    }

    pub(super) fn judge(&mut self, seconds: f64) {
        self.judge_why(seconds, String::new);
    }

    /// [`LagReadiness::judge`], saying `why` (when not empty) in the log and the detail when
    /// it turns not ready.
    pub(super) fn judge_why(&mut self, seconds: f64, why: impl FnOnce() -> String) {
        let max = self.max.as_secs_f64();
        match self.judge.reading(seconds, max) {
            Some(true) => {
                let why = why();
                tracing::warn!(what = %self.what, seconds, max, %why, "lagging: not ready");
                let why = if why.is_empty() { why } else { format!(": {why}") };
                let detail = format!("{seconds:.0} s behind on {} (more than {max} s){why}", self.what);
                self.health.not_ready(self.check, detail);
            }
            Some(false) => {
                tracing::info!(what = %self.what, seconds, "caught up again: ready");
                self.health.ready(self.check, format!("caught up on {}", self.what));
            }
            None => {}
        }
    }
}

/// Whether a reader is behind, from its lag readings: behind after two readings in a row past
/// the bound (one reading can catch a record that just arrived after an idle hour), current
/// again under half the bound (so a lag hovering at the bound does not flap).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct LagJudge {
    behind: bool,
    over: u32,
}

impl LagJudge {
    /// Takes a reading; returns the new verdict when it changes (true: behind).
    pub(super) fn reading(&mut self, seconds: f64, max: f64) -> Option<bool> {
        self.over = if seconds > max { self.over + 1 } else { 0 };
        let behind = if self.behind { seconds >= max / 2.0 } else { self.over >= 2 };
        (behind != self.behind).then(|| {
            self.behind = behind;
            behind
        })
    }
}

/// How far a consumer group member is behind, in seconds: the age of the oldest message it is
/// handling (a batch retried, a long job), or, while librdkafka's statistics show records
/// waiting in a partition it holds, how long ago the last message it took from that partition
/// was written. Fed by the consumer loop (`taken`, `done`) and its statistics (`lags`); read
/// by a task of its own, so a handler that never returns still shows its lag growing.
#[derive(Debug)]
pub(super) struct GroupLag {
    /// Write time (ms) of the oldest message of the batch in hand; 0 when none is.
    in_hand_since: AtomicI64,
    /// Per (topic, partition) held: the records waiting (from the latest statistics), and the
    /// write time of the last message taken.
    partitions: Mutex<HashMap<(String, i32), PartitionLag>>,
    started_ms: i64,
}

#[derive(Debug, Default, Clone, Copy)]
struct PartitionLag {
    waiting: i64,
    last_written_ms: Option<i64>,
}

impl Default for GroupLag {
    fn default() -> Self {
        Self { in_hand_since: AtomicI64::new(0), partitions: Mutex::default(), started_ms: millis_ago(Duration::ZERO) }
    }
}

impl GroupLag {
    fn partitions(&self) -> std::sync::MutexGuard<'_, HashMap<(String, i32), PartitionLag>> {
        self.partitions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A batch was taken from the topic: it is in hand until [`GroupLag::done`].
    pub(super) fn taken(&self, batch: &[Incoming]) {
        let oldest = batch.iter().filter_map(|m| m.timestamp_ms).min().unwrap_or_else(|| millis_ago(Duration::ZERO));
        self.in_hand_since.store(oldest.max(1), Ordering::Relaxed);
        let mut partitions = self.partitions();
        for message in batch {
            let Some(written) = message.timestamp_ms else { continue };
            let entry = partitions.entry((message.topic.clone(), message.partition)).or_default();
            entry.last_written_ms = Some(entry.last_written_ms.map_or(written, |w| w.max(written)));
            // What the statistics said was waiting is taken (the next ones say what is left):
            // a record arriving after an idle hour is not an hour of lag.
            entry.waiting = 0;
        }
    }

    /// The batch in hand is applied (or dead-lettered, or given back at shutdown).
    pub(super) fn done(&self) {
        self.in_hand_since.store(0, Ordering::Relaxed);
    }

    /// The records waiting in each partition held, from librdkafka's statistics: every
    /// partition not listed is no longer held.
    pub(super) fn waiting(&self, waiting: impl IntoIterator<Item = ((String, i32), i64)>) {
        let mut partitions = self.partitions();
        let mut held = HashMap::new();
        for (key, records) in waiting {
            let last_written_ms = partitions.get(&key).and_then(|p| p.last_written_ms);
            held.insert(key, PartitionLag { waiting: records, last_written_ms });
        }
        *partitions = held;
    }

    /// Seconds behind at `now_ms`.
    pub(super) fn seconds(&self, now_ms: i64) -> f64 {
        let age = |written: i64| (now_ms - written).max(0) as f64 / 1000.0;
        let in_hand = match self.in_hand_since.load(Ordering::Relaxed) {
            0 => 0.0,
            since => age(since),
        };
        let waiting = self
            .partitions()
            .values()
            .filter(|p| p.waiting > 0)
            .map(|p| age(p.last_written_ms.unwrap_or(self.started_ms)))
            .fold(0.0, f64::max);
        in_hand.max(waiting)
    }

    /// What holds the member back at `now_ms`: a batch in hand (a handler or a commit that
    /// does not return) or records waiting that are not taken (a consumer not fetching).
    pub(super) fn why(&self, now_ms: i64) -> String {
        let age = |written: i64| (now_ms - written).max(0) / 1000;
        let mut causes = Vec::new();
        if let since @ 1.. = self.in_hand_since.load(Ordering::Relaxed) {
            causes.push(format!("a batch in hand whose oldest record is {} s old", age(since)));
        }
        let partitions = self.partitions();
        let mut waiting: Vec<_> = partitions.iter().filter(|(_, p)| p.waiting > 0).collect();
        waiting.sort_by_key(|(key, _)| (*key).clone());
        for ((topic, partition), p) in waiting {
            let last = p.last_written_ms.map_or_else(|| "none taken".to_owned(), |w| format!("{} s", age(w)));
            causes.push(format!("{} waiting in {topic}/{partition} (last taken: {last})", p.waiting));
        }
        causes.join("; ")
    }

    /// Until `shutdown`: every [`LAG_INTERVAL`], `kafka_consumer_lag_seconds{group}`, and the
    /// readiness judged by it when given.
    pub(super) async fn watch(self: Arc<Self>, group: String, mut readiness: Option<LagReadiness>, shutdown: Shutdown) {
        let gauge = metrics::gauge!("kafka_consumer_lag_seconds", "group" => group);
        let mut every = tokio::time::interval(LAG_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.wait() => return,
                _ = every.tick() => {}
            }
            let now = millis_ago(Duration::ZERO);
            let seconds = self.seconds(now);
            gauge.set(seconds);
            if let Some(readiness) = readiness.as_mut() {
                readiness.judge_why(seconds, || self.why(now));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_is_behind_after_two_readings_past_the_bound_and_current_again_under_half() {
        let mut judge = LagJudge::default();
        let verdicts: Vec<_> = [0.0, 31.0, 5.0, 31.0, 40.0, 29.0, 16.0, 31.0, 14.0, 31.0]
            .iter()
            .map(|&s| judge.reading(s, 30.0))
            .collect();
        assert_eq!(
            verdicts,
            [None, None, None, None, Some(true), None, None, None, Some(false), None],
            "one reading past the bound is not enough; between half and the bound nothing changes"
        );
    }

    fn message(partition: i32, written_ms: i64) -> Incoming {
        let mut message = Incoming::with_headers(&[]);
        message.partition = partition;
        message.timestamp_ms = Some(written_ms);
        message
    }

    #[test]
    fn a_group_member_lags_by_the_oldest_message_in_hand() {
        let lag = GroupLag::default();
        let now = lag.started_ms + 100_000;
        assert_eq!(lag.seconds(now), 0.0, "nothing taken, nothing waiting");
        lag.taken(&[message(0, now - 40_000), message(1, now - 50_000), message(0, now - 30_000)]);
        assert_eq!(lag.seconds(now), 50.0, "the oldest in hand, however long the handler takes");
        assert_eq!(lag.seconds(now + 10_000), 60.0, "and growing while it is in hand");
        assert_eq!(lag.why(now), "a batch in hand whose oldest record is 50 s old");
        lag.done();
        assert_eq!(lag.seconds(now), 0.0, "done and nothing waiting: current");
    }

    #[test]
    fn a_group_member_lags_while_records_wait_in_a_partition_it_holds() {
        let lag = GroupLag::default();
        let now = lag.started_ms + 100_000;
        lag.taken(&[message(0, now - 40_000), message(1, now - 20_000)]);
        lag.done();
        lag.waiting([(("t".to_owned(), 0), 0), (("t".to_owned(), 1), 5)]);
        assert_eq!(lag.seconds(now), 20.0, "partition 1 waits: since its last message taken");
        assert_eq!(lag.why(now), "5 waiting in t/1 (last taken: 20 s)");
        lag.waiting([(("t".to_owned(), 2), 3)]);
        assert_eq!(lag.seconds(now), 100.0, "a partition never taken from: since the member started");
        assert_eq!(lag.why(now), "3 waiting in t/2 (last taken: none taken)");
        lag.waiting([]);
        assert_eq!(lag.seconds(now), 0.0, "nothing held, nothing waiting");
    }
}
