//! Nobody reads or changes users without a right to: every route refuses a request without
//! credentials, with credentials that prove nothing, or with too weak a role, and nothing
//! changes; whoever is let in is named in every command and event their request causes.

use std::time::Duration;

use auth::Role;
use auth::dev::{self, Claims};
use domain::command::CommandEnvelope;
use domain::event::EventEnvelope;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use system_tests::{Options, TestSystem, call};

use crate::support::{self, read_all};

/// Every route of the API with a request it would accept, and the role it needs.
fn routes(user: &str, import: &str, export: &str) -> Vec<(Method, String, Option<Value>, Role)> {
    let patch = Some(json!({"name": "Changed"}));
    let create = Some(json!({"email": "intruder@example.com", "name": "Intruder"}));
    vec![
        (Method::GET, "/users".into(), None, Role::Reader),
        (Method::GET, "/users?q=a".into(), None, Role::Reader),
        (Method::GET, format!("/users/{user}"), None, Role::Reader),
        (Method::POST, "/users".into(), create, Role::Writer),
        (Method::PATCH, format!("/users/{user}"), patch, Role::Writer),
        (Method::DELETE, format!("/users/{user}"), None, Role::Writer),
        (Method::GET, format!("/commands/{user}"), None, Role::Writer),
        (Method::GET, "/imports".into(), None, Role::Admin),
        (Method::POST, "/imports".into(), None, Role::Admin),
        (Method::GET, format!("/imports/{import}"), None, Role::Admin),
        (Method::GET, format!("/imports/{import}/errors"), None, Role::Admin),
        (Method::GET, "/exports".into(), None, Role::Admin),
        (Method::POST, "/exports".into(), Some(json!({})), Role::Admin),
        (Method::GET, format!("/exports/{export}"), None, Role::Admin),
        (Method::GET, format!("/exports/{export}/download"), None, Role::Admin),
        (Method::GET, "/no-such-route".into(), None, Role::Reader),
    ]
}

/// Everything a refused request could have changed: the users, the jobs, the commands sent.
async fn observable(system: &TestSystem) -> (Value, Value, Value, usize) {
    let users = system.call(Method::GET, "/users", None).await.body;
    let imports = system.call(Method::GET, "/imports", None).await.body;
    let exports = system.call(Method::GET, "/exports", None).await.body;
    (users, imports, exports, read_all(system.topics.user_commands.as_str()).await.len())
}

/// A request as an outsider sends it: only the given headers (no default token).
async fn attempt(
    system: &TestSystem,
    method: &Method,
    path: &str,
    body: &Option<Value>,
    headers: &[(&str, &str)],
) -> system_tests::Answer {
    let bare = reqwest::Client::new();
    if path == "/imports" && method == Method::POST {
        let mut request = bare.post(format!("{}{path}", system.gateway.url)).header("content-type", "text/csv");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.body("email,name\nintruder@example.com,Intruder\n").send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let body = response.json().await.unwrap_or(Value::Null);
        return system_tests::Answer { status, headers, body };
    }
    call(&bare, &system.gateway.url, method.clone(), path, body.clone(), headers).await
}

#[tokio::test]
async fn every_route_refuses_missing_invalid_and_too_weak_credentials_and_nothing_changes() {
    let system =
        TestSystem::start_with(Options { import_worker: true, export_worker: true, ..Options::default() }).await;
    let created =
        system.call(Method::POST, "/users", Some(json!({"email": "owner@example.com", "name": "Owner"}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let user = created.body["id"].as_str().unwrap().to_owned();
    let import = support::upload(&system, b"email,name\nrow@example.com,Row\n", None).await;
    support::wait_import(&system, &import, Duration::from_secs(60)).await;
    let export = support::request(&system, json!({})).await;
    support::wait_export(&system, &export, Duration::from_secs(60)).await;
    let before = observable(&system).await;

    let secret = &system.options.jwt_secret;
    let signed = |claims: Claims| format!("Bearer {}", dev::sign(secret, &claims).unwrap());
    let admin = || Claims::new("mallory", Role::Admin, Duration::from_secs(600));
    let invalid = [
        ("no credentials", None),
        ("expired", Some(signed(Claims { exp: admin().iat - 3600, ..admin() }))),
        (
            "wrongly signed",
            Some(format!("Bearer {}", dev::sign("not-the-secret-not-the-secret-0123", &admin()).unwrap())),
        ),
        ("another audience", Some(signed(Claims { aud: "another-api".into(), ..admin() }))),
        ("not a token", Some("Bearer not.a.token".to_owned())),
        ("not bearer", Some("Basic bWFsbG9yeTpzZWNyZXQ=".to_owned())),
    ];
    for (method, path, body, needed) in routes(&user, &import, &export) {
        for (why, authorization) in &invalid {
            let headers: Vec<(&str, &str)> = authorization.iter().map(|a| ("authorization", a.as_str())).collect();
            let answer = attempt(&system, &method, &path, &body, &headers).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {path}, {why}: {}", answer.body);
            assert_eq!(answer.header("content-type"), "application/problem+json", "{method} {path}, {why}");
            assert!(answer.header("www-authenticate").starts_with("Bearer realm="), "{method} {path}, {why}");
        }
        let answer = attempt(&system, &method, &path, &body, &[("x-api-key", "umk_guessed")]).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {path}, a wrong API key");
        for weaker in Role::ALL.into_iter().filter(|role| *role < needed) {
            let token = format!("Bearer {}", system.token(weaker));
            let answer = attempt(&system, &method, &path, &body, &[("authorization", &token)]).await;
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{method} {path} as {weaker}: {}", answer.body);
            assert_eq!(answer.body["type"], "urn:problem:forbidden", "{method} {path} as {weaker}");
        }
    }
    let expired =
        attempt(&system, &Method::GET, "/users", &None, &[("authorization", invalid[1].1.as_deref().unwrap())]).await;
    assert!(expired.header("www-authenticate").contains("expired"), "{}", expired.header("www-authenticate"));
    assert_eq!(observable(&system).await, before, "a refused request changed something");

    // The role that is enough gets in: a reader reads, a writer writes.
    let reader = format!("Bearer {}", system.token(Role::Reader));
    let read = attempt(&system, &Method::GET, &format!("/users/{user}"), &None, &[("authorization", &reader)]).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    system.stop().await;
}

#[tokio::test]
async fn the_caller_is_named_in_every_command_and_event_their_request_causes() {
    let system = TestSystem::start_with(Options { import_worker: true, ..Options::default() }).await;
    let writer = format!("Bearer {}", system.token(Role::Writer));
    let body = Some(json!({"email": "named@example.com", "name": "Named"}));
    let created = attempt(&system, &Method::POST, "/users", &body, &[("authorization", &writer)]).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let import = support::upload(&system, b"email,name\nimported@example.com,Imported\n", None).await;
    support::wait_import(&system, &import, Duration::from_secs(60)).await;

    let topics = system.bound_topics().await;
    let mut principals = Vec::new();
    for record in read_all(system.topics.user_commands.as_str()).await {
        let command: CommandEnvelope = topics.user_commands.decode(&record).await.unwrap();
        principals.push(("command", command.principal));
    }
    for record in read_all(system.topics.user_events.as_str()).await {
        let event: EventEnvelope = topics.user_events.decode(&record).await.unwrap();
        principals.push(("event", event.principal));
    }
    principals.sort();
    // The gateway's test tokens are for subject `system-test`; the import was uploaded by the admin.
    let named = Some("jwt:system-test".to_owned());
    assert_eq!(
        principals,
        vec![("command", named.clone()), ("command", named.clone()), ("event", named.clone()), ("event", named)]
    );
    system.stop().await;
}

#[test]
fn the_routes_checked_here_are_every_operation_the_document_describes() {
    let id = "the-id";
    let mut checked: Vec<(String, String)> = routes(id, id, id)
        .into_iter()
        .filter(|(_, path, ..)| path != "/no-such-route")
        .map(|(method, path, ..)| {
            let path = path.split('?').next().unwrap_or_default().replace(id, "{id}");
            (method.as_str().to_lowercase(), path)
        })
        .collect();
    checked.sort();
    checked.dedup();
    let document = serde_json::to_value(api_gateway::http::openapi_document()).unwrap();
    let mut documented: Vec<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |method| (method.clone(), path.clone())))
        .collect();
    documented.sort();
    assert_eq!(checked, documented, "every documented operation is checked for 401 and 403");
}
