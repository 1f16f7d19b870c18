use std::process::ExitCode;

fn main() -> ExitCode {
    platform::service::run::<schema_registry::Application>()
}
