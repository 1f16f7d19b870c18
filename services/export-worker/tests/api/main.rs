//! Exports end to end against the real local broker and schema registry: the gateway,
//! user-service and the export worker together, including a worker killed mid-export.

mod crash;
mod exports;
mod support;

platform::service_lifecycle_tests!(
    env!("CARGO_BIN_EXE_export-worker"),
    "EXPORT_WORKER_ADMIN_ADDR",
    "admin (health, ready, metrics)",
    []
);
