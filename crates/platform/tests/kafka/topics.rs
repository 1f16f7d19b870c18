use platform::KafkaConfig;
use platform::kafka::check_connection;
use platform::kafka::topics::{TopicSpec, TopicStatus, ensure};
use platform::testing::unique;

#[tokio::test]
async fn ensure_creates_what_is_missing_then_verifies_and_reports_drift() {
    let kafka = platform::testing::kafka().await;
    let (events, log) = (unique("test-events"), unique("test-log"));
    let specs = [TopicSpec::new(&events).retention_ms(-1), TopicSpec::new(&log).partitions(2).compacted()];

    let created = ensure(&kafka, &specs).await.expect("ensure");
    assert_eq!(created, [(events.clone(), TopicStatus::Created), (log.clone(), TopicStatus::Created)]);

    let again = ensure(&kafka, &specs).await.expect("ensure again");
    assert_eq!(again, [(events.clone(), TopicStatus::Verified), (log.clone(), TopicStatus::Verified)]);

    let changed = [TopicSpec::new(&events).partitions(3).retention_ms(1000)];
    let drift = ensure(&kafka, &changed).await.expect("ensure changed");
    let TopicStatus::Drifted(diffs) = &drift[0].1 else { panic!("expected drift, got {drift:?}") };
    assert!(diffs.iter().any(|d| d.starts_with("partitions 6")), "{diffs:?}");
    assert!(diffs.iter().any(|d| d.starts_with("retention.ms=-1")), "{diffs:?}");
}

#[tokio::test]
async fn an_unreachable_broker_is_reported_within_the_startup_timeout() {
    let kafka = KafkaConfig {
        bootstrap_servers: "127.0.0.1:1".into(),
        startup_timeout_ms: 1000,
        ..KafkaConfig::from_env().unwrap()
    };
    let started = std::time::Instant::now();
    let error = check_connection(&kafka).await.expect_err("nothing listens on port 1");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(error.to_string().starts_with("cannot reach Kafka at 127.0.0.1:1 within 1s"), "{error}");
}
