//! Kafka goes away and comes back, the services stay up: each one's `/ready` turns 503 within
//! 10 s of Kafka stopping and 200 again within 10 s of its return, without a restart, and a
//! write goes through afterwards. The registry going away only degrades them. The services run
//! as processes of their own against a Kafka and a registry of this test's own (stopping the
//! shared ones would fail every other test).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use platform::testing::{Binary, eventually, poll, unique};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::spawn_service;

/// A single-node Kafka of its own, on ports and a directory of its own (`deploy/kafka/kafka.sh`).
struct OwnKafka {
    dir: PathBuf,
    port: u16,
    controller_port: u16,
}

impl OwnKafka {
    fn start() -> Self {
        let free_port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let kafka = Self {
            dir: std::env::temp_dir().join(unique("kafka-outage")),
            port: free_port(),
            controller_port: free_port(),
        };
        kafka.script(&["start", "--fresh"]);
        kafka
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `kafka.sh node <action> 1 --single`.
    fn node(&self, action: &str) {
        self.script(&["node", action, "1", "--single"]);
    }

    fn script(&self, args: &[&str]) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kafka/kafka.sh");
        let output = Command::new(script)
            .args(args)
            .env("KAFKA_DATA_DIR", &self.dir)
            .env("KAFKA_PORT", self.port.to_string())
            .env("KAFKA_CONTROLLER_PORT", self.controller_port.to_string())
            .output()
            .expect("kafka.sh runs");
        assert!(output.status.success(), "kafka.sh {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
}

impl Drop for OwnKafka {
    fn drop(&mut self) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kafka/kafka.sh");
        let _ = Command::new(script)
            .arg("stop")
            .env("KAFKA_DATA_DIR", &self.dir)
            .env("KAFKA_PORT", self.port.to_string())
            .env("KAFKA_CONTROLLER_PORT", self.controller_port.to_string())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The project's schema registry on a port and a directory of its own
/// (`deploy/schema-registry.sh`), keeping its schemas in `kafka`.
struct OwnRegistry {
    dir: PathBuf,
    addr: String,
    bootstrap: String,
}

impl OwnRegistry {
    fn start(kafka: &OwnKafka) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let registry = Self {
            dir: std::env::temp_dir().join(unique("registry-outage")),
            addr: format!("127.0.0.1:{port}"),
            bootstrap: kafka.bootstrap(),
        };
        registry.script("start");
        registry
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn script(&self, action: &str) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/schema-registry.sh");
        let output = Command::new(script)
            .arg(action)
            .env("SCHEMA_REGISTRY_DIR", &self.dir)
            .env("SCHEMA_REGISTRY_HTTP_ADDR", &self.addr)
            .env("KAFKA_BOOTSTRAP_SERVERS", &self.bootstrap)
            .output()
            .expect("schema-registry.sh runs");
        assert!(output.status.success(), "schema-registry.sh {action}: {}", String::from_utf8_lossy(&output.stderr));
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        self.script("stop");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until every service's `/ready` answers 200 with this `status` in its report.
async fn all_report(client: &reqwest::Client, admins: &[(&str, String)], status: &str, within: Duration) {
    for (service, admin) in admins {
        let report = eventually(&format!("{service}'s /ready to say {status}"), within, || async {
            let (code, body) = ready(client, admin).await;
            let report: Value = serde_json::from_str(&body).ok()?;
            (code == Some(StatusCode::OK) && report["status"] == status).then_some(report)
        })
        .await;
        let degraded = status == "degraded";
        assert_eq!(
            report["checks"]["registry"]["degraded"].as_bool().unwrap_or(false),
            degraded,
            "{service}: {report}"
        );
    }
}

/// `/ready` of `admin`: its status, and its body (empty if there is no answer).
async fn ready(client: &reqwest::Client, admin: &str) -> (Option<StatusCode>, String) {
    match client.get(format!("{admin}/ready")).timeout(Duration::from_secs(2)).send().await {
        Ok(answer) => (Some(answer.status()), answer.text().await.unwrap_or_default()),
        Err(_) => (None, String::new()),
    }
}

/// Waits until every service's `/ready` answers `want`; panics after `within`.
async fn all_ready_say(client: &reqwest::Client, admins: &[(&str, String)], want: StatusCode, within: Duration) {
    for (service, admin) in admins {
        let what = format!("{service}'s /ready to answer {want}");
        let body = eventually(&what, within, || async {
            let (status, body) = ready(client, admin).await;
            (status == Some(want)).then_some(body)
        })
        .await;
        if want == StatusCode::SERVICE_UNAVAILABLE {
            let report: Value = serde_json::from_str(&body).expect("a JSON report");
            assert_eq!(report["checks"]["kafka"]["ready"], false, "{service}: {report}");
        }
    }
}

#[tokio::test]
async fn ready_turns_503_while_kafka_is_stopped_and_back_to_200_once_it_returns() {
    let kafka = OwnKafka::start();
    let bootstrap = kafka.bootstrap();
    let registry = OwnRegistry::start(&kafka);
    let registry_url = registry.url();
    let blobs = std::env::temp_dir().join(unique("outage-blobs"));
    let (blob_dir, secret) = (blobs.display().to_string(), auth::dev::random_secret().unwrap());
    let env = [
        ("KAFKA_BOOTSTRAP_SERVERS", bootstrap.as_str()),
        ("SCHEMA_REGISTRY_URL", registry_url.as_str()),
        ("BLOB_DIR", blob_dir.as_str()),
        ("GATEWAY_JWT_SECRET", secret.as_str()),
        ("GATEWAY_HTTP_ADDR", "127.0.0.1:0"),
        ("GATEWAY_ADMIN_ADDR", "127.0.0.1:0"),
        ("USER_SERVICE_ADMIN_ADDR", "127.0.0.1:0"),
        ("IMPORT_WORKER_ADMIN_ADDR", "127.0.0.1:0"),
        ("EXPORT_WORKER_ADMIN_ADDR", "127.0.0.1:0"),
    ];
    let mut admins = Vec::new();
    let mut processes: Vec<Binary> = Vec::new();
    for service in ["user-service", "import-worker", "export-worker", "api-gateway"] {
        let mut process = spawn_service(service, &env);
        let admin = process.listening_addr("admin (health, ready, metrics)").await;
        admins.push((service, format!("http://{admin}")));
        processes.push(process);
    }
    let api = format!("http://{}", processes[3].listening_addr("api").await);
    let client = reqwest::Client::new();
    all_ready_say(&client, &admins, StatusCode::OK, Duration::from_secs(60)).await;

    // The registry away, every schema in use cached: degraded, still ready; then ready again.
    registry.script("stop");
    all_report(&client, &admins, "degraded", Duration::from_secs(10)).await;
    registry.script("start");
    all_report(&client, &admins, "ready", Duration::from_secs(10)).await;

    kafka.node("stop");
    let stopped = Instant::now();
    all_ready_say(&client, &admins, StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(10)).await;
    println!("every /ready said 503 {:?} after Kafka stopped", stopped.elapsed());
    for process in &mut processes {
        assert!(process.is_running(), "a service exited while Kafka was away");
    }

    kafka.node("start");
    let back = Instant::now();
    all_ready_say(&client, &admins, StatusCode::OK, Duration::from_secs(10)).await;
    println!("every /ready said 200 {:?} after Kafka was back", back.elapsed());

    let claims = auth::dev::Claims::new("outage-test", auth::Role::Admin, Duration::from_secs(600));
    let token = auth::dev::sign(&secret, &claims).unwrap();
    // A write goes through: 201, or 202 (not decided within the command timeout on a busy
    // machine) and then 201 when sent again under its key.
    let (email, key) = (format!("{}@example.com", unique("back")), unique("key"));
    let created = poll(Duration::from_secs(60), || async {
        let answer = client
            .post(format!("{api}/users"))
            .bearer_auth(&token)
            .header("idempotency-key", &key)
            .json(&json!({ "email": email, "name": "After the outage" }))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .ok()?;
        match answer.status() {
            StatusCode::ACCEPTED => None,
            status => Some((status, answer.text().await.unwrap_or_default())),
        }
    })
    .await;
    let Some(created) = created else {
        for (process, (service, _)) in processes.iter().zip(&admins) {
            let logs = process.logs();
            eprintln!("--- {service}'s last log lines:\n{}", logs[logs.len().saturating_sub(40)..].join("\n"));
        }
        panic!("the write after the outage was not created within 60 s (logs above)");
    };
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);

    for process in &processes {
        process.terminate();
    }
    for process in processes {
        let exit = process.wait_exit(Duration::from_secs(60)).await;
        assert!(exit.status.success(), "exit {:?}: {}", exit.status, exit.stderr);
    }
    let _ = std::fs::remove_dir_all(&blobs);
}
