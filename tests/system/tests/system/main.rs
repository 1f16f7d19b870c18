//! The system tested from outside, against the real local broker and schema registry: the four
//! services together (in this process, or as processes of their own where a test kills one),
//! driven through the public HTTP API and the topics as other clients would.

mod auth;
mod chaos;
mod compose;
mod consistency;
mod dead_letters;
mod evolution;
mod export_crash;
mod exports;
mod idempotency;
mod import_crash;
mod imports;
mod limits;
mod metrics;
mod openapi;
mod other_clients;
mod outage;
mod state;
mod support;
mod traces;
mod uploads;
mod user_service_crash;
mod users;
mod validation;
