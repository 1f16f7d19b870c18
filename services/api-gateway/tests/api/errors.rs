use std::time::Duration;

use auth::Role;
use auth::dev::{self, Claims};
use platform::testing::Binary;

#[tokio::test]
async fn an_unknown_route_is_a_problem_json_404() {
    platform::testing::kafka().await;
    let mut gateway = Binary::spawn(
        env!("CARGO_BIN_EXE_api-gateway"),
        &[
            ("GATEWAY_HTTP_ADDR", "127.0.0.1:0"),
            ("GATEWAY_ADMIN_ADDR", "127.0.0.1:0"),
            ("GATEWAY_JWT_SECRET", super::SECRET),
        ],
    );
    let api = gateway.listening_addr("api").await;
    let token = dev::sign(super::SECRET, &Claims::new("tester", Role::Reader, Duration::from_secs(60))).unwrap();
    let response =
        reqwest::Client::new().get(format!("http://{api}/nowhere")).bearer_auth(token).send().await.expect("request");
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = response.json().await.expect("json body");
    assert_eq!(body["status"], 404);
    assert!(body["detail"].as_str().unwrap_or_default().contains("/nowhere"), "{body}");
    gateway.terminate();
    assert!(gateway.wait_exit(Duration::from_secs(30)).await.status.success());
}
