//! The system under measurement: fresh Kafka and schema registry started by the project's own
//! scripts, and the release builds of the four services as processes, on ports of their own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

// Below 32768: Linux hands out 32768-60999 as clients' local ports, and a broker cannot bind a
// port that an outgoing connection happens to hold.
const KAFKA_PORT: u16 = 27092;
const REGISTRY_PORT: u16 = 27081;
const GATEWAY_PORT: u16 = 27000;
const SERVICES: [(&str, &str, u16); 4] = [
    ("api-gateway", "GATEWAY_ADMIN_ADDR", 27100),
    ("user-service", "USER_SERVICE_ADMIN_ADDR", 27101),
    ("import-worker", "IMPORT_WORKER_ADMIN_ADDR", 27102),
    ("export-worker", "EXPORT_WORKER_ADMIN_ADDR", 27103),
];

/// How long a service is left idle before its memory is read: past jemalloc's decay time
/// (`dirty_decay_ms`, 10 s), over which its background threads return what a burst freed.
/// Read earlier, the figure still holds part of the last burst (an export's buffers, a
/// rebuild's): 5 s left about half of it.
const IDLE: Duration = Duration::from_secs(12);

/// The services that hold users, in the order their digests are printed.
pub(crate) const HOLDING_USERS: [&str; 3] = ["user-service", "api-gateway", "export-worker"];

fn service(name: &str) -> anyhow::Result<(&'static str, &'static str, u16)> {
    SERVICES.into_iter().find(|(n, _, _)| *n == name).with_context(|| format!("no service {name}"))
}

/// The bare server of the reads' ceiling, killed when dropped.
#[derive(Debug)]
pub(crate) struct Ceiling {
    pub(crate) addr: std::net::SocketAddr,
    _child: Child,
}

pub(crate) struct System {
    dir: PathBuf,
    children: Vec<(&'static str, Child)>,
}

fn script_env(dir: &Path) -> Vec<(String, String)> {
    [
        ("KAFKA_DATA_DIR", dir.join("kafka").display().to_string()),
        ("KAFKA_PORT", KAFKA_PORT.to_string()),
        ("KAFKA_CONTROLLER_PORT", (KAFKA_PORT + 1).to_string()),
        ("KAFKA_BOOTSTRAP_SERVERS", format!("127.0.0.1:{KAFKA_PORT}")),
        ("SCHEMA_REGISTRY_DIR", dir.join("registry").display().to_string()),
        ("SCHEMA_REGISTRY_HTTP_ADDR", format!("127.0.0.1:{REGISTRY_PORT}")),
        ("SCHEMA_REGISTRY_URL", format!("http://127.0.0.1:{REGISTRY_PORT}")),
        ("SCHEMA_REGISTRY_BIN", "target/release/schema-registry".into()),
        ("BLOB_DIR", dir.join("blobs").display().to_string()),
        ("GATEWAY_HTTP_ADDR", format!("127.0.0.1:{GATEWAY_PORT}")),
        ("GATEWAY_COMMAND_TIMEOUT_MS", "30000".into()),
        // The bench measures the system, not its protection against abusive clients.
        ("GATEWAY_RATE_LIMIT_PER_SECOND", "0".into()),
        ("GATEWAY_MAX_CONCURRENT_REQUESTS", "0".into()),
        ("GATEWAY_JWT_SECRET_FILE", dir.join("jwt-secret").display().to_string()),
        ("RUST_LOG", "warn,platform=info,import_worker=info,export_worker=info,user_service=info".into()),
        // Compaction within seconds, so the churn bench can wait for the log cleaner.
        ("KAFKA_STATE_COMPACTION_LAG_MS", "10000".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

async fn script(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("bash").args(args).envs(script_env(dir)).status().await?;
    if !status.success() {
        bail!("{} failed ({status})", args.join(" "));
    }
    Ok(())
}

impl System {
    /// An HTTP client carrying an admin token the bench's gateway accepts.
    pub(crate) fn client(&self) -> anyhow::Result<reqwest::Client> {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, self.authorization()?.to_str()?.parse()?);
        Ok(reqwest::Client::builder().default_headers(headers).build()?)
    }

    pub(crate) async fn start(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let dir = std::fs::canonicalize(dir)?;
        let _ = std::fs::remove_dir_all(dir.join("blobs"));
        auth::dev::secret_file(&dir.join("jwt-secret"))?;
        script(&dir, &["deploy/kafka/kafka.sh", "start", "--fresh"]).await?;
        let mut system = Self { dir: dir.clone(), children: Vec::new() };
        if let Err(error) = system.start_services().await {
            system.stop().await;
            return Err(error);
        }
        Ok(system)
    }

    async fn start_services(&mut self) -> anyhow::Result<()> {
        script(&self.dir, &["deploy/schema-registry.sh", "start"]).await?;
        for (name, _, _) in SERVICES {
            self.spawn(name)?;
        }
        for (name, _, _) in SERVICES {
            self.wait_ready(name).await?;
        }
        Ok(())
    }

    fn spawn(&mut self, name: &'static str) -> anyhow::Result<()> {
        let (_, admin_env, admin_port) = service(name)?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(format!("{name}.log")))?;
        let child = Command::new(format!("target/release/{name}"))
            .envs(script_env(&self.dir))
            .env(admin_env, format!("127.0.0.1:{admin_port}"))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start target/release/{name}: run `cargo build --release` first"))?;
        self.children.retain(|(n, _)| *n != name);
        self.children.push((name, child));
        Ok(())
    }

    async fn wait_ready(&self, name: &str) -> anyhow::Result<()> {
        let (_, _, admin_port) = service(name)?;
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
        loop {
            let ready = client.get(format!("http://127.0.0.1:{admin_port}/ready")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("{name} not ready after 300s; see {}", self.dir.join(format!("{name}.log")).display());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops `names` (SIGTERM, then waits for them to exit), starts them again and returns how
    /// long they took, from their start, to be ready.
    pub(crate) async fn restart(&mut self, names: &[&'static str]) -> anyhow::Result<Duration> {
        for (_, child) in self.children.iter_mut().filter(|(n, _)| names.contains(n)) {
            if let Some(pid) = child.id() {
                Command::new("kill").args(["-TERM", &pid.to_string()]).status().await?;
            }
            tokio::time::timeout(Duration::from_secs(60), child.wait()).await.context("a service did not stop")??;
        }
        let started = std::time::Instant::now();
        for name in names {
            self.spawn(name)?;
        }
        for name in names {
            self.wait_ready(name).await?;
        }
        Ok(started.elapsed())
    }

    /// The resident memory of a service now (VmRSS, KiB).
    pub(crate) fn rss(&self, name: &str) -> Option<u64> {
        let pid = self.children.iter().find(|(n, _)| *n == name)?.1.id()?;
        proc_status(pid, "VmRSS:")
    }

    /// The digests of the services holding users, once their positions agree (or after 60 s).
    pub(crate) async fn digests(&self, client: &reqwest::Client) -> anyhow::Result<Vec<serde_json::Value>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let mut digests = Vec::new();
            for name in HOLDING_USERS {
                let (_, _, port) = service(name)?;
                digests.push(client.get(format!("http://127.0.0.1:{port}/digest")).send().await?.json().await?);
            }
            let same = digests.windows(2).all(|p: &[serde_json::Value]| p[0]["positions"] == p[1]["positions"]);
            if same || tokio::time::Instant::now() > deadline {
                return Ok(digests);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// How many records `users.state` holds now (read committed): what compaction leaves.
    pub(crate) async fn state_records(&self) -> anyhow::Result<u64> {
        let mut kafka = platform::KafkaConfig::from_env()?;
        kafka.bootstrap_servers = format!("127.0.0.1:{KAFKA_PORT}");
        let (count, _) = platform::kafka::replay(&kafka, "users.state", 0u64, |n, _| *n += 1).await?;
        Ok(count)
    }

    /// Each service's resident memory once it has been idle for a while (KiB).
    pub(crate) async fn idle_rss(&self) -> BTreeMap<String, u64> {
        tokio::time::sleep(IDLE).await;
        SERVICES.iter().filter_map(|(name, _, _)| Some(((*name).to_owned(), self.rss(name)?))).collect()
    }

    /// `service`'s resident memory once it has been idle for a while (KiB).
    pub(crate) async fn idle_rss_of(&self, service: &str) -> Option<u64> {
        tokio::time::sleep(IDLE).await;
        self.rss(service)
    }

    /// A JWT with the admin role that the bench's gateway accepts.
    fn token(&self) -> anyhow::Result<String> {
        let secret = auth::dev::secret_file(&self.dir.join("jwt-secret"))?;
        let claims = auth::dev::Claims::new("bench", auth::Role::Admin, std::time::Duration::from_secs(24 * 3600));
        Ok(auth::dev::sign(&secret, &claims)?)
    }

    /// The `Authorization` header carrying [`Self::token`].
    pub(crate) fn authorization(&self) -> anyhow::Result<hyper::header::HeaderValue> {
        Ok(format!("Bearer {}", self.token()?).parse()?)
    }

    /// Starts the bare server the reads are compared with (`ceiling`), holding a copy of the
    /// gateway's users; stopped when dropped.
    pub(crate) async fn start_ceiling(&self) -> anyhow::Result<Ceiling> {
        let token = self.token()?;
        let mut child = Command::new("target/release/ceiling")
            .args(["--from", &self.gateway_url(), "--token", &token])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start target/release/ceiling: run `cargo build --release` first")?;
        let stdout = child.stdout.take().context("the ceiling's stdout")?;
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
        let ready = tokio::time::timeout(Duration::from_secs(600), lines.next_line())
            .await
            .context("the ceiling did not start within 10 minutes")??
            .context("the ceiling exited before it was ready")?;
        let addr = ready.strip_prefix("ready ").context("unexpected line from the ceiling")?.parse()?;
        Ok(Ceiling { addr, _child: child })
    }

    pub(crate) fn gateway_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], GATEWAY_PORT))
    }

    pub(crate) fn gateway_url(&self) -> String {
        format!("http://127.0.0.1:{GATEWAY_PORT}")
    }

    /// The number of users in the gateway's projection (its `projection_users` gauge).
    pub(crate) async fn gateway_projection_size(&self, client: &reqwest::Client) -> anyhow::Result<u64> {
        let (_, _, admin_port) = service("api-gateway")?;
        let metrics = client.get(format!("http://127.0.0.1:{admin_port}/metrics")).send().await?.text().await?;
        Ok(metrics
            .lines()
            .find_map(|l| l.strip_prefix("projection_users "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_default() as u64)
    }

    /// Every process of the system by name.
    fn pids(&self) -> BTreeMap<String, u32> {
        let mut pids: BTreeMap<String, u32> =
            self.children.iter().filter_map(|(name, child)| Some(((*name).to_owned(), child.id()?))).collect();
        for (name, pidfile) in
            [("kafka (JVM)", "kafka/single/node1/kafka.pid"), ("schema-registry", "registry/registry.pid")]
        {
            if let Some(pid) = std::fs::read_to_string(self.dir.join(pidfile)).ok().and_then(|p| p.trim().parse().ok())
            {
                pids.insert(name.to_owned(), pid);
            }
        }
        pids
    }

    /// Per process: peak resident memory (VmHWM, KiB) and CPU time used so far (seconds).
    pub(crate) fn resources(&self) -> BTreeMap<String, (u64, f64)> {
        self.pids().into_iter().filter_map(|(name, pid)| Some((name, (vm_hwm(pid)?, cpu_seconds(pid)?)))).collect()
    }

    /// Kafka's own ProducerPerformance for `records` of `size` bytes; returns records/s.
    pub(crate) async fn kafka_producer_perf(&self, records: u64, size: usize) -> anyhow::Result<f64> {
        script(
            &self.dir,
            &["deploy/kafka/kafka.sh", "tool", "topics", "--create", "--topic", "bench-perf", "--partitions", "6"],
        )
        .await?;
        let output = Command::new("bash")
            .args(["deploy/kafka/kafka.sh", "tool", "producer-perf-test", "--topic", "bench-perf"])
            .args(["--num-records", &records.to_string(), "--record-size", &size.to_string(), "--throughput", "-1"])
            .args(["--producer-props", &format!("bootstrap.servers=127.0.0.1:{KAFKA_PORT}")])
            .args(["acks=all", "enable.idempotence=true", "linger.ms=5", "compression.type=lz4"])
            .envs(script_env(&self.dir))
            .output()
            .await?;
        let text = String::from_utf8_lossy(&output.stdout);
        let last = text.lines().rev().find(|l| l.contains("records sent")).context("no summary from the perf test")?;
        let rate = last.split(',').nth(1).and_then(|p| p.split_whitespace().next()).context("unexpected summary")?;
        Ok(rate.parse()?)
    }

    pub(crate) async fn stop(mut self) {
        for (_, child) in &self.children {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
            }
        }
        for (_, child) in &mut self.children {
            let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
        }
        let _ = script(&self.dir, &["deploy/schema-registry.sh", "stop"]).await;
        let _ = script(&self.dir, &["deploy/kafka/kafka.sh", "stop"]).await;
    }
}

/// User + system CPU time of a process, from /proc (clock ticks of 1/100 s on Linux).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn vm_hwm(pid: u32) -> Option<u64> {
    proc_status(pid, "VmHWM:")
}

/// A `/proc/<pid>/status` figure in KiB (`VmHWM:`, `VmRSS:`).
fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix(field)).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The size of one typical user event as it travels (Confluent header + Avro datum).
pub(crate) fn event_record_size() -> usize {
    use domain::event::{Event, EventEnvelope};
    use domain::time::Timestamp;
    use domain::user::{Age, Email, Locale, Name, User};
    let now = Timestamp::now();
    let user = User {
        id: uuid::Uuid::now_v7(),
        email: Email::parse("katherine.johnson.123456@mail.example.net").expect("valid"),
        name: Name::parse("Katherine Johnson").expect("valid"),
        age: Age::parse(42).ok(),
        created_at: now,
        updated_at: now,
        version: 1,
        locale: Locale::parse("en-US").ok(),
    };
    let event = EventEnvelope {
        event_id: uuid::Uuid::now_v7(),
        command_id: uuid::Uuid::now_v7(),
        correlation_id: uuid::Uuid::now_v7(),
        occurred_at: now,
        principal: Some("jwt:bench".into()),
        event: Event::Created(user),
    };
    let record = contract::events::UserEvent::try_from(event).expect("a valid event maps");
    let mut datum = Vec::new();
    contract::codec::Encode::encode(&record, &mut datum);
    5 + datum.len()
}
