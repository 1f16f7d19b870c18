//! The gateway as a process against the real local broker and schema registry. The HTTP API
//! end to end, with the other services, is tested in `tests/system`.

mod errors;
mod security;

/// The HS256 secret these tests' gateways verify tokens with.
pub(crate) const SECRET: &str = "api-tests-secret-api-tests-secret-0123456789";

platform::service_lifecycle_tests!(
    env!("CARGO_BIN_EXE_api-gateway"),
    "GATEWAY_ADMIN_ADDR",
    "admin (health, ready, metrics)",
    [("GATEWAY_HTTP_ADDR", "127.0.0.1:0"), ("GATEWAY_JWT_SECRET", "api-tests-secret-api-tests-secret-0123456789")]
);
