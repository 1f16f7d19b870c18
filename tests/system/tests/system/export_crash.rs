use std::time::Duration;

use platform::testing::Binary;
use reqwest::{Method, StatusCode};
use serde_json::json;
use system_tests::{Options, TestSystem};

use crate::support::{download, import, request, wait_export};

fn start_worker(system: &TestSystem) -> Binary {
    let env = system.worker_env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("EXPORT_WORKER_PROGRESS_INTERVAL_MS", "50"));
    // Tiny chunks make the export long enough to be killed in the middle of it.
    env.push(("EXPORT_WORKER_CHUNK_ROWS", "1"));
    crate::support::spawn_service("export-worker", &env)
}

#[tokio::test]
async fn an_export_killed_with_sigkill_mid_way_completes_after_restart_and_no_partial_file_is_served() {
    let system = TestSystem::start_with(Options { import_worker: true, ..Options::default() }).await;
    let mut file = Vec::new();
    let spec = testkit::generate::Spec { rows: 50_000, bad_share: 0.0, seed: 3 };
    testkit::generate::generate(&mut file, &spec, false).unwrap();
    assert_eq!(import(&system, &file).await, 50_000);

    let mut worker = start_worker(&system);
    worker.wait_for_log("consumer started", Duration::from_secs(60)).await;
    let id = request(&system, json!({"columns": ["id", "email", "name", "age", "created_at"]})).await;
    let seen = std::cell::RefCell::new(Vec::new());
    platform::testing::eventually("the export to run", Duration::from_secs(60), || async {
        let status = system.call(Method::GET, &format!("/exports/{id}"), None).await.body;
        let state = status["status"].as_str().unwrap().to_owned();
        seen.borrow_mut().push(status);
        assert_ne!(state, "completed", "the export finished before the worker could be killed; make it bigger");
        (state == "running").then_some(())
    })
    .await;
    let mut statuses = seen.into_inner();
    worker.kill_hard();
    assert!(!worker.wait_exit(Duration::from_secs(30)).await.status.success());

    // Killed mid-way: nothing that looks complete, and the download says so.
    let final_path = system.options.blob_dir.join(format!("exports/{id}.csv"));
    assert!(!final_path.exists(), "no file under the final name before the export completes");
    assert_eq!(download(&system, &id, &[]).await.status, StatusCode::CONFLICT);

    let mut restarted = start_worker(&system);
    restarted.wait_for_log("consumer started", Duration::from_secs(60)).await;
    statuses.extend(wait_export(&system, &id, Duration::from_secs(120)).await);
    let last = statuses.last().unwrap();
    assert_eq!(last["status"], "completed", "{last}");
    for pair in statuses.windows(2) {
        let (before, after) = (pair[0]["rows_written"].as_u64().unwrap(), pair[1]["rows_written"].as_u64().unwrap());
        assert!(after >= before, "progress went from {before} to {after}");
    }
    // `export` checks the SHA-256, size and counts against the downloaded bytes.
    let file = download(&system, &id, &[]).await;
    let (header, rows) = file.rows();
    assert_eq!(header, ["id", "email", "name", "age", "created_at"]);
    assert_eq!(rows.len(), 50_000);
    let sha = {
        use sha2::Digest as _;
        format!("{:x}", sha2::Sha256::digest(&file.body))
    };
    assert_eq!(last["sha256"], sha);
    assert_eq!(last["rows_written"], 50_000);
    assert!(!system.options.blob_dir.join(format!("exports/{id}.csv.part")).exists(), "no staging file left");

    restarted.terminate();
    assert!(restarted.wait_exit(Duration::from_secs(30)).await.status.success());
    system.stop().await;
}
