//! One request's trace, followed from outside: the W3C `traceparent` a client sends goes on in
//! the Kafka headers of every record the request causes (command, event, reply; an
//! import's request, statuses, batch commands and their events), in the log lines of each
//! service that worked on it, and in the spans each service exports over OTLP to a receiver in
//! this process, each span the child of the one before it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use platform::kafka::Incoming;
use platform::testing::{Binary, eventually};
use prost::Message as _;
use reqwest::StatusCode;
use serde_json::json;
use system_tests::TestSystem;
use uuid::Uuid;

use crate::support::{read_all, spawn_service, wait_export, wait_import};

/// A span as the receiver got it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
}

/// An OTLP/HTTP (protobuf) receiver: what the services' exporters send to `/v1/traces`.
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<Received>>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Collector {
    async fn start() -> Self {
        let spans: Arc<Mutex<Vec<Received>>> = Arc::default();
        let sink = Arc::clone(&spans);
        let receive = move |body: Bytes| async move {
            let request = ExportTraceServiceRequest::decode(body).expect("an OTLP trace export");
            let mut received = sink.lock().unwrap_or_else(PoisonError::into_inner);
            for batch in request.resource_spans {
                let attributes = batch.resource.map(|r| r.attributes).unwrap_or_default();
                let service = attributes.iter().find(|a| a.key == "service.name").and_then(|a| match &a.value {
                    Some(v) => match &v.value {
                        Some(AnyValue::StringValue(name)) => Some(name.clone()),
                        _ => None,
                    },
                    None => None,
                });
                for span in batch.scope_spans.into_iter().flat_map(|s| s.spans) {
                    received.push(Received {
                        service: service.clone().unwrap_or_default(),
                        name: span.name,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent: hex(&span.parent_span_id),
                    });
                }
            }
            // An empty ExportTraceServiceResponse: everything accepted.
            ([(axum::http::header::CONTENT_TYPE, "application/x-protobuf")], Vec::new())
        };
        let app = axum::Router::new().route("/v1/traces", axum::routing::post(receive));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, spans }
    }

    /// Waits for the span of `service` named `name` in `trace_id` whose parent is `parent`.
    async fn span(&self, service: &str, name: &str, trace_id: &str, parent: &str) -> Received {
        let what = format!("the {name} span of {service} in trace {trace_id}, child of {parent}");
        eventually(&what, Duration::from_secs(30), || async {
            let spans = self.spans.lock().unwrap_or_else(PoisonError::into_inner);
            let found = spans
                .iter()
                .find(|s| s.service == service && s.name == name && s.trace_id == trace_id && s.parent == parent);
            found.cloned()
        })
        .await
    }
}

/// A `traceparent` value's trace id and parent span id.
fn parse(traceparent: &[u8]) -> (String, String) {
    let text = std::str::from_utf8(traceparent).expect("text");
    let parts: Vec<&str> = text.split('-').collect();
    assert!(parts.len() == 4 && parts[0] == "00" && parts[3] == "01", "a sampled W3C traceparent: {text}");
    (parts[1].to_owned(), parts[2].to_owned())
}

/// The records of `topic` in `trace_id`, each with the span its context names as parent.
async fn in_trace(topic: &str, trace_id: &str) -> Vec<(Incoming, String)> {
    let records = read_all(topic).await;
    let traced = records.into_iter().filter_map(|record| {
        let (trace, parent) = parse(record.header(platform::trace::TRACEPARENT)?);
        (trace == trace_id).then_some((record, parent))
    });
    traced.collect()
}

/// The one record of `topic` in `trace_id`; the span id its context names.
async fn one_in_trace(topic: &str, trace_id: &str) -> String {
    let found = in_trace(topic, trace_id).await;
    assert_eq!(found.len(), 1, "one record of {topic} in trace {trace_id}");
    found[0].1.clone()
}

/// The span id of the client's own span, parent of the gateway's.
const CALLER: &str = "00f067aa0ba902b7";

/// A POST as a traced client sends it: a token, and `traceparent` naming `trace_id`.
fn traced(client: &reqwest::Client, url: String, token: &str, trace_id: &str) -> reqwest::RequestBuilder {
    client.post(url).header("authorization", token).header("traceparent", format!("00-{trace_id}-{CALLER}-01"))
}

/// Sends a job's request, which must be answered 202; the job's id (`field` of the answer).
async fn accepted(request: reqwest::RequestBuilder, field: &str) -> String {
    let answer = request.send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    answer.json::<serde_json::Value>().await.unwrap()[field].as_str().unwrap().to_owned()
}

fn assert_logged(process: &Binary, service: &str, trace_id: &str, needle: &str) {
    let logs = process.logs();
    let hit = logs.iter().any(|line| line.contains(trace_id) && line.contains(needle));
    assert!(hit, "no {service} log line with {needle:?} and trace id {trace_id}:\n{}", logs.join("\n"));
}

#[tokio::test]
async fn a_request_s_trace_runs_through_the_kafka_headers_logs_and_exported_spans_of_every_service() {
    let collector = Collector::start().await;
    let mut system = TestSystem::start().await;
    system.stop_user_service().await;
    let mut env = system.worker_env();
    env.extend([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url.clone()),
        // Export every 100 ms rather than every 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ("GATEWAY_HTTP_ADDR", "127.0.0.1:0".into()),
        ("GATEWAY_ADMIN_ADDR", "127.0.0.1:0".into()),
        ("GATEWAY_JWT_SECRET", system.options.jwt_secret.clone()),
        ("GATEWAY_RATE_LIMIT_PER_SECOND", "0".into()),
        ("BLOB_MIN_FREE_BYTES", "0".into()),
    ]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut processes = HashMap::new();
    for (service, ready) in [
        ("user-service", "transactional consumer started"),
        ("import-worker", "consumer started"),
        ("export-worker", "consumer started"),
    ] {
        let mut process = spawn_service(service, &env);
        process.wait_for_log(ready, Duration::from_secs(60)).await;
        processes.insert(service, process);
    }
    let mut process = spawn_service("api-gateway", &env);
    let gateway = process.listening_addr("api").await;
    processes.insert("api-gateway", process);
    let client = reqwest::Client::new();
    let token = format!("Bearer {}", system.token(auth::Role::Admin));
    let t = &system.topics;

    // One create, with the caller's trace context.
    let trace_id = Uuid::new_v4().simple().to_string();
    let caller = CALLER;
    let created = traced(&client, format!("http://{gateway}/users"), &token, &trace_id)
        .json(&json!({"email": "traced@example.com", "name": "Traced"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    // The command names the gateway's request span as parent; the event and the reply name
    // user-service's command span (the state record, read only by rebuilds, carries none).
    let request_span = one_in_trace(t.user_commands.as_str(), &trace_id).await;
    assert_ne!(request_span, caller, "the gateway's own span, child of the caller's");
    let command_span = one_in_trace(t.user_events.as_str(), &trace_id).await;
    assert_ne!(command_span, request_span);
    assert_eq!(one_in_trace(t.user_replies.as_str(), &trace_id).await, command_span);

    // Their log lines for it carry the trace id.
    assert_logged(&processes["api-gateway"], "api-gateway", &trace_id, "status=201");
    assert_logged(&processes["user-service"], "user-service", &trace_id, "command decided");

    // And the spans exported, each the child of the one before.
    let request = collector.span("api-gateway", "request", &trace_id, caller).await;
    assert_eq!(request.span_id, request_span);
    let command = collector.span("user-service", "command", &trace_id, &request_span).await;
    assert_eq!(command.span_id, command_span);
    // The gateway applying the event to its projection, and the export-worker to its own.
    collector.span("api-gateway", "apply", &trace_id, &command_span).await;
    collector.span("export-worker", "apply", &trace_id, &command_span).await;

    // An import: its request and statuses name the upload's request span, its batch command
    // the import-worker's span; the rows' events and the batch's reply, the batch's span.
    let import_trace = Uuid::new_v4().simple().to_string();
    let upload = traced(&client, format!("http://{gateway}/imports"), &token, &import_trace)
        .header("content-type", "text/csv")
        .body("email,name\nfirst@example.com,First\nsecond@example.com,Second\n");
    let import_id = accepted(upload, "import_id").await;
    let finished = wait_import(&system, &import_id, Duration::from_secs(60)).await;
    assert_eq!(finished.last().unwrap()["status"], "completed");
    let upload_span = one_in_trace(t.import_requests.as_str(), &import_trace).await;
    let import = collector.span("import-worker", "import", &import_trace, &upload_span).await;
    let statuses = in_trace(t.import_status.as_str(), &import_trace).await;
    assert!(statuses.iter().any(|(_, parent)| *parent == upload_span), "the gateway's queued status");
    assert!(statuses.iter().any(|(_, parent)| *parent == import.span_id), "the worker's statuses");
    let batch_span = one_in_trace(t.user_replies.as_str(), &import_trace).await;
    assert_eq!(one_in_trace(t.user_commands.as_str(), &import_trace).await, import.span_id);
    let events = in_trace(t.user_events.as_str(), &import_trace).await;
    assert_eq!(events.len(), 2, "one event per row");
    assert!(events.iter().all(|(_, parent)| *parent == batch_span));
    collector.span("user-service", "command", &import_trace, &import.span_id).await;
    assert_logged(&processes["import-worker"], "import-worker", &import_trace, "import completed");

    // An export: its request names the request span; the worker's span and statuses follow.
    let export_trace = Uuid::new_v4().simple().to_string();
    let request = traced(&client, format!("http://{gateway}/exports"), &token, &export_trace).json(&json!({}));
    let export_id = accepted(request, "export_id").await;
    let finished = wait_export(&system, &export_id, Duration::from_secs(60)).await;
    assert_eq!(finished.last().unwrap()["status"], "completed");
    let export_request_span = one_in_trace(t.export_requests.as_str(), &export_trace).await;
    let export = collector.span("export-worker", "export", &export_trace, &export_request_span).await;
    let statuses = in_trace(t.export_status.as_str(), &export_trace).await;
    assert!(statuses.iter().any(|(_, parent)| *parent == export.span_id), "the worker's statuses");

    for (_, process) in processes {
        process.terminate();
        assert!(process.wait_exit(Duration::from_secs(30)).await.status.success());
    }
    system.stop().await;
}
