//! A whole system per test: user-service and one or more gateways in this process, on fresh
//! topics and a fresh consumer group, against the real local broker and schema registry.

use std::time::Duration;

use clap::Parser;
use platform::Shutdown;
use platform::kafka::topics::TopicsConfig;
use platform::testing::unique;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::task::JoinHandle;

/// A component running in a task of its own.
pub(crate) struct Running {
    shutdown: Shutdown,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub(crate) async fn stop(self) {
        self.shutdown.trigger();
        let result = tokio::time::timeout(Duration::from_secs(30), self.task).await;
        result
            .expect("stops within 30s")
            .expect("no panic")
            .expect("clean stop");
    }
}

pub(crate) struct Gateway {
    pub(crate) url: String,
    running: Running,
}

impl Gateway {
    pub(crate) async fn stop(self) {
        self.running.stop().await;
    }
}

pub(crate) struct TestSystem {
    pub(crate) topics: TopicsConfig,
    pub(crate) group: String,
    pub(crate) user_service: Option<Running>,
    pub(crate) gateway: Gateway,
    pub(crate) client: reqwest::Client,
}

fn topics() -> TopicsConfig {
    let mut topics = api_gateway::Config::try_parse_from(["api-gateway"])
        .expect("defaults")
        .topics;
    topics.user_commands = unique("test-commands");
    topics.user_events = unique("test-events");
    topics.user_replies = unique("test-replies");
    topics.dead_letters = unique("test-dlq");
    topics
}

impl TestSystem {
    pub(crate) async fn start() -> Self {
        Self::start_with_timeout(Duration::from_secs(10)).await
    }

    /// A system whose gateway answers 202 after `command_timeout` without an outcome.
    pub(crate) async fn start_with_timeout(command_timeout: Duration) -> Self {
        platform::testing::kafka().await;
        let topics = topics();
        let group = unique("test-user-service");
        let user_service = Some(start_user_service(&topics, &group).await);
        let gateway = start_gateway(&topics, command_timeout).await;
        Self {
            topics,
            group,
            user_service,
            gateway,
            client: reqwest::Client::new(),
        }
    }

    pub(crate) async fn stop_user_service(&mut self) {
        if let Some(running) = self.user_service.take() {
            running.stop().await;
        }
    }

    pub(crate) async fn start_user_service(&mut self) {
        assert!(self.user_service.is_none(), "already running");
        self.user_service = Some(start_user_service(&self.topics, &self.group).await);
    }

    /// Replaces the gateway by a fresh instance (rebuilding its projection).
    pub(crate) async fn restart_gateway(&mut self) {
        let fresh = start_gateway(&self.topics, Duration::from_secs(10)).await;
        let old = std::mem::replace(&mut self.gateway, fresh);
        old.stop().await;
    }

    /// Another gateway instance on the same topics.
    pub(crate) async fn another_gateway(&self) -> Gateway {
        start_gateway(&self.topics, Duration::from_secs(10)).await
    }

    pub(crate) async fn stop(self) {
        self.gateway.stop().await;
        if let Some(running) = self.user_service {
            running.stop().await;
        }
    }

    /// Sends a request to the gateway and returns status, headers and JSON body (Null if none).
    pub(crate) async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        call(&self.client, &self.gateway.url, method, path, body, &[]).await
    }

    pub(crate) async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        call(&self.client, &self.gateway.url, method, path, body, headers).await
    }
}

pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Value,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    /// The fields named in a problem's `errors`.
    pub(crate) fn bad_fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub(crate) async fn call(
    client: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = client.request(method, format!("{base}{path}"));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
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
    config.topics = topics.clone();
    config.consumer_group = group.to_owned();
    let app = user_service::Application::build(config)
        .await
        .expect("user-service starts");
    let shutdown = Shutdown::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    Running { shutdown, task }
}

async fn start_gateway(topics: &TopicsConfig, command_timeout: Duration) -> Gateway {
    let mut config = api_gateway::Config::try_parse_from(["api-gateway"]).expect("defaults");
    config.http_addr = "127.0.0.1:0".parse().expect("addr");
    config.admin_addr = "127.0.0.1:0".parse().expect("addr");
    config.topics = topics.clone();
    config.command_timeout_ms = command_timeout.as_millis() as u64;
    let shutdown = Shutdown::new();
    let app = api_gateway::Application::build(config, shutdown.clone())
        .await
        .expect("gateway starts");
    let url = format!("http://{}", app.http_addr());
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    Gateway {
        url,
        running: Running { shutdown, task },
    }
}
