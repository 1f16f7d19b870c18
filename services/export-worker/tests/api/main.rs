//! export-worker as a process against the real local broker.

platform::service_lifecycle_tests!(
    env!("CARGO_BIN_EXE_export-worker"),
    "EXPORT_WORKER_ADMIN_ADDR",
    "admin (health, ready, metrics)",
    []
);
