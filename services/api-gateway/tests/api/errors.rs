use std::time::Duration;

use platform::testing::Binary;

#[tokio::test]
async fn an_unknown_route_is_a_problem_json_404() {
    platform::testing::kafka().await;
    let mut gateway = Binary::spawn(
        env!("CARGO_BIN_EXE_api-gateway"),
        &[("GATEWAY_HTTP_ADDR", "127.0.0.1:0"), ("GATEWAY_ADMIN_ADDR", "127.0.0.1:0")],
    );
    let api = gateway.listening_addr("api").await;
    let response = reqwest::get(format!("http://{api}/nowhere")).await.expect("request");
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = response.json().await.expect("json body");
    assert_eq!(body["status"], 404);
    assert!(body["detail"].as_str().unwrap_or_default().contains("/nowhere"), "{body}");
    gateway.terminate();
    assert!(gateway.wait_exit(Duration::from_secs(30)).await.status.success());
}
