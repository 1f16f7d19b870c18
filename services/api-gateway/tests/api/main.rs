//! The gateway as a process against the real local broker and schema registry. The HTTP API
//! end to end, with the other services, is tested in `tests/system`.

mod errors;

platform::service_lifecycle_tests!(
    env!("CARGO_BIN_EXE_api-gateway"),
    "GATEWAY_ADMIN_ADDR",
    "admin (health, ready, metrics)",
    [("GATEWAY_HTTP_ADDR", "127.0.0.1:0")]
);
