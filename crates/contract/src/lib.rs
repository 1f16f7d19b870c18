//! The Avro contract of the user-management system, as Rust. Everything here except the small
//! runtime ([`codec`], [`Record`], [`WriterSchema`]) is generated at build time from the
//! `.avsc` files in `schemas/` by `crates/codegen`: the files are the one place the contract is
//! written, and changing a field there changes these types (and breaks the build wherever the
//! change needs handling).
//!
//! - a module per namespace: `events` ([`events::UserEvent`]), `commands`, `replies`,
//!   `imports`, `exports`, and the shared [`User`] at the top;
//! - every type encodes and decodes itself directly ([`codec`]) when a record was written with
//!   exactly its schema: the fast path, for records this version wrote;
//! - a record written with another version of its schema (older or newer, compatible under
//!   the registry's rules) is read by name with that writer's schema ([`WriterSchema::read`]):
//!   fields it lacks take their defaults, fields it added are skipped;
//! - with the `releases` feature, `releases::v<n>`: the types of every released version, so
//!   tests can write and read as old versions did.
//!
//! Mapping these records to the domain's validated types is the domain's business
//! (`domain::wire`); [`MappingError`] is how a mapping refuses a value.

pub mod codec;
mod resolve;

pub use codec::DecodeError;
pub use resolve::{SchemaError, WriterSchema};

/// A topic record: a generated type with its place in the contract.
pub trait Record:
    codec::Encode
    + codec::Decode
    + serde::Serialize
    + serde::de::DeserializeOwned
    + Clone
    + PartialEq
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The record's full name (`usermgmt.events.UserEvent`).
    const NAME: &'static str;
    /// Its self-contained schema (shared types inlined): what is registered for its topics.
    const SCHEMA: &'static str;
}

/// A value with no place on the other side of a mapping: a record that decoded but breaks a
/// rule of the domain (an invalid email, a negative version), or a domain value outside what
/// the contract can carry. Such a record can never be processed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct MappingError {
    pub field: &'static str,
    pub reason: String,
}

/// A record needs no mapping to itself.
impl From<std::convert::Infallible> for MappingError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

impl MappingError {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self { field, reason: reason.into() }
    }
}

include!(concat!(env!("OUT_DIR"), "/contract.rs"));

/// Every released version of the contract (`schemas/releases/<n>/`).
#[cfg(feature = "releases")]
pub mod releases {
    include!(concat!(env!("OUT_DIR"), "/releases.rs"));
}
