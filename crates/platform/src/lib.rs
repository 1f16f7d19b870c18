//! Shared plumbing for every service of the user-management system, written once:
//!
//! - [`topic`]: typed topics: a topic, its record type (from `contract`) and its registered
//!   schema bound once, publishing and decoding in Confluent's wire format;
//! - [`registry`]: the Schema Registry's REST API, with typed errors;
//! - [`blobs`]: the shared directory for uploads and exports (claim checks);
//! - [`config`]: the settings every service shares ([`CommonConfig`]);
//! - [`kafka`]: the idempotent [`kafka::Producer`], the at-least-once [`kafka::Consumer`] with its
//!   dead-letter topic, the startup connection check, and topic provisioning ([`kafka::topics`]);
//! - [`health`]: `/health`, `/ready` and `/metrics` on the admin listener;
//! - [`shutdown`]: SIGTERM/Ctrl-C as one cancellation token;
//! - [`telemetry`]: logs, spans (exported over OTLP when configured) and the Prometheus recorder;
//! - [`trace`]: W3C trace context through HTTP and Kafka headers;
//! - [`service`]: the common `main` and the [`service::ServiceBase`] each service builds on;
//! - `testing` (feature): helpers for integration tests against the real broker.

pub mod blobs;
pub mod config;
pub mod health;
pub mod jobs;
pub mod kafka;
pub mod registry;
pub mod service;
pub mod shutdown;
pub mod telemetry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod topic;
pub mod trace;
pub mod users;

pub use config::{CommonConfig, KafkaConfig, ShutdownConfig, TelemetryConfig};
pub use shutdown::{Later, Shutdown};
