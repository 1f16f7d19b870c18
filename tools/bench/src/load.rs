//! HTTP load on hyper, in two shapes:
//! - open loop ([`at_rate`]): requests are due at a fixed arrival rate whatever the server does,
//!   and each one's latency counts from when it was due, not from when a connection was free, so
//!   a server falling behind shows its queue in the percentiles instead of slowing the load
//!   (coordinated omission);
//! - closed loop ([`saturate`]): each of C connections sends its next request once the last is
//!   answered: the most the server gives, with C requests in flight.
//!
//! One HTTP/1.1 connection carries one request at a time; the open loop opens connections as it
//! needs them, up to a bound, and a request waiting for one is late by that wait.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Requests of one run: the `n`th request, and the status that counts as its success.
pub(crate) type MakeRequest = Arc<dyn Fn(u64) -> Request<Full<Bytes>> + Send + Sync>;

/// A request not answered within this long counts as failed ("timeout").
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What a run measured. Latencies in microseconds, of the successful requests only.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) latency: Histogram<u64>,
    pub(crate) succeeded: u64,
    /// Every other outcome by status code, or "timeout" / "connection".
    pub(crate) failed: BTreeMap<String, u64>,
    /// From the first request's start to the last answer.
    pub(crate) elapsed: Duration,
}

impl Outcome {
    fn new() -> Self {
        Self {
            latency: Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds"),
            succeeded: 0,
            failed: BTreeMap::new(),
            elapsed: Duration::ZERO,
        }
    }

    /// Successful answers per second.
    pub(crate) fn throughput(&self) -> f64 {
        self.succeeded as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency at `quantile` (0.5, 0.99, ...) in milliseconds.
    pub(crate) fn ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    pub(crate) fn failures(&self) -> u64 {
        self.failed.values().sum()
    }

    fn record(&mut self, result: Result<StatusCode, String>, expected: StatusCode, took: Duration) {
        match result {
            Ok(status) if status == expected => {
                self.succeeded += 1;
                let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
                self.latency.saturating_record(micros);
            }
            Ok(status) => *self.failed.entry(status.as_u16().to_string()).or_default() += 1,
            Err(kind) => *self.failed.entry(kind).or_default() += 1,
        }
    }

    fn merge(&mut self, other: Outcome) {
        self.latency.add(other.latency).expect("histograms of the same bounds");
        self.succeeded += other.succeeded;
        for (kind, count) in other.failed {
            *self.failed.entry(kind).or_default() += count;
        }
    }
}

/// Connections to one server, reused one request at a time.
struct Pool {
    addr: SocketAddr,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
    slots: Semaphore,
}

impl Pool {
    fn new(addr: SocketAddr, connections: usize) -> Self {
        Self { addr, idle: Mutex::new(Vec::new()), slots: Semaphore::new(connections) }
    }

    /// Sends `request` on an idle connection (or a new one, within the bound; else waits for
    /// one) and reads the whole answer.
    async fn send(&self, request: Request<Full<Bytes>>) -> Result<StatusCode, String> {
        let _slot = self.slots.acquire().await.map_err(|_| "closed".to_owned())?;
        let reused = self.idle.lock().expect("no panics while locked").pop();
        let mut conn = match reused {
            Some(conn) if !conn.is_closed() => conn,
            _ => connect(self.addr).await.map_err(|_| "connection".to_owned())?,
        };
        let answered = async {
            conn.ready().await?;
            let response = conn.send_request(request).await?;
            let status = response.status();
            response.into_body().collect().await?;
            Ok::<_, hyper::Error>(status)
        };
        let status = tokio::time::timeout(REQUEST_TIMEOUT, answered)
            .await
            .map_err(|_| "timeout".to_owned())?
            .map_err(|_| "connection".to_owned())?;
        self.idle.lock().expect("no panics while locked").push(conn);
        Ok(status)
    }
}

async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Open loop: `rate` requests per second for `duration`, over at most `connections`
/// connections; each request's latency counts from when it was due.
pub(crate) async fn at_rate(
    addr: SocketAddr,
    make: MakeRequest,
    expected: StatusCode,
    rate: f64,
    duration: Duration,
    connections: usize,
) -> Outcome {
    let pool = Arc::new(Pool::new(addr, connections));
    let outcome = Arc::new(Mutex::new(Outcome::new()));
    let total = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut sent = 0;
    while sent < total {
        let due = ((start.elapsed().as_secs_f64() * rate) as u64 + 1).min(total);
        for n in sent..due {
            let at = start + Duration::from_secs_f64(n as f64 / rate);
            let (pool, outcome, request) = (pool.clone(), outcome.clone(), make(n));
            tasks.spawn(async move {
                let result = pool.send(request).await;
                let took = at.elapsed();
                outcome.lock().expect("no panics while locked").record(result, expected, took);
            });
        }
        sent = due;
        while tasks.try_join_next().is_some() {}
        let next = start + Duration::from_secs_f64(sent as f64 / rate);
        tokio::time::sleep_until(next.max(Instant::now() + Duration::from_micros(200))).await;
    }
    while tasks.join_next().await.is_some() {}
    let mut outcome = Arc::into_inner(outcome).expect("every task done").into_inner().expect("no panics while locked");
    outcome.elapsed = start.elapsed();
    outcome
}

/// Closed loop: `connections` connections, each sending its next request as soon as the last
/// is answered, for `duration`.
pub(crate) async fn saturate(
    addr: SocketAddr,
    make: MakeRequest,
    expected: StatusCode,
    connections: usize,
    duration: Duration,
) -> Outcome {
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (make, counter) = (make.clone(), counter.clone());
        tasks.spawn(async move {
            let pool = Pool::new(addr, 1);
            let mut outcome = Outcome::new();
            while Instant::now() < deadline {
                let request = make(counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
                let sent = Instant::now();
                let result = pool.send(request).await;
                outcome.record(result, expected, sent.elapsed());
            }
            outcome
        });
    }
    let mut total = Outcome::new();
    while let Some(done) = tasks.join_next().await {
        total.merge(done.expect("load tasks do not panic"));
    }
    total.elapsed = start.elapsed();
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that takes `SERVICE_TIME` to answer each request (503 for `/fail`).
    const SERVICE_TIME: Duration = Duration::from_millis(20);

    async fn slow_server() -> SocketAddr {
        async fn answer(uri: axum::http::Uri) -> StatusCode {
            // The server's own work, simulated: not a wait for a condition.
            tokio::time::sleep(SERVICE_TIME).await;
            if uri.path() == "/fail" { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, axum::Router::new().fallback(answer)).await });
        addr
    }

    fn requests(path: &'static str) -> MakeRequest {
        Arc::new(move |_| Request::get(path).header("host", "bench").body(Full::new(Bytes::new())).unwrap())
    }

    #[tokio::test]
    async fn an_open_loop_counts_latency_from_when_each_request_was_due() {
        let addr = slow_server().await;
        // 100 requests due over one second, one connection that answers at most 50 a second:
        // the last ones are due at ~1 s and cannot be answered before 2 s.
        let outcome = at_rate(addr, requests("/"), StatusCode::OK, 100.0, Duration::from_secs(1), 1).await;
        assert_eq!(outcome.succeeded, 100, "{:?}", outcome.failed);
        assert!(outcome.elapsed >= Duration::from_secs(2), "{:?}", outcome.elapsed);
        assert!(outcome.ms(0.99) >= 900.0, "the queue is hidden: p99 {} ms", outcome.ms(0.99));
        // A closed loop on one connection never queues: each latency is one service time.
        let closed = saturate(addr, requests("/"), StatusCode::OK, 1, Duration::from_secs(1)).await;
        assert!(closed.succeeded <= 51, "{}", closed.succeeded);
        assert!(closed.ms(0.5) >= 20.0 && closed.ms(0.5) < outcome.ms(0.99), "{}", closed.ms(0.5));
    }

    #[tokio::test]
    async fn unexpected_statuses_and_refused_connections_are_failures_with_their_reason() {
        let addr = slow_server().await;
        let failing = at_rate(addr, requests("/fail"), StatusCode::OK, 20.0, Duration::from_millis(500), 4).await;
        assert_eq!((failing.succeeded, failing.failed.get("503").copied()), (0, Some(10)));
        assert_eq!(failing.latency.len(), 0, "failures have no place among the latencies");

        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let refused = at_rate(closed, requests("/"), StatusCode::OK, 20.0, Duration::from_millis(500), 4).await;
        assert_eq!((refused.succeeded, refused.failed.get("connection").copied()), (0, Some(10)));
    }
}
