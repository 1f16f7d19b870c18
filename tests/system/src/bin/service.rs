//! Any of the four services as a process of its own, chosen by `SYSTEM_TEST_SERVICE`: what the
//! system tests start when they must kill a service (SIGKILL) or watch it stop (SIGTERM). It is
//! each service's own `Application` behind the same `main` their binaries have.

use std::process::ExitCode;

use platform::service::run;

fn main() -> ExitCode {
    match std::env::var("SYSTEM_TEST_SERVICE").as_deref() {
        Ok("user-service") => run::<user_service::Application>(),
        Ok("api-gateway") => run::<api_gateway::Application>(),
        Ok("import-worker") => run::<import_worker::Application>(),
        Ok("export-worker") => run::<export_worker::Application>(),
        other => {
            eprintln!("service: set SYSTEM_TEST_SERVICE to a service's name, not {other:?}");
            ExitCode::from(2)
        }
    }
}
