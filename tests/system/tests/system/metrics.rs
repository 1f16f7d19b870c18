//! `/metrics` of every service after a 10,000-row import and an export, read back with a
//! Prometheus text parser: the request-duration histograms by route template, the consumer and
//! projection lag gauges, and the counters (commands, rows, applied events, dead letters) with
//! the work they counted.

use std::collections::HashMap;
use std::time::Duration;

use platform::kafka::{Producer, Record};
use platform::testing::{Binary, eventually};
use prometheus_parse::{Sample, Scrape, Value};
use serde_json::json;
use system_tests::TestSystem;
use testkit::generate::{Spec, generate};

use crate::support::{request, spawn_service, upload, wait_export, wait_import};

/// A service as a process of its own (its /metrics are its alone); its admin address.
async fn start(system: &TestSystem, service: &str) -> (Binary, String) {
    let env = system.worker_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut process = spawn_service(service, &env);
    let admin = process.listening_addr("admin (health, ready, metrics)").await;
    (process, format!("http://{admin}"))
}

async fn scrape(admin: &str) -> Vec<Sample> {
    let text = reqwest::get(format!("{admin}/metrics")).await.unwrap().text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    Scrape::parse(lines).unwrap_or_else(|e| panic!("{admin}/metrics is not the Prometheus text format: {e}")).samples
}

/// The samples of `metric` whose labels include every one of `labels`.
fn find<'a>(samples: &'a [Sample], metric: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples.iter().filter(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))).collect()
}

fn number(sample: &Sample) -> f64 {
    match &sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{} is not a number: {other:?}", sample.metric),
    }
}

/// The sum of `metric` over the samples matching `labels` (none: not there).
fn total(samples: &[Sample], metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found = find(samples, metric, labels);
    (!found.is_empty()).then(|| found.into_iter().map(number).sum())
}

#[tokio::test]
async fn every_service_exposes_latency_histograms_lag_gauges_and_counters_of_the_work_done() {
    let mut system = TestSystem::start().await;
    system.stop_user_service().await;
    let mut admins = HashMap::new();
    let mut processes = Vec::new();
    for service in ["user-service", "import-worker", "export-worker"] {
        let (mut process, admin) = start(&system, service).await;
        process.wait_for_log("consumer started", Duration::from_secs(60)).await;
        processes.push(process);
        admins.insert(service, admin);
    }
    admins.insert("api-gateway", system.gateway.admin().to_owned());

    // One poison command: user-service dead-letters it, counted by its code.
    let kafka = platform::testing::kafka().await;
    let producer = Producer::new(&kafka, "test").unwrap();
    producer.send(Record::new(system.topics.user_commands.as_str(), b"not avro").key(b"poison")).await.unwrap();

    let mut file = Vec::new();
    let generated = generate(&mut file, &Spec { rows: 10_000, bad_share: 0.01, seed: 5 }, true).unwrap();
    let import = upload(&system, &file, None).await;
    let statuses = wait_import(&system, &import, Duration::from_secs(300)).await;
    assert_eq!(statuses.last().unwrap()["status"], "completed");
    let export = request(&system, json!({})).await;
    assert_eq!(wait_export(&system, &export, Duration::from_secs(120)).await.last().unwrap()["status"], "completed");
    let t = &system.topics;

    // librdkafka reports the consumer lag every 5 s, the tails their lag every 2 s.
    let every = |samples: &[Sample], wanted: &[(&str, &[(&str, &str)])]| {
        wanted.iter().all(|(metric, labels)| !find(samples, metric, labels).is_empty())
    };
    let scrapes = eventually("every service's gauges", Duration::from_secs(60), || async {
        let mut scrapes = HashMap::new();
        for (service, admin) in &admins {
            scrapes.insert(*service, scrape(admin).await);
        }
        let ready =
            every(&scrapes["user-service"], &[("kafka_consumer_lag_messages", &[("topic", t.user_commands.as_str())])])
                && every(
                    &scrapes["import-worker"],
                    &[("kafka_consumer_lag_messages", &[("topic", t.import_requests.as_str())])],
                )
                && every(&scrapes["export-worker"], &[("projection_lag_events", &[("topic", t.user_events.as_str())])])
                && every(&scrapes["api-gateway"], &[("projection_lag_seconds", &[("topic", t.user_events.as_str())])]);
        ready.then_some(scrapes)
    })
    .await;

    for (service, samples) in &scrapes {
        assert!(total(samples, "process_resident_memory_bytes", &[]).unwrap_or_default() > 1e6, "{service} RSS");
    }
    let gateway = &scrapes["api-gateway"];
    // (prometheus-parse skips lines whose label values hold a `}`, such as `/imports/{id}`: the
    // routes without a parameter are the ones it can show.)
    for route in ["/imports", "/exports"] {
        let histogram = find(gateway, "http_server_request_duration_seconds", &[("route", route), ("status", "202")]);
        assert!(
            histogram.iter().any(|s| matches!(&s.value, Value::Histogram(buckets) if buckets.len() > 5)),
            "no request-duration histogram of POST {route}: {histogram:?}"
        );
    }
    let raw_path = gateway.iter().find(|s| s.labels.get("route").is_some_and(|r| r.contains(&import)));
    assert!(raw_path.is_none(), "a raw path as a label: {raw_path:?}");
    assert!(total(gateway, "projection_events_applied_total", &[("topic", t.user_events.as_str())]).unwrap() > 0.0);

    let users = &scrapes["user-service"];
    let applied = total(users, "user_commands_total", &[("outcome", "applied")]).unwrap();
    assert!(applied > 0.0, "user_commands_total{{outcome=applied}} {applied}");
    let dead = total(users, "dead_letters_total", &[("topic", t.user_commands.as_str()), ("reason", "not_avro")]);
    assert_eq!(dead, Some(1.0), "the poison command, counted by its code");

    let imports = &scrapes["import-worker"];
    let accepted = total(imports, "import_rows_total", &[("outcome", "accepted")]).unwrap();
    assert_eq!(accepted as u64, generated.rows - generated.bad, "rows accepted");
    assert!(total(imports, "import_rows_total", &[("outcome", "invalid")]).unwrap() > 0.0);
    assert!(total(imports, "import_rows_per_second", &[]).unwrap() > 0.0);

    let exports = &scrapes["export-worker"];
    assert_eq!(total(exports, "export_rows_written_total", &[]), Some(accepted));
    assert!(total(exports, "export_rows_per_second", &[]).unwrap() > 0.0);
    assert!(
        total(exports, "projection_events_applied_total", &[("topic", t.user_events.as_str())]).unwrap() >= accepted
    );
    assert!(total(exports, "projection_lag_seconds", &[("topic", t.user_events.as_str())]).is_some());

    for process in &processes {
        process.terminate();
    }
    for process in processes {
        process.wait_exit(Duration::from_secs(30)).await;
    }
    system.stop().await;
}
