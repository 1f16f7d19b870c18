//! Helpers for integration tests against the real local broker (`just infra-up`): unique names,
//! waiting on a condition with a deadline, and driving a service binary as a user would.

use std::future::Future;
use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncBufReadExt, AsyncReadExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::config::KafkaConfig;

/// The local broker's settings (`KAFKA_BOOTSTRAP_SERVERS` or 127.0.0.1:9092), failing loudly
/// with the fix when no broker answers.
pub async fn kafka() -> KafkaConfig {
    init_logs();
    let config = KafkaConfig::from_env().expect("KAFKA_* variables parse");
    if let Err(error) = crate::kafka::check_connection(&config).await {
        panic!("{error}\nThe integration tests need the local broker: run `just infra-up` (or `just test`).");
    }
    config
}

/// Test logs through the test harness's capture (shown for failing tests); `RUST_LOG` filters.
/// Spans pass trace context on as in a service, and are exported nowhere.
pub fn init_logs() {
    use tracing_subscriber::util::SubscriberInitExt as _;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let writer = tracing_subscriber::fmt::TestWriter::new();
    let _ = crate::telemetry::subscriber(crate::config::LogFormat::Text, writer, false, &provider, "test").try_init();
}

/// `prefix` plus a random suffix: fresh topics and groups for every test.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Polls `probe` until it yields a value, panicking with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let found = poll(timeout, probe).await;
    found.unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Polls `probe` until it yields a value; `None` once `timeout` has passed without one (for
/// callers that report a wait that failed rather than panic).
pub async fn poll<T, F, Fut>(timeout: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A service binary started as a child process. Its stdout (the logs) is drained continuously
/// into memory, so a chatty child never blocks on a full pipe.
#[derive(Debug)]
pub struct Binary {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    /// Reads stdout into `logs` until the process closes it.
    reader: tokio::task::JoinHandle<()>,
    /// What it wrote on stderr (drained as it comes, like stdout).
    stderr: Arc<Mutex<String>>,
    /// Reads stderr into `stderr` until the process closes it.
    stderr_reader: tokio::task::JoinHandle<()>,
    /// How many lines `wait_for_log` has looked at.
    cursor: usize,
}

/// How a binary ended.
#[derive(Debug)]
pub struct Exit {
    pub status: ExitStatus,
    pub stderr: String,
    /// Every line it logged (stdout), to its last.
    pub logs: Vec<String>,
}

impl Binary {
    pub fn spawn(path: &str, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(path)
            .envs(env.iter().copied())
            .env("LOG_FORMAT", "text")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {path}: {e}"));
        let mut stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        let reader = tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                sink.lock().unwrap_or_else(PoisonError::into_inner).push(line);
            }
        });
        let mut pipe = child.stderr.take().expect("piped");
        let stderr = Arc::new(Mutex::new(String::new()));
        let errors = Arc::clone(&stderr);
        let stderr_reader = tokio::spawn(async move {
            let mut chunk = [0u8; 4096];
            while let Ok(read @ 1..) = pipe.read(&mut chunk).await {
                errors
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push_str(&String::from_utf8_lossy(&chunk[..read]));
            }
        });
        Self { child, logs, reader, stderr, stderr_reader, cursor: 0 }
    }

    /// Waits until a log line (after those already matched) contains `needle`; returns it.
    pub async fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> String {
        let logs = Arc::clone(&self.logs);
        let start = self.cursor;
        let found = tokio::time::timeout(timeout, async {
            loop {
                let hit = {
                    let lines = logs.lock().unwrap_or_else(PoisonError::into_inner);
                    lines.iter().enumerate().skip(start).find(|(_, l)| l.contains(needle)).map(|(i, l)| (i, l.clone()))
                };
                if let Some(hit) = hit {
                    return hit;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        match found {
            Ok((index, line)) => {
                self.cursor = index + 1;
                line
            }
            Err(_) => {
                let lines = self.logs.lock().unwrap_or_else(PoisonError::into_inner).join("\n");
                panic!("no log line containing {needle:?} within {timeout:?}; logs so far:\n{lines}")
            }
        }
    }

    /// Every line logged so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The address printed after `<label> listening on http://`.
    pub async fn listening_addr(&mut self, label: &str) -> SocketAddr {
        let marker = format!("{label} listening on http://");
        let line = self.wait_for_log(&marker, Duration::from_secs(60)).await;
        let rest = &line[line.find(&marker).expect("contains marker") + marker.len()..];
        let addr = rest.split_whitespace().next().unwrap_or_default();
        addr.parse().unwrap_or_else(|e| panic!("bad address {addr:?} in {line:?}: {e}"))
    }

    /// Sends SIGTERM, as an orchestrator stopping the service would.
    pub fn terminate(&self) {
        self.signal("-TERM");
    }

    /// Whether the process has not exited (yet).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// How the process ended, once it has.
    pub fn status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends SIGKILL: a crash, nothing flushed or committed.
    pub fn kill_hard(&self) {
        self.signal("-KILL");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("signalled while running (check `is_running` first)").to_string();
        let status = std::process::Command::new("kill").args([signal, &pid]).status().expect("kill runs");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// Waits for the process to end (panicking after `timeout`, i.e. a hang).
    pub async fn wait_exit(mut self, timeout: Duration) -> Exit {
        let status = tokio::time::timeout(timeout, async {
            let (status, _, _) = tokio::join!(self.child.wait(), &mut self.reader, &mut self.stderr_reader);
            status
        })
        .await
        .unwrap_or_else(|_| panic!("the process did not exit within {timeout:?} (a hang)"))
        .expect("wait succeeds");
        Exit { status, stderr: self.stderr(), logs: self.logs() }
    }

    /// What the process wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// GETs `url` and returns the status code and the body.
pub async fn get_text(url: &str) -> (u16, String) {
    let answer = reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    (answer.status().as_u16(), answer.text().await.unwrap_or_default())
}

/// GETs `url` and returns the status code.
pub async fn get_status(url: &str) -> u16 {
    reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}")).status().as_u16()
}

/// The lifecycle every service binary must honour, as tests: it starts against the local broker,
/// serves `/health`, `/ready` and `/metrics` on the listener it logs as `<label> listening on
/// http://...`, stops cleanly on SIGTERM; an unreachable broker or a malformed setting ends it
/// with one clear line on stderr.
///
/// `service_lifecycle_tests!(env!("CARGO_BIN_EXE_x"), "X_ADMIN_ADDR", "admin (health, ready, metrics)", [("OTHER", "v"), ...])`
#[macro_export]
macro_rules! service_lifecycle_tests {
    ($bin:expr, $admin_env:literal, $label:literal, [$(($k:literal, $v:literal)),* $(,)?]) => {
        fn lifecycle_env(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
            let mut env = vec![($admin_env, "127.0.0.1:0") $(, ($k, $v))*];
            env.extend_from_slice(extra);
            env
        }

        #[tokio::test]
        async fn starts_serves_health_and_stops_cleanly_on_sigterm() {
            $crate::testing::kafka().await;
            let mut service = $crate::testing::Binary::spawn($bin, &lifecycle_env(&[]));
            let admin = service.listening_addr($label).await;
            // Answered from the start; ready once started.
            let health = $crate::testing::get_status(&format!("http://{admin}/health")).await;
            assert_eq!(health, 200, "/health");
            $crate::testing::eventually("/ready", std::time::Duration::from_secs(60), || async {
                ($crate::testing::get_status(&format!("http://{admin}/ready")).await == 200).then_some(())
            })
            .await;
            let metrics = $crate::testing::get_status(&format!("http://{admin}/metrics")).await;
            assert_eq!(metrics, 200, "/metrics");
            service.terminate();
            let exit = service.wait_exit(std::time::Duration::from_secs(30)).await;
            assert!(exit.status.success(), "exit {:?}, stderr: {}", exit.status, exit.stderr);
        }

        #[tokio::test]
        async fn an_unreachable_broker_ends_the_process_with_one_clear_line() {
            let mut service = $crate::testing::Binary::spawn(
                $bin,
                &lifecycle_env(&[("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1"), ("KAFKA_STARTUP_TIMEOUT_MS", "4000")]),
            );
            // Meanwhile, the admin listener says what the service waits for.
            let admin = service.listening_addr($label).await;
            let (status, report) = $crate::testing::get_text(&format!("http://{admin}/ready")).await;
            assert_eq!(status, 503, "{report}");
            assert!(report.contains("connecting"), "{report}");
            let exit = service.wait_exit(std::time::Duration::from_secs(30)).await;
            assert_eq!(exit.status.code(), Some(1), "stderr: {}", exit.stderr);
            let lines: Vec<&str> = exit.stderr.lines().collect();
            assert_eq!(lines.len(), 1, "stderr: {}", exit.stderr);
            assert!(lines[0].contains("cannot reach Kafka at 127.0.0.1:1"), "{}", lines[0]);
        }

        #[tokio::test]
        async fn a_malformed_setting_ends_the_process_with_one_clear_line() {
            let service = $crate::testing::Binary::spawn($bin, &lifecycle_env(&[("KAFKA_LINGER_MS", "soon")]));
            let exit = service.wait_exit(std::time::Duration::from_secs(30)).await;
            assert_eq!(exit.status.code(), Some(2), "stderr: {}", exit.stderr);
            let lines: Vec<&str> = exit.stderr.lines().collect();
            assert_eq!(lines.len(), 1, "stderr: {}", exit.stderr);
            assert!(lines[0].contains("invalid configuration") && lines[0].contains("'soon'"), "{}", lines[0]);
        }
    };
}
