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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let system = System::start(&args.dir).await?;
    let result = run(&args, &system).await;
    system.stop().await;
    result
}

async fn run(args: &Args, system: &System) -> anyhow::Result<()> {
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
    let client = reqwest::Client::new();
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
    export(args, system, &client).await
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
