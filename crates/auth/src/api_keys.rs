//! Static API keys for machines. Only SHA-256 hashes are configured; a presented key is
//! hashed and looked up. Keys are 256 random bits, so a fast hash resists guessing as well as
//! a slow one would, without a slow hash's cost on every request.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::{Principal, Role};

/// The configured keys, by hash.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    by_hash: HashMap<[u8; 32], Principal>,
}

/// The prefix of keys made by [`generate`], so a leaked one is recognisable in a scan.
pub const KEY_PREFIX: &str = "umk_";

impl ApiKeys {
    /// Reads `name:role:sha256-hex` entries, separated by commas or new lines; blank entries and
    /// lines starting with `#` are skipped. `origin` names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, String> {
        let mut keys = Self::default();
        keys.add(text, origin)?;
        Ok(keys)
    }

    /// Adds the entries of `text` (see [`ApiKeys::parse`]).
    pub fn add(&mut self, text: &str, origin: &str) -> Result<(), String> {
        let entries = text.lines().filter(|line| !line.trim_start().starts_with('#')).flat_map(|line| line.split(','));
        for (index, entry) in entries.map(str::trim).filter(|e| !e.is_empty()).enumerate() {
            let at = || format!("{origin}, entry {}", index + 1);
            let mut parts = entry.split(':');
            let (Some(name), Some(role), Some(hash), None) = (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(format!("{}: expected name:role:sha256-hex", at()));
            };
            let role: Role = role.parse().map_err(|e| format!("{}: {e}", at()))?;
            let hash = decode_hash(hash).ok_or_else(|| format!("{}: the hash must be 64 hex digits", at()))?;
            let name = name.trim();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c)) {
                return Err(format!("{}: a key name is letters, digits, - _ . @", at()));
            }
            let principal = Principal { id: format!("apikey:{name}"), role };
            if self.by_hash.insert(hash, principal).is_some() {
                return Err(format!("{}: the same key is configured twice", at()));
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// The principal a presented key stands for.
    pub fn find(&self, key: &str) -> Option<&Principal> {
        self.by_hash.get(&hash(key))
    }
}

/// The SHA-256 of a key, as configured.
pub fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.trim().as_bytes()).into()
}

fn decode_hash(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim().as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

/// A new random key and the entry configuring it (`name:role:sha256-hex`).
pub fn generate(name: &str, role: Role) -> Result<(String, String), getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let key = format!("{KEY_PREFIX}{}", crate::hex(&bytes));
    let entry = format!("{name}:{role}:{}", crate::hex(&hash(&key)));
    Ok((key, entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_found_by_its_entry_and_nothing_else_is() {
        let (key, entry) = generate("etl", Role::Writer).unwrap();
        let (other, _) = generate("etl", Role::Writer).unwrap();
        let keys = ApiKeys::parse(&format!("# machines\n{entry}\n"), "test").unwrap();
        assert_eq!(keys.find(&key), Some(&Principal { id: "apikey:etl".into(), role: Role::Writer }));
        assert_eq!(keys.find(&other), None);
        assert_eq!(keys.find(""), None);
        assert!(!entry.contains(&key[KEY_PREFIX.len()..]), "the entry holds the hash, not the key");
    }

    #[test]
    fn entries_are_checked_one_by_one() {
        let (_, good) = generate("a", Role::Reader).unwrap();
        let (_, second) = generate("b", Role::Admin).unwrap();
        assert_eq!(ApiKeys::parse(&format!("{good}, {second}"), "env").unwrap().len(), 2);
        for (bad, why) in [
            ("a:reader", "expected name:role"),
            ("a:root:00", "unknown role"),
            ("a:reader:xyz", "64 hex digits"),
            ("a b:reader:0000000000000000000000000000000000000000000000000000000000000000", "a key name"),
        ] {
            let error = ApiKeys::parse(bad, "env").unwrap_err();
            assert!(error.contains(why) && error.starts_with("env, entry 1"), "{bad}: {error}");
        }
        assert!(ApiKeys::parse(&format!("{good},{good}"), "env").unwrap_err().contains("twice"));
    }
}
