use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    platform::service::main("export-worker", export_worker::run).await
}
