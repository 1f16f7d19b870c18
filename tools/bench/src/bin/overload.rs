//! Hammers a running gateway with more than its limits allow and reports what the clients got:
//! every status, whether each 429/503 named a `Retry-After`, and the latency of the accepted
//! requests against the same requests on an idle gateway.
//!
//! ```sh
//! just dev                                   # in another terminal
//! cargo run --release -p bench --bin overload -- --clients 200 --seconds 10
//! ```
//!
//! Tokens are minted with the development secret (`.local/dev/jwt-secret`), one principal per
//! `--principals` (the rate limit is per principal).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    /// Concurrent clients, each sending its next request as soon as the last is answered.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Principals the clients are spread over.
    #[arg(long, default_value_t = 4)]
    principals: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value = "/users?limit=10")]
    path: String,
    #[arg(long, default_value = auth::dev::DEV_SECRET_FILE)]
    secret_file: PathBuf,
}

#[derive(Default)]
struct Seen {
    statuses: BTreeMap<u16, u64>,
    /// 429/503 answers without a `Retry-After`.
    refused_without_retry_after: u64,
    /// Latencies of the 2xx answers, in microseconds.
    accepted: Vec<u64>,
}

impl Seen {
    fn merge(&mut self, other: Seen) {
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.refused_without_retry_after += other.refused_without_retry_after;
        self.accepted.extend(other.accepted);
    }
}

async fn hammer(client: reqwest::Client, url: String, token: String, until: Instant) -> Seen {
    let mut seen = Seen::default();
    while Instant::now() < until {
        let started = Instant::now();
        let Ok(response) = client.get(&url).bearer_auth(&token).send().await else {
            *seen.statuses.entry(0).or_default() += 1;
            continue;
        };
        let status = response.status().as_u16();
        let retry_after = response.headers().contains_key("retry-after");
        let _ = response.bytes().await;
        *seen.statuses.entry(status).or_default() += 1;
        if (200..300).contains(&status) {
            seen.accepted.push(started.elapsed().as_micros() as u64);
        } else if (status == 429 || status == 503) && !retry_after {
            seen.refused_without_retry_after += 1;
        }
    }
    seen
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let secret = std::fs::read_to_string(&args.secret_file)?;
    let tokens: Vec<String> = (0..args.principals.max(1))
        .map(|i| {
            let claims =
                auth::dev::Claims::new(&format!("overload-{i}"), auth::Role::Reader, Duration::from_secs(3600));
            auth::dev::sign(secret.trim(), &claims)
        })
        .collect::<Result<_, _>>()?;
    let url = format!("{}{}", args.url, args.path);
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.clients).build()?;

    // Idle: one client, one request at a time, well under the rate limit.
    let mut idle = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        client.get(&url).bearer_auth(&tokens[0]).send().await?.error_for_status()?.bytes().await?;
        idle.push(started.elapsed().as_micros() as u64);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    idle.sort_unstable();
    tokio::time::sleep(Duration::from_secs(3)).await; // the buckets refill

    let until = Instant::now() + Duration::from_secs(args.seconds);
    let runs: Vec<_> = (0..args.clients)
        .map(|i| tokio::spawn(hammer(client.clone(), url.clone(), tokens[i % tokens.len()].clone(), until)))
        .collect();
    let mut seen = Seen::default();
    for run in runs {
        seen.merge(run.await?);
    }
    seen.accepted.sort_unstable();
    let total: u64 = seen.statuses.values().sum();
    let other_5xx: u64 = seen.statuses.iter().filter(|(s, _)| **s >= 500 && **s != 503).map(|(_, n)| n).sum();
    println!("{} clients, {} principals, {} s against {url}", args.clients, tokens.len(), args.seconds);
    println!("requests: {total} ({:.0}/s)", total as f64 / args.seconds as f64);
    for (status, n) in &seen.statuses {
        println!("  {status}: {n}");
    }
    println!("429/503 without Retry-After: {}", seen.refused_without_retry_after);
    println!("5xx other than 503: {other_5xx}");
    println!(
        "accepted latency ms: p50 {:.2}, p99 {:.2} (idle: p50 {:.2}, p99 {:.2})",
        percentile(&seen.accepted, 0.50),
        percentile(&seen.accepted, 0.99),
        percentile(&idle, 0.50),
        percentile(&idle, 0.99),
    );
    anyhow::ensure!(other_5xx == 0 && seen.refused_without_retry_after == 0, "the gateway misbehaved under overload");
    Ok(())
}
