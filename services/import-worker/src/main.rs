use std::process::ExitCode;

fn main() -> ExitCode {
    platform::service::run::<import_worker::Application>()
}
