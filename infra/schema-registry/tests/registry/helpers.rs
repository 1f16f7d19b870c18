use platform::service::Service;
use platform::testing::unique;
use platform::{Shutdown, ShutdownConfig, TelemetryConfig};
use schema_registry::{Application, Config, Level};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// A registry running in this process on a port of its own and a fresh schemas topic.
pub(crate) struct TestRegistry {
    pub(crate) url: String,
    pub(crate) topic: String,
    /// Sent as `Authorization` with every change (`send`).
    pub(crate) authorization: Option<String>,
    shutdown: Shutdown,
    task: JoinHandle<anyhow::Result<()>>,
}

impl TestRegistry {
    pub(crate) async fn start() -> Self {
        Self::start_on(unique("test-schemas")).await
    }

    /// Starts on an existing schemas topic (a restart).
    pub(crate) async fn start_on(topic: String) -> Self {
        Self::start_with(topic, None).await
    }

    /// Starts with the admin token in `admin_token_file`.
    pub(crate) async fn start_with(topic: String, admin_token_file: Option<std::path::PathBuf>) -> Self {
        let kafka = platform::testing::kafka().await;
        let config = Config {
            http_addr: "127.0.0.1:0".parse().expect("address"),
            kafkastore_topic: topic.clone(),
            compatibility_level: Level::Backward,
            replication_factor: 1,
            admin_token_file,
            kafka,
            telemetry: TelemetryConfig { log_format: platform::config::LogFormat::Text, otlp_endpoint: None },
            shutdown: ShutdownConfig { drain_secs: 20 },
        };
        let shutdown = Shutdown::new();
        let app = Application::build(config, shutdown.clone()).await.expect("registry starts");
        let url = format!("http://{}", app.http_addr());
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Self { url, topic, authorization: None, shutdown, task }
    }

    pub(crate) async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.expect("no panic").expect("clean stop");
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        let response = reqwest::get(format!("{}{path}", self.url)).await.expect("GET");
        decode(response).await
    }

    pub(crate) async fn send(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = reqwest::Client::new().request(method, format!("{}{path}", self.url));
        if let Some(authorization) = &self.authorization {
            request = request.header("authorization", authorization);
        }
        let response = request
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .body(body.to_string())
            .send()
            .await
            .expect("request");
        decode(response).await
    }

    /// Registers `schema` (an Avro schema as JSON) under `subject`.
    pub(crate) async fn register(&self, subject: &str, schema: &Value) -> (u16, Value) {
        self.send("POST", &format!("/subjects/{subject}/versions"), json!({ "schema": schema.to_string() })).await
    }
}

async fn decode(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.expect("every answer is JSON");
    (status, body)
}

/// A user record schema, version 1.
pub(crate) fn user_v1() -> Value {
    json!({"type": "record", "name": "User", "namespace": "test", "fields": [
        {"name": "email", "type": "string"},
        {"name": "name", "type": "string"}
    ]})
}

/// Version 1 plus an optional field with a default: BACKWARD compatible.
pub(crate) fn user_v2_compatible() -> Value {
    json!({"type": "record", "name": "User", "namespace": "test", "fields": [
        {"name": "email", "type": "string"},
        {"name": "name", "type": "string"},
        {"name": "age", "type": ["null", "int"], "default": null}
    ]})
}

/// Version 1 plus a required field: new readers cannot read old data.
pub(crate) fn user_v2_incompatible() -> Value {
    json!({"type": "record", "name": "User", "namespace": "test", "fields": [
        {"name": "email", "type": "string"},
        {"name": "name", "type": "string"},
        {"name": "age", "type": "int"}
    ]})
}
