//! user-service as a process against the real local broker.

platform::service_lifecycle_tests!(
    env!("CARGO_BIN_EXE_user-service"),
    "USER_SERVICE_ADMIN_ADDR",
    "admin (health, ready, metrics)",
    []
);

#[tokio::test]
async fn an_unreachable_schema_registry_ends_the_process_with_one_clear_line() {
    platform::testing::kafka().await;
    let service = platform::testing::Binary::spawn(
        env!("CARGO_BIN_EXE_user-service"),
        &[("USER_SERVICE_ADMIN_ADDR", "127.0.0.1:0"), ("SCHEMA_REGISTRY_URL", "http://127.0.0.1:1")],
    );
    let exit = service.wait_exit(std::time::Duration::from_secs(60)).await;
    assert_eq!(exit.status.code(), Some(1), "stderr: {}", exit.stderr);
    let lines: Vec<&str> = exit.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {}", exit.stderr);
    assert!(lines[0].contains("cannot reach the schema registry at http://127.0.0.1:1"), "{}", lines[0]);
}
