use std::collections::BTreeSet;
use std::time::Duration;

use domain::time::Timestamp;
use reqwest::{Method, StatusCode};
use serde_json::json;
use system_tests::{Options, TestSystem};

use crate::support::{create, download, emails, export, request, wait_export};

fn with_workers() -> Options {
    Options { import_worker: true, export_worker: true, ..Options::default() }
}

#[tokio::test]
async fn filters_select_exactly_the_matching_users_and_the_file_checks_out() {
    let system = TestSystem::start_with(with_workers()).await;
    let mut created = Vec::new();
    for (email, name, age) in [
        ("ada@example.com", "Ada Lovelace", Some(36)),
        ("grace@navy.mil", "Grace Hopper", Some(85)),
        ("alan@example.com", "Alan Turing", Some(41)),
        ("kid@Example.com", "Kid, \"the\" Younger", Some(9)),
        ("noage@example.org", "No Age", None),
        ("linus@kernel.org", "Linus", Some(55)),
    ] {
        let user = create(&system, email, name, age).await;
        // Distinct creation instants, so the time filters have a clear boundary.
        let at = Timestamp::parse_rfc3339(user["created_at"].as_str().unwrap()).unwrap();
        platform::testing::eventually("the clock to pass the last creation", Duration::from_secs(5), || async {
            (Timestamp::now() > at).then_some(())
        })
        .await;
        created.push(user);
    }
    let alan_created = created[2]["created_at"].as_str().unwrap();

    let (header, rows) = export(&system, json!({})).await;
    assert_eq!(header, ["email", "name", "age"], "the import format");
    assert_eq!(
        emails(&rows),
        created.iter().map(|u| u["email"].as_str().unwrap()).collect::<Vec<_>>(),
        "creation order"
    );
    assert_eq!(rows[3], ["kid@Example.com", "Kid, \"the\" Younger", "9"]);
    assert_eq!(rows[4], ["noage@example.org", "No Age", ""]);

    let cases = [
        (json!({"email_domain": "EXAMPLE.com"}), vec!["ada@example.com", "alan@example.com", "kid@Example.com"]),
        (json!({"min_age": 18, "max_age": 60}), vec!["ada@example.com", "alan@example.com", "linus@kernel.org"]),
        (json!({"q": "LOVE"}), vec!["ada@example.com"]),
        (json!({"q": "navy"}), vec!["grace@navy.mil"]),
        (json!({"created_after": alan_created}), vec!["kid@Example.com", "noage@example.org", "linus@kernel.org"]),
        (json!({"created_before": alan_created}), vec!["ada@example.com", "grace@navy.mil"]),
        (json!({"email_domain": "example.com", "min_age": 10, "q": "a"}), vec!["ada@example.com", "alan@example.com"]),
        (json!({"email_domain": "nowhere.test"}), vec![]),
    ];
    for (filter, expected) in cases {
        let (_, rows) = export(&system, filter.clone()).await;
        assert_eq!(emails(&rows), expected, "{filter}");
    }

    let (header, rows) = export(&system, json!({"columns": ["id", "email", "version"], "q": "turing"})).await;
    assert_eq!(header, ["id", "email", "version"]);
    assert_eq!(rows, [[created[2]["id"].as_str().unwrap(), "alan@example.com", "1"]]);

    system.stop().await;
}

#[tokio::test]
async fn bad_requests_and_unknown_exports_get_clear_errors() {
    let system = TestSystem::start_with(with_workers()).await;
    let answer = system
        .call(
            Method::POST,
            "/exports",
            Some(json!({"min_age": -1, "max_age": "x", "columns": ["password"], "sort": 1})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.body);
    assert_eq!(answer.header("content-type"), "application/problem+json");
    assert_eq!(answer.bad_fields(), ["sort", "max_age"], "shape errors first");
    let answer = system
        .call(Method::POST, "/exports", Some(json!({"min_age": 60, "max_age": 20, "created_after": "soon"})))
        .await;
    assert_eq!(answer.bad_fields(), ["max_age", "created_after"]);
    let answer = system.call(Method::POST, "/exports", Some(json!({"columns": ["email", "password"]}))).await;
    assert_eq!(answer.bad_fields(), ["columns"]);

    let wrong_type = system
        .client
        .post(format!("{}/exports", system.gateway.url))
        .header("content-type", "text/plain")
        .body("min_age=3")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let empty = system.client.post(format!("{}/exports", system.gateway.url)).send().await.unwrap();
    assert_eq!(empty.status(), StatusCode::ACCEPTED, "no body means every user, default columns");

    let unknown = uuid_like();
    assert_eq!(system.call(Method::GET, &format!("/exports/{unknown}"), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(download(&system, &unknown, &[]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(download(&system, "not-an-id", &[]).await.status, StatusCode::NOT_FOUND);
    system.stop().await;
}

fn uuid_like() -> String {
    "0190f5c8-0000-7000-8000-000000000000".into()
}

#[tokio::test]
async fn an_export_contains_the_writes_acknowledged_before_it_and_not_deleted_users() {
    let system = TestSystem::start_with(with_workers()).await;
    for round in 0..3 {
        let kept = create(&system, &format!("kept{round}@example.com"), "Kept", Some(30)).await;
        let deleted = create(&system, &format!("gone{round}@example.com"), "Gone", None).await;
        let answer = system.call(Method::DELETE, &format!("/users/{}", deleted["id"].as_str().unwrap()), None).await;
        assert_eq!(answer.status, StatusCode::NO_CONTENT);
        let renamed = system
            .call(Method::PATCH, &format!("/users/{}", kept["id"].as_str().unwrap()), Some(json!({"name": "Renamed"})))
            .await;
        assert_eq!(renamed.status, StatusCode::OK);
        // Created right before the export is requested: it must be in it.
        create(&system, &format!("last{round}@example.com"), "Last", Some(1)).await;

        let (_, rows) = export(&system, json!({})).await;
        let emails: BTreeSet<&str> = emails(&rows).into_iter().collect();
        for i in 0..=round {
            assert!(emails.contains(format!("kept{i}@example.com").as_str()), "{emails:?}");
            assert!(emails.contains(format!("last{i}@example.com").as_str()), "{emails:?}");
            assert!(!emails.contains(format!("gone{i}@example.com").as_str()), "{emails:?}");
        }
        assert_eq!(rows.len(), 2 * (round + 1));
        assert!(rows.iter().filter(|r| r[0].starts_with("kept")).all(|r| r[1] == "Renamed"), "{rows:?}");
    }
    system.stop().await;
}

#[tokio::test]
async fn a_download_waits_for_the_export_and_honours_if_none_match() {
    let mut system = TestSystem::start_with(Options { export_worker: false, ..Options::default() }).await;
    create(&system, "early@example.com", "Early", None).await;
    let id = request(&system, json!({})).await;
    let status = system.call(Method::GET, &format!("/exports/{id}"), None).await;
    assert_eq!(status.body["status"], "queued");
    assert_eq!(status.body["download_url"], serde_json::Value::Null);
    let early = download(&system, &id, &[]).await;
    assert_eq!(early.status, StatusCode::CONFLICT, "not ready yet");

    system.start_export_worker().await;
    let statuses = wait_export(&system, &id, Duration::from_secs(60)).await;
    let last = statuses.last().unwrap();
    assert_eq!(last["status"], "completed", "{last}");
    assert_eq!(last["download_url"], format!("/exports/{id}/download"));
    assert!(last["duration_ms"].as_i64().is_some());
    let file = download(&system, &id, &[]).await;
    assert_eq!(file.body, b"email,name,age\nearly@example.com,Early,\n");
    let etag = file.header("etag").to_owned();
    let cached = download(&system, &id, &[("if-none-match", &etag)]).await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
    assert!(cached.body.is_empty());

    let listed = system.call(Method::GET, "/exports?limit=5", None).await;
    assert_eq!(listed.body["items"][0]["export_id"], id.as_str());
    system.stop().await;
}

#[tokio::test]
async fn an_export_imported_into_an_empty_system_yields_the_same_users() {
    let source = TestSystem::start_with(with_workers()).await;
    let mut file = Vec::new();
    testkit::generate::generate(&mut file, &testkit::generate::Spec { rows: 3_000, bad_share: 0.0, seed: 7 }, false)
        .unwrap();
    let imported = crate::support::import(&source, &file).await;
    assert_eq!(imported, 3_000);
    create(&source, "quoted@example.com", "O'Brien, \"Pat\"", Some(150)).await;
    create(&source, "ageless@example.com", "  Spaced Name  ", None).await;
    let id = request(&source, json!({})).await;
    wait_export(&source, &id, Duration::from_secs(60)).await;
    let exported = download(&source, &id, &[]).await;
    let (_, before) = exported.rows();
    assert_eq!(before.len(), 3_002);

    let target = TestSystem::start_with(with_workers()).await;
    assert_eq!(crate::support::import(&target, &exported.body).await, 3_002);
    let (_, after) = export(&target, json!({})).await;
    let set = |rows: &[Vec<String>]| rows.iter().cloned().collect::<BTreeSet<_>>();
    assert_eq!(set(&after), set(&before), "same emails, names and ages");
    source.stop().await;
    target.stop().await;
}

#[tokio::test]
async fn old_export_files_expire() {
    let system = TestSystem::start_with(Options { export_worker: false, ..Options::default() }).await;
    create(&system, "brief@example.com", "Brief", None).await;
    let env = system.worker_env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("EXPORT_WORKER_RETENTION_SECS", "1"));
    let mut worker = crate::support::spawn_service("export-worker", &env);
    worker.wait_for_log("consumer started", Duration::from_secs(60)).await;

    let id = request(&system, json!({})).await;
    let statuses = wait_export(&system, &id, Duration::from_secs(60)).await;
    let path = system.options.blob_dir.join(format!("exports/{id}.csv"));
    if statuses.last().unwrap()["status"] == "completed" {
        assert!(path.exists());
        assert_eq!(download(&system, &id, &[]).await.status, StatusCode::OK);
    }
    let expired = platform::testing::eventually("the export to expire", Duration::from_secs(30), || async {
        let status = system.call(Method::GET, &format!("/exports/{id}"), None).await.body;
        (status["status"] == "expired").then_some(status)
    })
    .await;
    assert!(expired["sha256"].is_string(), "what it was stays known: {expired}");
    assert!(!path.exists(), "the file is removed");
    let gone = download(&system, &id, &[]).await;
    assert_eq!(gone.status, StatusCode::GONE);

    worker.terminate();
    assert!(worker.wait_exit(Duration::from_secs(30)).await.status.success());
    system.stop().await;
}

/// A request the worker can never satisfy (positions its projection will not reach: another
/// client wrote it wrong) spends its retry budget, goes to the dead letters, and the export ends
/// `failed` with the reason, not `queued` for ever.
#[tokio::test]
async fn an_export_request_that_spends_its_retry_budget_ends_failed_with_the_reason() {
    let options = Options {
        export_catch_up_timeout: Some(Duration::from_millis(100)),
        export_retry_attempts: Some(2),
        ..with_workers()
    };
    let system = TestSystem::start_with(options).await;
    let topics = system.bound_topics().await;
    let producer = platform::kafka::Producer::new(&platform::testing::kafka().await, "test").unwrap();
    let export_id = uuid::Uuid::now_v7();
    let request = domain::export::ExportRequest {
        export_id,
        filter: domain::export::ExportFilter::default(),
        columns: domain::export::Column::DEFAULT.to_vec(),
        positions: vec![domain::reply::EventPosition { partition: 0, offset: 1_000_000_000 }],
        requested_at: Timestamp::now(),
        principal: None,
        request_digest: None,
    };
    topics.export_requests.publish(&producer, export_id.to_string().as_bytes(), request).await.unwrap();

    // Unknown to the gateway until the worker says something about it: that it failed.
    let last = platform::testing::eventually("the export to fail", Duration::from_secs(30), || async {
        let answer = system.call(Method::GET, &format!("/exports/{export_id}"), None).await;
        (answer.status == StatusCode::OK && answer.body["status"] != "queued").then_some(answer.body)
    })
    .await;
    assert_eq!(last["status"], "failed", "{last}");
    let error = last["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("the export was given up: gave up after 2 attempts: the projection has not reached"),
        "{last}"
    );
    system.stop().await;
}
