use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    platform::service::main("import-worker", import_worker::run).await
}
