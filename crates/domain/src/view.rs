//! The users as a read model, built by applying events: each service keeps its own instance
//! (user-service to decide, the gateway to answer reads, export-worker to export).
//!
//! A cheap `Clone` handle. Applying is idempotent and ordered by version: an event that is
//! not newer than what the view holds for that user changes nothing, so replays and
//! redeliveries are harmless. Reads return owned values; no guard escapes this module.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use ahash::RandomState;
use dashmap::DashMap;
use uuid::Uuid;

use crate::decide::Users;
use crate::event::{Event, EventEnvelope};
use crate::user::User;

#[derive(Debug, Clone, Default)]
pub struct UserView {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Each version is immutable and shared: a snapshot holds versions without copying them.
    users: DashMap<Uuid, Arc<User>, RandomState>,
    /// How many users there are (DashMap's own `len` locks every shard).
    count: AtomicUsize,
    /// Email key -> id.
    emails: DashMap<String, Uuid, RandomState>,
    /// The last version of deleted users, so a stale re-delivery cannot resurrect them.
    deleted: DashMap<Uuid, u64, RandomState>,
    /// Ids in order (UUID v7: creation order), for stable pagination.
    order: RwLock<BTreeSet<Uuid>>,
}

impl UserView {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies `event`; returns false if it was not newer than what the view holds.
    pub fn apply(&self, event: &Event) -> bool {
        let id = event.user_id();
        let version = event.version();
        let known = self.inner.users.get(&id).map(|u| u.version).or_else(|| self.inner.deleted.get(&id).map(|v| *v));
        if known.is_some_and(|known| known >= version) {
            return false;
        }
        match event {
            Event::Created(user) | Event::Updated(user) => {
                let previous = self.inner.users.insert(id, Arc::new(user.clone()));
                if let Some(previous) = previous.as_ref().filter(|p| p.email.key() != user.email.key()) {
                    self.inner.emails.remove_if(&previous.email.key(), |_, owner| *owner == id);
                }
                self.inner.emails.insert(user.email.key(), id);
                if previous.is_none() {
                    self.inner.count.fetch_add(1, Ordering::Relaxed);
                    self.order().insert(id);
                }
            }
            Event::Deleted { .. } => {
                if let Some((_, previous)) = self.inner.users.remove(&id) {
                    self.inner.count.fetch_sub(1, Ordering::Relaxed);
                    self.inner.emails.remove_if(&previous.email.key(), |_, owner| *owner == id);
                }
                self.inner.deleted.insert(id, version);
                self.order().remove(&id);
            }
        }
        true
    }

    /// A function applying each event it is given: what a projection's tail calls.
    pub fn applying(&self) -> impl Fn(EventEnvelope) + Send + Sync + 'static {
        let view = self.clone();
        move |envelope: EventEnvelope| {
            view.apply(&envelope.event);
        }
    }

    pub fn get(&self, id: Uuid) -> Option<User> {
        self.inner.users.get(&id).map(|u| User::clone(&u))
    }

    /// The user holding `email_key` ([`crate::user::Email::key`]).
    pub fn by_email(&self, email_key: &str) -> Option<User> {
        let id = *self.inner.emails.get(email_key)?;
        self.get(id)
    }

    pub fn len(&self) -> usize {
        self.inner.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to `limit` users after `after` in id order that satisfy `keep`, and whether more
    /// may follow (the id to continue after).
    pub fn page(&self, after: Option<Uuid>, limit: usize, keep: impl Fn(&User) -> bool) -> (Vec<User>, Option<Uuid>) {
        let order = self.inner.order.read().unwrap_or_else(PoisonError::into_inner);
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut page = Vec::with_capacity(limit.min(1024));
        for id in order.range((start, Bound::Unbounded)) {
            let Some(user) = self.get(*id) else { continue };
            if !keep(&user) {
                continue;
            }
            if page.len() == limit {
                let last = page.last().map(|u: &User| u.id);
                return (page, last);
            }
            page.push(user);
        }
        (page, None)
    }

    /// The current version of `id`'s user if it satisfies `keep`, shared rather than copied:
    /// what a snapshot of many users is made of.
    pub fn get_shared_if(&self, id: Uuid, keep: impl Fn(&User) -> bool) -> Option<Arc<User>> {
        self.inner.users.get(&id).filter(|u| keep(u)).map(|u| Arc::clone(&u))
    }

    /// Every id, in id order (creation order): a cheap consistent list to read users by.
    pub fn ids(&self) -> Vec<Uuid> {
        self.inner.order.read().unwrap_or_else(PoisonError::into_inner).iter().copied().collect()
    }

    /// Every user, in id order.
    pub fn snapshot(&self) -> Vec<User> {
        let order = self.inner.order.read().unwrap_or_else(PoisonError::into_inner);
        order.iter().filter_map(|id| self.get(*id)).collect()
    }

    fn order(&self) -> std::sync::RwLockWriteGuard<'_, BTreeSet<Uuid>> {
        // Every write is one insert or remove: a panic elsewhere cannot leave it half-done.
        self.inner.order.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Users for UserView {
    fn get(&self, id: Uuid) -> Option<User> {
        UserView::get(self, id)
    }

    fn owner_of(&self, email_key: &str) -> Option<Uuid> {
        self.inner.emails.get(email_key).map(|id| *id)
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
    fn a_deleted_user_is_gone_and_a_stale_event_cannot_bring_it_back() {
        let view = UserView::new();
        let ada = user("ada@example.com", 1);
        view.apply(&Event::Created(ada.clone()));
        view.apply(&Event::Deleted { user_id: ada.id, email: ada.email.clone(), version: 2 });
        assert!(view.get(ada.id).is_none() && view.by_email("ada@example.com").is_none());
        assert!(!view.apply(&Event::Created(ada)));
        assert!(view.is_empty());
    }

    #[test]
    fn pages_follow_id_order_and_filters_and_say_where_to_continue() {
        let view = UserView::new();
        let users: Vec<User> = (0..5).map(|i| user(&format!("u{i}@example.com"), 1)).collect();
        for u in &users {
            view.apply(&Event::Created(u.clone()));
        }
        let (first, next) = view.page(None, 2, |_| true);
        assert_eq!(first.iter().map(|u| u.id).collect::<Vec<_>>(), [users[0].id, users[1].id]);
        let (second, next) = view.page(next, 2, |_| true);
        assert_eq!(second.iter().map(|u| u.id).collect::<Vec<_>>(), [users[2].id, users[3].id]);
        let (last, next) = view.page(next, 2, |_| true);
        assert_eq!((last.len(), next), (1, None));
        let (odd, _) =
            view.page(None, 10, |u| u.email.as_str().starts_with("u1") || u.email.as_str().starts_with("u3"));
        assert_eq!(odd.len(), 2);
    }
}
