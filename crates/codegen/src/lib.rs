//! The Avro contract in `schemas/` turned into Rust, at build time (`crates/contract/build.rs`).
//!
//! - [`catalog`]: a schema directory read as a whole: each `*.avsc` at its top is the record of
//!   a topic; `types/*.avsc` are named types several of them share, written once and inlined
//!   where they are first used, so every topic's schema is self-contained (what the registry
//!   stores and other clients read);
//! - [`model`]: the subset of Avro the contract uses, parsed and checked;
//! - [`rust`]: the generated Rust: a type per record, enum and union, serde attributes for
//!   reading records written with another version of a schema (defaults included), and the
//!   direct binary codec for records written with exactly this one.
//!
//! Nothing here is specific to users: the generator knows Avro, not the domain.

pub mod catalog;
pub mod model;
pub mod rust;

pub use catalog::{Catalog, TopLevel, releases};

/// Why a schema directory cannot be turned into code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not JSON: {source}")]
    Json {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    /// The schema is not valid Avro, or uses something the generator does not support.
    #[error("{path}: {message}")]
    Schema { path: String, message: String },
}
