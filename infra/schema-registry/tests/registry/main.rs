//! The registry over HTTP, against the real local broker (`just infra-up`).

mod api;
mod clients;
mod helpers;

platform::service_lifecycle_tests!(
    env!("CARGO_BIN_EXE_schema-registry"),
    "SCHEMA_REGISTRY_HTTP_ADDR",
    "schema registry",
    [("SCHEMA_REGISTRY_KAFKASTORE_TOPIC", "_schemas-lifecycle-test")]
);
