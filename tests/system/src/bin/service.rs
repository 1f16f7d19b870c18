//! Any of the four services as a process of its own, chosen by `SYSTEM_TEST_SERVICE`: what the
//! system tests start when they must kill a service (SIGKILL) or watch it stop (SIGTERM). It is
//! each service's own `run`, behind the same `main` their binaries have.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match std::env::var("SYSTEM_TEST_SERVICE").as_deref() {
        Ok("user-service") => platform::service::main("user-service", user_service::run).await,
        Ok("api-gateway") => platform::service::main("api-gateway", api_gateway::run).await,
        Ok("import-worker") => platform::service::main("import-worker", import_worker::run).await,
        Ok("export-worker") => platform::service::main("export-worker", export_worker::run).await,
        other => {
            eprintln!("service: set SYSTEM_TEST_SERVICE to a service's name, not {other:?}");
            ExitCode::from(2)
        }
    }
}
