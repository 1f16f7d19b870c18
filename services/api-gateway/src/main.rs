use std::process::ExitCode;

fn main() -> ExitCode {
    platform::service::run::<api_gateway::Application>()
}
