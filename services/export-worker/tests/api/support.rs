use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use testkit::TestSystem;

/// Asks for an export; returns its id.
pub(crate) async fn request(system: &TestSystem, body: Value) -> String {
    let answer = system.call(Method::POST, "/exports", Some(body)).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    answer.body["export_id"].as_str().expect("export id").to_owned()
}

/// Polls the export's status until it is finished, returning every status seen on the way.
pub(crate) async fn wait_finished(system: &TestSystem, id: &str, patience: Duration) -> Vec<Value> {
    let seen = std::cell::RefCell::new(Vec::new());
    platform::testing::eventually(&format!("export {id} to finish"), patience, || async {
        let answer = system.call(Method::GET, &format!("/exports/{id}"), None).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        let finished = matches!(answer.body["status"].as_str(), Some("completed" | "failed" | "expired"));
        seen.borrow_mut().push(answer.body);
        finished.then_some(())
    })
    .await;
    seen.into_inner()
}

#[derive(Debug)]
pub(crate) struct Download {
    pub(crate) status: StatusCode,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Download {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    /// The rows under the header, each as its fields.
    pub(crate) fn rows(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let mut reader = csv::Reader::from_reader(self.body.as_slice());
        let header = reader.headers().expect("a header").iter().map(str::to_owned).collect();
        let rows = reader.records().map(|r| r.expect("a CSV row").iter().map(str::to_owned).collect()).collect();
        (header, rows)
    }
}

pub(crate) async fn download(system: &TestSystem, id: &str, headers: &[(&str, &str)]) -> Download {
    let mut request = system.client.get(format!("{}/exports/{id}/download", system.gateway.url));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("the gateway answers");
    let (status, headers) = (response.status(), response.headers().clone());
    Download { status, headers, body: response.bytes().await.expect("body").to_vec() }
}

/// Exports with `body`, waits for it and downloads it, checking everything a client relies on:
/// the counts, the size, the SHA-256 against the bytes, the headers.
pub(crate) async fn export(system: &TestSystem, body: Value) -> (Vec<String>, Vec<Vec<String>>) {
    let id = request(system, body).await;
    let last = wait_finished(system, &id, Duration::from_secs(60)).await.pop().unwrap();
    assert_eq!(last["status"], "completed", "{last}");
    let file = download(system, &id, &[]).await;
    assert_eq!(file.status, StatusCode::OK);
    assert!(file.header("content-type").starts_with("text/csv"), "{:?}", file.headers);
    assert_eq!(file.header("content-disposition"), format!("attachment; filename=\"export-{id}.csv\""));
    let sha = format!("{:x}", Sha256::digest(&file.body));
    assert_eq!(last["sha256"], sha, "the published SHA-256 is the downloaded bytes'");
    assert_eq!(file.header("etag"), format!("\"{sha}\""));
    assert_eq!(last["bytes"], file.body.len() as u64);
    let (header, rows) = file.rows();
    assert_eq!(
        (last["rows_total"].as_u64(), last["rows_written"].as_u64()),
        (Some(rows.len() as u64), Some(rows.len() as u64))
    );
    (header, rows)
}

/// Creates a user through the gateway; returns it.
pub(crate) async fn create(system: &TestSystem, email: &str, name: &str, age: Option<u8>) -> Value {
    let answer = system.call(Method::POST, "/users", Some(json!({"email": email, "name": name, "age": age}))).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    answer.body
}

/// The first field (email by default) of every row.
pub(crate) fn emails(rows: &[Vec<String>]) -> Vec<&str> {
    rows.iter().map(|r| r[0].as_str()).collect()
}

/// Imports `file` and waits for it; returns the accepted rows.
pub(crate) async fn import(system: &TestSystem, file: &[u8]) -> u64 {
    let response = system
        .client
        .post(format!("{}/imports", system.gateway.url))
        .header("content-type", "text/csv")
        .body(file.to_vec())
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let id = response.json::<Value>().await.expect("json")["import_id"].as_str().expect("id").to_owned();
    let status = platform::testing::eventually("the import to finish", Duration::from_secs(120), || async {
        let status = system.call(Method::GET, &format!("/imports/{id}"), None).await.body;
        (status["status"] == "completed" || status["status"] == "failed").then_some(status)
    })
    .await;
    assert_eq!(status["status"], "completed", "{status}");
    status["accepted"].as_u64().expect("accepted")
}
