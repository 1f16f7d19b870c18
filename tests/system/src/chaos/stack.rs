//! The whole system as processes: a three-node Kafka cluster (RF 3, min ISR 2) and the schema
//! registry through the project's scripts, and the four services, each on fixed ports so a
//! restarted one is found where it was.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use platform::testing::{Binary, unique};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{ClientConfig, metadata::Metadata};

use platform::testing::poll;

use super::stop::StopCheck;

/// The services, in the order they start.
pub const SERVICES: [&str; 4] = ["user-service", "import-worker", "export-worker", "api-gateway"];

/// The services holding users, whose digests must agree.
pub const HOLDERS: [&str; 3] = ["user-service", "api-gateway", "export-worker"];

#[derive(Debug)]
pub struct Stack {
    dir: PathBuf,
    base_port: u16,
    registry_addr: String,
    /// Runs any service: `SYSTEM_TEST_SERVICE` names which (`src/bin/service.rs`).
    launcher: PathBuf,
    env: Vec<(String, String)>,
    pub admins: HashMap<&'static str, String>,
    pub api: String,
    pub secret: String,
    processes: HashMap<&'static str, Binary>,
}

/// A port free now, below 32768 (Linux never hands those out as a client's local port, so a
/// restarted service finds its port still free).
fn free_port() -> u16 {
    free_ports(1)
}

/// The first of `count` consecutive free ports (below 32768, as [`free_port`]).
fn free_ports(count: u16) -> u16 {
    let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    let random = || {
        let ephemeral = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr());
        ephemeral.map_or(0, |addr| addr.port())
    };
    (0..1000)
        .map(|_| 20_000 + random() % 12_000)
        .find(|&first| (0..count).all(|i| free(first + i)))
        .expect("free ports")
}

/// Broker ports base..base+2 and controller ports base+100..base+102, all free now.
fn free_base_port() -> u16 {
    let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    (0..1000)
        .map(|_| free_ports(3))
        .find(|&base| (100..103).all(|i| free(base + i)))
        .expect("three free broker and controller ports")
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl Stack {
    /// Starts the cluster, the registry and the services; returns once every `/ready` is 200.
    pub async fn start(launcher: &Path) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(unique("chaos"));
        std::fs::create_dir_all(&dir)?;
        let mut stack = Self {
            base_port: free_base_port(),
            registry_addr: format!("127.0.0.1:{}", free_port()),
            launcher: launcher.to_owned(),
            env: Vec::new(),
            admins: HashMap::new(),
            api: String::new(),
            secret: auth::dev::random_secret()?,
            processes: HashMap::new(),
            dir,
        };
        stack.kafka(&["start", "--cluster", "--fresh"])?;
        stack.registry(&["start"])?;
        let api_addr = format!("127.0.0.1:{}", free_port());
        stack.api = format!("http://{api_addr}");
        let mut env = vec![
            ("KAFKA_BOOTSTRAP_SERVERS".to_owned(), stack.bootstrap()),
            ("SCHEMA_REGISTRY_URL".to_owned(), format!("http://{}", stack.registry_addr)),
            ("KAFKA_TOPIC_REPLICATION_FACTOR".to_owned(), "3".to_owned()),
            ("BLOB_DIR".to_owned(), stack.dir.join("blobs").display().to_string()),
            ("BLOB_MIN_FREE_BYTES".to_owned(), "0".to_owned()),
            ("GATEWAY_JWT_SECRET".to_owned(), stack.secret.clone()),
            ("GATEWAY_HTTP_ADDR".to_owned(), api_addr),
            ("GATEWAY_RATE_LIMIT_PER_SECOND".to_owned(), "0".to_owned()),
            ("SHUTDOWN_DRAIN_SECS".to_owned(), super::stop::DRAIN.as_secs().to_string()),
        ];
        for (service, variable) in SERVICES.iter().zip([
            "USER_SERVICE_ADMIN_ADDR",
            "IMPORT_WORKER_ADMIN_ADDR",
            "EXPORT_WORKER_ADMIN_ADDR",
            "GATEWAY_ADMIN_ADDR",
        ]) {
            let addr = format!("127.0.0.1:{}", free_port());
            stack.admins.insert(service, format!("http://{addr}"));
            env.push((variable.to_owned(), addr));
        }
        stack.env = env;
        for service in SERVICES {
            stack.spawn(service);
        }
        stack.all_ready(Duration::from_secs(120)).await?;
        Ok(stack)
    }

    pub fn bootstrap(&self) -> String {
        (0..3).map(|i| format!("127.0.0.1:{}", self.base_port + i)).collect::<Vec<_>>().join(",")
    }

    /// The Kafka client settings of the harness's own readers.
    pub fn kafka_config(&self) -> platform::KafkaConfig {
        let mut config = platform::KafkaConfig::from_env().expect("KAFKA_* variables parse");
        config.bootstrap_servers = self.bootstrap();
        config
    }

    pub fn registry_url(&self) -> String {
        format!("http://{}", self.registry_addr)
    }

    fn script(&self, script: &str, args: &[&str]) -> anyhow::Result<()> {
        let output = Command::new(repo().join(script))
            .args(args)
            .env("KAFKA_DATA_DIR", self.dir.join("kafka"))
            .env("KAFKA_CLUSTER_BASE_PORT", self.base_port.to_string())
            .env("KAFKA_BOOTSTRAP_SERVERS", self.bootstrap())
            .env("KAFKA_TOPIC_REPLICATION_FACTOR", "3")
            .env("SCHEMA_REGISTRY_DIR", self.dir.join("registry"))
            .env("SCHEMA_REGISTRY_HTTP_ADDR", &self.registry_addr)
            .output()?;
        anyhow::ensure!(
            output.status.success(),
            "{script} {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).lines().rev().take(5).collect::<Vec<_>>().join(" / ")
        );
        Ok(())
    }

    /// `deploy/kafka/kafka.sh <args>` on this stack's cluster.
    pub fn kafka(&self, args: &[&str]) -> anyhow::Result<()> {
        self.script("deploy/kafka/kafka.sh", args)
    }

    /// `deploy/kafka/kafka.sh node <action> <node>`.
    pub fn node(&self, action: &str, node: i32) -> anyhow::Result<()> {
        self.kafka(&["node", action, &node.to_string()])
    }

    /// `deploy/schema-registry.sh <args>` on this stack's registry.
    pub fn registry(&self, args: &[&str]) -> anyhow::Result<()> {
        self.script("deploy/schema-registry.sh", args)
    }

    /// SIGKILL to the registry (its pid file is the script's).
    pub fn kill_registry(&self) -> anyhow::Result<()> {
        let pid = std::fs::read_to_string(self.dir.join("registry/registry.pid"))?;
        let status = Command::new("kill").args(["-KILL", pid.trim()]).status()?;
        anyhow::ensure!(status.success(), "kill -KILL {pid} failed");
        Ok(())
    }

    pub fn spawn(&mut self, service: &'static str) {
        let mut env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.push(("SYSTEM_TEST_SERVICE", service));
        if service == "user-service" {
            // The consumer group's and the transactions' own account, for a stall after a fault
            // (see `save_logs`).
            env.extend([("KAFKA_DEBUG", "cgrp,eos"), ("RUST_LOG", "info,librdkafka=debug")]);
        }
        let launcher = self.launcher.display().to_string();
        self.processes.insert(service, Binary::spawn(&launcher, &env));
    }

    /// SIGKILL to `service`, and once it is gone, a new process in its place (as an
    /// orchestrator restarts a crashed service: started before the old one had died, the new
    /// one found its ports still taken).
    pub async fn kill_and_restart(&mut self, service: &'static str) -> anyhow::Result<()> {
        self.running(service)?;
        if let Some(process) = self.processes.remove(service) {
            process.kill_hard();
            process.wait_exit(Duration::from_secs(30)).await;
        }
        self.spawn(service);
        Ok(())
    }

    /// An error naming `service`, its last log lines and where its logs are saved if it has
    /// exited on its own.
    fn running(&mut self, service: &str) -> anyhow::Result<()> {
        let exited = self.processes.get_mut(service).is_some_and(|process| !process.is_running());
        if exited {
            anyhow::bail!("{}\nevery log: {}", self.exited().join("\n"), self.save_logs("exited"));
        }
        Ok(())
    }

    /// SIGTERM to `service`, as an orchestrator stopping it; once it has exited, a new process in
    /// its place. What the stop took and where its consumers had applied up to (its logs).
    pub async fn stop_and_restart(&mut self, service: &'static str) -> anyhow::Result<StopCheck> {
        self.running(service)?;
        let process = self.processes.remove(service).ok_or_else(|| anyhow::anyhow!("{service} is not running"))?;
        let started = Instant::now();
        process.terminate();
        // Past the bound the service must have given up by itself; the wait is longer only so
        // that a stop past it is measured, not cut short.
        let exit = process.wait_exit(super::stop::DRAIN * 3).await;
        let took = started.elapsed();
        self.spawn(service);
        Ok(StopCheck {
            took,
            clean: exit.status.success(),
            applied: super::stop::applied(&exit.logs),
            redelivered: None,
        })
    }

    /// Where the running `service` started reading each partition (see [`super::stop::resumed`]).
    pub fn resumed(&self, service: &str) -> super::stop::Positions {
        self.processes.get(service).map(|process| super::stop::resumed(&process.logs())).unwrap_or_default()
    }

    /// The services that exited, each with its last log lines: what to show when one is not
    /// ready.
    pub fn exited(&mut self) -> Vec<String> {
        let mut exited = Vec::new();
        for (service, process) in &mut self.processes {
            if !process.is_running() {
                let logs = process.logs();
                let last = logs.iter().rev().take(20).rev().cloned().collect::<Vec<_>>().join("\n  ");
                let status = process.status().map_or_else(|| "?".to_owned(), |status| status.to_string());
                let stderr = process.stderr();
                exited.push(format!(
                    "{service} exited on its own ({status}); its stderr: {stderr:?}; its last log lines:\n  {last}"
                ));
            }
        }
        exited
    }

    /// Each service's last `n` warnings and errors: what to show when a fault was not
    /// recovered from.
    pub fn warnings(&self, n: usize) -> String {
        let mut shown = String::new();
        for (service, process) in &self.processes {
            let logs = process.logs();
            let warnings: Vec<&String> =
                logs.iter().filter(|line| line.contains(" WARN ") || line.contains(" ERROR ")).collect();
            let last = warnings[warnings.len().saturating_sub(n)..].iter().map(|l| l.as_str()).collect::<Vec<_>>();
            shown.push_str(&format!("  {service}'s last warnings and errors:\n    {}\n", last.join("\n    ")));
        }
        shown
    }

    /// Writes every running service's whole log to `target/chaos-logs/<label>-<id>/<service>.log`;
    /// returns the directory (what to read when a fault was not recovered from).
    pub fn save_logs(&self, label: &str) -> String {
        let dir = repo().join("target/chaos-logs").join(unique(label));
        let saved = std::fs::create_dir_all(&dir).and_then(|()| {
            self.processes.iter().try_for_each(|(service, process)| {
                std::fs::write(dir.join(format!("{service}.log")), process.logs().join("\n"))
            })
        });
        match saved {
            Ok(()) => dir.display().to_string(),
            Err(error) => format!("(the logs could not be saved in {}: {error})", dir.display()),
        }
    }

    /// Waits until every service's `/ready` answers 200.
    pub async fn all_ready(&self, within: Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
        for (service, admin) in &self.admins {
            let ready = poll(within, || async {
                let answer = client.get(format!("{admin}/ready")).send().await.ok()?;
                answer.status().is_success().then_some(())
            })
            .await;
            if ready.is_none() {
                let report = match client.get(format!("{admin}/ready")).send().await {
                    Ok(answer) => answer.text().await.unwrap_or_default(),
                    Err(error) => error.to_string(),
                };
                let logs = self.save_logs("not-ready");
                anyhow::bail!(
                    "{service} not ready within {within:?}: {report}\n{}\nevery log: {logs}",
                    self.warnings(40)
                );
            }
        }
        Ok(())
    }

    fn metadata(&self) -> anyhow::Result<Metadata> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("log.connection.close", "false")
            .create()?;
        Ok(consumer.fetch_metadata(None, Duration::from_secs(10))?)
    }

    /// The node leading `partition` of `topic`.
    pub fn leader(&self, topic: &str, partition: i32) -> anyhow::Result<i32> {
        let metadata = self.metadata()?;
        let found = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic)
            .flat_map(|t| t.partitions())
            .find(|p| p.id() == partition)
            .map(|p| p.leader());
        found.filter(|&leader| leader >= 0).ok_or_else(|| anyhow::anyhow!("no leader for {topic}/{partition}"))
    }

    /// The node hosting the coordinator of `transactional_id`: the leader of its partition of
    /// `__transaction_state` (Kafka's `abs(id.hashCode()) % partitions`).
    pub fn transaction_coordinator(&self, transactional_id: &str) -> anyhow::Result<i32> {
        let metadata = self.metadata()?;
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == "__transaction_state")
            .map(|t| t.partitions().len())
            .filter(|&n| n > 0)
            .ok_or_else(|| anyhow::anyhow!("no __transaction_state topic"))?;
        let partition = java_abs(java_hash(transactional_id)) % i32::try_from(partitions)?;
        self.leader("__transaction_state", partition)
    }

    /// Waits until every partition of every topic has all three replicas in sync again.
    pub async fn fully_replicated(&self, within: Duration) -> anyhow::Result<()> {
        let under = || -> anyhow::Result<Vec<String>> {
            let metadata = self.metadata()?;
            let partitions = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(move |p| (t.name(), p)));
            let under = partitions.filter(|(_, p)| p.isr().len() < 3);
            Ok(under.map(|(topic, p)| format!("{topic}/{} isr {:?}", p.id(), p.isr())).collect())
        };
        let done = poll(within, || async { under().ok().filter(Vec::is_empty) }).await;
        match done {
            Some(_) => Ok(()),
            None => anyhow::bail!("under-replicated after {within:?}: {}", under()?.join(", ")),
        }
    }

    /// Stops the services still running (SIGTERM), then the registry and the cluster (see
    /// `Drop`).
    pub async fn stop(mut self) {
        for (_, mut process) in self.processes.drain() {
            if !process.is_running() {
                continue;
            }
            process.terminate();
            let _ = tokio::time::timeout(Duration::from_secs(60), process.wait_exit(Duration::from_secs(60))).await;
        }
    }
}

/// However the run ends (its end, an error, a panic, Ctrl-C dropping it), the registry and the
/// cluster stop and their data goes; the services die with their `Binary` (kill on drop).
impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.registry(&["stop"]);
        let _ = self.kafka(&["stop", "--cluster"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Java's `String.hashCode` (over UTF-16 code units, wrapping).
fn java_hash(text: &str) -> i32 {
    text.encode_utf16().fold(0i32, |hash, unit| hash.wrapping_mul(31).wrapping_add(i32::from(unit)))
}

/// Kafka's `Utils.abs`: `Integer.MIN_VALUE` maps to 0.
fn java_abs(n: i32) -> i32 {
    if n == i32::MIN { 0 } else { n.abs() }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hashes_as_java_does() {
        // "user-service".hashCode() in Java.
        assert_eq!(super::java_hash("user-service"), -2_026_333_517);
        assert_eq!(super::java_hash(""), 0);
        assert_eq!(super::java_abs(i32::MIN), 0);
    }
}
