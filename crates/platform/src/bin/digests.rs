//! `just digests`: asks every service that holds users for the digest of its projection
//! (`GET /digest` on its admin port), waits until they report the same positions (the last
//! event applied per partition), prints them side by side, and exits non-zero unless they agree.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::Value;

#[derive(Debug, Parser)]
#[command(name = "digests", about = "Compare the users projections of the running services")]
struct Config {
    /// Admin base URLs of the services holding users (user-service, gateway, export-worker).
    #[arg(
        long = "admin",
        env = "DIGEST_ADMIN_URLS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:9101,http://127.0.0.1:9100,http://127.0.0.1:9103"
    )]
    admins: Vec<String>,

    /// How long to wait for the services to reach the same positions.
    #[arg(long, env = "DIGEST_WAIT_SECS", default_value_t = 30)]
    wait_secs: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let config = match Config::try_parse() {
        Ok(config) => config,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(2);
        }
    };
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("a client");
    let deadline = Instant::now() + Duration::from_secs(config.wait_secs);
    loop {
        let mut digests = Vec::new();
        for admin in &config.admins {
            let url = format!("{}/digest", admin.trim_end_matches('/'));
            match client.get(&url).send().await.and_then(reqwest::Response::error_for_status) {
                Ok(response) => match response.json::<Value>().await {
                    Ok(digest) => digests.push(digest),
                    Err(error) => return fail(&format!("{url}: not a digest: {error}")),
                },
                Err(error) => return fail(&format!("{url}: {error}")),
            }
        }
        let same_positions = digests.windows(2).all(|pair| pair[0]["positions"] == pair[1]["positions"]);
        if same_positions || Instant::now() >= deadline {
            print(&digests);
            if !same_positions {
                return fail(&format!("the services did not reach the same positions within {}s", config.wait_secs));
            }
            let fields = ["users", "versions", "emails"];
            let agree = digests.windows(2).all(|pair| fields.iter().all(|f| pair[0][f] == pair[1][f]));
            if agree {
                println!("digests agree at equal positions");
                return ExitCode::SUCCESS;
            }
            return fail("digests DIFFER at equal positions");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn print(digests: &[Value]) {
    println!("{:<14} {:>9}  {:<16}  {:<16}  positions", "service", "users", "versions", "emails");
    for digest in digests {
        let positions = digest["positions"]
            .as_object()
            .map(|p| {
                let mut parts: Vec<(i64, String)> = p
                    .iter()
                    .map(|(partition, offset)| (partition.parse().unwrap_or(0), format!("{partition}:{offset}")))
                    .collect();
                parts.sort();
                parts.into_iter().map(|(_, part)| part).collect::<Vec<_>>().join(" ")
            })
            .unwrap_or_default();
        println!(
            "{:<14} {:>9}  {:<16}  {:<16}  {positions}",
            digest["service"].as_str().unwrap_or("?"),
            digest["users"],
            digest["versions"].as_str().unwrap_or("?"),
            digest["emails"].as_str().unwrap_or("?"),
        );
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("digests: {message}");
    ExitCode::FAILURE
}
