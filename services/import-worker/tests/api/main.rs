//! import-worker as a process against the real local broker.

platform::service_lifecycle_tests!(
    env!("CARGO_BIN_EXE_import-worker"),
    "IMPORT_WORKER_ADMIN_ADDR",
    "admin (health, ready, metrics)",
    []
);
