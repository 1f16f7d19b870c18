//! Imports end to end against the real local broker and schema registry: the gateway,
//! user-service and the import worker together, including a worker killed mid-import.

mod crash;
mod imports;
mod support;
mod uploads;

platform::service_lifecycle_tests!(
    env!("CARGO_BIN_EXE_import-worker"),
    "IMPORT_WORKER_ADMIN_ADDR",
    "admin (health, ready, metrics)",
    []
);
