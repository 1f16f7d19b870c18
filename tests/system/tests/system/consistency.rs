use std::time::Duration;

use futures::future::join_all;
use platform::kafka::{Producer, Record};
use reqwest::{Method, StatusCode};
use serde_json::json;

use system_tests::{TestSystem, call};

#[tokio::test]
async fn of_fifty_concurrent_creates_of_one_email_in_any_case_exactly_one_wins() {
    let system = TestSystem::start().await;
    let attempts = (0..50).map(|i| {
        let email =
            if i % 2 == 0 { "Race@Example.com".to_owned() } else { format!("RACE@example.COM{}", " ".repeat(i % 3)) };
        system.call(Method::POST, "/users", Some(json!({"email": email, "name": format!("Racer {i}")})))
    });
    let answers = join_all(attempts).await;
    let created = answers.iter().filter(|a| a.status == StatusCode::CREATED).count();
    let conflicts = answers.iter().filter(|a| a.status == StatusCode::CONFLICT).count();
    assert_eq!((created, conflicts), (1, 49), "{:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
    let listed = system.call(Method::GET, "/users?q=race", None).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    system.stop().await;
}

#[tokio::test]
async fn the_same_command_delivered_twice_creates_one_user() {
    let system = TestSystem::start().await;
    let kafka = platform::testing::kafka().await;
    let topics = system.bound_topics().await;
    let command = system_tests::create_command("once@example.com", "Once");
    let bytes = topics.user_commands.encode(command).unwrap();
    let producer = Producer::new(&kafka, "test").unwrap();
    for _ in 0..2 {
        producer.send(Record::new(topics.user_commands.name(), &bytes).key(b"once@example.com")).await.unwrap();
    }
    // A marker command after the duplicates: once it is visible, both duplicates were handled.
    let marker = system.call(Method::POST, "/users", Some(json!({"email": "marker@example.com", "name": "M"}))).await;
    assert_eq!(marker.status, StatusCode::CREATED);
    let found = system.call(Method::GET, "/users?q=once@", None).await;
    assert_eq!(found.body["items"].as_array().unwrap().len(), 1, "{}", found.body);
    assert_eq!(found.body["items"][0]["version"], 1);
    system.stop().await;
}

#[tokio::test]
async fn after_restarting_user_service_and_the_gateway_users_remain_and_emails_stay_unique() {
    let mut system = TestSystem::start().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let created = system
            .call(Method::POST, "/users", Some(json!({"email": format!("keep{i}@example.com"), "name": "K"})))
            .await;
        ids.push(created.body["id"].as_str().unwrap().to_owned());
    }
    let patched = system.call(Method::PATCH, &format!("/users/{}", ids[0]), Some(json!({"age": 40}))).await;
    assert_eq!(patched.status, StatusCode::OK);
    system.call(Method::DELETE, &format!("/users/{}", ids[4]), None).await;

    system.stop_user_service().await;
    system.start_user_service().await;
    system.restart_gateway().await;

    for id in &ids[..4] {
        assert_eq!(system.call(Method::GET, &format!("/users/{id}"), None).await.status, StatusCode::OK);
    }
    let first = system.call(Method::GET, &format!("/users/{}", ids[0]), None).await;
    assert_eq!((first.body["age"].clone(), first.body["version"].clone()), (json!(40), json!(2)));
    assert_eq!(system.call(Method::GET, &format!("/users/{}", ids[4]), None).await.status, StatusCode::NOT_FOUND);
    let duplicate = system.call(Method::POST, "/users", Some(json!({"email": "KEEP1@example.com", "name": "K"}))).await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT, "uniqueness survives the restart");
    let reused = system.call(Method::POST, "/users", Some(json!({"email": "keep4@example.com", "name": "K"}))).await;
    assert_eq!(reused.status, StatusCode::CREATED, "the deleted user's email is free after the restart too");
    system.stop().await;
}

#[tokio::test]
async fn without_an_outcome_in_time_a_write_is_a_202_with_a_status_url_that_later_tells() {
    let mut system = TestSystem::start_with_timeout(Duration::from_millis(800)).await;
    system.stop_user_service().await;
    let accepted =
        system.call(Method::POST, "/users", Some(json!({"email": "later@example.com", "name": "Later"}))).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
    let status_url = accepted.body["status_url"].as_str().unwrap().to_owned();
    assert_eq!(accepted.header("location"), status_url);
    assert_eq!(system.call(Method::GET, &status_url, None).await.body["status"], "pending");

    system.start_user_service().await;
    let done = platform::testing::eventually("the command's outcome", Duration::from_secs(30), || async {
        let status = system.call(Method::GET, &status_url, None).await;
        (status.body["status"] == "accepted").then_some(status)
    })
    .await;
    assert_eq!(done.body["user"]["email"], "later@example.com");
    assert_eq!(
        system.call(Method::GET, "/commands/00000000-0000-0000-0000-000000000000", None).await.status,
        StatusCode::NOT_FOUND
    );
    system.stop().await;
}

#[tokio::test]
async fn several_gateways_each_get_their_own_replies() {
    let system = TestSystem::start().await;
    let second = system.another_gateway().await;
    let client = system.client.clone();
    let writes = (0..20).map(|i| {
        let base = if i % 2 == 0 { system.gateway.url.clone() } else { second.url.clone() };
        let client = client.clone();
        async move {
            let body = json!({"email": format!("multi{i}@example.com"), "name": "M"});
            call(&client, &base, Method::POST, "/users", Some(body), &[]).await
        }
    });
    for answer in join_all(writes).await {
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        let id = answer.body["id"].as_str().unwrap();
        // Each gateway's projection has every user, whoever created it.
        assert_eq!(
            call(&client, &second.url, Method::GET, &format!("/users/{id}"), None, &[]).await.status.as_u16() / 100,
            2
        );
    }
    second.stop().await;
    system.stop().await;
}
