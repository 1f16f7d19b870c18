//! user-service as a process against the real local broker.

platform::service_lifecycle_tests!(
    env!("CARGO_BIN_EXE_user-service"),
    "USER_SERVICE_ADMIN_ADDR",
    "admin (health, ready, metrics)",
    []
);
