use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    platform::service::main("api-gateway", api_gateway::run).await
}
