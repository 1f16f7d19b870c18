use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use testkit::TestSystem;

/// Uploads `body` as a CSV import; returns the import id.
pub(crate) async fn upload(system: &TestSystem, body: &[u8], mode: Option<&str>) -> String {
    let query = mode.map(|m| format!("?mode={m}")).unwrap_or_default();
    let response = system
        .client
        .post(format!("{}/imports{query}", system.gateway.url))
        .header("content-type", "text/csv")
        .body(body.to_vec())
        .send()
        .await
        .expect("upload");
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["import_id"].as_str().expect("import id").to_owned()
}

/// Polls the import's status until it is finished, returning every status seen on the way.
pub(crate) async fn wait_finished(system: &TestSystem, import_id: &str, patience: Duration) -> Vec<Value> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let answer = system.call(Method::GET, &format!("/imports/{import_id}"), None).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        let state = answer.body["status"].as_str().unwrap_or_default().to_owned();
        seen.push(answer.body);
        if state == "completed" || state == "failed" {
            return seen;
        }
        assert!(tokio::time::Instant::now() < deadline, "import not finished after {patience:?}: {:?}", seen.last());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every counter of every status is at least what it was in the one before.
pub(crate) fn assert_progress_only_grows(statuses: &[Value]) {
    for pair in statuses.windows(2) {
        for counter in ["rows_read", "accepted", "rejected"] {
            let (before, after) = (pair[0][counter].as_u64().unwrap(), pair[1][counter].as_u64().unwrap());
            assert!(after >= before, "{counter} went from {before} to {after}");
        }
    }
}

/// The user holding `email`, if any.
pub(crate) async fn user(system: &TestSystem, email: &str) -> Option<Value> {
    let answer = system.call(Method::GET, &format!("/users?email={email}"), None).await;
    answer.body["items"].as_array().and_then(|items| items.first().cloned())
}
