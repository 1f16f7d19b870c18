//! `just bench`: the system's speed, measured end to end on this machine.
//!
//! Starts a fresh Kafka and schema registry and the four services (release builds) on ports of
//! their own, then:
//! - import: uploads a generated file of N rows and measures the seconds until the import is
//!   complete and until every user is readable through the gateway; rows/s; peak RSS of every
//!   process; and, in the same run, Kafka's own producer perf test for N records of the size of
//!   one user event (the raw ceiling);
//! - export: exports every imported user and measures the seconds until the download has
//!   completed, rows/s, and, in the same run, the `csv` crate alone writing the same rows to a
//!   file (the ceiling).
//!
//! - cold start: each service holding users (user-service, gateway, export-worker) restarted
//!   alone over the imported users, then all three at once: seconds until ready, resident
//!   memory before and after; then whether their projection digests agree.
//!
//! With `--churn`, instead: N users (10,000 by default) created, every one then updated 99
//! times by upsert imports, the log cleaner waited for, and the restarts measured against the
//! restarts over the N fresh users.
//!
//! Prints the figures; asserts nothing about them.

mod system;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use serde_json::Value;

use system::System;

#[derive(Debug, Parser)]
#[command(name = "bench", about = "Measure imports and exports end to end")]
struct Args {
    /// Rows in the imported file.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Where the bench keeps its Kafka data, blobs and generated file.
    #[arg(long, default_value = ".local/bench")]
    dir: std::path::PathBuf,
    /// Skip Kafka's producer perf test.
    #[arg(long)]
    no_kafka_baseline: bool,
    /// Measure restarts after many updates of the same users instead (`--rows` users, 10,000
    /// unless given, each updated `--updates` times).
    #[arg(long)]
    churn: bool,
    #[arg(long, default_value_t = 99)]
    updates: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut system = System::start(&args.dir).await?;
    let result = if args.churn { churn(&args, &mut system).await } else { run(&args, &mut system).await };
    system.stop().await;
    result
}

async fn run(args: &Args, system: &mut System) -> anyhow::Result<()> {
    let file = args.dir.join("users.csv");
    let generated = Instant::now();
    let summary = testkit::generate::generate(
        std::io::BufWriter::new(std::fs::File::create(&file)?),
        &testkit::generate::Spec { rows: args.rows, bad_share: 0.0, seed: 1 },
        false,
    )?;
    let size = std::fs::metadata(&file)?.len();
    println!(
        "generated {} rows ({:.1} MiB) in {:.2}s",
        summary.rows,
        size as f64 / (1 << 20) as f64,
        generated.elapsed().as_secs_f64()
    );

    let body = tokio::fs::read(&file).await?;
    let before = system.resources();
    let client = system.client()?;
    let started = Instant::now();
    let response = client
        .post(format!("{}/imports", system.gateway_url()))
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await?;
    let accepted: Value = response.json().await?;
    let uploaded = started.elapsed();
    let import_id = accepted["import_id"].as_str().context("no import id")?.to_owned();

    let patience = Instant::now() + Duration::from_secs(600);
    let status = loop {
        if Instant::now() > patience {
            bail!("the import did not complete within 10 minutes");
        }
        let status: Value =
            client.get(format!("{}/imports/{import_id}", system.gateway_url())).send().await?.json().await?;
        match status["status"].as_str() {
            Some("completed") => break status,
            Some("failed") => bail!("the import failed: {status}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let imported = started.elapsed();
    let expected = status["accepted"].as_u64().unwrap_or_default();
    loop {
        if system.gateway_projection_size(&client).await? >= expected {
            break;
        }
        if Instant::now() > patience {
            bail!("the gateway did not show every user within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let readable = started.elapsed();

    println!("\nimport of {} rows (accepted {expected}, rejected {}):", args.rows, status["rejected"]);
    println!("  upload to the gateway           {:>8.2} s", uploaded.as_secs_f64());
    println!("  import completed                {:>8.2} s", imported.as_secs_f64());
    println!("  every user readable via gateway {:>8.2} s", readable.as_secs_f64());
    println!("  throughput                      {:>8.0} rows/s", args.rows as f64 / readable.as_secs_f64());
    print_resources(system, &before, "import");

    if !args.no_kafka_baseline {
        let record_size = system::event_record_size();
        let baseline = system.kafka_producer_perf(args.rows, record_size).await?;
        println!(
            "\nKafka's own producer perf test, {} records of {record_size} bytes (acks=all, idempotent, lz4):",
            args.rows
        );
        println!("  {:.2} s ({:.0} records/s)", args.rows as f64 / baseline, baseline);
    }
    export(args, system, &client).await?;
    cold_starts(system, &client).await?;
    Ok(())
}

/// Restarts each service holding users alone, then all at once; prints readiness times and
/// resident memory, then the digests.
async fn cold_starts(system: &mut System, client: &reqwest::Client) -> anyhow::Result<Vec<Duration>> {
    let users = system.gateway_projection_size(client).await?;
    println!(
        "
cold start over {users} live users (SIGTERM, start, until /ready):"
    );
    println!("  service          ready in   RSS before   RSS after   after/before");
    let mut times = Vec::new();
    for name in system::HOLDING_USERS {
        let before = system.rss(name).unwrap_or_default();
        let took = system.restart(&[name]).await?;
        let after = system.rss(name).unwrap_or_default();
        println!(
            "  {name:<16} {:>6.2} s   {:>6.0} MiB   {:>6.0} MiB   {:>8.2}x",
            took.as_secs_f64(),
            before as f64 / 1024.0,
            after as f64 / 1024.0,
            after as f64 / before.max(1) as f64
        );
        times.push(took);
    }
    let all = system.restart(&system::HOLDING_USERS).await?;
    println!("  all three at once {:>5.2} s", all.as_secs_f64());
    times.push(all);
    let digests = system.digests(client).await?;
    for digest in &digests {
        println!(
            "  digest {:<14} users {} versions {} emails {} positions {}",
            digest["service"].as_str().unwrap_or("?"),
            digest["users"],
            digest["versions"],
            digest["emails"],
            digest["positions"]
        );
    }
    let agree =
        digests.windows(2).all(|p| ["users", "versions", "emails", "positions"].iter().all(|f| p[0][f] == p[1][f]));
    println!("  digests {}", if agree { "agree" } else { "DIFFER" });
    Ok(times)
}

/// Imports `body` and waits until the import is complete.
async fn import(system: &System, client: &reqwest::Client, body: Vec<u8>, mode: &str) -> anyhow::Result<Value> {
    let url = format!("{}/imports?mode={mode}", system.gateway_url());
    let accepted: Value =
        client.post(url).header("content-type", "text/csv").body(body).send().await?.error_for_status()?.json().await?;
    let id = accepted["import_id"].as_str().context("no import id")?.to_owned();
    let patience = Instant::now() + Duration::from_secs(600);
    loop {
        let status: Value = client.get(format!("{}/imports/{id}", system.gateway_url())).send().await?.json().await?;
        match status["status"].as_str() {
            Some("completed") => return Ok(status),
            Some("failed") => bail!("the import failed: {status}"),
            _ if Instant::now() > patience => bail!("the import did not complete within 10 minutes"),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// `--churn`: restarts over N fresh users, then over the same N users after each was updated
/// `--updates` times and the log cleaner compacted `users.state`.
async fn churn(args: &Args, system: &mut System) -> anyhow::Result<()> {
    let users = if args.rows == 1_000_000 { 10_000 } else { args.rows };
    let client = system.client()?;
    let file = |round: u64| {
        let mut csv = String::from("email,name,age\n");
        for i in 0..users {
            csv.push_str(&format!("churn{i}@bench.example,User {i} round {round},{}\n", 20 + i % 50));
        }
        csv.into_bytes()
    };
    import(system, &client, file(0), "create").await?;
    println!("{users} users created");
    let fresh = cold_starts(system, &client).await?;

    let started = Instant::now();
    for round in 1..=args.updates {
        let status = import(system, &client, file(round), "upsert").await?;
        if status["accepted"].as_u64() != Some(users) {
            bail!("round {round} did not update every user: {status}");
        }
    }
    println!("\n{} updates of each of the {users} users in {:.1} s", args.updates, started.elapsed().as_secs_f64());
    // Only closed segments are compacted, and a segment rolls on a write once it is older than
    // the compaction lag: a few writes to every partition after it, as a live system has.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let mut rolling = String::from("email,name,age\n");
    for i in 0..60 {
        rolling.push_str(&format!("roll{i}@bench.example,Roll {i},30\n"));
    }
    import(system, &client, rolling.into_bytes(), "create").await?;
    let users = users + 60;
    let waiting = Instant::now();
    let mut records = system.state_records().await?;
    while records > users * 5 / 2 && waiting.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        records = system.state_records().await?;
    }
    println!(
        "users.state holds {records} records after {:.0} s of waiting for the log cleaner ({} writes)",
        waiting.elapsed().as_secs_f64(),
        users * (args.updates + 1)
    );
    let churned = cold_starts(system, &client).await?;
    println!("\nrestart after the updates vs over fresh users:");
    let names = system::HOLDING_USERS.iter().copied().chain(["all three"]);
    for ((name, fresh), churned) in names.zip(&fresh).zip(&churned) {
        println!(
            "  {name:<16} {:>6.2} s vs {:>6.2} s ({:+.0}%)",
            churned.as_secs_f64(),
            fresh.as_secs_f64(),
            100.0 * (churned.as_secs_f64() / fresh.as_secs_f64() - 1.0)
        );
    }
    Ok(())
}

/// Every process's peak memory, and the CPU it used since `before`.
fn print_resources(system: &System, before: &BTreeMap<String, (u64, f64)>, phase: &str) {
    println!("\n  process          peak RSS   CPU during the {phase}");
    for (name, (kib, cpu)) in system.resources() {
        let used = cpu - before.get(&name).map_or(0.0, |(_, c)| *c);
        println!("  {name:<16} {:>5.0} MiB   {used:>6.2} s", kib as f64 / 1024.0);
    }
}

async fn export(args: &Args, system: &System, client: &reqwest::Client) -> anyhow::Result<()> {
    let before = system.resources();
    let started = Instant::now();
    let accepted: Value =
        client.post(format!("{}/exports", system.gateway_url())).send().await?.error_for_status()?.json().await?;
    let id = accepted["export_id"].as_str().context("no export id")?.to_owned();
    let patience = Instant::now() + Duration::from_secs(600);
    let status = loop {
        let status: Value = client.get(format!("{}/exports/{id}", system.gateway_url())).send().await?.json().await?;
        match status["status"].as_str() {
            Some("completed") => break status,
            Some("failed") => bail!("the export failed: {status}"),
            _ if Instant::now() > patience => bail!("the export did not complete within 10 minutes"),
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    let written = started.elapsed();
    let mut response = client.get(format!("{}/exports/{id}/download", system.gateway_url())).send().await?;
    let file = args.dir.join("export.csv");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
    while let Some(chunk) = response.chunk().await? {
        std::io::Write::write_all(&mut out, &chunk)?;
    }
    std::io::Write::flush(&mut out)?;
    let downloaded = started.elapsed();
    let rows = status["rows_written"].as_u64().unwrap_or_default();
    let bytes = status["bytes"].as_u64().unwrap_or_default();

    println!("\nexport of {rows} users ({:.1} MiB):", bytes as f64 / (1 << 20) as f64);
    println!("  file written (status completed)  {:>8.2} s", written.as_secs_f64());
    println!("  download completed              {:>8.2} s", downloaded.as_secs_f64());
    println!("  throughput                      {:>8.0} rows/s", rows as f64 / downloaded.as_secs_f64());
    print_resources(system, &before, "export");

    // The ceiling: the csv crate alone, one thread, writing the same rows to a file.
    let records: Vec<csv::StringRecord> = csv::Reader::from_path(&file)?.records().collect::<Result<_, _>>()?;
    let bare = Instant::now();
    let mut writer = csv::Writer::from_path(args.dir.join("export-bare.csv"))?;
    writer.write_record(["email", "name", "age"])?;
    for record in &records {
        writer.write_record(record)?;
    }
    writer.flush()?;
    drop(writer);
    let bare = bare.elapsed();
    let ceiling = records.len() as f64 / bare.as_secs_f64();
    println!("\nthe csv crate alone writing the same {} rows to a file:", records.len());
    println!(
        "  {:.2} s ({ceiling:.0} rows/s); the export end to end reaches {:.0}% of it",
        bare.as_secs_f64(),
        100.0 * (rows as f64 / downloaded.as_secs_f64()) / ceiling
    );
    Ok(())
}
