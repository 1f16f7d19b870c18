//! What the gateway does before any route runs: no start without a way to authenticate,
//! secrets and credentials kept out of its logs, a loud warning while authentication is off,
//! CORS for the configured origins only, and the security headers on every answer.

use std::time::Duration;

use auth::{Role, api_keys};
use platform::testing::Binary;

const BIN: &str = env!("CARGO_BIN_EXE_api-gateway");

fn env<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![("GATEWAY_HTTP_ADDR", "127.0.0.1:0"), ("GATEWAY_ADMIN_ADDR", "127.0.0.1:0")];
    env.extend_from_slice(extra);
    env
}

#[tokio::test]
async fn without_a_configured_credential_the_gateway_refuses_to_start_and_says_how_to_fix_it() {
    platform::testing::kafka().await;
    let exit = Binary::spawn(BIN, &env(&[])).wait_exit(Duration::from_secs(60)).await;
    assert_eq!(exit.status.code(), Some(1), "stderr: {}", exit.stderr);
    let lines: Vec<&str> = exit.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {}", exit.stderr);
    assert!(lines[0].contains("GATEWAY_JWT_SECRET_FILE") && lines[0].contains("GATEWAY_AUTH_DISABLED"), "{}", lines[0]);
}

#[tokio::test]
async fn secrets_and_credentials_never_reach_the_logs() {
    platform::testing::kafka().await;
    let (key, entry) = api_keys::generate("etl", Role::Writer).unwrap();
    let hash = entry.rsplit(':').next().unwrap().to_owned();
    let mut gateway = Binary::spawn(
        BIN,
        &env(&[
            ("GATEWAY_JWT_SECRET", super::SECRET),
            ("GATEWAY_API_KEYS", &entry),
            ("RUST_LOG", "info,tower_http=trace,api_gateway=trace"),
        ]),
    );
    let api = gateway.listening_addr("api").await;
    let client = reqwest::Client::new();
    let forged = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJlLXRoYXQtaXMtbm90";
    for request in [
        client.get(format!("http://{api}/users")).bearer_auth(forged),
        client.get(format!("http://{api}/users")).header("x-api-key", &key),
        client.get(format!("http://{api}/users")).header("x-api-key", "umk_wrong"),
    ] {
        request.send().await.expect("an answer");
    }
    gateway.wait_for_log("answered status=401", Duration::from_secs(10)).await;
    let logs = gateway.logs().join("\n");
    assert!(logs.contains("authentication=\"HS256 tokens, 1 API keys\""), "the setup is logged:\n{logs}");
    for secret in [super::SECRET, &key, &hash, forged, "umk_wrong"] {
        assert!(!logs.contains(secret), "{secret} was logged:\n{logs}");
    }
    gateway.terminate();
    assert!(gateway.wait_exit(Duration::from_secs(30)).await.status.success());
}

#[tokio::test]
async fn with_authentication_disabled_everyone_is_admin_and_the_log_says_so() {
    platform::testing::kafka().await;
    let mut gateway = Binary::spawn(BIN, &env(&[("GATEWAY_AUTH_DISABLED", "true")]));
    gateway.wait_for_log("authentication is DISABLED", Duration::from_secs(60)).await;
    let api = gateway.listening_addr("api").await;
    let answer = reqwest::get(format!("http://{api}/imports")).await.expect("an answer");
    assert_eq!(answer.status(), 200, "an admin route, without credentials");
    gateway.terminate();
    assert!(gateway.wait_exit(Duration::from_secs(30)).await.status.success());
}

#[tokio::test]
async fn cors_admits_only_the_configured_origins_and_every_answer_has_the_security_headers() {
    platform::testing::kafka().await;
    let mut gateway = Binary::spawn(
        BIN,
        &env(&[("GATEWAY_JWT_SECRET", super::SECRET), ("GATEWAY_CORS_ALLOWED_ORIGINS", "https://admin.example")]),
    );
    let api = gateway.listening_addr("api").await;
    let client = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, format!("http://{api}/users"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type,idempotency-key")
            .send()
    };
    let allowed = preflight("https://admin.example").await.unwrap();
    assert_eq!(allowed.status(), 200, "a preflight carries no credentials and needs none");
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://admin.example");
    let methods = allowed.headers()["access-control-allow-methods"].to_str().unwrap().to_owned();
    assert!(methods.contains("PATCH") && methods.contains("DELETE"), "{methods}");
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none(), "{:?}", other.headers());

    for path in ["/health", "/users", "/nowhere"] {
        let answer = client.get(format!("http://{api}{path}")).send().await.unwrap();
        let headers = answer.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        assert!(headers["content-security-policy"].to_str().unwrap().contains("default-src 'none'"), "{path}");
    }
    // The public port answers liveness only; readiness and metrics are on the admin port.
    for (path, status) in [("/health", 200), ("/ready", 401), ("/metrics", 401)] {
        assert_eq!(client.get(format!("http://{api}{path}")).send().await.unwrap().status(), status, "{path}");
    }
    gateway.terminate();
    assert!(gateway.wait_exit(Duration::from_secs(30)).await.status.success());
}
