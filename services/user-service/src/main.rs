use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    platform::service::main("user-service", user_service::run).await
}
