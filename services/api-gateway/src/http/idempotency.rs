//! `Idempotency-Key`: a client retrying a write after a lost answer gets the first answer
//! again, not a second effect and not a 409 for its own write.
//!
//! Nothing is remembered per gateway. The key, with the caller's principal, *is* the command's
//! id ([`Idempotency::command_id`]); a command sent again under an id user-service has decided
//! within its de-duplication window (24 h) is not decided again, and its reply repeats the
//! first outcome together with the first request's digest. So any gateway instance, at any
//! time within the window, answers a retry from what Kafka holds; a digest that differs from
//! the retry's own means the key was used for another request: 422.
//!
//! Imports and exports work the same way with the job's id and its status topic (see
//! `crate::jobs::Jobs::announce`): the key is the job's id, and the job's status carries the
//! digest of the request it runs.

use auth::Principal;
use axum::http::{HeaderMap, HeaderName, Method, header};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::error::ApiError;

pub(crate) const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// The namespace of ids derived from idempotency keys (fixed forever: ids must not change
/// between releases within a key's lifetime).
const NAMESPACE: Uuid = Uuid::from_u128(0x6d1f_9a3c_52e4_4b8e_9f07_3a1c_d2b5_e840);

/// Longest key accepted (a UUID is 36 characters).
const MAX_KEY_LEN: usize = 255;

/// A request sent under an idempotency key.
#[derive(Debug, Clone)]
pub(crate) struct Idempotency {
    /// The id of whatever the request creates (a command), the same for every retry.
    pub(crate) id: Uuid,
    /// SHA-256 (hex) of what the request asks: method, path, `If-Match` and body.
    pub(crate) digest: String,
}

impl Idempotency {
    /// The request's key, if it has one, tied to `caller` and to what it asks: method, path,
    /// `If-Match` and `body` (`scope` keeps users, imports and exports apart). 400 for a key
    /// that is empty, too long or not visible ASCII.
    pub(crate) fn of(
        caller: &Principal,
        scope: &str,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Option<Self>, ApiError> {
        let asked = [method.as_str(), path, if_match(headers)];
        Ok(Self::begin(caller, scope, headers, &asked)?.map(|mut request| {
            request.update(body);
            request.finish()
        }))
    }

    /// [`Idempotency::of`] for a body that is still arriving (an upload): what the request
    /// asks apart from its body is `asked`; the body goes to [`KeyedRequest::update`] as it
    /// comes.
    pub(crate) fn begin(
        caller: &Principal,
        scope: &str,
        headers: &HeaderMap,
        asked: &[&str],
    ) -> Result<Option<KeyedRequest>, ApiError> {
        let Some(raw) = headers.get(IDEMPOTENCY_KEY) else { return Ok(None) };
        let key = raw.to_str().ok().map(str::trim).filter(|k| {
            (1..=MAX_KEY_LEN).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic() || b == b' ' || b == b'\t')
        });
        let key = key.ok_or_else(|| {
            ApiError::BadRequest(format!(
                "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters (inner spaces and tabs too)"
            ))
        })?;
        let id = Uuid::new_v5(&NAMESPACE, format!("{scope}\n{}\n{key}", caller.id).as_bytes());
        let mut sha = Sha256::new();
        for part in asked {
            sha.update((part.len() as u64).to_be_bytes());
            sha.update(part.as_bytes());
        }
        Ok(Some(KeyedRequest { id, sha }))
    }

    /// Whether the first request under this key (whose digest `first` is) was this one.
    /// A reply naming no digest comes from before digests existed: nothing to compare.
    pub(crate) fn check(&self, first: Option<&str>) -> Result<(), ApiError> {
        match first {
            Some(first) if first != self.digest => Err(ApiError::IdempotencyKeyReused(
                "this Idempotency-Key was already used for a different request (another method, path, If-Match, body or file); a new request needs a new key".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// A request under an idempotency key whose body is being digested.
#[derive(Debug, Clone)]
pub(crate) struct KeyedRequest {
    id: Uuid,
    sha: Sha256,
}

impl KeyedRequest {
    pub(crate) fn id(&self) -> Uuid {
        self.id
    }

    pub(crate) fn update(&mut self, body: &[u8]) {
        self.sha.update(body);
    }

    pub(crate) fn finish(self) -> Idempotency {
        let digest = self.sha.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Idempotency { id: self.id, digest }
    }
}

/// `value` as bytes with every object's keys sorted and no spacing: JSON bodies that differ
/// only in layout or key order ask the same, and digest the same.
pub(crate) fn canonical_json(value: &Value) -> Vec<u8> {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&map[k]))).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_vec(&sorted(value)).unwrap_or_default()
}

fn if_match(headers: &HeaderMap) -> &str {
    headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use auth::Role;

    use super::*;

    fn key(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(IDEMPOTENCY_KEY, value.parse().unwrap());
        headers
    }

    fn principal(id: &str) -> Principal {
        Principal { id: id.into(), role: Role::Writer }
    }

    #[test]
    fn the_id_follows_caller_scope_and_key_and_the_digest_what_is_asked() {
        let of = |caller: &str, scope: &str, headers: &HeaderMap, body: &[u8]| {
            Idempotency::of(&principal(caller), scope, &Method::POST, "/users", headers, body).unwrap().unwrap()
        };
        let first = of("jwt:a", "users", &key("k1"), b"{}");
        let retry = of("jwt:a", "users", &key("k1"), b"{}");
        assert_eq!((first.id, &first.digest), (retry.id, &retry.digest));
        assert!(first.check(Some(&retry.digest)).is_ok());
        assert_ne!(of("jwt:b", "users", &key("k1"), b"{}").id, first.id, "another caller's key is another key");
        assert_ne!(of("jwt:a", "imports", &key("k1"), b"{}").id, first.id);
        assert_ne!(of("jwt:a", "users", &key("k2"), b"{}").id, first.id);
        let other = of("jwt:a", "users", &key("k1"), b"{\"name\":\"x\"}");
        assert_eq!(other.id, first.id);
        assert!(matches!(other.check(Some(&first.digest)), Err(ApiError::IdempotencyKeyReused(_))));
    }

    #[test]
    fn json_that_differs_in_layout_or_key_order_is_one_request() {
        let a: Value = serde_json::from_str(r#"{"b": [ {"y":1,"x":2} ], "a": null}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{ "a":null,"b":[{"x":2, "y":1}]}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(canonical_json(&a), br#"{"a":null,"b":[{"x":2,"y":1}]}"#);
        let c: Value = serde_json::from_str(r#"{"a":null,"b":[{"x":2,"y":2}]}"#).unwrap();
        assert_ne!(canonical_json(&a), canonical_json(&c));
    }

    #[test]
    fn no_header_is_no_key_and_a_malformed_key_is_a_400() {
        let of = |headers: &HeaderMap| Idempotency::of(&principal("jwt:a"), "users", &Method::POST, "/", headers, b"");
        assert!(of(&HeaderMap::new()).unwrap().is_none());
        for bad in ["", "   ", &"k".repeat(256)] {
            assert!(matches!(of(&key(bad)), Err(ApiError::BadRequest(_))), "{bad:?}");
        }
    }
}
