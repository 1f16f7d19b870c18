//! A whole system for the system tests: user-service, gateways, an import and an export worker
//! in this process, on fresh topics, a fresh consumer group and a fresh blob directory, against
//! the real local broker and schema registry (`just infra-up`, or `just test`). The tests
//! themselves are in `tests/system/`; `src/bin/service.rs` runs any service as a process of its
//! own, for the tests that kill one.

pub mod chaos;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use platform::Shutdown;
use platform::kafka::topics::TopicsConfig;
use platform::service::Service;
use platform::testing::unique;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::task::JoinHandle;

/// A component running in a task of its own.
#[derive(Debug)]
pub struct Running {
    /// Its admin listener (`/ready`, `/metrics`, `/digest`).
    pub admin: String,
    shutdown: Shutdown,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Waits (up to `patience`) for it to end by itself, and returns how it ended.
    pub async fn ended(self, patience: Duration) -> anyhow::Result<()> {
        let ended = tokio::time::timeout(patience, self.task).await.expect("ends in time");
        ended.expect("no panic")
    }

    pub async fn stop(self) {
        self.shutdown.trigger();
        let result = tokio::time::timeout(Duration::from_secs(30), self.task).await;
        result.expect("stops within 30s").expect("no panic").expect("clean stop");
    }
}

#[derive(Debug)]
pub struct Gateway {
    pub url: String,
    running: Running,
}

impl Gateway {
    /// Its admin listener (`/ready`, `/metrics`, `/digest`).
    pub fn admin(&self) -> &str {
        &self.running.admin
    }

    pub async fn stop(self) {
        self.running.stop().await;
    }
}

#[derive(Debug)]
pub struct TestSystem {
    pub topics: TopicsConfig,
    pub group: String,
    pub options: Options,
    pub user_service: Option<Running>,
    pub import_worker: Option<Running>,
    pub export_worker: Option<Running>,
    pub gateway: Gateway,
    pub client: reqwest::Client,
}

/// How a test system differs from the defaults.
#[derive(Debug, Clone)]
pub struct Options {
    pub command_timeout: Duration,
    pub max_import_bytes: u64,
    /// Shared by the gateway and the import worker, fresh per system.
    pub blob_dir: PathBuf,
    pub import_worker: bool,
    pub export_worker: bool,
    /// How long the workers keep finished jobs (their defaults if not set).
    pub job_retention: Option<Duration>,
    /// How long the import worker waits for user-service's next answer (its default if not set).
    pub import_reply_timeout: Option<Duration>,
    /// The export worker's wait for its projection to reach a request's positions, and its
    /// retry budget (their defaults if not set).
    pub export_catch_up_timeout: Option<Duration>,
    pub export_retry_attempts: Option<u32>,
    /// The HS256 secret the system's gateways verify tokens with, fresh per system.
    pub jwt_secret: String,
    /// The gateways' limits: the defaults, without the rate limit (tests call fast).
    pub limits: api_gateway::config::LimitsConfig,
    /// The request timeout of the gateways.
    pub request_timeout: Duration,
    /// Space the gateway keeps free on the blob disk (none: tests must not depend on the
    /// machine's free space).
    pub blob_min_free_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            command_timeout: Duration::from_secs(10),
            max_import_bytes: 1 << 30,
            blob_dir: std::env::temp_dir().join(unique("test-blobs")),
            import_worker: false,
            export_worker: false,
            job_retention: None,
            import_reply_timeout: None,
            export_catch_up_timeout: None,
            export_retry_attempts: None,
            jwt_secret: auth::dev::random_secret().expect("random bytes"),
            limits: api_gateway::config::LimitsConfig {
                rate_limit_per_second: 0,
                ..api_gateway::Config::try_parse_from(["api-gateway"]).expect("defaults").limits
            },
            request_timeout: Duration::from_secs(30),
            blob_min_free_bytes: 0,
        }
    }
}

/// A command creating `email`, as a client other than the gateway would send it.
pub fn create_command(email: &str, name: &str) -> domain::command::CommandEnvelope {
    use domain::command::{Command, CommandEnvelope, CreateUser};
    CommandEnvelope {
        command_id: uuid::Uuid::now_v7(),
        correlation_id: uuid::Uuid::now_v7(),
        requester: "test".into(),
        issued_at: domain::time::Timestamp::now(),
        principal: Some("test".into()),
        request_digest: None,
        command: Command::Create(CreateUser { email: email.into(), name: name.into(), age: None, locale: None }),
    }
}

/// A fresh name for a topic carrying `R`s.
pub fn fresh<R>(prefix: &str) -> platform::topic::TopicName<R> {
    unique(prefix).parse().expect("a valid topic name")
}

/// Fresh names for every topic of a system.
pub fn fresh_topics() -> TopicsConfig {
    let mut topics = api_gateway::Config::try_parse_from(["api-gateway"]).expect("defaults").common.topics;
    topics.user_commands = fresh("test-commands");
    topics.user_events = fresh("test-events");
    topics.user_state = fresh("test-state");
    topics.user_replies = fresh("test-replies");
    topics.import_requests = fresh("test-import-requests");
    topics.import_status = fresh("test-import-status");
    topics.export_requests = fresh("test-export-requests");
    topics.export_status = fresh("test-export-status");
    topics.dead_letters = unique("test-dlq");
    topics
}

impl TestSystem {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// A system whose gateway answers 202 after `command_timeout` without an outcome.
    pub async fn start_with_timeout(command_timeout: Duration) -> Self {
        Self::start_with(Options { command_timeout, ..Options::default() }).await
    }

    pub async fn start_with(options: Options) -> Self {
        Self::start_on(fresh_topics(), options).await
    }

    /// A system on `topics`, which may already hold records (history an older version wrote).
    pub async fn start_on(topics: TopicsConfig, options: Options) -> Self {
        platform::testing::kafka().await;
        let admin = format!("Bearer {}", token(&options, auth::Role::Admin));
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, admin.parse().expect("a header value"));
        let client = reqwest::Client::builder().default_headers(headers).build().expect("a client");
        let group = unique("test-user-service");
        let user_service = Some(start_user_service(&topics, &group).await);
        let gateway = start_gateway(&topics, &options).await;
        let import_worker =
            if options.import_worker { Some(start_import_worker(&topics, &options).await) } else { None };
        let export_worker =
            if options.export_worker { Some(start_export_worker(&topics, &options).await) } else { None };
        Self { topics, group, options, user_service, import_worker, export_worker, gateway, client }
    }

    /// A token for `role`, accepted by this system's gateways (the client of
    /// [`TestSystem::call`] is an admin's).
    pub fn token(&self, role: auth::Role) -> String {
        token(&self.options, role)
    }

    /// Another user-service with this system's transactional id and consumer group: it
    /// fences the one running.
    pub async fn another_user_service(&self) -> Running {
        start_user_service(&self.topics, &self.group).await
    }

    /// The projection digests of user-service and the gateway (their `GET /digest`), once both
    /// report the same positions; panics if they do not within 30 s.
    pub async fn digests(&self) -> Vec<Value> {
        let admins = [self.user_service.as_ref().map(|r| r.admin.clone()), Some(self.gateway.admin().to_owned())];
        let admins: Vec<String> = admins.into_iter().flatten().collect();
        platform::testing::eventually("equal positions in every digest", Duration::from_secs(30), || async {
            let mut digests = Vec::new();
            for admin in &admins {
                let response = self.client.get(format!("{admin}/digest")).send().await.ok()?;
                digests.push(response.json::<Value>().await.ok()?);
            }
            digests.windows(2).all(|pair| pair[0]["positions"] == pair[1]["positions"]).then_some(digests)
        })
        .await
    }

    pub async fn stop_user_service(&mut self) {
        if let Some(running) = self.user_service.take() {
            running.stop().await;
        }
    }

    pub async fn start_user_service(&mut self) {
        assert!(self.user_service.is_none(), "already running");
        self.user_service = Some(start_user_service(&self.topics, &self.group).await);
    }

    pub async fn stop_import_worker(&mut self) {
        if let Some(running) = self.import_worker.take() {
            running.stop().await;
        }
    }

    pub async fn start_import_worker(&mut self) {
        assert!(self.import_worker.is_none(), "already running");
        self.import_worker = Some(start_import_worker(&self.topics, &self.options).await);
    }

    pub async fn stop_export_worker(&mut self) {
        if let Some(running) = self.export_worker.take() {
            running.stop().await;
        }
    }

    pub async fn start_export_worker(&mut self) {
        assert!(self.export_worker.is_none(), "already running");
        self.export_worker = Some(start_export_worker(&self.topics, &self.options).await);
    }

    /// Replaces the gateway by a fresh instance (rebuilding its projection).
    pub async fn restart_gateway(&mut self) {
        let fresh = start_gateway(&self.topics, &self.options).await;
        let old = std::mem::replace(&mut self.gateway, fresh);
        old.stop().await;
    }

    /// Another gateway instance on the same topics.
    pub async fn another_gateway(&self) -> Gateway {
        start_gateway(&self.topics, &self.options).await
    }

    /// The system's topics bound to their records and schemas, as a service binds them: for
    /// tests that write to or read from a topic directly, as another client would.
    pub async fn bound_topics(&self) -> platform::topic::Topics {
        let defaults = api_gateway::Config::try_parse_from(["api-gateway"]).expect("defaults").common;
        let registry = platform::registry::Registry::new(&defaults.registry, Duration::from_secs(10));
        platform::topic::Topics::bind(&self.topics, &registry).await.expect("the registry takes the schemas")
    }

    /// The environment an import-worker or export-worker process needs to join this system.
    pub fn worker_env(&self) -> Vec<(&'static str, String)> {
        let t = &self.topics;
        vec![
            ("IMPORT_WORKER_ADMIN_ADDR", "127.0.0.1:0".into()),
            ("BLOB_DIR", self.options.blob_dir.display().to_string()),
            ("TOPIC_USER_COMMANDS", t.user_commands.to_string()),
            ("TOPIC_USER_EVENTS", t.user_events.to_string()),
            ("TOPIC_USER_STATE", t.user_state.to_string()),
            ("TOPIC_USER_REPLIES", t.user_replies.to_string()),
            ("TOPIC_IMPORT_REQUESTS", t.import_requests.to_string()),
            ("TOPIC_IMPORT_STATUS", t.import_status.to_string()),
            ("TOPIC_EXPORT_REQUESTS", t.export_requests.to_string()),
            ("TOPIC_EXPORT_STATUS", t.export_status.to_string()),
            ("TOPIC_DEAD_LETTERS", t.dead_letters.clone()),
            ("IMPORT_WORKER_CONSUMER_GROUP", format!("{}-imports", self.group)),
            ("EXPORT_WORKER_ADMIN_ADDR", "127.0.0.1:0".into()),
            ("EXPORT_WORKER_CONSUMER_GROUP", format!("{}-exports", self.group)),
            ("USER_SERVICE_ADMIN_ADDR", "127.0.0.1:0".into()),
            ("USER_SERVICE_CONSUMER_GROUP", self.group.clone()),
            ("USER_SERVICE_TRANSACTIONAL_ID", self.group.clone()),
        ]
    }

    pub async fn stop(self) {
        self.gateway.stop().await;
        for running in [self.import_worker, self.export_worker, self.user_service].into_iter().flatten() {
            running.stop().await;
        }
        let _ = std::fs::remove_dir_all(&self.options.blob_dir);
    }

    /// Sends a request to the gateway and returns status, headers and JSON body (Null if none).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        call(&self.client, &self.gateway.url, method, path, body, &[]).await
    }

    pub async fn call_with(&self, method: Method, path: &str, body: Option<Value>, headers: &[(&str, &str)]) -> Answer {
        call(&self.client, &self.gateway.url, method, path, body, headers).await
    }
}

#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    /// The fields named in a problem's `errors`.
    pub fn bad_fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|errors| errors.iter().map(|e| e["field"].as_str().unwrap_or_default().to_owned()).collect())
            .unwrap_or_default()
    }
}

pub async fn call(
    client: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = client.request(method, format!("{base}{path}"));
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body.to_string());
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("the gateway answers");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text}"))
    };
    Answer { status, headers, body }
}

async fn start_user_service(topics: &TopicsConfig, group: &str) -> Running {
    let mut config = user_service::Config::try_parse_from(["user-service"]).expect("defaults");
    config.admin_addr = "127.0.0.1:0".parse().expect("addr");
    config.common.topics = topics.clone();
    config.consumer_group = group.to_owned();
    // One writer per system: its own transactional id.
    config.transactional_id = group.to_owned();
    run(build::<user_service::Application>(config).await)
}

async fn start_gateway(topics: &TopicsConfig, options: &Options) -> Gateway {
    let mut config = api_gateway::Config::try_parse_from(["api-gateway"]).expect("defaults");
    config.http_addr = "127.0.0.1:0".parse().expect("addr");
    config.admin_addr = "127.0.0.1:0".parse().expect("addr");
    config.common.topics = topics.clone();
    config.command_timeout_ms = options.command_timeout.as_millis() as u64;
    config.max_import_bytes = options.max_import_bytes;
    config.blobs.dir = options.blob_dir.clone();
    config.blobs.min_free_bytes = options.blob_min_free_bytes;
    config.auth.jwt_secret = Some(auth::Secret::new(options.jwt_secret.clone()));
    config.limits = options.limits.clone();
    config.request_timeout_ms = options.request_timeout.as_millis() as u64;
    let built = build::<api_gateway::Application>(config).await;
    let url = format!("http://{}", built.0.http_addr());
    Gateway { url, running: run(built) }
}

async fn start_import_worker(topics: &TopicsConfig, options: &Options) -> Running {
    let mut config = import_worker::Config::try_parse_from(["import-worker"]).expect("defaults");
    config.admin_addr = "127.0.0.1:0".parse().expect("addr");
    config.common.topics = topics.clone();
    // Derived from the (unique) topic, so a restarted worker rejoins its group.
    config.consumer_group = format!("{}-worker", topics.import_requests);
    config.blobs.dir = options.blob_dir.clone();
    config.progress_interval_ms = 100;
    if let Some(keep) = options.job_retention {
        config.job_retention_secs = keep.as_secs();
    }
    if let Some(timeout) = options.import_reply_timeout {
        config.reply_timeout_secs = timeout.as_secs();
    }
    run(build::<import_worker::Application>(config).await)
}

async fn start_export_worker(topics: &TopicsConfig, options: &Options) -> Running {
    let mut config = export_worker::Config::try_parse_from(["export-worker"]).expect("defaults");
    config.admin_addr = "127.0.0.1:0".parse().expect("addr");
    config.common.topics = topics.clone();
    config.consumer_group = format!("{}-worker", topics.export_requests);
    config.blobs.dir = options.blob_dir.clone();
    config.progress_interval_ms = 100;
    if let Some(timeout) = options.export_catch_up_timeout {
        config.catch_up_timeout_ms = timeout.as_millis() as u64;
    }
    if let Some(attempts) = options.export_retry_attempts {
        config.common.kafka.consumer_retry_attempts = attempts;
    }
    run(build::<export_worker::Application>(config).await)
}

fn token(options: &Options, role: auth::Role) -> String {
    let claims = auth::dev::Claims::new("system-test", role, Duration::from_secs(3600));
    auth::dev::sign(&options.jwt_secret, &claims).expect("signs")
}

/// `S` built (bound, connected, caught up), with the shutdown it will run until.
async fn build<S: Service>(config: S::Config) -> (S, Shutdown) {
    let shutdown = Shutdown::new();
    let app = S::build(config, shutdown.clone()).await.unwrap_or_else(|e| panic!("{} starts: {e:#}", S::NAME));
    (app, shutdown)
}

/// Runs a built service in a task of its own.
fn run<S: Service>((app, shutdown): (S, Shutdown)) -> Running {
    let admin = format!("http://{}", app.admin_addr());
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    Running { admin, shutdown, task }
}
