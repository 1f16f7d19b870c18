use reqwest::{Method, StatusCode};
use serde_json::json;

use system_tests::TestSystem;

#[tokio::test]
async fn invalid_fields_are_a_422_naming_each_of_them() {
    let system = TestSystem::start().await;
    let answer =
        system.call(Method::POST, "/users", Some(json!({"email": "not-an-email", "name": "", "age": 200}))).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.body);
    assert_eq!(answer.header("content-type"), "application/problem+json");
    let mut fields = answer.bad_fields();
    fields.sort();
    assert_eq!(fields, ["age", "email", "name"]);
    for error in answer.body["errors"].as_array().unwrap() {
        assert!(error["code"].is_string() && error["message"].is_string(), "{error}");
    }

    let missing = system.call(Method::POST, "/users", Some(json!({}))).await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut fields = missing.bad_fields();
    fields.sort();
    assert_eq!(fields, ["email", "name"]);

    let wrong_types = system.call(Method::POST, "/users", Some(json!({"email": ["a"], "name": 7, "age": "3"}))).await;
    assert_eq!(wrong_types.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(wrong_types.bad_fields().len(), 3);

    let long_name = "x".repeat(201);
    let too_long = system.call(Method::POST, "/users", Some(json!({"email": "a@b.co", "name": long_name}))).await;
    assert_eq!(too_long.bad_fields(), ["name"]);
    system.stop().await;
}

#[tokio::test]
async fn bodies_that_are_not_json_objects_are_415_or_400() {
    let system = TestSystem::start().await;
    let client = &system.client;
    let url = format!("{}/users", system.gateway.url);
    let text = client.post(&url).header("content-type", "text/plain").body("{}").send().await.unwrap();
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(text.headers()["content-type"], "application/problem+json");
    let none = client.post(&url).body("{}").send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    for bad in ["{", "", "nul", "{\"email\": }"] {
        let answer = client.post(&url).header("content-type", "application/json").body(bad).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{bad:?}");
    }
    let array = client.post(&url).header("content-type", "application/json").body("[1,2]").send().await.unwrap();
    assert_eq!(array.status(), StatusCode::BAD_REQUEST);
    let huge = format!("{{\"email\":\"a@b.co\",\"name\":\"{}\"}}", "x".repeat(100_000));
    let answer = client.post(&url).header("content-type", "application/json").body(huge).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::PAYLOAD_TOO_LARGE);
    system.stop().await;
}

#[tokio::test]
async fn no_query_parameter_value_makes_the_listing_fail_badly() {
    let system = TestSystem::start().await;
    system.call(Method::POST, "/users", Some(json!({"email": "a@example.com", "name": "A"}))).await;
    for (query, expected) in [
        ("limit=0", StatusCode::BAD_REQUEST),
        ("limit=1001", StatusCode::BAD_REQUEST),
        ("limit=-1", StatusCode::BAD_REQUEST),
        ("limit=abc", StatusCode::BAD_REQUEST),
        ("limit=99999999999999999999999", StatusCode::BAD_REQUEST),
        ("limit=1000", StatusCode::OK),
        ("cursor=garbage", StatusCode::BAD_REQUEST),
        ("cursor=", StatusCode::OK),
        ("email=%00%FF", StatusCode::OK),
        ("email=", StatusCode::OK),
        ("q=%F0%9F%92%A9", StatusCode::OK),
        ("q=%ZZ", StatusCode::OK),
        ("q=&limit=1&unknown=1&limit=2", StatusCode::OK),
        ("email=A@EXAMPLE.COM&q=zzz", StatusCode::OK),
    ] {
        let answer = system.call(Method::GET, &format!("/users?{query}"), None).await;
        assert_eq!(answer.status, expected, "{query}: {}", answer.body);
        if expected != StatusCode::OK {
            assert_eq!(answer.header("content-type"), "application/problem+json", "{query}");
        }
    }
    for path in ["/users/not-a-uuid", "/users/00000000-0000-0000-0000-000000000000", "/users/%00"] {
        assert_eq!(system.call(Method::GET, path, None).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    let wrong_method = system.call(Method::PUT, "/users", None).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    system.stop().await;
}
