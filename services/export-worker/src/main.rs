use std::process::ExitCode;

fn main() -> ExitCode {
    platform::service::run::<export_worker::Application>()
}
