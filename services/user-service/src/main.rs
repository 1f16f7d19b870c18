use std::process::ExitCode;

fn main() -> ExitCode {
    platform::service::run::<user_service::Application>()
}
