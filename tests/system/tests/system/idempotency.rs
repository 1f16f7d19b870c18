//! `Idempotency-Key`: a retry gets the first answer, whichever gateway it reaches and whenever
//! within the key's lifetime, and never a second effect; the key used for another request is
//! a 422 that changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use system_tests::{Answer, TestSystem, call};

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
