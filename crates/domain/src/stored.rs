//! How a view holds its users in memory: compactly, since a process holds every live user.
//!
//! A million users at a few hundred bytes each is what a service's memory is made of, so each
//! user is one small record whose strings share one allocation ([`StoredUser`]), and the
//! tables that find them hold pointers and ids, never copies of keys ([`Shards`]).
//! `just bench` measures the result (bytes of resident memory per user; see BENCHMARKS.md).

use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use hashbrown::HashTable;
use uuid::Uuid;

use crate::time::Timestamp;
use crate::user::{Age, Email, Locale, Name, User};

/// One version of a user, immutable: the email, the name and the locale in one string, the
/// rest inline (80 bytes with its `Arc`, plus the string's own allocation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUser {
    id: Uuid,
    /// The email, then the name, then the locale (empty if none).
    text: Box<str>,
    created_at: Timestamp,
    updated_at: Timestamp,
    version: u64,
    email_len: u16,
    name_len: u16,
    age: Option<Age>,
}

impl StoredUser {
    pub fn new(user: &User) -> Self {
        let (email, name) = (user.email.as_str(), user.name.as_str());
        let locale = user.locale.as_ref().map_or("", Locale::as_str);
        let mut text = String::with_capacity(email.len() + name.len() + locale.len());
        text.push_str(email);
        text.push_str(name);
        text.push_str(locale);
        Self {
            id: user.id,
            text: text.into_boxed_str(),
            created_at: user.created_at,
            updated_at: user.updated_at,
            version: user.version,
            // An email has at most 254 characters and a name 200: their UTF-8 fits in u16.
            email_len: u16::try_from(email.len()).unwrap_or(u16::MAX),
            name_len: u16::try_from(name.len()).unwrap_or(u16::MAX),
            age: user.age,
        }
    }

    pub fn id(&self) -> Uuid {
        self.id
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }

    pub fn updated_at(&self) -> Timestamp {
        self.updated_at
    }

    pub fn age(&self) -> Option<Age> {
        self.age
    }

    pub fn email(&self) -> &str {
        self.text.get(..usize::from(self.email_len)).unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        let start = usize::from(self.email_len);
        self.text.get(start..start + usize::from(self.name_len)).unwrap_or_default()
    }

    /// The locale's tag; empty if none.
    pub fn locale(&self) -> &str {
        self.text.get(usize::from(self.email_len) + usize::from(self.name_len)..).unwrap_or_default()
    }

    /// Whether this user's email has the uniqueness key `key` ([`Email::key`]) without making
    /// the key: emails are ASCII, so the key is the address in ASCII lower case.
    pub fn has_email_key(&self, key: &str) -> bool {
        let email = self.email().as_bytes();
        email.len() == key.len() && email.iter().zip(key.as_bytes()).all(|(a, b)| a.to_ascii_lowercase() == *b)
    }

    /// The user as the rest of the domain knows it (its strings copied out).
    pub fn to_user(&self) -> User {
        let locale = self.locale();
        User {
            id: self.id,
            email: Email::stored(self.email()),
            name: Name::stored(self.name()),
            age: self.age,
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: self.version,
            locale: if locale.is_empty() { None } else { Locale::stored(locale) },
        }
    }
}

/// A hash table split into shards, each behind its own lock, so that readers and writers of
/// different shards never wait for each other; the caller hashes. Unlike a map, it holds only
/// values: a value knows its own key (a user its id), so no key is stored twice, and several
/// values may share a hash (the claims on one email key).
#[derive(Debug)]
pub(crate) struct Shards<T> {
    shards: Box<[RwLock<HashTable<T>>]>,
}

/// 16 shards: enough that two cores rarely meet on one lock.
const SHARD_BITS: u32 = 4;

impl<T> Default for Shards<T> {
    fn default() -> Self {
        Self { shards: (0..1 << SHARD_BITS).map(|_| RwLock::new(HashTable::new())).collect() }
    }
}

impl<T> Shards<T> {
    fn shard(&self, hash: u64) -> &RwLock<HashTable<T>> {
        // Neither the low bits (the table's bucket) nor the top seven (its control bytes): the
        // shard must not take the entropy the table inside it uses.
        let index = (hash << 7) >> (64 - SHARD_BITS);
        &self.shards[usize::try_from(index).unwrap_or_default()]
    }

    /// The shard holding `hash`, to read. Guards never leave the view's module.
    pub(crate) fn read(&self, hash: u64) -> RwLockReadGuard<'_, HashTable<T>> {
        self.shard(hash).read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The shard holding `hash`, to change. Every change is one insert, replacement or removal:
    /// a panic elsewhere cannot leave a table half-changed, so a poisoned lock is taken as is.
    pub(crate) fn write(&self, hash: u64) -> RwLockWriteGuard<'_, HashTable<T>> {
        self.shard(hash).write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Each shard in turn, read: for passes over everything (digests), a shard at a time.
    pub(crate) fn each(&self) -> impl Iterator<Item = RwLockReadGuard<'_, HashTable<T>>> {
        self.shards.iter().map(|shard| shard.read().unwrap_or_else(PoisonError::into_inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_user_gives_back_the_user_it_was_made_of() {
        let mut user = User {
            id: Uuid::now_v7(),
            email: Email::parse("Ada.Lovelace@Example.com").unwrap(),
            name: Name::parse("Ada Lovelace, née Byron — 数学者").unwrap(),
            age: Some(Age::parse(36).unwrap()),
            created_at: Timestamp::from_millis(1),
            updated_at: Timestamp::from_millis(2),
            version: 7,
            locale: Some(Locale::parse("en_gb").unwrap()),
        };
        assert_eq!(StoredUser::new(&user).to_user(), user);
        (user.age, user.locale) = (None, None);
        let stored = StoredUser::new(&user);
        assert_eq!(stored.to_user(), user);
        assert!(stored.has_email_key("ada.lovelace@example.com"));
        assert!(!stored.has_email_key("Ada.Lovelace@Example.com"), "a key is lower case");
        assert!(!stored.has_email_key("ada.lovelace@example.co"));
    }
}
