//! The gateway against the real local broker and schema registry: the HTTP API end to end
//! (with user-service in the same process), and the binary's lifecycle.

mod consistency;
mod dead_letters;
mod errors;
mod users;
mod validation;

platform::service_lifecycle_tests!(
    env!("CARGO_BIN_EXE_api-gateway"),
    "GATEWAY_ADMIN_ADDR",
    "admin (health, ready, metrics)",
    [("GATEWAY_HTTP_ADDR", "127.0.0.1:0")]
);
