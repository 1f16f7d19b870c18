use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    platform::service::main("schema-registry", schema_registry::run).await
}
