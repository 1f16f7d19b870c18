//! What the system tests share: driving imports and exports through the gateway as a client
//! would, and running a service as a process of its own.

use std::time::Duration;

use platform::kafka::{Incoming, replay};
use platform::testing::Binary;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use system_tests::TestSystem;

/// Every record of `topic`, read committed, as another client reads it.
pub(crate) async fn read_all(topic: &str) -> Vec<Incoming> {
    let kafka = platform::testing::kafka().await;
    let (records, _) = replay(&kafka, topic, Vec::new(), |all: &mut Vec<Incoming>, m| all.push(m)).await.unwrap();
    records
}

/// Starts `service` (`import-worker`, ...) as a process of its own with `env`: one that can be
/// killed with SIGKILL.
pub(crate) fn spawn_service(service: &str, env: &[(&str, &str)]) -> Binary {
    let mut env = env.to_vec();
    env.push(("SYSTEM_TEST_SERVICE", service));
    Binary::spawn(env!("CARGO_BIN_EXE_service"), &env)
}

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
pub(crate) async fn wait_import(system: &TestSystem, import_id: &str, patience: Duration) -> Vec<Value> {
    wait_job(system, "imports", import_id, patience).await
}

/// Polls a job's status (`/imports/{id}`, `/exports/{id}`) until it is finished, returning
/// every status seen on the way.
async fn wait_job(system: &TestSystem, jobs: &str, id: &str, patience: Duration) -> Vec<Value> {
    let seen = std::cell::RefCell::new(Vec::new());
    platform::testing::eventually(&format!("{jobs} {id} to finish"), patience, || async {
        let answer = system.call(Method::GET, &format!("/{jobs}/{id}"), None).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        let finished = matches!(answer.body["status"].as_str(), Some("completed" | "failed" | "expired"));
        seen.borrow_mut().push(answer.body);
        finished.then_some(())
    })
    .await;
    seen.into_inner()
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

/// Asks for an export; returns its id.
pub(crate) async fn request(system: &TestSystem, body: Value) -> String {
    let answer = system.call(Method::POST, "/exports", Some(body)).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    answer.body["export_id"].as_str().expect("export id").to_owned()
}

/// Polls the export's status until it is finished, returning every status seen on the way.
pub(crate) async fn wait_export(system: &TestSystem, id: &str, patience: Duration) -> Vec<Value> {
    wait_job(system, "exports", id, patience).await
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
    let last = wait_export(system, &id, Duration::from_secs(60)).await.pop().unwrap();
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
    let id = upload(system, file, None).await;
    let last = wait_import(system, &id, Duration::from_secs(120)).await.pop().expect("a status");
    assert_eq!(last["status"], "completed", "{last}");
    last["accepted"].as_u64().expect("accepted")
}
