//! The interactive figures: reads against the gateway and against the bare ceiling, and writes
//! through the gateway until visible, at fixed arrival rates and at saturation.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::load::{self, MakeRequest, Outcome};

/// Where requests go, and the bearer token they carry (none for the ceiling).
#[derive(Debug, Clone)]
pub(crate) struct Server {
    pub(crate) name: &'static str,
    pub(crate) addr: SocketAddr,
    pub(crate) authorization: Option<HeaderValue>,
}

impl Server {
    fn request(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Request<Full<Bytes>> {
        let mut builder = Request::builder().method(method).uri(path).header(HOST, self.addr.to_string());
        if let Some(token) = &self.authorization {
            builder = builder.header(AUTHORIZATION, token.clone());
        }
        if body.is_some() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        builder.body(Full::new(Bytes::from(body.unwrap_or_default()))).expect("a valid request")
    }
}

/// Users to read and change: a sample of the imported ones.
#[derive(Debug)]
pub(crate) struct Sample {
    pub(crate) ids: Vec<Uuid>,
    pub(crate) emails: Vec<String>,
}

impl Sample {
    /// The `n`th pick: spread over the sample rather than walking it in order.
    fn pick(&self, n: u64) -> usize {
        (n.wrapping_mul(2_654_435_761) % self.ids.len() as u64) as usize
    }

    /// Up to `limit` users, page by page from the gateway.
    pub(crate) async fn take(gateway: &str, client: &reqwest::Client, limit: usize) -> anyhow::Result<Self> {
        let mut sample = Self { ids: Vec::new(), emails: Vec::new() };
        let mut cursor = String::new();
        while sample.ids.len() < limit {
            let page: Value = client
                .get(format!("{gateway}/users?limit=1000&cursor={cursor}"))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            for user in page["items"].as_array().into_iter().flatten() {
                if let (Some(id), Some(email)) = (user["id"].as_str(), user["email"].as_str()) {
                    sample.ids.push(id.parse()?);
                    sample.emails.push(email.to_owned());
                }
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = next.to_owned(),
                None => break,
            }
        }
        anyhow::ensure!(!sample.ids.is_empty(), "no users to read");
        Ok(sample)
    }
}

/// The three reads measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Read {
    ById,
    Page,
    ByEmail,
}

impl Read {
    pub(crate) const ALL: [Read; 3] = [Read::ById, Read::Page, Read::ByEmail];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Read::ById => "GET /users/{id}",
            Read::Page => "GET /users?limit=50&cursor=",
            Read::ByEmail => "GET /users?email=",
        }
    }

    pub(crate) fn requests(self, server: &Server, sample: &Arc<Sample>) -> MakeRequest {
        let (server, sample) = (server.clone(), sample.clone());
        Arc::new(move |n| {
            let i = sample.pick(n);
            let path = match self {
                Read::ById => format!("/users/{}", sample.ids[i]),
                Read::Page => format!("/users?limit=50&cursor={}", sample.ids[i]),
                Read::ByEmail => format!("/users?email={}", sample.emails[i]),
            };
            server.request(Method::GET, &path, None)
        })
    }
}

/// The three writes measured; each answers once its effect is visible to reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Write {
    Create,
    Update,
    Delete,
}

impl Write {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Write::Create => "POST /users",
            Write::Update => "PATCH /users/{id}",
            Write::Delete => "DELETE /users/{id}",
        }
    }

    pub(crate) fn expected(self) -> StatusCode {
        match self {
            Write::Create => StatusCode::CREATED,
            Write::Update => StatusCode::OK,
            Write::Delete => StatusCode::NO_CONTENT,
        }
    }

    /// The requests of one run; `run` keeps the emails of different runs apart, and deletes
    /// take the sample's users from `offset` on, each once.
    pub(crate) fn requests(self, server: &Server, sample: &Arc<Sample>, run: &str, offset: usize) -> MakeRequest {
        let (server, sample, run) = (server.clone(), sample.clone(), run.to_owned());
        Arc::new(move |n| match self {
            Write::Create => {
                let body = format!(r#"{{"email":"load-{run}-{n}@bench.example","name":"Load {n}","age":30}}"#);
                server.request(Method::POST, "/users", Some(body.into_bytes()))
            }
            Write::Update => {
                let id = sample.ids[sample.pick(n)];
                let body = format!(r#"{{"name":"Renamed {run} {n}"}}"#);
                server.request(Method::PATCH, &format!("/users/{id}"), Some(body.into_bytes()))
            }
            Write::Delete => {
                let id = sample.ids[(offset + n as usize) % sample.ids.len()];
                server.request(Method::DELETE, &format!("/users/{id}"), None)
            }
        })
    }
}

/// One measured run, as reported.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Run {
    pub(crate) operation: &'static str,
    pub(crate) server: &'static str,
    /// The arrival rate, or none for a closed loop.
    pub(crate) offered_per_second: Option<f64>,
    pub(crate) connections: Option<usize>,
    pub(crate) seconds: f64,
    pub(crate) succeeded_per_second: f64,
    pub(crate) failed: u64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
    pub(crate) max_ms: f64,
}

impl Run {
    fn of(
        operation: &'static str,
        server: &Server,
        offered: Option<f64>,
        connections: Option<usize>,
        o: &Outcome,
    ) -> Self {
        Self {
            operation,
            server: server.name,
            offered_per_second: offered,
            connections,
            seconds: o.elapsed.as_secs_f64(),
            succeeded_per_second: o.throughput(),
            failed: o.failures(),
            p50_ms: o.ms(0.5),
            p99_ms: o.ms(0.99),
            p999_ms: o.ms(0.999),
            max_ms: o.latency.max() as f64 / 1000.0,
        }
    }

    /// Whether the run kept up: every request answered as expected, with p99 within `p99_ms`
    /// (an open loop's latency counts from when each request was due, so a server falling
    /// behind fails on its p99).
    pub(crate) fn sustained(&self, p99_ms: f64) -> bool {
        self.failed == 0 && self.p99_ms <= p99_ms
    }

    pub(crate) fn print(&self) {
        let shape = match (self.offered_per_second, self.connections) {
            (Some(rate), _) => format!("{rate:>7.0}/s"),
            (None, Some(c)) => format!("{c:>4} conns"),
            _ => String::new(),
        };
        let failed = if self.failed > 0 { format!("  ({} failed)", self.failed) } else { String::new() };
        println!(
            "  {:<28} {:<8} {shape}  {:>8.0} ok/s   p50 {:>7.2}  p99 {:>7.2}  p999 {:>7.2}  max {:>7.1} ms{failed}",
            self.operation, self.server, self.succeeded_per_second, self.p50_ms, self.p99_ms, self.p999_ms, self.max_ms
        );
    }
}

/// The most connections an open-loop run opens.
const OPEN_LOOP_CONNECTIONS: usize = 1024;

pub(crate) async fn at_rate(
    operation: &'static str,
    server: &Server,
    make: MakeRequest,
    expected: StatusCode,
    rate: f64,
    duration: Duration,
) -> Run {
    let outcome = load::at_rate(server.addr, make, expected, rate, duration, OPEN_LOOP_CONNECTIONS).await;
    let run = Run::of(operation, server, Some(rate), None, &outcome);
    run.print();
    run
}

pub(crate) async fn saturate(
    operation: &'static str,
    server: &Server,
    make: MakeRequest,
    expected: StatusCode,
    connections: usize,
    duration: Duration,
) -> Run {
    let outcome = load::saturate(server.addr, make, expected, connections, duration).await;
    let run = Run::of(operation, server, None, Some(connections), &outcome);
    run.print();
    run
}

/// The highest arrival rate of creates the gateway sustains with p99 within `p99_ms`: doubles
/// from `start` until a rate fails, then halves the gap twice. Returns every run made.
pub(crate) async fn highest_sustained(
    server: &Server,
    sample: &Arc<Sample>,
    start: f64,
    p99_ms: f64,
    duration: Duration,
) -> (Option<f64>, Vec<Run>) {
    let mut runs = Vec::new();
    let (mut passed, mut failed): (Option<f64>, Option<f64>) = (None, None);
    let mut rate = start;
    for step in 0..8 {
        let make = Write::Create.requests(server, sample, &format!("sustain{step}"), 0);
        let run = at_rate(Write::Create.label(), server, make, StatusCode::CREATED, rate, duration).await;
        if run.sustained(p99_ms) {
            passed = Some(rate);
        } else {
            failed = Some(rate);
        }
        runs.push(run);
        rate = match (passed, failed) {
            (Some(p), None) => p * 2.0,
            (None, Some(f)) if f / 2.0 >= 50.0 => f / 2.0,
            (Some(p), Some(f)) if f - p > p / 8.0 => (p + f) / 2.0,
            _ => break,
        };
    }
    (passed, runs)
}
