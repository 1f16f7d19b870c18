//! Limits that hold whatever clients send: the rate per principal (429), requests in flight
//! (503), the request and upload timeouts (408), the search budget, and the disk reserve (507).

use std::time::Duration;

use futures::StreamExt as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use system_tests::{Options, TestSystem};
use tokio::io::AsyncWriteExt;

use crate::uploads::{chunk, raw_post, upload_head};

fn options() -> Options {
    Options::default()
}

/// A token of `role` for the principal `subject`.
fn token_of(system: &TestSystem, subject: &str, role: auth::Role) -> String {
    let claims = auth::dev::Claims::new(subject, role, Duration::from_secs(3600));
    auth::dev::sign(&system.options.jwt_secret, &claims).expect("signs")
}

async fn get(system: &TestSystem, path: &str, token: &str) -> reqwest::Response {
    system.client.get(format!("{}{path}", system.gateway.url)).bearer_auth(token).send().await.expect("answered")
}

/// An upload of a valid start that is left open: a request in flight until `stream` is dropped.
async fn open_upload(system: &TestSystem) -> tokio::net::TcpStream {
    let addr = system.gateway.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(upload_head(system, "Transfer-Encoding: chunked").as_bytes()).await.unwrap();
    stream.write_all(&chunk(b"email,name\nslow@example.com,Slow\n")).await.unwrap();
    stream
}

fn retry_after(response: &reqwest::Response) -> u64 {
    let value = response.headers().get("retry-after").expect("a Retry-After header");
    value.to_str().unwrap().parse().expect("Retry-After in seconds")
}

#[tokio::test]
async fn a_principal_over_its_rate_gets_429_with_retry_after_and_others_are_not_slowed() {
    let mut options = options();
    options.limits.rate_limit_per_second = 5;
    options.limits.rate_limit_burst = 10;
    let system = TestSystem::start_with(options).await;
    let greedy = token_of(&system, "greedy", auth::Role::Reader);
    let answers: Vec<reqwest::Response> =
        futures::stream::iter(0..60).map(|_| get(&system, "/users", &greedy)).buffer_unordered(20).collect().await;
    let statuses: Vec<StatusCode> = answers.iter().map(|a| a.status()).collect();
    let limited: Vec<&reqwest::Response> =
        answers.iter().filter(|a| a.status() == StatusCode::TOO_MANY_REQUESTS).collect();
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok + limited.len(), 60, "only 200 and 429: {statuses:?}");
    assert!(ok >= 10 && limited.len() >= 20, "a burst of 10, then 5 per second: {ok} let through");
    for answer in &limited {
        assert!((1..=1).contains(&retry_after(answer)), "a wait of at most 1/5 s, rounded up");
        assert_eq!(answer.headers()["content-type"], "application/problem+json");
    }

    // Another principal has a budget of its own; /health has none.
    let patient = token_of(&system, "patient", auth::Role::Reader);
    assert_eq!(get(&system, "/users", &patient).await.status(), StatusCode::OK);
    for _ in 0..30 {
        assert_eq!(system.client.get(format!("{}/health", system.gateway.url)).send().await.unwrap().status(), 200);
    }
    // Once its bucket refills, the greedy principal is let through again.
    platform::testing::eventually("the greedy principal let through again", Duration::from_secs(5), || async {
        (get(&system, "/users", &greedy).await.status() == StatusCode::OK).then_some(())
    })
    .await;
    system.stop().await;
}

#[tokio::test]
async fn requests_beyond_the_concurrency_limit_are_shed_with_503_and_retry_after() {
    let mut options = options();
    options.limits.max_concurrent_requests = 2;
    let system = TestSystem::start_with(options).await;
    let admin = system.token(auth::Role::Admin);
    let first = open_upload(&system).await;
    let second = open_upload(&system).await;
    let shed = platform::testing::eventually("both uploads hold a slot", Duration::from_secs(10), || async {
        let answer = get(&system, "/users", &admin).await;
        (answer.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(answer)
    })
    .await;
    assert_eq!(retry_after(&shed), 1);
    assert_eq!(shed.json::<Value>().await.unwrap()["type"], "urn:problem:overloaded");
    assert_eq!(system.client.get(format!("{}/health", system.gateway.url)).send().await.unwrap().status(), 200);

    drop((first, second));
    platform::testing::eventually("slots given back", Duration::from_secs(10), || async {
        (get(&system, "/users", &admin).await.status() == StatusCode::OK).then_some(())
    })
    .await;
    system.stop().await;
}

#[tokio::test]
async fn uploads_have_a_timeout_of_their_own_and_a_timed_out_upload_leaves_no_file() {
    // Short requests, long uploads: a slow upload outlives the request timeout.
    let mut options = options();
    options.request_timeout = Duration::from_millis(500);
    options.limits.upload_timeout_ms = 20_000;
    let system = TestSystem::start_with(options).await;
    let head = upload_head(&system, "Transfer-Encoding: chunked");
    let addr = system.gateway.url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&chunk(b"email,name\n")).await.unwrap();
    let mut early = vec![0; 4096];
    for i in 0..4 {
        // A slow client: between chunks, the gateway must not answer (a 408 would come now).
        let answered =
            tokio::time::timeout(Duration::from_millis(400), tokio::io::AsyncReadExt::read(&mut stream, &mut early))
                .await;
        assert!(
            answered.is_err(),
            "answered before the upload ended: {:?}",
            answered.map(|n| n.map(|n| String::from_utf8_lossy(&early[..n]).into_owned()))
        );
        stream.write_all(&chunk(format!("slow{i}@example.com,Slow\n").as_bytes())).await.unwrap();
    }
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    let mut answer = vec![0; 4096];
    let n = tokio::io::AsyncReadExt::read(&mut stream, &mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 202"), "an upload of 1.6 s under a 0.5 s request timeout: {answer}");
    system.stop().await;

    // Long requests, short uploads: an upload left open is cut off with 408.
    let mut options = Options::default();
    options.limits.upload_timeout_ms = 500;
    let system = TestSystem::start_with(options).await;
    let head = upload_head(&system, "Transfer-Encoding: chunked");
    let start = chunk(b"email,name\nslow@example.com,Slow\n");
    let answer = tokio::time::timeout(Duration::from_secs(10), raw_post(&system.gateway.url, &head, &[&start]))
        .await
        .expect("answered before the upload ended");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("urn:problem:request-timeout"), "{answer}");
    platform::testing::eventually("the partial upload removed", Duration::from_secs(5), || async {
        walk(&system.options.blob_dir).is_empty().then_some(())
    })
    .await;
    assert_eq!(system.call(Method::GET, "/imports", None).await.body["items"], json!([]));
    system.stop().await;
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.flatten().flat_map(|e| if e.path().is_dir() { walk(&e.path()) } else { vec![e.path()] }).collect()
}

#[tokio::test]
async fn a_search_out_of_time_answers_partial_pages_whose_cursors_find_every_match() {
    let mut options = options();
    options.limits.search_budget_ms = 0;
    let system = TestSystem::start_with(options).await;
    let shared = &system;
    let created: Vec<u16> = futures::stream::iter(0..600)
        .map(|i| {
            let name = if i % 7 == 0 { format!("Needle {i}") } else { format!("Hay {i}") };
            let body = json!({ "email": format!("u{i}@example.com"), "name": name });
            async move { shared.call(Method::POST, "/users", Some(body)).await.status.as_u16() }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(created.iter().all(|s| *s == 201), "{created:?}");

    let (mut found, mut cursor, mut partial_pages) = (Vec::new(), String::new(), 0);
    loop {
        let page = system.call(Method::GET, &format!("/users?q=needle&limit=100&cursor={cursor}"), None).await.body;
        partial_pages += usize::from(page["partial"] == json!(true));
        found.extend(page["items"].as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    let expected = (0..600).filter(|i| i % 7 == 0).count();
    assert_eq!(found.len(), expected, "{found:?}");
    assert!(partial_pages >= 2, "a budget of 0 ms stops every scan early: {partial_pages} partial pages");
    // Without `q` the budget does not apply: a full page.
    let page = system.call(Method::GET, "/users?limit=100", None).await.body;
    assert_eq!((page["items"].as_array().unwrap().len(), page["partial"].clone()), (100, json!(false)));
    system.stop().await;
}

#[tokio::test]
async fn uploads_and_exports_are_refused_with_507_when_the_disk_keeps_too_little_free() {
    let mut options = options();
    options.blob_min_free_bytes = u64::MAX / 4;
    let system = TestSystem::start_with(options).await;
    let answer = system
        .client
        .post(format!("{}/imports", system.gateway.url))
        .header("content-type", "text/csv")
        .body("email,name\na@example.com,A\n")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert!(retry_after(&answer) > 0);
    let problem: Value = answer.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("nearly full"), "{problem}");
    assert_eq!(system.call(Method::POST, "/exports", None).await.status, StatusCode::INSUFFICIENT_STORAGE);
    assert!(walk(&system.options.blob_dir).is_empty());
    assert_eq!(system.call(Method::GET, "/imports", None).await.body["items"], json!([]));
    system.stop().await;
}

#[tokio::test]
async fn a_finished_import_leaves_its_error_report_and_not_its_upload() {
    let system = TestSystem::start_with(Options { import_worker: true, ..options() }).await;
    let id = crate::support::upload(&system, b"email,name\nkept@example.com,Kept\nnot-an-email,Bad\n", None).await;
    let statuses = crate::support::wait_import(&system, &id, Duration::from_secs(60)).await;
    assert_eq!(statuses.last().unwrap()["status"], "completed");
    let files: Vec<String> =
        walk(&system.options.blob_dir).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(files, [format!("{id}.errors.csv")], "the upload is removed once the import is finished");
    system.stop().await;
}
