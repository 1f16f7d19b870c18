//! The users as a read model, built by applying events: each service keeps its own instance
//! (user-service to decide, the gateway to answer reads, export-worker to export).
//!
//! # The invariant: a function of each partition's own order
//!
//! Events are keyed by user id, so one user's events are on one partition, in version order;
//! different users' events are on different partitions, read in whatever interleaving Kafka
//! hands them over. The view's content depends only on *which* events it has applied (a prefix
//! of each partition), never on the order partitions were interleaved:
//!
//! - a user's entry is its highest-version event applied (an event not newer than what the
//!   view holds changes nothing, so replays and redeliveries are harmless);
//! - the email index is *derived* from those entries: each live user claims the key of its
//!   current email, and a claim is removed only by its own user (an email change or a
//!   deletion). Another user's history never touches it. Once every partition is applied to
//!   the same point as user-service decided, each key has exactly one claim (user-service
//!   enforces uniqueness in its total order); while one partition lags another, a key can
//!   briefly have two claims (A's deletion not applied yet, B's creation already), and the
//!   lookup answers the newest fact.
//!
//! No deleted ids are remembered: a deleted user can only come back through a replay of its
//! partition from an earlier position, and that replay applies its deletion again.
//!
//! A cheap `Clone` handle. Reads return owned values; no guard escapes this module.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use ahash::RandomState;
use sha2::{Digest as _, Sha256};
use smallvec::SmallVec;
use uuid::Uuid;

use crate::decide::Users;
use crate::event::{Event, EventEnvelope};
use crate::stored::{Shards, StoredUser};
use crate::user::User;

#[derive(Debug, Clone, Default)]
pub struct UserView {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Each user's current version, by the hash of its id. Each version is immutable and
    /// shared: a snapshot holds versions without copying them.
    users: Shards<Arc<StoredUser>>,
    /// How many users there are.
    count: AtomicUsize,
    /// The claims on email keys: every live user's, by the hash of its current email's key.
    /// The key itself is not kept (the user has it): a lookup checks each claim under its hash
    /// against the claimant's email.
    emails: Shards<Claim>,
    /// Ids in order (UUID v7: creation order), for stable pagination.
    order: RwLock<BTreeSet<Uuid>>,
    hasher: RandomState,
}

/// A live user's claim on the key of its email ([`crate::user::Email::key`]), filed under the
/// key's hash; the hash is kept to move the claim when its table grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Claim {
    key: u64,
    owner: Uuid,
}

/// A page of users ([`UserView::page`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub items: Vec<User>,
    /// The id to continue after; `None` at the end.
    pub next: Option<Uuid>,
    /// The scan ran out of time before `items` was full: more matches may follow `next`.
    pub partial: bool,
}

/// What a view holds, in a form two processes can compare: equal digests (at equal positions)
/// mean equal users and equal email indexes, whatever order each applied its events in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Digest {
    pub users: u64,
    /// An order-independent hash of every (id, version).
    pub versions: u64,
    /// An order-independent hash of every (email key, owner) claim.
    pub emails: u64,
}

impl UserView {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies `event`; returns false if it was not newer than what the view holds.
    pub fn apply(&self, event: &Event) -> bool {
        match event {
            Event::Created(user) | Event::Updated(user) => self.put_ref(user),
            Event::Deleted { user_id, version, .. } => {
                self.current(*user_id).is_none_or(|known| known.version() < *version) && self.remove(*user_id)
            }
        }
    }

    /// Holds `user` as its latest state unless the view holds that version or a newer one
    /// (what a created or updated event, or a state record, says); false if it was not newer.
    pub fn put(&self, user: User) -> bool {
        self.put_ref(&user)
    }

    fn put_ref(&self, user: &User) -> bool {
        let id = user.id;
        let previous = self.current(id);
        if previous.as_ref().is_some_and(|p| p.version() >= user.version) {
            return false;
        }
        let stored = Arc::new(StoredUser::new(user));
        let key = self.key_hash(stored.email());
        let hash = self.id_hash(id);
        let hasher = |u: &Arc<StoredUser>| self.id_hash(u.id());
        match self.inner.users.write(hash).entry(hash, |u| u.id() == id, hasher) {
            hashbrown::hash_table::Entry::Occupied(mut entry) => *entry.get_mut() = stored,
            hashbrown::hash_table::Entry::Vacant(entry) => {
                entry.insert(stored);
            }
        }
        match previous.map(|p| self.key_hash(p.email())) {
            Some(old) if old == key => {}
            Some(old) => {
                self.unclaim(old, id);
                self.claim(key, id);
            }
            None => {
                self.claim(key, id);
                self.inner.count.fetch_add(1, Ordering::Relaxed);
                self.order().insert(id);
            }
        }
        true
    }

    /// Removes `id`'s user, whatever its version: a deletion read from the state topic, whose
    /// tombstone comes after every earlier state of that user on its partition.
    pub fn remove(&self, id: Uuid) -> bool {
        let hash = self.id_hash(id);
        let removed = self.inner.users.write(hash).find_entry(hash, |u| u.id() == id).ok().map(|e| e.remove().0);
        let Some(previous) = removed else { return false };
        self.unclaim(self.key_hash(previous.email()), id);
        self.inner.count.fetch_sub(1, Ordering::Relaxed);
        self.order().remove(&id);
        true
    }

    fn claim(&self, key: u64, owner: Uuid) {
        let mut claims = self.inner.emails.write(key);
        if claims.find(key, |claim| claim.owner == owner).is_none() {
            claims.insert_unique(key, Claim { key, owner }, |claim| claim.key);
        }
    }

    fn unclaim(&self, key: u64, owner: Uuid) {
        let mut claims = self.inner.emails.write(key);
        if let Ok(claim) = claims.find_entry(key, |claim| claim.owner == owner) {
            claim.remove();
        }
    }

    fn id_hash(&self, id: Uuid) -> u64 {
        self.inner.hasher.hash_one(id.as_u128())
    }

    /// The hash of an email's uniqueness key ([`crate::user::Email::key`]: the address in
    /// ASCII lower case), made without allocating it.
    fn key_hash(&self, email: &str) -> u64 {
        let mut key = [0u8; 256];
        match key.get_mut(..email.len()) {
            Some(buffer) => {
                buffer.copy_from_slice(email.as_bytes());
                buffer.make_ascii_lowercase();
                self.inner.hasher.hash_one(&*buffer)
            }
            None => self.inner.hasher.hash_one(email.to_ascii_lowercase().as_bytes()),
        }
    }

    /// A function applying each event it is given: what a projection's tail calls.
    pub fn applying(&self) -> impl Fn(EventEnvelope) + Send + Sync + 'static {
        let view = self.clone();
        move |envelope: EventEnvelope| {
            view.apply(&envelope.event);
        }
    }

    /// The current version of `id`'s user, shared.
    fn current(&self, id: Uuid) -> Option<Arc<StoredUser>> {
        let hash = self.id_hash(id);
        self.inner.users.read(hash).find(hash, |u| u.id() == id).cloned()
    }

    pub fn get(&self, id: Uuid) -> Option<User> {
        self.current(id).map(|u| u.to_user())
    }

    /// The user holding `email_key` ([`crate::user::Email::key`]). Should two users claim it
    /// (one partition applied further than another), the newest fact wins: the user changed
    /// last.
    fn owner(&self, email_key: &str) -> Option<Arc<StoredUser>> {
        let hash = self.inner.hasher.hash_one(email_key.as_bytes());
        let claims: SmallVec<[Claim; 2]> = self.inner.emails.read(hash).iter_hash(hash).copied().collect();
        // Claims under one hash may be on other keys (a collision): each is checked.
        let owners = claims.iter().filter_map(|c| self.current(c.owner)).filter(|u| u.has_email_key(email_key));
        owners.max_by_key(|u| (u.updated_at(), u.version(), u.id()))
    }

    /// The id of the user holding `email_key` ([`crate::user::Email::key`]).
    pub fn owner_of(&self, email_key: &str) -> Option<Uuid> {
        self.owner(email_key).map(|u| u.id())
    }

    /// The user holding `email_key` ([`crate::user::Email::key`]).
    pub fn by_email(&self, email_key: &str) -> Option<User> {
        self.owner(email_key).map(|u| u.to_user())
    }

    pub fn len(&self) -> usize {
        self.inner.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to `limit` users after `after` in id order that satisfy `keep`, and where to continue.
    ///
    /// The ids are read a few hundred at a time, each time under the order's lock for only as
    /// long as copying them takes, and `keep` runs outside it: a scan over millions of users
    /// never holds back the writers. Past `deadline`, the scan stops between two such steps and
    /// answers what it found so far, marked partial, with the last id it examined as the place
    /// to continue from.
    pub fn page(
        &self,
        after: Option<Uuid>,
        limit: usize,
        keep: impl Fn(&User) -> bool,
        deadline: Option<Instant>,
    ) -> Page {
        const STEP: usize = 256;
        let mut items = Vec::with_capacity(limit.min(1024));
        let mut from = after;
        loop {
            let ids: Vec<Uuid> = {
                let order = self.inner.order.read().unwrap_or_else(PoisonError::into_inner);
                let start = from.map_or(Bound::Unbounded, Bound::Excluded);
                order.range((start, Bound::Unbounded)).take(STEP).copied().collect()
            };
            for id in &ids {
                let Some(user) = self.get(*id).filter(&keep) else { continue };
                if items.len() == limit {
                    let next = items.last().map(|u: &User| u.id);
                    return Page { items, next, partial: false };
                }
                items.push(user);
            }
            if ids.len() < STEP {
                return Page { items, next: None, partial: false };
            }
            from = ids.last().copied();
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Page { items, next: from, partial: true };
            }
        }
    }

    /// The current version of `id`'s user if it satisfies `keep`, shared rather than copied:
    /// what a snapshot of many users is made of.
    pub fn get_shared_if(&self, id: Uuid, keep: impl Fn(&User) -> bool) -> Option<Arc<StoredUser>> {
        self.current(id).filter(|u| keep(&u.to_user()))
    }

    /// The current version of `id`'s user, shared rather than copied.
    pub fn get_shared(&self, id: Uuid) -> Option<Arc<StoredUser>> {
        self.current(id)
    }

    /// Every id, in id order (creation order): a cheap consistent list to read users by.
    pub fn ids(&self) -> Vec<Uuid> {
        self.inner.order.read().unwrap_or_else(PoisonError::into_inner).iter().copied().collect()
    }

    /// Every user, in id order.
    pub fn snapshot(&self) -> Vec<User> {
        self.ids().into_iter().filter_map(|id| self.get(id)).collect()
    }

    /// Every (email key, owner) claim of the index, sorted. A claim filed under a hash other
    /// than its owner's current key's (an index out of step with the users) shows as a claim
    /// on `"(misfiled)"`.
    pub fn claims(&self) -> Vec<(String, Uuid)> {
        let all: Vec<Claim> =
            self.inner.emails.each().flat_map(|claims| claims.iter().copied().collect::<Vec<_>>()).collect();
        let mut claims: Vec<(String, Uuid)> = all
            .into_iter()
            .map(|claim| {
                let owner = self.current(claim.owner).filter(|u| self.key_hash(u.email()) == claim.key);
                let key = owner.map_or_else(|| "(misfiled)".to_owned(), |u| u.email().to_ascii_lowercase());
                (key, claim.owner)
            })
            .collect();
        claims.sort_unstable();
        claims
    }

    /// The view's [`Digest`]: a pass over every user and claim (run it off the async workers).
    pub fn digest(&self) -> Digest {
        let mut digest = Digest::default();
        for shard in self.inner.users.each() {
            for user in shard.iter() {
                digest.users += 1;
                let version = hash(&[user.id().as_bytes(), &user.version().to_be_bytes()]);
                digest.versions = digest.versions.wrapping_add(version);
            }
        }
        for (key, owner) in self.claims() {
            digest.emails = digest.emails.wrapping_add(hash(&[key.as_bytes(), owner.as_bytes()]));
        }
        digest
    }

    fn order(&self) -> std::sync::RwLockWriteGuard<'_, BTreeSet<Uuid>> {
        // Every write is one insert or remove: a panic elsewhere cannot leave it half-done.
        self.inner.order.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A hash that is the same in every process and release (a digest is compared across them):
/// the first 8 bytes of SHA-256 over length-prefixed parts.
fn hash(parts: &[&[u8]]) -> u64 {
    let mut sha = Sha256::new();
    for part in parts {
        sha.update((part.len() as u64).to_be_bytes());
        sha.update(part);
    }
    let out = sha.finalize();
    u64::from_be_bytes(out[..8].try_into().expect("SHA-256 has 32 bytes"))
}

impl Users for UserView {
    fn get(&self, id: Uuid) -> Option<User> {
        UserView::get(self, id)
    }

    fn owner_of(&self, email_key: &str) -> Option<Uuid> {
        UserView::owner_of(self, email_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;
    use crate::user::{Email, Name};

    fn user(email: &str, version: u64) -> User {
        User {
            id: Uuid::now_v7(),
            email: Email::parse(email).unwrap(),
            name: Name::parse("N").unwrap(),
            age: None,
            created_at: Timestamp::from_millis(1),
            updated_at: Timestamp::from_millis(1),
            version,
            locale: None,
        }
    }

    #[test]
    fn applying_the_same_event_twice_changes_nothing_the_second_time() {
        let view = UserView::new();
        let ada = user("ada@example.com", 1);
        assert!(view.apply(&Event::Created(ada.clone())));
        assert!(!view.apply(&Event::Created(ada.clone())));
        assert_eq!(view.len(), 1);
    }

    #[test]
    fn an_email_change_moves_the_email_index() {
        let view = UserView::new();
        let ada = user("ada@example.com", 1);
        view.apply(&Event::Created(ada.clone()));
        let moved = User { email: Email::parse("lovelace@example.com").unwrap(), version: 2, ..ada.clone() };
        view.apply(&Event::Updated(moved));
        assert!(view.by_email("ada@example.com").is_none());
        assert_eq!(view.by_email("lovelace@example.com").map(|u| u.id), Some(ada.id));
    }

    #[test]
    fn a_deleted_user_is_gone_and_its_email_free() {
        let view = UserView::new();
        let ada = user("ada@example.com", 1);
        view.apply(&Event::Created(ada.clone()));
        view.apply(&Event::Deleted { user_id: ada.id, email: ada.email.clone(), version: 2 });
        assert!(view.get(ada.id).is_none() && view.by_email("ada@example.com").is_none());
        assert!(view.is_empty() && view.claims().is_empty());
    }

    #[test]
    fn an_older_history_read_late_does_not_take_an_email_from_its_new_owner() {
        // Ada held the email and was deleted (one partition); Bob took it (another partition),
        // and Bob's partition is read first.
        let view = UserView::new();
        let ada = user("x@example.com", 1);
        let bob = User { updated_at: Timestamp::from_millis(5), ..user("X@example.com", 1) };
        view.apply(&Event::Created(bob.clone()));
        view.apply(&Event::Created(ada.clone()));
        assert_eq!(view.owner_of("x@example.com"), Some(bob.id), "the newest fact while both claim it");
        view.apply(&Event::Deleted { user_id: ada.id, email: ada.email.clone(), version: 2 });
        assert_eq!(view.owner_of("x@example.com"), Some(bob.id));
        assert_eq!(view.claims(), vec![("x@example.com".to_owned(), bob.id)]);
    }

    /// Claims are filed by the hash of their key only: two keys with one hash (forced here, as
    /// the hasher is seeded at random) must not find each other's users.
    #[test]
    fn a_claim_under_a_colliding_hash_is_not_taken_for_another_key() {
        let view = UserView::new();
        let (ada, bob) = (user("ada@example.com", 1), user("bob@example.com", 1));
        view.apply(&Event::Created(ada.clone()));
        view.claim(view.key_hash("bob@example.com"), ada.id);
        assert_eq!(view.owner_of("bob@example.com"), None, "ada's claim filed under bob's key's hash");
        view.apply(&Event::Created(bob.clone()));
        assert_eq!(view.owner_of("bob@example.com"), Some(bob.id));
        assert_eq!(view.owner_of("ada@example.com"), Some(ada.id));
        assert!(view.claims().contains(&("(misfiled)".to_owned(), ada.id)), "{:?}", view.claims());
    }

    #[test]
    fn pages_follow_id_order_and_filters_and_say_where_to_continue() {
        let view = UserView::new();
        let users: Vec<User> = (0..5).map(|i| user(&format!("u{i}@example.com"), 1)).collect();
        for u in &users {
            view.apply(&Event::Created(u.clone()));
        }
        let ids = |page: &Page| page.items.iter().map(|u| u.id).collect::<Vec<_>>();
        let first = view.page(None, 2, |_| true, None);
        assert_eq!(ids(&first), [users[0].id, users[1].id]);
        let second = view.page(first.next, 2, |_| true, None);
        assert_eq!(ids(&second), [users[2].id, users[3].id]);
        let last = view.page(second.next, 2, |_| true, None);
        assert_eq!((last.items.len(), last.next, last.partial), (1, None, false));
        let odd =
            view.page(None, 10, |u| u.email.as_str().starts_with("u1") || u.email.as_str().starts_with("u3"), None);
        assert_eq!(odd.items.len(), 2);
    }

    /// A search out of time answers partial pages; following their cursors finds every match
    /// exactly once, in order, whatever the budget.
    #[test]
    fn a_search_out_of_time_answers_partial_pages_whose_cursors_miss_nothing() {
        let view = UserView::new();
        let users: Vec<User> = (0..2000).map(|i| user(&format!("u{i}@example.com"), 1)).collect();
        for u in &users {
            view.apply(&Event::Created(u.clone()));
        }
        let keep = |u: &User| u.email.as_str().ends_with("7@example.com");
        let expected: Vec<Uuid> = users.iter().filter(|u| keep(u)).map(|u| u.id).collect();
        let (mut found, mut after, mut partials) = (Vec::new(), None, 0);
        loop {
            // Already past its deadline: every call stops after one step of the scan.
            let page = view.page(after, 30, keep, Some(Instant::now()));
            partials += usize::from(page.partial);
            found.extend(page.items.iter().map(|u| u.id));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(found, expected);
        assert!(partials >= 2000 / 256, "{partials} partial pages");
    }
}
