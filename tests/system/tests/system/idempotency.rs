//! `Idempotency-Key`: a retry gets the first answer, whichever gateway it reaches and whenever
//! within the key's lifetime, and never a second effect; the key used for another request is
//! a 422 that changes nothing.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use system_tests::{Answer, Options, TestSystem, call};

use crate::support::{wait_export, wait_import};

/// What a client compares between two answers: status, body, and the headers that name the
/// resource and its version.
fn seen(answer: &Answer) -> (StatusCode, Value, String, String) {
    (answer.status, answer.body.clone(), answer.header("etag").to_owned(), answer.header("location").to_owned())
}

async fn users_named(system: &TestSystem, email: &str) -> Vec<Value> {
    let page = system.call(Method::GET, &format!("/users?email={email}"), None).await.body;
    page["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_same_create_sent_concurrently_to_two_gateways_and_again_later_makes_one_user_and_three_equal_answers() {
    let system = TestSystem::start().await;
    let other = system.another_gateway().await;
    let body = json!({ "email": "once@example.com", "name": "Once" });
    let key = [("idempotency-key", "create-once-1")];
    let (first, second) = tokio::join!(
        system.call_with(Method::POST, "/users", Some(body.clone()), &key),
        call(&system.client, &other.url, Method::POST, "/users", Some(body.clone()), &key),
    );
    let third = system.call_with(Method::POST, "/users", Some(body.clone()), &key).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    assert_eq!(seen(&first), seen(&second));
    assert_eq!(seen(&first), seen(&third));
    assert_eq!(users_named(&system, "once@example.com").await.len(), 1);

    // Without the key, the same body is a new request, refused as a duplicate email.
    assert_eq!(system.call(Method::POST, "/users", Some(body)).await.status, StatusCode::CONFLICT);
    other.stop().await;
    system.stop().await;
}

#[tokio::test]
async fn a_retry_gets_the_first_answer_even_after_later_changes_and_a_restart_of_user_service() {
    let mut system = TestSystem::start().await;
    let body = json!({ "email": "first@example.com", "name": "First" });
    let key = [("idempotency-key", "k-first")];
    let created = system.call_with(Method::POST, "/users", Some(body.clone()), &key).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.body["id"].as_str().unwrap().to_owned();

    // A PATCH under a key of its own, retried: one change, one version.
    let rename = json!({ "name": "Renamed" });
    let patch_key = [("idempotency-key", "k-rename")];
    let renamed = system.call_with(Method::PATCH, &format!("/users/{id}"), Some(rename.clone()), &patch_key).await;
    let again = system.call_with(Method::PATCH, &format!("/users/{id}"), Some(rename.clone()), &patch_key).await;
    assert_eq!((renamed.status, renamed.body["version"].clone()), (StatusCode::OK, json!(2)));
    assert_eq!(seen(&renamed), seen(&again));

    // The create's retry still answers version 1, as first answered; after a restart too,
    // from the replies user-service reads back from Kafka.
    assert_eq!(seen(&system.call_with(Method::POST, "/users", Some(body.clone()), &key).await), seen(&created));
    system.stop_user_service().await;
    system.start_user_service().await;
    assert_eq!(seen(&system.call_with(Method::POST, "/users", Some(body.clone()), &key).await), seen(&created));
    let reused =
        system.call_with(Method::POST, "/users", Some(json!({ "email": "x@example.com", "name": "X" })), &key).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", reused.body);

    // DELETE retried: 204 twice (without the key the second would be a 404), one deletion.
    let delete_key = [("idempotency-key", "k-delete")];
    let path = format!("/users/{id}");
    let deleted = system.call_with(Method::DELETE, &path, None, &delete_key).await;
    assert_eq!(seen(&deleted), seen(&system.call_with(Method::DELETE, &path, None, &delete_key).await));
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(system.call(Method::DELETE, &path, None).await.status, StatusCode::NOT_FOUND);
    system.stop().await;
}

#[tokio::test]
async fn a_key_used_again_for_another_request_is_a_422_that_changes_nothing() {
    let system = TestSystem::start().await;
    let key = [("idempotency-key", "reused")];
    let first = json!({ "email": "owner@example.com", "name": "Owner" });
    assert_eq!(system.call_with(Method::POST, "/users", Some(first), &key).await.status, StatusCode::CREATED);
    let other_body = json!({ "email": "intruder@example.com", "name": "Intruder" });
    let refused = system.call_with(Method::POST, "/users", Some(other_body.clone()), &key).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.body["type"], "urn:problem:idempotency-key-reused");
    assert!(users_named(&system, "intruder@example.com").await.is_empty());

    // Another principal's key of the same name is another key.
    let token = auth::dev::sign(
        &system.options.jwt_secret,
        &auth::dev::Claims::new("someone-else", auth::Role::Writer, std::time::Duration::from_secs(600)),
    )
    .unwrap();
    let bearer = format!("Bearer {token}");
    let theirs = system
        .call_with(
            Method::POST,
            "/users",
            Some(other_body),
            &[("idempotency-key", "reused"), ("authorization", &bearer)],
        )
        .await;
    assert_eq!(theirs.status, StatusCode::CREATED, "{:?}", theirs.body);

    // A malformed key is a 400.
    let long = "k".repeat(300);
    let body = json!({ "email": "z@example.com", "name": "Z" });
    assert_eq!(
        system.call_with(Method::POST, "/users", Some(body), &[("idempotency-key", &long)]).await.status,
        StatusCode::BAD_REQUEST
    );
    system.stop().await;
}

/// Uploads `file` to the gateway at `base` under `key`; the answer's status and body.
async fn upload_keyed(system: &TestSystem, base: &str, query: &str, file: &str, key: &str) -> (StatusCode, Value) {
    let response = system
        .client
        .post(format!("{base}/imports{query}"))
        .header("content-type", "text/csv")
        .header("idempotency-key", key)
        .body(file.to_owned())
        .send()
        .await
        .expect("the gateway answers");
    (response.status(), response.json().await.expect("a JSON answer"))
}

/// The names of the files in blob storage, except error reports.
fn uploads_left(system: &TestSystem) -> Vec<String> {
    let dir = system.options.blob_dir.join("imports");
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let names = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned());
    names.filter(|n| !n.ends_with(".errors.csv")).collect()
}

async fn no_upload_left(system: &TestSystem) {
    platform::testing::eventually("no upload left in blob storage", Duration::from_secs(30), || async {
        uploads_left(system).is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_import_under_a_key_sent_to_two_gateways_at_once_and_again_later_runs_once_with_three_equal_answers() {
    let system = TestSystem::start_with(Options { import_worker: true, ..Options::default() }).await;
    let other = system.another_gateway().await;
    let file = "email,name\nkeyed1@example.com,One\nkeyed2@example.com,Two\n";
    let (first, second) = tokio::join!(
        upload_keyed(&system, &system.gateway.url, "", file, "import-1"),
        upload_keyed(&system, &other.url, "", file, "import-1"),
    );
    assert_eq!(first.0, StatusCode::ACCEPTED, "{}", first.1);
    assert_eq!(first, second);
    let id = first.1["import_id"].as_str().unwrap().to_owned();
    let last = wait_import(&system, &id, Duration::from_secs(60)).await.pop().unwrap();
    assert_eq!((last["status"].clone(), last["accepted"].clone()), (json!("completed"), json!(2)), "{last}");
    assert_eq!(upload_keyed(&system, &other.url, "", file, "import-1").await, first);
    let imports = system.call(Method::GET, "/imports", None).await.body;
    assert_eq!(imports["items"].as_array().unwrap().len(), 1, "{imports}");
    // Each of the three uploads was stored; the import ran from one, the others are removed.
    no_upload_left(&system).await;

    // The key used again with another file, or the same file in another mode: 422, nothing
    // imported, nothing kept.
    let other_file = "email,name\nintruder@example.com,Intruder\n";
    for (query, file) in [("", other_file), ("?mode=upsert", file)] {
        let (status, problem) = upload_keyed(&system, &system.gateway.url, query, file, "import-1").await;
        assert_eq!(
            (status, problem["type"].clone()),
            (StatusCode::UNPROCESSABLE_ENTITY, json!("urn:problem:idempotency-key-reused"))
        );
    }
    assert!(users_named(&system, "intruder@example.com").await.is_empty());
    assert_eq!(system.call(Method::GET, "/imports", None).await.body["items"].as_array().unwrap().len(), 1);
    no_upload_left(&system).await;

    // Two different files racing under one new key, at two gateways: one is the import (202),
    // the other a 422, and only the accepted file's rows are imported.
    let (a, b) = ("email,name\nracer-a@example.com,A\n", "email,name\nracer-b@example.com,B\n");
    let (answer_a, answer_b) = tokio::join!(
        upload_keyed(&system, &system.gateway.url, "", a, "race"),
        upload_keyed(&system, &other.url, "", b, "race"),
    );
    let mut statuses = [answer_a.0, answer_b.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::ACCEPTED, StatusCode::UNPROCESSABLE_ENTITY], "{answer_a:?} {answer_b:?}");
    let (won, lost) = if answer_a.0 == StatusCode::ACCEPTED { ("a", "b") } else { ("b", "a") };
    let id = if won == "a" { &answer_a.1 } else { &answer_b.1 }["import_id"].as_str().unwrap().to_owned();
    let last = wait_import(&system, &id, Duration::from_secs(60)).await.pop().unwrap();
    assert_eq!(last["accepted"], 1, "{last}");
    assert_eq!(users_named(&system, &format!("racer-{won}@example.com")).await.len(), 1);
    assert!(users_named(&system, &format!("racer-{lost}@example.com")).await.is_empty());
    no_upload_left(&system).await;
    other.stop().await;
    system.stop().await;
}

#[tokio::test]
async fn an_export_under_a_key_is_requested_once_and_the_key_with_other_filters_is_a_422() {
    let system = TestSystem::start_with(Options { export_worker: true, ..Options::default() }).await;
    let other = system.another_gateway().await;
    let spec = json!({ "columns": ["email", "name"], "email_domain": "example.com" });
    let key = [("idempotency-key", "export-1")];
    let (first, second) = tokio::join!(
        system.call_with(Method::POST, "/exports", Some(spec.clone()), &key),
        call(&system.client, &other.url, Method::POST, "/exports", Some(spec.clone()), &key),
    );
    assert_eq!(first.status, StatusCode::ACCEPTED, "{:?}", first.body);
    assert_eq!(seen(&first), seen(&second));
    let id = first.body["export_id"].as_str().unwrap().to_owned();
    assert_eq!(wait_export(&system, &id, Duration::from_secs(60)).await.pop().unwrap()["status"], "completed");
    // The same JSON laid out otherwise is the same request.
    let relaid = system
        .client
        .post(format!("{}/exports", other.url))
        .header("content-type", "application/json")
        .header("idempotency-key", "export-1")
        .body(r#"{ "email_domain" : "example.com",  "columns" : [ "email", "name" ] }"#)
        .send()
        .await
        .unwrap();
    assert_eq!(relaid.status(), StatusCode::ACCEPTED);
    assert_eq!(relaid.json::<Value>().await.unwrap(), first.body);
    let narrower = json!({ "columns": ["email"], "email_domain": "example.com" });
    let refused = system.call_with(Method::POST, "/exports", Some(narrower), &key).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", refused.body);
    let exports = system.call(Method::GET, "/exports", None).await.body;
    assert_eq!(exports["items"].as_array().unwrap().len(), 1, "{exports}");
    other.stop().await;
    system.stop().await;
}
