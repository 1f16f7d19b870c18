//! export-worker as a process against the real local broker and schema registry. The
//! exports themselves, end to end with the other services, are tested in `tests/system`.

platform::service_lifecycle_tests!(
    env!("CARGO_BIN_EXE_export-worker"),
    "EXPORT_WORKER_ADMIN_ADDR",
    "admin (health, ready, metrics)",
    []
);
