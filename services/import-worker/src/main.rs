use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    platform::service::main("import-worker", |config, shutdown: platform::Shutdown| async move {
        import_worker::run(config, shutdown).await
    })
    .await
}
