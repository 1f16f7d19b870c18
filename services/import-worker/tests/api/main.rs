//! import-worker as a process against the real local broker and schema registry. The
//! imports themselves, end to end with the other services, are tested in `tests/system`.

platform::service_lifecycle_tests!(
    env!("CARGO_BIN_EXE_import-worker"),
    "IMPORT_WORKER_ADMIN_ADDR",
    "admin (health, ready, metrics)",
    []
);
