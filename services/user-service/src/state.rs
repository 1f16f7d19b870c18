//! user-service's state: the users as it decided them, and the outcome of every command it
//! decided within the de-duplication window, so a command sent again (an import resumed, a
//! client retrying) gets the same answer and no second effect.
//!
//! Nothing lives only here. On start (and after an aborted transaction) the users are read
//! like every projection reads them (`platform::users`: `users.state`, then the events from
//! where it ends) and the outcomes from the replies of the last [`DEDUP_WINDOW`]: each batch's
//! events, state records and replies are committed in one transaction, so the replies hold
//! the outcome of every command whose effects exist. The replies are kept as they came, by
//! command id (a batch's reply under the batch's id), and decoded only when that command comes
//! again ([`State::restore`]): a restart does not pay for decoding a day of outcomes. Outcomes
//! older than the window are forgotten, so memory follows the live users and the recent
//! commands, not the history.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;
use domain::command::BatchItem;
use domain::reply::{EventPosition, Outcome, Rejection, Reply};
use domain::stored::StoredUser;
use domain::time::Timestamp;
use domain::view::UserView;
use platform::Shutdown;
use platform::kafka::topics::DEDUP_WINDOW;
use platform::kafka::{HandleError, Handler, Incoming, Positions, StartAt, Tail};
use platform::service::ServiceBase;
use platform::topic::Topic;
use uuid::Uuid;

/// What a command came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// It took effect (`event` is where its event is; none if nothing changed). `user` is the
    /// user right after it (none once deleted, and none kept for an import's rows), shared with
    /// the view while that version is current: a command sent again is answered with what it
    /// did, not with what later commands did since.
    Accepted {
        user_id: Uuid,
        event: Option<EventPosition>,
        user: Option<Arc<StoredUser>>,
    },
    Rejected(Rejection),
}

/// An outcome kept for the de-duplication window.
#[derive(Debug, Clone)]
struct Kept {
    recorded: Recorded,
    /// When it was decided (milliseconds since the epoch).
    at: i64,
    /// The request digest of the command decided (`CommandEnvelope::request_digest`).
    digest: Option<Arc<str>>,
}

/// The outcomes of a batch's rows (an import's), kept for the de-duplication window under the
/// batch's id: 16 bytes a row, where one [`Kept`] per row took a hundred and more (a 1M-row
/// import kept 250 MiB of outcomes). A batch sent again is the same rows (an import resumed
/// sends each batch under the id of its first line); its rows are answered from here.
#[derive(Debug, Clone)]
struct KeptBatch {
    at: i64,
    /// A hash of the rows' command ids, in order ([`rows_hash`]): a batch whose rows differ is
    /// not this one.
    rows: u64,
    /// Each row's user, in order; nil for a refused row.
    users: Box<[Uuid]>,
    /// The refused rows: their index and why.
    rejected: Box<[(u32, Rejection)]>,
}

impl KeptBatch {
    /// `rows`: [`rows_hash`] of the rows' command ids; `results`: each row's outcome, in order.
    fn new(at: i64, rows: u64, results: impl IntoIterator<Item = Result<Uuid, Rejection>>) -> Self {
        let mut users = Vec::new();
        let mut rejected = Vec::new();
        for (index, result) in results.into_iter().enumerate() {
            match result {
                Ok(user_id) => users.push(user_id),
                Err(rejection) => {
                    users.push(Uuid::nil());
                    rejected.push((u32::try_from(index).unwrap_or(u32::MAX), rejection));
                }
            }
        }
        Self { at, rows, users: users.into(), rejected: rejected.into() }
    }

    /// Each row's outcome, if `items` are this batch's rows.
    fn results(&self, items: &[BatchItem]) -> Option<Vec<Result<Uuid, Rejection>>> {
        if items.len() != self.users.len() || rows_hash(items.iter().map(|item| item.command_id)) != self.rows {
            return None;
        }
        let mut results: Vec<Result<Uuid, Rejection>> = self.users.iter().map(|user| Ok(*user)).collect();
        for (index, rejection) in &self.rejected {
            if let Some(result) = results.get_mut(*index as usize) {
                *result = Err(rejection.clone());
            }
        }
        Some(results)
    }
}

/// A hash of command ids in order (the same in every run: SipHash with fixed keys).
fn rows_hash(ids: impl Iterator<Item = Uuid>) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::hash::DefaultHasher::new();
    ids.for_each(|id| id.hash(&mut hasher));
    hasher.finish()
}

#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    pub(crate) users: UserView,
    /// Command id -> its outcome (a batch's rows' only while the batch is being decided).
    outcomes: Arc<DashMap<Uuid, Kept, ahash::RandomState>>,
    /// Batch id -> its rows' outcomes.
    batches: Arc<DashMap<Uuid, KeptBatch, ahash::RandomState>>,
    /// Replies read on the rebuild, not decoded yet: command id -> the reply's record and
    /// when it was written.
    replied: Arc<DashMap<Uuid, (Incoming, i64), ahash::RandomState>>,
    /// The last event applied per partition of the events topic (read, then written).
    pub(crate) positions: Positions,
}

/// What a rebuild found beyond the state itself.
#[derive(Debug)]
pub(crate) struct Rebuilt {
    pub(crate) state: State,
    /// Set when the state topic was never written (a deployment from before it): the
    /// partition of each live user's events, to backfill the state topic with.
    pub(crate) backfill: Option<HashMap<Uuid, i32>>,
}

impl State {
    pub(crate) fn outcome(&self, command_id: Uuid) -> Option<Recorded> {
        self.outcomes.get(&command_id).map(|kept| kept.recorded.clone())
    }

    /// The request digest of the command decided under `command_id`.
    pub(crate) fn digest(&self, command_id: Uuid) -> Option<String> {
        self.outcomes.get(&command_id).and_then(|kept| kept.digest.as_deref().map(str::to_owned))
    }

    pub(crate) fn record(&self, command_id: Uuid, recorded: Recorded, digest: Option<&str>) {
        let kept = Kept { recorded, at: Timestamp::now().millis(), digest: digest.map(Arc::from) };
        self.outcomes.insert(command_id, kept);
    }

    /// The outcome of each of `items` if they are the rows of the batch `batch_id` decided
    /// before.
    pub(crate) fn batch_results(&self, batch_id: Uuid, items: &[BatchItem]) -> Option<Vec<Result<Uuid, Rejection>>> {
        self.batches.get(&batch_id)?.results(items)
    }

    /// Moves the outcomes of the rows of the batch `batch_id`, just decided, into the batch's
    /// compact form.
    pub(crate) fn keep_batch(&self, batch_id: Uuid, items: &[BatchItem]) {
        let results: Vec<Result<Uuid, Rejection>> = items
            .iter()
            .map(|item| match self.outcome(item.command_id) {
                Some(Recorded::Accepted { user_id, .. }) => Ok(user_id),
                Some(Recorded::Rejected(rejection)) => Err(rejection),
                None => unreachable!("every decided row has a recorded outcome"),
            })
            .collect();
        for item in items {
            self.outcomes.remove(&item.command_id);
        }
        let rows = rows_hash(items.iter().map(|item| item.command_id));
        self.batches.insert(batch_id, KeptBatch::new(Timestamp::now().millis(), rows, results));
    }

    /// Notes where an accepted command's event landed, once the broker said.
    pub(crate) fn located(&self, command_id: Uuid, position: EventPosition) {
        if let Some(mut kept) = self.outcomes.get_mut(&command_id)
            && let Recorded::Accepted { event, .. } = &mut kept.recorded
        {
            *event = Some(position);
        }
    }

    pub(crate) fn remembered(&self) -> usize {
        self.outcomes.len() + self.batches.len() + self.replied.len()
    }

    /// Decodes the reply to `command_id` read on the rebuild, if there is one, into outcomes
    /// (every row's, for a batch): call it before deciding a command.
    pub(crate) async fn restore(
        &self,
        command_id: Uuid,
        replies: &Topic<contract::replies::UserCommandReply>,
    ) -> Result<(), HandleError> {
        let Some((_, (record, at))) = self.replied.remove(&command_id) else { return Ok(()) };
        let reply: Reply = match replies.decode(&record).await {
            Ok(reply) => reply,
            Err(error) => {
                let retryable = error.is_retryable();
                if retryable {
                    self.replied.insert(command_id, (record, at));
                }
                return Err(error.into());
            }
        };
        self.record_reply(reply, at);
        Ok(())
    }

    fn record_reply(&self, reply: Reply, at: i64) {
        let digest: Option<Arc<str>> = reply.request_digest.as_deref().map(Arc::from);
        let record = |command_id, recorded| {
            self.outcomes.insert(command_id, Kept { recorded, at, digest: digest.clone() });
        };
        match reply.outcome {
            Outcome::Rejected(rejection) => record(reply.command_id, Recorded::Rejected(rejection)),
            Outcome::Accepted(accepted) => record(
                reply.command_id,
                Recorded::Accepted {
                    user_id: accepted.user_id,
                    event: accepted.event,
                    user: accepted.user.map(|user| Arc::new(StoredUser::new(&user))),
                },
            ),
            Outcome::Batch(items) => {
                let rows = rows_hash(items.iter().map(|item| item.command_id));
                let kept = KeptBatch::new(at, rows, items.into_iter().map(|item| item.result));
                self.batches.insert(reply.command_id, kept);
            }
        }
    }

    /// Forgets the outcomes of commands decided longer ago than the de-duplication window.
    pub(crate) fn expire(&self) -> usize {
        let oldest = Timestamp::now().millis() - DEDUP_WINDOW.as_millis() as i64;
        let before = self.remembered();
        self.outcomes.retain(|_, kept| kept.at >= oldest);
        self.batches.retain(|_, kept| kept.at >= oldest);
        self.replied.retain(|_, (_, at)| *at >= oldest);
        before - self.remembered()
    }

    /// Reads the users and the recent outcomes from Kafka (see the module).
    pub(crate) async fn rebuild(base: &ServiceBase) -> anyhow::Result<Rebuilt> {
        let started = Instant::now();
        let partitions: Arc<DashMap<Uuid, i32>> = Arc::default();
        let seen = Arc::clone(&partitions);
        let on_event = move |envelope: &domain::event::EventEnvelope, at: EventPosition| {
            seen.insert(envelope.event.user_id(), at.partition);
        };
        let stop = Shutdown::new();
        let read = base.read_users(on_event, stop.clone()).await?;
        let state = Self { users: read.view.clone(), ..Self::default() };
        stop.trigger();
        let _ = read.following.task.await;
        for (partition, offset) in read.following.positions.last_applied() {
            state.positions.record_applied(partition, offset);
        }
        let backfill = (read.state_never_written && !state.users.is_empty()).then(|| {
            let partitions = Arc::try_unwrap(partitions).unwrap_or_else(|shared| (*shared).clone());
            partitions.into_iter().filter(|(id, _)| state.users.get(*id).is_some()).collect()
        });

        let replies = &base.topics.user_replies;
        let tail = Tail::start(&base.kafka, replies.name(), StartAt::Since(DEDUP_WINDOW))
            .await?
            .dead_letters(base.dead_letters());
        let stop = Shutdown::new();
        let reading = tail.follow(FromReplies { state: state.clone(), replies: replies.clone() }, stop.clone()).await?;
        stop.trigger();
        let _ = reading.task.await;
        tracing::info!(
            users = state.users.len(),
            commands = state.remembered(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "state rebuilt from Kafka"
        );
        Ok(Rebuilt { state, backfill })
    }
}

/// Keeps each reply of the window by its command id (the record's key), undecoded; a batch's
/// reply (a large one) is decoded at once into its compact form instead.
struct FromReplies {
    state: State,
    replies: Topic<contract::replies::UserCommandReply>,
}

/// A reply this large is a batch's: kept raw, its rows would cost five times their compact
/// form (a restart over a 1M-row import held 166 MiB more than before it, `just bench`), and
/// decoding one costs tens of microseconds per 500 rows, where lazy decoding saves time only
/// on the many small replies of single commands.
const DECODED_AT_ONCE: usize = 4096;

impl Handler for FromReplies {
    async fn handle(&self, message: &Incoming) -> Result<(), HandleError> {
        let command_id = message.key.as_deref().and_then(|key| Uuid::try_parse_ascii(key).ok());
        let command_id = command_id.ok_or_else(|| HandleError::permanent("a reply whose key is not a command id"))?;
        let at = message.timestamp_ms.unwrap_or_else(|| Timestamp::now().millis());
        if message.payload.as_ref().is_some_and(|payload| payload.len() > DECODED_AT_ONCE) {
            match self.replies.decode::<Reply>(message).await {
                Ok(reply) => {
                    self.state.record_reply(reply, at);
                    return Ok(());
                }
                Err(error) if error.is_retryable() => return Err(error.into()),
                // Kept raw: deciding its command again says why it cannot be read.
                Err(_) => {}
            }
        }
        self.state.replied.insert(command_id, (message.clone(), at));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use domain::command::CreateUser;
    use domain::reply::RejectionReason;

    use super::*;

    fn item(line: u64) -> BatchItem {
        let user = CreateUser { email: format!("u{line}@example.com"), name: "U".into(), age: None, locale: None };
        BatchItem { command_id: Uuid::new_v4(), line, upsert: false, user }
    }

    #[test]
    fn a_batch_s_rows_are_answered_from_its_kept_outcomes_and_only_for_the_same_rows() {
        let state = State::default();
        let items: Vec<BatchItem> = (1..=4).map(item).collect();
        let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let taken = Rejection::new(RejectionReason::EmailTaken, "taken");
        let recorded = [
            Recorded::Accepted { user_id: ada, event: None, user: None },
            Recorded::Rejected(taken.clone()),
            Recorded::Accepted { user_id: bob, event: None, user: None },
            Recorded::Rejected(Rejection::new(RejectionReason::Invalid, "bad")),
        ];
        for (item, recorded) in items.iter().zip(recorded) {
            state.record(item.command_id, recorded, None);
        }
        let batch = Uuid::new_v4();
        state.keep_batch(batch, &items);

        let results = state.batch_results(batch, &items).expect("kept");
        assert_eq!(results[0], Ok(ada));
        assert_eq!(results[1], Err(taken));
        assert_eq!(results[2], Ok(bob));
        assert_eq!(results[3].as_ref().map_err(|r| r.reason), Err(RejectionReason::Invalid));
        assert!(items.iter().all(|item| state.outcome(item.command_id).is_none()), "rows moved, not copied");
        assert_eq!(state.remembered(), 1);

        let mut other = items.clone();
        other.swap(0, 1);
        assert_eq!(state.batch_results(batch, &other), None, "the same id with other rows");
        assert_eq!(state.batch_results(batch, &items[..3]), None);
        assert_eq!(state.batch_results(Uuid::new_v4(), &items), None);
    }
}
