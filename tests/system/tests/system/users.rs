use reqwest::{Method, StatusCode};
use serde_json::json;

use system_tests::TestSystem;

#[tokio::test]
async fn a_user_goes_through_create_get_list_patch_and_delete() {
    let system = TestSystem::start().await;

    let created = system
        .call(Method::POST, "/users", Some(json!({"email": "  Ada@Example.com ", "name": " Ada Lovelace ", "age": 36})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().expect("id").to_owned();
    assert_eq!(created.header("location"), format!("/users/{id}"));
    assert_eq!(created.header("etag"), "\"1\"");
    assert_eq!(created.body["email"], "Ada@Example.com", "trimmed, case kept");
    assert_eq!(created.body["name"], "Ada Lovelace");
    assert_eq!((created.body["age"].clone(), created.body["version"].clone()), (json!(36), json!(1)));
    assert_eq!(uuid::Uuid::parse_str(&id).expect("uuid").get_version_num(), 7);

    // Read-your-writes: the 201 means this gateway already shows the user.
    let fetched = system.call(Method::GET, &format!("/users/{id}"), None).await;
    assert_eq!((fetched.status, fetched.header("etag")), (StatusCode::OK, "\"1\""));
    assert_eq!(fetched.body, created.body);

    let listed = system.call(Method::GET, "/users?email=ADA@EXAMPLE.COM", None).await;
    assert_eq!(listed.body["items"], json!([created.body]));

    let renamed = system
        .call_with(
            Method::PATCH,
            &format!("/users/{id}"),
            Some(json!({"name": "Countess", "age": null})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!((renamed.body["name"].clone(), renamed.body["age"].clone()), (json!("Countess"), json!(null)));
    assert_eq!((renamed.header("etag"), renamed.body["version"].clone()), ("\"2\"", json!(2)));
    assert_eq!(renamed.body["created_at"], created.body["created_at"]);
    assert_eq!(system.call(Method::GET, &format!("/users/{id}"), None).await.body["name"], "Countess");

    let stale = system
        .call_with(Method::PATCH, &format!("/users/{id}"), Some(json!({"name": "Stale"})), &[("if-match", "\"1\"")])
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED, "{}", stale.body);
    assert_eq!(stale.header("content-type"), "application/problem+json");

    let deleted = system.call(Method::DELETE, &format!("/users/{id}"), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(system.call(Method::GET, &format!("/users/{id}"), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(system.call(Method::DELETE, &format!("/users/{id}"), None).await.status, StatusCode::NOT_FOUND);
    let patched_gone = system.call(Method::PATCH, &format!("/users/{id}"), Some(json!({"name": "X"}))).await;
    assert_eq!(patched_gone.status, StatusCode::NOT_FOUND);

    // The email is free again once its user is gone.
    let again = system.call(Method::POST, "/users", Some(json!({"email": "ada@example.com", "name": "Ada"}))).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    system.stop().await;
}

#[tokio::test]
async fn a_taken_email_is_a_409_on_create_and_on_patch() {
    let system = TestSystem::start().await;
    let ada = system.call(Method::POST, "/users", Some(json!({"email": "ada@example.com", "name": "Ada"}))).await;
    let bob = system.call(Method::POST, "/users", Some(json!({"email": "bob@example.com", "name": "Bob"}))).await;
    assert_eq!((ada.status, bob.status), (StatusCode::CREATED, StatusCode::CREATED));

    let twin = system.call(Method::POST, "/users", Some(json!({"email": "ADA@example.COM", "name": "Twin"}))).await;
    assert_eq!(twin.status, StatusCode::CONFLICT, "{}", twin.body);
    assert_eq!(twin.body["type"], "urn:problem:email-taken");
    assert_eq!(twin.bad_fields(), ["email"]);

    let bob_id = bob.body["id"].as_str().unwrap();
    let steal =
        system.call(Method::PATCH, &format!("/users/{bob_id}"), Some(json!({"email": "Ada@Example.com"}))).await;
    assert_eq!(steal.status, StatusCode::CONFLICT, "{}", steal.body);
    system.stop().await;
}

#[tokio::test]
async fn listing_pages_in_a_stable_order_with_a_cursor_and_filters() {
    let system = TestSystem::start().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let name = if i % 2 == 0 { format!("Even Person {i}") } else { format!("Odd Person {i}") };
        let created = system
            .call(Method::POST, "/users", Some(json!({"email": format!("p{i}@example.com"), "name": name})))
            .await;
        assert_eq!(created.status, StatusCode::CREATED);
        ids.push(created.body["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = system.call(Method::GET, &format!("/users?limit=3&cursor={cursor}"), None).await;
        assert_eq!(page.status, StatusCode::OK);
        let items = page.body["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|u| u["id"].as_str().unwrap().to_owned()));
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every user once, in creation order");

    let odd = system.call(Method::GET, "/users?q=ODD%20person", None).await;
    assert_eq!(odd.body["items"].as_array().unwrap().len(), 3);
    let by_email_part = system.call(Method::GET, "/users?q=p4@", None).await;
    assert_eq!(by_email_part.body["items"][0]["id"], ids[4]);
    let nobody = system.call(Method::GET, "/users?email=nobody@example.com", None).await;
    assert_eq!(nobody.body["items"], json!([]));
    system.stop().await;
}

#[tokio::test]
async fn a_locale_is_given_normalised_changed_and_cleared_through_the_api() {
    let system = TestSystem::start().await;
    let created = system
        .call(Method::POST, "/users", Some(json!({"email": "lu@example.com", "name": "Lu", "locale": "pt_br"})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["locale"], "pt-BR");
    let path = format!("/users/{}", created.body["id"].as_str().unwrap());

    let bad = system.call(Method::PATCH, &path, Some(json!({"locale": "portuguese"}))).await;
    assert_eq!((bad.status, bad.bad_fields()), (StatusCode::UNPROCESSABLE_ENTITY, vec!["locale".to_owned()]));
    let changed = system.call(Method::PATCH, &path, Some(json!({"locale": "zh-hant-tw"}))).await;
    assert_eq!((changed.body["locale"].clone(), changed.body["version"].clone()), (json!("zh-Hant-TW"), json!(2)));
    let kept = system.call(Method::PATCH, &path, Some(json!({"name": "Lu Xun"}))).await;
    assert_eq!(kept.body["locale"], "zh-Hant-TW", "absent leaves it");
    let cleared = system.call(Method::PATCH, &path, Some(json!({"locale": null}))).await;
    assert_eq!((cleared.body["locale"].clone(), cleared.body["version"].clone()), (json!(null), json!(4)));
    let without = system.call(Method::POST, "/users", Some(json!({"email": "no@example.com", "name": "No"}))).await;
    assert_eq!(without.body["locale"], json!(null));
    system.stop().await;
}
