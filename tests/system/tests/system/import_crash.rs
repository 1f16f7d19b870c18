use std::collections::BTreeSet;
use std::time::Duration;

use platform::testing::Binary;
use reqwest::Method;
use system_tests::TestSystem;
use testkit::generate::{Spec, generate};

use crate::support::{assert_progress_only_grows, upload};

fn start_worker(system: &TestSystem) -> Binary {
    let env = system.worker_env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("IMPORT_WORKER_PROGRESS_INTERVAL_MS", "100"));
    // Small batches and a short leash keep rows in flight long enough to be killed among them.
    env.push(("IMPORT_WORKER_BATCH_ROWS", "100"));
    env.push(("IMPORT_WORKER_MAX_IN_FLIGHT_ROWS", "500"));
    crate::support::spawn_service("import-worker", &env)
}

#[tokio::test]
async fn an_import_killed_with_sigkill_mid_way_finishes_after_restart_with_exactly_the_valid_users() {
    let system = TestSystem::start().await;
    let mut file = Vec::new();
    let generated = generate(&mut file, &Spec { rows: 50_000, bad_share: 0.02, seed: 42 }, true).unwrap();

    let mut worker = start_worker(&system);
    worker.wait_for_log("consumer started", Duration::from_secs(60)).await;
    let id = upload(&system, &file, None).await;

    // Watch until rows are being answered, then kill the worker without any chance to clean up.
    let mut statuses = Vec::new();
    loop {
        let status = system.call(Method::GET, &format!("/imports/{id}"), None).await.body;
        let (state, accepted) = (status["status"].as_str().unwrap().to_owned(), status["accepted"].as_u64().unwrap());
        statuses.push(status);
        assert_ne!(state, "completed", "the import finished before the worker could be killed; make it bigger");
        if state == "running" && accepted > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.kill_hard();
    let killed = worker.wait_exit(Duration::from_secs(30)).await;
    assert!(!killed.status.success());

    let mut restarted = start_worker(&system);
    restarted.wait_for_log("consumer started", Duration::from_secs(60)).await;
    statuses.extend(crate::support::wait_import(&system, &id, Duration::from_secs(240)).await);
    assert_progress_only_grows(&statuses);
    let last = statuses.last().unwrap();
    assert_eq!(last["status"], "completed", "{last}");
    assert_eq!(last["rows_read"], generated.rows, "{last}");
    assert_eq!(last["accepted"], generated.valid_emails.len() as u64, "{last}");
    assert_eq!(last["rejected"], generated.bad, "{last}");

    // Exactly the valid rows became users: none missing, none twice.
    let mut emails = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = system.call(Method::GET, &format!("/users?limit=1000&cursor={cursor}"), None).await.body;
        emails.extend(page["items"].as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    let unique: BTreeSet<&String> = emails.iter().collect();
    assert_eq!(unique.len(), emails.len(), "no user twice");
    let expected: BTreeSet<&String> = generated.valid_emails.iter().collect();
    assert_eq!(unique, expected);

    restarted.terminate();
    assert!(restarted.wait_exit(Duration::from_secs(30)).await.status.success());
    system.stop().await;
}

#[tokio::test]
async fn a_graceful_stop_mid_import_does_not_wait_for_it_and_the_import_resumes_after_restart() {
    let mut system = TestSystem::start_with(system_tests::Options { import_worker: true, ..Default::default() }).await;
    let mut file = Vec::new();
    let generated = generate(&mut file, &Spec { rows: 20_000, bad_share: 0.0, seed: 9 }, true).unwrap();
    // Without user-service no row is answered: the import cannot finish while the worker stops.
    system.stop_user_service().await;
    let id = upload(&system, &file, None).await;
    platform::testing::eventually("the import to start", Duration::from_secs(60), || async {
        let status = system.call(Method::GET, &format!("/imports/{id}"), None).await.body;
        (status["status"] == "running").then_some(())
    })
    .await;

    // `stop` fails the test unless the worker stops cleanly within 30 s.
    system.stop_import_worker().await;
    let status = system.call(Method::GET, &format!("/imports/{id}"), None).await.body;
    assert_eq!(status["status"], "running", "left to resume, not failed: {status}");

    system.start_user_service().await;
    system.start_import_worker().await;
    let statuses = crate::support::wait_import(&system, &id, Duration::from_secs(120)).await;
    let last = statuses.last().unwrap();
    assert_eq!(last["status"], "completed", "{last}");
    assert_eq!(last["accepted"], generated.valid_emails.len() as u64, "{last}");
    system.stop().await;
}
