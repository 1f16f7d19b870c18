//! The shared Kafka layer against the real local broker (`just infra-up`).

mod consumer;
mod dlq;
mod helpers;
mod tail;
mod topics;
mod transactions;
