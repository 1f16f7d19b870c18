use std::process::ExitCode;

// mimalloc: the services allocate many small, short-lived buffers (records, keys, rows).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    platform::service::main("schema-registry", schema_registry::run).await
}
