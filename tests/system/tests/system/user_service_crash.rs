//! user-service killed with SIGKILL at random points of an import, several times: each batch's
//! events, states, replies and consumed offsets commit together or not at all, so the users
//! are exactly the file's valid rows and no record exists twice or for an aborted batch.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use domain::event::EventEnvelope;
use domain::reply::{Outcome, Reply};
use platform::testing::Binary;
use system_tests::{Options, TestSystem};
use testkit::generate::{Spec, generate};
use uuid::Uuid;

use crate::support::{read_all, spawn_service, upload, wait_import};

/// Rows in the file: `USER_SERVICE_CRASH_ROWS` (200,000 in `just test-slow`), or 50,000.
fn rows() -> u64 {
    std::env::var("USER_SERVICE_CRASH_ROWS").ok().and_then(|r| r.parse().ok()).unwrap_or(50_000)
}

async fn start(system: &TestSystem, service: &str, ready: &str) -> Binary {
    let env = system.worker_env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Small batches and a short leash: the import advances steadily, so kills land mid-way.
    env.extend([("IMPORT_WORKER_BATCH_ROWS", "100"), ("IMPORT_WORKER_MAX_IN_FLIGHT_ROWS", "1000")]);
    env.push(("IMPORT_WORKER_PROGRESS_INTERVAL_MS", "50"));
    let mut process = spawn_service(service, &env);
    process.wait_for_log(ready, Duration::from_secs(60)).await;
    process
}

#[tokio::test]
async fn user_service_killed_at_random_points_of_an_import_leaves_exactly_the_valid_users_and_nothing_twice() {
    let mut system = TestSystem::start_with(Options::default()).await;
    system.stop_user_service().await;
    let worker = start(&system, "import-worker", "consumer started").await;
    let mut file = Vec::new();
    let generated = generate(&mut file, &Spec { rows: rows(), bad_share: 0.02, seed: 17 }, true).unwrap();

    let mut service = start(&system, "user-service", "transactional consumer started").await;
    let id = upload(&system, &file, None).await;
    // Three kills, each once a random share of the rows has been answered: one in each of
    // 5-20%, 25-40% and 45-60%, so that the import cannot finish before two of them (progress
    // is published every 50 ms and can jump past a point near the end).
    let points: Vec<u64> = [5, 25, 45].iter().map(|low| low + (Uuid::new_v4().as_u128() % 16) as u64).collect();
    let mut kills = 0;
    for percent in points {
        let threshold = generated.rows * percent / 100;
        let what = format!("{percent}% of the rows answered, or the import completed");
        let completed = platform::testing::eventually(&what, Duration::from_secs(300), || async {
            let status = system.call(reqwest::Method::GET, &format!("/imports/{id}"), None).await.body;
            let answered = status["accepted"].as_u64().unwrap_or(0) + status["rejected"].as_u64().unwrap_or(0);
            let completed = status["status"] == "completed";
            (completed || answered >= threshold).then_some(completed)
        })
        .await;
        if completed {
            // Progress can jump past a point (it is published every 50 ms).
            eprintln!("the import completed before the kill at {percent}%");
            break;
        }
        service.kill_hard();
        assert!(!service.wait_exit(Duration::from_secs(30)).await.status.success());
        kills += 1;
        service = start(&system, "user-service", "transactional consumer started").await;
    }
    assert!(kills >= 2, "killed {kills} times only");
    let statuses = wait_import(&system, &id, Duration::from_secs(600)).await;
    let last = statuses.last().unwrap();
    assert_eq!(last["status"], "completed", "{last}");
    assert_eq!(last["accepted"], generated.valid_emails.len() as u64, "{last}");

    // Count on the topics, as a read_committed client sees them.
    let topics = system.bound_topics().await;
    let mut events_per_command: HashMap<Uuid, usize> = HashMap::new();
    let mut emails = BTreeSet::new();
    for record in read_all(system.topics.user_events.as_str()).await {
        let envelope: EventEnvelope = topics.user_events.decode(&record).await.unwrap();
        *events_per_command.entry(envelope.command_id).or_default() += 1;
        if let domain::event::Event::Created(user) = envelope.event {
            emails.insert(user.email.as_str().to_owned());
        }
    }
    assert!(events_per_command.values().all(|n| *n == 1), "an event exists twice");
    let expected: BTreeSet<String> = generated.valid_emails.iter().cloned().collect();
    assert_eq!(emails, expected, "exactly the valid rows became users");

    let states = read_all(system.topics.user_state.as_str()).await;
    let keys: BTreeSet<&[u8]> = states.iter().filter_map(|s| s.key.as_deref()).collect();
    assert_eq!((states.len(), keys.len()), (expected.len(), expected.len()), "one state record per user");

    let mut replies_per_command: HashMap<Uuid, usize> = HashMap::new();
    let mut answered_rows = 0;
    for record in read_all(system.topics.user_replies.as_str()).await {
        let reply: Reply = topics.user_replies.decode(&record).await.unwrap();
        *replies_per_command.entry(reply.command_id).or_default() += 1;
        if let Outcome::Batch(items) = reply.outcome {
            answered_rows += items.len();
        }
    }
    assert!(replies_per_command.values().all(|n| *n == 1), "a reply exists twice");
    assert_eq!(answered_rows as u64, generated.rows - generated.bad, "every sent row answered once");

    for process in [service, worker] {
        process.terminate();
        assert!(process.wait_exit(Duration::from_secs(30)).await.status.success(), "a clean stop");
    }
    system.stop().await;
}
